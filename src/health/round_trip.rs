//! The smoothed round trip of one backend, from the Overwatch's own
//! health checks, for `latency` routing (SPEC §11).
//!
//! Each successful probe's round trip enters an exponentially weighted
//! moving average (`domains[].latency_config.smoothing_factor`, the weight
//! of the newest sample; the first sample is the average). The average
//! counts once it has `min_samples` samples and while it is not above
//! `max_latency_ms`. To keep DNS from being rebuilt for every probe, the
//! value DNS was last given is remembered: `republish` says when it moved
//! enough (usable or not, or by more than `REPUBLISH_RATIO` and
//! `REPUBLISH_FLOOR_US`) to be worth a new table. Pure: no clock, no I/O.

use crate::config::LatencyConfig;
use std::time::Duration;

/// Relative move of the average that makes DNS take it again.
pub const REPUBLISH_RATIO: f64 = 0.05;
/// Absolute move (µs) below which DNS is not rebuilt, whatever the ratio
/// (loopback jitter of a few µs must not rebuild the table).
pub const REPUBLISH_FLOOR_US: u32 = 500;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RoundTrip {
    /// The smoothed round trip, microseconds.
    smoothed_us: f64,
    samples: u32,
    /// What `republish` last handed on (None: not usable then).
    published: Option<u32>,
}

impl RoundTrip {
    /// Takes one probe's round trip in with weight `alpha` (clamped to
    /// (0, 1]; a non-finite alpha counts as 1).
    pub fn observe(&mut self, sample: Duration, alpha: f64) {
        let x = sample.as_secs_f64() * 1e6;
        let a = if alpha.is_finite() {
            alpha.clamp(f64::MIN_POSITIVE, 1.0)
        } else {
            1.0
        };
        self.smoothed_us = if self.samples == 0 {
            x
        } else {
            a * x + (1.0 - a) * self.smoothed_us
        };
        self.samples = self.samples.saturating_add(1);
    }

    pub fn samples(&self) -> u32 {
        self.samples
    }

    /// The average in microseconds (rounded), whatever the settings.
    pub fn smoothed_us(&self) -> u32 {
        self.smoothed_us.round().min(u32::MAX as f64) as u32
    }

    /// The average in microseconds when routing may use it: at least
    /// `min_samples` samples and not above `max_latency_ms`.
    pub fn usable(&self, cfg: &LatencyConfig) -> Option<u32> {
        let us = self.smoothed_us();
        let max_us = u64::from(cfg.max_latency_ms) * 1000;
        (self.samples >= cfg.min_samples.max(1) && u64::from(us) <= max_us).then_some(us)
    }

    /// True when DNS should take the average again (and remembers that it
    /// did): it became usable or unusable, or moved by more than
    /// `REPUBLISH_RATIO` and `REPUBLISH_FLOOR_US` since it last did.
    pub fn republish(&mut self, cfg: &LatencyConfig) -> bool {
        let now = self.usable(cfg);
        let moved = match (self.published, now) {
            (None, None) => false,
            (Some(old), Some(new)) => {
                let diff = old.abs_diff(new);
                diff > REPUBLISH_FLOOR_US && f64::from(diff) > f64::from(old) * REPUBLISH_RATIO
            }
            _ => true,
        };
        if moved {
            self.published = now;
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(alpha: f64, max_ms: u32, min: u32) -> LatencyConfig {
        LatencyConfig {
            smoothing_factor: alpha,
            max_latency_ms: max_ms,
            min_samples: min,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn first_sample_is_the_average_then_it_smooths() {
        let mut r = RoundTrip::default();
        r.observe(ms(100), 0.5);
        assert_eq!(r.smoothed_us(), 100_000);
        r.observe(ms(200), 0.5);
        assert_eq!(r.smoothed_us(), 150_000);
        r.observe(ms(150), 0.2);
        assert_eq!(r.smoothed_us(), 150_000);
        r.observe(ms(50), 1.0);
        assert_eq!(r.smoothed_us(), 50_000);
        assert_eq!(r.samples(), 4);
    }

    #[test]
    fn odd_alphas_are_clamped() {
        let mut r = RoundTrip::default();
        r.observe(ms(10), f64::NAN);
        r.observe(ms(20), f64::NAN);
        assert_eq!(r.smoothed_us(), 20_000);
        r.observe(ms(40), 7.0);
        assert_eq!(r.smoothed_us(), 40_000);
        r.observe(ms(80), -1.0);
        assert_eq!(r.smoothed_us(), 40_000);
    }

    #[test]
    fn usable_needs_min_samples_and_stays_under_the_maximum() {
        let c = cfg(0.5, 100, 3);
        let mut r = RoundTrip::default();
        r.observe(ms(10), c.smoothing_factor);
        r.observe(ms(10), c.smoothing_factor);
        assert_eq!(r.usable(&c), None);
        r.observe(ms(10), c.smoothing_factor);
        assert_eq!(r.usable(&c), Some(10_000));
        r.observe(ms(400), c.smoothing_factor);
        assert_eq!(r.smoothed_us(), 205_000);
        assert_eq!(r.usable(&c), None, "above max_latency_ms");
        assert_eq!(r.usable(&cfg(0.5, 1000, 3)), Some(205_000));
        // min_samples 0 is read as 1.
        let mut fresh = RoundTrip::default();
        assert_eq!(fresh.usable(&cfg(0.5, 100, 0)), None);
        fresh.observe(ms(1), 0.5);
        assert_eq!(fresh.usable(&cfg(0.5, 100, 0)), Some(1000));
    }

    #[test]
    fn republish_on_usability_and_on_real_moves_only() {
        let c = cfg(1.0, 1000, 2);
        let mut r = RoundTrip::default();
        r.observe(ms(10), 1.0);
        assert!(!r.republish(&c), "not usable yet: nothing to say");
        r.observe(ms(10), 1.0);
        assert!(r.republish(&c), "became usable");
        assert!(!r.republish(&c), "said already");
        r.observe(Duration::from_micros(10_400), 1.0);
        assert!(!r.republish(&c), "4 % is noise");
        r.observe(ms(12), 1.0);
        assert!(r.republish(&c), "20 % is a move");
        // Small absolute moves stay quiet however large the ratio.
        let mut tiny = RoundTrip::default();
        tiny.observe(Duration::from_micros(50), 1.0);
        tiny.observe(Duration::from_micros(50), 1.0);
        assert!(tiny.republish(&c));
        tiny.observe(Duration::from_micros(400), 1.0);
        assert!(!tiny.republish(&c));
        // Going above the maximum is a change.
        r.observe(ms(2000), 1.0);
        assert!(r.republish(&c));
        assert!(!r.republish(&c));
    }
}
