//! One clock for every loop: a `Now` read once per loop turn and passed
//! down, never read inside protocol or registry logic.
//!
//! `Now` carries two readings taken together. `mono` is milliseconds on the
//! process's monotonic clock: every deadline, timeout, staleness and
//! watchdog comparison uses it, so a wall-clock step (NTP, an operator's
//! `date -s`) can neither stall a loop nor make an agent stale. `wall_ms`
//! is unix milliseconds: message stamps, the replay window and times shown
//! to operators use it. Tests build a `Now` from made-up numbers with
//! `Now::at` and step either part independently.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds on the process's monotonic clock. Never steps; comparable
/// only with other `Mono` values of the same process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mono(pub u64);

impl Mono {
    pub fn ms(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating (a deadline derived from a configured duration
    /// must not overflow whatever the operator wrote).
    pub fn after(self, d: Duration) -> Mono {
        Mono(
            self.0
                .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }

    /// Time elapsed from `earlier` to `self`; zero when `earlier` is later.
    pub fn since(self, earlier: Mono) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// Time left from `self` until `deadline`; zero when it has passed.
    pub fn until(self, deadline: Mono) -> Duration {
        deadline.since(self)
    }
}

/// One reading of both clocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    pub mono: Mono,
    pub wall_ms: u64,
}

impl Now {
    /// Reads both clocks. Only I/O loops call this, once per turn.
    pub fn read() -> Now {
        let mono = Mono(u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX));
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Now { mono, wall_ms }
    }

    /// A made-up reading, for tests and simulations.
    pub fn at(mono_ms: u64, wall_ms: u64) -> Now {
        Now {
            mono: Mono(mono_ms),
            wall_ms,
        }
    }

    pub fn wall_secs(&self) -> u64 {
        self.wall_ms / 1000
    }

    /// The wall-clock time (unix ms) of an earlier monotonic instant, as
    /// seen from this reading: for showing "last seen" to an operator
    /// without keeping a second, steppable stamp.
    pub fn wall_of(&self, then: Mono) -> u64 {
        self.wall_ms
            .saturating_sub(self.mono.0.saturating_sub(then.0))
    }

    /// This reading advanced by `d` on both clocks (simulations).
    pub fn advanced(&self, d: Duration) -> Now {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Now::at(
            self.mono.0.saturating_add(ms),
            self.wall_ms.saturating_add(ms),
        )
    }
}

/// The process's monotonic epoch: the first time anything read the clock.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// A loop's proof of progress for the watchdog. The loop beats with the
/// `mono` of each turn; the supervisor asks, on the same clock, whether it
/// beat recently. Shared behind an `Arc`; one atomic store per beat.
#[derive(Debug)]
pub struct Liveness {
    last: AtomicU64,
}

impl Default for Liveness {
    fn default() -> Self {
        Self::new()
    }
}

impl Liveness {
    /// Stamped now, so a loop that has not turned yet is not reported stuck
    /// before it had the chance.
    pub fn new() -> Liveness {
        Liveness {
            last: AtomicU64::new(Now::read().mono.0),
        }
    }

    pub fn beat(&self, now: Mono) {
        self.last.store(now.0, Ordering::Relaxed);
    }

    pub fn last(&self) -> Mono {
        Mono(self.last.load(Ordering::Relaxed))
    }

    /// Whether the loop beat within `within` of `now`.
    pub fn fresh(&self, now: Mono, within: Duration) -> bool {
        now.since(self.last()) < within
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_arithmetic_saturates() {
        assert_eq!(Mono(5).since(Mono(9)), Duration::ZERO);
        assert_eq!(Mono(9).since(Mono(5)), Duration::from_millis(4));
        assert_eq!(Mono(u64::MAX - 1).after(Duration::MAX), Mono(u64::MAX));
        assert_eq!(Mono(10).until(Mono(4)), Duration::ZERO);
    }

    #[test]
    fn wall_of_follows_the_monotonic_distance() {
        let now = Now::at(10_000, 1_700_000_010_000);
        assert_eq!(now.wall_of(Mono(4_000)), 1_700_000_004_000);
        assert_eq!(now.wall_of(Mono(20_000)), 1_700_000_010_000);
    }

    #[test]
    fn liveness_compares_monotonic_with_monotonic() {
        let l = Liveness::new();
        l.beat(Mono(1_000));
        assert!(l.fresh(Mono(5_999), Duration::from_secs(5)));
        assert!(!l.fresh(Mono(6_000), Duration::from_secs(5)));
        // A reading taken before the beat (another thread's older Now) is fresh.
        assert!(l.fresh(Mono(500), Duration::from_secs(5)));
    }

    #[test]
    fn reads_are_monotonic() {
        let a = Now::read();
        let b = Now::read();
        assert!(b.mono >= a.mono);
    }
}
