//! The DNS server in-process on 127.0.0.1:0: UDP, pipelined TCP, malformed
//! packets, and that it keeps answering afterwards.

use domain::base::iana::{OptRcode, Rcode, Rtype};
use domain::base::{Message, MessageBuilder, Name};
use opengslb::config::RoutingAlgorithm;
use opengslb::dns::{self, DnsStats, DnsTable, ServerConfig, TableSpec, Target, sample};
use opengslb::snapshot::SnapshotCell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The shared sample table (`dns::sample`) with app.example.com serving
/// `addrs`, and big.example.com grown to 200 addresses: a 3 KB answer, to
/// fill socket buffers over TCP.
fn spec(addrs: &[&str]) -> TableSpec {
    let mut s = sample::spec();
    for d in &mut s.domains {
        match d.name.as_str() {
            "app.example.com" => *d = sample::domain(&d.name, RoutingAlgorithm::RoundRobin, addrs),
            "big.example.com" => {
                d.targets = (0..200u32)
                    .map(|i| Target {
                        ip: std::net::Ipv4Addr::from(0x0a00_0000 + i).into(),
                        weight: 1,
                    })
                    .collect()
            }
            _ => {}
        }
    }
    s
}

struct Fixture {
    server: dns::DnsServer,
    cell: Arc<SnapshotCell<DnsTable>>,
    stats: Arc<DnsStats>,
}

fn start(max_conns: usize, idle: Duration) -> Fixture {
    let stats = Arc::new(DnsStats::new());
    let cell = Arc::new(SnapshotCell::new(DnsTable::build(
        &spec(&["10.0.0.1", "10.0.0.2"]),
        &stats,
    )));
    let cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        threads: 2,
        tcp_idle_timeout: idle,
        tcp_max_connections: max_conns,
        max_udp_size: 1232,
        learned: None,
    };
    let server = dns::start(&cfg, Arc::clone(&cell), Arc::clone(&stats)).unwrap();
    Fixture {
        server,
        cell,
        stats,
    }
}

fn query(id: u16, name: &str, qtype: Rtype) -> Vec<u8> {
    let mut b = MessageBuilder::new_vec();
    b.header_mut().set_id(id);
    let mut q = b.question();
    q.push((Name::<Vec<u8>>::from_str(name).unwrap(), qtype))
        .unwrap();
    q.finish()
}

fn udp(addr: SocketAddr, packet: &[u8]) -> Option<Message<Vec<u8>>> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    sock.send_to(packet, addr).unwrap();
    let mut buf = [0u8; 4096];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => Some(Message::from_octets(buf[..n].to_vec()).unwrap()),
        Err(_) => None,
    }
}

fn addrs(m: &Message<Vec<u8>>) -> Vec<String> {
    m.answer()
        .unwrap()
        .limit_to::<domain::rdata::A>()
        .map(|r| r.unwrap().data().to_string())
        .collect()
}

fn read_frame(s: &mut TcpStream) -> Message<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    Message::from_octets(body).unwrap()
}

#[test]
fn udp_answers_and_follows_table_updates() {
    let f = start(16, Duration::from_secs(5));
    let addr = f.server.local_addr();
    let m = udp(addr, &query(7, "app.example.com.", Rtype::A)).expect("answer");
    assert_eq!(m.header().id(), 7);
    assert!(m.header().aa());
    assert_eq!(addrs(&m).len(), 2);
    f.cell
        .publish(DnsTable::build(&spec(&["10.0.0.9"]), &f.stats));
    let m = udp(addr, &query(8, "app.example.com.", Rtype::A)).expect("answer");
    assert_eq!(addrs(&m), vec!["10.0.0.9"]);
    assert!(f.server.alive());
    f.server.stop();
}

