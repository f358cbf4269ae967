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
    let fast = |q: &[u8], out: &mut Vec<u8>| answer(q, true, 1232, table.fast(), &stats, out, None);
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
    ] {
        assert!(
            fast(&query(name, qtype, edns, 1, true, false), &mut out),
            "{name}"
        );
    }
    for (name, qtype, edns) in [
        ("app.example.com.", Rtype::MX, plain),
        ("app.example.com.", Rtype::A, Edns::Ecs),
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
