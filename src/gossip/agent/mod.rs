//! The agent side of the gossip protocol toward one Overwatch node,
//! without I/O.
//!
//! The session says hello, answers the challenge with its certificate,
//! token, full backend state and a signature, then heartbeats and pushes
//! state deltas, each retransmitted (100 ms, doubling, capped at 2 s) until
//! acknowledged. Without an answer it keeps retrying registration with a
//! backoff capped at 5 s, forever. Drive it with `tick` at `next_deadline`
//! and after every `on_datagram`; every call takes the loop turn's `Now`.
//! Deadlines, retransmits, backoff and the connected/re-register windows
//! run on `now.mono`, so a wall-clock step neither stalls heartbeats nor
//! makes the session give up; only message stamps and the replay window
//! use `now.wall_ms`.
//!
//! This file holds the session's state and its two entry points (`tick`,
//! `on_datagram`); the protocol is split along `handshake.rs`,
//! `heartbeat.rs` and `retransmit.rs`. Randomness comes from an `Entropy`
//! (seeded in the simulator).

use crate::gossip::entropy::Entropy;
use crate::gossip::identity::Identity;
use crate::gossip::replay::ReplayTable;
use crate::gossip::session::{DhOffer, SessionKey};

pub mod client;
mod client_loop;
#[cfg(test)]
mod client_tests;
mod handshake;
mod heartbeat;
pub mod resolve;
mod retransmit;

use retransmit::Pending;

use crate::backend::{BackendKey, BackendReport};
use crate::clock::{Mono, Now};
use crate::gossip::wire::{MAX_DATAGRAM, Message, Payload, is_tagged, split_tag};
use crate::gossip::{Keyring, RejectReason};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

pub const RETRANSMIT_FIRST_MS: u64 = 100;
pub const RETRANSMIT_CAP_MS: u64 = 2_000;
pub const REGISTER_BACKOFF_CAP_MS: u64 = 5_000;
pub const REREGISTER_SILENCE_MIN_MS: u64 = 30_000;
/// Unacknowledged deltas beyond this collapse into one full state.
const MAX_PENDING: usize = 32;
/// A heartbeat still unacknowledged after a quarter of the interval is
/// sent again, at most this many times per interval: with 10 % packet
/// loss three lost heartbeats in a row (stale after 1 s × 3) happened
/// about once in 17 minutes per node; with two retries it needs nine.
const HEARTBEAT_RETRIES: u32 = 2;
/// Wall stamps of recent packets and when (monotonic) they left, to turn
/// an echoed stamp into a round-trip time that a clock step cannot skew.
const SENT_STAMPS: usize = 16;
const NEVER: Mono = Mono(u64::MAX);

fn cfg_interval_ms(d: &Duration) -> u64 {
    d.as_millis().clamp(1, u64::MAX as u128) as u64
}

fn plus(t: Mono, ms: u64) -> Mono {
    Mono(t.0.saturating_add(ms))
}

#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub agent_id: String,
    pub region: String,
    pub token: String,
    pub identity: Arc<Identity>,
    pub keyring: Keyring,
    pub heartbeat_interval: Duration,
    pub missed_threshold: u32,
    pub time_window_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    Registered,
    Rejected {
        reason: RejectReason,
        detail: String,
    },
    Acked {
        rtt: Duration,
    },
}

/// Per-node status, as the agent API and metrics show it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStatus {
    pub connected: bool,
    /// Unix milliseconds (for operators; deadlines use the monotonic
    /// time of the same ack).
    pub last_ack: Option<u64>,
    pub rtt: Option<Duration>,
    pub last_error: Option<String>,
}

/// A sealed packet; `tcp` when it does not fit one datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub bytes: Vec<u8>,
    pub tcp: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionCounters {
    pub heartbeats_sent: u64,
    /// Heartbeats still unacknowledged when the next one was due.
    pub heartbeat_failures: u64,
    pub decrypt_failures: u64,
    pub malformed: u64,
    pub replays: u64,
    /// Acks whose session tag did not verify.
    pub session_auth_failures: u64,
    /// "Register again" answers the Overwatch sent before the answer that
    /// registered us (ignored).
    pub stale_reregisters: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Hello,
    Register([u8; 32]),
    Registered,
    /// Waiting out the retry delay after a rejection.
    Rejected,
}

