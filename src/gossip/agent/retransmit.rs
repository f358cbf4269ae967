//! State changes and the leave, each retransmitted until acknowledged:
//! first at once, then after 100 ms, doubling to a 2 s cap. More than 32
//! unacknowledged deltas collapse into one full state.

use super::{
    AgentSession, MAX_PENDING, Outgoing, Phase, RETRANSMIT_CAP_MS, RETRANSMIT_FIRST_MS, plus,
};
use crate::backend::{BackendKey, BackendReport};
use crate::clock::{Mono, Now};
use crate::gossip::wire::{Message, StateMsg};
use crate::gossip::wire::{WireBackend, WireKey};
use std::collections::BTreeMap;

/// A message waiting for its ack, with its retransmit schedule.
pub(super) struct Pending {
    pub(super) msg: Message,
    pub(super) seq: u64,
    pub(super) next_send: Mono,
    pub(super) interval: u64,
}

impl Pending {
    pub(super) fn new(msg: Message, seq: u64, now: Now) -> Self {
        Pending {
            msg,
            seq,
            next_send: now.mono,
            interval: RETRANSMIT_FIRST_MS,
        }
    }
}

impl AgentSession {
    /// Replaces the reported backend set; the change goes out at once.
    pub fn set_state(&mut self, backends: &[BackendReport], now: Now) -> Vec<Outgoing> {
        let new: BTreeMap<BackendKey, BackendReport> = backends
            .iter()
            .map(|b| (b.key.clone(), b.clone()))
            .collect();
        let upserts: Vec<WireBackend> = new
            .iter()
            .filter(|(k, v)| self.backends.get(*k) != Some(*v))
            .map(|(_, v)| WireBackend::from(v))
            .collect();
        let removals: Vec<WireKey> = self
            .backends
            .keys()
            .filter(|k| !new.contains_key(*k))
            .map(WireKey::from)
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

    pub(super) fn full_state(&self) -> Message {
        Message::State(StateMsg {
            agent_id: self.cfg.agent_id.clone(),
            seq: self.seq,
            full: true,
            upserts: self.backends.values().map(WireBackend::from).collect(),
            removals: Vec::new(),
        })
    }

    /// The leave, retransmitted until acknowledged (nothing else goes out
    /// meanwhile).
    pub(super) fn tick_leave(&mut self, now: Now, out: &mut Vec<Outgoing>) {
        let Some(p) = self.leave.as_mut() else {
            return;
        };
        if p.next_send <= now.mono {
            p.next_send = plus(now.mono, p.interval);
            p.interval = (p.interval * 2).min(RETRANSMIT_CAP_MS);
            let msg = p.msg.clone();
            self.seal(msg, now, out);
        }
    }

    /// Unacknowledged state changes, each on its own doubling schedule.
    pub(super) fn tick_pending(&mut self, now: Now, out: &mut Vec<Outgoing>) {
        let t = now.mono;
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
}
