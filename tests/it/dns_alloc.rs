//! Proof of "zero heap allocations per answered UDP query": a counting
//! global allocator, a warm-up pass, then ~1000 varied queries through the
//! responder with the count required to stay put.

use domain::base::iana::Rtype;
use domain::base::opt::ClientSubnet;
use domain::base::{MessageBuilder, Name};
use opengslb::dns::{DnsStats, Responder, Transport, sample};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::str::FromStr;
use std::sync::atomic::Ordering;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// Per thread, so tests counting at the same time in other threads
    /// (the test harness runs them in parallel) do not add to each other.
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    if COUNTING.with(Cell::get) {
        ALLOCS.with(|a| a.set(a.get() + 1));
    }
}

/// Allocations this thread made while counting.
fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn query(name: &str, qtype: Rtype, edns: bool, ecs: bool) -> Vec<u8> {
    let mut b = MessageBuilder::new_vec();
    b.header_mut().set_id(99);
    let mut q = b.question();
    q.push((Name::<Vec<u8>>::from_str(name).unwrap(), qtype))
        .unwrap();
    let mut add = q.additional();
    if edns {
        add.opt(|o| {
            o.set_udp_payload_size(1232);
            if ecs {
                o.push(&ClientSubnet::new(24, 0, "198.51.100.0".parse().unwrap()))?;
            }
            Ok(())
        })
        .unwrap();
    }
    add.finish()
}

#[test]
fn answered_udp_queries_do_not_allocate() {
    // The shared sample table: round-robin, weighted and failover names, a
    // name with 100 addresses that truncates, one without any (SERVFAIL),
    // one served from its last healthy set, an IPv6-only one.
    let stats = DnsStats::new();
    let table = sample::table(&stats);
    let names = [
        "app.example.com.",
        "APP.Example.COM.",
        "w.example.com.",
        "fo.example.com.",
        "big.example.com.",
        "nope.example.com.",
        "example.com.",
        "down.example.com.",
        "last.example.com.",
        "v6.example.com.",
        "x.y.example.com.",
        "other.org.",
    ];
    let types = [
        Rtype::A,
        Rtype::AAAA,
        Rtype::SOA,
        Rtype::NS,
        Rtype::TXT,
        Rtype::ANY,
    ];
    let mut queries = Vec::new();
    for name in names {
        for qtype in types {
            for (edns, ecs) in [(false, false), (true, false), (true, true)] {
                queries.push(query(name, qtype, edns, ecs));
            }
        }
    }
    let mut formerr = queries[0].clone();
    formerr[5] = 2;
    queries.push(formerr);
    let mut responder = Responder::new(1232);
    let client = "127.0.0.1".parse().unwrap();
    // Warm-up: lets the output buffer and any lazy statics settle.
    for q in &queries {
        let _ = responder.respond(q, client, Transport::Udp, &table, &stats);
    }
    let mut answered = 0;
    COUNTING.with(|c| c.set(true));
    let before = allocs();
    for i in 0..1000 {
        let q = &queries[i % queries.len()];
        if responder
            .respond(q, client, Transport::Udp, &table, &stats)
            .is_some()
        {
            answered += 1;
        }
    }
    let after = allocs();
    COUNTING.with(|c| c.set(false));
    assert_eq!(answered, 1000);
    assert_eq!(
        after - before,
        0,
        "allocations during {answered} answered queries"
    );
    // The counter itself works (a test that cannot fail is a defect).
    COUNTING.with(|c| c.set(true));
    let v = std::hint::black_box(vec![1u8; 10]);
    COUNTING.with(|c| c.set(false));
    drop(v);
    assert!(allocs() > after);
}

