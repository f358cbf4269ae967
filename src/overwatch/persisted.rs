//! What of the registry survives a restart: overrides, certificate pins,
//! revocations and lost agents, in one `state.json` in
//! `overwatch.data_dir`, written atomically by `crate::persist::Store`.
//! The audit log is a separate append-only file (`crate::persist::audit`).

use super::model::{LostAgent, Override, Pin, Revocation};
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
}

pub fn snapshot(reg: &Registry) -> PersistedState {
    PersistedState {
        overrides: reg.overrides.values().cloned().collect(),
        pins: reg.pins.values().cloned().collect(),
        revocations: reg.revocations.values().cloned().collect(),
        lost_agents: reg.lost.values().cloned().collect(),
    }
}

/// Puts persisted state back. An override's wall-clock `expires_at` is
/// turned into a monotonic deadline against `now` (time left = expiry −
/// wall time now), so an override keeps its end across a restart.
pub fn restore(reg: &mut Registry, state: PersistedState, now: Now) {
    for o in state.overrides {
        reg.insert_override(o, now);
    }
    for p in state.pins {
        reg.pins.insert(p.agent_id.clone(), p);
    }
    for r in state.revocations {
        reg.revocations.insert(r.agent_id.clone(), r);
    }
    for l in state.lost_agents {
        reg.lost.insert(l.agent_id.clone(), l);
    }
}

pub fn load(store: &Store) -> Result<PersistedState, PersistError> {
    Ok(store
        .load::<PersistedState>(STATE_FILE)?
        .unwrap_or_default())
}

pub fn save(store: &Store, reg: &Registry) -> Result<(), PersistError> {
    store.save(STATE_FILE, &snapshot(reg))
}
