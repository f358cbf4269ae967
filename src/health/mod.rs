//! Health checks: probes (HTTP, HTTPS, TCP), rise/fall thresholds and the
//! threads that run them on a schedule.
//!
//! Used by the Overwatch to validate static servers and agent-reported
//! backends, and by the agent for its local backends. The pure parts
//! (`thresholds`, `schedule`) know nothing of sockets or clocks; `probe`
//! does one check; `scheduler` owns the threads. Callers build a `Target`
//! per backend from its configured `HealthCheck`, hand the set to a
//! `HealthChecker`, and read a `CheckResult` for every probe from their
//! channel.

pub mod probe;
pub mod round_trip;
pub mod schedule;
pub mod scheduler;
pub mod thresholds;

pub use probe::{ProbeSpec, Prober, SpecError, probe};
pub use schedule::{CheckResult, Target, TargetId};
pub use scheduler::{DEFAULT_WORKERS, HealthChecker};
pub use thresholds::{Outcome, RiseFall};

use crate::config::HealthCheck;

impl Target {
    /// A target from a configured check and the backend's address, taking
    /// interval and thresholds from the check.
    pub fn from_config(
        id: TargetId,
        hc: &HealthCheck,
        address: &str,
        port: u16,
    ) -> Result<Target, SpecError> {
        Ok(Target {
            id,
            spec: ProbeSpec::from_config(hc, address, port)?,
            interval: *hc.interval,
            failure_threshold: hc.failure_threshold,
            success_threshold: hc.success_threshold,
        })
    }
}
