//! The agent's side of registration: Hello, the challenge, the signed
//! Register carrying the full state and a fresh key share, and what the
//! answers do (Registered derives the session key, Rejected waits the
//! longest backoff, Reregister starts over). Backoff 100 ms doubling to
//! 5 s, forever.

use super::{AgentSession, NEVER, Outgoing, Pending, Phase, cfg_interval_ms, plus};
use super::{REGISTER_BACKOFF_CAP_MS, RETRANSMIT_FIRST_MS};
use crate::clock::Now;
use crate::gossip::RejectReason;
use crate::gossip::identity::{register_message, sign_with};
use crate::gossip::session;
use crate::gossip::wire::{Message, Register, WireBackend};

impl AgentSession {
    /// Hello or Register again once the backoff has passed.
    pub(super) fn tick_handshake(&mut self, now: Now, out: &mut Vec<Outgoing>) {
        if now.mono < self.next_attempt {
            return;
        }
        self.next_attempt = plus(now.mono, self.backoff);
        self.backoff = (self.backoff * 2).min(REGISTER_BACKOFF_CAP_MS);
        match self.phase.clone() {
            Phase::Register(challenge) => {
                if let Some(m) = self.register_message(challenge) {
                    self.seal(m, now, out);
                }
            }
            _ => {
                self.phase = Phase::Hello;
                let m = Message::Hello {
                    agent_id: self.cfg.agent_id.clone(),
                };
                self.seal(m, now, out);
            }
        }
    }

    pub(super) fn register_message(&mut self, challenge: [u8; 32]) -> Option<Message> {
        if self.dh.is_none() {
            self.dh = self.entropy.with_ring_rng(session::offer_with);
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
        let key = &id.key_pkcs8;
        let signed = self
            .entropy
            .with_ring_rng(|rng| sign_with(key, &to_sign, rng));
        let signature = match signed {
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
            backends: self.backends.values().map(WireBackend::from).collect(),
        })))
    }

    /// A challenge for this session: answer it with a registration (a copy
    /// of the challenge we already answer changes nothing).
    pub(super) fn on_challenge(&mut self, agent_session: u64, nonce: [u8; 32], now: Now) {
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

    /// The answer to our registration: true when it completes it (only the
    /// answer to our current key share derives the session key).
    pub(super) fn on_registered(
        &mut self,
        state_seq: u64,
        echo_ts: u64,
        agent_dh: [u8; 32],
        ow_dh: [u8; 32],
        now: Now,
    ) -> bool {
        let Phase::Register(challenge) = self.phase else {
            return false;
        };
        let mine = self.dh.take_if(|d| d.public == agent_dh);
        let session = self.session_id;
        let Some(key) = mine.and_then(|d| session::derive(d, &ow_dh, &challenge, session)) else {
            return false;
        };
        self.key = Some(key);
        self.phase = Phase::Registered;
        self.backoff = RETRANSMIT_FIRST_MS;
        self.pending.clear();
        if state_seq < self.seq {
            self.pending
                .push_back(Pending::new(self.full_state(), self.seq, now));
        }
        self.next_heartbeat = plus(now.mono, cfg_interval_ms(&self.cfg.heartbeat_interval));
        self.heartbeat_outstanding = false;
        self.acked(now, echo_ts);
        self.status.last_error = None;
        true
    }

    /// Refused: wait the longest backoff, then try again (a refused leave
    /// is a leave).
    pub(super) fn on_rejected(&mut self, reason: RejectReason, detail: &str, now: Now) {
        self.reset_registration(now);
        self.phase = Phase::Rejected;
        self.next_attempt = plus(now.mono, REGISTER_BACKOFF_CAP_MS);
        self.status.last_error = Some(format!("{reason}: {detail}"));
        if self.leave.is_some() {
            self.left = true;
        }
    }

    /// The node lost our session: register again (or, leaving, we are gone).
    pub(super) fn on_reregister(&mut self, now: Now) {
        if self.leave.is_some() {
            self.left = true;
        } else if self.phase == Phase::Registered {
            self.reset_registration(now);
            self.status.last_error = Some("overwatch asked to register again".into());
        }
    }

    pub(super) fn reset_registration(&mut self, now: Now) {
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
}
