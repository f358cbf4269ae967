//! The DNS server behind a real resolver: unbound, given only a stub zone
//! pointing at our server on 127.0.0.1 and forbidden every address outside
//! 127.0.0.0/8 (`do-not-query-address`), so it never tries the root
//! servers. A strict resolver rejects what a hand-written client accepts:
//! a missing OPT on errors, unresolvable NS names, an empty ANY. Prints
//! `SKIPPED: ...` when unbound is not installed or cannot start here.

use domain::base::iana::{Rcode, Rtype};
use domain::base::{Message, MessageBuilder, Name};
use domain::rdata::AllRecordData;
use opengslb::config::{RoutingAlgorithm, SoaConfig};
use opengslb::dns::{
    self, DnsStats, DnsTable, DomainSpec, NameServerSpec, ServerConfig, TableSpec, Target, ZoneSpec,
};
use opengslb::snapshot::SnapshotCell;
use std::net::{SocketAddr, UdpSocket};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

fn dom(name: &str, addrs: &[&str]) -> DomainSpec {
    DomainSpec {
        name: name.into(),
        ttl: 30,
        algorithm: RoutingAlgorithm::RoundRobin,
        max_records: None,
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

fn ask(addr: SocketAddr, name: &str, qtype: Rtype) -> Option<Message<Vec<u8>>> {
    let mut b = MessageBuilder::new_vec();
    b.header_mut().set_id(0x5151);
    b.header_mut().set_rd(true);
    let mut q = b.question();
    q.push((Name::<Vec<u8>>::from_str(name).unwrap(), qtype))
        .unwrap();
    let packet = q.finish();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    sock.send_to(&packet, addr).ok()?;
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    Message::from_octets(buf[..n].to_vec()).ok()
}

fn records(m: &Message<Vec<u8>>) -> Vec<String> {
    m.answer()
        .unwrap()
        .limit_to::<AllRecordData<_, _>>()
        .map(|r| r.unwrap().data().to_string())
        .collect()
}

#[test]
fn unbound_resolves_the_zone_through_a_stub() {
    let stats = Arc::new(DnsStats::new());
    let spec = TableSpec {
        zones: vec![ZoneSpec {
            apex: "example.com".into(),
            soa: SoaConfig::default(),
            nameservers: vec![],
        }],
        domains: vec![
            dom("app.example.com", &["10.0.0.1", "10.0.0.2"]),
            dom("down.example.com", &[]),
        ],
        serial: 1,
        geo: None,
        nameservers: NameServerSpec {
            hosts: vec![],
            self_addrs: vec!["127.0.0.1".parse().unwrap()],
        },
        rate_limit: None,
    };
    let cell = Arc::new(SnapshotCell::new(DnsTable::build(&spec, &stats)));
    let cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        threads: 1,
        tcp_idle_timeout: Duration::from_secs(5),
        tcp_max_connections: 16,
        max_udp_size: 1232,
        learned: None,
    };
    let server = dns::start(&cfg, cell, Arc::clone(&stats)).unwrap();
    let unbound = match crate::util::unbound::start(
        "stub",
        "example.com",
        server.local_addr(),
        "  module-config: \"iterator\"\n",
        &|addr| ask(addr, "example.com.", Rtype::SOA).is_some(),
    ) {
        Ok(u) => u,
        Err(why) => {
            crate::util::skip("unbound_resolves_the_zone_through_a_stub", &why.to_string());
            server.stop();
            return;
        }
    };
    let get = |name: &str, qtype: Rtype| {
        // A resolver may need a few round trips; one retry covers a loss.
        ask(unbound.addr, name, qtype)
            .or_else(|| ask(unbound.addr, name, qtype))
            .unwrap_or_else(|| panic!("no answer from unbound for {name} {qtype}"))
    };
    let m = get("app.example.com.", Rtype::A);
    assert_eq!(m.header().rcode(), Rcode::NOERROR);
    let mut a = records(&m);
    a.sort();
    assert_eq!(a, vec!["10.0.0.1", "10.0.0.2"]);
    // The apex NS name resolves (it was NXDOMAIN), through the resolver.
    let m = get("example.com.", Rtype::NS);
    assert_eq!(records(&m), vec!["ns1.example.com."]);
    let m = get("ns1.example.com.", Rtype::A);
    assert_eq!(m.header().rcode(), Rcode::NOERROR);
    assert_eq!(records(&m), vec!["127.0.0.1"]);
    // ANY is answered with data, not an empty NOERROR.
    let m = get("app.example.com.", Rtype::ANY);
    assert_eq!(m.header().rcode(), Rcode::NOERROR);
    assert!(!records(&m).is_empty());
    let m = get("nope.example.com.", Rtype::A);
    assert_eq!(m.header().rcode(), Rcode::NXDOMAIN);
    let m = get("down.example.com.", Rtype::A);
    assert_eq!(m.header().rcode(), Rcode::SERVFAIL);
    // Nothing unbound found worth an error line in its log.
    let log = unbound.stop_and_log();
    assert!(
        !log.lines().any(|l| l.contains("error:")),
        "unbound logged errors:\n{log}"
    );
    server.stop();
}
