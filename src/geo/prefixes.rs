//! Longest-prefix match over a fixed set of CIDRs (the geolocation custom
//! mappings), without allocating per lookup.
//!
//! One hash map per prefix length in use, keyed by the masked network
//! address; a lookup masks the address at each length present, longest
//! first, and stops at the first hit. With the handful of lengths real
//! mapping lists use this is a few hash probes per query. Two things keep
//! those probes cheap on the DNS fast path: the keys (our own networks)
//! are hashed with a multiply-and-mix function instead of SipHash, and
//! for IPv4 a table of 65,536 masks says, per /16, which lengths from 16
//! to 32 have a network inside it: an address probes only those levels
//! (none at all outside every mapping, most clients of a large list;
//! usually one inside). The table (256 KiB) exists once a network of
//! length 16 or more is added.

use ipnet::IpNet;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

/// Hashes the u128 keys: fold, multiply, mix the high bits down (the
/// index bits must depend on the whole address; masked keys end in zeros).
/// The keys are the configured networks, so flooding is not a concern.
#[derive(Default)]
struct NetHasher(u64);

impl Hasher for NetHasher {
    fn finish(&self) -> u64 {
        let x = self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x ^ (x >> 29)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u128(&mut self, v: u128) {
        self.0 ^= (v as u64) ^ ((v >> 64) as u64).rotate_left(32);
    }
}

/// Networks of one family and one prefix length.
#[derive(Debug)]
struct Level<V> {
    len: u8,
    nets: HashMap<u128, V, BuildHasherDefault<NetHasher>>,
}

#[derive(Debug)]
pub struct PrefixTable<V> {
    /// Longest first; IPv4 keys are the address in the low 32 bits.
    v4: Vec<Level<V>>,
    v6: Vec<Level<V>>,
    /// Per IPv4 /16: bit (len - 16) set when a network of that length
    /// (16..=32) lies in it. Empty until one is added.
    v4_lengths: Vec<u32>,
}

impl<V> Default for PrefixTable<V> {
    fn default() -> Self {
        PrefixTable {
            v4: Vec::new(),
            v6: Vec::new(),
            v4_lengths: Vec::new(),
        }
    }
}

/// The /16 of an IPv4 key.
fn sixteen(bits: u128) -> usize {
    (bits >> 16) as usize & 0xffff
}

fn mask(bits: u128, width: u8, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        let shift = u32::from(width - len.min(width));
        let all = if width == 128 {
            u128::MAX
        } else {
            (1u128 << width) - 1
        };
        bits & (all >> shift << shift)
    }
}

