//! The checker's bookkeeping, without threads or clocks: which target is
//! due when, which probe is in flight, and what a finished probe does to
//! the target's rise/fall state.
//!
//! Every target has its own interval, stretched by a seeded ±10 % jitter at
//! each dispatch so targets with equal intervals drift apart. The first
//! probe of a new target is spread over `min(interval, 1s)` so a start or a
//! reload does not fire every probe at once, yet a fresh node has verdicts
//! within about a second. A target never has two probes in flight: while
//! one runs, the target is not dispatched again, and a check that becomes
//! due meanwhile runs as soon as the running one finishes.
//!
//! Each target entry carries an epoch, bumped when its spec changes on a
//! reload, so the result of a probe started under the old spec is dropped
//! instead of being counted against the new one.

use super::probe::ProbeSpec;
use super::thresholds::RiseFall;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

/// Caller-chosen identity of a target.
pub type TargetId = u64;

/// Shortest interval honoured; anything smaller would spin the scheduler.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Longest interval honoured; keeps deadline arithmetic far from overflow
/// whatever the configuration says.
pub const MAX_INTERVAL: Duration = Duration::from_secs(86_400);
/// Upper bound of the spread of first probes.
pub const FIRST_CHECK_SPREAD: Duration = Duration::from_secs(1);

/// One thing to check, with its schedule and thresholds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub id: TargetId,
    pub spec: ProbeSpec,
    pub interval: Duration,
    pub failure_threshold: u32,
    pub success_threshold: u32,
}

/// The outcome of one probe, sent for every probe (not only on changes) so
/// the consumer can keep the last check time and error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    pub id: TargetId,
    /// The verdict after thresholds.
    pub healthy: bool,
    /// The verdict differs from the previous one (or is the first).
    pub changed: bool,
    /// This probe succeeded.
    pub probe_ok: bool,
    /// This probe's error, when it failed.
    pub error: Option<String>,
    /// This probe's latency, when it succeeded.
    pub latency: Option<Duration>,
    pub at: SystemTime,
}

/// A probe to run, handed to a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub id: TargetId,
    pub epoch: u64,
    pub spec: ProbeSpec,
}

#[derive(Debug)]
struct Entry {
    target: Target,
    state: RiseFall,
    due: Instant,
    /// Epoch of the current spec.
    epoch: u64,
    /// Epoch of the probe running now, if any.
    in_flight: Option<u64>,
}

/// All targets and their timing.
#[derive(Debug)]
pub struct Schedule {
    entries: BTreeMap<TargetId, Entry>,
    rng: SplitMix64,
    next_epoch: u64,
}

