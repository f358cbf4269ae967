//! Responder tests pinned to RFC clauses (EDNS on errors, ECS, ANY, NS
//! names, EDE, cookies, RRL). The shared table and query helpers live in
//! responder_tests.rs; each test names the clause it checks.

use super::tests::{query, table};
use super::*;
use crate::dns::sample::spec;
use crate::dns::stats::RcodeLabel;
use domain::base::iana::OptionCode;
use domain::base::opt::UnknownOptData;
use domain::base::{Message, MessageBuilder, Name};
use domain::dep::octseq::OctetsBuilder;
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
    assert_eq!(
        m.sole_question().unwrap().qname().to_string(),
        "app.example.com"
    );
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
    let mut q = query_opts(
        "app.example.com.",
        Rtype::A,
        &[(10, &[1, 2, 3, 4, 5, 6, 7, 8])],
    );
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
    assert!(
        a[0].starts_with("ns1.zone.test. hostmaster.zone.test."),
        "{a:?}"
    );
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
            by_region: vec![],
            round_trips: Vec::new(),
        }],
        serial: 1,
        nameservers: NameServerSpec {
            hosts: vec![HostSpec {
                name: "x.dns.b.test".into(),
                addrs: vec![ip("198.51.100.7")],
            }],
            self_addrs: vec![ip("192.0.2.1")],
        },
        rate_limit: None,
        geo: None,
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
    assert_eq!(
        answers(&get("ns1.lonely.test.", Rtype::A)),
        vec!["192.0.2.1"]
    );
    assert_eq!(answers(&get("dns.b.test.", Rtype::A)), vec!["192.0.2.1"]);
    assert_eq!(
        answers(&get("x.dns.b.test.", Rtype::A)),
        vec!["198.51.100.7"]
    );
    // The first configured NS is the SOA MNAME.
    let soa = answers(&get("b.test.", Rtype::SOA));
    assert!(soa[0].starts_with("dns.b.test. "), "{soa:?}");
    let m = get("b.test.", Rtype::NS);
    assert_eq!(m.header_counts().arcount(), 2);
}

// ---------------------------------------------- RFC 7873 DNS cookies

/// One server: table, shared state and a responder at a fixed time.
struct Server {
    stats: DnsStats,
    table: DnsTable,
    r: Responder,
}

impl Server {
    fn new(rate_limit: Option<crate::dns::rrl::RateLimit>) -> Server {
        let stats = DnsStats::new();
        let mut s = spec();
        s.rate_limit = rate_limit;
        let table = DnsTable::build(&s, &stats);
        let mut r = Responder::new(1232);
        r.set_now(crate::clock::Now::at(10_000, 1_700_000_000_000));
        Server { stats, table, r }
    }

    fn ask(&mut self, q: &[u8], from: &str, transport: Transport) -> Option<Message<Vec<u8>>> {
        self.r
            .respond(q, ip(from), transport, &self.table, &self.stats)
            .map(|out| Message::from_octets(out.to_vec()).unwrap())
    }
}

const CLIENT: [u8; 8] = [0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8];

fn cookie_of(m: &Message<Vec<u8>>) -> Vec<u8> {
    options(m, 10).into_iter().next().expect("COOKIE in answer")
}

#[test]
fn rfc7873_s5_2_3_client_cookie_gets_server_cookie_then_it_is_echoed() {
    let mut s = Server::new(None);
    let m = s
        .ask(
            &query_opts("app.example.com.", Rtype::A, &[(10, &CLIENT)]),
            "192.0.2.5",
            Transport::Udp,
        )
        .unwrap();
    assert_eq!(m.header().rcode(), Rcode::NOERROR);
    assert_eq!(answers(&m).len(), 2, "answered normally");
    let full = cookie_of(&m);
    assert_eq!(full.len(), 24);
    assert_eq!(&full[..8], &CLIENT);
    assert_eq!(full[8], 1, "RFC 9018 version 1");
    // RFC 7873 §5.2.4: the cookie comes back and is accepted as is.
    let m = s
        .ask(
            &query_opts("app.example.com.", Rtype::A, &[(10, &full)]),
            "192.0.2.5",
            Transport::Udp,
        )
        .unwrap();
    assert_eq!(cookie_of(&m), full);
    // From another address the cookie is not ours: a fresh one.
    let m = s
        .ask(
            &query_opts("app.example.com.", Rtype::A, &[(10, &full)]),
            "192.0.2.6",
            Transport::Udp,
        )
        .unwrap();
    assert_eq!(m.header().rcode(), Rcode::NOERROR);
    assert_ne!(cookie_of(&m), full);
}

