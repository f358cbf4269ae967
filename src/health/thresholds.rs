//! Rise/fall thresholds: turns a stream of probe results into a verdict.
//!
//! One lost probe must not flap a backend (SPEC §4), so a verdict only
//! changes after a run of contrary results. The rules:
//!
//! * A new target has no verdict. Its **first** probe decides the initial
//!   verdict directly, so a freshly started Overwatch or agent serves the
//!   backends that answer instead of waiting `success_threshold` intervals
//!   with an empty answer set.
//! * A healthy target becomes unhealthy after `failure_threshold`
//!   consecutive failed probes.
//! * An unhealthy target becomes healthy again after `success_threshold`
//!   consecutive successful probes.
//! * A result that agrees with the current verdict resets the contrary run.
//!
//! Thresholds of 0 are read as 1 (every contrary probe flips the verdict).
//! No clocks or I/O here; the scheduler feeds results in.

/// The rise/fall state of one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RiseFall {
    failure_threshold: u32,
    success_threshold: u32,
    /// `None` until the first probe result.
    verdict: Option<bool>,
    /// Consecutive results contradicting `verdict`.
    contrary: u32,
}

/// What one probe result did to the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The verdict after this result.
    pub healthy: bool,
    /// True when the verdict differs from the one before (including the
    /// first verdict of a new target).
    pub changed: bool,
}

impl RiseFall {
    pub fn new(failure_threshold: u32, success_threshold: u32) -> RiseFall {
        RiseFall {
            failure_threshold: failure_threshold.max(1),
            success_threshold: success_threshold.max(1),
            verdict: None,
            contrary: 0,
        }
    }

    /// Changes the thresholds, keeping the verdict and the current run.
    pub fn set_thresholds(&mut self, failure_threshold: u32, success_threshold: u32) {
        self.failure_threshold = failure_threshold.max(1);
        self.success_threshold = success_threshold.max(1);
    }

    /// The current verdict; `None` before the first probe result.
    pub fn verdict(&self) -> Option<bool> {
        self.verdict
    }

    /// The current verdict, with "no verdict yet" read as unhealthy (a
    /// backend is not served before anything vouched for it).
    pub fn is_healthy(&self) -> bool {
        self.verdict == Some(true)
    }

    /// Consecutive results that disagree with the current verdict.
    pub fn contrary_run(&self) -> u32 {
        self.contrary
    }

    /// Feeds one probe result (`ok` = the probe succeeded).
    pub fn record(&mut self, ok: bool) -> Outcome {
        let Some(current) = self.verdict else {
            self.verdict = Some(ok);
            self.contrary = 0;
            return Outcome {
                healthy: ok,
                changed: true,
            };
        };
        if ok == current {
            self.contrary = 0;
            return Outcome {
                healthy: current,
                changed: false,
            };
        }
        self.contrary = self.contrary.saturating_add(1);
        let needed = if current {
            self.failure_threshold
        } else {
            self.success_threshold
        };
        if self.contrary >= needed {
            self.verdict = Some(ok);
            self.contrary = 0;
            Outcome {
                healthy: ok,
                changed: true,
            }
        } else {
            Outcome {
                healthy: current,
                changed: false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(rf: &mut RiseFall, results: &[bool]) -> Vec<(bool, bool)> {
        results
            .iter()
            .map(|&ok| {
                let o = rf.record(ok);
                (o.healthy, o.changed)
            })
            .collect()
    }

    #[test]
    fn no_verdict_before_first_probe() {
        let rf = RiseFall::new(3, 2);
        assert_eq!(rf.verdict(), None);
        assert!(!rf.is_healthy());
    }

    #[test]
    fn first_success_is_healthy_at_once() {
        let mut rf = RiseFall::new(3, 2);
        assert_eq!(
            rf.record(true),
            Outcome {
                healthy: true,
                changed: true
            }
        );
        assert_eq!(rf.verdict(), Some(true));
    }

    #[test]
    fn first_failure_is_unhealthy_at_once() {
        let mut rf = RiseFall::new(3, 2);
        assert_eq!(
            rf.record(false),
            Outcome {
                healthy: false,
                changed: true
            }
        );
        assert_eq!(rf.verdict(), Some(false));
    }

    #[test]
    fn healthy_falls_after_exactly_failure_threshold() {
        let mut rf = RiseFall::new(3, 2);
        rf.record(true);
        let got = feed(&mut rf, &[false, false, false, false]);
        assert_eq!(
            got,
            vec![(true, false), (true, false), (false, true), (false, false)]
        );
    }

    #[test]
    fn unhealthy_rises_after_exactly_success_threshold() {
        let mut rf = RiseFall::new(3, 2);
        rf.record(false);
        let got = feed(&mut rf, &[true, true, true]);
        assert_eq!(got, vec![(false, false), (true, true), (true, false)]);
    }

    #[test]
    fn agreeing_result_resets_the_failure_run() {
        let mut rf = RiseFall::new(3, 2);
        rf.record(true);
        let got = feed(&mut rf, &[false, false, true, false, false, false]);
        assert_eq!(
            got,
            vec![
                (true, false),
                (true, false),
                (true, false),
                (true, false),
                (true, false),
                (false, true)
            ]
        );
    }

    #[test]
    fn agreeing_result_resets_the_success_run() {
        let mut rf = RiseFall::new(3, 3);
        rf.record(false);
        let got = feed(&mut rf, &[true, true, false, true, true, true]);
        assert_eq!(
            got,
            vec![
                (false, false),
                (false, false),
                (false, false),
                (false, false),
                (false, false),
                (true, true)
            ]
        );
        assert_eq!(rf.contrary_run(), 0);
    }

    #[test]
    fn zero_thresholds_act_as_one() {
        let mut rf = RiseFall::new(0, 0);
        rf.record(true);
        assert_eq!(
            feed(&mut rf, &[false, true]),
            vec![(false, true), (true, true)]
        );
    }

    #[test]
    fn full_cycle_up_down_up() {
        let mut rf = RiseFall::new(2, 2);
        let got = feed(&mut rf, &[true, false, false, true, true, false, true]);
        assert_eq!(
            got,
            vec![
                (true, true),
                (true, false),
                (false, true),
                (false, false),
                (true, true),
                (true, false),
                (true, false)
            ]
        );
    }

    #[test]
    fn set_thresholds_keeps_verdict_and_run() {
        let mut rf = RiseFall::new(5, 2);
        rf.record(true);
        rf.record(false);
        rf.record(false);
        rf.set_thresholds(3, 2);
        assert_eq!(rf.verdict(), Some(true));
        assert_eq!(rf.contrary_run(), 2);
        assert_eq!(
            rf.record(false),
            Outcome {
                healthy: false,
                changed: true
            }
        );
    }

    #[test]
    fn lowering_threshold_below_run_flips_on_next_contrary() {
        let mut rf = RiseFall::new(5, 2);
        rf.record(true);
        feed(&mut rf, &[false, false, false]);
        rf.set_thresholds(2, 2);
        assert_eq!(
            rf.record(false),
            Outcome {
                healthy: false,
                changed: true
            }
        );
    }
}
