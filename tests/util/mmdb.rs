//! A tiny MaxMind DB writer for tests (MaxMind DB format 2.0): an IPv6
//! search tree with 24-bit records (IPv4 networks under ::/96), a data
//! section of `{country: {iso_code}, continent: {code}}` maps and the
//! metadata map. Enough for the `maxminddb` reader and gdnsd's geoip
//! plugin to load; tests build their database with it instead of shipping
//! third-party GeoIP data. Also included by unit tests under src/ (path
//! include), so it uses only std.
#![allow(dead_code)]

use std::net::IpAddr;

#[derive(Clone, Copy, PartialEq)]
enum Rec {
    Empty,
    Node(u32),
    Data(u32),
}

/// Networks and their location, written with `bytes()`.
#[derive(Default)]
pub struct MmdbWriter {
    nodes: Vec<[Rec; 2]>,
    data: Vec<Vec<u8>>,
}

fn ctrl(out: &mut Vec<u8>, kind: u8, size: usize) {
    let (first, extra): (u8, Vec<u8>) = match size {
        0..=28 => (size as u8, vec![]),
        29..=284 => (29, vec![(size - 29) as u8]),
        _ => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
    };
    if kind <= 7 {
        out.push((kind << 5) | first);
    } else {
        out.push(first);
        out.push(kind - 7);
    }
    out.extend_from_slice(&extra);
}

fn string(out: &mut Vec<u8>, s: &str) {
    ctrl(out, 2, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn uint(out: &mut Vec<u8>, kind: u8, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    ctrl(out, kind, 8 - skip);
    out.extend_from_slice(&bytes[skip..]);
}

fn location(country: &str, continent: &str) -> Vec<u8> {
    let mut out = Vec::new();
    ctrl(&mut out, 7, 2);
    string(&mut out, "continent");
    ctrl(&mut out, 7, 1);
    string(&mut out, "code");
    string(&mut out, continent);
    string(&mut out, "country");
    ctrl(&mut out, 7, 1);
    string(&mut out, "iso_code");
    string(&mut out, country);
    out
}

fn bits(ip: IpAddr, len: u8) -> (u128, u8) {
    match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 96 + len),
        IpAddr::V6(a) => (u128::from(a), len),
    }
}

impl MmdbWriter {
    pub fn new() -> MmdbWriter {
        MmdbWriter {
            nodes: vec![[Rec::Empty, Rec::Empty]],
            data: Vec::new(),
        }
    }

    /// Adds `net` ("198.51.100.0/24", "2001:db8::/32") located in
    /// `country` (ISO code) on `continent` (two-letter code). Add wider
    /// networks before narrower ones inside them.
    pub fn insert(&mut self, net: &str, country: &str, continent: &str) {
        let (addr, len) = net.split_once('/').expect("cidr");
        let ip: IpAddr = addr.parse().expect("address");
        let (value, depth) = bits(ip, len.parse().expect("prefix"));
        self.data.push(location(country, continent));
        let data = Rec::Data(self.data.len() as u32 - 1);
        let mut node = 0usize;
        for i in 0..depth {
            let bit = ((value >> (127 - i)) & 1) as usize;
            if i + 1 == depth {
                self.nodes[node][bit] = data;
                return;
            }
            node = match self.nodes[node][bit] {
                Rec::Node(n) => n as usize,
                other => {
                    // Empty, or a wider network's data pushed down a level.
                    self.nodes.push([other, other]);
                    let n = self.nodes.len() - 1;
                    self.nodes[node][bit] = Rec::Node(n as u32);
                    n
                }
            };
        }
    }

    /// The database file's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let count = self.nodes.len() as u32;
        let mut offsets = Vec::new();
        let mut section = Vec::new();
        for d in &self.data {
            offsets.push(section.len() as u32);
            section.extend_from_slice(d);
        }
        let value = |r: Rec| match r {
            Rec::Empty => count,
            Rec::Node(n) => n,
            Rec::Data(i) => count + 16 + offsets[i as usize],
        };
        let mut out = Vec::new();
        for [l, r] in &self.nodes {
            out.extend_from_slice(&value(*l).to_be_bytes()[1..]);
            out.extend_from_slice(&value(*r).to_be_bytes()[1..]);
        }
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(&section);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        ctrl(&mut out, 7, 9);
        string(&mut out, "binary_format_major_version");
        uint(&mut out, 5, 2);
        string(&mut out, "binary_format_minor_version");
        uint(&mut out, 5, 0);
        string(&mut out, "build_epoch");
        uint(&mut out, 9, 1_700_000_000);
        string(&mut out, "database_type");
        string(&mut out, "GeoLite2-Country");
        string(&mut out, "description");
        ctrl(&mut out, 7, 1);
        string(&mut out, "en");
        string(&mut out, "OpenGSLB test database");
        string(&mut out, "ip_version");
        uint(&mut out, 5, 6);
        string(&mut out, "languages");
        ctrl(&mut out, 11, 1);
        string(&mut out, "en");
        string(&mut out, "node_count");
        uint(&mut out, 6, u64::from(count));
        string(&mut out, "record_size");
        uint(&mut out, 5, 24);
        out
    }
}
