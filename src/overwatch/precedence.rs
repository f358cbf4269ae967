//! The health precedence of SPEC §4 as one pure function.
//!
//! Every backend's effective status is decided here, first matching rule
//! wins, and the deciding rule is returned with it so the API can say why a
//! backend is (or is not) in DNS. Nothing here reads a clock or a socket:
//! the caller computes freshness and passes plain facts in.

/// What DNS and the API see for one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Healthy,
    Unhealthy,
    Draining,
    Stale,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Unhealthy => "unhealthy",
            Status::Draining => "draining",
            Status::Stale => "stale",
        }
    }
}

/// The rule that decided; its `as_str` is the API's `status_reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// 1. An operator override.
    Override,
    /// 2. The agent says draining (drain file, command, predictive, leave).
    AgentDraining,
    /// 3. A fresh agent says unhealthy.
    AgentUnhealthy,
    /// 4. Validation is enabled and its last verdict is unhealthy.
    ValidationFailed,
    /// 5a. The agent is stale and validation decides: healthy.
    StaleValidated,
    /// 5b. The agent is stale and nothing vouches for it.
    AgentStale,
    /// 6a. A fresh agent says healthy and nothing objects.
    AgentHealthy,
    /// 6b. A static server (no agent) whose own health check passes.
    CheckPassed,
    /// 6c. A static server whose health check has not answered yet.
    AwaitingCheck,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Override => "override",
            Rule::AgentDraining => "agent_draining",
            Rule::AgentUnhealthy => "agent_unhealthy",
            Rule::ValidationFailed => "validation_failed",
            Rule::StaleValidated => "agent_stale_validated",
            Rule::AgentStale => "agent_stale",
            Rule::AgentHealthy => "agent_healthy",
            Rule::CheckPassed => "health_check_passed",
            Rule::AwaitingCheck => "awaiting_first_check",
        }
    }
}

/// What the agent last said about a backend, and whether it is still fresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentClaim {
    pub healthy: bool,
    pub draining: bool,
    /// false once no valid message arrived within the stale threshold.
    pub fresh: bool,
}

/// Plain facts about one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Facts {
    /// `Some(healthy)` when an operator override is in force.
    pub override_healthy: Option<bool>,
    /// `None` for a static server that no agent reports.
    pub agent: Option<AgentClaim>,
    /// Whether the Overwatch checks this backend itself (always true for
    /// static servers; `overwatch.validation.enabled` for agent backends).
    pub validated: bool,
    /// The last verdict of our own checks, `None` before the first one.
    pub validation_healthy: Option<bool>,
}

/// SPEC §4, first match wins.
pub fn decide(f: &Facts) -> (Status, Rule) {
    if let Some(healthy) = f.override_healthy {
        let status = if healthy {
            Status::Healthy
        } else {
            Status::Unhealthy
        };
        return (status, Rule::Override);
    }
    if let Some(agent) = f.agent {
        if agent.draining {
            return (Status::Draining, Rule::AgentDraining);
        }
        if agent.fresh && !agent.healthy {
            return (Status::Unhealthy, Rule::AgentUnhealthy);
        }
    }
    if f.validated && f.validation_healthy == Some(false) {
        return (Status::Unhealthy, Rule::ValidationFailed);
    }
    match f.agent {
        Some(agent) if !agent.fresh => {
            if f.validated && f.validation_healthy == Some(true) {
                (Status::Healthy, Rule::StaleValidated)
            } else {
                (Status::Stale, Rule::AgentStale)
            }
        }
        Some(_) => (Status::Healthy, Rule::AgentHealthy),
        None => match f.validation_healthy {
            Some(true) => (Status::Healthy, Rule::CheckPassed),
            _ => (Status::Unhealthy, Rule::AwaitingCheck),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(healthy: bool, draining: bool, fresh: bool) -> Option<AgentClaim> {
        Some(AgentClaim {
            healthy,
            draining,
            fresh,
        })
    }

    #[test]
    fn rule1_override_beats_everything() {
        let f = Facts {
            override_healthy: Some(true),
            agent: agent(false, true, false),
            validated: true,
            validation_healthy: Some(false),
        };
        assert_eq!(decide(&f), (Status::Healthy, Rule::Override));
        let f = Facts {
            override_healthy: Some(false),
            agent: agent(true, false, true),
            ..f
        };
        assert_eq!(decide(&f), (Status::Unhealthy, Rule::Override));
    }

    #[test]
    fn rule2_draining_beats_health_and_staleness() {
        let f = Facts {
            agent: agent(true, true, true),
            validated: true,
            validation_healthy: Some(true),
            ..Default::default()
        };
        assert_eq!(decide(&f), (Status::Draining, Rule::AgentDraining));
        let f = Facts {
            agent: agent(true, true, false),
            ..f
        };
        assert_eq!(decide(&f), (Status::Draining, Rule::AgentDraining));
    }

    #[test]
    fn rule3_fresh_agent_unhealthy() {
        let f = Facts {
            agent: agent(false, false, true),
            validated: true,
            validation_healthy: Some(true),
            ..Default::default()
        };
        assert_eq!(decide(&f), (Status::Unhealthy, Rule::AgentUnhealthy));
    }

    #[test]
    fn rule4_validation_vetoes_a_healthy_claim() {
        let f = Facts {
            agent: agent(true, false, true),
            validated: true,
            validation_healthy: Some(false),
            ..Default::default()
        };
        assert_eq!(decide(&f), (Status::Unhealthy, Rule::ValidationFailed));
        // Without validation the same verdict is ignored.
        let f = Facts {
            validated: false,
            ..f
        };
        assert_eq!(decide(&f), (Status::Healthy, Rule::AgentHealthy));
    }

    #[test]
    fn rule5_stale_agent() {
        let f = Facts {
            agent: agent(true, false, false),
            validated: false,
            ..Default::default()
        };
        assert_eq!(decide(&f), (Status::Stale, Rule::AgentStale));
        let f = Facts {
            validated: true,
            validation_healthy: Some(true),
            ..f
        };
        assert_eq!(decide(&f), (Status::Healthy, Rule::StaleValidated));
        let f = Facts {
            validation_healthy: None,
            ..f
        };
        assert_eq!(decide(&f), (Status::Stale, Rule::AgentStale));
        // A stale agent's old "unhealthy" no longer counts; validation decides.
        let f = Facts {
            agent: agent(false, false, false),
            validated: true,
            validation_healthy: Some(true),
            ..Default::default()
        };
        assert_eq!(decide(&f), (Status::Healthy, Rule::StaleValidated));
    }

    #[test]
    fn rule6_healthy_agent_and_static_servers() {
        let f = Facts {
            agent: agent(true, false, true),
            validated: true,
            validation_healthy: None,
            ..Default::default()
        };
        assert_eq!(decide(&f), (Status::Healthy, Rule::AgentHealthy));
        let f = Facts {
            agent: None,
            validated: true,
            validation_healthy: Some(true),
            ..Default::default()
        };
        assert_eq!(decide(&f), (Status::Healthy, Rule::CheckPassed));
        let f = Facts {
            validation_healthy: None,
            ..f
        };
        assert_eq!(decide(&f), (Status::Unhealthy, Rule::AwaitingCheck));
        let f = Facts {
            validation_healthy: Some(false),
            ..f
        };
        assert_eq!(decide(&f), (Status::Unhealthy, Rule::ValidationFailed));
    }
}
