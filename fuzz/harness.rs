//! The fuzz entry points, one function per target, shared by the
//! cargo-fuzz binaries (`fuzz/fuzz_targets/*.rs`) and the corpus replay
//! test (`tests/it/fuzz_corpus.rs`) through `#[path]`, so `cargo test` runs
//! every corpus file through exactly the code the fuzzer exercised.
//!
//! Each function takes arbitrary bytes, must never panic, asserts the
//! invariants of its target, and returns how many of the inputs it built
//! were accepted (an answered query, a decoded payload, a loaded file, a
//! parsed command), so the replay test can check that the seeds still
//! reach past the first parse.

#![allow(dead_code)]

use opengslb::api::routes::{self, BackendKey as RouteKey, Route};
use opengslb::api::write;
use opengslb::clock::Now;
use opengslb::config::{self, Mode};
use opengslb::dns::{DnsStats, DnsTable, Responder, Transport, sample};
use opengslb::gossip::agent::{AgentSession, SessionConfig};
use opengslb::gossip::identity::Identity;
use opengslb::gossip::io::{FrameReader, MAX_FRAME};
use opengslb::gossip::overwatch::{OverwatchConfig, OverwatchProtocol};
use opengslb::gossip::wire::{self, Message, Payload};
use opengslb::gossip::{Keyring, Policy, cert};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

// The API under slow clients: a server and sockets, so in its own file.
#[path = "slow_api.rs"]
mod slow_api;
pub use slow_api::api_slow;

/// Every target, in the order `scripts/fuzz.sh` runs them.
pub const TARGETS: [&str; 10] = [
    "dns_query",
    "dns_edns_options",
    "dns_ecs_geo",
    "gossip_frame_raw",
    "gossip_frame_decrypted",
    "config_yaml",
    "api_body",
    "api_slow",
    "peer_sync",
    "latency_report",
];

/// Runs one input through the named target.
pub fn run(target: &str, data: &[u8]) -> Option<usize> {
    Some(match target {
        "dns_query" => dns_query(data),
        "dns_edns_options" => dns_edns_options(data),
        "dns_ecs_geo" => dns_ecs_geo(data),
        "gossip_frame_raw" => gossip_frame_raw(data),
        "gossip_frame_decrypted" => gossip_frame_decrypted(data),
        "config_yaml" => config_yaml(data),
        "api_body" => api_body(data),
        "api_slow" => api_slow(data),
        "peer_sync" => peer_sync(data),
        "latency_report" => latency_report(data),
        _ => return None,
    })
}

// ---------------------------------------------------------------- DNS

/// The shared sample table (`opengslb::dns::sample`): one name per
/// responder path, the same table the responder's unit tests use.
fn dns_table() -> &'static (DnsTable, DnsStats) {
    static T: OnceLock<(DnsTable, DnsStats)> = OnceLock::new();
    T.get_or_init(|| {
        let stats = DnsStats::new();
        (sample::table(&stats), stats)
    })
}

/// Bytes as a DNS query over UDP and TCP; a UDP answer fits 1232 bytes.
pub fn dns_query(data: &[u8]) -> usize {
    let (table, stats) = dns_table();
    let mut r = Responder::new(1232);
    let client = "127.0.0.1".parse().expect("literal address");
    let mut answered = 0;
    if let Some(out) = r.respond(data, client, Transport::Udp, table, stats) {
        assert!(out.len() <= 1232, "UDP answer of {} bytes", out.len());
        answered += 1;
    }
    if r.respond(data, client, Transport::Tcp, table, stats)
        .is_some()
    {
        answered += 1;
    }
    answered
}

/// The fuzz table with response rate limiting on, so limited, slipped
/// and BADCOOKIE answers are reached too.
fn dns_table_rrl() -> &'static (DnsTable, DnsStats) {
    static T: OnceLock<(DnsTable, DnsStats)> = OnceLock::new();
    T.get_or_init(|| {
        let stats = DnsStats::new();
        let mut spec = sample::spec();
        spec.rate_limit = opengslb::dns::rrl::RateLimit::from_config(&config::RateLimitConfig {
            responses_per_second: 3,
            slip: 2,
            ..Default::default()
        });
        (DnsTable::build(&spec, &stats), stats)
    })
}

