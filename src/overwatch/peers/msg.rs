//! The peer messages and their codec. A peer packet is an ordinary sealed
//! gossip packet (`crate::gossip::crypto`, same keyring) whose clear
//! header carries the session id `PEER_SESSION`: the gossip loop hands
//! such packets to the `peers` thread unopened, and agent sessions never
//! use that id. Inside is one JSON `PeerMsg`, at most `MAX_PLAIN` bytes.
//!
//! Every message names its sender's node id and gossip port; the receiver
//! accepts it only when (source IP of the datagram, that port) is one of
//! its `overwatch.peers`, and answers there.
//! Decoding never panics; anything out of bounds is refused with a reason
//! and leaves state untouched.

use super::lww::{Entry, MAX_ID_LEN};
use serde::{Deserialize, Serialize};

pub use crate::gossip::wire::PEER_SESSION;
/// Largest plaintext (one datagram with room for header and tag).
pub const MAX_PLAIN: usize = 1300;
/// Most entries in one push.
pub const MAX_ENTRIES: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case", deny_unknown_fields)]
pub enum PeerMsg {
    /// Changes to merge; answered with `Ack { seq }`.
    Push {
        from: String,
        gossip_port: u16,
        seq: u64,
        entries: Vec<Entry>,
    },
    Ack {
        from: String,
        gossip_port: u16,
        seq: u64,
        /// The sender's wall clock when it sent the push being acked is
        /// not needed: the round trip is measured on our own clock.
        digest: String,
    },
    /// Anti-entropy: the sender's digest. A node whose digest differs
    /// pushes everything it holds and (unless `reply`) answers with its
    /// own digest so the other side does the same.
    Digest {
        from: String,
        gossip_port: u16,
        digest: String,
        count: u64,
        reply: bool,
        /// The sender's API address (`host:port`), for
        /// `opengslb-cli servers --cluster`.
        #[serde(default)]
        api: Option<String>,
    },
}

impl PeerMsg {
    pub fn from(&self) -> (&str, u16) {
        match self {
            PeerMsg::Push {
                from, gossip_port, ..
            }
            | PeerMsg::Ack {
                from, gossip_port, ..
            }
            | PeerMsg::Digest {
                from, gossip_port, ..
            } => (from, *gossip_port),
        }
    }
}

/// Why a peer packet was refused (label of the refusal counter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerRefusal {
    DecryptFailed,
    Oversize,
    Malformed,
    UnknownKind,
    NotListed,
    AddressMismatch,
    ClockSkew,
}

impl PeerRefusal {
    pub const ALL: [PeerRefusal; 7] = [
        PeerRefusal::DecryptFailed,
        PeerRefusal::Oversize,
        PeerRefusal::Malformed,
        PeerRefusal::UnknownKind,
        PeerRefusal::NotListed,
        PeerRefusal::AddressMismatch,
        PeerRefusal::ClockSkew,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PeerRefusal::DecryptFailed => "decrypt_failed",
            PeerRefusal::Oversize => "oversize",
            PeerRefusal::Malformed => "malformed",
            PeerRefusal::UnknownKind => "unknown_kind",
            PeerRefusal::NotListed => "not_listed",
            PeerRefusal::AddressMismatch => "address_mismatch",
            PeerRefusal::ClockSkew => "clock_skew",
        }
    }
}

pub fn encode(m: &PeerMsg) -> Vec<u8> {
    serde_json::to_vec(m).unwrap_or_default()
}

/// Whether one entry fits a push on its own (a managed entry that does
/// not is refused at the API rather than never reaching the peers).
pub fn fits(e: &Entry, from: &str) -> bool {
    let n = serde_json::to_vec(e).map(|v| v.len()).unwrap_or(usize::MAX);
    e.id.len() <= MAX_ID_LEN
        && e.value
            .as_ref()
            .is_none_or(|v| v.len() <= super::lww::MAX_VALUE_LEN)
        && n.saturating_add(120 + from.len()) <= MAX_PLAIN
}

/// Decodes a plaintext; bounds are checked before anything is kept.
pub fn decode(plain: &[u8]) -> Result<PeerMsg, PeerRefusal> {
    if plain.len() > MAX_PLAIN {
        return Err(PeerRefusal::Oversize);
    }
    let m: PeerMsg = serde_json::from_slice(plain).map_err(|e| {
        if e.to_string().contains("unknown object kind") {
            PeerRefusal::UnknownKind
        } else {
            PeerRefusal::Malformed
        }
    })?;
    if m.from().0.len() > MAX_ID_LEN {
        return Err(PeerRefusal::Oversize);
    }
    match &m {
        PeerMsg::Push { entries, .. } if entries.len() > MAX_ENTRIES => {
            return Err(PeerRefusal::Oversize);
        }
        PeerMsg::Digest { digest, .. } | PeerMsg::Ack { digest, .. } if digest.len() > 64 => {
            return Err(PeerRefusal::Oversize);
        }
        PeerMsg::Digest { api: Some(a), .. } if a.len() > MAX_ID_LEN => {
            return Err(PeerRefusal::Oversize);
        }
        _ => {}
    }
    Ok(m)
}

/// Splits entries into pushes that each fit one datagram. Managed
/// entries (kinds 5..7) never share a push with the older kinds, so a
/// peer that predates them refuses only their pushes.
pub fn chunk(entries: &[Entry], from: &str) -> Vec<Vec<Entry>> {
    let mut out: Vec<Vec<Entry>> = Vec::new();
    let mut cur: Vec<Entry> = Vec::new();
    let base = 120 + from.len();
    let mut size = base;
    for e in entries {
        let n = serde_json::to_vec(e).map(|v| v.len() + 1).unwrap_or(0);
        let other_generation = cur
            .last()
            .is_some_and(|l: &Entry| l.kind.is_managed() != e.kind.is_managed());
        if !cur.is_empty() && (size + n > MAX_PLAIN || cur.len() >= MAX_ENTRIES || other_generation)
        {
            out.push(std::mem::take(&mut cur));
            size = base;
        }
        size += n;
        cur.push(e.clone());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}
