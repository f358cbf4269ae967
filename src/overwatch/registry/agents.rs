//! Registry rules for agents: registration, state reports, heartbeats,
//! leaves, rejections and removal, each marking what it changed.
//!
//! The gossip layer has already verified tokens, certificates and pins and
//! parsed each report into a `BackendReport` before these run.

use super::super::model::*;
use super::Registry;
use crate::api::view::LastSeen;
use crate::clock::Now;
use log::{info, warn};
use std::net::SocketAddr;

impl Registry {
    /// A successful registration.
    #[allow(clippy::too_many_arguments)]
    pub fn agent_registered(
        &mut self,
        id: &str,
        region: &str,
        address: SocketAddr,
        fingerprint: &str,
        cert_not_after: u64,
        stale_after_ms: u64,
        reports: Vec<BackendReport>,
        now: Now,
    ) {
        if self.lost.remove(id).is_some() {
            info!("lost agent {id} is back");
            self.persist_dirty = true;
            self.dirty.changes.lost = true;
        }
        let pin_changed = self.pins.get(id).map(|p| p.fingerprint.as_str()) != Some(fingerprint);
        if pin_changed {
            self.pins.insert(
                id.to_string(),
                Pin {
                    agent_id: id.to_string(),
                    fingerprint: fingerprint.to_string(),
                    pinned_at: now.wall_secs(),
                },
            );
            self.persist_dirty = true;
            self.dirty.changes.lost = true;
        }
        let was = self.agents.get(id).map(|a| a.status);
        if was.is_none() {
            // A new entry in the agent list; lost entries hide behind it.
            self.dirty.changes.lost = true;
        }
        let agent = self.agents.entry(id.to_string()).or_insert_with(|| Agent {
            id: id.to_string(),
            region: region.to_string(),
            address: Some(address),
            status: AgentStatus::Active,
            reject_reason: None,
            last_error: None,
            fingerprint: None,
            cert_not_after: None,
            first_seen_wall_ms: now.wall_ms,
            last_seen_wall_ms: now.wall_ms,
            last_seen: now.mono,
            last_seen_shown: LastSeen::at(now.wall_secs()),
            stale_after_ms,
            first_beat_grace_ms: 0,
            backends: Vec::new(),
        });
        let region_changed = agent.region != region;
        agent.region = region.to_string();
        agent.address = Some(address);
        agent.status = AgentStatus::Active;
        agent.reject_reason = None;
        agent.last_error = None;
        agent.fingerprint = Some(fingerprint.to_string());
        agent.cert_not_after = Some(cert_not_after);
        agent.last_seen = now.mono;
        agent.last_seen_wall_ms = now.wall_ms;
        agent.last_seen_shown.set(now.wall_secs());
        agent.stale_after_ms = stale_after_ms.max(1);
        self.dirty.agent(id);
        if was != Some(AgentStatus::Active) || region_changed {
            for key in &agent.backends {
                self.dirty.backend(key);
            }
        }
        if was != Some(AgentStatus::Active) {
            info!("agent {id} registered from {address} (region {region})");
        }
        self.liveness_may_change(id);
        self.agent_state(id, reports, true, now);
    }

    /// Backends an agent stopped reporting (a delta's removals).
    pub fn agent_removed(&mut self, id: &str, removed: &[BackendKey]) {
        for key in removed {
            self.detach_backend(key, id);
        }
        if let Some(agent) = self.agents.get_mut(id) {
            let before = agent.backends.len();
            agent.backends.retain(|k| !removed.contains(k));
            if agent.backends.len() != before {
                self.dirty.agent(id);
            }
        }
    }