#[test]
fn rfc7873_s5_2_2_malformed_cookie_is_formerr_with_opt() {
    let mut s = Server::new(None);
    let m = s
        .ask(
            &query_opts("app.example.com.", Rtype::A, &[(10, &[1; 12])]),
            "192.0.2.5",
            Transport::Udp,
        )
        .unwrap();
    assert_eq!(m.header().rcode(), Rcode::FORMERR);
    assert!(options(&m, 10).is_empty(), "malformed cookie not echoed");
}

#[test]
fn rfc7873_s5_4_probe_gets_cookie_and_bad_server_cookie_gets_badcookie() {
    let mut s = Server::new(None);
    let probe = |c: &[u8]| {
        let mut q = query_opts("app.example.com.", Rtype::A, &[(10, c)]);
        q.drain(12..12 + 21);
        q[5] = 0;
        q
    };
    let m = s.ask(&probe(&CLIENT), "192.0.2.5", Transport::Udp).unwrap();
    assert_eq!(m.opt_rcode(), OptRcode::NOERROR);
    let good = cookie_of(&m);
    let m = s.ask(&probe(&good), "192.0.2.5", Transport::Udp).unwrap();
    assert_eq!(m.opt_rcode(), OptRcode::NOERROR);
    let mut bad = good.clone();
    bad[23] ^= 0xff;
    let m = s.ask(&probe(&bad), "192.0.2.5", Transport::Udp).unwrap();
    assert_eq!(m.opt_rcode(), OptRcode::BADCOOKIE);
    assert_eq!(cookie_of(&m), good, "the fresh cookie to retry with");
    assert_eq!(s.stats.queries(QtypeLabel::Other, RcodeLabel::BadCookie), 1);
}

// ------------------------------------------- response rate limiting

fn rl(rate: u32, slip: u32) -> Option<crate::dns::rrl::RateLimit> {
    crate::dns::rrl::RateLimit::from_config(&crate::config::RateLimitConfig {
        responses_per_second: rate,
        slip,
        whitelist: vec!["192.0.2.128/25".into()],
        ..Default::default()
    })
}

/// NSD/Knot RRL: a burst, then every 2nd limited answer slipped (TC=1,
/// no records), the others dropped; other prefixes and TCP unaffected.
#[test]
fn rrl_limits_per_prefix_with_slip_and_counts() {
    let mut s = Server::new(rl(2, 2));
    let q = query("app.example.com.", Rtype::A, Some((1232, 0)));
    let mut answered = 0;
    let mut slipped = 0;
    let mut dropped = 0;
    for _ in 0..10 {
        match s.ask(&q, "198.51.100.1", Transport::Udp) {
            None => dropped += 1,
            Some(m) if m.header().tc() => {
                assert_eq!(m.header_counts().ancount(), 0);
                assert_eq!(m.header_counts().qdcount(), 1, "question kept");
                assert!(m.opt().is_some());
                slipped += 1;
            }
            Some(m) => {
                assert_eq!(answers(&m).len(), 2);
                answered += 1;
            }
        }
    }
    assert_eq!((answered, slipped, dropped), (2, 4, 4));
    assert_eq!(s.stats.rrl.slipped(), 4);
    assert_eq!(s.stats.rrl.dropped(), 4);
    // Same /24 shares the bucket; another prefix, TCP and the whitelist do not.
    assert!(!matches!(s.ask(&q, "198.51.100.99", Transport::Udp), Some(m) if !m.header().tc()));
    for from in [
        "198.51.101.1",
        "198.51.101.1",
        "192.0.2.200",
        "192.0.2.200",
        "192.0.2.200",
    ] {
        let m = s.ask(&q, from, Transport::Udp).expect(from);
        assert!(!m.header().tc(), "{from}");
    }
    for _ in 0..5 {
        let m = s.ask(&q, "198.51.100.1", Transport::Tcp).unwrap();
        assert_eq!(answers(&m).len(), 2);
    }
    let mut w = crate::metrics::TextWriter::new();
    s.stats.write_metrics(&mut w);
    let text = w.finish();
    assert!(
        text.contains("opengslb_dns_rate_limited_total{action=\"dropped\"} "),
        "{text}"
    );
}