/// The same with response rate limiting on and DNS cookies in the
/// queries: passing, dropped, slipped and BADCOOKIE answers all stay off
/// the heap (SPEC §14: zero allocations kept).
#[test]
fn rate_limited_and_cookie_queries_do_not_allocate() {
    use opengslb::config::RateLimitConfig;
    use opengslb::dns::rrl::RateLimit;
    let stats = DnsStats::new();
    let mut spec = sample::spec();
    spec.rate_limit = RateLimit::from_config(&RateLimitConfig {
        responses_per_second: 5,
        slip: 2,
        whitelist: vec!["10.0.0.0/8".into()],
        ..RateLimitConfig::default()
    });
    let table = opengslb::dns::DnsTable::build(&spec, &stats);
    let mut queries = Vec::new();
    for name in ["app.example.com.", "nope.example.com.", "other.org."] {
        for cookie in [None, Some(&[7u8; 8][..]), Some(&[7u8; 24][..])] {
            let mut b = MessageBuilder::new_vec();
            b.header_mut().set_id(7);
            let mut q = b.question();
            q.push((Name::<Vec<u8>>::from_str(name).unwrap(), Rtype::A))
                .unwrap();
            let mut add = q.additional();
            add.opt(|o| {
                o.set_udp_payload_size(1232);
                if let Some(c) = cookie {
                    o.push_raw_option(
                        domain::base::iana::OptionCode::COOKIE,
                        c.len() as u16,
                        |t| domain::dep::octseq::OctetsBuilder::append_slice(t, c),
                    )?;
                }
                Ok(())
            })
            .unwrap();
            queries.push(add.finish());
        }
    }
    let mut responder = Responder::new(1232);
    let clients: Vec<std::net::IpAddr> = ["192.0.2.1", "2001:db8:1::1", "10.1.1.1"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    for (i, q) in queries.iter().enumerate() {
        let _ = responder.respond(q, clients[i % 3], Transport::Udp, &table, &stats);
    }
    COUNTING.with(|c| c.set(true));
    let before = allocs();
    for i in 0..1000 {
        let q = &queries[i % queries.len()];
        let _ = responder.respond(q, clients[i % 3], Transport::Udp, &table, &stats);
    }
    let after = allocs();
    COUNTING.with(|c| c.set(false));
    assert_eq!(after - before, 0, "allocations with RRL and cookies");
    assert!(stats.rrl.dropped() > 0 && stats.rrl.slipped() > 0);
}

/// A learned table that knows one /24 (a stand-in for the Overwatch's).
struct FakeLearned;

impl opengslb::dns::learned::LearnedLookup for FakeLearned {
    fn visit_fastest(&self, client: std::net::IpAddr, visit: &mut dyn FnMut(&str, u8) -> bool) {
        if let std::net::IpAddr::V4(a) = client
            && a.octets()[..3] == [198, 51, 100]
        {
            for r in ["ap", "us"] {
                if visit(r, 24) {
                    return;
                }
            }
        }
    }
}

/// Geolocation (custom CIDR, MaxMind database, default) and learned
/// latency, with and without ECS, stay off the heap too.
#[test]
fn client_dependent_routing_does_not_allocate() {
    use opengslb::config::{RoutingAlgorithm, load_str};
    use opengslb::dns::{DnsTable, RegionTargets, Target};
    use opengslb::geo::{GeoResolver, open_database};
    use std::sync::Arc;
    let dir = crate::util::TempDir::new("alloc-geo");
    let mut w = crate::util::mmdb::MmdbWriter::new();
    w.insert("192.0.2.0/24", "US", "NA");
    w.insert("203.0.113.0/24", "JP", "AS");
    let db_path = dir.path().join("geo.mmdb");
    std::fs::write(&db_path, w.bytes()).unwrap();
    let yaml = "mode: overwatch\noverwatch:\n  geolocation:\n    default_region: eu\n    custom_mappings: [{cidr: 10.0.0.0/8, region: us}]\nregions:\n  - {name: eu, countries: [DE], servers: [{address: 192.0.2.1}]}\n  - {name: us, countries: [US], servers: [{address: 192.0.2.2}]}\n  - {name: ap, continents: [AS], servers: [{address: 192.0.2.3}]}\ndomains:\n  - {name: geo.example.com, routing_algorithm: geo, regions: [eu, us, ap]}\n";
    let cfg = load_str(yaml, std::path::Path::new("t.yaml"), None)
        .unwrap_or_else(|e| panic!("{e}"))
        .config;
    let db = Arc::new(open_database(db_path.to_str().unwrap()).unwrap());
    let stats = DnsStats::new();
    let mut spec = sample::spec();
    spec.geo = GeoResolver::new(&cfg, Some(db), &[]).map(Arc::new);
    let t = |ip: &str| Target {
        ip: ip.parse().unwrap(),
        weight: 1,
    };
    let regions = vec![
        RegionTargets {
            region: "eu".into(),
            targets: vec![t("10.0.1.1"), t("2001:db8:1::1")],
        },
        RegionTargets {
            region: "us".into(),
            targets: vec![t("10.0.2.1")],
        },
        RegionTargets {
            region: "ap".into(),
            targets: vec![t("10.0.3.1"), t("10.0.3.2")],
        },
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
    let table = DnsTable::build(&spec, &stats);
    let mut queries = Vec::new();
    for name in ["geo.example.com.", "learned.example.com."] {
        for qtype in [Rtype::A, Rtype::AAAA, Rtype::ANY] {
            for (edns, ecs) in [(false, false), (true, false), (true, true)] {
                queries.push(query(name, qtype, edns, ecs));
            }
        }
    }
    let clients: Vec<std::net::IpAddr> = ["10.9.9.9", "192.0.2.7", "203.0.113.5", "8.8.8.8", "::1"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let mut responder = Responder::new(1232);
    responder.set_learned(Some(Arc::new(FakeLearned)));
    for q in &queries {
        for c in &clients {
            let _ = responder.respond(q, *c, Transport::Udp, &table, &stats);
        }
    }
    COUNTING.with(|c| c.set(true));
    let before = allocs();
    let mut answered = 0;
    for i in 0..1000 {
        let q = &queries[i % queries.len()];
        let c = clients[i % clients.len()];
        if responder
            .respond(q, c, Transport::Udp, &table, &stats)
            .is_some()
        {
            answered += 1;
        }
    }
    let after = allocs();
    COUNTING.with(|c| c.set(false));
    assert_eq!(answered, 1000);
    assert_eq!(
        after - before,
        0,
        "allocations during {answered} routed queries"
    );
    let routed: u64 = stats
        .domain("geo.example.com")
        .routed
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum();
    assert!(routed > 0, "the geolocation path was taken");
}

/// `latency` names (one with round trips and a near tie, one without
/// data) answer from the table without touching the heap, and the answer
/// is the fastest pair.
#[test]
fn latency_routing_does_not_allocate() {
    use opengslb::config::RoutingAlgorithm;
    use opengslb::dns::DnsTable;
    let stats = DnsStats::new();
    let mut spec = sample::spec();
    let mut lat = sample::domain(
        "lat.example.com",
        RoutingAlgorithm::Latency,
        &["10.0.4.1", "10.0.4.2", "10.0.4.3", "2001:db8:4::1"],
    );
    lat.round_trips = vec![
        ("10.0.4.1".parse().unwrap(), 30_000),
        ("10.0.4.2".parse().unwrap(), 10_000),
        ("10.0.4.3".parse().unwrap(), 10_500),
    ];
    spec.domains.push(lat);
    spec.domains.push(sample::domain(
        "cold.example.com",
        RoutingAlgorithm::Latency,
        &["10.0.5.1", "10.0.5.2"],
    ));
    let table = DnsTable::build(&spec, &stats);
    let mut queries = Vec::new();
    for name in ["lat.example.com.", "cold.example.com."] {
        for qtype in [Rtype::A, Rtype::AAAA, Rtype::ANY] {
            for (edns, ecs) in [(false, false), (true, false), (true, true)] {
                queries.push(query(name, qtype, edns, ecs));
            }
        }
    }
    let client = "127.0.0.1".parse().unwrap();
    let mut responder = Responder::new(1232);
    for q in &queries {
        let _ = responder.respond(q, client, Transport::Udp, &table, &stats);
    }
    COUNTING.with(|c| c.set(true));
    let before = allocs();
    let mut answered = 0;
    for i in 0..1000 {
        let q = &queries[i % queries.len()];
        if responder
            .respond(q, client, Transport::Udp, &table, &stats)
            .is_some()
        {
            answered += 1;
        }
    }
    let after = allocs();
    COUNTING.with(|c| c.set(false));
    assert_eq!(answered, 1000);
    assert_eq!(
        after - before,
        0,
        "allocations during {answered} latency queries"
    );
    let reply = responder
        .respond(&queries[0], client, Transport::Udp, &table, &stats)
        .map(<[u8]>::to_vec)
        .unwrap();
    let mut got = crate::util::dnsclient::parse(&reply)
        .unwrap()
        .addr_strings();
    got.sort();
    assert_eq!(got, ["10.0.4.2", "10.0.4.3"]);
}

/// DNSSEC (SPEC §13): with the zone signed and DO=1 in every query, a
/// warm signature cache answers A/AAAA, SOA, NS, DNSKEY, compact denials
/// and NODATA without touching the heap; A/AAAA take the signed fast path
/// (fastpath_signed.rs), the rest the full path.
#[test]
fn signed_answers_with_a_warm_cache_do_not_allocate() {
    use opengslb::dns::dnssec::{Algorithm, KeyFile};
    use opengslb::dns::keystore::KeyRing;
    let stats = DnsStats::new();
    let kf = KeyFile::generate("example.com", Algorithm::EcdsaP256Sha256, 0).unwrap();
    let ring = KeyRing::from_key_files(&[("k".into(), kf)]).unwrap();
    let table = sample::table(&stats).with_dnssec(Some(std::sync::Arc::new(ring)));
    let signed = |name: &str, qtype: Rtype| {
        let mut b = MessageBuilder::new_vec();
        b.header_mut().set_id(7);
        let mut q = b.question();
        q.push((Name::<Vec<u8>>::from_str(name).unwrap(), qtype))
            .unwrap();
        let mut add = q.additional();
        add.opt(|o| {
            o.set_udp_payload_size(4096);
            o.set_dnssec_ok(true);
            Ok(())
        })
        .unwrap();
        add.finish()
    };
    let mut queries = Vec::new();
    for name in [
        "app.example.com.",
        "v6.example.com.",
        "nope.example.com.",
        "example.com.",
        // One address per answer out of two: an RRset per rotation.
        "w.example.com.",
        "fo.example.com.",
        "last.example.com.",
    ] {
        for qtype in [
            Rtype::A,
            Rtype::AAAA,
            Rtype::SOA,
            Rtype::NS,
            Rtype::DNSKEY,
            Rtype::TXT,
        ] {
            queries.push(signed(name, qtype));
        }
    }
    let mut responder = Responder::new(4096);
    let client = "127.0.0.1".parse().unwrap();
    // Round-robin rotates the answer order; the cache keys the canonical
    // (sorted) set, so one pass per query warms it.
    for q in &queries {
        let out = responder
            .respond(q, client, Transport::Udp, &table, &stats)
            .unwrap();
        assert_eq!(out[2] & 0x02, 0, "signed answers fit 4096 bytes");
    }
    // One answer carries an RRSIG (type 46) at all.
    let out = responder
        .respond(&queries[0], client, Transport::Udp, &table, &stats)
        .unwrap()
        .to_vec();
    assert!(out.windows(2).any(|w| w == [0, 46]));
    COUNTING.with(|c| c.set(true));
    let before = allocs();
    for i in 0..1000 {
        let _ = responder.respond(
            &queries[i % queries.len()],
            client,
            Transport::Udp,
            &table,
            &stats,
        );
    }
    let after = allocs();
    COUNTING.with(|c| c.set(false));
    assert_eq!(after - before, 0, "allocations during signed answers");
}
