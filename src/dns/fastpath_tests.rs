//! The fast path must answer byte for byte, and count, as the full path.

use super::*;
use crate::config::{RoutingAlgorithm, SoaConfig};
use crate::dns::responder::{Responder, Transport};
use crate::dns::stats::{DnsStats, QtypeLabel, RcodeLabel};
use crate::dns::table::{DnsTable, DomainSpec, TableSpec, Target, ZoneSpec};
use domain::base::iana::Rtype;
use domain::base::opt::ClientSubnet;
use domain::base::{MessageBuilder, Name};
use std::str::FromStr;

fn dom(name: &str, alg: RoutingAlgorithm, addrs: &[&str]) -> DomainSpec {
    DomainSpec {
        name: name.into(),
        ttl: 42,
        algorithm: alg,
        max_records: None,
        targets: addrs
            .iter()
            .enumerate()
            .map(|(i, a)| Target {
                ip: a.parse().unwrap(),
                weight: 1 + i as u32,
            })
            .collect(),
        last_healthy: None,
        by_region: Vec::new(),
        round_trips: Vec::new(),
    }
}

fn spec() -> TableSpec {
    let mut last = dom("last.example.com", RoutingAlgorithm::Failover, &[]);
    last.last_healthy = Some(vec![Target {
        ip: "192.0.2.9".parse().unwrap(),
        weight: 1,
    }]);
    let mut two = dom(
        "two.example.com",
        RoutingAlgorithm::RoundRobin,
        &["10.0.1.1", "10.0.1.2", "10.0.1.3"],
    );
    two.max_records = Some(2);
    let many: Vec<String> = (1..=100).map(|i| format!("10.1.0.{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let zone = |apex: &str, mname: Option<&str>, rname: Option<&str>| ZoneSpec {
        apex: apex.into(),
        soa: SoaConfig {
            ttl: 300,
            minimum: 20,
            mname: mname.map(String::from),
            rname: rname.map(String::from),
            ..SoaConfig::default()
        },
        nameservers: vec![],
    };
    TableSpec {
        zones: vec![
            zone("example.com", None, None),
            // rname under mname: compresses into mname (full path only).
            zone(
                "other.test",
                Some("ns.other.test"),
                Some("admin.ns.other.test"),
            ),
            // SOA names outside the zone (full path only).
            zone("ext.test", Some("ns1.example.net"), None),
            // mname at the apex itself.
            zone("apex.test", Some("apex.test"), Some("dns.apex.test")),
        ],
        domains: vec![
            dom(
                "app.example.com",
                RoutingAlgorithm::RoundRobin,
                &["10.0.0.1", "10.0.0.2", "2001:db8::2", "10.0.0.3"],
            ),
            dom(
                "fo.example.com",
                RoutingAlgorithm::Failover,
                &["10.0.0.5", "10.0.0.6"],
            ),
            dom(
                "w.example.com",
                RoutingAlgorithm::Weighted,
                &["10.0.0.7", "10.0.0.8", "2001:db8::7", "2001:db8::8"],
            ),
            dom("down.example.com", RoutingAlgorithm::RoundRobin, &[]),
            dom("big.example.com", RoutingAlgorithm::RoundRobin, &many),
            dom(
                "a.b.c.example.com",
                RoutingAlgorithm::RoundRobin,
                &["10.0.2.1"],
            ),
            dom("lonely.test", RoutingAlgorithm::RoundRobin, &["10.0.3.1"]),
            dom(
                "www.other.test",
                RoutingAlgorithm::RoundRobin,
                &["10.0.4.1"],
            ),
            dom("www.ext.test", RoutingAlgorithm::RoundRobin, &["10.0.5.1"]),
            dom("apex.test", RoutingAlgorithm::RoundRobin, &["2001:db8::9"]),
            last,
            two,
        ],
        serial: 7,
        ..Default::default()
    }
}

#[derive(Clone, Copy)]
enum Edns {
    None,
    Plain(u16, bool),
    Version1,
    Ecs,
}

fn query(name: &str, qtype: Rtype, edns: Edns, id: u16, rd: bool, cd: bool) -> Vec<u8> {
    let mut b = MessageBuilder::new_vec();
    b.header_mut().set_id(id);
    b.header_mut().set_rd(rd);
    b.header_mut().set_cd(cd);
    let mut q = b.question();
    q.push((Name::<Vec<u8>>::from_str(name).unwrap(), qtype))
        .unwrap();
    let mut add = q.additional();
    match edns {
        Edns::None => {}
        Edns::Plain(size, dnssec_ok) => add
            .opt(|o| {
                o.set_udp_payload_size(size);
                o.set_dnssec_ok(dnssec_ok);
                Ok(())
            })
            .unwrap(),
        Edns::Version1 => add
            .opt(|o| {
                o.set_version(1);
                Ok(())
            })
            .unwrap(),
        Edns::Ecs => add
            .opt(|o| o.push(&ClientSubnet::new(24, 0, "198.51.100.0".parse().unwrap())))
            .unwrap(),
    }
    add.finish()
}

const NAMES: &[&str] = &[
    "app.example.com.",
    "APP.Example.COM.",
    "fo.example.com.",
    "w.example.com.",
    "down.example.com.",
    "big.example.com.",
    "a.b.c.example.com.",
    "c.example.com.",
    "B.C.example.com.",
    "nope.example.com.",
    "x.y.nope.example.com.",
    "ns1.example.com.",
    "x.NS1.example.com.",
    "hostmaster.example.com.",
    "example.com.",
    "lonely.test.",
    "x.lonely.test.",
    "www.other.test.",
    "nope.other.test.",
    "ns.other.test.",
    "other.test.",
    "www.ext.test.",
    "nope.ext.test.",
    "apex.test.",
    "nope.apex.test.",
    "dns.apex.test.",
    "last.example.com.",
    "two.example.com.",
    "nothing.org.",
];

fn all_queries() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut id = 1u16;
    for name in NAMES {
        for qtype in [Rtype::A, Rtype::AAAA, Rtype::MX, Rtype::SOA] {
            for edns in [
                Edns::None,
                Edns::Plain(1232, false),
                Edns::Plain(4096, true),
                Edns::Plain(100, false),
                Edns::Version1,
                Edns::Ecs,
            ] {
                id = id.wrapping_add(7919);
                out.push(query(
                    name,
                    qtype,
                    edns,
                    id,
                    id.is_multiple_of(2),
                    id.is_multiple_of(3),
                ));
            }
        }
    }
    out
}

