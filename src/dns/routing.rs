//! Choosing which addresses of a name go into an answer.
//!
//! Every algorithm reduces to "a rotation of the healthy list, starting at
//! some index, of some length": round-robin starts at a per-name counter,
//! weighted starts at the next entry of a precomputed smooth weighted
//! round-robin sequence (the nginx algorithm, deterministic), failover
//! always starts at the first healthy target in priority order. `latency`
//! is round-robin over the targets `fastest` keeps: those whose smoothed
//! check round trip is within `NEAR_TIE` of the lowest. A `Pool`
//! is built once per table (per name and address family) and picking from
//! it costs one relaxed atomic increment and no allocation.

use crate::config::RoutingAlgorithm;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Longest weighted sequence we precompute; weights are scaled down to fit.
const MAX_SEQUENCE: u64 = 4096;

#[derive(Debug)]
pub struct Pool {
    addrs: Vec<IpAddr>,
    algorithm: RoutingAlgorithm,
    /// Records per answer.
    count: usize,
    /// Weighted only: indices into `addrs`, one full smooth-WRR cycle.
    sequence: Vec<u16>,
    counter: AtomicUsize,
}

/// The addresses chosen for one answer: `count` entries of `addrs` starting
/// at `start`, wrapping around.
#[derive(Clone, Debug)]
pub struct Pick<'a> {
    addrs: &'a [IpAddr],
    start: usize,
    count: usize,
    next: usize,
}

impl Iterator for Pick<'_> {
    type Item = IpAddr;

    fn next(&mut self) -> Option<IpAddr> {
        if self.next >= self.count || self.addrs.is_empty() {
            return None;
        }
        let i = (self.start + self.next) % self.addrs.len();
        self.next += 1;
        self.addrs.get(i).copied()
    }
}

