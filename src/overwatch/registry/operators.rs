//! Registry rules for operators and the Overwatch's own checks: overrides,
//! forgetting and revoking agents, validation verdicts, and putting
//! persisted state back after a restart.

use super::super::model::*;
use super::Registry;
use crate::clock::Now;
use log::{info, warn};
use std::time::Duration;

impl Registry {
    /// Sets an override. Its `expires_at` is a wall time; it is turned into
    /// a monotonic deadline here, against this reading, so a later step of
    /// the wall clock neither shortens nor stretches it. (On restart the
    /// remaining time is taken from the persisted wall `expires_at`.)
    pub fn set_override(&mut self, o: Override, now: Now) {
        info!(
            "override on {}: {} by {} ({})",
            o.key,
            if o.healthy { "healthy" } else { "unhealthy" },
            o.by,
            o.reason
        );
        self.insert_override(o, now);
        self.persist_dirty = true;
    }

    /// Keeps an override (set now or restored from disk) with its deadline.
    fn insert_override(&mut self, o: Override, now: Now) {
        match o.expires_at {
            Some(t) => {
                let left = t.saturating_mul(1000).saturating_sub(now.wall_ms);
                self.override_deadlines
                    .insert(o.key.clone(), now.mono.after(Duration::from_millis(left)));
            }
            None => {
                self.override_deadlines.remove(&o.key);
            }
        }
        self.dirty.backend(&o.key);
        self.dirty.changes.overrides = true;
        self.overrides.insert(o.key.clone(), o);
    }

    pub fn clear_override(&mut self, key: &BackendKey) -> bool {
        let removed = self.overrides.remove(key).is_some();
        self.override_deadlines.remove(key);
        if removed {
            info!("override on {key} cleared");
            self.persist_dirty = true;
            self.dirty.backend(key);
            self.dirty.changes.overrides = true;
        }
        removed
    }

    /// Adds or replaces a geolocation mapping set through the API (cidr
    /// canonical; the caller checked the region).
    pub fn set_geo_mapping(&mut self, m: crate::config::GeoMapping) {
        info!("geo mapping {} -> {}", m.cidr, m.region);
        self.geo_mappings.insert(m.cidr.clone(), m);
        self.persist_dirty = true;
        self.dirty.changes.geo = true;
    }

    /// Removes an API geolocation mapping; false when there was none.
    pub fn delete_geo_mapping(&mut self, cidr: &str) -> bool {
        let removed = self.geo_mappings.remove(cidr).is_some();
        if removed {
            info!("geo mapping {cidr} deleted");
            self.persist_dirty = true;
            self.dirty.changes.geo = true;
        }
        removed
    }

    /// Puts the persisted API geolocation mappings back.
    pub fn restore_geo_mappings(&mut self, mappings: Vec<crate::config::GeoMapping>) {
        for m in mappings {
            self.geo_mappings.insert(m.cidr.clone(), m);
        }
        self.dirty.changes.geo = true;
    }

    /// Forgets an agent's pin (and its lost entry); returns false if neither existed.
    pub fn forget_agent(&mut self, id: &str) -> bool {
        let pin = self.pins.remove(id).is_some();
        let lost = self.lost.remove(id).is_some();
        let rejected = self
            .agents
            .get(id)
            .is_some_and(|a| a.status == AgentStatus::Rejected);
        if rejected && let Some(agent) = self.agents.remove(id) {
            // Normally none are left (rejection detached them), but no
            // backend may keep pointing at an agent that is gone.
            for key in &agent.backends {
                self.detach_backend(key, id);
            }
        }
        if pin || lost || rejected {
            self.dirty.agent(id);
            self.dirty.changes.lost = true;
        }
        if pin || lost {
            info!("agent {id} forgotten (pin removed)");
            self.persist_dirty = true;
        }
        pin || lost || rejected
    }

    pub fn revoke_agent(&mut self, r: Revocation) {
        warn!("agent {} revoked by {}: {}", r.agent_id, r.by, r.reason);
        let id = r.agent_id.clone();
        self.revocations.insert(id.clone(), r);
        if let Some(agent) = self.agents.get_mut(&id) {
            agent.status = AgentStatus::Rejected;
            agent.reject_reason = Some("revoked".into());
            agent.last_error = Some("revoked".into());
            let keys = std::mem::take(&mut agent.backends);
            self.dirty.agent(&id);
            for key in &keys {
                self.detach_backend(key, &id);
            }
        }
        self.persist_dirty = true;
    }

    /// A health-check verdict for the backends sharing one probe.
    pub fn validation_result(&mut self, keys: &[BackendKey], verdict: Verdict) {
        for key in keys {
            let Some(b) = self.backends.get_mut(key) else {
                continue;
            };
            let same = b
                .validation
                .as_ref()
                .is_some_and(|v| v.healthy == verdict.healthy && v.error == verdict.error);
            if b.validation.as_ref() == Some(&verdict) {
                continue;
            }
            b.validation = Some(verdict.clone());
            if same {
                self.dirty.checked(key);
            } else {
                self.dirty.backend(key);
            }
        }
    }

    /// Puts persisted state back. An override's wall-clock `expires_at` is
    /// turned into a monotonic deadline against `now` (time left = expiry −
    /// wall time now), so an override keeps its end across a restart.
    pub fn restore(
        &mut self,
        overrides: Vec<Override>,
        pins: Vec<Pin>,
        revocations: Vec<Revocation>,
        lost: Vec<LostAgent>,
        now: Now,
    ) {
        for o in overrides {
            self.insert_override(o, now);
        }
        for p in pins {
            self.pins.insert(p.agent_id.clone(), p);
        }
        for r in revocations {
            self.revocations.insert(r.agent_id.clone(), r);
        }
        for l in lost {
            self.lost.insert(l.agent_id.clone(), l);
        }
        self.dirty.changes.lost = true;
    }
}
