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

use crate::gossip::identity::{Identity, register_message};
use crate::gossip::replay::ReplayTable;
use crate::gossip::session::{self, DhOffer, SessionKey};

pub mod client;
pub mod resolve;

use crate::clock::{Mono, Now};
use crate::gossip::wire::{
    MAX_DATAGRAM, Message, Payload, Register, StateMsg, is_tagged, split_tag,
};
use crate::gossip::{BackendKey, BackendReport, Keyring, RejectReason};
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
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Hello,
    Register([u8; 32]),
    Registered,
    /// Waiting out the retry delay after a rejection.
    Rejected,
}

struct Pending {
    msg: Message,
    seq: u64,
    next_send: Mono,
    interval: u64,
}

impl Pending {
    fn new(msg: Message, seq: u64, now: Now) -> Self {
        Pending {
            msg,
            seq,
            next_send: now.mono,
            interval: RETRANSMIT_FIRST_MS,
        }
    }
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
}

impl AgentSession {
    pub fn new(cfg: SessionConfig, now: Now) -> Self {
        let cfg_hb = cfg.heartbeat_interval;
        AgentSession {
            replay: ReplayTable::new(cfg.time_window_ms, 16),
            cfg,
            session_id: crate::gossip::crypto::random_session_id(),
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
        }
    }

