//! The replicated operator state: a last-writer-wins map keyed by
//! (object kind, object id), each entry stamped by the hybrid logical
//! clock (`hlc.rs`) with its origin node and the operator who made it.
//!
//! A delete is a tombstone (an entry without a value) kept for
//! `overwatch.peer_sync.tombstone_ttl`, so a node that missed the delete
//! cannot bring the object back while the tombstone lives. `merge` is
//! commutative and idempotent: whatever order the same changes arrive in,
//! every node ends with the same map, and the same `digest`. Nothing here
//! does I/O; `link.rs` moves entries between nodes and the registry thread
//! applies them (`ingest/peers.rs`).

use super::hlc::{Hlc, Stamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest accepted object id and value (bytes).
pub const MAX_ID_LEN: usize = 256;
pub const MAX_VALUE_LEN: usize = 900;
/// Largest accepted distance of a remote stamp ahead of our wall clock.
pub const DEFAULT_MAX_SKEW_MS: u64 = 60_000;

/// What kind of operator object an entry holds. Kinds 5..7 (managed
/// servers, regions, domains) are newer than 1..4: a node that predates
/// them refuses a push carrying one (`unknown_kind`) and keeps running,
/// so they never share a push with the older kinds (`msg::chunk`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Kind {
    Override = 1,
    Revocation = 2,
    ForgottenPin = 3,
    GeoMapping = 4,
    ManagedRegion = 5,
    ManagedServer = 6,
    ManagedDomain = 7,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Override => "override",
            Kind::Revocation => "revocation",
            Kind::ForgottenPin => "forgotten_pin",
            Kind::GeoMapping => "geo_mapping",
            Kind::ManagedRegion => "managed_region",
            Kind::ManagedServer => "managed_server",
            Kind::ManagedDomain => "managed_domain",
        }
    }

    /// An API server, region or domain (`managed.json`).
    pub fn is_managed(self) -> bool {
        matches!(
            self,
            Kind::ManagedRegion | Kind::ManagedServer | Kind::ManagedDomain
        )
    }
}

impl TryFrom<u8> for Kind {
    type Error = String;
    fn try_from(v: u8) -> Result<Kind, String> {
        match v {
            1 => Ok(Kind::Override),
            2 => Ok(Kind::Revocation),
            3 => Ok(Kind::ForgottenPin),
            4 => Ok(Kind::GeoMapping),
            5 => Ok(Kind::ManagedRegion),
            6 => Ok(Kind::ManagedServer),
            7 => Ok(Kind::ManagedDomain),
            other => Err(format!("unknown object kind {other}")),
        }
    }
}

impl From<Kind> for u8 {
    fn from(k: Kind) -> u8 {
        k as u8
    }
}

/// One replicated object (or its tombstone).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: Kind,
    pub id: String,
    pub stamp: Stamp,
    /// Who made the change (the API caller on the origin node).
    pub operator: String,
    /// The object as JSON; `None`: deleted (a tombstone).
    pub value: Option<String>,
}

/// Why a remote entry was not taken; state is untouched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    ClockSkew,
    Oversize,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::ClockSkew => "clock_skew",
            Refusal::Oversize => "oversize",
        }
    }
}

