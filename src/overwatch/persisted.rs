//! What of the registry survives a restart: overrides, certificate pins,
//! revocations, lost agents and API geolocation mappings, in one `state.json` in
//! `overwatch.data_dir`, written atomically by `crate::persist::Store`.
//! The audit log is a separate append-only file (`crate::persist::audit`).

use super::model::{LostAgent, Override, Pin, Revocation};
use super::peers::{Entry, Replica};
use super::registry::Registry;
use crate::clock::Now;
use crate::persist::{PersistError, Store};
use serde::{Deserialize, Serialize};

pub const STATE_FILE: &str = "state";

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PersistedState {
    #[serde(default)]
    pub overrides: Vec<Override>,
    #[serde(default)]
    pub pins: Vec<Pin>,
    #[serde(default)]
    pub revocations: Vec<Revocation>,
    #[serde(default)]
    pub lost_agents: Vec<LostAgent>,
    /// The replicated operator state with its stamps and tombstones
    /// (SPEC §12), so a node restarted during a partition converges.
    #[serde(default)]
    pub replicated: Vec<Entry>,
    /// Geolocation mappings set through the API (SPEC §11).
    #[serde(default)]
    pub geo_mappings: Vec<crate::config::GeoMapping>,
}

pub fn snapshot(reg: &Registry, replica: &Replica) -> PersistedState {
    PersistedState {
        overrides: reg.overrides().values().cloned().collect(),
        pins: reg.pins().values().cloned().collect(),
        revocations: reg.revocations().values().cloned().collect(),
        lost_agents: reg.lost().values().cloned().collect(),
        replicated: replica.entries().cloned().collect(),
        geo_mappings: reg.geo_mappings(),
    }
}

/// Puts persisted state back (see `Registry::restore` for override expiry).
pub fn restore(reg: &mut Registry, state: PersistedState, now: Now) {
    reg.restore_geo_mappings(state.geo_mappings);
    reg.restore(
        state.overrides,
        state.pins,
        state.revocations,
        state.lost_agents,
        now,
    );
}

pub fn load(store: &Store) -> Result<PersistedState, PersistError> {
    Ok(store
        .load::<PersistedState>(STATE_FILE)?
        .unwrap_or_default())
}

pub fn save(store: &Store, reg: &Registry, replica: &Replica) -> Result<(), PersistError> {
    store.save(STATE_FILE, &snapshot(reg, replica))
}
