//! Publishing: the DNS table spec, the API view and the gossip policy,
//! rebuilt incrementally from the registry's `Changes`.
//!
//! The `Publisher` keeps every piece it published, each in an `Arc`: one
//! `DomainSpec` and `DomainView` per configured domain, one `BackendView`
//! per backend, one `AgentView` per agent. After a batch it rebuilds only
//! the pieces the registry marked (a heartbeat storm rebuilds nothing DNS
//! serves; one backend's change rebuilds that backend's entry and its
//! domain), and assembles the new snapshots from the shared pieces. It
//! counts what it rebuilt (`rebuilt`), which the tests read; a fresh
//! `Publisher::full` is the reference every incremental result must equal.

pub mod dns_spec;
pub mod guard;
#[cfg(test)]
mod guard_tests;
pub mod policy;
#[cfg(test)]
mod tests;
pub mod view;

use super::model::BackendKey;
use super::registry::{Changes, Registry};
use crate::api::view::{
    AgentView, AuditEntry, BackendView, DomainView, LostAgentView, OverrideView, OverwatchView,
};
use crate::dns::NameServerSpec;
use crate::dns::rrl::RateLimit;
use crate::dns::{DomainSpec, TableSpec, ZoneSpec};
use log::{info, warn};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How many entries the publisher rebuilt since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rebuilt {
    pub domains: u64,
    pub backends: u64,
    pub agents: u64,
}

/// The inputs of the view that are not registry state.
pub struct ViewInputs<'a> {
    pub node_id: &'a str,
    pub now_secs: u64,
    pub ready: bool,
    pub audit: &'a [AuditEntry],
}

struct DomainEntry {
    name: String,
    spec: Arc<DomainSpec>,
    view: Arc<DomainView>,
}

#[derive(Default)]
pub struct Publisher {
    zones: Vec<ZoneSpec>,
    /// NS host addresses and rate limiting: from the configuration, so
    /// rebuilt with the zones.
    nameservers: NameServerSpec,
    rate_limit: Option<RateLimit>,
    /// Geolocation (config, database, API mappings); rebuilt with them.
    geo: Option<Arc<crate::geo::GeoResolver>>,
    /// `GET /api/v1/geo/mappings`: config and API mappings, rebuilt with `geo`.
    geo_listing: Vec<serde_json::Value>,
    /// In configuration order, as DNS and the API list them.
    domains: Vec<DomainEntry>,
    /// Each backend's entry and whether its agent and validation disagree.
    backends: BTreeMap<BackendKey, (Arc<BackendView>, bool)>,
    disagreements: u64,
    agents: BTreeMap<String, Arc<AgentView>>,
    /// Lost agents that are not back, as listed among the agents.
    lost_agents: Vec<Arc<AgentView>>,
    lost: Vec<LostAgentView>,
    overrides: Vec<OverrideView>,
    /// Per domain with `min_healthy`: the backends the drain guard holds
    /// in and how many times it turned on.
    guards: BTreeMap<String, (BTreeSet<BackendKey>, u64)>,
    rebuilt: Rebuilt,
}

impl Publisher {
    /// Everything built from scratch.
    pub fn full(reg: &Registry) -> Publisher {
        let mut p = Publisher::default();
        p.update(reg, &Changes::everything());
        p
    }

    pub fn rebuilt(&self) -> Rebuilt {
        self.rebuilt
    }

