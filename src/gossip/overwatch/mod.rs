//! The Overwatch side of the gossip protocol, without I/O.
//!
//! `OverwatchProtocol::on_packet` takes one datagram or TCP frame, its
//! source and the time, and returns the replies to send back to that
//! source and the events for the registry. Nothing reaches the events that
//! did not authenticate under the keyring, pass the replay checks and, for
//! everything after registration, come from the session that registered.
//! The Overwatch never speaks first: every packet it sends is a reply.
//! Challenge and session expiry run on `now.mono`; reply stamps, the
//! replay window and certificate validity on `now.wall_ms`.
//!
//! This file opens, decodes and replay-checks a packet and dispatches it;
//! `registration.rs` (Hello, Register), `sessions.rs` (State, Heartbeat,
//! Leave) and `admission.rs` (the checks, and backends into the one
//! `crate::backend` model) do the rest.

mod admission;
pub mod coalesce;
mod latency;
mod registration;
pub mod server;
mod server_loop;
#[cfg(test)]
mod server_tests;
mod sessions;

use crate::backend::{BackendKey, BackendReport};
use crate::clock::{Mono, Now};
use crate::gossip::crypto::OpenError;
use crate::gossip::entropy::Entropy;
use crate::gossip::replay::{ReplayError, ReplayTable};
use crate::gossip::session::{SESSION_TAG_LEN, SessionKey};
use crate::gossip::wire::{Message, Payload, is_tagged, split_tag};
use crate::gossip::{Policy, RejectReason};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Tunables; the defaults suit production.
#[derive(Clone, Debug)]
pub struct OverwatchConfig {
    /// Accepted distance between a message timestamp and our clock.
    pub time_window_ms: u64,
    /// How long a challenge may be answered.
    pub challenge_ttl_ms: u64,
    /// Cap on replay windows and on pending challenges.
    pub max_sessions: usize,
    /// A registered session silent this long is forgotten (the agent is
    /// told to register again when it speaks).
    pub session_idle_ms: u64,
}