fn key(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

impl<V> PrefixTable<V> {
    /// Adds `net` (host bits ignored); a network already present keeps its
    /// first value and `false` is returned.
    pub fn insert(&mut self, net: IpNet, value: V) -> bool {
        let (bits, width) = key(net.addr());
        let len = net.prefix_len();
        let levels = if width == 32 {
            &mut self.v4
        } else {
            &mut self.v6
        };
        let pos = match levels.iter().position(|l| l.len <= len) {
            Some(p) if levels.get(p).is_some_and(|l| l.len == len) => p,
            Some(p) => {
                levels.insert(
                    p,
                    Level {
                        len,
                        nets: HashMap::default(),
                    },
                );
                p
            }
            None => {
                levels.push(Level {
                    len,
                    nets: HashMap::default(),
                });
                levels.len() - 1
            }
        };
        let Some(level) = levels.get_mut(pos) else {
            return false;
        };
        let k = mask(bits, width, len);
        if level.nets.contains_key(&k) {
            return false;
        }
        level.nets.insert(k, value);
        if width == 32 && len >= 16 {
            if self.v4_lengths.is_empty() {
                self.v4_lengths = vec![0; 1 << 16];
            }
            if let Some(m) = self.v4_lengths.get_mut(sixteen(k)) {
                *m |= 1 << (len.min(32) - 16);
            }
        }
        true
    }

    /// The value of the longest network containing `ip`, with its prefix
    /// length.
    pub fn longest(&self, ip: IpAddr) -> Option<(&V, u8)> {
        let (bits, width) = key(ip);
        let levels = if width == 32 { &self.v4 } else { &self.v6 };
        // IPv4 levels of 16 and more: only those with a network in this /16.
        let long = if width == 32 {
            self.v4_lengths.get(sixteen(bits)).copied().unwrap_or(0)
        } else {
            u32::MAX
        };
        levels
            .iter()
            .filter(|l| width != 32 || l.len < 16 || long & (1 << (l.len.min(32) - 16)) != 0)
            .find_map(|l| l.nets.get(&mask(bits, width, l.len)).map(|v| (v, l.len)))
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_wins_in_both_families() {
        let mut t = PrefixTable::default();
        assert!(t.insert(net("10.0.0.0/8"), "a"));
        assert!(t.insert(net("10.1.0.0/16"), "b"));
        assert!(t.insert(net("10.1.2.0/24"), "c"));
        assert!(t.insert(net("0.0.0.0/0"), "any"));
        assert!(t.insert(net("2001:db8::/32"), "v6"));
        assert!(t.insert(net("2001:db8:1::/48"), "v6b"));
        assert!(!t.insert(net("10.1.2.77/24"), "dup"), "same network");
        assert_eq!(t.longest(ip("10.1.2.3")), Some((&"c", 24)));
        assert_eq!(t.longest(ip("10.1.3.3")), Some((&"b", 16)));
        assert_eq!(t.longest(ip("10.2.0.1")), Some((&"a", 8)));
        assert_eq!(t.longest(ip("192.0.2.1")), Some((&"any", 0)));
        assert_eq!(t.longest(ip("2001:db8:1::5")), Some((&"v6b", 48)));
        assert_eq!(t.longest(ip("2001:db8:2::5")), Some((&"v6", 32)));
        assert_eq!(t.longest(ip("2001:db9::1")), None);
    }

    /// The per-/16 length masks only skip levels that cannot match.
    #[test]
    fn long_and_short_v4_levels_with_the_length_masks() {
        let mut t = PrefixTable::default();
        t.insert(net("10.1.2.0/24"), 24);
        t.insert(net("10.1.2.3/32"), 32);
        t.insert(net("10.1.0.0/16"), 16);
        t.insert(net("10.3.0.0/18"), 18);
        t.insert(net("172.16.0.0/12"), 12);
        t.insert(net("0.0.0.0/0"), 0);
        for (addr, want) in [
            ("10.1.2.9", 24),
            ("10.1.2.3", 32),
            ("10.3.63.1", 18),
            ("10.3.64.1", 0),
            ("10.1.200.1", 16),
            ("10.2.2.9", 0),
            ("172.20.1.1", 12),
            ("172.15.255.255", 0),
            ("255.255.255.255", 0),
        ] {
            assert_eq!(
                t.longest(ip(addr)).map(|(v, l)| (*v, l)),
                Some((want, want)),
                "{addr}"
            );
        }
        let mut many = PrefixTable::default();
        for i in 0..10_000u32 {
            let a = std::net::Ipv4Addr::from((i + 256) << 12);
            many.insert(IpNet::new(IpAddr::V4(a), 20).unwrap(), i);
        }
        for i in (0..10_000u32).step_by(97) {
            let a = std::net::Ipv4Addr::from(((i + 256) << 12) | 0x5a5);
            assert_eq!(many.longest(IpAddr::V4(a)), Some((&i, 20)));
        }
        assert_eq!(many.longest(ip("200.0.0.1")), None);
    }

    #[test]
    fn host_routes_match_exactly() {
        let mut t = PrefixTable::default();
        t.insert(net("192.0.2.7/32"), 1);
        t.insert(net("::1/128"), 2);
        assert_eq!(t.longest(ip("192.0.2.7")), Some((&1, 32)));
        assert_eq!(t.longest(ip("192.0.2.8")), None);
        assert_eq!(t.longest(ip("::1")), Some((&2, 128)));
    }
}
