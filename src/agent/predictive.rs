//! Predictive signals: CPU %, memory % and the error rate of the agent's
//! own checks. A signal above its threshold drains the agent's backends
//! with that reason; it lifts only after the value stayed at or below the
//! threshold for `bleed_duration` (hysteresis, so it does not flap).
//!
//! Parsing of `/proc/stat` and `/proc/meminfo` and the hysteresis are pure;
//! `sample_system` is the only function that reads files.

use crate::config::PredictiveConfig;
use std::collections::VecDeque;
use std::time::Duration;

/// Cumulative CPU jiffies from the first line of `/proc/stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub busy: u64,
    pub total: u64,
}

pub fn parse_proc_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    if fields.len() < 4 {
        return None;
    }
    let total: u64 = fields.iter().take(8).sum();
    // idle + iowait are not busy.
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Some(CpuTimes {
        busy: total.saturating_sub(idle),
        total,
    })
}

/// CPU use between two samples, 0.0–1.0.
pub fn cpu_fraction(before: CpuTimes, after: CpuTimes) -> Option<f64> {
    let total = after.total.checked_sub(before.total)?;
    let busy = after.busy.checked_sub(before.busy)?;
    (total > 0).then(|| busy as f64 / total as f64)
}

/// Used memory, 0.0–1.0, from `/proc/meminfo` (MemTotal − MemAvailable).
pub fn parse_meminfo(text: &str) -> Option<f64> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let total = field("MemTotal:")?;
    let available = field("MemAvailable:")?;
    (total > 0).then(|| total.saturating_sub(available) as f64 / total as f64)
}

/// Thresholds above 1 are percentages (`85` = 0.85).
pub fn normalize_threshold(t: f64) -> f64 {
    if t > 1.0 { t / 100.0 } else { t }
}

/// One signal's hysteresis.
#[derive(Clone, Debug, Default)]
pub struct Hysteresis {
    pub active: bool,
    below_since_ms: Option<u64>,
}

impl Hysteresis {
    /// Feeds one value; returns true when the active state changed.
    pub fn update(&mut self, value: f64, threshold: f64, bleed: Duration, now_ms: u64) -> bool {
        if value > threshold {
            self.below_since_ms = None;
            if !self.active {
                self.active = true;
                return true;
            }
            return false;
        }
        if !self.active {
            return false;
        }
        let since = *self.below_since_ms.get_or_insert(now_ms);
        if now_ms.saturating_sub(since) >= bleed.as_millis() as u64 {
            self.active = false;
            self.below_since_ms = None;
            return true;
        }
        false
    }
}

/// Outcomes of the agent's own checks over a sliding window.
#[derive(Clone, Debug, Default)]
pub struct ErrorWindow {
    samples: VecDeque<(u64, bool)>,
}

impl ErrorWindow {
    pub fn record(&mut self, ok: bool, now_ms: u64, window: Duration) {
        self.samples.push_back((now_ms, ok));
        self.trim(now_ms, window);
    }

    pub fn trim(&mut self, now_ms: u64, window: Duration) {
        let floor = now_ms.saturating_sub(window.as_millis() as u64);
        while self.samples.front().is_some_and(|(t, _)| *t < floor) {
            self.samples.pop_front();
        }
        // Bound memory whatever the check rate.
        while self.samples.len() > 10_000 {
            self.samples.pop_front();
        }
    }

    /// Failed fraction, or None with no samples.
    pub fn rate(&self) -> Option<f64> {
        if self.samples.is_empty() {
            return None;
        }
        let failed = self.samples.iter().filter(|(_, ok)| !ok).count();
        Some(failed as f64 / self.samples.len() as f64)
    }
}

/// The three signals together; `reason()` names the first active one.
#[derive(Clone, Debug, Default)]
pub struct Predictor {
    pub cpu: Hysteresis,
    pub memory: Hysteresis,
    pub errors: Hysteresis,
    pub last_cpu: Option<f64>,
    pub last_memory: Option<f64>,
    pub errors_window: ErrorWindow,
}