impl Default for OverwatchConfig {
    fn default() -> Self {
        OverwatchConfig {
            time_window_ms: 60_000,
            challenge_ttl_ms: 30_000,
            max_sessions: 65_536,
            session_idle_ms: 600_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OverwatchEvent {
    Registered {
        agent_id: String,
        region: String,
        /// Where the registration came from (the TCP peer when it was too
        /// big for a datagram).
        addr: SocketAddr,
        fingerprint: String,
        /// Unix seconds.
        cert_not_after: u64,
        heartbeat_interval: Duration,
        missed_threshold: u32,
        /// The agent's complete backend set, addresses parsed and service
        /// names normalised at admission.
        backends: Vec<BackendReport>,
        /// The fingerprint was pinned now (first use).
        pinned_new: bool,
        /// The pin moved to a new certificate on the old key's proof.
        rotated: bool,
    },
    /// With `full`, `backends` is the agent's complete set (anything not in
    /// it is gone) and `removed` is empty; otherwise apply `backends` as
    /// upserts and drop `removed`.
    State {
        agent_id: String,
        backends: Vec<BackendReport>,
        removed: Vec<BackendKey>,
        full: bool,
    },
    Heartbeat {
        agent_id: String,
        /// When it arrived, on both of our clocks (staleness belongs on
        /// `at.mono`).
        at: Now,
    },
    Leave {
        agent_id: String,
    },
    /// Learned round trips from the agent's clients, only for services
    /// its token is valid for (`latency.rs`).
    Latency {
        agent_id: String,
        region: String,
        entries: Vec<crate::gossip::wire::LatencyEntry>,
    },
    Rejected {
        agent_id: Option<String>,
        addr: SocketAddr,
        reason: RejectReason,
    },
}

/// Per-source decrypt failure counts are kept for this many sources; more
/// only count in the total.
pub const MAX_TRACKED_SOURCES: usize = 4096;

/// What was dropped and why; exported as metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub decrypt_failures: u64,
    pub decrypt_failures_by_source: HashMap<IpAddr, u64>,
    /// Not our magic/version, truncated, or a body that does not parse.
    pub malformed: u64,
    pub oversized: u64,
    /// Duplicate counters and timestamps out of window.
    pub replays: u64,
    /// Messages from a session that is not registered (answered with
    /// "register again").
    pub unknown_session: u64,
    /// Session messages whose session tag does not verify (another key
    /// holder forging or altering them).
    pub session_auth_failures: u64,
    pub auth_failures: BTreeMap<RejectReason, u64>,
    pub heartbeats: u64,
    /// Retransmitted registrations admitted without verifying their proof
    /// again (the same proof this session already passed with).
    pub register_repeats: u64,
    /// Latency report entries refused: a service the agent's token is not
    /// valid for, or not a configured domain.
    pub latency_refused: u64,
}

/// What the handlers need to know about the packet being handled.
#[derive(Clone, Copy)]
struct Pkt<'a> {
    /// The sender's session id (from the header).
    session: u64,
    src: SocketAddr,
    /// The sender's stamp, echoed in acks.
    ts: u64,
    now: Now,
    policy: &'a Policy,
}

/// Replies for the packet's source, and events for the registry.
#[derive(Debug, Default)]
pub struct Output {
    pub replies: Vec<Vec<u8>>,
    pub events: Vec<OverwatchEvent>,
    /// The packet decrypted under the keyring (its sender holds a key),
    /// whatever came of it after: a TCP connection stops being pre-auth.
    pub authentic: bool,
}

struct AgentEntry {
    session: u64,
    token: String,
    region: String,
    fingerprint: String,
    applied_seq: u64,
    last_seen: Mono,
    agent_dh: [u8; 32],
    ow_dh: [u8; 32],
    key: SessionKey,
    /// The challenge the accepted registration's proof covered: a
    /// retransmit with the same signed fields is admitted without parsing
    /// the certificate and verifying the signature again
    /// (`registration.rs`).
    challenge: [u8; 32],
    cert_not_after: u64,
}

struct Challenge {
    agent_id: String,
    nonce: [u8; 32],
    expires: Mono,
}

pub struct OverwatchProtocol {
    cfg: OverwatchConfig,
    session_id: u64,
    counter: u64,
    replay: ReplayTable,
    challenges: HashMap<u64, Challenge>,
    agents: HashMap<String, AgentEntry>,
    /// Pins learned here that the policy may not carry yet.
    pin_cache: HashMap<String, String>,
    /// The `Policy::forgotten` numbers already acted on.
    forgets_applied: HashMap<String, u64>,
    counters: Counters,
    /// The time of the packet being handled.
    now: Now,
    /// The keyring index that opened it; replies use the same key.
    reply_key: usize,
    /// Its counter, the bytes its session tag covers, and the tag.
    pkt_counter: u64,
    pkt_body: Vec<u8>,
    pkt_tag: Option<[u8; SESSION_TAG_LEN]>,
    entropy: Entropy,
}

impl OverwatchProtocol {
    pub fn new(cfg: OverwatchConfig) -> Self {
        // One sealed reply per heartbeat: nonces from a pool.
        Self::with_entropy(cfg, Entropy::pooled())
    }

