//! The registry: every backend, agent, override, pin and revocation the
//! Overwatch knows, and the rules that change them.
//!
//! One thread owns the registry and is its only writer (`runtime.rs`); this
//! file is pure logic driven by events and a `Now` read once per loop turn,
//! so it is tested without sockets or clocks. Deadlines (staleness,
//! removal, override expiry) use `now.mono`; what operators see and what
//! is persisted uses `now.wall_ms`. After each change the owner publishes fresh
//! snapshots for DNS (`dns_spec.rs`), the API (`view.rs`) and gossip.

use super::model::*;
use super::precedence::{self, AgentClaim, Facts, Rule, Status};
use crate::clock::{Mono, Now};
use crate::config::Config;
use log::{info, warn};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

/// The parts of the configuration the registry acts on.
#[derive(Clone, Debug, Default)]
pub struct RegistryConfig {
    pub validation_enabled: bool,
    pub stale_threshold_ms: Option<u64>,
    pub remove_after_ms: u64,
    /// Configured domain names (normalized): the services agents may report.
    pub services: BTreeSet<String>,
    pub config: Config,
}

impl RegistryConfig {
    pub fn from_config(config: &Config) -> Self {
        RegistryConfig {
            validation_enabled: config.overwatch.validation.enabled,
            stale_threshold_ms: config
                .overwatch
                .stale
                .threshold
                .map(|d| d.as_millis() as u64),
            remove_after_ms: config.overwatch.stale.remove_after.as_millis() as u64,
            services: config
                .domains
                .iter()
                .map(|d| normalize_name(&d.name))
                .collect(),
            config: config.clone(),
        }
    }
}

/// What `decide` concluded for one backend, cached for views and logging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Effective {
    pub status: Status,
    pub rule: Rule,
}

#[derive(Default)]
pub struct Registry {
    pub cfg: RegistryConfig,
    pub backends: BTreeMap<BackendKey, Backend>,
    pub effective: BTreeMap<BackendKey, Effective>,
    pub agents: BTreeMap<String, Agent>,
    pub overrides: BTreeMap<BackendKey, Override>,
    /// When each expiring override ends, on the monotonic clock.
    pub override_deadlines: BTreeMap<BackendKey, Mono>,
    pub pins: BTreeMap<String, Pin>,
    pub revocations: BTreeMap<String, Revocation>,
    pub lost: BTreeMap<String, LostAgent>,
    /// Last non-empty healthy set per domain, for `return_last_healthy`.
    pub last_healthy: BTreeMap<String, Vec<BackendKey>>,
    /// Bumped on every change that persisted state must follow.
    pub persist_dirty: bool,
}

impl Registry {
    pub fn new(cfg: RegistryConfig) -> Self {
        let mut r = Registry {
            cfg,
            ..Default::default()
        };
        r.rebuild_static();
        r
    }

    /// Applies a reloaded configuration, keeping agents, verdicts and
    /// overrides of backends that still exist.
    pub fn reconfigure(&mut self, cfg: RegistryConfig, now: Now) {
        self.cfg = cfg;
        self.rebuild_static();
        self.recompute(now);
    }

    /// Re-creates the static servers from the configuration: one backend
    /// per (domain, server) pair, where a server with an empty `service`
    /// serves every domain that lists its region.
    fn rebuild_static(&mut self) {
        let mut wanted: BTreeMap<BackendKey, (u32, String, usize)> = BTreeMap::new();
        let mut order = 0usize;
        for region in &self.cfg.config.regions {
            for server in &region.servers {
                let Ok(ip) = server.address.trim().parse::<IpAddr>() else {
                    continue; // the loader already reported it
                };
                let services: Vec<String> = if server.service.trim().is_empty() {
                    self.cfg
                        .config
                        .domains
                        .iter()
                        .filter(|d| d.regions.iter().any(|r| r == &region.name))
                        .map(|d| normalize_name(&d.name))
                        .collect()
                } else {
                    vec![normalize_name(&server.service)]
                };
                for service in services {
                    wanted
                        .entry(BackendKey::new(&service, ip, server.port))
                        .or_insert((server.weight, region.name.clone(), order));
                    order += 1;
                }
            }
        }
        // Drop static servers that left the config unless an agent reports them.
        self.backends.retain(|key, b| {
            if wanted.contains_key(key) {
                return true;
            }
            b.static_order = None;
            b.agent_id.is_some()
        });
        for (key, (weight, region, order)) in wanted {
            let b = self.backends.entry(key.clone()).or_insert_with(|| Backend {
                key,
                weight,
                region: region.clone(),
                static_order: None,
                agent_id: None,
                claim: None,
                validation: None,
            });
            b.static_order = Some(order);
            if b.agent_id.is_none() {
                b.weight = weight;
                b.region = region;
            }
        }
    }