pub struct AgentSession {
    cfg: SessionConfig,
    session_id: u64,
    counter: u64,
    phase: Phase,
    next_attempt: Mono,
    backoff: u64,
    backends: BTreeMap<BackendKey, BackendReport>,
    seq: u64,
    pending: VecDeque<Pending>,
    next_heartbeat: Mono,
    heartbeat_outstanding: bool,
    /// While not registered, each heartbeat interval that passes counts as
    /// a failed heartbeat, so the failure counter keeps moving while a node
    /// is down (an alert on its rate must not clear during an outage).
    next_missed: Mono,
    /// When to resend an unacknowledged heartbeat, and how many resends
    /// this interval has left.
    heartbeat_retry_at: Mono,
    heartbeat_retries_left: u32,
    leave: Option<Pending>,
    /// The lowest wall stamp any of our leave messages carried: an ack
    /// echoing one at or after it answers the leave (the lowest, so a
    /// backward step while leaving does not hide the answer).
    leave_started: Option<u64>,
    left: bool,
    replay: ReplayTable,
    status: NodeStatus,
    /// The monotonic time of `status.last_ack`.
    last_ack_mono: Option<Mono>,
    sent_stamps: VecDeque<(u64, Mono)>,
    counters: SessionCounters,
    /// Our ephemeral key share for the registration in progress.
    dh: Option<DhOffer>,
    /// The session key once registered.
    key: Option<SessionKey>,
    /// The Overwatch session and counter of the answer that registered
    /// us: a "register again" it sent before that answer (a reply to one
    /// of our old session's heartbeats, overtaken on the way) is stale and
    /// must not throw the new registration away.
    registered_by: Option<(u64, u64)>,
    entropy: Entropy,
}

impl AgentSession {
    pub fn new(cfg: SessionConfig, now: Now) -> Self {
        Self::with_entropy(cfg, now, Entropy::System)
    }

    /// `new` with another source of randomness (seeded in simulations).
    pub fn with_entropy(cfg: SessionConfig, now: Now, mut entropy: Entropy) -> Self {
        let cfg_hb = cfg.heartbeat_interval;
        AgentSession {
            replay: ReplayTable::new(cfg.time_window_ms, 16),
            cfg,
            session_id: entropy.session_id(),
            entropy,
            counter: 0,
            phase: Phase::Hello,
            next_attempt: now.mono,
            backoff: RETRANSMIT_FIRST_MS,
            backends: BTreeMap::new(),
            seq: 0,
            pending: VecDeque::new(),
            next_heartbeat: NEVER,
            heartbeat_outstanding: false,
            next_missed: plus(now.mono, cfg_interval_ms(&cfg_hb)),
            heartbeat_retry_at: NEVER,
            heartbeat_retries_left: 0,
            leave: None,
            leave_started: None,
            left: false,
            status: NodeStatus::default(),
            last_ack_mono: None,
            sent_stamps: VecDeque::with_capacity(SENT_STAMPS),
            counters: SessionCounters::default(),
            dh: None,
            key: None,
            registered_by: None,
        }
    }

    /// Swaps the keyring; the session (and its per-session key) stays.
    pub fn set_keyring(&mut self, keyring: Keyring) {
        self.cfg.keyring = keyring;
    }

    /// Swaps the certificate and key (a renewal). A session registered or
    /// registering starts over with Hello, so the node sees the new
    /// certificate and its proof; "connected" holds while the last ack is
    /// recent, so a renewal does not read as lost contact. A leaving
    /// session only keeps the identity for later.
    pub fn set_identity(&mut self, identity: Arc<Identity>, now: Now) {
        self.cfg.identity = identity;
        if self.leave.is_some() || self.left {
            return;
        }
        let connected = self.status.connected;
        self.reset_registration(now);
        self.status.connected = connected;
    }

    pub fn status(&self) -> &NodeStatus {
        &self.status
    }

    pub fn counters(&self) -> SessionCounters {
        self.counters
    }

    pub fn is_registered(&self) -> bool {
        self.phase == Phase::Registered
    }

    /// The leave was acknowledged (or there was nobody to tell).
    pub fn has_left(&self) -> bool {
        self.left
    }

    /// State changes not yet acknowledged.
    pub fn unacked(&self) -> usize {
        self.pending.len()
    }

    /// When `tick` next has something to do.
    pub fn next_deadline(&self) -> Mono {
        if self.left {
            return NEVER;
        }
        let mut d = self.leave.as_ref().map_or(NEVER, |p| p.next_send);
        if self.leave.is_some() {
            return d;
        }
        match self.phase {
            Phase::Registered => {
                d = d.min(self.next_heartbeat);
                if self.heartbeat_outstanding && self.heartbeat_retries_left > 0 {
                    d = d.min(self.heartbeat_retry_at);
                }
                if let Some(p) = self.pending.iter().map(|p| p.next_send).min() {
                    d = d.min(p);
                }
                d = d.min(self.reregister_at());
            }
            _ => d = d.min(self.next_attempt).min(self.next_missed),
        }
        if self.status.connected {
            d = d.min(self.connected_until());
        }
        d
    }