    /// Rebuilds what `changes` names. Returns true when a DNS domain (or
    /// the zones) changed, so the DNS table must be published.
    pub fn update(&mut self, reg: &Registry, changes: &Changes) -> bool {
        if changes.all {
            self.backends.clear();
            self.agents.clear();
            self.disagreements = 0;
            self.zones = dns_spec::zones(&reg.cfg().config);
            self.nameservers = NameServerSpec::from_config(&reg.cfg().config.dns);
            self.rate_limit = RateLimit::from_config(&reg.cfg().config.dns.rate_limit);
            self.geo = dns_spec::geo_resolver(reg, self.geo.as_deref());
            self.geo_listing = dns_spec::geo_listing(reg);
            self.domains = reg
                .cfg()
                .config
                .domains
                .iter()
                .map(|d| self.domain_entry(reg, d))
                .collect();
            let keys: Vec<BackendKey> = reg.backends().keys().cloned().collect();
            for key in &keys {
                self.backend(reg, key);
            }
            let ids: Vec<String> = reg.agents().keys().cloned().collect();
            for id in &ids {
                self.agent(reg, id);
            }
            self.lost_lists(reg);
            self.overrides = reg.overrides().values().map(view::override_entry).collect();
            return true;
        }
        // Heartbeats mark nothing: last-seen times are shared cells the
        // entries read at render time (`api::view::LastSeen`).
        let keys: BTreeSet<&BackendKey> = changes
            .backends
            .iter()
            .chain(changes.checked.iter())
            .collect();
        for key in &keys {
            self.backend(reg, key);
        }
        let mut membership = false;
        for id in &changes.agents {
            membership |= self.agent(reg, id);
        }
        if changes.lost || membership {
            self.lost_lists(reg);
        }
        if changes.overrides {
            self.overrides = reg.overrides().values().map(view::override_entry).collect();
        }
        let mut dns = false;
        if changes.geo {
            // Same database, new mappings: effective in DNS at once.
            self.geo = dns_spec::geo_remapped(reg, self.geo.as_deref());
            self.geo_listing = dns_spec::geo_listing(reg);
            dns = true;
        }
        // A guarded domain depends on its backends' drain reasons too,
        // which move without an effective status changing.
        let guarded: BTreeSet<&str> = changes
            .backends
            .iter()
            .chain(changes.checked.iter())
            .map(|k| k.service.as_str())
            .filter(|s| self.guards.contains_key(*s))
            .collect();
        for (i, d) in reg.cfg().config.domains.iter().enumerate() {
            let stale = self.domains.get(i).is_some_and(|e| {
                changes.domains.contains(&e.name) || guarded.contains(e.name.as_str())
            });
            if stale {
                self.domains[i] = self.domain_entry(reg, d);
                dns = true;
            }
        }
        dns
    }

    fn domain_entry(&mut self, reg: &Registry, d: &crate::config::Domain) -> DomainEntry {
        self.rebuilt.domains += 1;
        let guard = self.guard(reg, d);
        let held = self
            .guards
            .get(&crate::backend::normalize_name(&d.name))
            .map(|(h, _)| h.clone())
            .unwrap_or_default();
        let spec = dns_spec::domain(reg, d, &held);
        DomainEntry {
            name: spec.name.clone(),
            view: Arc::new(view::domain(&spec, d, guard)),
            spec: Arc::new(spec),
        }
    }

    /// Decides `d`'s drain guard again; logs when it turns on or off and
    /// rebuilds the entries of backends it took in or let go.
    fn guard(&mut self, reg: &Registry, d: &crate::config::Domain) -> view::GuardView {
        let name = crate::backend::normalize_name(&d.name);
        if d.min_healthy.is_none() {
            if let Some((old, _)) = self.guards.remove(&name) {
                for key in &old {
                    self.backend(reg, key);
                }
            }
            return view::GuardView::default();
        }
        let held = guard::held(reg, d);
        let (old, mut activations) = self.guards.remove(&name).unwrap_or_default();
        if old.is_empty() && !held.is_empty() {
            activations += 1;
            warn!(
                "drain guard on for {name}: fewer than min_healthy {} backends healthy; \
                 keeping {} predictively drained or agent-unhealthy backend(s) in DNS",
                d.min_healthy.map(|m| m.to_string()).unwrap_or_default(),
                held.len()
            );
        } else if !old.is_empty() && held.is_empty() {
            info!("drain guard off for {name}: verdicts apply again");
        }
        let moved: Vec<BackendKey> = old.symmetric_difference(&held).cloned().collect();
        let active = !held.is_empty();
        self.guards.insert(name, (held, activations));
        for key in &moved {
            self.backend(reg, key);
        }
        view::GuardView {
            active,
            activations,
        }
    }

