//! From registry to API: builds the `OverwatchView` the HTTP API serves.
//!
//! Plain copying and formatting; the API renders times and nulls. The
//! domain answers come from the same `TableSpec` DNS was built from, so
//! `GET /api/v1/domains` shows what DNS serves at that moment.

use super::model::AgentStatus;
use super::precedence::Status;
use super::registry::Registry;
use crate::api::view::{
    AgentStatus as ViewAgentStatus, AgentView, AuditEntry, BackendStatus, BackendView, DomainView,
    LostAgentView, OverrideView, OverwatchView,
};
use crate::dns::TableSpec;

pub fn status(s: Status) -> BackendStatus {
    match s {
        Status::Healthy => BackendStatus::Healthy,
        Status::Unhealthy => BackendStatus::Unhealthy,
        Status::Draining => BackendStatus::Draining,
        Status::Stale => BackendStatus::Stale,
    }
}

pub struct ViewInputs<'a> {
    pub node_id: &'a str,
    pub now_secs: u64,
    pub ready: bool,
    pub spec: &'a TableSpec,
    pub audit: &'a [AuditEntry],
}

pub fn build(reg: &Registry, inputs: &ViewInputs<'_>) -> OverwatchView {
    let secs = |ms: u64| ms / 1000;
    let mut disagreement_count = 0u64;
    let backends = reg
        .backends
        .values()
        .map(|b| {
            let eff = reg.effective.get(&b.key);
            let agent = b.agent_id.as_ref().and_then(|id| reg.agents.get(id));
            let claim = b.claim.as_ref();
            let validated = reg.is_validated(b);
            let validation = b.validation.as_ref().filter(|_| validated);
            if let (Some(c), Some(v)) = (claim, validation)
                && c.healthy != v.healthy
            {
                disagreement_count += 1;
            }
            let o = reg.overrides.get(&b.key);
            BackendView {
                service: b.key.service.clone(),
                address: b.key.address.to_string(),
                port: b.key.port,
                weight: b.weight,
                region: b.region.clone(),
                agent_id: b.agent_id.clone(),
                effective_status: eff.map(|e| status(e.status)).unwrap_or_default(),
                status_reason: eff.map(|e| e.rule.as_str().to_string()).unwrap_or_default(),
                agent_healthy: claim.map(|c| c.healthy),
                agent_last_seen: agent.map(|a| secs(a.last_seen_wall_ms)),
                validation_healthy: validation.map(|v| v.healthy),
                validation_last_check: validation.map(|v| secs(v.last_check_ms)),
                validation_error: validation.and_then(|v| v.error.clone()),
                override_status: o
                    .map(|o| if o.healthy { "healthy" } else { "unhealthy" }.to_string()),
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
            }
        })
        .collect();
    let mut agents: Vec<AgentView> = reg
        .agents
        .values()
        .map(|a| AgentView {
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
                .or_else(|| reg.pins.get(&a.id).map(|p| p.fingerprint.clone())),
            cert_not_after: a.cert_not_after,
            first_seen: Some(secs(a.first_seen_wall_ms)),
            last_seen: Some(secs(a.last_seen_wall_ms)),
            backend_count: a.backends.len(),
        })
        .collect();
    for l in reg.lost.values() {
        if reg.agents.contains_key(&l.agent_id) {
            continue;
        }
        agents.push(AgentView {
            id: l.agent_id.clone(),
            region: l.region.clone(),
            status: ViewAgentStatus::Lost,
            reject_reason: None,
            last_error: Some("no heartbeat past remove_after".into()),
            address: Some(l.ip.clone()),
            fingerprint: reg.pins.get(&l.agent_id).map(|p| p.fingerprint.clone()),
            cert_not_after: None,
            first_seen: None,
            last_seen: Some(l.last_heartbeat),
            backend_count: 0,
        });
    }
    let overrides = reg
        .overrides
        .values()
        .map(|o| OverrideView {
            service: o.key.service.clone(),
            address: o.key.address.to_string(),
            port: o.key.port,
            healthy: o.healthy,
            reason: o.reason.clone(),
            by: o.by.clone(),
            at: o.at,
            expires_at: o.expires_at,
        })
        .collect();
    let domains = inputs
        .spec
        .domains
        .iter()
        .map(|d| {
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
            }
        })
        .collect();
    let lost_agents = reg
        .lost
        .values()
        .map(|l| LostAgentView {
            agent_id: l.agent_id.clone(),
            region: l.region.clone(),
            ip: l.ip.clone(),
            service: l.service.clone(),
            last_heartbeat: l.last_heartbeat,
        })
        .collect();
    OverwatchView {
        node_id: inputs.node_id.to_string(),
        generated_at: inputs.now_secs,
        ready: inputs.ready,
        validation_enabled: reg.cfg.validation_enabled,
        disagreement_count,
        backends,
        agents,
        overrides,
        domains,
        lost_agents,
        audit: inputs.audit.to_vec(),
    }
}
