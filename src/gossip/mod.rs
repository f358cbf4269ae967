//! The encrypted gossip between agents and Overwatch nodes (SPEC §5).
//!
//! Laid out by role:
//! - `wire/`: the codec (header, messages, session tag); decoding fails
//!   with a typed `DecodeError`.
//! - `io/`: the one TCP framing layer both loops use, with the frame limit
//!   checked before buffering and the pre-auth memory budget.
//! - `agent/`: the agent's protocol (`AgentSession`, split along
//!   handshake / heartbeat / retransmit), its mio loop and the resolver
//!   thread.
//! - `overwatch/`: the Overwatch's protocol (`OverwatchProtocol`, split
//!   along registration / sessions / admission), its mio loop and the
//!   heartbeat coalescing in front of the registry.
//! - `sim`: a deterministic simulated network for tests.
//! - `crypto` (AEAD keyring), `session` (per-session keys), `replay`,
//!   `identity` and `cert` stay here at the top: both roles use them (the
//!   agent seals, signs and checks replays; the Overwatch opens, verifies
//!   and checks replays), so under either role folder they would be
//!   reached across from the other, and a `security/` folder would only
//!   rename the paths the daemon and the fuzz targets already use.
//!
//! The protocol objects do no I/O: they take bytes and the time, a
//! `crate::clock::Now` read once per loop turn (deadlines, retransmits,
//! backoff and session expiry on its monotonic part; message stamps and
//! the replay window on its wall part), and return what to send and what
//! happened. The mio loops only move bytes. The wire format is documented
//! in `docs/gossip.md`. This file holds the types shared by both sides.

pub mod agent;
pub mod cert;
pub mod crypto;
pub mod entropy;
pub mod identity;
pub mod io;
pub mod overwatch;
pub mod replay;
pub mod session;
pub mod sim;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

pub use crypto::{KeyError, Keyring};

/// The default gossip port, UDP and TCP.
pub const DEFAULT_PORT: u16 = 7946;

/// Why an Overwatch refused an agent or a message. The strings are the
/// `reason` label of `opengslb_overwatch_agent_auth_failures_total` and
/// what the API shows for a rejected agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    TokenInvalid,
    PinMismatch,
    CertExpired,
    Revoked,
    DecryptFailed,
    Replay,
    UnknownService,
    /// The certificate does not parse or the proof of possession (or the
    /// rotation proof) does not verify.
    CertInvalid,
    /// A reported backend's address is not an IP address.
    InvalidBackend,
}

impl RejectReason {
    pub const ALL: [RejectReason; 9] = [
        RejectReason::TokenInvalid,
        RejectReason::PinMismatch,
        RejectReason::CertExpired,
        RejectReason::Revoked,
        RejectReason::DecryptFailed,
        RejectReason::Replay,
        RejectReason::UnknownService,
        RejectReason::CertInvalid,
        RejectReason::InvalidBackend,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::TokenInvalid => "token_invalid",
            RejectReason::PinMismatch => "pin_mismatch",
            RejectReason::CertExpired => "cert_expired",
            RejectReason::Revoked => "revoked",
            RejectReason::DecryptFailed => "decrypt_failed",
            RejectReason::Replay => "replay",
            RejectReason::UnknownService => "unknown_service",
            RejectReason::CertInvalid => "cert_invalid",
            RejectReason::InvalidBackend => "invalid_backend",
        }
    }

    /// The code carried in a `Rejected` message.
    pub fn code(self) -> u8 {
        match self {
            RejectReason::TokenInvalid => 1,
            RejectReason::PinMismatch => 2,
            RejectReason::CertExpired => 3,
            RejectReason::Revoked => 4,
            RejectReason::DecryptFailed => 5,
            RejectReason::Replay => 6,
            RejectReason::UnknownService => 7,
            RejectReason::CertInvalid => 8,
            RejectReason::InvalidBackend => 9,
        }
    }

    pub fn from_code(code: u8) -> Option<RejectReason> {
        RejectReason::ALL.into_iter().find(|r| r.code() == code)
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the Overwatch side needs from configuration and the registry. The
/// integrator publishes it through `crate::snapshot::SnapshotCell<Policy>`;
/// the server picks up a new one on its next packet.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub keyring: Keyring,
    /// service name → token (`overwatch.agent_tokens`).
    pub agent_tokens: BTreeMap<String, String>,
    /// Configured domain names an agent may report backends for.
    pub known_services: BTreeSet<String>,
    /// agent id → certificate fingerprint (hex SHA-256 of the DER), as
    /// persisted by the registry.
    pub pins: HashMap<String, String>,
    pub revoked: HashSet<String>,
    /// agent id → when the operator forgot it, as a number the registry
    /// only ever increases (a counter). The listener drops the agent's
    /// session and locally learned pin once for each new number it sees
    /// (within a second), so the registry reaches gossip through this
    /// snapshot alone, without a handle on the listener.
    pub forgotten: BTreeMap<String, u64>,
}

/// Compares secrets without an early exit on the first differing byte.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Lowercase hex of a byte string (fingerprints).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Hex SHA-256 of a certificate's DER: the pinned fingerprint.
pub fn fingerprint(cert_der: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, cert_der).as_ref())
}
