//! The read side of the API contract: the immutable view of the registry
//! that the registry thread publishes through a `SnapshotCell`.
//!
//! The registry fills these structs with plain values (times as Unix
//! seconds); serialization turns times into RFC 3339 strings and absent
//! values into `null`, so every field of SPEC §7 is always present in the
//! JSON and a script can rely on the key existing.

use crate::timefmt;
use serde::{Deserialize, Serialize, Serializer};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Serializes Unix seconds as RFC 3339, `None` as `null`.
pub fn ser_opt_time<S: Serializer>(t: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&timefmt::rfc3339(*t)),
        None => s.serialize_none(),
    }
}

/// A last-seen time (Unix seconds) read when the API renders. The
/// registry moves it in place on every heartbeat and the view entries of
/// the agent and of its backends share the same cell, so a heartbeat
/// rebuilds no entry (at 10,000 agents the old 5-second refresh rebuilt
/// about 60,000). Compared and serialized by value; `none()` is `null`.
#[derive(Clone, Debug, Default)]
pub struct LastSeen(Option<Arc<AtomicU64>>);

impl LastSeen {
    /// A cell holding `secs`, to be shared and moved with `set`.
    pub fn at(secs: u64) -> LastSeen {
        LastSeen(Some(Arc::new(AtomicU64::new(secs))))
    }

    /// No time (`null`).
    pub fn none() -> LastSeen {
        LastSeen(None)
    }

    pub fn get(&self) -> Option<u64> {
        self.0.as_ref().map(|c| c.load(Ordering::Relaxed))
    }

    /// Moves the time every entry sharing this cell shows.
    pub fn set(&self, secs: u64) {
        if let Some(c) = &self.0 {
            c.store(secs, Ordering::Relaxed);
        }
    }
}

impl PartialEq for LastSeen {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Serialize for LastSeen {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ser_opt_time(&self.get(), s)
    }
}

/// Serializes Unix seconds as RFC 3339.
pub fn ser_time<S: Serializer>(t: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&timefmt::rfc3339(*t))
}

/// The effective status of a backend (SPEC §4). Only `Healthy` is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendStatus {
    Healthy,
    #[default]
    Unhealthy,
    Draining,
    Stale,
}

impl BackendStatus {
    pub const ALL: [BackendStatus; 4] = [
        BackendStatus::Healthy,
        BackendStatus::Unhealthy,
        BackendStatus::Draining,
        BackendStatus::Stale,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BackendStatus::Healthy => "healthy",
            BackendStatus::Unhealthy => "unhealthy",
            BackendStatus::Draining => "draining",
            BackendStatus::Stale => "stale",
        }
    }

    pub fn parse(text: &str) -> Option<BackendStatus> {
        BackendStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One backend (service, address, port) and every input to its status.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct BackendView {
    pub service: String,
    pub address: String,
    pub port: u16,
    pub weight: u32,
    pub region: String,
    pub agent_id: Option<String>,
    pub effective_status: BackendStatus,
    /// The precedence rule that decided: `override`, `agent_draining`,
    /// `agent_unhealthy`, `validation_failed`, `agent_stale`, `validation`,
    /// `healthy`.
    pub status_reason: String,
    pub agent_healthy: Option<bool>,
    pub agent_last_seen: LastSeen,
    pub validation_healthy: Option<bool>,
    #[serde(serialize_with = "ser_opt_time")]
    pub validation_last_check: Option<u64>,
    pub validation_error: Option<String>,
    /// `healthy` or `unhealthy` while an override applies.
    pub override_status: Option<String>,
    pub override_reason: Option<String>,
    pub override_by: Option<String>,
    #[serde(serialize_with = "ser_opt_time")]
    pub override_at: Option<u64>,
    #[serde(serialize_with = "ser_opt_time")]
    pub override_expires_at: Option<u64>,
    pub drain_reason: Option<String>,
    /// `latency` domains: the smoothed round trip of the Overwatch's own
    /// checks, milliseconds (null before the first sample or elsewhere).
    pub round_trip_ms: Option<f64>,
}

/// The state of an agent as the registry knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    #[default]
    Active,
    Stale,
    Left,
    Rejected,
    Lost,
}

impl AgentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Active => "active",
            AgentStatus::Stale => "stale",
            AgentStatus::Left => "left",
            AgentStatus::Rejected => "rejected",
            AgentStatus::Lost => "lost",
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct AgentView {
    pub id: String,
    pub region: String,
    pub status: AgentStatus,
    /// Why a rejected agent was refused: `token_invalid`, `pin_mismatch`,
    /// `cert_expired`, `revoked`, `decrypt_failed`, `replay`.
    pub reject_reason: Option<String>,
    pub last_error: Option<String>,
    /// The source address of its last valid message.
    pub address: Option<String>,
    /// SHA-256 of the pinned certificate, hex.
    pub fingerprint: Option<String>,
    #[serde(serialize_with = "ser_opt_time")]
    pub cert_not_after: Option<u64>,
    #[serde(serialize_with = "ser_opt_time")]
    pub first_seen: Option<u64>,
    pub last_seen: LastSeen,
    pub backend_count: usize,
}