impl Pick<'_> {
    /// Index in the pool's addresses of the first address of the answer.
    pub fn start(&self) -> usize {
        self.start
    }

    pub fn len(&self) -> usize {
        self.count.min(self.addrs.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Pool {
    /// `targets` in priority order, all of one address family. The
    /// client-dependent algorithms and `latency` answer like round-robin
    /// here: the table narrows their targets first (`Regional`, `fastest`).
    pub fn new(
        targets: &[(IpAddr, u32)],
        algorithm: RoutingAlgorithm,
        max_records: Option<usize>,
    ) -> Pool {
        // Keep at most u16::MAX targets so sequence indices fit.
        let targets = targets
            .get(..targets.len().min(u16::MAX as usize))
            .unwrap_or(&[]);
        let addrs: Vec<IpAddr> = targets.iter().map(|t| t.0).collect();
        let default_count = match algorithm {
            RoutingAlgorithm::Weighted | RoutingAlgorithm::Failover => 1,
            _ => addrs.len(),
        };
        let count = max_records.unwrap_or(default_count).max(1).min(addrs.len());
        let sequence = if algorithm == RoutingAlgorithm::Weighted {
            let weights: Vec<u32> = targets.iter().map(|t| t.1).collect();
            smooth_wrr_sequence(&weights)
        } else {
            Vec::new()
        };
        Pool {
            addrs,
            algorithm,
            count,
            sequence,
            counter: AtomicUsize::new(0),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    pub fn addrs(&self) -> &[IpAddr] {
        &self.addrs
    }

    /// Addresses per answer (what `pick().len()` will be), without picking.
    pub fn answer_len(&self) -> usize {
        self.count.min(self.addrs.len())
    }

    /// The addresses for the next answer.
    pub fn pick(&self) -> Pick<'_> {
        let n = self.addrs.len();
        let start = if n == 0 {
            0
        } else {
            match self.algorithm {
                RoutingAlgorithm::Failover => 0,
                RoutingAlgorithm::Weighted if !self.sequence.is_empty() => {
                    let c = self.counter.fetch_add(1, Ordering::Relaxed);
                    self.sequence
                        .get(c % self.sequence.len())
                        .map_or(0, |&i| i as usize)
                }
                _ => self.counter.fetch_add(1, Ordering::Relaxed) % n,
            }
        };
        Pick {
            addrs: &self.addrs,
            start,
            count: self.count,
            next: 0,
        }
    }
}

/// Backends within this fraction of the lowest round trip share the answers.
pub const NEAR_TIE: f64 = 0.10;

/// `latency`: the targets whose smoothed round trip (`round_trips`, µs by
/// address) is within `NEAR_TIE` of the lowest, fastest first; every
/// target, unchanged, when none has a round trip (no data: round-robin).
pub fn fastest(targets: &[(IpAddr, u32)], round_trips: &[(IpAddr, u32)]) -> Vec<(IpAddr, u32)> {
    let rtt = |ip: &IpAddr| round_trips.iter().find(|(a, _)| a == ip).map(|r| r.1);
    let Some(best) = targets.iter().filter_map(|t| rtt(&t.0)).min() else {
        return targets.to_vec();
    };
    let limit = f64::from(best) * (1.0 + NEAR_TIE);
    let mut near: Vec<(u32, (IpAddr, u32))> = targets
        .iter()
        .filter_map(|t| rtt(&t.0).map(|r| (r, *t)))
        .filter(|(r, _)| f64::from(*r) <= limit)
        .collect();
    near.sort_by_key(|(r, _)| *r);
    near.into_iter().map(|(_, t)| t).collect()
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// One full cycle of nginx's smooth weighted round-robin over `weights`.
/// Zero weights never start an answer unless every weight is zero, in which
/// case all count as equal. Weights are reduced by their gcd and scaled so
/// the cycle stays at most `MAX_SEQUENCE` long (every positive weight keeps
/// at least one slot).
pub fn smooth_wrr_sequence(weights: &[u32]) -> Vec<u16> {
    let mut w: Vec<u64> = weights.iter().map(|&x| u64::from(x)).collect();
    if w.iter().all(|&x| x == 0) {
        w.iter_mut().for_each(|x| *x = 1);
    }
    let g = w.iter().copied().fold(0, gcd).max(1);
    w.iter_mut().for_each(|x| *x /= g);
    let total: u64 = w.iter().sum();
    if total > MAX_SEQUENCE {
        w.iter_mut().for_each(|x| {
            if *x > 0 {
                *x = (*x * MAX_SEQUENCE / total).max(1);
            }
        });
    }
    let total: i64 = w.iter().map(|&x| x as i64).sum();
    let mut current = vec![0i64; w.len()];
    let mut seq = Vec::with_capacity(total.max(0) as usize);
    for _ in 0..total {
        for (cur, &wi) in current.iter_mut().zip(&w) {
            *cur += wi as i64;
        }
        let mut best: Option<(usize, i64)> = None;
        for (i, (&cur, &wi)) in current.iter().zip(&w).enumerate() {
            if wi > 0 && best.is_none_or(|(_, b)| cur > b) {
                best = Some((i, cur));
            }
        }
        let Some((b, _)) = best else { break };
        if let Some(c) = current.get_mut(b) {
            *c -= total;
        }
        seq.push(b as u16);
    }
    seq
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn targets(list: &[(&str, u32)]) -> Vec<(IpAddr, u32)> {
        list.iter().map(|(a, w)| (ip(a), *w)).collect()
    }

    #[test]
    fn nginx_sequence_for_5_1_1() {
        // The example from nginx's commit introducing smooth WRR.
        assert_eq!(smooth_wrr_sequence(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn weighted_is_proportional_and_deterministic() {
        let t = targets(&[("10.0.0.1", 300), ("10.0.0.2", 100)]);
        let pool = Pool::new(&t, RoutingAlgorithm::Weighted, None);
        let mut first = 0;
        for _ in 0..400 {
            let p: Vec<_> = pool.pick().collect();
            assert_eq!(p.len(), 1);
            if p[0] == ip("10.0.0.1") {
                first += 1;
            }
        }
        assert_eq!(first, 300);
    }

    #[test]
    fn zero_weight_never_starts_unless_all_zero() {
        assert_eq!(smooth_wrr_sequence(&[0, 2]), vec![1]);
        assert_eq!(smooth_wrr_sequence(&[0, 0]), vec![0, 1]);
        assert!(smooth_wrr_sequence(&[]).is_empty());
    }

    #[test]
    fn huge_weights_are_scaled() {
        let seq = smooth_wrr_sequence(&[u32::MAX, 1, 7]);
        assert!(seq.len() as u64 <= MAX_SEQUENCE + 2);
        assert!(seq.contains(&1) && seq.contains(&2));
    }

    #[test]
    fn round_robin_rotates_every_address() {
        let t = targets(&[("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)]);
        let pool = Pool::new(&t, RoutingAlgorithm::RoundRobin, None);
        let a: Vec<_> = pool.pick().collect();
        let b: Vec<_> = pool.pick().collect();
        assert_eq!(a, vec![ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")]);
        assert_eq!(b, vec![ip("10.0.0.2"), ip("10.0.0.3"), ip("10.0.0.1")]);
    }

    #[test]
    fn failover_first_healthy_and_max_records() {
        let t = targets(&[("10.0.0.5", 1), ("10.0.0.6", 1), ("10.0.0.7", 1)]);
        let pool = Pool::new(&t, RoutingAlgorithm::Failover, None);
        for _ in 0..3 {
            assert_eq!(pool.pick().collect::<Vec<_>>(), vec![ip("10.0.0.5")]);
        }
        let pool = Pool::new(&t, RoutingAlgorithm::Failover, Some(2));
        assert_eq!(
            pool.pick().collect::<Vec<_>>(),
            vec![ip("10.0.0.5"), ip("10.0.0.6")]
        );
        let pool = Pool::new(&t, RoutingAlgorithm::RoundRobin, Some(1));
        assert_eq!(pool.pick().len(), 1);
        let pool = Pool::new(&t, RoutingAlgorithm::RoundRobin, Some(99));
        assert_eq!(pool.pick().len(), 3);
    }

    #[test]
    fn latency_answers_the_fastest_and_rotates_near_ties() {
        let t = targets(&[("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)]);
        // Lowest wins alone.
        let rtt = [(ip("10.0.0.1"), 30_000), (ip("10.0.0.2"), 10_000)];
        let f = fastest(&t, &rtt);
        assert_eq!(f, targets(&[("10.0.0.2", 1)]));
        let pool = Pool::new(&f, RoutingAlgorithm::Latency, None);
        for _ in 0..3 {
            assert_eq!(pool.pick().collect::<Vec<_>>(), vec![ip("10.0.0.2")]);
        }
        // Within 10 %: both answer, in rotation, fastest first.
        let rtt = [
            (ip("10.0.0.1"), 10_900),
            (ip("10.0.0.2"), 10_000),
            (ip("10.0.0.3"), 11_001),
        ];
        let f = fastest(&t, &rtt);
        assert_eq!(f, targets(&[("10.0.0.2", 1), ("10.0.0.1", 1)]));
        let pool = Pool::new(&f, RoutingAlgorithm::Latency, Some(1));
        let firsts: Vec<IpAddr> = (0..4).map(|_| pool.pick().next().unwrap()).collect();
        assert_eq!(
            firsts,
            vec![
                ip("10.0.0.2"),
                ip("10.0.0.1"),
                ip("10.0.0.2"),
                ip("10.0.0.1")
            ]
        );
        // A target without data never beats one with data.
        let f = fastest(&t, &[(ip("10.0.0.3"), 900_000)]);
        assert_eq!(f, targets(&[("10.0.0.3", 1)]));
        // Round trips of targets not in the pool (unhealthy, the other
        // family) do not count.
        let f = fastest(&t, &[(ip("10.0.0.9"), 1), (ip("10.0.0.1"), 5)]);
        assert_eq!(f, targets(&[("10.0.0.1", 1)]));
    }

    #[test]
    fn latency_without_data_is_round_robin_over_every_target() {
        let t = targets(&[("10.0.0.1", 1), ("10.0.0.2", 1)]);
        assert_eq!(fastest(&t, &[]), t);
        let pool = Pool::new(&fastest(&t, &[]), RoutingAlgorithm::Latency, None);
        let a: Vec<_> = pool.pick().collect();
        let b: Vec<_> = pool.pick().collect();
        assert_eq!(a, vec![ip("10.0.0.1"), ip("10.0.0.2")]);
        assert_eq!(b, vec![ip("10.0.0.2"), ip("10.0.0.1")]);
        assert!(fastest(&[], &[(ip("10.0.0.1"), 1)]).is_empty());
    }

    #[test]
    fn empty_pool_picks_nothing() {
        let pool = Pool::new(&[], RoutingAlgorithm::Weighted, Some(3));
        assert!(pool.pick().next().is_none());
        assert!(pool.is_empty());
    }
}