/// A query for one of a few names whose OPT record carries `options`.
fn query_with_options(selector: u8, options: &[u8]) -> Vec<u8> {
    let (name, qtype): (&[u8], u16) = match selector % 4 {
        0 => (b"\x03app\x07example\x03com\x00", 1),
        1 => (b"\x04nope\x07example\x03com\x00", 28),
        2 => (b"\x07example\x03com\x00", 2),
        _ => (b"\x07example\x03org\x00", 255),
    };
    let options = options.get(..options.len().min(4000)).unwrap_or(options);
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    q.extend_from_slice(name);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    // OPT: root owner, type 41, payload 1232, TTL 0 (DO from the selector).
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, selector & 0x80, 0]);
    q.extend_from_slice(&(options.len() as u16).to_be_bytes());
    q.extend_from_slice(options);
    q
}

/// The RDATA of the OPT record that ends `answer` (we always put it last).
fn last_opt(answer: &[u8]) -> Option<&[u8]> {
    (12..answer.len().saturating_sub(10)).find_map(|i| {
        let rr = answer.get(i..)?;
        let rdlen = usize::from(u16::from_be_bytes([*rr.get(9)?, *rr.get(10)?]));
        (rr.get(..3)? == [0, 0, 41] && rr.len() == 11 + rdlen).then(|| rr.get(11..))?
    })
}

/// The body of option `code` in an OPT RDATA.
fn option(mut rdata: &[u8], code: u16) -> Option<&[u8]> {
    while rdata.len() >= 4 {
        let c = u16::from_be_bytes([rdata[0], rdata[1]]);
        let len = usize::from(u16::from_be_bytes([rdata[2], rdata[3]]));
        let body = rdata.get(4..4 + len)?;
        if c == code {
            return Some(body);
        }
        rdata = rdata.get(4 + len..)?;
    }
    None
}

/// The first byte picks the question, the rest is the OPT option list
/// (ECS, COOKIE, unknown options, malformed lengths). Every answer to a
/// query with OPT must carry OPT (RFC 6891 §7); a returned cookie is sent
/// back once, as a resolver would.
pub fn dns_edns_options(data: &[u8]) -> usize {
    let Some((&selector, options)) = data.split_first() else {
        return 0;
    };
    let mut r = Responder::new(1232);
    let client = "192.0.2.1".parse().expect("literal address");
    let mut answered = 0;
    let mut cookie = None;
    for (table, stats) in [dns_table(), dns_table_rrl()] {
        let q = query_with_options(selector, options);
        for transport in [Transport::Udp, Transport::Tcp] {
            let Some(out) = r.respond(&q, client, transport, table, stats) else {
                continue;
            };
            assert!(transport == Transport::Tcp || out.len() <= 1232);
            let opt = last_opt(out).expect("an OPT query gets an OPT answer");
            cookie = cookie.or_else(|| option(opt, 10).map(<[u8]>::to_vec));
            answered += 1;
        }
        if let Some(c) = &cookie {
            let mut again = vec![0, 10];
            again.extend_from_slice(&(c.len() as u16).to_be_bytes());
            again.extend_from_slice(c);
            let q = query_with_options(selector, &again);
            let _ = r.respond(&q, client, Transport::Udp, table, stats);
        }
    }
    answered
}

