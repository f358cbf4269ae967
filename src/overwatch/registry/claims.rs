//! Several agents claiming one backend (SPEC §4): each agent's report is
//! one claim, and this folds the claims into the one `AgentClaim` the
//! precedence rules read.
//!
//! Only fresh claims count: any fresh drain drains (a drain is
//! deliberate); otherwise the backend is healthy while any fresh claim
//! says healthy. With no fresh claim the stale ones decide (stale, or
//! draining if one of them drained, as for a single agent). A claimant that
//! left withdraws its claim; only when every claimant has left is the
//! backend out at once (draining), as for a single agent's graceful leave.
//! A rejected or removed claimant has no claim here at all (the registry
//! detaches it).

use super::super::model::{AgentStatus, BackendReport, Claim};
use super::super::precedence::AgentClaim;

/// One claim with its claimant's liveness.
#[derive(Clone, Copy, Debug)]
pub struct Seen<'a> {
    pub report: &'a BackendReport,
    pub status: AgentStatus,
}

/// The claims folded into what the precedence rules see; `None` when
/// nothing claims the backend. One pass, no allocation.
pub fn combine<'a>(claims: impl Iterator<Item = Seen<'a>>) -> Option<AgentClaim> {
    // Per liveness class: (healthy, draining) folded with "any".
    let (mut active, mut stale, mut left) = (None, None, None);
    for c in claims {
        let slot = match c.status {
            AgentStatus::Active => &mut active,
            AgentStatus::Stale => &mut stale,
            AgentStatus::Left => &mut left,
            AgentStatus::Rejected => continue,
        };
        let (h, d) = slot.unwrap_or((false, false));
        *slot = Some((h || c.report.healthy, d || c.report.draining));
    }
    let claim = |(healthy, draining): (bool, bool), fresh| AgentClaim {
        healthy,
        draining,
        fresh,
    };
    active
        .map(|a| claim(a, true))
        .or_else(|| stale.map(|s| claim(s, false)))
        // Every claimant left gracefully: out of DNS at once.
        .or_else(|| left.map(|(h, _)| claim((h, true), false)))
}

/// The claim the API shows for a backend: the one that decides it (a
/// fresh drain, else a fresh healthy claim, else any fresh one, else a
/// stale one, else one that left).
pub fn deciding(
    claims: &[Claim],
    status_of: impl Fn(&str) -> Option<AgentStatus>,
) -> Option<&Claim> {
    let rank = |c: &Claim| match status_of(&c.agent_id) {
        Some(AgentStatus::Active) if c.report.draining => 0,
        Some(AgentStatus::Active) if c.report.healthy => 1,
        Some(AgentStatus::Active) => 2,
        Some(AgentStatus::Stale) => 3,
        Some(AgentStatus::Left) => 4,
        _ => 5,
    };
    claims.iter().min_by_key(|c| rank(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendKey;

    fn report(healthy: bool, draining: bool) -> BackendReport {
        BackendReport {
            key: BackendKey::new("app.gslb.test", "10.0.0.2".parse().unwrap(), 80),
            weight: 100,
            healthy,
            draining,
            drain_reason: None,
            last_error: None,
        }
    }

    fn fold(claims: &[(BackendReport, AgentStatus)]) -> Option<AgentClaim> {
        combine(claims.iter().map(|(report, status)| Seen {
            report,
            status: *status,
        }))
    }

    fn claim(healthy: bool, draining: bool, fresh: bool) -> Option<AgentClaim> {
        Some(AgentClaim {
            healthy,
            draining,
            fresh,
        })
    }

    use AgentStatus::*;

    #[test]
    fn no_claims_is_none() {
        assert_eq!(fold(&[]), None);
    }

    #[test]
    fn one_claim_is_itself() {
        assert_eq!(
            fold(&[(report(true, false), Active)]),
            claim(true, false, true)
        );
        assert_eq!(
            fold(&[(report(false, false), Active)]),
            claim(false, false, true)
        );
        assert_eq!(
            fold(&[(report(true, false), Stale)]),
            claim(true, false, false)
        );
        assert_eq!(
            fold(&[(report(true, true), Stale)]),
            claim(true, true, false)
        );
        assert_eq!(
            fold(&[(report(true, false), Left)]),
            claim(true, true, false)
        );
    }

    #[test]
    fn any_fresh_drain_drains() {
        let c = fold(&[(report(true, false), Active), (report(true, true), Active)]);
        assert_eq!(c, claim(true, true, true));
    }

    #[test]
    fn healthy_while_any_fresh_claim_says_healthy() {
        let c = fold(&[
            (report(false, false), Active),
            (report(true, false), Active),
        ]);
        assert_eq!(c, claim(true, false, true));
        let c = fold(&[
            (report(false, false), Active),
            (report(false, false), Active),
        ]);
        assert_eq!(c, claim(false, false, true));
    }

    #[test]
    fn only_fresh_claims_count() {
        // A stale drain or a stale "healthy" does not outvote a fresh claim.
        let c = fold(&[(report(true, true), Stale), (report(false, false), Active)]);
        assert_eq!(c, claim(false, false, true));
        let c = fold(&[(report(true, false), Stale), (report(false, false), Active)]);
        assert_eq!(c, claim(false, false, true));
    }

    #[test]
    fn a_leave_withdraws_only_its_own_claim() {
        let c = fold(&[(report(true, false), Left), (report(true, false), Active)]);
        assert_eq!(c, claim(true, false, true));
        // With the other claimant stale, the backend is stale, not drained.
        let c = fold(&[(report(true, false), Left), (report(true, false), Stale)]);
        assert_eq!(c, claim(true, false, false));
        let c = fold(&[(report(true, false), Left), (report(false, false), Left)]);
        assert_eq!(c, claim(true, true, false));
    }

    #[test]
    fn deciding_claim_prefers_a_fresh_drain_then_healthy() {
        let claims: Vec<Claim> = [("a", false, false), ("b", true, false), ("c", true, true)]
            .into_iter()
            .map(|(id, healthy, draining)| Claim {
                agent_id: id.into(),
                report: report(healthy, draining),
            })
            .collect();
        let status = |id: &str| match id {
            "c" => Some(Stale),
            _ => Some(Active),
        };
        assert_eq!(deciding(&claims, status).unwrap().agent_id, "b");
        assert_eq!(deciding(&claims, |_| Some(Active)).unwrap().agent_id, "c");
        assert_eq!(
            deciding(&claims[..1], |_| Some(Left)).unwrap().agent_id,
            "a"
        );
    }
}
