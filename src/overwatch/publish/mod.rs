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
        // A heartbeat moves an agent's last-seen time, shown on its
        // backends too.
        let mut keys: BTreeSet<&BackendKey> = changes.backends.iter().collect();
        keys.extend(changes.checked.iter());
        let mut ids: BTreeSet<&String> = changes.agents.iter().collect();
        for id in &changes.seen {
            ids.insert(id);
            if let Some(a) = reg.agents().get(id) {
                keys.extend(a.backends.iter());
            }
        }
        for key in keys {
            self.backend(reg, key);
        }
        let mut membership = false;
        for id in ids {
            membership |= self.agent(reg, id);
        }
        if changes.lost || membership {
            self.lost_lists(reg);
        }
        if changes.overrides {
            self.overrides = reg.overrides().values().map(view::override_entry).collect();
        }
        let mut dns = false;
        for (i, d) in reg.cfg().config.domains.iter().enumerate() {
            let stale = self
                .domains
                .get(i)
                .is_some_and(|e| changes.domains.contains(&e.name));
            if stale {
                self.domains[i] = self.domain_entry(reg, d);
                dns = true;
            }
        }
        dns
    }

    fn domain_entry(&mut self, reg: &Registry, d: &crate::config::Domain) -> DomainEntry {
        self.rebuilt.domains += 1;
        let spec = dns_spec::domain(reg, d);
        DomainEntry {
            name: spec.name.clone(),
            view: Arc::new(view::domain(&spec)),
            spec: Arc::new(spec),
        }
    }

    fn backend(&mut self, reg: &Registry, key: &BackendKey) {
        let old = match reg.backends().get(key) {
            Some(b) => {
                self.rebuilt.backends += 1;
                let (v, disagree) = view::backend(reg, b);
                self.disagreements += u64::from(disagree);
                self.backends.insert(key.clone(), (Arc::new(v), disagree))
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
                self.agents
                    .insert(id.to_string(), Arc::new(view::agent(reg, a)))
                    .is_none()
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
        }
    }
}