/// A replicated entry this node could not take (a managed entry naming a
/// region it lacks, ...): the node keeps what it had for that key, and
/// tries again when its configuration or managed entries change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rejected {
    pub kind: &'static str,
    pub id: String,
    pub origin: String,
    pub operator: String,
    pub reason: String,
    /// RFC 3339, when it was last refused.
    pub at: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Merged {
    /// Newer than what we held: apply it to the registry.
    Applied,
    /// Older than or equal to what we hold.
    Ignored,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Replica {
    #[serde(skip)]
    pub node: String,
    #[serde(skip)]
    clock: Hlc,
    #[serde(skip)]
    pub max_skew_ms: u64,
    entries: BTreeMap<(Kind, String), Entry>,
    /// Entries held but not applied here, by key (set by the registry
    /// thread, shown in the cluster status).
    #[serde(skip)]
    pub rejected: BTreeMap<(Kind, String), Rejected>,
    /// Refusals since start (`opengslb_overwatch_peer_rejected_total`).
    #[serde(skip)]
    pub rejected_total: u64,
}

impl Replica {
    pub fn new(node: &str) -> Replica {
        Replica {
            node: node.to_string(),
            clock: Hlc::default(),
            max_skew_ms: DEFAULT_MAX_SKEW_MS,
            entries: BTreeMap::new(),
            rejected: BTreeMap::new(),
            rejected_total: 0,
        }
    }

    /// Restores persisted entries (the clock moves past their stamps).
    pub fn restore(&mut self, entries: Vec<Entry>, now_ms: u64) {
        for e in entries {
            self.clock.observe(&e.stamp, now_ms);
            self.entries.insert((e.kind, e.id.clone()), e);
        }
    }

    /// A local write: stamps it and keeps it; the result is to be pushed.
    pub fn write(
        &mut self,
        kind: Kind,
        id: &str,
        value: Option<String>,
        operator: &str,
        now_ms: u64,
    ) -> Entry {
        let stamp = self.clock.tick(now_ms, &self.node);
        let e = Entry {
            kind,
            id: id.to_string(),
            stamp,
            operator: operator.to_string(),
            value,
        };
        self.entries.insert((kind, id.to_string()), e.clone());
        e
    }

    /// Takes a remote entry if it is newer than ours (ties broken by the
    /// origin node inside the stamp, so every node decides alike).
    pub fn merge(&mut self, e: &Entry, now_ms: u64) -> Result<Merged, Refusal> {
        if e.id.len() > MAX_ID_LEN || e.value.as_ref().is_some_and(|v| v.len() > MAX_VALUE_LEN) {
            return Err(Refusal::Oversize);
        }
        if e.stamp.wall_ms > now_ms.saturating_add(self.max_skew_ms) {
            return Err(Refusal::ClockSkew);
        }
        self.clock.observe(&e.stamp, now_ms);
        let key = (e.kind, e.id.clone());
        match self.entries.get(&key) {
            Some(mine) if mine.stamp >= e.stamp => Ok(Merged::Ignored),
            _ => {
                self.entries.insert(key, e.clone());
                Ok(Merged::Applied)
            }
        }
    }

    /// Drops tombstones older than `ttl_ms`; true when any went.
    pub fn expire_tombstones(&mut self, now_ms: u64, ttl_ms: u64) -> bool {
        let before = self.entries.len();
        self.entries
            .retain(|_, e| e.value.is_some() || e.stamp.wall_ms.saturating_add(ttl_ms) > now_ms);
        self.entries.len() != before
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    pub fn get(&self, kind: Kind, id: &str) -> Option<&Entry> {
        self.entries.get(&(kind, id.to_string()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// SHA-256 over every entry in key order, hex: equal on two nodes
    /// exactly when they hold the same state.
    pub fn digest(&self) -> String {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for e in self.entries.values() {
            ctx.update(&[e.kind as u8]);
            field(&mut ctx, e.id.as_bytes());
            ctx.update(&e.stamp.wall_ms.to_be_bytes());
            ctx.update(&e.stamp.logical.to_be_bytes());
            field(&mut ctx, e.stamp.node.as_bytes());
            field(&mut ctx, e.operator.as_bytes());
            match &e.value {
                Some(v) => {
                    ctx.update(&[1]);
                    field(&mut ctx, v.as_bytes());
                }
                None => ctx.update(&[0]),
            }
        }
        crate::gossip::hex(ctx.finish().as_ref())
    }
}

fn field(ctx: &mut ring::digest::Context, bytes: &[u8]) {
    ctx.update(&(bytes.len() as u32).to_be_bytes());
    ctx.update(bytes);
}
