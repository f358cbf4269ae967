//! Responder tests pinned to RFC clauses (EDNS on errors, ECS, ANY, NS
//! names, EDE, cookies, RRL). The shared table and query helpers live in
//! responder_tests.rs; each test names the clause it checks.

use super::tests::{query, table};
use super::*;
use domain::base::iana::OptionCode;
use domain::base::opt::UnknownOptData;
use domain::dep::octseq::OctetsBuilder;
use domain::base::{Message, MessageBuilder, Name};
use domain::rdata::AllRecordData;
use std::str::FromStr;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A query with an OPT carrying `opts` as raw (code, body) pairs.
pub(crate) fn query_opts(name: &str, qtype: Rtype, opts: &[(u16, &[u8])]) -> Vec<u8> {
    let mut b = MessageBuilder::new_vec();
    b.header_mut().set_id(0x4242);
    let mut q = b.question();
    q.push((Name::<Vec<u8>>::from_str(name).unwrap(), qtype))
        .unwrap();
    let mut add = q.additional();
    add.opt(|o| {
        o.set_udp_payload_size(1232);
        for (code, body) in opts {
            o.push_raw_option(OptionCode::from_int(*code), body.len() as u16, |t| {
                t.append_slice(body)
            })?;
        }
        Ok(())
    })
    .unwrap();
    add.finish()
}

fn ask(q: &[u8]) -> Message<Vec<u8>> {
    let stats = DnsStats::new();
    let t = table(&stats);
    let mut r = Responder::new(1232);
    let out = r
        .respond(q, ip("192.0.2.77"), Transport::Udp, &t, &stats)
        .expect("answered");
    Message::from_octets(out.to_vec()).unwrap()
}

/// Raw option bodies of the answer's OPT, by code.
fn options(m: &Message<Vec<u8>>, code: u16) -> Vec<Vec<u8>> {
    let opt = m.opt().expect("OPT in answer");
    opt.opt()
        .iter::<UnknownOptData<_>>()
        .map(|o| o.unwrap())
        .filter(|o| o.code().to_int() == code)
        .map(|o| o.data().to_vec())
        .collect()
}

fn answers(m: &Message<Vec<u8>>) -> Vec<String> {
    m.answer()
        .unwrap()
        .limit_to::<AllRecordData<_, _>>()
        .map(|r| r.unwrap().data().to_string())
        .collect()
}

fn ecs_body(family: u16, source: u8, addr: &[u8]) -> Vec<u8> {
    let mut v = family.to_be_bytes().to_vec();
    v.extend_from_slice(&[source, 0]);
    v.extend_from_slice(addr);
    v
}

// ------------------------------------------------- RFC 6891 on errors

#[test]
fn rfc6891_s7_formerr_for_malformed_option_carries_opt() {
    // An option whose length runs past the RDATA.
    let mut q = query_opts("app.example.com.", Rtype::A, &[(65001, &[1, 2, 3])]);
    let n = q.len();
    q[n - 4] = 9; // option length 3 -> 9 (RDLEN unchanged)
    let m = ask(&q);
    assert_eq!(m.header().rcode(), Rcode::FORMERR);
    assert_eq!(m.header().id(), 0x4242);
    assert!(m.opt().is_some(), "FORMERR to an OPT query must carry OPT");
    assert_eq!(m.opt_rcode(), OptRcode::FORMERR);
    assert_eq!(m.sole_question().unwrap().qname().to_string(), "app.example.com");
}

#[test]
fn rfc6891_s6_1_1_notimp_and_two_opts_carry_opt() {
    let mut notify = query("app.example.com.", Rtype::SOA, Some((1232, 0)));
    notify[2] = (notify[2] & 0x87) | (4 << 3);
    let m = ask(&notify);
    assert_eq!(m.header().rcode(), Rcode::NOTIMP);
    assert_eq!(m.opt().unwrap().udp_payload_size(), 1232);
    let mut two = query("app.example.com.", Rtype::A, Some((1232, 0)));
    let opt = two[two.len() - 11..].to_vec();
    two.extend_from_slice(&opt);
    two[11] = 2;
    let m = ask(&two);
    assert_eq!(m.header().rcode(), Rcode::FORMERR);
    assert_eq!(m.header_counts().arcount(), 1);
    assert!(m.opt().is_some());
    // No question at all, OPT without a cookie: FORMERR with OPT.
    let mut none = query("app.example.com.", Rtype::A, Some((1232, 0)));
    none.drain(12..12 + 21);
    none[5] = 0;
    let m = ask(&none);
    assert_eq!(m.header().rcode(), Rcode::FORMERR);
    assert!(m.opt().is_some());
    // Without OPT in the query, none in the answer.
    let mut plain = query("app.example.com.", Rtype::A, None);
    plain[2] = (plain[2] & 0x87) | (4 << 3);
    assert!(ask(&plain).opt().is_none());
}