impl Predictor {
    /// Feeds the latest values; true when the drain reason changed.
    pub fn update(
        &mut self,
        cfg: &PredictiveConfig,
        cpu: Option<f64>,
        memory: Option<f64>,
        now_ms: u64,
    ) -> bool {
        if !cfg.enabled {
            return false;
        }
        let before = self.reason(cfg);
        if let Some(v) = cpu {
            self.last_cpu = Some(v);
            self.cpu.update(
                v,
                normalize_threshold(cfg.cpu.threshold),
                *cfg.cpu.bleed_duration,
                now_ms,
            );
        }
        if let Some(v) = memory {
            self.last_memory = Some(v);
            self.memory.update(
                v,
                normalize_threshold(cfg.memory.threshold),
                *cfg.memory.bleed_duration,
                now_ms,
            );
        }
        self.errors_window.trim(now_ms, *cfg.error_rate.window);
        if let Some(rate) = self.errors_window.rate() {
            self.errors.update(
                rate,
                normalize_threshold(cfg.error_rate.threshold),
                *cfg.error_rate.bleed_duration,
                now_ms,
            );
        }
        before != self.reason(cfg)
    }

    pub fn reason(&self, cfg: &PredictiveConfig) -> Option<String> {
        if !cfg.enabled {
            return None;
        }
        if self.cpu.active {
            return Some(format!(
                "predictive: cpu above {:.0}%",
                normalize_threshold(cfg.cpu.threshold) * 100.0
            ));
        }
        if self.memory.active {
            return Some(format!(
                "predictive: memory above {:.0}%",
                normalize_threshold(cfg.memory.threshold) * 100.0
            ));
        }
        if self.errors.active {
            return Some(format!(
                "predictive: error rate above {:.0}%",
                normalize_threshold(cfg.error_rate.threshold) * 100.0
            ));
        }
        None
    }
}

/// Reads `/proc/stat` and `/proc/meminfo` (the only I/O here).
pub fn sample_system() -> (Option<CpuTimes>, Option<f64>) {
    let cpu = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| parse_proc_stat(&t));
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| parse_meminfo(&t));
    (cpu, mem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat = "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n";
        let t = parse_proc_stat(stat).unwrap();
        assert_eq!(
            t,
            CpuTimes {
                busy: 200,
                total: 1000
            }
        );
        let later = CpuTimes {
            busy: 290,
            total: 1100,
        };
        assert!((cpu_fraction(t, later).unwrap() - 0.9).abs() < 1e-9);
        let mem = "MemTotal:  1000 kB\nMemFree: 10 kB\nMemAvailable:  250 kB\n";
        assert!((parse_meminfo(mem).unwrap() - 0.75).abs() < 1e-9);
        assert_eq!(parse_proc_stat("garbage"), None);
        assert_eq!(parse_meminfo("MemTotal: x"), None);
    }

    #[test]
    fn hysteresis_does_not_flap() {
        let mut h = Hysteresis::default();
        let bleed = Duration::from_secs(30);
        assert!(h.update(0.95, 0.9, bleed, 0));
        assert!(!h.update(0.5, 0.9, bleed, 1000));
        assert!(!h.update(0.95, 0.9, bleed, 2000)); // back above: timer resets
        assert!(!h.update(0.5, 0.9, bleed, 3000));
        assert!(!h.update(0.5, 0.9, bleed, 32_999));
        assert!(h.update(0.5, 0.9, bleed, 33_000));
        assert!(!h.active);
    }

    #[test]
    fn error_rate_drains_and_lifts() {
        let mut cfg = PredictiveConfig {
            enabled: true,
            ..Default::default()
        };
        cfg.error_rate.threshold = 0.5;
        cfg.error_rate.window = crate::config::Dur::secs(10);
        cfg.error_rate.bleed_duration = crate::config::Dur::secs(5);
        let mut p = Predictor::default();
        for t in 0..4 {
            p.errors_window
                .record(false, t * 1000, *cfg.error_rate.window);
        }
        assert!(p.update(&cfg, None, None, 4000));
        assert!(p.reason(&cfg).unwrap().contains("error rate"));
        for t in 5..20 {
            p.errors_window
                .record(true, t * 1000, *cfg.error_rate.window);
            p.update(&cfg, None, None, t * 1000);
        }
        assert_eq!(p.reason(&cfg), None);
    }

    #[test]
    fn percent_thresholds() {
        assert!((normalize_threshold(85.0) - 0.85).abs() < 1e-9);
        assert!((normalize_threshold(0.85) - 0.85).abs() < 1e-9);
    }
}
