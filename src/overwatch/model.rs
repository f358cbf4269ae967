//! The registry's plain data: backends, agents, overrides and lost agents.
//!
//! Liveness runs on the monotonic clock (`crate::clock::Mono`), so a
//! wall-clock step can neither make every agent stale at once nor keep a
//! dead one active. Times shown to operators (first/last seen) are wall
//! milliseconds recorded alongside; persisted times are wall unix seconds.

use super::precedence::{Rule, Status};
use crate::api::view::LastSeen;
use crate::clock::Mono;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

pub use crate::backend::{BackendKey, BackendReport, normalize_name};

/// The Overwatch's own verdict on a backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub healthy: bool,
    pub last_check_ms: u64,
    pub error: Option<String>,
}

/// What `precedence::decide` concluded for one backend, kept with it for
/// views, DNS and logging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Effective {
    pub status: Status,
    pub rule: Rule,
}

#[derive(Clone, Debug)]
pub struct Backend {
    pub key: BackendKey,
    pub weight: u32,
    pub region: String,
    /// Position among the configured static servers (failover priority);
    /// `None` for a backend only an agent reports.
    pub static_order: Option<usize>,
    /// What each agent reporting it last said (SPEC §4: one claim per
    /// agent, in the order they first claimed it; usually one).
    pub claims: Vec<Claim>,
    pub validation: Option<Verdict>,
    /// Set by the registry's `recompute` only; `None` until first decided.
    pub effective: Option<Effective>,
}

/// One agent's report on a backend (the shared report type).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub agent_id: String,
    pub report: BackendReport,
}

impl Backend {
    /// Whether any agent reports this backend.
    pub fn is_claimed(&self) -> bool {
        !self.claims.is_empty()
    }

    pub fn claim_of(&self, agent_id: &str) -> Option<&BackendReport> {
        self.claims
            .iter()
            .find(|c| c.agent_id == agent_id)
            .map(|c| &c.report)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentStatus {
    Active,
    Stale,
    Left,
    Rejected,
}

impl AgentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Active => "active",
            AgentStatus::Stale => "stale",
            AgentStatus::Left => "left",
            AgentStatus::Rejected => "rejected",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Agent {
    pub id: String,
    pub region: String,
    pub address: Option<SocketAddr>,
    pub status: AgentStatus,
    pub reject_reason: Option<String>,
    pub last_error: Option<String>,
    pub fingerprint: Option<String>,
    pub cert_not_after: Option<u64>,
    /// Wall-clock unix ms, for operators only.
    pub first_seen_wall_ms: u64,
    pub last_seen_wall_ms: u64,
    /// When the last valid message arrived, for staleness.
    pub last_seen: Mono,
    /// `last_seen_wall_ms` in seconds, shared with the API entries of the
    /// agent and its backends (moved in place, read at render time).
    pub last_seen_shown: LastSeen,
    /// No valid message for this long → stale.
    pub stale_after_ms: u64,
    /// Added to the stale threshold until the first heartbeat after a
    /// registration (one more stale window): the agent learns its new
    /// session only when our answer reaches it and heartbeats one interval
    /// after that, so the registration alone must not start a window of
    /// `stale_after_ms` (issue 9: half the fleet went stale 3 s after
    /// registering again after an Overwatch restart).
    pub first_beat_grace_ms: u64,
    pub backends: Vec<BackendKey>,
}

/// An operator override (SPEC §7), persisted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    pub key: BackendKey,
    pub healthy: bool,
    pub reason: String,
    pub by: String,
    /// Unix seconds (wall clock) when it was set.
    pub at: u64,
    /// Unix seconds (wall clock): shown to operators and persisted. While
    /// the Overwatch runs, the override lasts the time it was given on the
    /// monotonic clock (see `Registry::set_override`).
    pub expires_at: Option<u64>,
}

/// An agent dropped after `remove_after`, listed until it returns or is
/// forgotten. Persisted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostAgent {
    pub agent_id: String,
    pub region: String,
    pub ip: String,
    pub service: String,
    /// Unix seconds of the last valid message.
    pub last_heartbeat: u64,
}

/// A certificate pin (trust on first use), persisted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    pub agent_id: String,
    pub fingerprint: String,
    pub pinned_at: u64,
}

/// A revoked agent id, persisted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub agent_id: String,
    pub reason: String,
    pub by: String,
    pub at: u64,
}
