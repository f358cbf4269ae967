//! A small, independent DNS client for the integration tests: builds
//! queries and parses answers by hand, so the tests do not trust the same
//! code they are testing.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

pub const A: u16 = 1;
pub const NS: u16 = 2;
pub const SOA: u16 = 6;
pub const AAAA: u16 = 28;

#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub id: u16,
    pub rcode: u8,
    /// Extended rcode from the OPT record, combined (BADVERS = 16).
    pub ext_rcode: u16,
    pub aa: bool,
    pub tc: bool,
    pub qname: String,
    pub answers: Vec<(u16, u32, Vec<u8>)>,
    pub authority: Vec<(u16, u32, Vec<u8>)>,
    pub has_opt: bool,
    pub opt_version: u8,
}

impl Reply {
    pub fn addrs(&self) -> Vec<IpAddr> {
        self.answers
            .iter()
            .filter_map(|(t, _, d)| match (*t, d.len()) {
                (A, 4) => Some(IpAddr::from([d[0], d[1], d[2], d[3]])),
                (AAAA, 16) => {
                    let mut b = [0u8; 16];
                    b.copy_from_slice(d);
                    Some(IpAddr::from(b))
                }
                _ => None,
            })
            .collect()
    }

    pub fn addr_strings(&self) -> Vec<String> {
        self.addrs().iter().map(|a| a.to_string()).collect()
    }
}

pub struct Query {
    pub name: String,
    pub qtype: u16,
    pub edns: Option<(u16, u8)>,
    pub opcode: u8,
}

impl Query {
    pub fn new(name: &str, qtype: u16) -> Self {
        Query {
            name: name.into(),
            qtype,
            edns: None,
            opcode: 0,
        }
    }

    pub fn edns(mut self, size: u16, version: u8) -> Self {
        self.edns = Some((size, version));
        self
    }

    pub fn encode(&self, id: u16) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&id.to_be_bytes());
        m.push(self.opcode << 3);
        m.push(0);
        m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, if self.edns.is_some() { 1 } else { 0 }]);
        for label in self
            .name
            .trim_end_matches('.')
            .split('.')
            .filter(|l| !l.is_empty())
        {
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&self.qtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        if let Some((size, version)) = self.edns {
            m.push(0);
            m.extend_from_slice(&41u16.to_be_bytes());
            m.extend_from_slice(&size.to_be_bytes());
            m.extend_from_slice(&[0, version, 0, 0, 0, 0]);
        }
        m
    }
}

fn read_name(msg: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *msg.get(pos)? as usize;
        if len & 0xC0 == 0xC0 {
            let ptr = ((len & 0x3F) << 8) | *msg.get(pos + 1)? as usize;
            end.get_or_insert(pos + 2);
            pos = ptr;
            continue;
        }
        if len == 0 {
            return Some((name, end.unwrap_or(pos + 1)));
        }
        let label = msg.get(pos + 1..pos + 1 + len)?;
        if !name.is_empty() {
            name.push('.');
        }
        name.push_str(&String::from_utf8_lossy(label));
        pos += 1 + len;
    }
    None
}

pub fn parse(msg: &[u8]) -> Option<Reply> {
    if msg.len() < 12 {
        return None;
    }
    let be = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]);
    let mut r = Reply {
        id: be(0),
        aa: msg[2] & 0x04 != 0,
        tc: msg[2] & 0x02 != 0,
        rcode: msg[3] & 0x0F,
        ..Default::default()
    };
    let (qd, an, ns, ar) = (be(4), be(6), be(8), be(10));
    let mut pos = 12;
    for _ in 0..qd {
        let (name, p) = read_name(msg, pos)?;
        r.qname = name;
        pos = p + 4;
    }
    for section in 0..3 {
        let count = [an, ns, ar][section];
        for _ in 0..count {
            let (_, p) = read_name(msg, pos)?;
            let rtype = u16::from_be_bytes([*msg.get(p)?, *msg.get(p + 1)?]);
            let ttl = u32::from_be_bytes(msg.get(p + 4..p + 8)?.try_into().ok()?);
            let rdlen = u16::from_be_bytes([*msg.get(p + 8)?, *msg.get(p + 9)?]) as usize;
            let data = msg.get(p + 10..p + 10 + rdlen)?.to_vec();
            match section {
                0 => r.answers.push((rtype, ttl, data)),
                1 => r.authority.push((rtype, ttl, data)),
                _ if rtype == 41 => {
                    r.has_opt = true;
                    r.ext_rcode = ((ttl >> 24) as u16) << 4 | r.rcode as u16;
                    r.opt_version = (ttl >> 16) as u8;
                }
                _ => {}
            }
            pos = p + 10 + rdlen;
        }
    }
    Some(r)
}

/// Sends raw bytes over UDP; None on timeout.
pub fn udp_raw(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind(if server.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    })
    .ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(1500)))
        .ok()?;
    sock.send_to(bytes, server).ok()?;
    let mut buf = [0u8; 65535];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

pub fn udp(server: SocketAddr, q: &Query) -> Option<Reply> {
    let id = 0x4242;
    let raw = udp_raw(server, &q.encode(id))?;
    parse(&raw)
}

/// Sends several queries pipelined on one TCP connection.
pub fn tcp_many(server: SocketAddr, queries: &[Query]) -> Option<Vec<Reply>> {
    let mut s = TcpStream::connect_timeout(&server, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    let mut out = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        let m = q.encode(i as u16);
        out.extend_from_slice(&(m.len() as u16).to_be_bytes());
        out.extend_from_slice(&m);
    }
    s.write_all(&out).ok()?;
    let mut replies = Vec::new();
    for _ in queries {
        let mut len = [0u8; 2];
        s.read_exact(&mut len).ok()?;
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).ok()?;
        replies.push(parse(&buf)?);
    }
    Some(replies)
}

pub fn tcp(server: SocketAddr, q: &Query) -> Option<Reply> {
    tcp_many(server, std::slice::from_ref(q))?.pop()
}
