//! What the `peers` thread publishes for the API and metrics: the
//! cluster view of `GET /api/v1/cluster/status` and the peer counters,
//! and how both are rendered (the API body, the `/metrics` lines).

use super::lww::Rejected;
use super::msg::PeerRefusal;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct PeerStatus {
    pub node_id: Option<String>,
    pub address: String,
    /// `connected` or `unreachable`.
    pub state: &'static str,
    /// RFC 3339, `None` before the first contact.
    pub last_contact: Option<String>,
    pub rtt_ms: Option<u64>,
    pub in_sync: bool,
    /// The API address the peer advertises (`host:port`).
    pub api: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ClusterStatus {
    pub node_id: String,
    pub digest: String,
    pub peers: Vec<PeerStatus>,
    /// Replicated entries this node holds but could not apply.
    pub rejected: Vec<Rejected>,
    /// How many times since start a replicated entry was not applied.
    pub rejected_total: u64,
}

/// Counted by the `peers` thread, read by `/metrics`.
#[derive(Debug, Default)]
pub struct PeerCounters {
    pub changes_sent: AtomicU64,
    pub changes_received: AtomicU64,
    refused: [AtomicU64; PeerRefusal::ALL.len()],
}

impl PeerCounters {
    pub fn refuse(&self, r: PeerRefusal) {
        if let Some(c) = self.refused.get(r as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn refused(&self, r: PeerRefusal) -> u64 {
        self.refused
            .get(r as usize)
            .map(|c| c.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// `opengslb_overwatch_peers{state}`, `..._peer_sync_changes_total{direction}`
/// and `..._peer_refused_total{reason}`.
pub fn write_metrics(
    status: &ClusterStatus,
    counters: &PeerCounters,
    w: &mut crate::metrics::TextWriter,
) {
    use crate::metrics::Kind;
    w.family(
        "opengslb_overwatch_peers",
        "Overwatch peers listed in overwatch.peers, by state.",
        Kind::Gauge,
    );
    for state in ["connected", "unreachable"] {
        let n = status.peers.iter().filter(|p| p.state == state).count();
        w.sample("opengslb_overwatch_peers", &[("state", state)], n as f64);
    }
    w.single(
        "opengslb_overwatch_peers_out_of_sync",
        "Connected peers whose replicated state digest differs from ours.",
        Kind::Gauge,
        status
            .peers
            .iter()
            .filter(|p| p.state == "connected" && !p.in_sync)
            .count() as f64,
    );
    w.family(
        "opengslb_overwatch_peer_sync_changes_total",
        "Replicated operator changes pushed to peers (sent) and taken from them (received).",
        Kind::Counter,
    );
    for (dir, c) in [
        ("sent", &counters.changes_sent),
        ("received", &counters.changes_received),
    ] {
        w.sample(
            "opengslb_overwatch_peer_sync_changes_total",
            &[("direction", dir)],
            PeerCounters::get(c) as f64,
        );
    }
    w.single(
        "opengslb_overwatch_peer_rejected",
        "Replicated entries held but not applied on this node (listed in cluster status).",
        Kind::Gauge,
        status.rejected.len() as f64,
    );
    w.single(
        "opengslb_overwatch_peer_rejected_total",
        "Replicated entries this node refused to apply (failed its validation).",
        Kind::Counter,
        status.rejected_total as f64,
    );
    w.family(
        "opengslb_overwatch_peer_refused_total",
        "Peer packets refused, by reason.",
        Kind::Counter,
    );
    for r in PeerRefusal::ALL {
        w.sample(
            "opengslb_overwatch_peer_refused_total",
            &[("reason", r.as_str())],
            counters.refused(r) as f64,
        );
    }
}

/// The body of `GET /api/v1/cluster/status`.
pub fn status_json(status: &ClusterStatus, now_secs: u64) -> serde_json::Value {
    serde_json::json!({
        "node_id": status.node_id,
        "digest": status.digest,
        "peers": status.peers,
        "rejected": status.rejected,
        "generated_at": crate::timefmt::rfc3339(now_secs),
    })
}