fn counters(stats: &DnsStats) -> Vec<u64> {
    let q = [
        QtypeLabel::A,
        QtypeLabel::Aaaa,
        QtypeLabel::Soa,
        QtypeLabel::Ns,
        QtypeLabel::Any,
        QtypeLabel::Other,
    ];
    let r = [
        RcodeLabel::NoError,
        RcodeLabel::FormErr,
        RcodeLabel::ServFail,
        RcodeLabel::NxDomain,
        RcodeLabel::NotImp,
        RcodeLabel::Refused,
        RcodeLabel::BadVers,
    ];
    let mut v: Vec<u64> = q
        .iter()
        .flat_map(|&a| r.iter().map(move |&b| (a, b)))
        .map(|(a, b)| stats.queries(a, b))
        .collect();
    v.push(stats.dropped());
    for name in NAMES {
        let d = stats.domain(name.trim_end_matches('.').to_ascii_lowercase().as_str());
        v.push(d.answers.load(Ordering::Relaxed));
        v.push(d.last_healthy.load(Ordering::Relaxed));
        v.push(d.servfail.load(Ordering::Relaxed));
    }
    v
}

#[test]
fn fast_and_full_paths_answer_and_count_alike() {
    let (fs, ss) = (DnsStats::new(), DnsStats::new());
    let fast = DnsTable::build(&spec(), &fs);
    let slow = DnsTable::build(&spec(), &ss).without_fast_path();
    let (mut rf, mut rs) = (Responder::new(1232), Responder::new(1232));
    let client = "127.0.0.1".parse().unwrap();
    let queries = all_queries();
    // Twice round, so rotations advance the same way on both.
    for round in 0..2 {
        for (i, q) in queries.iter().enumerate() {
            for transport in [Transport::Udp, Transport::Tcp] {
                let a = rf
                    .respond(q, client, transport, &fast, &fs)
                    .map(<[u8]>::to_vec);
                let b = rs
                    .respond(q, client, transport, &slow, &ss)
                    .map(<[u8]>::to_vec);
                assert_eq!(a, b, "round {round} query {i} {transport:?}: {q:02x?}");
            }
        }
    }
    assert_eq!(counters(&fs), counters(&ss));
}