    fn backend(&mut self, reg: &Registry, key: &BackendKey) {
        let old = match reg.backends().get(key) {
            Some(b) => {
                self.rebuilt.backends += 1;
                let held = self
                    .guards
                    .get(&key.service)
                    .is_some_and(|(h, _)| h.contains(key));
                let (v, disagree) = view::backend(reg, b, held);
                self.disagreements += u64::from(disagree);
                let entry = (Arc::new(v), disagree);
                // In place when it exists: no key copy per refresh.
                match self.backends.get_mut(key) {
                    Some(slot) => Some(std::mem::replace(slot, entry)),
                    None => self.backends.insert(key.clone(), entry),
                }
            }
            None => self.backends.remove(key),
        };
        if let Some((_, true)) = old {
            self.disagreements -= 1;
        }
    }

    /// Rebuilds or drops an agent's entry; true when it came or went.
    fn agent(&mut self, reg: &Registry, id: &str) -> bool {
        match reg.agents().get(id) {
            Some(a) => {
                self.rebuilt.agents += 1;
                let entry = Arc::new(view::agent(reg, a));
                match self.agents.get_mut(id) {
                    Some(slot) => {
                        *slot = entry;
                        false
                    }
                    None => self.agents.insert(id.to_string(), entry).is_none(),
                }
            }
            None => self.agents.remove(id).is_some(),
        }
    }

    fn lost_lists(&mut self, reg: &Registry) {
        self.lost_agents = reg
            .lost()
            .values()
            .filter(|l| !reg.agents().contains_key(&l.agent_id))
            .map(|l| Arc::new(view::lost_agent(reg, l)))
            .collect();
        self.lost = reg.lost().values().map(view::lost_entry).collect();
    }

    /// A replaced GeoIP database file, opened: the resolver again with it
    /// (the configuration's and the API's mappings unchanged).
    pub fn set_geo_database(&mut self, reg: &Registry, db: Arc<crate::geo::Database>) {
        self.geo = crate::geo::GeoResolver::new(&reg.cfg().config, Some(db), &reg.geo_mappings())
            .map(Arc::new);
    }

    /// The spec DNS builds its table from.
    pub fn table_spec(&self, serial: u32) -> TableSpec {
        TableSpec {
            zones: self.zones.clone(),
            domains: self.domains.iter().map(|d| (*d.spec).clone()).collect(),
            serial,
            nameservers: self.nameservers.clone(),
            rate_limit: self.rate_limit.clone(),
            geo: self.geo.clone(),
        }
    }

    /// The view the API serves, sharing every unchanged entry.
    pub fn view(&self, reg: &Registry, inputs: &ViewInputs<'_>) -> OverwatchView {
        OverwatchView {
            node_id: inputs.node_id.to_string(),
            generated_at: inputs.now_secs,
            ready: inputs.ready,
            validation_enabled: reg.cfg().validation_enabled,
            disagreement_count: self.disagreements,
            backends: self.backends.values().map(|(v, _)| Arc::clone(v)).collect(),
            agents: self
                .agents
                .values()
                .chain(self.lost_agents.iter())
                .cloned()
                .collect(),
            overrides: self.overrides.clone(),
            domains: self.domains.iter().map(|d| Arc::clone(&d.view)).collect(),
            lost_agents: self.lost.clone(),
            audit: inputs.audit.to_vec(),
            managed: Default::default(),
            geo_mappings: self.geo_listing.clone(),
            geo: self.geo.clone().map(crate::api::view::GeoHandle),
        }
    }
}
