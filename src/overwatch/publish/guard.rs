//! From registry to drain guard: which backends of one domain the guard
//! holds in now (`overwatch::drain_guard` decides; this only gathers each
//! backend's decided status, drain reason and whether its agent left).

use super::super::drain_guard::{self, Candidate};
use super::super::model::{AgentStatus, Backend, BackendKey, normalize_name};
use super::super::registry::Registry;
use crate::config::Domain;
use std::collections::BTreeSet;

/// The keys of `d`'s backends the guard holds in (empty: guard inactive).
pub fn held(reg: &Registry, d: &Domain) -> BTreeSet<BackendKey> {
    if d.min_healthy.is_none() {
        return BTreeSet::new();
    }
    let name = normalize_name(&d.name);
    let backends: Vec<&Backend> = reg
        .domain_backends(&name)
        .filter(|b| b.effective.is_some())
        .collect();
    let candidates: Vec<Candidate<'_>> = backends
        .iter()
        .filter_map(|b| {
            let e = b.effective?;
            let deciding = reg.deciding_claim(b);
            let left = deciding
                .and_then(|c| reg.agents().get(&c.agent_id))
                .is_some_and(|a| a.status == AgentStatus::Left);
            Some(Candidate {
                status: e.status,
                rule: e.rule,
                drain_reason: deciding
                    .map(|c| &c.report)
                    .filter(|c| c.draining)
                    .and_then(|c| c.drain_reason.as_deref()),
                agent_left: left,
            })
        })
        .collect();
    drain_guard::held(d.min_healthy, &candidates)
        .into_iter()
        .zip(backends)
        .filter(|(h, _)| *h)
        .map(|(_, b)| b.key.clone())
        .collect()
}