#[test]
fn tcp_pipelined_in_order_and_split_writes() {
    let f = start(16, Duration::from_secs(5));
    let mut s = TcpStream::connect(f.server.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut wire = Vec::new();
    for id in 1..=20u16 {
        let name = if id % 2 == 0 {
            "app.example.com."
        } else {
            "nope.example.com."
        };
        let q = query(id, name, Rtype::A);
        wire.extend_from_slice(&(q.len() as u16).to_be_bytes());
        wire.extend_from_slice(&q);
    }
    // Send in awkward pieces to exercise partial reads.
    for chunk in wire.chunks(7) {
        s.write_all(chunk).unwrap();
        s.flush().unwrap();
    }
    for id in 1..=20u16 {
        let m = read_frame(&mut s);
        assert_eq!(m.header().id(), id);
        let want = if id % 2 == 0 {
            Rcode::NOERROR
        } else {
            Rcode::NXDOMAIN
        };
        assert_eq!(m.header().rcode(), want);
    }
    f.server.stop();
}

#[test]
fn tcp_connection_cap_and_idle_timeout() {
    let f = start(1, Duration::from_millis(300));
    let addr = f.server.local_addr();
    let mut first = TcpStream::connect(addr).unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let q = query(1, "app.example.com.", Rtype::A);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    first.write_all(&framed).unwrap();
    assert_eq!(read_frame(&mut first).header().id(), 1);
    // Second connection is over the cap: closed without an answer.
    let mut second = TcpStream::connect(addr).unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let _ = second.write_all(&framed);
    let mut buf = [0u8; 16];
    assert!(matches!(second.read(&mut buf), Ok(0) | Err(_)));
    // The first one is closed after the idle timeout.
    assert!(matches!(first.read(&mut buf), Ok(0) | Err(_)));
    f.server.stop();
}

#[test]
fn malformed_packets_then_still_answers() {
    let f = start(16, Duration::from_secs(5));
    let addr = f.server.local_addr();
    let good = query(0x4242, "app.example.com.", Rtype::A);
    let expect_rcode = |packet: &[u8], rcode: Rcode| {
        let m = udp(addr, packet).expect("an answer");
        assert_eq!(m.header().rcode(), rcode, "{packet:?}");
        assert_eq!(m.header().id(), 0x4242);
    };
    // Truncated header: dropped.
    assert!(udp(addr, &good[..5]).is_none());
    // QR=1: dropped.
    let mut qr = good.clone();
    qr[2] |= 0x80;
    assert!(udp(addr, &qr).is_none());
    // Truncated question.
    expect_rcode(&good[..good.len() - 3], Rcode::FORMERR);
    // Bad label length.
    let mut bad = good.clone();
    bad[12] = 70;
    expect_rcode(&bad, Rcode::FORMERR);
    // Compression pointer loop.
    let mut lp = good[..12].to_vec();
    lp.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    expect_rcode(&lp, Rcode::FORMERR);
    // QDCOUNT 0 and 2.
    let mut q0 = good.clone();
    q0[5] = 0;
    expect_rcode(&q0, Rcode::FORMERR);
    let mut q2 = good.clone();
    q2[5] = 2;
    expect_rcode(&q2, Rcode::FORMERR);
    // Huge EDNS size: clamped to our maximum.
    let mut b = MessageBuilder::new_vec();
    b.header_mut().set_id(0x4242);
    let mut q = b.question();
    q.push((
        Name::<Vec<u8>>::from_str("app.example.com.").unwrap(),
        Rtype::A,
    ))
    .unwrap();
    let mut add = q.additional();
    add.opt(|o| {
        o.set_udp_payload_size(65535);
        Ok(())
    })
    .unwrap();
    let edns = add.finish();
    let m = udp(addr, &edns).unwrap();
    assert_eq!(m.opt().unwrap().udp_payload_size(), 1232);
    // EDNS version 1: BADVERS.
    let mut v1 = edns.clone();
    let ttl_version = v1.len() - 11 + 6;
    v1[ttl_version] = 1;
    let m = udp(addr, &v1).unwrap();
    assert_eq!(m.opt_rcode(), OptRcode::BADVERS);
    // Random bytes: whatever happens, no crash.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in [0usize, 1, 12, 13, 40, 300, 1500] {
        let mut junk = Vec::with_capacity(len);
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            junk.push(seed as u8);
        }
        let _ = udp(addr, &junk);
    }
    // Still serving.
    let m = udp(addr, &good).expect("answer after malformed input");
    assert_eq!(addrs(&m).len(), 2);
    assert!(f.stats.dropped() >= 2);
    assert!(f.server.alive());
    f.server.stop();
}

#[test]
fn ipv6_loopback_listener() {
    let stats = Arc::new(DnsStats::new());
    let cell = Arc::new(SnapshotCell::new(DnsTable::build(
        &spec(&["10.0.0.1"]),
        &stats,
    )));
    let cfg = ServerConfig {
        listen: "[::1]:0".parse().unwrap(),
        threads: 1,
        tcp_idle_timeout: Duration::from_secs(1),
        tcp_max_connections: 4,
        max_udp_size: 1232,
        learned: None,
    };
    let server = match dns::start(&cfg, cell, stats) {
        Ok(s) => s,
        Err(e) => {
            crate::util::skip(
                "dns_server::ipv6_loopback_listener",
                &format!("no IPv6 loopback here ({e})"),
            );
            return;
        }
    };
    let sock = UdpSocket::bind("[::1]:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    sock.send_to(&query(3, "app.example.com.", Rtype::A), server.local_addr())
        .unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    let m = Message::from_octets(buf[..n].to_vec()).unwrap();
    assert_eq!(addrs(&m), vec!["10.0.0.1"]);
    server.stop();
}

#[test]
fn tcp_large_pipelined_answers_survive_backpressure() {
    let f = start(16, Duration::from_secs(5));
    let mut s = TcpStream::connect(f.server.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut wire = Vec::new();
    for id in 0..300u16 {
        let q = query(id, "big.example.com.", Rtype::A);
        wire.extend_from_slice(&(q.len() as u16).to_be_bytes());
        wire.extend_from_slice(&q);
    }
    // Write everything before reading anything: the server must stop at
    // its write backlog and resume when we drain.
    let mut writer = s.try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&wire).unwrap());
    std::thread::sleep(Duration::from_millis(200));
    for id in 0..300u16 {
        let m = read_frame(&mut s);
        assert_eq!(m.header().id(), id);
        assert!(!m.header().tc());
        assert_eq!(addrs(&m).len(), 200);
    }
    sender.join().unwrap();
    f.server.stop();
}
