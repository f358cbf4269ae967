//! The Overwatch's learned-latency table: per client prefix, the smoothed
//! round trip agents of each region measured for clients in it.
//!
//! Bounded: at most `max_prefixes` prefixes (a new prefix past that is
//! dropped and counted until expiry frees room), at most
//! `REGIONS_PER_PREFIX` regions each (the slowest is replaced), at most
//! `MAX_REGIONS` region names interned. A region's entry not refreshed for
//! `ttl` is forgotten, and a prefix with none left with it. Entries are
//! fixed-size (no heap per prefix), so 100,000 prefixes × 3 regions take
//! a few MB (see `docs/benchmarks.md`). Lookups neither allocate nor
//! touch more than one hash probe per distinct prefix length present.

use crate::netprefix::ClientPrefix;
use std::collections::HashMap;
use std::net::IpAddr;

/// Regions remembered per prefix.
pub const REGIONS_PER_PREFIX: usize = 4;
/// Distinct region names the table interns.
pub const MAX_REGIONS: usize = 256;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Slot {
    /// Index into `regions` + 1; 0 is an empty slot.
    region: u16,
    rtt_us: u32,
    samples: u32,
    /// Mono seconds of the last report.
    seen: u32,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub max_prefixes: usize,
    pub ttl_secs: u32,
    /// Samples a region's entry needs before lookups use it.
    pub min_samples: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_prefixes: 200_000,
            ttl_secs: 3600,
            min_samples: 1,
        }
    }
}

/// One row of the listing.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub prefix: ClientPrefix,
    /// (region, round trip µs, samples, seconds since the last report),
    /// fastest first.
    pub regions: Vec<(String, u32, u32, u32)>,
}

pub struct LearnedTable {
    settings: Settings,
    map: HashMap<ClientPrefix, [Slot; REGIONS_PER_PREFIX]>,
    regions: Vec<String>,
    /// Bit `len` set when a v4 (v6) prefix of that length is present.
    v4_lens: u64,
    v6_lens: [u64; 3],
    /// New prefixes dropped because the table was full.
    pub dropped: u64,
    last_expire: u32,
}