/// A table with a geolocation name (custom mappings) and a
/// learned_latency one falling back to it: `geo.example.com`,
/// `learned.example.com`, regions eu/us/ap.
fn geo_table() -> &'static (DnsTable, DnsStats) {
    use opengslb::config::RoutingAlgorithm;
    use opengslb::dns::{RegionTargets, Target};
    static T: OnceLock<(DnsTable, DnsStats)> = OnceLock::new();
    T.get_or_init(|| {
        let yaml = "mode: overwatch\noverwatch:\n  geolocation:\n    default_region: eu\n    custom_mappings:\n      - {cidr: 198.51.100.0/24, region: us}\n      - {cidr: 10.0.0.0/8, region: ap}\n      - {cidr: \"2001:db8::/32\", region: ap}\nregions:\n  - {name: eu, servers: [{address: 192.0.2.1}]}\n  - {name: us, servers: [{address: 192.0.2.2}]}\n  - {name: ap, servers: [{address: 192.0.2.3}]}\ndomains:\n  - {name: geo.example.com, routing_algorithm: geo, regions: [eu, us, ap]}\n";
        let cfg = config::load_str(yaml, Path::new("fuzz.yaml"), None)
            .expect("fuzz geolocation config loads")
            .config;
        let stats = DnsStats::new();
        let mut spec = sample::spec();
        spec.geo = opengslb::geo::GeoResolver::new(&cfg, None, &[]).map(Arc::new);
        let region = |name: &str, ip: &str| RegionTargets {
            region: name.into(),
            targets: vec![Target {
                ip: ip.parse().expect("literal address"),
                weight: 1,
            }],
        };
        let regions = vec![
            region("eu", "10.0.1.1"),
            region("us", "2001:db8:2::1"),
            region("ap", "10.0.3.1"),
        ];
        for (name, alg) in [
            ("geo.example.com", RoutingAlgorithm::Geolocation),
            ("learned.example.com", RoutingAlgorithm::LearnedLatency),
        ] {
            let mut d = sample::domain(name, alg, &[]);
            d.targets = regions.iter().flat_map(|r| r.targets.clone()).collect();
            d.by_region = regions.clone();
            spec.domains.push(d);
        }
        (DnsTable::build(&spec, &stats), stats)
    })
}

/// The first byte picks the name and type, the rest is an ECS option body
/// (family, source, scope, address) sent to the geolocation names: a
/// malformed one is FORMERR with OPT, a good one is answered with OPT
/// echoing ECS with a scope no longer than the family's address.
pub fn dns_ecs_geo(data: &[u8]) -> usize {
    let Some((&selector, body)) = data.split_first() else {
        return 0;
    };
    let name: &[u8] = if selector & 1 == 0 {
        b"\x03geo\x07example\x03com\x00"
    } else {
        b"\x07learned\x07example\x03com\x00"
    };
    let qtype: u16 = [1, 28, 255][usize::from(selector >> 1) % 3];
    let mut q = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1];
    q.extend_from_slice(name);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1, 0, 0, 41, 4, 208, 0, 0, 0, 0]);
    let len = u16::try_from(body.len().min(1000)).unwrap_or(0);
    q.extend_from_slice(&(len + 4).to_be_bytes());
    q.extend_from_slice(&[0, 8]);
    q.extend_from_slice(&len.to_be_bytes());
    q.extend_from_slice(body.get(..usize::from(len)).unwrap_or(&[]));
    let (table, stats) = geo_table();
    let mut r = Responder::new(1232);
    let mut answered = 0;
    for source in ["192.0.2.1", "198.51.100.7", "2001:db8::1"] {
        let client = source.parse().expect("literal address");
        let Some(out) = r.respond(&q, client, Transport::Udp, table, stats) else {
            continue;
        };
        let opt = last_opt(out).expect("an OPT query gets an OPT answer");
        if let Some(ecs) = option(opt, 8) {
            let family = u16::from_be_bytes([ecs[0], ecs[1]]);
            let max = if family == 2 { 128 } else { 32 };
            assert!(ecs[3] <= max, "scope {} beyond the address", ecs[3]);
        }
        answered += 1;
    }
    answered
}

// ------------------------------------------------------------- gossip

/// The key every gossip target shares: inputs sealed with it decrypt.
pub const FUZZ_KEY: [u8; 32] = [0x42; 32];
/// A second key of the Overwatch ring (rotation path).
const OLD_KEY: [u8; 32] = [0x17; 32];
/// The token the policy accepts for `app.example.com`.
pub const FUZZ_TOKEN: &str = "fuzz-token";
/// Unix ms used when an input carries no timestamp.
const DEFAULT_NOW: u64 = 1_750_000_000_000;