    /// Whether the Overwatch runs its own checks on this backend.
    pub fn is_validated(&self, b: &Backend) -> bool {
        b.static_order.is_some() || (self.cfg.validation_enabled && b.agent_id.is_some())
    }

    pub fn facts(&self, b: &Backend) -> Facts {
        let agent = match (&b.agent_id, &b.claim) {
            (Some(id), Some(claim)) => self.agents.get(id).map(|a| {
                let left = a.status == AgentStatus::Left;
                AgentClaim {
                    healthy: claim.healthy,
                    // A graceful leave takes the backends out at once.
                    draining: claim.draining || left,
                    fresh: a.status == AgentStatus::Active,
                }
            }),
            _ => None,
        };
        Facts {
            override_healthy: self.overrides.get(&b.key).map(|o| o.healthy),
            agent,
            validated: self.is_validated(b),
            validation_healthy: b.validation.as_ref().map(|v| v.healthy),
        }
    }

    /// Recomputes staleness, expiries and every effective status; logs each
    /// change once. Returns true when anything visible changed.
    pub fn recompute(&mut self, now: Now) -> bool {
        let mut changed = self.expire_overrides(now.mono);
        changed |= self.update_agent_liveness(now.mono);
        let mut effective = BTreeMap::new();
        for (key, b) in &self.backends {
            let (status, rule) = precedence::decide(&self.facts(b));
            let new = Effective { status, rule };
            match self.effective.get(key) {
                Some(old) if *old == new => {}
                Some(old) if old.status == status => {
                    log::debug!(
                        "backend {key} still {} ({} -> {})",
                        status.as_str(),
                        old.rule.as_str(),
                        rule.as_str()
                    );
                    changed = true;
                }
                Some(old) => {
                    info!(
                        "backend {key} {} -> {} ({})",
                        old.status.as_str(),
                        status.as_str(),
                        rule.as_str()
                    );
                    changed = true;
                }
                None => {
                    info!("backend {key} is {} ({})", status.as_str(), rule.as_str());
                    changed = true;
                }
            }
            effective.insert(key.clone(), new);
        }
        if effective.len() != self.effective.len() {
            changed = true;
        }
        self.effective = effective;
        self.track_last_healthy();
        changed
    }

    fn track_last_healthy(&mut self) {
        let mut by_domain: BTreeMap<String, Vec<BackendKey>> = BTreeMap::new();
        for (key, e) in &self.effective {
            if e.status == Status::Healthy {
                by_domain
                    .entry(key.service.clone())
                    .or_default()
                    .push(key.clone());
            }
        }
        for service in &self.cfg.services {
            match by_domain.remove(service) {
                Some(keys) => {
                    self.last_healthy.insert(service.clone(), keys);
                }
                None => {
                    if self.last_healthy.contains_key(service) && self.had_healthy(service) {
                        warn!("domain {service} has no healthy backend");
                    }
                }
            }
        }
    }

    fn had_healthy(&self, service: &str) -> bool {
        self.last_healthy
            .get(service)
            .is_some_and(|v| !v.is_empty())
    }

    fn expire_overrides(&mut self, now: Mono) -> bool {
        let before = self.overrides.len();
        let deadlines = &mut self.override_deadlines;
        self.overrides.retain(|key, _| {
            let keep = deadlines.get(key).is_none_or(|t| *t > now);
            if !keep {
                info!("override on {key} expired");
                deadlines.remove(key);
            }
            keep
        });
        let changed = before != self.overrides.len();
        self.persist_dirty |= changed;
        changed
    }

    fn update_agent_liveness(&mut self, now: Mono) -> bool {
        let mut changed = false;
        let mut remove = Vec::new();
        for agent in self.agents.values_mut() {
            let silent = now.ms().saturating_sub(agent.last_seen.ms());
            let threshold = self.cfg.stale_threshold_ms.unwrap_or(agent.stale_after_ms);
            match agent.status {
                AgentStatus::Active if silent >= threshold => {
                    warn!(
                        "agent {} is stale: no valid message for {} ms",
                        agent.id, silent
                    );
                    agent.status = AgentStatus::Stale;
                    changed = true;
                }
                AgentStatus::Stale | AgentStatus::Left if silent >= self.cfg.remove_after_ms => {
                    remove.push(agent.id.clone());
                }
                _ => {}
            }
        }
        for id in remove {
            self.remove_agent(&id, true);
            changed = true;
        }
        changed
    }

