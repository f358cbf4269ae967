//! The signed fast path must answer byte for byte, and count, as the full
//! path signs (Ed25519 signatures are deterministic, so both compare).

use super::*;
use crate::clock::Now;
use crate::config::{RoutingAlgorithm, SoaConfig};
use crate::dns::dnssec::{Algorithm, KeyFile};
use crate::dns::keystore::KeyRing;
use crate::dns::responder::{Responder, Transport};
use crate::dns::table::{DomainSpec, TableSpec, Target, ZoneSpec};
use domain::base::iana::Rtype;
use domain::base::{MessageBuilder, Name};
use std::str::FromStr;
use std::sync::Arc;

fn dom(name: &str, max_records: Option<usize>, addrs: &[&str]) -> DomainSpec {
    DomainSpec {
        name: name.into(),
        ttl: 42,
        algorithm: RoutingAlgorithm::RoundRobin,
        max_records,
        targets: addrs
            .iter()
            .map(|a| Target {
                ip: a.parse().unwrap(),
                weight: 1,
            })
            .collect(),
        last_healthy: None,
        by_region: Vec::new(),
        round_trips: Vec::new(),
    }
}

fn spec(app: &[&str]) -> TableSpec {
    let zone = |apex: &str| ZoneSpec {
        apex: apex.into(),
        soa: SoaConfig::default(),
        nameservers: vec![],
    };
    let many: Vec<String> = (1..=40).map(|i| format!("10.1.0.{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    TableSpec {
        zones: vec![zone("example.com"), zone("plain.test")],
        domains: vec![
            dom("app.example.com", None, app),
            dom(
                "two.example.com",
                Some(2),
                &["10.0.1.1", "10.0.1.2", "10.0.1.3"],
            ),
            dom("v6.example.com", None, &["2001:db8::1", "2001:db8::2"]),
            dom("big.example.com", None, &many),
            dom("www.plain.test", None, &["10.9.0.1"]),
            dom("a.b.example.com", None, &["10.0.2.1"]),
        ],
        serial: 7,
        ..TableSpec::default()
    }
}

fn ring() -> Option<Arc<KeyRing>> {
    let kf = KeyFile::generate("example.com", Algorithm::Ed25519, 0).unwrap();
    Some(Arc::new(
        KeyRing::from_key_files(&[("k".into(), kf)]).unwrap(),
    ))
}

fn query(name: &str, qtype: Rtype, size: u16, dnssec_ok: bool, id: u16) -> Vec<u8> {
    let mut b = MessageBuilder::new_vec();
    b.header_mut().set_id(id);
    b.header_mut().set_rd(id.is_multiple_of(2));
    b.header_mut().set_cd(id.is_multiple_of(3));
    let mut q = b.question();
    q.push((Name::<Vec<u8>>::from_str(name).unwrap(), qtype))
        .unwrap();
    let mut add = q.additional();
    add.opt(|o| {
        o.set_udp_payload_size(size);
        o.set_dnssec_ok(dnssec_ok);
        Ok(())
    })
    .unwrap();
    add.finish()
}

const NAMES: &[&str] = &[
    "app.example.com.",
    "APP.Example.COM.",
    "two.example.com.",
    "v6.example.com.",
    "big.example.com.",
    "nope.example.com.",
    "example.com.",
    "ns1.example.com.",
    "www.plain.test.",
    "b.example.com.",
    "x.b.example.com.",
    "hostmaster.example.com.",
];

fn queries() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut id = 1u16;
    for name in NAMES {
        for qtype in [Rtype::A, Rtype::AAAA] {
            for (size, dnssec_ok) in [(4096, true), (512, true), (1232, false)] {
                id = id.wrapping_add(7919);
                out.push(query(name, qtype, size, dnssec_ok, id));
            }
        }
    }
    out
}

/// Answers every query on `fast` and on the same table without fast
/// paths, at `wall_secs`, and asserts both alike.
fn compare(
    fast: &DnsTable,
    slow: &DnsTable,
    (rf, rs): (&mut Responder, &mut Responder),
    (fs, ss): (&DnsStats, &DnsStats),
    wall_secs: u64,
) {
    rf.set_now(Now::at(0, wall_secs * 1000));
    rs.set_now(Now::at(0, wall_secs * 1000));
    let client = "127.0.0.1".parse().unwrap();
    for round in 0..3 {
        for (i, q) in queries().iter().enumerate() {
            for transport in [Transport::Udp, Transport::Tcp] {
                let a = rf
                    .respond(q, client, transport, fast, fs)
                    .map(<[u8]>::to_vec);
                let b = rs
                    .respond(q, client, transport, slow, ss)
                    .map(<[u8]>::to_vec);
                assert_eq!(a, b, "round {round} query {i} {transport:?} at {wall_secs}");
            }
        }
    }
    for name in NAMES {
        let n = name.trim_end_matches('.').to_ascii_lowercase();
        let (a, b) = (fs.domain(&n), ss.domain(&n));
        assert_eq!(
            a.answers.load(Ordering::Relaxed),
            b.answers.load(Ordering::Relaxed),
            "{name}"
        );
    }
    for (qt, rc) in [
        (QtypeLabel::A, RcodeLabel::NoError),
        (QtypeLabel::Aaaa, RcodeLabel::NoError),
        (QtypeLabel::A, RcodeLabel::NxDomain),
    ] {
        assert_eq!(fs.queries(qt, rc), ss.queries(qt, rc));
    }
}