struct Gossip {
    policy: Policy,
    identity: Arc<Identity>,
}

fn gossip() -> &'static Gossip {
    static G: OnceLock<Gossip> = OnceLock::new();
    G.get_or_init(|| {
        let mut policy = Policy {
            keyring: Keyring::from_raw(&[FUZZ_KEY, OLD_KEY]),
            ..Policy::default()
        };
        policy
            .agent_tokens
            .insert("app.example.com".into(), FUZZ_TOKEN.into());
        policy.known_services.insert("app.example.com".into());
        policy.revoked.insert("revoked-agent".into());
        policy.pins.insert("pinned-agent".into(), "00".repeat(32));
        let identity = Identity::generate("fuzz-agent", DEFAULT_NOW / 1000, 86_400)
            .expect("in-memory identity");
        Gossip {
            policy,
            identity: Arc::new(identity),
        }
    })
}

/// The fuzz targets drive both clocks together (no step).
fn at(ms: u64) -> Now {
    Now::at(ms, ms)
}

fn agent_session(now: u64) -> AgentSession {
    let g = gossip();
    AgentSession::new(
        SessionConfig {
            agent_id: "fuzz-agent".into(),
            region: "eu".into(),
            token: FUZZ_TOKEN.into(),
            identity: g.identity.clone(),
            keyring: Keyring::from_raw(&[FUZZ_KEY]),
            heartbeat_interval: Duration::from_secs(5),
            missed_threshold: 3,
            time_window_ms: 60_000,
        },
        at(now),
    )
}

fn src() -> SocketAddr {
    "127.0.0.1:7946".parse().expect("literal address")
}

/// Raw bytes as they come off the network, before decryption: one
/// datagram to the Overwatch side and to the agent side, and the same
/// bytes as a TCP stream cut into frames, each frame to both sides.
pub fn gossip_frame_raw(data: &[u8]) -> usize {
    let g = gossip();
    let mut ow = OverwatchProtocol::new(OverwatchConfig::default());
    let mut agent = agent_session(DEFAULT_NOW);
    let mut packets = vec![data.to_vec()];
    // Frames before an oversized announcement still count, as in the
    // listener (which then closes the connection).
    let _ = FrameReader::new().feed(data, MAX_FRAME, &mut packets);
    let mut accepted = 0;
    for p in &packets {
        let out = ow.on_packet(p, src(), at(DEFAULT_NOW), &g.policy);
        accepted += out.replies.len() + out.events.len();
        accepted += agent.on_datagram(p, at(DEFAULT_NOW)).len();
        let _ = agent.tick(at(DEFAULT_NOW));
    }
    ow.expire(at(DEFAULT_NOW + 1), &g.policy);
    accepted
}

/// Splits an input into plaintexts: each is a big-endian u16 length and
/// that many bytes; a short last length takes the rest.
pub fn split_plaintexts(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let [a, b, tail @ ..] = rest {
        let n = usize::from(u16::from_be_bytes([*a, *b])).min(tail.len());
        let (head, next) = tail.split_at(n);
        out.push(head);
        rest = next;
    }
    out
}

