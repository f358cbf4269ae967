//! Unit tests of the responder rules, with queries built by domain.

use super::*;
use crate::dns::stats::RcodeLabel;
use domain::base::iana::Rtype;
use domain::base::opt::{AllOptData, ClientSubnet};
use domain::base::{Message, Name};
use domain::rdata::AllRecordData;
use std::str::FromStr;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The shared sample table (`dns::sample`): one name per responder path.
pub(crate) fn table(stats: &DnsStats) -> DnsTable {
    crate::dns::sample::table(stats)
}

pub(crate) fn query(name: &str, qtype: Rtype, edns: Option<(u16, u8)>) -> Vec<u8> {
    let mut b = MessageBuilder::new_vec();
    b.header_mut().set_id(0x1234);
    b.header_mut().set_rd(true);
    let mut q = b.question();
    q.push((Name::<Vec<u8>>::from_str(name).unwrap(), qtype))
        .unwrap();
    let mut add = q.additional();
    if let Some((size, version)) = edns {
        add.opt(|o| {
            o.set_udp_payload_size(size);
            o.set_version(version);
            Ok(())
        })
        .unwrap();
    }
    add.finish()
}

fn ask(q: &[u8], transport: Transport) -> Option<Vec<u8>> {
    let stats = DnsStats::new();
    let t = table(&stats);
    let mut r = Responder::new(1232);
    r.respond(q, ip("127.0.0.1"), transport, &t, &stats)
        .map(<[u8]>::to_vec)
}

fn msg(bytes: Vec<u8>) -> Message<Vec<u8>> {
    Message::from_octets(bytes).unwrap()
}

fn answers(m: &Message<Vec<u8>>) -> Vec<String> {
    m.answer()
        .unwrap()
        .limit_to::<AllRecordData<_, _>>()
        .map(|r| r.unwrap().data().to_string())
        .collect()
}

#[test]
fn a_query_answers_with_aa_and_echoes_question_case() {
    let m = msg(ask(&query("APP.Example.COM.", Rtype::A, None), Transport::Udp).unwrap());
    let h = m.header();
    assert!(h.qr() && h.aa() && h.rd() && !h.tc());
    assert_eq!(h.id(), 0x1234);
    assert_eq!(h.rcode(), Rcode::NOERROR);
    let q = m.sole_question().unwrap();
    assert_eq!(q.qname().to_string(), "APP.Example.COM");
    assert_eq!(answers(&m), vec!["10.0.0.1", "10.0.0.2"]);
    let ttl = m.answer().unwrap().next().unwrap().unwrap().ttl().as_secs();
    assert_eq!(ttl, 42);
    assert!(m.opt().is_none());
}

#[test]
fn aaaa_family_and_nodata_for_other_family() {
    let m = msg(ask(
        &query("app.example.com.", Rtype::AAAA, None),
        Transport::Udp,
    )
    .unwrap());
    assert_eq!(answers(&m), vec!["2001:db8::2"]);
    let m = msg(ask(&query("v6.example.com.", Rtype::A, None), Transport::Udp).unwrap());
    assert_eq!(m.header().rcode(), Rcode::NOERROR);
    assert!(m.header().aa());
    assert_eq!(m.header_counts().ancount(), 0);
    assert_eq!(m.header_counts().nscount(), 1);
}

#[test]
fn nxdomain_and_nodata_carry_soa_with_negative_ttl() {
    for (name, rcode, qtype) in [
        ("nope.example.com.", Rcode::NXDOMAIN, Rtype::A),
        ("app.example.com.", Rcode::NOERROR, Rtype::TXT),
    ] {
        let m = msg(ask(&query(name, qtype, None), Transport::Udp).unwrap());
        assert_eq!(m.header().rcode(), rcode, "{name}");
        assert!(m.header().aa());
        assert_eq!(m.header_counts().ancount(), 0);
        let auth: Vec<_> = m.authority().unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(auth.len(), 1);
        assert_eq!(auth[0].rtype(), Rtype::SOA);
        assert_eq!(auth[0].ttl().as_secs(), 20);
        assert_eq!(auth[0].owner().to_string(), "example.com");
    }
}

