//! The registry: every backend, agent, override, pin and revocation the
//! Overwatch knows, and the rules that change them.
//!
//! One thread owns the registry and is its only writer (`runtime.rs`); this
//! folder is pure logic driven by events and a `Now` read once per loop
//! turn, so it is tested without sockets or clocks. Deadlines (staleness,
//! removal, override expiry) use `now.mono`; what operators see and what
//! is persisted uses `now.wall_ms`. The fields are private: `ingest`
//! changes the registry only through the rules here (`agents.rs`,
//! `operators.rs`), and `publish` reads it through the accessors below and
//! the `Changes` it takes after each batch, so it rebuilds only what
//! changed.

mod agents;
mod changes;
pub mod claims;
mod operators;
mod round_trips;
#[cfg(test)]
mod tests;

pub use changes::Changes;

use super::model::*;
use super::precedence::{self, Facts, Status};
use crate::clock::{Mono, Now};
use crate::config::Config;
use changes::Dirty;
use log::{info, warn};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

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

#[derive(Default)]
pub struct Registry {
    cfg: RegistryConfig,
    backends: BTreeMap<BackendKey, Backend>,
    agents: BTreeMap<String, Agent>,
    overrides: BTreeMap<BackendKey, Override>,
    /// When each expiring override ends, on the monotonic clock.
    override_deadlines: BTreeMap<BackendKey, Mono>,
    pins: BTreeMap<String, Pin>,
    /// Geolocation mappings set through the API (persisted), by cidr.
    geo_mappings: BTreeMap<String, crate::config::GeoMapping>,
    revocations: BTreeMap<String, Revocation>,
    lost: BTreeMap<String, LostAgent>,
    /// Per domain, its healthy set from when it last lost its last healthy
    /// backend, for `return_last_healthy` (while a domain has healthy
    /// backends, DNS serves those and this is not read).
    last_healthy: BTreeMap<String, Vec<BackendKey>>,
    /// Backends that stopped being healthy (or went while healthy) since
    /// the last `recompute`, per domain: the domain's healthy set before
    /// this round, should it now be empty. Effective statuses change only
    /// in `recompute`, once per backend a round, so nothing is copied
    /// while a domain keeps healthy backends.
    healthy_gone: BTreeMap<String, Vec<BackendKey>>,
    /// Set on every change that persisted state must follow.
    persist_dirty: bool,
    /// No agent can change liveness before this; agents are scanned only
    /// once it passes (a heartbeat only moves an agent's deadline later).
    liveness_due: Option<Mono>,
    /// Smoothed check round trips of the backends of `latency` domains
    /// (`round_trips.rs`).
    round_trips: BTreeMap<BackendKey, crate::health::round_trip::RoundTrip>,
    dirty: Dirty,
}

impl Registry {
    pub fn new(cfg: RegistryConfig) -> Self {
        let mut r = Registry {
            cfg,
            ..Default::default()
        };
        r.rebuild_static();
        r.mark_all();
        r
    }

    /// Applies a reloaded configuration, keeping agents, verdicts and
    /// overrides of backends that still exist.
    pub fn reconfigure(&mut self, cfg: RegistryConfig, now: Now) {
        self.cfg = cfg;
        self.rebuild_static();
        self.prune_round_trips();
        self.mark_all();
        self.liveness_due = Some(Mono(0));
        self.recompute(now);
    }

    /// Everything is to be decided and published again.
    fn mark_all(&mut self) {
        self.dirty.changes = Changes::everything();
        self.dirty.undecided = self.backends.keys().cloned().collect();
    }

    // --------------------------------------------------------- accessors

    pub fn cfg(&self) -> &RegistryConfig {
        &self.cfg
    }

    pub fn backends(&self) -> &BTreeMap<BackendKey, Backend> {
        &self.backends
    }