#[test]
fn plain_queries_take_the_fast_path_and_the_rest_do_not() {
    let stats = DnsStats::new();
    let table = DnsTable::build(&spec(), &stats);
    let mut out = Vec::new();
    let client: IpAddr = "127.0.0.1".parse().unwrap();
    let fast = |q: &[u8], out: &mut Vec<u8>| {
        answer(q, client, true, 1232, table.fast(), &stats, out, None)
    };
    let plain = Edns::None;
    let opt = Edns::Plain(1232, true);
    for (name, qtype, edns) in [
        ("app.example.com.", Rtype::A, plain),
        ("APP.example.com.", Rtype::AAAA, opt),
        ("apex.test.", Rtype::A, plain),        // NODATA: AAAA only
        ("nope.example.com.", Rtype::A, opt),   // NXDOMAIN
        ("c.example.com.", Rtype::AAAA, plain), // empty non-terminal
        ("example.com.", Rtype::A, plain),      // apex without addresses
        ("x.lonely.test.", Rtype::A, plain),
        ("nope.apex.test.", Rtype::AAAA, plain),
        ("app.example.com.", Rtype::A, Edns::Ecs), // echoed, scope 0
        ("nope.example.com.", Rtype::AAAA, Edns::Ecs),
    ] {
        assert!(
            fast(&query(name, qtype, edns, 1, true, false), &mut out),
            "{name}"
        );
    }
    for (name, qtype, edns) in [
        ("app.example.com.", Rtype::MX, plain),
        ("app.example.com.", Rtype::A, Edns::Version1),
        ("big.example.com.", Rtype::A, plain), // would truncate
        ("down.example.com.", Rtype::A, plain), // SERVFAIL
        ("ns1.example.com.", Rtype::A, plain), // SOA mname compresses to it
        ("x.hostmaster.example.com.", Rtype::A, plain),
        ("nope.other.test.", Rtype::A, plain),
        ("nope.ext.test.", Rtype::A, plain),
        ("nothing.org.", Rtype::A, plain),
        ("example.com.", Rtype::SOA, plain),
    ] {
        assert!(
            !fast(&query(name, qtype, edns, 1, true, false), &mut out),
            "{name}"
        );
    }
    // Malformed: trailing byte, two questions, a response.
    let mut q = query("app.example.com.", Rtype::A, plain, 1, true, false);
    q.push(0);
    assert!(!fast(&q, &mut out));
    let mut q = query("app.example.com.", Rtype::A, plain, 1, true, false);
    q[5] = 2;
    assert!(!fast(&q, &mut out));
    let mut q = query("app.example.com.", Rtype::A, plain, 1, true, false);
    q[2] |= 0x80;
    assert!(!fast(&q, &mut out));
}

#[test]
fn suffix_hashes_match_the_hash_of_each_suffix_alone() {
    let wire = b"\x03www\x07Example\x03com\x00".to_ascii_lowercase();
    let mut starts = [0usize; MAX_LABELS];
    let n = label_starts(&wire, &mut starts).unwrap();
    assert_eq!(&starts[..n], &[0, 4, 12]);
    let mut all = [0u64; MAX_LABELS];
    suffix_hashes(&wire, &starts[..n], &mut all);
    for i in 0..n {
        let suffix = &wire[starts[i]..];
        let mut s = [0usize; MAX_LABELS];
        let m = label_starts(suffix, &mut s).unwrap();
        let mut alone = [0u64; MAX_LABELS];
        suffix_hashes(suffix, &s[..m], &mut alone);
        assert_eq!(all[i], alone[0]);
    }
}

// Also loaded by geo's tests; each test module keeps its own copy.
#[allow(clippy::duplicate_mod)]
#[path = "../../tests/util/mmdb.rs"]
mod mmdb;

