//! The drain guard (`domains[].min_healthy`), in the spirit of Envoy's
//! panic threshold: predictive signals can drain every backend of a name
//! at once (a fleet-wide CPU spike), which would turn the GSLB itself into
//! the outage. When fewer backends of a name are healthy than its floor,
//! the verdicts that are only a forecast or the agent's own opinion —
//! predictive drains and fresh agent-unhealthy reports — are ignored for
//! that name and those backends stay in DNS (`status_reason: drain_guard`).
//!
//! Deliberate decisions still count: an operator override, a drain file or
//! drain command, a graceful shutdown (agent left), the Overwatch's own
//! validation, and stale or dead agents. Pure: the publisher passes each
//! backend's decided status and the facts about why.

use super::precedence::{Rule, Status};
use crate::config::MinHealthy;

/// The agent marks predictive drains with this reason prefix
/// (`agent::predictive`); every other drain reason is deliberate.
pub const PREDICTIVE_PREFIX: &str = "predictive";

/// One backend of the name, as precedence decided it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub status: Status,
    pub rule: Rule,
    /// The agent's drain reason, when it reports one.
    pub drain_reason: Option<&'a str>,
    /// The agent left (graceful shutdown): a deliberate drain.
    pub agent_left: bool,
}

impl Candidate<'_> {
    /// Whether the guard may hold this backend in.
    pub fn guardable(&self) -> bool {
        match self.rule {
            Rule::AgentUnhealthy => true,
            Rule::AgentDraining => {
                !self.agent_left
                    && self
                        .drain_reason
                        .is_some_and(|r| r.trim_start().starts_with(PREDICTIVE_PREFIX))
            }
            _ => false,
        }
    }
}

/// For each candidate, in order, whether the guard holds it in. All false
/// when the name is at or above its floor, or nothing can be held in.
pub fn held(min: Option<MinHealthy>, candidates: &[Candidate<'_>]) -> Vec<bool> {
    let none = vec![false; candidates.len()];
    let Some(min) = min else {
        return none;
    };
    let healthy = candidates
        .iter()
        .filter(|c| c.status == Status::Healthy)
        .count();
    if healthy >= min.floor(candidates.len()) {
        return none;
    }
    candidates.iter().map(Candidate::guardable).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(status: Status, rule: Rule, reason: Option<&str>) -> Candidate<'_> {
        Candidate {
            status,
            rule,
            drain_reason: reason,
            agent_left: false,
        }
    }

    fn healthy() -> Candidate<'static> {
        c(Status::Healthy, Rule::AgentHealthy, None)
    }

    fn predictive() -> Candidate<'static> {
        c(
            Status::Draining,
            Rule::AgentDraining,
            Some("predictive: cpu above 90%"),
        )
    }

    fn unhealthy() -> Candidate<'static> {
        c(Status::Unhealthy, Rule::AgentUnhealthy, None)
    }

    #[test]
    fn no_floor_no_guard() {
        assert_eq!(held(None, &[predictive(), predictive()]), [false, false]);
    }

    #[test]
    fn a_fleet_wide_predictive_drain_is_held_in_below_the_floor() {
        let all = [predictive(), predictive(), predictive()];
        assert_eq!(held(Some(MinHealthy::Count(2)), &all), [true; 3]);
        assert_eq!(held(Some(MinHealthy::Percent(50)), &all), [true; 3]);
    }

    #[test]
    fn at_or_above_the_floor_verdicts_stand() {
        let some = [healthy(), healthy(), predictive(), unhealthy()];
        assert_eq!(held(Some(MinHealthy::Count(2)), &some), [false; 4]);
        assert_eq!(held(Some(MinHealthy::Percent(50)), &some), [false; 4]);
        // 75% of 4 is 3: only two are healthy, so the guard holds both in.
        assert_eq!(
            held(Some(MinHealthy::Percent(75)), &some),
            [false, false, true, true]
        );
    }

    #[test]
    fn deliberate_drains_overrides_validation_and_stale_agents_still_count() {
        let file = c(Status::Draining, Rule::AgentDraining, Some("maintenance"));
        let mut left = predictive();
        left.agent_left = true;
        let all = [
            file,
            left,
            c(Status::Draining, Rule::AgentDraining, None),
            c(Status::Unhealthy, Rule::Override, None),
            c(Status::Unhealthy, Rule::ValidationFailed, None),
            c(Status::Stale, Rule::AgentStale, None),
            c(Status::Unhealthy, Rule::AwaitingCheck, None),
            predictive(),
            unhealthy(),
        ];
        let got = held(Some(MinHealthy::Count(5)), &all);
        assert_eq!(
            got,
            [false, false, false, false, false, false, false, true, true]
        );
    }

    #[test]
    fn a_zero_floor_never_guards() {
        assert_eq!(held(Some(MinHealthy::Count(0)), &[predictive()]), [false]);
        assert_eq!(held(Some(MinHealthy::Percent(0)), &[unhealthy()]), [false]);
    }
}