    /// One domain's backends (keys sort by service first).
    pub fn domain_backends<'a>(&'a self, service: &'a str) -> impl Iterator<Item = &'a Backend> {
        let from = BackendKey {
            service: service.to_string(),
            address: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            port: 0,
        };
        self.backends
            .range(from..)
            .take_while(move |(k, _)| k.service == service)
            .map(|(_, b)| b)
    }

    pub fn effective(&self, key: &BackendKey) -> Option<Effective> {
        self.backends.get(key).and_then(|b| b.effective)
    }

    pub fn agents(&self) -> &BTreeMap<String, Agent> {
        &self.agents
    }

    pub fn overrides(&self) -> &BTreeMap<BackendKey, Override> {
        &self.overrides
    }

    /// The API's geolocation mappings (config ones win on the same cidr).
    pub fn geo_mappings(&self) -> Vec<crate::config::GeoMapping> {
        self.geo_mappings.values().cloned().collect()
    }

    pub fn pins(&self) -> &BTreeMap<String, Pin> {
        &self.pins
    }

    pub fn revocations(&self) -> &BTreeMap<String, Revocation> {
        &self.revocations
    }

    pub fn lost(&self) -> &BTreeMap<String, LostAgent> {
        &self.lost
    }

    pub fn last_healthy(&self, service: &str) -> Option<&[BackendKey]> {
        self.last_healthy.get(service).map(|v| v.as_slice())
    }

    /// What changed since `take_changes`.
    pub fn changes(&self) -> &Changes {
        &self.dirty.changes
    }