/// RRL keys NXDOMAIN by the zone apex, also for the plain queries the
/// fast path answers (fastpath.rs): random names under one zone share one
/// bucket, as in NSD and Knot.
#[test]
fn rrl_random_nxdomain_names_share_the_apex_bucket() {
    let mut s = Server::new(rl(2, 0));
    let answered = (0..6)
        .filter(|i| {
            let q = query(&format!("r{i}.example.com."), Rtype::A, None);
            s.ask(&q, "198.51.100.1", Transport::Udp).is_some()
        })
        .count();
    assert_eq!(answered, 2);
    assert_eq!(s.stats.rrl.dropped(), 4);
}

/// RFC 7873 §5.2.3 with RRL: a limited cookie client gets BADCOOKIE and a
/// cookie instead of TC=1; with a valid cookie it is never limited.
#[test]
fn rrl_badcookie_for_cookie_clients_and_valid_cookies_exempt() {
    let mut s = Server::new(rl(1, 1));
    let first = query_opts("app.example.com.", Rtype::A, &[(10, &CLIENT)]);
    let m = s.ask(&first, "203.0.113.5", Transport::Udp).unwrap();
    assert_eq!(answers(&m).len(), 2);
    let full = cookie_of(&m);
    let m = s.ask(&first, "203.0.113.5", Transport::Udp).unwrap();
    assert_eq!(m.opt_rcode(), OptRcode::BADCOOKIE);
    assert_eq!(m.header_counts().ancount(), 0);
    assert_eq!(cookie_of(&m).len(), 24);
    let proven = query_opts("app.example.com.", Rtype::A, &[(10, &full)]);
    for _ in 0..20 {
        let m = s.ask(&proven, "203.0.113.5", Transport::Udp).unwrap();
        assert_eq!(answers(&m).len(), 2);
    }
    // Off: never limited.
    let mut off = Server::new(None);
    for _ in 0..50 {
        assert!(off.ask(&first, "203.0.113.5", Transport::Udp).is_some());
    }
}

/// Nothing from the network may panic: random mutations of a query with
/// ECS and a full cookie, against a table with rate limiting on.
#[test]
fn never_panics_on_option_mutations() {
    let mut s = Server::new(rl(3, 2));
    let mut cookie = CLIENT.to_vec();
    cookie.extend_from_slice(&[1, 0, 0, 0, 0x65, 0x53, 0xf1, 0x00, 9, 9, 9, 9, 9, 9, 9, 9]);
    let base = query_opts(
        "app.example.com.",
        Rtype::A,
        &[(8, &ecs_body(1, 24, &[198, 51, 100])), (10, &cookie)],
    );
    let mut seed: u32 = 99;
    for i in 0..20000u32 {
        let mut q = base.clone();
        for _ in 0..2 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            // Bias towards the OPT record at the end.
            let span = 48.min(q.len());
            let at = q.len() - 1 - (seed >> 8) as usize % span;
            q[at] = (seed >> 20) as u8;
        }
        let from = if i % 2 == 0 {
            "198.51.100.1"
        } else {
            "::ffff:198.51.100.2"
        };
        let transport = if i % 7 == 0 {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        // Still an OPT record where the base query has one?
        let has_opt = q.get(33..36) == Some(&[0, 0, 41][..]) && q[10..12] == [0, 1];
        if let Some(m) = s.ask(&q, from, transport)
            && has_opt
        {
            assert!(
                m.opt().is_some() || m.header().rcode() == Rcode::FORMERR,
                "{:?} {q:?}",
                m.header().rcode()
            );
        }
    }
}
