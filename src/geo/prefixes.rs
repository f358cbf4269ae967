//! Longest-prefix match over a fixed set of CIDRs (the geolocation custom
//! mappings), without allocating per lookup.
//!
//! One hash map per prefix length in use, keyed by the masked network
//! address; a lookup masks the address at each length present, longest
//! first, and stops at the first hit. With the handful of lengths real
//! mapping lists use this is a few hash probes per query.

use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;

/// Networks of one family and one prefix length.
#[derive(Debug)]
struct Level<V> {
    len: u8,
    nets: HashMap<u128, V>,
}

#[derive(Debug)]
pub struct PrefixTable<V> {
    /// Longest first; IPv4 keys are the address in the low 32 bits.
    v4: Vec<Level<V>>,
    v6: Vec<Level<V>>,
}

impl<V> Default for PrefixTable<V> {
    fn default() -> Self {
        PrefixTable {
            v4: Vec::new(),
            v6: Vec::new(),
        }
    }
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
                        nets: HashMap::new(),
                    },
                );
                p
            }
            None => {
                levels.push(Level {
                    len,
                    nets: HashMap::new(),
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
        true
    }

    /// The value of the longest network containing `ip`, with its prefix
    /// length.
    pub fn longest(&self, ip: IpAddr) -> Option<(&V, u8)> {
        let (bits, width) = key(ip);
        let levels = if width == 32 { &self.v4 } else { &self.v6 };
        levels
            .iter()
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