#[test]
fn rfc7873_s5_4_cookie_probe_gets_opt() {
    let mut q = query_opts("app.example.com.", Rtype::A, &[(10, &[1, 2, 3, 4, 5, 6, 7, 8])]);
    q.drain(12..12 + 21);
    q[5] = 0;
    let m = ask(&q);
    assert_eq!(m.header().rcode(), Rcode::NOERROR);
    assert_eq!(m.header_counts().qdcount(), 0);
    assert_eq!(m.header_counts().ancount(), 0);
    assert!(m.opt().is_some());
}

// ------------------------------------------------------- RFC 7871 ECS

#[test]
fn rfc7871_s6_malformed_ecs_is_formerr_and_not_echoed() {
    for (what, body) in [
        ("bits beyond prefix", ecs_body(1, 23, &[198, 51, 101])),
        ("prefix too long", ecs_body(1, 33, &[1, 2, 3, 4, 5])),
        ("v6 prefix too long", ecs_body(2, 129, &[0; 17])),
        ("unknown family", ecs_body(7, 8, &[10])),
        ("address too long", ecs_body(1, 8, &[10, 0])),
        ("address too short", ecs_body(1, 24, &[10, 0])),
        ("no room for prefix", vec![0, 1, 24]),
    ] {
        let m = ask(&query_opts("app.example.com.", Rtype::A, &[(8, &body)]));
        assert_eq!(m.header().rcode(), Rcode::FORMERR, "{what}");
        assert!(options(&m, 8).is_empty(), "{what}: invalid ECS echoed");
        assert_eq!(m.header_counts().ancount(), 0, "{what}");
    }
    let ok = ecs_body(1, 22, &[198, 51, 100]);
    let m = ask(&query_opts("app.example.com.", Rtype::A, &[(8, &ok)]));
    assert_eq!(m.header().rcode(), Rcode::NOERROR);
    assert_eq!(options(&m, 8), vec![ecs_body(1, 22, &[198, 51, 100])]);
}

// ------------------------------------------------------- RFC 8482 ANY

#[test]
fn rfc8482_s4_any_returns_the_routed_addresses_never_empty_noerror() {
    let m = ask(&query("app.example.com.", Rtype::ANY, None));
    assert_eq!(m.header().rcode(), Rcode::NOERROR);
    assert!(m.header().aa());
    // Round-robin answers every address of each family.
    assert_eq!(answers(&m), vec!["10.0.0.1", "10.0.0.2", "2001:db8::2"]);
    let m = ask(&query("fo.example.com.", Rtype::ANY, None));
    assert_eq!(answers(&m), vec!["10.0.0.5"]);
    let m = ask(&query("v6.example.com.", Rtype::ANY, None));
    assert_eq!(answers(&m), vec!["2001:db8::1"]);
    // The apex has a domain here: its address.
    let m = ask(&query("example.com.", Rtype::ANY, None));
    assert_eq!(answers(&m), vec!["10.9.9.9"]);
    // Nothing healthy: SERVFAIL, as for A.
    let m = ask(&query("down.example.com.", Rtype::ANY, None));
    assert_eq!(m.header().rcode(), Rcode::SERVFAIL);
    // No data at an empty non-terminal stays NODATA; unknown names NXDOMAIN.
    let m = ask(&query("nope.example.com.", Rtype::ANY, None));
    assert_eq!(m.header().rcode(), Rcode::NXDOMAIN);
}

#[test]
fn rfc8482_s4_any_at_a_bare_apex_returns_its_soa() {
    let stats = DnsStats::new();
    let spec = crate::dns::table::TableSpec {
        zones: vec![crate::dns::table::ZoneSpec {
            apex: "zone.test".into(),
            soa: crate::config::SoaConfig::default(),
            nameservers: vec![],
        }],
        ..Default::default()
    };
    let t = DnsTable::build(&spec, &stats);
    let mut r = Responder::new(1232);
    let q = query("zone.test.", Rtype::ANY, None);
    let out = r
        .respond(&q, ip("192.0.2.1"), Transport::Udp, &t, &stats)
        .unwrap();
    let m = Message::from_octets(out.to_vec()).unwrap();
    assert_eq!(m.header().rcode(), Rcode::NOERROR);
    let a = answers(&m);
    assert_eq!(a.len(), 1);
    assert!(a[0].starts_with("ns1.zone.test. hostmaster.zone.test."), "{a:?}");
}

// ------------------------------------------------------- RFC 8914 EDE

fn ede(m: &Message<Vec<u8>>) -> Option<(u16, String)> {
    let all = options(m, 15);
    let body = all.first()?;
    let code = u16::from_be_bytes([body[0], body[1]]);
    Some((code, String::from_utf8(body[2..].to_vec()).unwrap()))
}