    pub(super) fn seal(&mut self, message: Message, now: Now, out: &mut Vec<Outgoing>) {
        self.counter += 1;
        let tagged = is_tagged(&message);
        if matches!(message, Message::Leave { .. }) {
            self.leave_started = Some(
                self.leave_started
                    .map_or(now.wall_ms, |s| s.min(now.wall_ms)),
            );
        }
        if self.sent_stamps.len() >= SENT_STAMPS {
            self.sent_stamps.pop_front();
        }
        self.sent_stamps.push_back((now.wall_ms, now.mono));
        let payload = Payload {
            timestamp_ms: now.wall_ms,
            message,
        };
        let mut plain = payload.encode();
        if tagged {
            let Some(key) = &self.key else { return };
            let tag = key.tag(self.session_id, self.counter, &plain);
            plain.extend_from_slice(&tag);
        }
        let nonce = self.entropy.bytes();
        let sealed =
            self.cfg
                .keyring
                .seal_with_nonce(0, self.session_id, self.counter, nonce, &plain);
        if let Some(bytes) = sealed {
            let tcp = bytes.len() > MAX_DATAGRAM;
            out.push(Outgoing { bytes, tcp });
        }
    }

    /// Learned latency entries, in batches of `LATENCY_BATCH`, when
    /// registered (else dropped: the next report interval sends anew).
    pub fn latency_report(
        &mut self,
        entries: &[crate::gossip::wire::LatencyEntry],
        now: Now,
    ) -> Vec<Outgoing> {
        let mut out = Vec::new();
        if !self.is_registered() {
            return out;
        }
        for batch in entries.chunks(crate::gossip::wire::LATENCY_BATCH) {
            let m = Message::LatencyReport(crate::gossip::wire::LatencyReport {
                agent_id: self.cfg.agent_id.clone(),
                entries: batch.to_vec(),
            });
            self.seal(m, now, &mut out);
        }
        out
    }

    /// Everything due at `now`.
    pub fn tick(&mut self, now: Now) -> Vec<Outgoing> {
        let mut out = Vec::new();
        if self.left {
            return out;
        }
        if self.leave.is_some() {
            self.tick_leave(now, &mut out);
            return out;
        }
        self.count_missed(now);
        self.expire_connected(now);
        if self.phase == Phase::Registered {
            self.tick_registered(now, &mut out);
        } else {
            self.tick_handshake(now, &mut out);
        }
        out
    }

    /// Handles one datagram or frame from the node; call `tick` after it.
    pub fn on_datagram(&mut self, bytes: &[u8], now: Now) -> Vec<SessionEvent> {
        let mut events = Vec::new();
        let Ok((header, plain)) = self.cfg.keyring.open(bytes) else {
            self.counters.decrypt_failures += 1;
            return events;
        };
        let decoded =
            split_tag(&plain).and_then(|(body, tag)| Ok((body, tag, Payload::decode(body)?)));
        let (body, tag, payload) = match decoded {
            Ok(d) => d,
            Err(e) => {
                log::debug!("gossip: undecodable reply: {e}");
                self.counters.malformed += 1;
                return events;
            }
        };
        if self
            .replay
            .check(header.session_id, header.counter, payload.timestamp_ms, now)
            .is_err()
        {
            self.counters.replays += 1;
            return events;
        }
        match payload.message {
            Message::Challenge {
                agent_session,
                nonce,
            } => self.on_challenge(agent_session, nonce, now),
            Message::Registered {
                state_seq,
                echo_ts,
                agent_dh,
                ow_dh,
            } => {
                if self.on_registered(state_seq, echo_ts, agent_dh, ow_dh, now) {
                    self.registered_by = Some((header.session_id, header.counter));
                    events.push(SessionEvent::Registered);
                }
            }
            Message::Rejected { reason, detail } => {
                self.on_rejected(reason, &detail, now);
                events.push(SessionEvent::Rejected { reason, detail });
            }
            Message::Ack {
                acked_seq,
                echo_ts,
                need_full,
            } => {
                let authentic = match (&self.key, tag) {
                    (Some(k), Some(t)) => k.verify(header.session_id, header.counter, body, &t),
                    _ => false,
                };
                if !authentic {
                    self.counters.session_auth_failures += 1;
                    return events;
                }
                if let Some(rtt) = self.on_ack(acked_seq, echo_ts, need_full, now) {
                    events.push(SessionEvent::Acked { rtt });
                }
            }
            Message::Reregister => {
                let stale = self.registered_by.is_some_and(|(ow, counter)| {
                    ow == header.session_id && header.counter < counter
                });
                if stale {
                    self.counters.stale_reregisters += 1;
                } else {
                    self.on_reregister(now);
                }
            }
            Message::Hello { .. }
            | Message::Register(_)
            | Message::State(_)
            | Message::Heartbeat { .. }
            | Message::Leave { .. }
            | Message::LatencyReport(_) => self.counters.malformed += 1,
        }
        events
    }
}

#[cfg(test)]
mod tests;