    /// Swaps the keyring; the session (and its per-session key) stays.
    pub fn set_keyring(&mut self, keyring: Keyring) {
        self.cfg.keyring = keyring;
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
                if self.status.connected {
                    d = d.min(self.connected_until());
                }
                d = d.min(self.reregister_at());
            }
            _ => d = d.min(self.next_attempt).min(self.next_missed),
        }
        d
    }

    /// Heartbeat interval × missed threshold.
    fn missed_window(&self) -> u64 {
        (self.cfg.heartbeat_interval.as_millis() as u64)
            .saturating_mul(self.cfg.missed_threshold.max(1) as u64)
    }

    fn connected_until(&self) -> Mono {
        let last = self.last_ack_mono.unwrap_or_default();
        plus(last, self.missed_window().saturating_add(1))
    }

    /// After this long without any ack the session is given up and the
    /// agent registers again: three missed windows, at least 30 s, so
    /// heavy loss alone does not churn registrations.
    fn reregister_at(&self) -> Mono {
        let silence = self
            .missed_window()
            .saturating_mul(3)
            .max(REREGISTER_SILENCE_MIN_MS);
        plus(self.last_ack_mono.unwrap_or_default(), silence)
    }

    /// Replaces the reported backend set; the change goes out at once.
    pub fn set_state(&mut self, backends: &[BackendReport], now: Now) -> Vec<Outgoing> {
        let new: BTreeMap<BackendKey, BackendReport> =
            backends.iter().map(|b| (b.key(), b.clone())).collect();
        let upserts: Vec<BackendReport> = new
            .iter()
            .filter(|(k, v)| self.backends.get(*k) != Some(*v))
            .map(|(_, v)| v.clone())
            .collect();
        let removals: Vec<BackendKey> = self
            .backends
            .keys()
            .filter(|k| !new.contains_key(*k))
            .cloned()
            .collect();
        if upserts.is_empty() && removals.is_empty() {
            return Vec::new();
        }
        self.backends = new;
        self.seq += 1;
        if self.phase == Phase::Registered && self.leave.is_none() {
            if self.pending.len() >= MAX_PENDING {
                self.pending.clear();
                self.pending
                    .push_back(Pending::new(self.full_state(), self.seq, now));
            } else {
                let msg = Message::State(StateMsg {
                    agent_id: self.cfg.agent_id.clone(),
                    seq: self.seq,
                    full: false,
                    upserts,
                    removals,
                });
                self.pending.push_back(Pending::new(msg, self.seq, now));
            }
        } else if self.phase != Phase::Registered {
            // The registration carries the whole state; resend it now.
            self.next_attempt = self.next_attempt.min(now.mono);
        }
        self.tick(now)
    }

    /// Starts a graceful leave; `has_left` turns true once acknowledged.
    pub fn leave(&mut self, now: Now) -> Vec<Outgoing> {
        if self.phase != Phase::Registered {
            self.left = true;
            return Vec::new();
        }
        if self.leave.is_none() {
            let msg = Message::Leave {
                agent_id: self.cfg.agent_id.clone(),
            };
            self.leave = Some(Pending::new(msg, 0, now));
            self.leave_started = Some(now.wall_ms);
            self.pending.clear();
        }
        self.tick(now)
    }

    fn full_state(&self) -> Message {
        Message::State(StateMsg {
            agent_id: self.cfg.agent_id.clone(),
            seq: self.seq,
            full: true,
            upserts: self.backends.values().cloned().collect(),
            removals: Vec::new(),
        })
    }

    fn seal(&mut self, message: Message, now: Now, out: &mut Vec<Outgoing>) {
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
        if let Some(bytes) = self.cfg.keyring.seal(self.session_id, self.counter, &plain) {
            let tcp = bytes.len() > MAX_DATAGRAM;
            out.push(Outgoing { bytes, tcp });
        }
    }

    fn register_message(&mut self, challenge: [u8; 32]) -> Option<Message> {
        if self.dh.is_none() {
            self.dh = session::offer();
        }
        let agent_dh = self.dh.as_ref()?.public;
        let id = &self.cfg.identity;
        let to_sign = register_message(
            &challenge,
            &self.cfg.agent_id,
            self.session_id,
            &self.cfg.region,
            &id.fingerprint,
            &agent_dh,
        );
        let signature = match id.sign(&to_sign) {
            Ok(s) => s,
            Err(e) => {
                log::error!("gossip: cannot sign registration: {e}");
                return None;
            }
        };
        Some(Message::Register(Box::new(Register {
            agent_id: self.cfg.agent_id.clone(),
            region: self.cfg.region.clone(),
            token: self.cfg.token.clone(),
            cert_der: id.cert_der.clone(),
            heartbeat_interval_ms: self
                .cfg
                .heartbeat_interval
                .as_millis()
                .min(u32::MAX as u128) as u32,
            missed_threshold: self.cfg.missed_threshold,
            challenge,
            agent_dh,
            signature,
            rotation: id
                .rotation
                .as_ref()
                .map(|r| (r.old_cert_der.clone(), r.signature.clone())),
            state_seq: self.seq,
            backends: self.backends.values().cloned().collect(),
        })))
    }

    /// Everything due at `now`.
    pub fn tick(&mut self, now: Now) -> Vec<Outgoing> {
        let mut out = Vec::new();
        if self.left {
            return out;
        }
        if let Some(p) = self.leave.as_mut() {
            if p.next_send <= now.mono {
                p.next_send = plus(now.mono, p.interval);
                p.interval = (p.interval * 2).min(RETRANSMIT_CAP_MS);
                let msg = p.msg.clone();
                self.seal(msg, now, &mut out);
            }
            return out;
        }
        let interval = cfg_interval_ms(&self.cfg.heartbeat_interval);
        if matches!(self.phase, Phase::Registered) {
            self.next_missed = plus(now.mono, interval);
        } else if now.mono >= self.next_missed {
            self.counters.heartbeat_failures += 1;
            self.next_missed = plus(now.mono, interval);
        }
        match self.phase.clone() {
            Phase::Registered => self.tick_registered(now, &mut out),
            phase if now.mono >= self.next_attempt => {
                self.next_attempt = plus(now.mono, self.backoff);
                self.backoff = (self.backoff * 2).min(REGISTER_BACKOFF_CAP_MS);
                match phase {
                    Phase::Register(challenge) => {
                        if let Some(m) = self.register_message(challenge) {
                            self.seal(m, now, &mut out);
                        }
                    }
                    _ => {
                        self.phase = Phase::Hello;
                        let m = Message::Hello {
                            agent_id: self.cfg.agent_id.clone(),
                        };
                        self.seal(m, now, &mut out);
                    }
                }
            }
            _ => {}
        }
        out
    }

    fn tick_registered(&mut self, now: Now, out: &mut Vec<Outgoing>) {
        let t = now.mono;
        if self.status.connected && t >= self.connected_until() {
            self.status.connected = false;
            self.status.last_error =
                Some("no acknowledgement within the missed-heartbeat window".into());
        }
        if t >= self.reregister_at() {
            // Start over: the node may have lost our session, and the
            // registration carries the full state anyway.
            self.reset_registration(now);
            self.status.last_error = Some("no acknowledgement for a long time".into());
            return;
        }
        let interval = self.cfg.heartbeat_interval.as_millis().max(1) as u64;
        if t >= self.next_heartbeat {
            if self.heartbeat_outstanding {
                self.counters.heartbeat_failures += 1;
            }
            self.heartbeat_outstanding = true;
            self.counters.heartbeats_sent += 1;
            self.next_heartbeat = plus(t, interval);
            self.heartbeat_retries_left = HEARTBEAT_RETRIES;
            self.heartbeat_retry_at = plus(t, (interval / 4).max(1));
            let m = Message::Heartbeat {
                agent_id: self.cfg.agent_id.clone(),
                state_seq: self.seq,
            };
            self.seal(m, now, out);
        } else if self.heartbeat_outstanding
            && self.heartbeat_retries_left > 0
            && t >= self.heartbeat_retry_at
        {
            // A fresh packet (new counter), so the replay window takes it.
            self.heartbeat_retries_left -= 1;
            self.heartbeat_retry_at = plus(t, (interval / 4).max(1));
            let m = Message::Heartbeat {
                agent_id: self.cfg.agent_id.clone(),
                state_seq: self.seq,
            };
            self.seal(m, now, out);
        }
        let mut due = Vec::new();
        for p in self.pending.iter_mut().filter(|p| p.next_send <= t) {
            p.next_send = plus(t, p.interval);
            p.interval = (p.interval * 2).min(RETRANSMIT_CAP_MS);
            due.push(p.msg.clone());
        }
        for m in due {
            self.seal(m, now, out);
        }
    }

    fn reset_registration(&mut self, now: Now) {
        self.next_missed = plus(now.mono, cfg_interval_ms(&self.cfg.heartbeat_interval));
        self.phase = Phase::Hello;
        self.next_attempt = now.mono;
        self.backoff = RETRANSMIT_FIRST_MS;
        self.pending.clear();
        self.next_heartbeat = NEVER;
        self.heartbeat_outstanding = false;
        self.status.connected = false;
        self.dh = None;
        self.key = None;
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
            } => {
                // A copy of the challenge we already answer changes nothing.
                let waiting = match self.phase {
                    Phase::Hello => true,
                    Phase::Register(current) => current != nonce,
                    Phase::Registered | Phase::Rejected => false,
                };
                if agent_session == self.session_id && waiting && self.leave.is_none() {
                    self.phase = Phase::Register(nonce);
                    self.dh = None;
                    self.next_attempt = now.mono;
                    self.backoff = RETRANSMIT_FIRST_MS;
                }
            }
            Message::Registered {
                state_seq,
                echo_ts,
                agent_dh,
                ow_dh,
            } => {
                let Phase::Register(challenge) = self.phase else {
                    return events;
                };
                // Only the answer to our current key share derives the key.
                let mine = self.dh.take_if(|d| d.public == agent_dh);
                let session = self.session_id;
                let key = mine.and_then(|d| session::derive(d, &ow_dh, &challenge, session));
                if let Some(key) = key {
                    self.key = Some(key);
                    self.phase = Phase::Registered;
                    self.backoff = RETRANSMIT_FIRST_MS;
                    self.pending.clear();
                    if state_seq < self.seq {
                        self.pending
                            .push_back(Pending::new(self.full_state(), self.seq, now));
                    }
                    self.next_heartbeat =
                        plus(now.mono, cfg_interval_ms(&self.cfg.heartbeat_interval));
                    self.heartbeat_outstanding = false;
                    self.acked(now, echo_ts);
                    self.status.last_error = None;
                    events.push(SessionEvent::Registered);
                }
            }
            Message::Rejected { reason, detail } => {
                self.reset_registration(now);
                self.phase = Phase::Rejected;
                self.next_attempt = plus(now.mono, REGISTER_BACKOFF_CAP_MS);
                self.status.last_error = Some(format!("{reason}: {detail}"));
                if self.leave.is_some() {
                    self.left = true;
                }
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
                if let Some(started) = self.leave_started {
                    if echo_ts >= started {
                        self.left = true;
                    }
                } else if self.phase == Phase::Registered {
                    self.pending.retain(|p| p.seq > acked_seq);
                    if need_full && self.seq > acked_seq {
                        self.pending.clear();
                        self.pending
                            .push_back(Pending::new(self.full_state(), self.seq, now));
                    }
                    self.heartbeat_outstanding = false;
                    let rtt = self.acked(now, echo_ts);
                    events.push(SessionEvent::Acked { rtt });
                }
            }
            Message::Reregister => {
                if self.leave.is_some() {
                    self.left = true;
                } else if self.phase == Phase::Registered {
                    self.reset_registration(now);
                    self.status.last_error = Some("overwatch asked to register again".into());
                }
            }
            Message::Hello { .. }
            | Message::Register(_)
            | Message::State(_)
            | Message::Heartbeat { .. }
            | Message::Leave { .. } => self.counters.malformed += 1,
        }
        events
    }

    fn acked(&mut self, now: Now, echo_ts: u64) -> Duration {
        // The echoed stamp is our own wall time; the monotonic time we
        // sent it at gives an RTT a wall step between send and ack cannot
        // skew. An echo we no longer remember falls back to the wall.
        let sent = self.sent_stamps.iter().rev().find(|(w, _)| *w == echo_ts);
        let rtt = match sent {
            Some((_, mono)) => now.mono.since(*mono),
            None => Duration::from_millis(now.wall_ms.saturating_sub(echo_ts)),
        };
        self.status.connected = true;
        self.status.last_ack = Some(now.wall_ms);
        self.last_ack_mono = Some(now.mono);
        self.status.rtt = Some(rtt);
        rtt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::Policy;
    use crate::gossip::overwatch::{OverwatchConfig, OverwatchProtocol};
    use std::collections::{BTreeMap, BTreeSet};

    const T0: u64 = 1_800_000_000_000;

    /// No clock step in these tests: both clocks read the same.
    fn at(ms: u64) -> Now {
        Now::at(ms, ms)
    }

    fn session(heartbeat_secs: u64) -> AgentSession {
        let identity = Identity::generate("eu-a", T0 / 1000, 86_400).expect("identity");
        let cfg = SessionConfig {
            agent_id: "eu-a".into(),
            region: "eu".into(),
            token: "t".into(),
            identity: Arc::new(identity),
            keyring: Keyring::from_raw(&[[1; 32]]),
            heartbeat_interval: Duration::from_secs(heartbeat_secs),
            missed_threshold: 3,
            time_window_ms: 60_000,
        };
        AgentSession::new(cfg, at(T0))
    }

    /// Times (ms after T0) at which `tick` sent something over `span`.
    fn send_times(s: &mut AgentSession, from: u64, span: u64) -> Vec<u64> {
        let mut times = Vec::new();
        let mut now = from;
        while now < from + span {
            if !s.tick(at(now)).is_empty() {
                times.push(now - T0);
            }
            now = s.next_deadline().0.max(now + 1);
        }
        times
    }

    #[test]
    fn registration_backoff_doubles_to_five_seconds_and_never_stops() {
        let mut s = session(1);
        let times = send_times(&mut s, T0, 60_000);
        let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(&gaps[..7], &[100, 200, 400, 800, 1600, 3200, 5000]);
        assert!(gaps[7..].iter().all(|g| *g == 5000), "{gaps:?}");
        assert!(times.len() > 15);
    }

    #[test]
    fn heartbeat_failures_keep_counting_while_no_node_answers() {
        // Regression: the counter stalled at the value it had when the
        // session fell back to registering, so a rate alert cleared
        // during an outage.
        let mut s = session(1);
        send_times(&mut s, T0, 10_500);
        let failures = s.counters().heartbeat_failures;
        assert!((9..=11).contains(&failures), "{failures}");
        send_times(&mut s, T0 + 10_500, 10_000);
        assert!(s.counters().heartbeat_failures >= failures + 9);
    }

    #[test]
    fn unacked_state_is_retransmitted_with_capped_backoff() {
        // heartbeats every 10 s: 30 s before the agent gives up the session
        let mut s = session(10);
        let mut ow = OverwatchProtocol::new(OverwatchConfig::default());
        let policy = Policy {
            keyring: Keyring::from_raw(&[[1; 32]]),
            agent_tokens: BTreeMap::from([("svc".to_string(), "t".to_string())]),
            known_services: BTreeSet::from(["svc".to_string()]),
            ..Policy::default()
        };
        let src = "192.0.2.1:5000".parse().expect("addr");
        // register over a perfect link
        let mut now = T0;
        for _ in 0..4 {
            for o in s.tick(at(now)) {
                for r in ow.on_packet(&o.bytes, src, at(now), &policy).replies {
                    s.on_datagram(&r, at(now));
                }
            }
            now += 1;
        }
        assert!(s.is_registered());
        // now the link drops everything: the delta goes out at once and
        // again after 100, 200, 400 … 2000 ms
        let b = crate::gossip::BackendReport {
            service: "svc".into(),
            address: "10.0.0.1".into(),
            port: 80,
            weight: 1,
            healthy: false,
            draining: false,
            drain_reason: None,
            last_error: None,
        };
        let start = now;
        let first = s.set_state(std::slice::from_ref(&b), at(now));
        assert_eq!(first.len(), 1, "sent at once");
        let mut state_times = Vec::new();
        while now < start + 9_000 {
            for o in s.tick(at(now)) {
                let (_, plain) = policy.keyring.open(&o.bytes).expect("open");
                if plain.first() == Some(&6) {
                    state_times.push(now - start);
                }
            }
            now = s.next_deadline().0.max(now + 1);
        }
        assert_eq!(&state_times[..5], &[100, 300, 700, 1500, 3100]);
        assert_eq!(state_times[5] - state_times[4], 2000);
        assert_eq!(s.unacked(), 1);
        while now < start + 31_000 {
            s.tick(at(now));
            now = s.next_deadline().0.max(now + 1);
        }
        assert!(!s.status().connected, "past the missed-heartbeat window");
        assert!(s.is_registered());
        // after three missed windows (90 s) it registers again
        while now < start + 91_000 {
            s.tick(at(now));
            now = s.next_deadline().0.max(now + 1);
        }
        assert!(!s.is_registered());
        assert_eq!(s.unacked(), 0, "the registration carries the state now");
    }

    #[test]
    fn unacked_heartbeat_is_resent_twice_per_interval() {
        let mut s = session(1);
        let mut ow = OverwatchProtocol::new(OverwatchConfig::default());
        let policy = Policy {
            keyring: Keyring::from_raw(&[[1; 32]]),
            agent_tokens: BTreeMap::from([("svc".to_string(), "t".to_string())]),
            known_services: BTreeSet::from(["svc".to_string()]),
            ..Policy::default()
        };
        let src = "192.0.2.1:5000".parse().expect("addr");
        let mut now = T0;
        for _ in 0..4 {
            for o in s.tick(at(now)) {
                for r in ow.on_packet(&o.bytes, src, at(now), &policy).replies {
                    s.on_datagram(&r, at(now));
                }
            }
            now += 1;
        }
        assert!(s.is_registered());
        // Nothing comes back from here on: each heartbeat goes out at the
        // interval and twice more, a quarter interval apart.
        let start = now;
        let mut times = Vec::new();
        while now < start + 2_500 {
            if !s.tick(at(now)).is_empty() {
                times.push(now - T0);
            }
            now = s.next_deadline().0.max(now + 1);
        }
        assert_eq!(times, [1001, 1251, 1501, 2001, 2251, 2501]);
        assert_eq!(
            s.counters().heartbeats_sent,
            2,
            "resends are not new heartbeats"
        );
        assert_eq!(s.counters().heartbeat_failures, 1);
    }
}