    /// Hands the marks to the publisher and starts afresh.
    pub fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.dirty.changes)
    }

    /// Whether persisted state (overrides, pins, revocations, lost agents)
    /// changed since `mark_persisted`.
    pub fn persist_dirty(&self) -> bool {
        self.persist_dirty
    }

    pub fn mark_persisted(&mut self) {
        self.persist_dirty = false;
    }

    // -------------------------------------------------------- static servers

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
        let gone = &mut self.healthy_gone;
        self.backends.retain(|key, b| {
            if wanted.contains_key(key) {
                return true;
            }
            b.static_order = None;
            let keep = b.is_claimed();
            if !keep && b.effective.is_some_and(|e| e.status == Status::Healthy) {
                gone.entry(key.service.clone())
                    .or_default()
                    .push(key.clone());
            }
            keep
        });
        for (key, (weight, region, order)) in wanted {
            let b = self.backends.entry(key.clone()).or_insert_with(|| Backend {
                key,
                weight,
                region: region.clone(),
                static_order: None,
                claims: Vec::new(),
                validation: None,
                effective: None,
            });
            b.static_order = Some(order);
            if !b.is_claimed() {
                b.weight = weight;
                b.region = region;
            }
        }
    }

    /// Whether the Overwatch runs its own checks on this backend.
    pub fn is_validated(&self, b: &Backend) -> bool {
        b.static_order.is_some() || (self.cfg.validation_enabled && b.is_claimed())
    }

    /// The claimant's liveness, as the claim rules read it.
    fn claimant_status(&self, id: &str) -> Option<AgentStatus> {
        self.agents.get(id).map(|a| a.status)
    }

    /// The claim the API shows for a backend: the one that decides it.
    pub fn deciding_claim<'a>(&self, b: &'a Backend) -> Option<&'a Claim> {
        claims::deciding(&b.claims, |id| self.claimant_status(id))
    }

    pub fn facts(&self, b: &Backend) -> Facts {
        let agent = claims::combine(b.claims.iter().filter_map(|c| {
            self.claimant_status(&c.agent_id)
                .map(|status| claims::Seen {
                    report: &c.report,
                    status,
                })
        }));
        Facts {
            override_healthy: self.overrides.get(&b.key).map(|o| o.healthy),
            agent,
            validated: self.is_validated(b),
            validation_healthy: b.validation.as_ref().map(|v| v.healthy),
        }
    }

    /// Expires overrides and updates agent liveness when due, then decides
    /// every backend whose facts changed; logs each change once. Returns
    /// true when an effective status changed or a backend appeared or went.
    pub fn recompute(&mut self, now: Now) -> bool {
        self.recompute_with(now, true)
    }

    /// `recompute` for an owner that has not caught up with its input:
    /// messages still queued may be the very heartbeats that keep agents
    /// fresh, so nobody is declared stale (or removed) until the queue is
    /// drained. Everything else is decided as usual.
    pub fn recompute_behind(&mut self, now: Now) -> bool {
        self.recompute_with(now, false)
    }

    fn recompute_with(&mut self, now: Now, judge_liveness: bool) -> bool {
        let mut changed = self.expire_overrides(now.mono);
        if judge_liveness && self.liveness_due.is_some_and(|d| now.mono >= d) {
            changed |= self.update_agent_liveness(now.mono);
        }
        let mut logged = 0usize;
        for key in std::mem::take(&mut self.dirty.undecided) {
            // A backend that went was marked (and its domain) when it went.
            let Some(b) = self.backends.get(&key) else {
                continue;
            };
            let (status, rule) = precedence::decide(&self.facts(b));
            let new = Effective { status, rule };
            if b.effective == Some(new) {
                continue;
            }
            logged += 1;
            log_change(&key, b.effective, new, logged <= LOGGED_CHANGES);
            let was_healthy = b.effective.is_some_and(|e| e.status == Status::Healthy);
            if let Some(b) = self.backends.get_mut(&key) {
                b.effective = Some(new);
            }
            changed = true;
            self.dirty.domain(&key.service);
            self.dirty.changes.backends.insert(key.clone());
            if was_healthy && new.status != Status::Healthy {
                self.healthy_gone
                    .entry(key.service.clone())
                    .or_default()
                    .push(key.clone());
            }
        }
        if logged > LOGGED_CHANGES {
            info!(
                "... and {} more backend status changes this round (debug level lists them)",
                logged - LOGGED_CHANGES
            );
        }
        for (service, gone) in std::mem::take(&mut self.healthy_gone) {
            self.track_last_healthy(&service, gone);
        }
        changed
    }

    /// A backend leaves the registry: if it was healthy, its domain's
    /// healthy set before this round included it.
    pub(super) fn forget_effective(&mut self, b: &Backend) {
        if b.effective.is_some_and(|e| e.status == Status::Healthy) {
            self.healthy_gone
                .entry(b.key.service.clone())
                .or_default()
                .push(b.key.clone());
        }
    }

    /// Records the domain's last healthy set when it has just lost its
    /// last healthy backend (`gone` is then that set), and says so once.
    fn track_last_healthy(&mut self, service: &str, mut gone: Vec<BackendKey>) {
        if !self.cfg.services.contains(service) || gone.is_empty() {
            return;
        }
        let any = self
            .domain_backends(service)
            .any(|b| b.effective.is_some_and(|e| e.status == Status::Healthy));
        if !any {
            warn!("domain {service} has no healthy backend");
            gone.sort();
            self.last_healthy.insert(service.to_string(), gone);
        }
    }

    fn expire_overrides(&mut self, now: Mono) -> bool {
        let expired: Vec<BackendKey> = self
            .override_deadlines
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &expired {
            self.override_deadlines.remove(key);
            if self.overrides.remove(key).is_some() {
                info!("override on {key} expired");
                self.dirty.backend(key);
                self.dirty.changes.overrides = true;
                self.persist_dirty = true;
            }
        }
        !expired.is_empty()
    }

    /// The threshold after which an active agent is stale.
    fn stale_after(&self, a: &Agent) -> u64 {
        self.cfg.stale_threshold_ms.unwrap_or(a.stale_after_ms)
    }

    /// When this agent's liveness changes by itself, if ever.
    fn agent_deadline(&self, a: &Agent) -> Option<Mono> {
        let after = match a.status {
            AgentStatus::Active => self.stale_after(a).saturating_add(a.first_beat_grace_ms),
            AgentStatus::Stale | AgentStatus::Left => self.cfg.remove_after_ms,
            AgentStatus::Rejected => return None,
        };
        Some(Mono(a.last_seen.ms().saturating_add(after)))
    }

    /// An agent's deadline may now be earlier than the one known.
    fn liveness_may_change(&mut self, id: &str) {
        let Some(d) = self.agents.get(id).and_then(|a| self.agent_deadline(a)) else {
            return;
        };
        self.liveness_due = Some(self.liveness_due.map_or(d, |due| due.min(d)));
    }

    fn update_agent_liveness(&mut self, now: Mono) -> bool {
        let mut changed = false;
        let mut remove = Vec::new();
        let mut next: Option<Mono> = None;
        let stale_threshold = self.cfg.stale_threshold_ms;
        let remove_after = self.cfg.remove_after_ms;
        for agent in self.agents.values_mut() {
            let silent = now.ms().saturating_sub(agent.last_seen.ms());
            let threshold = stale_threshold
                .unwrap_or(agent.stale_after_ms)
                .saturating_add(agent.first_beat_grace_ms);
            match agent.status {
                AgentStatus::Active if silent >= threshold => {
                    warn!(
                        "agent {} is stale: no valid message for {} ms",
                        agent.id, silent
                    );
                    agent.status = AgentStatus::Stale;
                    // Lost from this moment (healthz, `degraded`); on disk
                    // before readers see it, like every lost entry.
                    self.lost
                        .insert(agent.id.clone(), agents::lost_entry(agent));
                    self.dirty.changes.lost = true;
                    self.persist_dirty = true;
                    self.dirty.agent(&agent.id);
                    for key in &agent.backends {
                        self.dirty.backend(key);
                    }
                    changed = true;
                }
                AgentStatus::Stale | AgentStatus::Left if silent >= remove_after => {
                    remove.push(agent.id.clone());
                    continue;
                }
                _ => {}
            }
            let after = match agent.status {
                AgentStatus::Active => threshold,
                AgentStatus::Stale | AgentStatus::Left => remove_after,
                AgentStatus::Rejected => continue,
            };
            let d = Mono(agent.last_seen.ms().saturating_add(after));
            next = Some(next.map_or(d, |n| n.min(d)));
        }
        self.liveness_due = next;
        for id in remove {
            self.remove_agent(&id, true);
            changed = true;
        }
        changed
    }

    /// The earliest time something changes by itself (staleness, removal,
    /// override expiry), so the owner thread can sleep until then. It may
    /// be early (a heartbeat moved the agent's deadline on); never late.
    pub fn next_deadline(&self) -> Option<Mono> {
        let overrides = self.override_deadlines.values().min().copied();
        match (self.liveness_due, overrides) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Backend status changes logged at info per `recompute` round; during
/// churn (a fleet flapping, a restart) the rest go to debug with one
/// summary line, so logging does not become the registry's main cost.
const LOGGED_CHANGES: usize = 20;

fn log_change(key: &BackendKey, old: Option<Effective>, new: Effective, at_info: bool) {
    if !at_info {
        log::debug!(
            "backend {key} {} -> {} ({})",
            old.map_or("new", |o| o.status.as_str()),
            new.status.as_str(),
            new.rule.as_str()
        );
        return;
    }
    match old {
        Some(old) if old.status == new.status => log::debug!(
            "backend {key} still {} ({} -> {})",
            new.status.as_str(),
            old.rule.as_str(),
            new.rule.as_str()
        ),
        Some(old) => info!(
            "backend {key} {} -> {} ({})",
            old.status.as_str(),
            new.status.as_str(),
            new.rule.as_str()
        ),
        None => info!(
            "backend {key} is {} ({})",
            new.status.as_str(),
            new.rule.as_str()
        ),
    }
}
