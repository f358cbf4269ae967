//! Aggregation of kernel samples per (service, client prefix): an EWMA of
//! the smoothed round trip, a sample count and when it was last seen.
//!
//! Bounded: at most `max_subnets` entries (when full, the least recently
//! seen eighth is evicted at once), entries expire after `subnet_ttl`,
//! and connection ages are tracked only for connections the last poll saw.
//! Only connections older than `min_connection_age` are sampled, and only
//! prefixes with `min_samples` samples are reported. Pure: time comes in.

use super::sockdiag::ConnSample;
use crate::config::LatencyLearningConfig;
use crate::gossip::wire::LatencyEntry;
use crate::netprefix::ClientPrefix;
use std::collections::HashMap;
use std::net::IpAddr;

/// Connections whose age is tracked at most (more are not sampled).
pub const MAX_TRACKED_CONNECTIONS: usize = 1_000_000;

/// A backend the agent serves: which local port (and address, unless
/// unspecified) belongs to which service.
#[derive(Clone, Debug)]
pub struct Listener {
    pub service: String,
    pub address: Option<IpAddr>,
    pub port: u16,
}

#[derive(Clone, Copy, Debug)]
struct Subnet {
    rtt_us: f64,
    samples: u32,
    last_ms: u64,
}

pub struct Subnets {
    cfg: LatencyLearningConfig,
    listeners: Vec<Listener>,
    map: HashMap<(u16, ClientPrefix), Subnet>,
    /// cookie → (first seen ms, poll generation last seen).
    ages: HashMap<u64, (u64, u64)>,
    generation: u64,
}

impl Subnets {
    pub fn new(cfg: LatencyLearningConfig, listeners: Vec<Listener>) -> Self {
        Subnets {
            cfg,
            listeners,
            map: HashMap::new(),
            ages: HashMap::new(),
            generation: 0,
        }
    }

    /// `opengslb_agent_latency_subnets`.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Starts a poll: samples offered until `end_poll` belong to it.
    pub fn begin_poll(&mut self) {
        self.generation += 1;
    }