#[test]
fn soa_and_ns_at_apex() {
    let m = msg(ask(&query("example.com.", Rtype::SOA, None), Transport::Udp).unwrap());
    let a = answers(&m);
    assert_eq!(a.len(), 1);
    assert!(
        a[0].starts_with("ns1.example.com. hostmaster.example.com. 2026 3600 600 86400 20"),
        "{}",
        a[0]
    );
    let m = msg(ask(&query("example.com.", Rtype::NS, None), Transport::Udp).unwrap());
    assert_eq!(answers(&m), vec!["ns1.example.com.", "ns2.example.net."]);
    // The apex is also a domain here, so A answers from it.
    let m = msg(ask(&query("example.com.", Rtype::A, None), Transport::Udp).unwrap());
    assert_eq!(answers(&m), vec!["10.9.9.9"]);
    // SOA below the apex is NODATA.
    let m = msg(ask(&query("app.example.com.", Rtype::SOA, None), Transport::Udp).unwrap());
    assert_eq!(m.header_counts().ancount(), 0);
    assert_eq!(m.header_counts().nscount(), 1);
}

#[test]
fn outside_zones_refused_without_aa() {
    let m = msg(ask(&query("example.org.", Rtype::A, None), Transport::Udp).unwrap());
    assert_eq!(m.header().rcode(), Rcode::REFUSED);
    assert!(!m.header().aa());
}

#[test]
fn no_healthy_servfail_or_last_healthy_counted() {
    let stats = DnsStats::new();
    let t = table(&stats);
    let mut r = Responder::new(1232);
    let out = r.respond(
        &query("down.example.com.", Rtype::A, None),
        ip("::1"),
        Transport::Udp,
        &t,
        &stats,
    );
    let m = msg(out.unwrap().to_vec());
    assert_eq!(m.header().rcode(), Rcode::SERVFAIL);
    let out = r.respond(
        &query("last.example.com.", Rtype::A, None),
        ip("::1"),
        Transport::Udp,
        &t,
        &stats,
    );
    let m = msg(out.unwrap().to_vec());
    assert_eq!(answers(&m), vec!["192.0.2.9"]);
    assert_eq!(
        stats
            .domain("down.example.com")
            .servfail
            .load(Ordering::Relaxed),
        1
    );
    assert_eq!(
        stats
            .domain("last.example.com")
            .last_healthy
            .load(Ordering::Relaxed),
        1
    );
    assert_eq!(
        stats
            .domain("last.example.com")
            .answers
            .load(Ordering::Relaxed),
        1
    );
    assert_eq!(stats.queries(QtypeLabel::A, RcodeLabel::ServFail), 1);
}

#[test]
fn routing_through_the_responder() {
    let stats = DnsStats::new();
    let t = table(&stats);
    let mut r = Responder::new(1232);
    let mut get = |name: &str| {
        let out = r.respond(
            &query(name, Rtype::A, None),
            ip("::1"),
            Transport::Udp,
            &t,
            &stats,
        );
        answers(&msg(out.unwrap().to_vec()))
    };
    assert_eq!(get("fo.example.com."), vec!["10.0.0.5"]);
    assert_eq!(get("fo.example.com."), vec!["10.0.0.5"]);
    let w: Vec<_> = (0..4).map(|_| get("w.example.com.")).collect();
    assert_eq!(
        w,
        vec![
            vec!["10.0.0.7"],
            vec!["10.0.0.8"],
            vec!["10.0.0.7"],
            vec!["10.0.0.8"]
        ]
    );
    assert_eq!(get("app.example.com.")[0], "10.0.0.1");
    assert_eq!(get("app.example.com.")[0], "10.0.0.2");
}

#[test]
fn edns_opt_echoed_and_payload_clamped() {
    let m = msg(ask(
        &query("app.example.com.", Rtype::A, Some((4096, 0))),
        Transport::Udp,
    )
    .unwrap());
    let opt = m.opt().expect("OPT in answer");
    assert_eq!(opt.version(), 0);
    assert_eq!(opt.udp_payload_size(), 1232);
    assert_eq!(m.opt_rcode(), OptRcode::NOERROR);
}

#[test]
fn badvers_for_version_above_zero() {
    let m = msg(ask(
        &query("app.example.com.", Rtype::A, Some((1232, 1))),
        Transport::Udp,
    )
    .unwrap());
    assert_eq!(m.opt_rcode(), OptRcode::BADVERS);
    assert_eq!(m.header_counts().ancount(), 0);
    assert_eq!(m.opt().unwrap().version(), 0);
}

