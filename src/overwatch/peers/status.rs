//! What the `peers` thread publishes for the API and metrics: the
//! cluster view of `GET /api/v1/cluster/status` and the peer counters.

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
