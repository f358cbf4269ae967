//! The gossip wire format: the clear header, the message bodies inside the
//! encrypted payload, and the session tag after them. TCP framing lives in
//! `gossip::io`, sealing in `gossip::crypto`.
//!
//! Everything is big-endian, strings are UTF-8 with a u16 length, byte
//! strings a u32 length. Decoding works on a bounds-checked reader
//! (`reader.rs`) and fails with a `DecodeError` naming the field and
//! offset; no input can panic, and lists never preallocate from a count
//! that came off the wire. The bodies' encode and decode are in
//! `codec.rs`. See `docs/gossip.md`.

mod codec;
mod latency;
mod reader;

pub use latency::{LATENCY_BATCH, LatencyEntry, LatencyReport, MAX_LATENCY_ENTRIES};
pub use reader::{DecodeError, Reader, Writer};

use crate::backend::{BackendKey, BackendReport};
use crate::gossip::RejectReason;
use crate::gossip::session::SESSION_TAG_LEN;

pub const MAGIC: [u8; 2] = *b"OG";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 36;
/// Largest packet sent as one UDP datagram; anything bigger goes over TCP.
pub const MAX_DATAGRAM: usize = 1400;
/// The clear-header session id of packets between Overwatch peers: the
/// gossip loop hands them to the `peers` thread unopened
/// (`crate::overwatch::peers`); agent sessions never use it.
pub const PEER_SESSION: u64 = u64::MAX;
/// Largest datagram accepted (a little slack over what we send).
pub const MAX_RECV_DATAGRAM: usize = 1500;

/// The clear header; authenticated as AAD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub key_id: [u8; 4],
    pub session_id: u64,
    pub counter: u64,
    pub nonce: [u8; 12],
}

impl Header {
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(0); // flags, reserved
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&self.session_id.to_be_bytes());
        out.extend_from_slice(&self.counter.to_be_bytes());
        out.extend_from_slice(&self.nonce);
    }

    pub fn parse(packet: &[u8]) -> Result<Header, DecodeError> {
        let mut r = Reader::new(packet);
        let lead: [u8; 4] = r.array("header")?;
        if lead[0..2] != MAGIC || lead[2] != VERSION {
            return Err(DecodeError::NotOurs);
        }
        Ok(Header {
            key_id: r.array("key id")?,
            session_id: r.u64("session id")?,
            counter: r.u64("counter")?,
            nonce: r.array("nonce")?,
        })
    }
}

/// A message in the encrypted payload, after the type byte and timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Hello {
        agent_id: String,
    },
    Challenge {
        agent_session: u64,
        nonce: [u8; 32],
    },
    Register(Box<Register>),
    Registered {
        state_seq: u64,
        echo_ts: u64,
        /// The agent's ephemeral key this answers, and ours.
        agent_dh: [u8; 32],
        ow_dh: [u8; 32],
    },
    Rejected {
        reason: RejectReason,
        detail: String,
    },
    State(StateMsg),
    Heartbeat {
        agent_id: String,
        state_seq: u64,
    },
    Ack {
        acked_seq: u64,
        echo_ts: u64,
        need_full: bool,
    },
    Leave {
        agent_id: String,
    },
    /// The Overwatch does not know this session (it restarted, or forgot
    /// the agent): register again.
    Reregister,
    /// Learned round trips per (service, client prefix), see `latency.rs`.
    LatencyReport(LatencyReport),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Register {
    pub agent_id: String,
    pub region: String,
    pub token: String,
    pub cert_der: Vec<u8>,
    pub heartbeat_interval_ms: u32,
    pub missed_threshold: u32,
    pub challenge: [u8; 32],
    /// Ephemeral X25519 public key for the session key (signed).
    pub agent_dh: [u8; 32],
    pub signature: Vec<u8>,
    /// (old certificate DER, signature by the old key over the new
    /// fingerprint)
    pub rotation: Option<(Vec<u8>, Vec<u8>)>,
    pub state_seq: u64,
    pub backends: Vec<WireBackend>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateMsg {
    pub agent_id: String,
    pub seq: u64,
    pub full: bool,
    pub upserts: Vec<WireBackend>,
    pub removals: Vec<WireKey>,
}

/// One backend as it travels: the address still text. The Overwatch
/// parses it at admission (`overwatch::admission`), so a report that does
/// not parse is refused with a reason instead of dropped after an ack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireBackend {
    pub key: WireKey,
    pub weight: u32,
    pub healthy: bool,
    pub draining: bool,
    pub drain_reason: Option<String>,
    pub last_error: Option<String>,
}

/// A backend's (service, address, port) as it travels.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WireKey {
    pub service: String,
    pub address: String,
    pub port: u16,
}

impl From<&BackendKey> for WireKey {
    fn from(k: &BackendKey) -> Self {
        WireKey {
            service: k.service.clone(),
            address: k.address.to_string(),
            port: k.port,
        }
    }
}

impl From<&BackendReport> for WireBackend {
    fn from(b: &BackendReport) -> Self {
        WireBackend {
            key: WireKey::from(&b.key),
            weight: b.weight,
            healthy: b.healthy,
            draining: b.draining,
            drain_reason: b.drain_reason.clone(),
            last_error: b.last_error.clone(),
        }
    }
}

/// A decoded payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    /// Sender's wall clock, unix milliseconds.
    pub timestamp_ms: u64,
    pub message: Message,
}

/// Messages that exist only inside a registered session carry a session
/// tag (see `session.rs`) after the body.
pub fn is_tagged(m: &Message) -> bool {
    tagged_code(type_code(m))
}

fn tagged_code(code: u8) -> bool {
    matches!(code, 6..=9 | 32)
}

/// Splits a decrypted payload into the part the session tag covers and the
/// tag, for the message types that carry one.
pub fn split_tag(plain: &[u8]) -> Result<(&[u8], Option<[u8; SESSION_TAG_LEN]>), DecodeError> {
    let truncated = DecodeError::Truncated {
        field: "session tag",
        at: 0,
    };
    let first = *plain.first().ok_or(DecodeError::Truncated {
        field: "message type",
        at: 0,
    })?;
    if !tagged_code(first) {
        return Ok((plain, None));
    }
    let cut = plain.len().checked_sub(SESSION_TAG_LEN).ok_or(truncated)?;
    let (body, tag) = plain.split_at(cut);
    let tag = tag.try_into().map_err(|_| truncated)?;
    Ok((body, Some(tag)))
}

pub(super) fn type_code(m: &Message) -> u8 {
    match m {
        Message::Hello { .. } => 1,
        Message::Challenge { .. } => 2,
        Message::Register(_) => 3,
        Message::Registered { .. } => 4,
        Message::Rejected { .. } => 5,
        Message::State(_) => 6,
        Message::Heartbeat { .. } => 7,
        Message::Ack { .. } => 8,
        Message::Leave { .. } => 9,
        Message::Reregister => 10,
        Message::LatencyReport(_) => 32,
    }
}

#[cfg(test)]
mod tests;