    /// One connection from the kernel.
    pub fn offer(&mut self, s: ConnSample, now_ms: u64) {
        let Some(idx) = self.listeners.iter().position(|l| {
            l.port == s.local_port && l.address.is_none_or(|a| a.is_unspecified() || a == s.local)
        }) else {
            return;
        };
        let generation = self.generation;
        let tracked = self.ages.len();
        let first = match self.ages.entry(s.cookie) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                e.get_mut().1 = generation;
                e.get().0
            }
            std::collections::hash_map::Entry::Vacant(v) if tracked < MAX_TRACKED_CONNECTIONS => {
                v.insert((now_ms, generation));
                now_ms
            }
            std::collections::hash_map::Entry::Vacant(_) => return,
        };
        if now_ms.saturating_sub(first) < self.cfg.min_connection_age.as_millis() as u64
            || s.rtt_us == 0
        {
            return;
        }
        let prefix = ClientPrefix::of(
            s.peer,
            self.cfg.ipv4_prefix as u8,
            self.cfg.ipv6_prefix as u8,
        );
        let key = (idx as u16, prefix);
        if !self.map.contains_key(&key) && self.map.len() >= self.cfg.max_subnets {
            self.evict_oldest();
        }
        let a = self.cfg.ewma_alpha;
        let e = self.map.entry(key).or_insert(Subnet {
            rtt_us: s.rtt_us as f64,
            samples: 0,
            last_ms: now_ms,
        });
        e.rtt_us = a * s.rtt_us as f64 + (1.0 - a) * e.rtt_us;
        e.samples = e.samples.saturating_add(1);
        e.last_ms = now_ms;
    }

    /// Ends a poll: forgets connections it did not see and expired prefixes.
    pub fn end_poll(&mut self, now_ms: u64) {
        let g = self.generation;
        self.ages.retain(|_, (_, seen)| *seen == g);
        let ttl = self.cfg.subnet_ttl.as_millis() as u64;
        self.map
            .retain(|_, s| now_ms.saturating_sub(s.last_ms) <= ttl);
    }

    fn evict_oldest(&mut self) {
        let mut seen: Vec<u64> = self.map.values().map(|s| s.last_ms).collect();
        let cut = (seen.len() / 8).max(1).min(seen.len() - 1);
        let (_, nth, _) = seen.select_nth_unstable(cut);
        let nth = *nth;
        let mut room = cut;
        self.map.retain(|_, s| {
            if room > 0 && s.last_ms <= nth {
                room -= 1;
                false
            } else {
                true
            }
        });
    }

    /// The prefixes with enough samples, as report entries.
    pub fn report(&self) -> Vec<LatencyEntry> {
        let mut out: Vec<LatencyEntry> = self
            .map
            .iter()
            .filter(|(_, s)| s.samples >= self.cfg.min_samples)
            .map(|((idx, prefix), s)| LatencyEntry {
                service: self.listeners[*idx as usize].service.clone(),
                prefix: *prefix,
                rtt_us: s.rtt_us.round() as u32,
                samples: s.samples,
            })
            .collect();
        out.sort_by(|a, b| (&a.service, a.prefix).cmp(&(&b.service, b.prefix)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;

    fn cfg() -> LatencyLearningConfig {
        LatencyLearningConfig {
            enabled: true,
            min_connection_age: Dur::secs(5),
            ewma_alpha: 0.5,
            max_subnets: 16,
            subnet_ttl: Dur::secs(60),
            min_samples: 2,
            ..Default::default()
        }
    }

    fn sample(peer: &str, port: u16, rtt: u32, cookie: u64) -> ConnSample {
        ConnSample {
            local_port: port,
            local: "10.0.0.1".parse().unwrap(),
            peer: peer.parse().unwrap(),
            rtt_us: rtt,
            cookie,
        }
    }

    fn subnets() -> Subnets {
        Subnets::new(
            cfg(),
            vec![Listener {
                service: "app.gslb.example.com".into(),
                address: Some("10.0.0.1".parse().unwrap()),
                port: 80,
            }],
        )
    }

    fn poll(s: &mut Subnets, samples: &[ConnSample], now: u64) {
        s.begin_poll();
        for x in samples {
            s.offer(*x, now);
        }
        s.end_poll(now);
    }

    #[test]
    fn ewma_per_prefix_after_min_age_and_min_samples() {
        let mut s = subnets();
        let a = sample("192.0.2.10", 80, 10_000, 1);
        let b = sample("192.0.2.99", 80, 30_000, 2);
        let other_port = sample("192.0.2.11", 22, 1, 3);
        poll(&mut s, &[a, b, other_port], 0);
        assert!(s.is_empty(), "younger than min_connection_age");
        poll(&mut s, &[a, b, other_port], 5_000);
        assert_eq!(s.len(), 1);
        // 10000, then 0.5*30000 + 0.5*10000 = 20000.
        assert_eq!(s.report()[0].rtt_us, 20_000);
        assert_eq!(s.report()[0].prefix.to_string(), "192.0.2.0/24");
        assert_eq!(s.report()[0].samples, 2);
    }

    #[test]
    fn below_min_samples_is_not_reported_and_ttl_expires() {
        let mut s = subnets();
        let a = sample("2001:db8:5:1::7", 80, 4_000, 9);
        poll(&mut s, &[a], 0);
        poll(&mut s, &[a], 6_000);
        assert_eq!((s.len(), s.report().len()), (1, 0));
        poll(&mut s, &[], 70_000);
        assert!(s.is_empty());
    }

    #[test]
    fn bounded_by_max_subnets_and_tracked_connections_pruned() {
        let mut s = subnets();
        let many: Vec<ConnSample> = (0..40u64)
            .map(|i| sample(&format!("10.{i}.0.1"), 80, 1_000, i))
            .collect();
        poll(&mut s, &many, 0);
        poll(&mut s, &many, 5_000);
        assert!(s.len() <= 16, "{}", s.len());
        poll(&mut s, &many[..2], 6_000);
        assert_eq!(s.ages.len(), 2);
    }
}