/// A geolocation zone: mappings (v4 nested, v6), a database with a
/// country and a continent, three regions, ECS on or off.
fn geo_spec(ecs_enabled: bool, db_dir: &std::path::Path) -> TableSpec {
    use crate::dns::regional::RegionTargets;
    use crate::geo::{GeoResolver, open_database};
    let yaml = format!(
        "mode: overwatch\noverwatch:\n  geolocation:\n    default_region: eu\n    ecs_enabled: {ecs_enabled}\n    custom_mappings:\n      - {{cidr: 198.51.100.0/24, region: us}}\n      - {{cidr: 198.51.0.0/16, region: ap}}\n      - {{cidr: \"2001:db8:a::/48\", region: ap}}\nregions:\n  - {{name: eu, countries: [DE], servers: [{{address: 192.0.2.1}}]}}\n  - {{name: us, countries: [US], servers: [{{address: 192.0.2.2}}]}}\n  - {{name: ap, continents: [AS], servers: [{{address: 192.0.2.3}}]}}\ndomains:\n  - {{name: geo.example.com, routing_algorithm: geo, regions: [eu, us, ap]}}\n"
    );
    let cfg = crate::config::load_str(&yaml, std::path::Path::new("t.yaml"), None)
        .unwrap_or_else(|e| panic!("{e}"))
        .config;
    let mut w = mmdb::MmdbWriter::new();
    w.insert("192.0.2.0/24", "US", "NA");
    w.insert("203.0.113.0/25", "JP", "AS");
    w.insert("2001:db8:5::/48", "DE", "EU");
    let path = db_dir.join("geo.mmdb");
    std::fs::write(&path, w.bytes()).unwrap();
    let db = Arc::new(open_database(path.to_str().unwrap()).unwrap());
    let region = |name: &str, addrs: &[&str]| RegionTargets {
        region: name.into(),
        targets: addrs
            .iter()
            .map(|a| Target {
                ip: a.parse().unwrap(),
                weight: 1,
            })
            .collect(),
    };
    let mut spec = spec();
    let layouts = [
        (
            "geo.example.com",
            None,
            vec![
                region("eu", &["10.0.1.1", "10.0.1.2", "2001:db8:1::1"]),
                region("us", &["10.0.2.1"]),
                region("ap", &["10.0.3.1", "10.0.3.2", "10.0.3.3"]),
            ],
        ),
        // us has no IPv4 (next region answers A), eu nothing at all.
        (
            "geo2.example.com",
            Some(2),
            vec![
                region("eu", &[]),
                region("us", &["2001:db8:2::1", "2001:db8:2::2", "2001:db8:2::3"]),
                region("ap", &["10.0.3.1", "10.0.3.2", "10.0.3.3"]),
            ],
        ),
        // Too many for 512 bytes in one region: the full path truncates.
        (
            "geobig.example.com",
            None,
            vec![
                region("eu", &["10.0.1.1"]),
                region(
                    "us",
                    &(1..=60)
                        .map(|i| format!("10.2.0.{i}"))
                        .collect::<Vec<_>>()
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>(),
                ),
            ],
        ),
    ];
    for (name, max, regions) in layouts {
        let mut d = dom(name, RoutingAlgorithm::Geolocation, &[]);
        d.max_records = max;
        d.targets = regions.iter().flat_map(|r| r.targets.clone()).collect();
        d.by_region = regions;
        spec.domains.push(d);
    }
    // learned_latency answers on the full path on both tables.
    let mut d = dom("learned.example.com", RoutingAlgorithm::LearnedLatency, &[]);
    d.by_region = vec![region("us", &["10.0.2.1"])];
    d.targets = d.by_region[0].targets.clone();
    spec.domains.push(d);
    spec.geo = GeoResolver::new(&cfg, Some(db), &[]).map(Arc::new);
    spec
}

/// A query with one raw EDNS option list (`None`: no OPT).
fn query_opts(name: &str, qtype: Rtype, options: Option<&[u8]>, id: u16) -> Vec<u8> {
    let mut q = query(name, qtype, Edns::None, id, true, false);
    if let Some(opts) = options {
        q[11] = 1;
        q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
        q.extend_from_slice(&(opts.len() as u16).to_be_bytes());
        q.extend_from_slice(opts);
    }
    q
}

fn ecs_option(family: u16, source: u8, addr: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 8];
    v.extend_from_slice(&(4 + addr.len() as u16).to_be_bytes());
    v.extend_from_slice(&family.to_be_bytes());
    v.extend_from_slice(&[source, 0]);
    v.extend_from_slice(addr);
    v
}

/// Option lists to compare (cookies not: each table's secret differs).
fn geo_option_lists() -> Vec<Option<Vec<u8>>> {
    let mut unknown_and_ecs = vec![0, 99, 0, 1, 5];
    unknown_and_ecs.extend_from_slice(&ecs_option(1, 24, &[192, 0, 2]));
    vec![
        None,
        Some(vec![]),
        Some(ecs_option(1, 24, &[198, 51, 100])), // mapping /24
        Some(ecs_option(1, 20, &[198, 51, 96])),  // mapping /16
        Some(ecs_option(1, 32, &[192, 0, 2, 77])), // database /24
        Some(ecs_option(1, 24, &[203, 0, 113])),  // database /25 (continent)
        Some(ecs_option(1, 24, &[8, 8, 8])),      // default
        Some(ecs_option(1, 0, &[])),              // opt out
        Some(ecs_option(0, 0, &[])),              // dig +subnet=0
        Some(ecs_option(2, 56, &[0x20, 1, 0xd, 0xb8, 0, 0xa, 0])),
        Some(ecs_option(2, 48, &[0x20, 1, 0xd, 0xb8, 0, 5])),
        Some(ecs_option(1, 23, &[198, 51, 101])), // malformed: FORMERR
        Some(unknown_and_ecs),
    ]
}