impl LearnedTable {
    pub fn new(settings: Settings) -> Self {
        LearnedTable {
            settings,
            map: HashMap::new(),
            regions: Vec::new(),
            v4_lens: 0,
            v6_lens: [0; 3],
            dropped: 0,
            last_expire: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn region_index(&mut self, region: &str) -> Option<u16> {
        if let Some(i) = self.regions.iter().position(|r| r == region) {
            return Some(i as u16 + 1);
        }
        if self.regions.len() >= MAX_REGIONS {
            return None;
        }
        self.regions.push(region.to_string());
        Some(self.regions.len() as u16)
    }

    /// Merges one report entry: the new round trip is averaged with the
    /// region's current one (several agents of a region report the same
    /// prefix), samples add up.
    pub fn record(
        &mut self,
        prefix: ClientPrefix,
        region: &str,
        rtt_us: u32,
        samples: u32,
        now_s: u32,
    ) {
        let Some(r) = self.region_index(region) else {
            return;
        };
        if !self.map.contains_key(&prefix) && self.map.len() >= self.settings.max_prefixes {
            self.dropped += 1;
            return;
        }
        let slots = self.map.entry(prefix).or_default();
        let fresh = Slot {
            region: r,
            rtt_us,
            samples,
            seen: now_s,
        };
        if let Some(s) = slots.iter_mut().find(|s| s.region == r) {
            s.rtt_us = ((s.rtt_us as u64 + rtt_us as u64) / 2) as u32;
            s.samples = s.samples.saturating_add(samples);
            s.seen = now_s;
        } else if let Some(s) = slots.iter_mut().find(|s| s.region == 0) {
            *s = fresh;
        } else if let Some(s) = slots.iter_mut().max_by_key(|s| s.rtt_us)
            && s.rtt_us > rtt_us
        {
            *s = fresh;
        }
        if prefix.v6 {
            let l = prefix.len as usize;
            self.v6_lens[l / 64] |= 1 << (l % 64);
        } else {
            self.v4_lens |= 1 << prefix.len;
        }
    }

    /// `expire` when the last one was `every` seconds ago or more.
    pub fn expire_every(&mut self, every: u32, now_s: u32) {
        if now_s.saturating_sub(self.last_expire) >= every {
            self.last_expire = now_s;
            self.expire(now_s);
        }
    }

    /// Forgets region entries older than the ttl, and empty prefixes.
    pub fn expire(&mut self, now_s: u32) {
        let ttl = self.settings.ttl_secs;
        self.map.retain(|_, slots| {
            for s in slots.iter_mut() {
                if s.region != 0 && now_s.saturating_sub(s.seen) > ttl {
                    *s = Slot::default();
                }
            }
            slots.iter().any(|s| s.region != 0)
        });
        if self.map.is_empty() {
            self.v4_lens = 0;
            self.v6_lens = [0; 3];
        }
    }

    /// The warm slots of the longest present prefix containing `client`.
    fn slots_for(&self, client: IpAddr) -> Option<(u8, [Slot; REGIONS_PER_PREFIX])> {
        let client = crate::netprefix::canonical(client);
        let v6 = client.is_ipv6();
        let max = if v6 { 128u8 } else { 32 };
        for len in (0..=max).rev() {
            let present = if v6 {
                self.v6_lens[len as usize / 64] & (1 << (len % 64)) != 0
            } else {
                self.v4_lens & (1 << len) != 0
            };
            if !present {
                continue;
            }
            let key = ClientPrefix::of(client, len, len);
            if let Some(slots) = self.map.get(&key) {
                return Some((len, *slots));
            }
        }
        None
    }

    /// Calls `visit(region, prefix_len)` fastest first over the warm
    /// regions of the client's prefix, until it returns true. No
    /// allocation: the slots are copied and sorted on the stack.
    pub fn visit_fastest(&self, client: IpAddr, visit: &mut dyn FnMut(&str, u8) -> bool) {
        let Some((len, mut slots)) = self.slots_for(client) else {
            return;
        };
        slots.sort_unstable_by_key(|s| (s.region == 0, s.rtt_us));
        for s in slots {
            if s.region == 0 {
                break;
            }
            if s.samples < self.settings.min_samples {
                continue;
            }
            if visit(&self.regions[s.region as usize - 1], len) {
                return;
            }
        }
    }

    /// Rows in prefix order after `after`, at most `limit`.
    pub fn page(&self, after: Option<ClientPrefix>, limit: usize, now_s: u32) -> Vec<Row> {
        let mut keys: Vec<&ClientPrefix> = self
            .map
            .keys()
            .filter(|k| after.is_none_or(|a| **k > a))
            .collect();
        keys.sort_unstable();
        keys.truncate(limit);
        keys.into_iter()
            .map(|k| {
                let mut slots = self.map[k];
                slots.sort_unstable_by_key(|s| (s.region == 0, s.rtt_us));
                Row {
                    prefix: *k,
                    regions: slots
                        .iter()
                        .filter(|s| s.region != 0)
                        .map(|s| {
                            (
                                self.regions[s.region as usize - 1].clone(),
                                s.rtt_us,
                                s.samples,
                                now_s.saturating_sub(s.seen),
                            )
                        })
                        .collect(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ClientPrefix {
        ClientPrefix::parse(s).unwrap()
    }

    fn order(t: &LearnedTable, ip: &str) -> Vec<(String, u8)> {
        let mut got = Vec::new();
        t.visit_fastest(ip.parse().unwrap(), &mut |r, l| {
            got.push((r.to_string(), l));
            false
        });
        got
    }

    #[test]
    fn ranks_fastest_first_and_stops_when_told() {
        let mut t = LearnedTable::new(Settings::default());
        t.record(p("192.0.2.0/24"), "eu", 40_000, 5, 0);
        t.record(p("192.0.2.0/24"), "us", 5_000, 5, 0);
        t.record(p("192.0.2.0/24"), "ap", 90_000, 5, 0);
        assert_eq!(
            order(&t, "192.0.2.9"),
            [("us".into(), 24), ("eu".into(), 24), ("ap".into(), 24)]
        );
        let mut n = 0;
        t.visit_fastest("192.0.2.9".parse().unwrap(), &mut |_, _| {
            n += 1;
            true
        });
        assert_eq!(n, 1);
        assert!(order(&t, "198.51.100.1").is_empty());
        // Two agents of a region: averaged.
        t.record(p("192.0.2.0/24"), "us", 95_000, 5, 0);
        assert_eq!(order(&t, "192.0.2.9")[0].0, "eu");
    }

    #[test]
    fn min_samples_and_expiry() {
        let mut t = LearnedTable::new(Settings {
            min_samples: 3,
            ttl_secs: 10,
            ..Settings::default()
        });
        t.record(p("2001:db8:1::/48"), "eu", 1_000, 2, 0);
        t.record(p("2001:db8:1::/48"), "us", 9_000, 3, 5);
        assert_eq!(order(&t, "2001:db8:1:5::1"), [("us".into(), 48)]);
        t.expire(11);
        assert_eq!(order(&t, "2001:db8:1:5::1"), [("us".into(), 48)]);
        t.expire(16);
        assert!(t.is_empty());
    }

    #[test]
    fn bounded_in_prefixes_and_regions_per_prefix() {
        let mut t = LearnedTable::new(Settings {
            max_prefixes: 10,
            ..Settings::default()
        });
        for i in 0..20u32 {
            t.record(
                ClientPrefix::of(IpAddr::from([10, 0, i as u8, 1]), 24, 48),
                "eu",
                1,
                1,
                0,
            );
        }
        assert_eq!((t.len(), t.dropped), (10, 10));
        for (i, r) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            t.record(p("10.0.0.0/24"), r, 100 - i as u32, 1, 0);
        }
        // "eu" (1 µs) was there; the faster newcomers replace the slowest.
        let got: Vec<String> = order(&t, "10.0.0.1").into_iter().map(|x| x.0).collect();
        assert_eq!(got, ["eu", "e", "d", "c"]);
    }

    #[test]
    fn longest_prefix_wins_and_pages_in_order() {
        let mut t = LearnedTable::new(Settings::default());
        t.record(p("10.0.0.0/16"), "eu", 1_000, 1, 0);
        t.record(p("10.0.1.0/24"), "us", 2_000, 1, 0);
        assert_eq!(order(&t, "10.0.1.1"), [("us".into(), 24)]);
        assert_eq!(order(&t, "10.0.2.1"), [("eu".into(), 16)]);
        let first = t.page(None, 1, 3);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].regions[0], ("eu".into(), 1_000, 1, 3));
        let rest = t.page(Some(first[0].prefix), 10, 3);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].prefix, p("10.0.1.0/24"));
    }

    /// The figure in docs/benchmarks.md: 100,000 prefixes × 3 regions, the
    /// heap the table holds (capacity × entry, hashbrown's control bytes).
    #[test]
    fn a_hundred_thousand_prefixes_times_three_regions_fit_well_under_64_mb() {
        let mut t = LearnedTable::new(Settings::default());
        for i in 0..100_000u32 {
            let p = ClientPrefix::of(IpAddr::from((0x0a00_0000 + (i << 8)).to_be_bytes()), 24, 48);
            for (r, rtt) in [("eu", 30_000), ("us", 80_000), ("ap", 150_000)] {
                t.record(p, r, rtt + i, 5, 0);
            }
        }
        assert_eq!(t.len(), 100_000);
        let entry = std::mem::size_of::<(ClientPrefix, [Slot; REGIONS_PER_PREFIX])>();
        let bytes = t.map.capacity() * (entry + 1);
        eprintln!(
            "learned table: 100000 prefixes x 3 regions = {} bytes ({entry} per entry)",
            bytes
        );
        assert!(bytes < 16 << 20, "{bytes}");
    }

    #[test]
    fn a_lookup_does_not_allocate() {
        // The counting allocator lives in the DNS tests; here the property
        // is structural: `visit_fastest` copies a fixed array.
        let t = LearnedTable::new(Settings::default());
        t.visit_fastest("10.0.0.1".parse().unwrap(), &mut |_, _| true);
        assert_eq!(std::mem::size_of::<[Slot; REGIONS_PER_PREFIX]>(), 64);
    }
}