    /// Drops an agent and its backends; `lost` keeps it listed for healthz.
    fn remove_agent(&mut self, id: &str, lost: bool) {
        let Some(agent) = self.agents.remove(id) else {
            return;
        };
        if lost && agent.status != AgentStatus::Left {
            let first = agent.backends.first();
            warn!("agent {id} removed after remove_after; listed as lost");
            self.lost.insert(
                id.to_string(),
                LostAgent {
                    agent_id: id.to_string(),
                    region: agent.region.clone(),
                    ip: agent
                        .address
                        .map(|a| a.ip().to_string())
                        .or_else(|| first.map(|k| k.address.to_string()))
                        .unwrap_or_default(),
                    service: first.map(|k| k.service.clone()).unwrap_or_default(),
                    last_heartbeat: agent.last_seen_wall_ms / 1000,
                },
            );
            self.persist_dirty = true;
        }
        for key in &agent.backends {
            self.detach_backend(key, id);
        }
    }

    fn detach_backend(&mut self, key: &BackendKey, agent_id: &str) {
        let Some(b) = self.backends.get_mut(key) else {
            return;
        };
        if b.agent_id.as_deref() != Some(agent_id) {
            return;
        }
        if b.static_order.is_some() {
            b.agent_id = None;
            b.claim = None;
        } else {
            self.backends.remove(key);
        }
    }

    // ------------------------------------------------------------ agents