#[test]
fn geolocation_fast_and_full_paths_answer_and_count_alike() {
    let dir = std::env::temp_dir().join(format!("opengslb-fastgeo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for ecs_enabled in [true, false] {
        let spec = geo_spec(ecs_enabled, &dir);
        let (fs, ss) = (DnsStats::new(), DnsStats::new());
        let fast = DnsTable::build(&spec, &fs);
        let slow = DnsTable::build(&spec, &ss).without_fast_path();
        let (mut rf, mut rs) = (Responder::new(1232), Responder::new(1232));
        let clients: Vec<IpAddr> = [
            "127.0.0.1",
            "198.51.100.9",
            "192.0.2.200",
            "203.0.113.7",
            "203.0.113.200",
            "2001:db8:5::1",
            "::ffff:198.51.7.7",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let mut id = 1u16;
        for round in 0..2 {
            for name in [
                "geo.example.com.",
                "GEO.example.com.",
                "geo2.example.com.",
                "geobig.example.com.",
                "learned.example.com.",
                "nope.example.com.",
            ] {
                for qtype in [Rtype::A, Rtype::AAAA, Rtype::MX] {
                    for opts in geo_option_lists() {
                        for &client in &clients {
                            id = id.wrapping_add(7919);
                            let q = query_opts(name, qtype, opts.as_deref(), id);
                            for transport in [Transport::Udp, Transport::Tcp] {
                                let a = rf
                                    .respond(&q, client, transport, &fast, &fs)
                                    .map(<[u8]>::to_vec);
                                let b = rs
                                    .respond(&q, client, transport, &slow, &ss)
                                    .map(<[u8]>::to_vec);
                                assert_eq!(
                                    a, b,
                                    "ecs {ecs_enabled} round {round} {name} {qtype} {opts:?} from {client} {transport:?}"
                                );
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(counters(&fs), counters(&ss));
        for name in ["geo.example.com", "geo2.example.com", "geobig.example.com"] {
            let routed = |s: &DnsStats| -> Vec<u64> {
                let d = s.domain(name);
                d.routed.iter().map(|c| c.load(Ordering::Relaxed)).collect()
            };
            assert_eq!(routed(&fs), routed(&ss), "{name}");
            assert!(routed(&fs).iter().sum::<u64>() > 0, "{name}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn geolocation_queries_with_and_without_ecs_take_the_fast_path() {
    let dir = std::env::temp_dir().join(format!("opengslb-fastgeo2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stats = DnsStats::new();
    let table = DnsTable::build(&geo_spec(true, &dir), &stats);
    let mut out = Vec::new();
    let client: IpAddr = "127.0.0.1".parse().unwrap();
    let fast = |q: &[u8], out: &mut Vec<u8>| {
        answer(q, client, true, 1232, table.fast(), &stats, out, None)
    };
    for opts in [
        None,
        Some(vec![]),
        Some(ecs_option(1, 24, &[198, 51, 100])),
        Some(ecs_option(1, 0, &[])),
        Some(ecs_option(2, 56, &[0x20, 1, 0xd, 0xb8, 0, 0xa, 0])),
    ] {
        let q = query_opts("geo.example.com.", Rtype::A, opts.as_deref(), 3);
        assert!(fast(&q, &mut out), "{opts:?}");
    }
    // The mapping's /24 decides: us, scope 24, echoed after the address.
    let q = query_opts(
        "geo.example.com.",
        Rtype::A,
        Some(&ecs_option(1, 24, &[198, 51, 100])),
        3,
    );
    assert!(fast(&q, &mut out));
    assert_eq!(
        &out[out.len() - 11..],
        &[0, 8, 0, 7, 0, 1, 24, 24, 198, 51, 100]
    );
    assert!(out.windows(4).any(|w| w == [10, 0, 2, 1]));
    // Learned latency, cookies and malformed ECS take the full path.
    let learned = query_opts("learned.example.com.", Rtype::A, None, 3);
    assert!(!fast(&learned, &mut out));
    let mut with_cookie = ecs_option(1, 24, &[198, 51, 100]);
    with_cookie.extend_from_slice(&[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
    for opts in [with_cookie, ecs_option(1, 23, &[198, 51, 101])] {
        let q = query_opts("geo.example.com.", Rtype::A, Some(&opts), 3);
        assert!(!fast(&q, &mut out));
    }
    std::fs::remove_dir_all(&dir).ok();
}