impl Schedule {
    pub fn new(seed: u64) -> Schedule {
        Schedule {
            entries: BTreeMap::new(),
            rng: SplitMix64(seed),
            next_epoch: 1,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of targets with a probe running.
    pub fn in_flight(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.in_flight.is_some())
            .count()
    }

    /// The current verdict of a target (`None`: unknown target or no
    /// probe finished yet).
    pub fn verdict(&self, id: TargetId) -> Option<bool> {
        self.entries.get(&id).and_then(|e| e.state.verdict())
    }

    /// Replaces the target set. A target whose id and spec are unchanged
    /// keeps its rise/fall state and schedule (interval and thresholds are
    /// updated); every other one starts fresh. With duplicate ids the last
    /// one wins.
    pub fn set_targets(&mut self, targets: Vec<Target>, now: Instant) {
        let mut old = std::mem::take(&mut self.entries);
        for target in targets {
            let interval = clamp_interval(target.interval);
            let kept = old
                .remove(&target.id)
                .or_else(|| self.entries.remove(&target.id));
            let entry = match kept {
                Some(mut e) if e.target.spec == target.spec => {
                    e.state
                        .set_thresholds(target.failure_threshold, target.success_threshold);
                    if e.target.interval != target.interval {
                        let sooner = now + self.rng.jitter(interval);
                        e.due = e.due.min(sooner);
                    }
                    e.target = target;
                    e
                }
                previous => {
                    let epoch = self.next_epoch;
                    self.next_epoch += 1;
                    Entry {
                        state: RiseFall::new(target.failure_threshold, target.success_threshold),
                        due: now + self.rng.below(interval.min(FIRST_CHECK_SPREAD)),
                        epoch,
                        // A probe of the old spec may still run; do not
                        // start a second one beside it.
                        in_flight: previous.and_then(|p| p.in_flight),
                        target,
                    }
                }
            };
            self.entries.insert(entry.target.id, entry);
        }
    }

    /// Makes every target due now.
    pub fn check_now(&mut self, now: Instant) {
        for e in self.entries.values_mut() {
            e.due = e.due.min(now);
        }
    }

    /// Takes the probes due at `now`, marks them in flight and schedules
    /// each target's next probe one jittered interval later.
    pub fn take_due(&mut self, now: Instant) -> Vec<Job> {
        let mut jobs = Vec::new();
        for e in self.entries.values_mut() {
            if e.in_flight.is_some() || e.due > now {
                continue;
            }
            e.in_flight = Some(e.epoch);
            e.due = now + self.rng.jitter(clamp_interval(e.target.interval));
            jobs.push(Job {
                id: e.target.id,
                epoch: e.epoch,
                spec: e.target.spec.clone(),
            });
        }
        jobs
    }

    /// The earliest time a target not in flight is due; `None` when no
    /// target can be dispatched (none at all, or all in flight).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter(|e| e.in_flight.is_none())
            .map(|e| e.due)
            .min()
    }

    /// Records a finished probe. Returns the result to publish, or `None`
    /// when the target was removed or its spec changed meanwhile.
    pub fn complete(
        &mut self,
        id: TargetId,
        epoch: u64,
        outcome: Result<Duration, String>,
        at: SystemTime,
    ) -> Option<CheckResult> {
        let e = self.entries.get_mut(&id)?;
        if e.in_flight == Some(epoch) {
            e.in_flight = None;
        }
        if e.epoch != epoch {
            return None;
        }
        let probe_ok = outcome.is_ok();
        let verdict = e.state.record(probe_ok);
        let (latency, error) = match outcome {
            Ok(l) => (Some(l), None),
            Err(err) => (None, Some(err)),
        };
        Some(CheckResult {
            id,
            healthy: verdict.healthy,
            changed: verdict.changed,
            probe_ok,
            error,
            latency,
            at,
        })
    }
}

fn clamp_interval(interval: Duration) -> Duration {
    interval.clamp(MIN_INTERVAL, MAX_INTERVAL)
}