/// The inverse of `split_plaintexts`, for building seeds.
pub fn join_plaintexts(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        let n = u16::try_from(p.len()).expect("plaintext under 64 KiB");
        out.extend_from_slice(&n.to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// A wall clock no real machine reaches (about year 144 000): the local
/// clock is never set past it, whatever a message claims.
const MAX_CLOCK: u64 = 1 << 52;

/// The time a plaintext claims (bytes 1..9), so the replay window passes,
/// as long as it is a clock a machine can have (else `DEFAULT_NOW`, and
/// the message is out of the window). Letting the input set the local
/// clock to 2^64 - 1 made the first run "find" an overflow in
/// `now + backoff` that no real clock can reach.
fn claimed_time(plain: &[u8]) -> u64 {
    match plain.get(1..9) {
        Some(b) => {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            let t = u64::from_be_bytes(a);
            if (1..=MAX_CLOCK).contains(&t) {
                t
            } else {
                DEFAULT_NOW
            }
        }
        None => DEFAULT_NOW,
    }
}

/// Arbitrary plaintexts sealed with the shared key, so the fuzzer gets
/// past AES-GCM to the message parsers and the protocol state machines.
/// The first byte picks the session id (so several messages can share
/// one session); the rest is a list of plaintexts (`split_plaintexts`),
/// fed in order to one Overwatch and one agent, each with the clock at
/// the time the message claims. Every payload that decodes must encode
/// back to itself; a Register's certificate goes through the X.509
/// reader too.
pub fn gossip_frame_decrypted(data: &[u8]) -> usize {
    let g = gossip();
    let Some((&sel, rest)) = data.split_first() else {
        return 0;
    };
    let session = 0x5eed_0000 + u64::from(sel);
    let sealer = Keyring::from_raw(&[FUZZ_KEY]);
    let mut ow = OverwatchProtocol::new(OverwatchConfig::default());
    let mut agent: Option<AgentSession> = None;
    let mut accepted = 0;
    for (i, plain) in split_plaintexts(rest).into_iter().enumerate() {
        let now = claimed_time(plain);
        let agent = agent.get_or_insert_with(|| agent_session(now));
        if let Ok((body, _tag)) = wire::split_tag(plain)
            && let Ok(p) = Payload::decode(body)
        {
            accepted += 1;
            assert_eq!(Payload::decode(&p.encode()).as_ref(), Ok(&p));
            if let Message::Register(r) = &p.message {
                let _ = cert::parse(&r.cert_der);
                if let Some((old, _)) = &r.rotation {
                    let _ = cert::parse(old);
                }
            }
        }
        let Some(packet) = sealer.seal(session, i as u64 + 1, plain) else {
            return accepted;
        };
        let out = ow.on_packet(&packet, src(), at(now), &g.policy);
        for reply in &out.replies {
            let _ = agent.on_datagram(reply, at(now));
        }
        let _ = agent.on_datagram(&packet, at(now));
        let _ = agent.tick(at(now));
        ow.expire(at(now), &g.policy);
    }
    accepted
}

// ------------------------------------------------------------- config

/// Whether the text names other files (`includes:`): the loader would
/// then glob and read the file system, which is not what this target is
/// about and would make runs slow and machine-dependent.
fn names_files(text: &str) -> bool {
    let Ok(v) = serde_norway::from_str::<serde_norway::Value>(text) else {
        return false;
    };
    let Some(m) = v.as_mapping() else {
        return false;
    };
    m.keys()
        .filter_map(|k| k.as_str())
        .any(|k| k.trim() == "includes")
}

/// Bytes as the text of a main configuration file, in each mode.
pub fn config_yaml(data: &[u8]) -> usize {
    let Ok(text) = std::str::from_utf8(data) else {
        return 0;
    };
    if names_files(text) {
        return 0;
    }
    let name = Path::new("/nonexistent/opengslb-fuzz/opengslb.yaml");
    let mut loaded = 0;
    for mode in [None, Some(Mode::Overwatch), Some(Mode::Agent)] {
        match config::load_str(text, name, mode) {
            Ok(l) => {
                loaded += 1;
                if let Some(m) = mode {
                    assert_eq!(l.mode, m);
                }
            }
            Err(e) => assert!(!e.0.is_empty(), "an error list must not be empty"),
        }
    }
    loaded
}

// ---------------------------------------------------------------- API

fn write_routes() -> [Route; 5] {
    let key = RouteKey {
        service: "app.example.com".into(),
        address: "10.0.0.1".into(),
        port: 8080,
    };
    [
        Route::SetOverride(key.clone()),
        Route::ClearOverride(key),
        Route::ForgetAgent("web-1".into()),
        Route::RevokeAgent("web-1".into()),
        Route::Validate,
    ]
}

const METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"];

/// The first byte picks a method; up to the first newline is a URL for
/// the router, the rest a body for every write route (and for the route
/// the URL names, when it is a write).
pub fn api_body(data: &[u8]) -> usize {
    let Some((&sel, rest)) = data.split_first() else {
        return 0;
    };
    let method = METHODS[usize::from(sel) % METHODS.len()];
    let (url, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let url = String::from_utf8_lossy(url);
    let mut accepted = 0;
    let (_, query) = routes::split_url(&url);
    let _ = routes::query_pairs(query);
    if let Ok(route) = routes::route(method, &url) {
        accepted += 1;
        if route.is_write() && write::command(&route, body).is_ok() {
            accepted += 1;
        }
    }
    for route in write_routes() {
        match write::command(&route, body) {
            Ok(c) => {
                accepted += 1;
                let _ = (c.action(), c.target());
            }
            Err(e) => assert!((400..600).contains(&e.code), "status {}", e.code),
        }
    }
    accepted
}

// ---------------------------------------------------------------- peers

/// A peer message plaintext (what the `peers` thread decodes after
/// opening a packet): decoding never panics; a push merges into a replica
/// so that a refused entry leaves the digest untouched and merging the
/// same push again changes nothing (idempotent).
pub fn peer_sync(data: &[u8]) -> usize {
    use opengslb::overwatch::peers::Replica;
    use opengslb::overwatch::peers::msg::{self, PeerMsg};
    let Ok(m) = msg::decode(data) else {
        return 0;
    };
    let PeerMsg::Push { entries, .. } = &m else {
        return 1;
    };
    let now_ms = 1_800_000_000_000;
    let mut r = Replica::new("fuzz");
    let mut taken = 1;
    for e in entries {
        let before = r.digest();
        match r.merge(e, now_ms) {
            Ok(_) => taken += 1,
            Err(_) => assert_eq!(r.digest(), before, "a refused entry changed state"),
        }
    }
    let once = r.digest();
    for e in entries {
        let _ = r.merge(e, now_ms);
    }
    // Managed servers/regions/domains (kinds 5..7) as a receiving node
    // takes them: checked like an API body, a refusal changes nothing.
    let base = opengslb::config::Config::default();
    let mut managed = opengslb::overwatch::managed::Managed::default();
    for e in entries.iter().filter(|e| e.kind.is_managed()) {
        let before = managed.clone();
        use opengslb::overwatch::managed::replicated::apply;
        if apply(&base, &mut managed, e.kind, &e.id, e.value.as_deref()).is_err() {
            assert_eq!(managed, before, "a refused managed entry changed state");
        }
    }
    assert_eq!(
        r.digest(),
        once,
        "merging the same push twice changed state"
    );
    taken
}

// ---------------------------------------------------------------- learned latency

/// Bytes as the body of a latency report (type 32, after the stamp), and
/// as a netlink sock_diag reply: neither may panic, a decoded report keeps
/// within `MAX_LATENCY_ENTRIES` and re-encodes to the same bytes, and
/// the Overwatch table stays within its bounds.
pub fn latency_report(data: &[u8]) -> usize {
    let mut body = vec![32u8];
    body.extend_from_slice(&1u64.to_be_bytes());
    body.extend_from_slice(data);
    let mut accepted = 0;
    if let Ok(p) = Payload::decode(&body) {
        let Message::LatencyReport(r) = &p.message else {
            panic!("type 32 decoded as another message");
        };
        assert!(r.entries.len() <= wire::MAX_LATENCY_ENTRIES);
        assert_eq!(p.encode(), body, "re-encodes to the same bytes");
        let learned =
            opengslb::overwatch::learned::Learned::new(opengslb::overwatch::learned::Settings {
                max_prefixes: 8,
                ..Default::default()
            });
        learned.record("eu", &r.entries, 0);
        assert!(learned.prefixes() <= 8);
        accepted += 1;
    }
    let mut n = 0;
    let _ = opengslb::agent::latency::sockdiag::parse(data, &mut |_| n += 1);
    accepted + n
}