    /// A successful registration (the gossip layer already verified the
    /// token, the certificate and the pin).
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
        }
        let was = self.agents.get(id).map(|a| a.status);
        let first_seen = self
            .agents
            .get(id)
            .map(|a| a.first_seen_wall_ms)
            .unwrap_or(now.wall_ms);
        let agent = self.agents.entry(id.to_string()).or_insert_with(|| Agent {
            id: id.to_string(),
            region: region.to_string(),
            address: Some(address),
            status: AgentStatus::Active,
            reject_reason: None,
            last_error: None,
            fingerprint: None,
            cert_not_after: None,
            first_seen_wall_ms: first_seen,
            last_seen_wall_ms: now.wall_ms,
            last_seen: now.mono,
            stale_after_ms,
            backends: Vec::new(),
        });
        agent.region = region.to_string();
        agent.address = Some(address);
        agent.status = AgentStatus::Active;
        agent.reject_reason = None;
        agent.last_error = None;
        agent.fingerprint = Some(fingerprint.to_string());
        agent.cert_not_after = Some(cert_not_after);
        agent.last_seen = now.mono;
        agent.last_seen_wall_ms = now.wall_ms;
        agent.stale_after_ms = stale_after_ms.max(1);
        if was != Some(AgentStatus::Active) {
            info!("agent {id} registered from {address} (region {region})");
        }
        self.agent_state(id, reports, true, now);
    }

    /// Backends an agent stopped reporting (a delta's removals).
    pub fn agent_removed(&mut self, id: &str, removed: &[BackendKey]) {
        for key in removed {
            self.detach_backend(key, id);
        }
        if let Some(agent) = self.agents.get_mut(id) {
            agent.backends.retain(|k| !removed.contains(k));
        }
    }

    /// A state report; `full` replaces the agent's backend list, a delta
    /// only updates the backends it names.
    pub fn agent_state(&mut self, id: &str, reports: Vec<BackendReport>, full: bool, now: Now) {
        let Some(agent) = self.agents.get_mut(id) else {
            return;
        };
        agent.last_seen = now.mono;
        agent.last_seen_wall_ms = now.wall_ms;
        if agent.status == AgentStatus::Stale {
            info!("agent {id} is active again");
            agent.status = AgentStatus::Active;
        }
        let region = agent.region.clone();
        let mut keys: Vec<BackendKey> = if full {
            Vec::new()
        } else {
            agent.backends.clone()
        };
        for report in reports {
            let key = report.key.clone();
            if !self.cfg.services.contains(&key.service) {
                continue; // the gossip layer rejects these with unknown_service
            }
            let b = self.backends.entry(key.clone()).or_insert_with(|| Backend {
                key: key.clone(),
                weight: report.weight,
                region: region.clone(),
                static_order: None,
                agent_id: None,
                claim: None,
                validation: None,
            });
            b.agent_id = Some(id.to_string());
            b.weight = report.weight;
            b.region = region.clone();
            b.claim = Some(report);
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        let old = self
            .agents
            .get(id)
            .map(|a| a.backends.clone())
            .unwrap_or_default();
        for key in old.iter().filter(|k| !keys.contains(k)) {
            self.detach_backend(key, id);
        }
        if let Some(agent) = self.agents.get_mut(id) {
            agent.backends = keys;
        }
    }

    pub fn agent_heartbeat(&mut self, id: &str, now: Now) {
        if let Some(agent) = self.agents.get_mut(id) {
            agent.last_seen = now.mono;
            agent.last_seen_wall_ms = now.wall_ms;
            if agent.status == AgentStatus::Stale {
                info!("agent {id} is active again");
                agent.status = AgentStatus::Active;
            }
        }
    }

    /// A graceful leave: the agent's backends leave DNS at once.
    pub fn agent_left(&mut self, id: &str, now: Now) {
        if let Some(agent) = self.agents.get_mut(id) {
            info!("agent {id} left");
            agent.status = AgentStatus::Left;
            agent.last_seen = now.mono;
            agent.last_seen_wall_ms = now.wall_ms;
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
            stale_after_ms: u64::MAX,
            backends: Vec::new(),
        });
        if agent.reject_reason.as_deref() != Some(reason) || agent.status != AgentStatus::Rejected {
            warn!("agent {id} from {address} rejected: {reason}");
        }
        agent.address = Some(address);
        agent.reject_reason = Some(reason.to_string());
        agent.last_error = Some(reason.to_string());
        // A rejected agent's backends must not keep serving on old claims.
        if agent.status != AgentStatus::Rejected {
            agent.status = AgentStatus::Rejected;
            let keys = std::mem::take(&mut agent.backends);
            for key in &keys {
                self.detach_backend(key, id);
            }
        }
    }

    // ---------------------------------------------------------- operators

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
    pub(super) fn insert_override(&mut self, o: Override, now: Now) {
        match o.expires_at {
            Some(t) => {
                let left = t.saturating_mul(1000).saturating_sub(now.wall_ms);
                self.override_deadlines.insert(
                    o.key.clone(),
                    now.mono.after(std::time::Duration::from_millis(left)),
                );
            }
            None => {
                self.override_deadlines.remove(&o.key);
            }
        }
        self.overrides.insert(o.key.clone(), o);
    }

    pub fn clear_override(&mut self, key: &BackendKey) -> bool {
        let removed = self.overrides.remove(key).is_some();
        self.override_deadlines.remove(key);
        if removed {
            info!("override on {key} cleared");
            self.persist_dirty = true;
        }
        removed
    }

    /// Forgets an agent's pin (and its lost entry); returns false if neither existed.
    pub fn forget_agent(&mut self, id: &str) -> bool {
        let pin = self.pins.remove(id).is_some();
        let lost = self.lost.remove(id).is_some();
        let rejected = self
            .agents
            .get(id)
            .is_some_and(|a| a.status == AgentStatus::Rejected);
        if rejected {
            self.agents.remove(id);
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
            for key in &keys {
                self.detach_backend(key, &id);
            }
        }
        self.persist_dirty = true;
    }

    // --------------------------------------------------------- validation

    pub fn validation_result(&mut self, keys: &[BackendKey], verdict: Verdict) {
        for key in keys {
            if let Some(b) = self.backends.get_mut(key) {
                b.validation = Some(verdict.clone());
            }
        }
    }

    /// The earliest time something changes by itself (staleness, removal,
    /// override expiry), so the owner thread can sleep until then.
    pub fn next_deadline(&self) -> Option<Mono> {
        let mut next: Option<Mono> = None;
        let mut consider = |t: Mono| next = Some(next.map_or(t, |n: Mono| n.min(t)));
        for a in self.agents.values() {
            match a.status {
                AgentStatus::Active => {
                    let th = self.cfg.stale_threshold_ms.unwrap_or(a.stale_after_ms);
                    consider(Mono(a.last_seen.ms().saturating_add(th)));
                }
                AgentStatus::Stale | AgentStatus::Left => consider(Mono(
                    a.last_seen.ms().saturating_add(self.cfg.remove_after_ms),
                )),
                AgentStatus::Rejected => {}
            }
        }
        for t in self.override_deadlines.values() {
            consider(*t);
        }
        next
    }
}