    /// A state report; `full` replaces the agent's backend list, a delta
    /// only updates the backends it names.
    pub fn agent_state(&mut self, id: &str, reports: Vec<BackendReport>, full: bool, now: Now) {
        if !self.agents.contains_key(id) {
            return;
        }
        self.seen(id, now);
        let Some(agent) = self.agents.get(id) else {
            return;
        };
        let region = agent.region.clone();
        let old = agent.backends.clone();
        let mut keys: Vec<BackendKey> = if full { Vec::new() } else { old.clone() };
        for report in reports {
            let key = report.key.clone();
            if !self.cfg.services.contains(&key.service) {
                continue; // the gossip layer rejects these with unknown_service
            }
            let created = !self.backends.contains_key(&key);
            let b = self.backends.entry(key.clone()).or_insert_with(|| Backend {
                key: key.clone(),
                weight: report.weight,
                region: region.clone(),
                static_order: None,
                claims: Vec::new(),
                validation: None,
                effective: None,
            });
            // What DNS serves depends on weight and region (priority).
            let dns = b.weight != report.weight || b.region != region;
            let previous = b.claims.iter().position(|c| c.agent_id == id);
            let attached = previous.is_none();
            if previous.map(|i| &b.claims[i].report) != Some(&report) || dns || attached {
                self.dirty.backend(&key);
            }
            if dns {
                self.dirty.domain(&key.service);
            }
            if created || attached || b.region != region {
                self.dirty.changes.probes = true;
            }
            b.weight = report.weight;
            b.region = region.clone();
            match previous {
                Some(i) => b.claims[i].report = report,
                None => b.claims.push(Claim {
                    agent_id: id.to_string(),
                    report,
                }),
            }
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        for key in old.iter().filter(|k| !keys.contains(k)) {
            self.detach_backend(key, id);
        }
        if let Some(agent) = self.agents.get_mut(id)
            && agent.backends != keys
        {
            agent.backends = keys;
            self.dirty.agent(id);
        }
    }

    /// A valid message from the agent: it is alive now.
    fn seen(&mut self, id: &str, now: Now) {
        let Some(agent) = self.agents.get_mut(id) else {
            return;
        };
        agent.last_seen = now.mono;
        agent.last_seen_wall_ms = now.wall_ms;
        agent.last_seen_shown.set(now.wall_secs());
        if agent.status == AgentStatus::Stale {
            info!("agent {id} is active again");
            agent.status = AgentStatus::Active;
            if self.lost.remove(id).is_some() {
                self.persist_dirty = true;
                self.dirty.changes.lost = true;
            }
            self.dirty.agent(id);
            for key in &agent.backends {
                self.dirty.backend(key);
            }
            self.liveness_may_change(id);
        }
    }

    pub fn agent_heartbeat(&mut self, id: &str, now: Now) {
        if let Some(agent) = self.agents.get_mut(id) {
            agent.first_beat_grace_ms = 0;
        }
        self.seen(id, now);
    }

    /// The agent just registered: until its first heartbeat it is stale
    /// only after its threshold plus `grace_ms`. It learns its session when
    /// our answer reaches it and heartbeats one interval after that, so the
    /// registration alone must not start a plain stale window. Any later
    /// silence is judged by the threshold alone.
    pub fn expect_first_heartbeat(&mut self, id: &str, grace_ms: u64) {
        if let Some(agent) = self.agents.get_mut(id)
            && agent.status == AgentStatus::Active
        {
            agent.first_beat_grace_ms = grace_ms;
            self.liveness_may_change(id);
        }
    }

    /// A graceful leave: the agent's backends leave DNS at once.
    pub fn agent_left(&mut self, id: &str, now: Now) {
        if self.agents.contains_key(id) && self.lost.remove(id).is_some() {
            // It was stale and reached us again to say goodbye: not lost.
            self.persist_dirty = true;
            self.dirty.changes.lost = true;
        }
        if let Some(agent) = self.agents.get_mut(id) {
            info!("agent {id} left");
            agent.status = AgentStatus::Left;
            agent.last_seen = now.mono;
            agent.last_seen_wall_ms = now.wall_ms;
            agent.last_seen_shown.set(now.wall_secs());
            self.dirty.agent(id);
            for key in &agent.backends {
                self.dirty.backend(key);
            }
            self.liveness_may_change(id);
        }
    }

    /// A rejected registration or message; listed with its reason.
    pub fn agent_rejected(
        &mut self,
        id: Option<&str>,
        address: SocketAddr,
        reason: &str,
        now: Now,
    ) {
        let Some(id) = id else { return };
        if !self.agents.contains_key(id) {
            self.dirty.changes.lost = true;
        }
        let agent = self.agents.entry(id.to_string()).or_insert_with(|| Agent {
            id: id.to_string(),
            region: String::new(),
            address: Some(address),
            status: AgentStatus::Rejected,
            reject_reason: None,
            last_error: None,
            fingerprint: None,
            cert_not_after: None,
            first_seen_wall_ms: now.wall_ms,
            last_seen_wall_ms: now.wall_ms,
            last_seen: now.mono,
            last_seen_shown: LastSeen::at(now.wall_secs()),
            stale_after_ms: u64::MAX,
            first_beat_grace_ms: 0,
            backends: Vec::new(),
        });
        if agent.reject_reason.as_deref() != Some(reason) || agent.status != AgentStatus::Rejected {
            warn!("agent {id} from {address} rejected: {reason}");
        }
        agent.address = Some(address);
        agent.reject_reason = Some(reason.to_string());
        agent.last_error = Some(reason.to_string());
        self.dirty.agent(id);
        // A rejected agent's backends must not keep serving on old claims.
        if agent.status != AgentStatus::Rejected {
            agent.status = AgentStatus::Rejected;
            let keys = std::mem::take(&mut agent.backends);
            for key in &keys {
                self.detach_backend(key, id);
            }
        }
    }

    /// Drops an agent and its backends; `lost` keeps it listed for healthz.
    pub(super) fn remove_agent(&mut self, id: &str, lost: bool) {
        let Some(agent) = self.agents.remove(id) else {
            return;
        };
        self.dirty.agent(id);
        self.dirty.changes.lost = true;
        if lost && agent.status != AgentStatus::Left {
            // Listed since it turned stale; refreshed in case it was not.
            warn!("agent {id} removed after remove_after; still listed as lost");
            self.lost.insert(id.to_string(), lost_entry(&agent));
            self.persist_dirty = true;
        }
        for key in &agent.backends {
            self.detach_backend(key, id);
        }
    }

    /// The agent no longer reports this backend: its claim goes; the
    /// backend stays while another agent claims it or it is a static
    /// server, and goes (out of DNS at once) with its last claim.
    pub(super) fn detach_backend(&mut self, key: &BackendKey, agent_id: &str) {
        let Some(b) = self.backends.get_mut(key) else {
            return;
        };
        let Some(i) = b.claims.iter().position(|c| c.agent_id == agent_id) else {
            return;
        };
        b.claims.remove(i);
        self.dirty.backend(key);
        self.dirty.changes.probes = true;
        if b.is_claimed() || b.static_order.is_some() {
            return;
        }
        if let Some(b) = self.backends.remove(key) {
            self.forget_effective(&b);
            self.dirty.domain(&key.service);
        }
    }
}

/// How healthz lists an agent that cannot be reached (SPEC §4): from the
/// moment it turns stale, and on after its removal.
pub(super) fn lost_entry(agent: &Agent) -> LostAgent {
    let first = agent.backends.first();
    LostAgent {
        agent_id: agent.id.clone(),
        region: agent.region.clone(),
        ip: agent
            .address
            .map(|a| a.ip().to_string())
            .or_else(|| first.map(|k| k.address.to_string()))
            .unwrap_or_default(),
        service: first.map(|k| k.service.clone()).unwrap_or_default(),
        last_heartbeat: agent.last_seen_wall_ms / 1000,
    }
}