/// An operator override.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct OverrideView {
    pub service: String,
    pub address: String,
    pub port: u16,
    pub healthy: bool,
    pub reason: String,
    pub by: String,
    #[serde(serialize_with = "ser_time")]
    pub at: u64,
    #[serde(serialize_with = "ser_opt_time")]
    pub expires_at: Option<u64>,
}

/// A configured GSLB name and what DNS answers for it now.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct DomainView {
    pub name: String,
    pub routing_algorithm: String,
    pub ttl: u32,
    /// The addresses DNS serves for the name now (healthy backends, or the
    /// last healthy set when `return_last_healthy` applies).
    pub answers: Vec<String>,
    /// `domains[].min_healthy` as configured (`2`, `50%`), null if none.
    pub min_healthy: Option<String>,
    /// The drain guard holds backends in now (`status_reason: drain_guard`).
    pub drain_guard_active: bool,
    /// Times the guard turned on since start (a metric, not in the API).
    #[serde(skip)]
    pub drain_guard_activations: u64,
}

/// An agent past `overwatch.stale.remove_after`, listed by `/healthz`
/// until it returns or is forgotten. One entry per service it carried.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LostAgentView {
    pub agent_id: String,
    pub region: String,
    pub ip: String,
    pub service: String,
    /// Unix seconds of its last valid heartbeat.
    pub last_heartbeat: u64,
}

/// One write through the API: who, from where, what, when. Stored as-is
/// (time in Unix seconds) in the audit log; the API renders `at` as RFC 3339.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AuditEntry {
    pub at: u64,
    pub by: String,
    pub from: String,
    /// `set_override`, `clear_override`, `forget_agent`, `revoke_agent`,
    /// `validate`.
    pub action: String,
    /// What it acted on: `service/address:port` or an agent id.
    pub target: String,
    /// Reason, health and expiry as given, when the write carried them.
    #[serde(default)]
    pub detail: Option<String>,
    /// `ok`, or the error the registry returned.
    #[serde(default)]
    pub result: String,
}

/// Everything the API reads, published whole by the registry thread.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OverwatchView {
    pub node_id: String,
    /// Unix seconds when the registry built this view.
    pub generated_at: u64,
    /// True once the state is loaded and DNS is serving.
    pub ready: bool,
    pub validation_enabled: bool,
    /// Backends where the agent and validation disagree now.
    pub disagreement_count: u64,
    /// Entries are shared between successive views: the registry rebuilds
    /// only those that changed.
    pub backends: Vec<Arc<BackendView>>,
    pub agents: Vec<Arc<AgentView>>,
    pub overrides: Vec<OverrideView>,
    pub domains: Vec<Arc<DomainView>>,
    pub lost_agents: Vec<LostAgentView>,
    /// The newest writes, oldest first (the registry keeps a bounded tail).
    pub audit: Vec<AuditEntry>,
    /// Servers and regions of the file and the API, and the API's domains.
    pub managed: Arc<ManagedListing>,
    /// `GET /api/v1/geo/mappings` entries (config first, then API).
    pub geo_mappings: Vec<serde_json::Value>,
    /// The running geolocation resolver (None: not configured).
    pub geo: Option<GeoHandle>,
}

/// The DNS server's geolocation resolver, for `GET /api/v1/geo/test`;
/// views compare equal when they share the same one.
#[derive(Clone, Debug)]
pub struct GeoHandle(pub Arc<crate::geo::GeoResolver>);

impl PartialEq for GeoHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// What `GET /api/v1/servers` and `/api/v1/regions` list (each entry with
/// `source` and `shadowed_by_config`), and which domains the API manages
/// (name, shadowed by the file) for the `source` of `GET /api/v1/domains`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ManagedListing {
    pub servers: Vec<serde_json::Value>,
    pub regions: Vec<serde_json::Value>,
    pub api_domains: Vec<(String, bool)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_values_are_null_and_times_rfc3339() {
        let b = BackendView {
            agent_last_seen: LastSeen::at(0),
            ..Default::default()
        };
        let v = serde_json::to_value(&b).expect("json");
        assert_eq!(v["agent_last_seen"], "1970-01-01T00:00:00Z");
        assert!(v["override_expires_at"].is_null());
        assert!(v["agent_id"].is_null());
        assert_eq!(v["effective_status"], "unhealthy");
        assert_eq!(v.as_object().map(|o| o.len()), Some(20));
    }
}
