//! From registry to API: one entry of the `OverwatchView` at a time.
//!
//! Plain copying and formatting; the API renders times and nulls. Each
//! builder reads only the registry entries its API entry shows, so the
//! publisher can rebuild just the entries that changed. The domain answers
//! come from the same `DomainSpec` DNS was built from, so
//! `GET /api/v1/domains` shows what DNS serves at that moment.

use super::super::model::{Agent, AgentStatus, Backend, LostAgent, Override};
use super::super::precedence::Status;
use super::super::registry::Registry;
use crate::api::view::{
    AgentStatus as ViewAgentStatus, AgentView, BackendStatus, BackendView, DomainView, LastSeen,
    LostAgentView, OverrideView,
};
use crate::config::Domain;
use crate::dns::DomainSpec;

/// A domain's drain guard as the view shows it.
#[derive(Clone, Copy, Debug, Default)]
pub struct GuardView {
    pub active: bool,
    /// Times it turned on since the process started.
    pub activations: u64,
}

pub fn status(s: Status) -> BackendStatus {
    match s {
        Status::Healthy => BackendStatus::Healthy,
        Status::Unhealthy => BackendStatus::Unhealthy,
        Status::Draining => BackendStatus::Draining,
        Status::Stale => BackendStatus::Stale,
    }
}

fn secs(ms: u64) -> u64 {
    ms / 1000
}

/// One backend's entry, and whether its agent and validation disagree.
/// `held`: the drain guard keeps it in DNS (shown as healthy, reason
/// `drain_guard`).
pub fn backend(reg: &Registry, b: &Backend, held: bool) -> (BackendView, bool) {
    let eff = b.effective;
    // With several claimants, the API shows the claim that decides.
    let deciding = reg.deciding_claim(b);
    let agent = deciding.and_then(|c| reg.agents().get(&c.agent_id));
    let claim = deciding.map(|c| &c.report);
    let validated = reg.is_validated(b);
    let validation = b.validation.as_ref().filter(|_| validated);
    let disagree = matches!((claim, validation), (Some(c), Some(v)) if c.healthy != v.healthy);
    let o = reg.overrides().get(&b.key);
    let view = BackendView {
        service: b.key.service.clone(),
        address: b.key.address.to_string(),
        port: b.key.port,
        weight: b.weight,
        region: b.region.clone(),
        agent_id: deciding.map(|c| c.agent_id.clone()),
        effective_status: if held {
            BackendStatus::Healthy
        } else {
            eff.map(|e| status(e.status)).unwrap_or_default()
        },
        status_reason: if held {
            "drain_guard".to_string()
        } else {
            eff.map(|e| e.rule.as_str().to_string()).unwrap_or_default()
        },
        agent_healthy: claim.map(|c| c.healthy),
        agent_last_seen: agent.map(|a| a.last_seen_shown.clone()).unwrap_or_default(),
        validation_healthy: validation.map(|v| v.healthy),
        validation_last_check: validation.map(|v| secs(v.last_check_ms)),
        validation_error: validation.and_then(|v| v.error.clone()),
        override_status: o.map(|o| if o.healthy { "healthy" } else { "unhealthy" }.to_string()),
        override_reason: o.map(|o| o.reason.clone()),
        override_by: o.map(|o| o.by.clone()),
        override_at: o.map(|o| o.at),
        override_expires_at: o.and_then(|o| o.expires_at),
        drain_reason: claim
            .filter(|c| c.draining)
            .and_then(|c| c.drain_reason.clone())
            .or_else(|| {
                agent
                    .filter(|a| a.status == AgentStatus::Left)
                    .map(|_| "agent left (graceful shutdown)".to_string())
            }),
        round_trip_ms: reg
            .round_trip(&b.key)
            .filter(|r| r.samples() > 0)
            .map(|r| f64::from(r.smoothed_us()) / 1000.0),
    };
    (view, disagree)
}

pub fn agent(reg: &Registry, a: &Agent) -> AgentView {
    AgentView {
        id: a.id.clone(),
        region: a.region.clone(),
        status: match a.status {
            AgentStatus::Active => ViewAgentStatus::Active,
            AgentStatus::Stale => ViewAgentStatus::Stale,
            AgentStatus::Left => ViewAgentStatus::Left,
            AgentStatus::Rejected => ViewAgentStatus::Rejected,
        },
        reject_reason: a.reject_reason.clone(),
        last_error: a.last_error.clone(),
        address: a.address.map(|s| s.to_string()),
        fingerprint: a
            .fingerprint
            .clone()
            .or_else(|| reg.pins().get(&a.id).map(|p| p.fingerprint.clone())),
        cert_not_after: a.cert_not_after,
        first_seen: Some(secs(a.first_seen_wall_ms)),
        last_seen: a.last_seen_shown.clone(),
        backend_count: a.backends.len(),
    }
}

/// A lost agent as listed among the agents (only while it is not back).
pub fn lost_agent(reg: &Registry, l: &LostAgent) -> AgentView {
    AgentView {
        id: l.agent_id.clone(),
        region: l.region.clone(),
        status: ViewAgentStatus::Lost,
        reject_reason: None,
        last_error: Some("no heartbeat past remove_after".into()),
        address: Some(l.ip.clone()),
        fingerprint: reg.pins().get(&l.agent_id).map(|p| p.fingerprint.clone()),
        cert_not_after: None,
        first_seen: None,
        last_seen: LastSeen::at(l.last_heartbeat),
        backend_count: 0,
    }
}

/// A lost agent as `/healthz` lists it.
pub fn lost_entry(l: &LostAgent) -> LostAgentView {
    LostAgentView {
        agent_id: l.agent_id.clone(),
        region: l.region.clone(),
        ip: l.ip.clone(),
        service: l.service.clone(),
        last_heartbeat: l.last_heartbeat,
    }
}

pub fn override_entry(o: &Override) -> OverrideView {
    OverrideView {
        service: o.key.service.clone(),
        address: o.key.address.to_string(),
        port: o.key.port,
        healthy: o.healthy,
        reason: o.reason.clone(),
        by: o.by.clone(),
        at: o.at,
        expires_at: o.expires_at,
    }
}

/// What the API says DNS serves for a domain: its targets, or the last
/// healthy set when that applies, and its drain guard.
pub fn domain(d: &DomainSpec, cfg: &Domain, guard: GuardView) -> DomainView {
    let serving = if d.targets.is_empty() {
        d.last_healthy.as_deref().unwrap_or(&[])
    } else {
        &d.targets
    };
    DomainView {
        name: d.name.clone(),
        routing_algorithm: d.algorithm.as_str().to_string(),
        ttl: d.ttl,
        answers: serving.iter().map(|t| t.ip.to_string()).collect(),
        min_healthy: cfg.min_healthy.map(|m| m.to_string()),
        drain_guard_active: guard.active,
        drain_guard_activations: guard.activations,
    }
}