    /// `new` with another source of randomness (seeded in simulations).
    pub fn with_entropy(cfg: OverwatchConfig, mut entropy: Entropy) -> Self {
        OverwatchProtocol {
            replay: ReplayTable::new(cfg.time_window_ms, cfg.max_sessions),
            cfg,
            session_id: entropy.session_id(),
            entropy,
            counter: 0,
            challenges: HashMap::new(),
            agents: HashMap::new(),
            pin_cache: HashMap::new(),
            forgets_applied: HashMap::new(),
            counters: Counters::default(),
            now: Now::at(0, 0),
            reply_key: 0,
            pkt_counter: 0,
            pkt_body: Vec::new(),
            pkt_tag: None,
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The I/O layer dropped a datagram or frame for its size.
    pub fn count_oversized(&mut self) {
        self.counters.oversized += 1;
    }

    /// The operator forgot the agent: drop its local pin and session.
    pub fn forget(&mut self, agent_id: &str) {
        self.pin_cache.remove(agent_id);
        self.agents.remove(agent_id);
    }

    /// The number of registered sessions.
    pub fn registered(&self) -> usize {
        self.agents.len()
    }

    /// Drops state that aged out; call about once a second.
    pub fn expire(&mut self, now: Now, policy: &Policy) {
        let t = now.mono;
        self.replay.expire(t);
        self.challenges.retain(|_, c| c.expires > t);
        let idle = self.cfg.session_idle_ms;
        self.agents
            .retain(|_, a| t.0.saturating_sub(a.last_seen.0) <= idle);
        // Once the registry persisted a pin, the policy is authoritative.
        self.pin_cache.retain(|id, _| !policy.pins.contains_key(id));
        self.apply_forgets(policy);
    }

    /// Forgets each agent the policy lists with a number not acted on yet.
    fn apply_forgets(&mut self, policy: &Policy) {
        for (id, n) in &policy.forgotten {
            if self.forgets_applied.get(id).is_none_or(|seen| seen < n) {
                self.forget(id);
                self.forgets_applied.insert(id.clone(), *n);
            }
        }
        if self.forgets_applied.len() > policy.forgotten.len() {
            self.forgets_applied
                .retain(|id, _| policy.forgotten.contains_key(id));
        }
    }

    pub fn on_packet(
        &mut self,
        packet: &[u8],
        src: SocketAddr,
        now: Now,
        policy: &Policy,
    ) -> Output {
        let mut out = Output::default();
        self.now = now;
        let (header, plain) = match policy.keyring.open_indexed(packet) {
            Ok((h, p, key)) => {
                self.reply_key = key;
                (h, p)
            }
            Err(OpenError::Malformed) => {
                self.counters.malformed += 1;
                return out;
            }
            Err(OpenError::Decrypt) => {
                self.count_decrypt_failure(src.ip());
                return out;
            }
        };
        // From here on the sender holds a key of the ring.
        out.authentic = true;
        let decoded =
            split_tag(&plain).and_then(|(body, tag)| Ok((body, tag, Payload::decode(body)?)));
        let (body, tag, payload) = match decoded {
            Ok(d) => d,
            Err(e) => {
                log::debug!("gossip: undecodable packet from {src}: {e}");
                self.counters.malformed += 1;
                return out;
            }
        };
        match self
            .replay
            .check(header.session_id, header.counter, payload.timestamp_ms, now)
        {
            Ok(()) => {}
            Err(ReplayError::TableFull) => {
                self.counters.malformed += 1;
                return out;
            }
            Err(ReplayError::OutOfTime | ReplayError::Duplicate) => {
                self.counters.replays += 1;
                *self
                    .counters
                    .auth_failures
                    .entry(RejectReason::Replay)
                    .or_default() += 1;
                return out;
            }
        }
        let session = header.session_id;
        let ts = payload.timestamp_ms;
        self.pkt_counter = header.counter;
        self.pkt_tag = tag;
        self.pkt_body.clear();
        self.pkt_body.extend_from_slice(body);
        let pkt = Pkt {
            session,
            src,
            ts,
            now,
            policy,
        };
        match payload.message {
            Message::Hello { agent_id } => {
                self.on_hello(agent_id, session, now.mono, policy, &mut out)
            }
            Message::Register(r) => self.on_register(*r, pkt, &mut out),
            Message::State(s) => self.on_state(s, pkt, &mut out),
            Message::Heartbeat { agent_id, .. } => self.on_heartbeat(agent_id, pkt, &mut out),
            Message::Leave { agent_id } => self.on_leave(agent_id, pkt, &mut out),
            Message::LatencyReport(r) => self.on_latency(r, pkt, &mut out),
            // Messages only an Overwatch sends.
            Message::Challenge { .. }
            | Message::Registered { .. }
            | Message::Rejected { .. }
            | Message::Ack { .. }
            | Message::Reregister => self.counters.malformed += 1,
        }
        out
    }

    pub(super) fn count_decrypt_failure(&mut self, ip: IpAddr) {
        let c = &mut self.counters;
        c.decrypt_failures += 1;
        let tracked = c.decrypt_failures_by_source.len();
        if let Some(n) = c.decrypt_failures_by_source.get_mut(&ip) {
            *n += 1;
        } else if tracked < MAX_TRACKED_SOURCES {
            c.decrypt_failures_by_source.insert(ip, 1);
        }
    }

    pub(super) fn reply(&mut self, policy: &Policy, message: Message, out: &mut Output) {
        self.reply_to(policy, message, None, out);
    }

    /// Seals a reply; messages of a session carry the session tag.
    pub(super) fn reply_to(
        &mut self,
        policy: &Policy,
        message: Message,
        key: Option<&SessionKey>,
        out: &mut Output,
    ) {
        // Stamped with our clock (the agent checks it against its own);
        // the request's time only travels back as an echo for the RTT.
        self.counter += 1;
        let tagged = is_tagged(&message);
        let payload = Payload {
            timestamp_ms: self.now.wall_ms,
            message,
        };
        let mut plain = payload.encode();
        match (tagged, key) {
            (false, _) => {}
            (true, Some(k)) => {
                let tag = k.tag(self.session_id, self.counter, &plain);
                plain.extend_from_slice(&tag);
            }
            (true, None) => return,
        }
        let nonce = self.entropy.bytes();
        if let Some(p) = policy.keyring.seal_with_nonce(
            self.reply_key,
            self.session_id,
            self.counter,
            nonce,
            &plain,
        ) {
            out.replies.push(p);
        }
    }

    pub(super) fn reject(
        &mut self,
        agent_id: Option<String>,
        src: SocketAddr,
        reason: RejectReason,
        detail: String,
        policy: &Policy,
        out: &mut Output,
    ) {
        log::debug!("gossip: rejected {agent_id:?} from {src}: {reason} ({detail})");
        *self.counters.auth_failures.entry(reason).or_default() += 1;
        out.events.push(OverwatchEvent::Rejected {
            agent_id,
            addr: src,
            reason,
        });
        self.reply(policy, Message::Rejected { reason, detail }, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_strings_are_exact() {
        let all: Vec<&str> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            all,
            [
                "token_invalid",
                "pin_mismatch",
                "cert_expired",
                "revoked",
                "decrypt_failed",
                "replay",
                "unknown_service",
                "cert_invalid",
                "invalid_backend"
            ]
        );
        for r in RejectReason::ALL {
            assert_eq!(RejectReason::from_code(r.code()), Some(r));
        }
        assert_eq!(RejectReason::from_code(0), None);
    }

    #[test]
    fn decrypt_failures_by_source_are_bounded() {
        let mut ow = OverwatchProtocol::new(OverwatchConfig::default());
        let policy = Policy {
            keyring: crate::gossip::Keyring::from_raw(&[[1; 32]]),
            ..Policy::default()
        };
        let other = crate::gossip::Keyring::from_raw(&[[2; 32]]);
        let packet = other.seal(1, 1, b"x").expect("seal");
        for i in 0..(MAX_TRACKED_SOURCES as u32 + 10) {
            let src = SocketAddr::from((std::net::Ipv4Addr::from(0x0a00_0000 + i), 7946));
            let out = ow.on_packet(&packet, src, Now::at(0, 0), &policy);
            assert!(out.replies.is_empty() && out.events.is_empty());
        }
        let c = ow.counters();
        assert_eq!(c.decrypt_failures, MAX_TRACKED_SOURCES as u64 + 10);
        assert_eq!(c.decrypt_failures_by_source.len(), MAX_TRACKED_SOURCES);
    }
}