#[test]
fn truncation_without_edns_and_full_answer_over_tcp_or_edns() {
    let q = query("big.example.com.", Rtype::A, None);
    let out = ask(&q, Transport::Udp).unwrap();
    assert!(out.len() <= 512);
    let m = msg(out);
    assert!(m.header().tc());
    assert_eq!(m.header_counts().ancount(), 0);
    let m = msg(ask(&q, Transport::Tcp).unwrap());
    assert!(!m.header().tc());
    assert_eq!(answers(&m).len(), 100);
    // 100 A records with compression: 12 + 21 + 100 * 16 = 1633 > 1232.
    let q = query("big.example.com.", Rtype::A, Some((65535, 0)));
    let out = ask(&q, Transport::Udp).unwrap();
    assert!(out.len() <= 1232);
    let m = msg(out);
    assert!(m.header().tc());
    assert!(m.opt().is_some());
}

#[test]
fn ecs_echoed_with_scope_zero() {
    let b = MessageBuilder::new_vec();
    let mut q = b.question();
    q.push((
        Name::<Vec<u8>>::from_str("app.example.com.").unwrap(),
        Rtype::A,
    ))
    .unwrap();
    let mut add = q.additional();
    add.opt(|o| {
        o.set_udp_payload_size(1232);
        o.push(&ClientSubnet::new(24, 0, ip("198.51.100.0")))
    })
    .unwrap();
    let m = msg(ask(&add.finish(), Transport::Udp).unwrap());
    let opt = m.opt().unwrap();
    let ecs = opt
        .opt()
        .iter::<AllOptData<_, _>>()
        .find_map(|o| match o {
            Ok(AllOptData::ClientSubnet(c)) => Some(c),
            _ => None,
        })
        .expect("ECS echoed");
    assert_eq!(ecs.source_prefix_len(), 24);
    assert_eq!(ecs.scope_prefix_len(), 0);
    assert_eq!(ecs.addr(), ip("198.51.100.0"));
}

#[test]
fn malformed_queries() {
    let good = query("app.example.com.", Rtype::A, None);
    // Short header and QR=1 are dropped.
    assert!(ask(&good[..11], Transport::Udp).is_none());
    let mut qr = good.clone();
    qr[2] |= 0x80;
    assert!(ask(&qr, Transport::Udp).is_none());
    let formerr = |bytes: &[u8]| {
        let out = ask(bytes, Transport::Udp).expect("answered");
        let m = msg(out);
        assert_eq!(m.header().rcode(), Rcode::FORMERR, "{bytes:?}");
        assert_eq!(m.header().id(), 0x1234);
    };
    formerr(&good[..20]);
    let mut qd0 = good.clone();
    qd0[5] = 0;
    formerr(&qd0);
    let mut qd2 = good.clone();
    qd2[5] = 2;
    formerr(&qd2);
    let mut badlabel = good.clone();
    badlabel[12] = 0x50;
    formerr(&badlabel);
    let mut trailing = good.clone();
    trailing.push(0);
    formerr(&trailing);
    // Name that is a pointer to itself.
    let mut loop_ = good[..12].to_vec();
    loop_.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    formerr(&loop_);
    // Two OPT records.
    let mut two = query("app.example.com.", Rtype::A, Some((1232, 0)));
    let opt = two[two.len() - 11..].to_vec();
    two.extend_from_slice(&opt);
    two[11] = 2;
    formerr(&two);
    // Opcode NOTIFY (we are no secondary) gets NOTIMP.
    let mut notify = good.clone();
    notify[2] = (notify[2] & 0x87) | (4 << 3);
    let m = msg(ask(&notify, Transport::Udp).unwrap());
    assert_eq!(m.header().rcode(), Rcode::NOTIMP);
}

#[test]
fn never_panics_on_mutations() {
    let stats = DnsStats::new();
    let t = table(&stats);
    let mut r = Responder::new(1232);
    let base = query("App.example.com.", Rtype::AAAA, Some((1400, 0)));
    let mut seed: u32 = 12345;
    for _ in 0..20000 {
        let mut q = base.clone();
        for _ in 0..3 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let i = (seed >> 8) as usize % q.len();
            q[i] = (seed >> 20) as u8;
        }
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        q.truncate(q.len() - (seed as usize % 6));
        let _ = r.respond(&q, ip("127.0.0.1"), Transport::Udp, &t, &stats);
    }
}