#[test]
fn signed_fast_answers_equal_the_full_path_across_windows_and_snapshots() {
    let (fs, ss) = (DnsStats::new(), DnsStats::new());
    let keys = ring();
    let build = |app: &[&str], stats: &DnsStats| {
        DnsTable::build(&spec(app), stats).with_dnssec(keys.clone())
    };
    let (mut rf, mut rs) = (Responder::new(1232), Responder::new(1232));
    let day = 1_800_000_000u64;
    let fast = build(&["10.0.0.1", "10.0.0.2"], &fs);
    let slow = build(&["10.0.0.1", "10.0.0.2"], &ss).without_fast_path();
    compare(&fast, &slow, (&mut rf, &mut rs), (&fs, &ss), day);
    // Later the same day: the same signatures; the next day: re-signed.
    compare(&fast, &slow, (&mut rf, &mut rs), (&fs, &ss), day + 3_600);
    compare(&fast, &slow, (&mut rf, &mut rs), (&fs, &ss), day + 86_400);
    // A new snapshot with another address set.
    let fast = build(&["10.0.0.3"], &fs);
    let slow = build(&["10.0.0.3"], &ss).without_fast_path();
    compare(&fast, &slow, (&mut rf, &mut rs), (&fs, &ss), day + 86_400);
    // The signed fast path did answer (hits counted on the fast side).
    assert!(
        fs.dnssec.cache_hits.load(Ordering::Relaxed)
            > ss.dnssec.cache_hits.load(Ordering::Relaxed) / 2
    );
}

#[test]
fn signed_fast_path_takes_only_what_it_signs() {
    let stats = DnsStats::new();
    let table = DnsTable::build(&spec(&["10.0.0.1"]), &stats).with_dnssec(ring());
    let mut state = None;
    let mut out = Vec::new();
    // The NODATA answer: SOA, its RRSIG, NSEC, its RRSIG, OPT.
    let q = query("v6.example.com.", Rtype::A, 1232, true, 1);
    assert!(answer_signed(
        &q,
        true,
        1232,
        &table,
        &stats,
        &mut out,
        &mut state,
        1_800_000_000
    ));
    assert_eq!(out[6..12], [0, 0, 0, 4, 0, 1]);
    let mut take = |name: &str, qtype: Rtype, size: u16, dnssec_ok: bool| {
        let q = query(name, qtype, size, dnssec_ok, 1);
        answer_signed(
            &q,
            true,
            1232,
            &table,
            &stats,
            &mut out,
            &mut state,
            1_800_000_000,
        )
    };
    assert!(take("app.example.com.", Rtype::A, 1232, true));
    assert!(take("two.example.com.", Rtype::A, 1232, true));
    assert!(take("v6.example.com.", Rtype::AAAA, 1232, true));
    assert!(!take("app.example.com.", Rtype::A, 1232, false)); // no DO
    assert!(take("v6.example.com.", Rtype::A, 1232, true)); // NODATA
    assert!(take("b.example.com.", Rtype::A, 1232, true)); // empty non-terminal
    assert!(take("example.com.", Rtype::AAAA, 1232, true)); // apex
    assert!(!take("nope.example.com.", Rtype::A, 1232, true)); // NXDOMAIN
    assert!(!take("ns1.example.com.", Rtype::A, 1232, true)); // SOA mname
    assert!(!take("www.plain.test.", Rtype::A, 1232, true)); // unsigned zone
    assert!(!take("big.example.com.", Rtype::A, 512, true)); // truncates
    assert!(!take("app.example.com.", Rtype::MX, 1232, true));
    // Unsigned tables never answer here.
    let plain = DnsTable::build(&spec(&["10.0.0.1"]), &stats);
    let q = query("app.example.com.", Rtype::A, 1232, true, 1);
    assert!(!answer_signed(
        &q, true, 1232, &plain, &stats, &mut out, &mut state, 0
    ));
}

#[test]
fn the_do_hint_reads_only_a_final_option_less_opt() {
    assert!(ends_in_do(&query(
        "app.example.com.",
        Rtype::A,
        1232,
        true,
        1
    )));
    assert!(!ends_in_do(&query(
        "app.example.com.",
        Rtype::A,
        1232,
        false,
        1
    )));
    assert!(!ends_in_do(&[0u8; 5]));
    let mut q = query("app.example.com.", Rtype::A, 1232, true, 1);
    q.push(0);
    assert!(!ends_in_do(&q));
}
