//! What changed in the registry since the last publish.
//!
//! Every rule that changes state marks here which backends, domains and
//! agents it touched, so the publisher rebuilds only those entries of the
//! DNS table spec and the API view, and `recompute` decides the precedence
//! again only for backends whose facts moved. A heartbeat marks nothing:
//! the last-seen time it moves lives in a cell the API entries share
//! (`api::view::LastSeen`) and is read at render time. `checked` is kept
//! apart: a health check that only moved a backend's last-check time,
//! which the runtime folds into the next publish (or a periodic refresh)
//! instead of publishing for it.

use super::super::model::BackendKey;
use std::collections::BTreeSet;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Everything (first publish, configuration reload).
    pub all: bool,
    /// Backends whose API entry must be rebuilt (or dropped).
    pub backends: BTreeSet<BackendKey>,
    /// Domains whose DNS entry (and API domain entry) must be rebuilt.
    pub domains: BTreeSet<String>,
    /// Agents whose API entry must be rebuilt (or dropped).
    pub agents: BTreeSet<String>,
    /// Backends with only a new last-check time (same verdict).
    pub checked: BTreeSet<BackendKey>,
    /// The override list changed.
    pub overrides: bool,
    /// The API's geolocation mappings changed.
    pub geo: bool,
    /// The lost-agent list or the pins changed.
    pub lost: bool,
    /// The set of probes may have changed (a backend came, went, or moved
    /// between validated and not).
    pub probes: bool,
}

impl Changes {
    pub fn everything() -> Changes {
        Changes {
            all: true,
            overrides: true,
            lost: true,
            probes: true,
            ..Default::default()
        }
    }

    /// Something readers would see other than last-check times.
    pub fn visible(&self) -> bool {
        self.all
            || self.overrides
            || self.geo
            || self.lost
            || !self.backends.is_empty()
            || !self.domains.is_empty()
            || !self.agents.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        !self.visible() && self.checked.is_empty() && !self.probes
    }
}

/// The registry's marks: what to publish, and what to decide again.
#[derive(Debug, Default)]
pub(super) struct Dirty {
    pub changes: Changes,
    /// Backends whose effective status must be decided again.
    pub undecided: BTreeSet<BackendKey>,
}

impl Dirty {
    /// The backend's facts or fields changed.
    pub fn backend(&mut self, key: &BackendKey) {
        if !self.undecided.contains(key) {
            self.undecided.insert(key.clone());
        }
        if !self.changes.backends.contains(key) {
            self.changes.backends.insert(key.clone());
        }
    }

    /// Something DNS serves for the domain may have changed.
    pub fn domain(&mut self, service: &str) {
        if !self.changes.domains.contains(service) {
            self.changes.domains.insert(service.to_string());
        }
    }

    pub fn agent(&mut self, id: &str) {
        if !self.changes.agents.contains(id) {
            self.changes.agents.insert(id.to_string());
        }
    }

    pub fn checked(&mut self, key: &BackendKey) {
        if !self.changes.checked.contains(key) {
            self.changes.checked.insert(key.clone());
        }
    }
}