/// SplitMix64: tiny, seedable, good enough to spread probes.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, limit).
    fn below(&mut self, limit: Duration) -> Duration {
        limit.mul_f64(self.unit())
    }

    /// `interval` stretched by a factor in [0.9, 1.1).
    fn jitter(&mut self, interval: Duration) -> Duration {
        interval.mul_f64(0.9 + 0.2 * self.unit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CheckType, HealthCheck};

    fn spec(port: u16) -> ProbeSpec {
        let hc = HealthCheck {
            kind: CheckType::Tcp,
            ..HealthCheck::default()
        };
        ProbeSpec::from_config(&hc, "127.0.0.1", port).unwrap()
    }

    fn target(id: TargetId, port: u16, interval_ms: u64) -> Target {
        Target {
            id,
            spec: spec(port),
            interval: Duration::from_millis(interval_ms),
            failure_threshold: 2,
            success_threshold: 2,
        }
    }

    const T0: SystemTime = SystemTime::UNIX_EPOCH;

    #[test]
    fn first_checks_spread_within_a_second() {
        let now = Instant::now();
        let mut s = Schedule::new(7);
        s.set_targets(
            (0..50)
                .map(|i| target(i, 1000 + i as u16, 30_000))
                .collect(),
            now,
        );
        let first = s.take_due(now).len();
        assert!(first < 5, "not all at once: {first}");
        let half = s.take_due(now + FIRST_CHECK_SPREAD / 2).len();
        assert!(half > 10 && half < 40, "spread: {half}");
        let rest = s.take_due(now + FIRST_CHECK_SPREAD).len();
        assert_eq!(first + half + rest, 50);
        assert_eq!(s.in_flight(), 50);
    }

    #[test]
    fn first_check_within_short_interval() {
        let now = Instant::now();
        let mut s = Schedule::new(1);
        s.set_targets(vec![target(1, 1, 100)], now);
        let d = s.next_deadline().unwrap();
        assert!(d < now + Duration::from_millis(100));
    }

    #[test]
    fn next_due_is_jittered_interval_after_dispatch() {
        let now = Instant::now();
        let mut s = Schedule::new(3);
        s.set_targets(vec![target(1, 1, 1000)], now);
        let t = now + FIRST_CHECK_SPREAD;
        for round in 0..20u64 {
            let at = t + Duration::from_secs(2 * round);
            let jobs = s.take_due(at);
            assert_eq!(jobs.len(), 1);
            s.complete(1, jobs[0].epoch, Ok(Duration::ZERO), T0);
            let next = s.next_deadline().unwrap() - at;
            assert!(
                next >= Duration::from_millis(900) && next < Duration::from_millis(1100),
                "{next:?}"
            );
        }
    }

    #[test]
    fn in_flight_target_is_not_dispatched_twice() {
        let now = Instant::now();
        let mut s = Schedule::new(3);
        s.set_targets(vec![target(1, 1, 100)], now);
        let t = now + Duration::from_secs(1);
        let jobs = s.take_due(t);
        assert_eq!(jobs.len(), 1);
        assert_eq!(s.next_deadline(), None);
        assert!(s.take_due(t + Duration::from_secs(10)).is_empty());
        s.check_now(t + Duration::from_secs(10));
        assert!(s.take_due(t + Duration::from_secs(10)).is_empty());
        // It was overdue while running: due again as soon as it finishes.
        s.complete(1, jobs[0].epoch, Err("x".into()), T0);
        assert_eq!(s.take_due(t + Duration::from_secs(10)).len(), 1);
    }

    #[test]
    fn check_now_makes_everything_due() {
        let now = Instant::now();
        let mut s = Schedule::new(3);
        s.set_targets(vec![target(1, 1, 60_000), target(2, 2, 60_000)], now);
        let t = now + FIRST_CHECK_SPREAD;
        for j in s.take_due(t) {
            s.complete(j.id, j.epoch, Ok(Duration::ZERO), T0);
        }
        assert!(s.take_due(t).is_empty());
        s.check_now(t);
        assert_eq!(s.take_due(t).len(), 2);
    }

    #[test]
    fn results_apply_thresholds() {
        let now = Instant::now();
        let mut s = Schedule::new(3);
        s.set_targets(vec![target(1, 1, 100)], now);
        let mut t = now + FIRST_CHECK_SPREAD;
        let mut run = |s: &mut Schedule, ok: bool| {
            t += Duration::from_secs(1);
            let j = s.take_due(t).pop().unwrap();
            let outcome = if ok {
                Ok(Duration::from_millis(3))
            } else {
                Err("HTTP 503".to_string())
            };
            s.complete(j.id, j.epoch, outcome, T0).unwrap()
        };
        let r = run(&mut s, true);
        assert!(
            r.healthy && r.changed && r.probe_ok && r.latency == Some(Duration::from_millis(3))
        );
        let r = run(&mut s, false);
        assert!(r.healthy && !r.changed && !r.probe_ok && r.error.as_deref() == Some("HTTP 503"));
        let r = run(&mut s, false);
        assert!(!r.healthy && r.changed);
    }

    #[test]
    fn reload_keeps_state_only_for_unchanged_spec() {
        let now = Instant::now();
        let mut s = Schedule::new(3);
        s.set_targets(
            vec![target(1, 1, 100), target(2, 2, 100), target(3, 3, 100)],
            now,
        );
        let t = now + FIRST_CHECK_SPREAD;
        for j in s.take_due(t) {
            s.complete(j.id, j.epoch, Ok(Duration::ZERO), T0);
        }
        assert_eq!(s.verdict(1), Some(true));
        // 1 unchanged (new interval and thresholds), 2 new spec, 3 removed.
        let mut one = target(1, 1, 500);
        one.failure_threshold = 1;
        s.set_targets(vec![one, target(2, 22, 100)], t);
        assert_eq!(s.len(), 2);
        assert_eq!(s.verdict(1), Some(true));
        assert_eq!(s.verdict(2), None);
        assert_eq!(s.verdict(3), None);
        // The new threshold (1) applies to the kept state.
        let t2 = t + Duration::from_secs(2);
        let jobs = s.take_due(t2);
        let j1 = jobs.iter().find(|j| j.id == 1).unwrap();
        let r = s.complete(1, j1.epoch, Err("down".into()), T0).unwrap();
        assert!(!r.healthy && r.changed);
    }

    #[test]
    fn stale_results_are_dropped_after_spec_change_or_removal() {
        let now = Instant::now();
        let mut s = Schedule::new(3);
        s.set_targets(vec![target(1, 1, 100), target(2, 2, 100)], now);
        let t = now + FIRST_CHECK_SPREAD;
        let jobs = s.take_due(t);
        assert_eq!(jobs.len(), 2);
        s.set_targets(vec![target(1, 11, 100)], t);
        // The old-spec probe still runs: no second probe for target 1.
        assert!(s.take_due(t + Duration::from_secs(5)).is_empty());
        for j in &jobs {
            assert_eq!(s.complete(j.id, j.epoch, Ok(Duration::ZERO), T0), None);
        }
        assert_eq!(s.verdict(1), None);
        let fresh = s.take_due(t + Duration::from_secs(5));
        assert_eq!(fresh.len(), 1);
        assert_eq!(fresh[0].spec, spec(11));
        assert!(
            s.complete(1, fresh[0].epoch, Ok(Duration::ZERO), T0)
                .is_some()
        );
    }

    #[test]
    fn zero_interval_is_clamped() {
        let now = Instant::now();
        let mut s = Schedule::new(3);
        s.set_targets(vec![target(1, 1, 0)], now);
        let j = s.take_due(now + FIRST_CHECK_SPREAD).pop().unwrap();
        s.complete(1, j.epoch, Ok(Duration::ZERO), T0);
        assert!(s.next_deadline().unwrap() >= now + FIRST_CHECK_SPREAD + MIN_INTERVAL.mul_f64(0.9));
    }

    #[test]
    fn huge_interval_is_clamped_not_a_panic() {
        let now = Instant::now();
        let mut s = Schedule::new(3);
        s.set_targets(vec![target(1, 1, u64::MAX)], now);
        let j = s.take_due(now + FIRST_CHECK_SPREAD).pop().unwrap();
        s.complete(1, j.epoch, Ok(Duration::ZERO), T0);
        assert!(s.next_deadline().unwrap() <= now + FIRST_CHECK_SPREAD + MAX_INTERVAL.mul_f64(1.1));
    }

    #[test]
    fn jitter_is_deterministic_per_seed() {
        let mut a = SplitMix64(42);
        let mut b = SplitMix64(42);
        for _ in 0..100 {
            let d = Duration::from_secs(10);
            let (x, y) = (a.jitter(d), b.jitter(d));
            assert_eq!(x, y);
            assert!(x >= Duration::from_secs(9) && x < Duration::from_secs(11));
        }
    }
}