#[test]
fn rfc8914_ede_on_servfail_and_refused_with_opt_only() {
    let m = ask(&query("down.example.com.", Rtype::A, Some((1232, 0))));
    assert_eq!(m.header().rcode(), Rcode::SERVFAIL);
    let (code, text) = ede(&m).expect("EDE on SERVFAIL");
    assert_eq!(code, 0, "Other, with text");
    assert!(text.contains("no healthy backend"), "{text}");
    let m = ask(&query("example.org.", Rtype::A, Some((1232, 0))));
    assert_eq!(m.header().rcode(), Rcode::REFUSED);
    assert_eq!(ede(&m).unwrap().0, 20, "Not Authoritative");
    let m = ask(&query("example.com.", Rtype::AXFR, Some((1232, 0))));
    assert_eq!(m.header().rcode(), Rcode::REFUSED);
    assert_eq!(ede(&m).unwrap().0, 21, "Not Supported");
    // Success carries none; a query without OPT gets no OPT at all.
    let m = ask(&query("app.example.com.", Rtype::A, Some((1232, 0))));
    assert!(ede(&m).is_none());
    let m = ask(&query("down.example.com.", Rtype::A, None));
    assert!(m.opt().is_none());
}

// --------------------------------------- apex NS names and their glue

#[test]
fn rfc1034_ns_names_in_zone_resolve_and_ns_answers_carry_glue() {
    // ns1.example.com is in the zone and gets this node's addresses;
    // ns2.example.net is someone else's.
    let m = ask(&query("ns1.example.com.", Rtype::A, None));
    assert_eq!(m.header().rcode(), Rcode::NOERROR);
    assert!(m.header().aa());
    assert_eq!(answers(&m), vec!["192.0.2.53"]);
    let m = ask(&query("NS1.example.com.", Rtype::AAAA, None));
    assert_eq!(answers(&m), vec!["2001:db8::53"]);
    let m = ask(&query("ns1.example.com.", Rtype::TXT, None));
    assert_eq!(m.header().rcode(), Rcode::NOERROR);
    assert_eq!(m.header_counts().nscount(), 1, "NODATA with SOA");
    let m = ask(&query("ns2.example.com.", Rtype::A, None));
    assert_eq!(m.header().rcode(), Rcode::NXDOMAIN);
    let m = ask(&query("example.com.", Rtype::NS, Some((1232, 0))));
    assert_eq!(answers(&m), vec!["ns1.example.com.", "ns2.example.net."]);
    let glue: Vec<String> = m
        .additional()
        .unwrap()
        .limit_to::<AllRecordData<_, _>>()
        .map(|r| r.unwrap())
        .filter(|r| r.rtype() != Rtype::OPT)
        .map(|r| format!("{} {}", r.owner(), r.data()))
        .collect();
    assert_eq!(
        glue,
        vec!["ns1.example.com 192.0.2.53", "ns1.example.com 2001:db8::53"]
    );
    assert!(m.opt().is_some(), "OPT after the glue");
}

#[test]
fn default_ns_of_a_zone_resolves_and_configured_addresses_win() {
    use crate::dns::nameservers::{HostSpec, NameServerSpec};
    use crate::dns::table::{DomainSpec, TableSpec, ZoneSpec};
    let stats = DnsStats::new();
    let spec = TableSpec {
        zones: vec![
            ZoneSpec {
                apex: "a.test".into(),
                soa: crate::config::SoaConfig::default(),
                nameservers: vec![],
            },
            ZoneSpec {
                apex: "b.test".into(),
                soa: crate::config::SoaConfig::default(),
                nameservers: vec!["dns.b.test".into(), "x.dns.b.test".into()],
            },
        ],
        domains: vec![DomainSpec {
            name: "lonely.test".into(),
            ttl: 5,
            algorithm: crate::config::RoutingAlgorithm::Failover,
            max_records: None,
            targets: vec![],
            last_healthy: None,
        }],
        serial: 1,
        nameservers: NameServerSpec {
            hosts: vec![HostSpec {
                name: "x.dns.b.test".into(),
                addrs: vec![ip("198.51.100.7")],
            }],
            self_addrs: vec![ip("192.0.2.1")],
        },
    };
    let t = DnsTable::build(&spec, &stats);
    let mut r = Responder::new(1232);
    let mut get = |name: &str, qtype: Rtype| {
        let q = query(name, qtype, None);
        let out = r
            .respond(&q, ip("192.0.2.9"), Transport::Udp, &t, &stats)
            .unwrap();
        Message::from_octets(out.to_vec()).unwrap()
    };
    // Today's NXDOMAIN: the default ns1.<zone> now resolves.
    assert_eq!(answers(&get("ns1.a.test.", Rtype::A)), vec!["192.0.2.1"]);
    // A domain under no zone is its own apex, with its own ns1.
    assert_eq!(answers(&get("ns1.lonely.test.", Rtype::A)), vec!["192.0.2.1"]);
    assert_eq!(answers(&get("dns.b.test.", Rtype::A)), vec!["192.0.2.1"]);
    assert_eq!(answers(&get("x.dns.b.test.", Rtype::A)), vec!["198.51.100.7"]);
    // The first configured NS is the SOA MNAME.
    let soa = answers(&get("b.test.", Rtype::SOA));
    assert!(soa[0].starts_with("dns.b.test. "), "{soa:?}");
    let m = get("b.test.", Rtype::NS);
    assert_eq!(m.header_counts().arcount(), 2);
}
