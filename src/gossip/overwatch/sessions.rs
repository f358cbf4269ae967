//! Messages of a registered session: heartbeats, state (deltas applied in
//! sequence, a gap answered with "send the full state"), and leaves. Each
//! must come from the session that registered and carry a valid session
//! tag; anything else is told to register again, or dropped and counted.

use super::admission::{check_backends, parse_key};
use super::{Output, OverwatchEvent, OverwatchProtocol, Pkt};
use crate::clock::Mono;
use crate::gossip::session::SessionKey;
use crate::gossip::wire::{Message, StateMsg};
use crate::gossip::{Policy, RejectReason};
use std::net::SocketAddr;

impl OverwatchProtocol {
    /// Alive: tell the registry, acknowledge with the applied sequence.
    pub(super) fn on_heartbeat(&mut self, agent_id: String, pkt: Pkt<'_>, out: &mut Output) {
        let Pkt {
            session,
            src,
            ts,
            now,
            policy,
        } = pkt;
        if let Some((applied, key)) =
            self.session_of(&agent_id, session, src, now.mono, policy, out)
        {
            self.counters.heartbeats += 1;
            out.events
                .push(OverwatchEvent::Heartbeat { agent_id, at: now });
            self.reply_to(policy, ack(applied, ts, false), Some(&key), out);
        }
    }

    /// A graceful leave ends the session.
    pub(super) fn on_leave(&mut self, agent_id: String, pkt: Pkt<'_>, out: &mut Output) {
        let Pkt {
            session,
            src,
            ts,
            now,
            policy,
        } = pkt;
        let now = now.mono;
        if let Some((applied, key)) = self.session_of(&agent_id, session, src, now, policy, out) {
            self.agents.remove(&agent_id);
            out.events.push(OverwatchEvent::Leave { agent_id });
            self.reply_to(policy, ack(applied, ts, false), Some(&key), out);
        }
    }

    /// The registered session's applied state sequence and key, when the
    /// message comes from the session that registered `agent_id` and its
    /// session tag verifies (else the agent is told to register again, or
    /// that it is revoked; a bad tag is dropped and counted).
    pub(super) fn session_of(
        &mut self,
        agent_id: &str,
        session: u64,
        src: SocketAddr,
        now: Mono,
        policy: &Policy,
        out: &mut Output,
    ) -> Option<(u64, SessionKey)> {
        let Some(entry) = self
            .agents
            .get_mut(agent_id)
            .filter(|a| a.session == session)
        else {
            self.counters.unknown_session += 1;
            self.reply(policy, Message::Reregister, out);
            return None;
        };
        let authentic = self.pkt_tag.is_some_and(|t| {
            entry
                .key
                .verify(session, self.pkt_counter, &self.pkt_body, &t)
        });
        if !authentic {
            self.counters.session_auth_failures += 1;
            return None;
        }
        entry.last_seen = now;
        let applied = entry.applied_seq;
        let key = entry.key.clone();
        if policy.revoked.contains(agent_id) {
            self.agents.remove(agent_id);
            let detail = format!("agent id {agent_id} is revoked");
            self.reject(
                Some(agent_id.to_string()),
                src,
                RejectReason::Revoked,
                detail,
                policy,
                out,
            );
            return None;
        }
        Some((applied, key))
    }

    pub(super) fn on_state(&mut self, s: StateMsg, pkt: Pkt<'_>, out: &mut Output) {
        let Pkt {
            session,
            src,
            ts,
            now,
            policy,
        } = pkt;
        let now = now.mono;
        let Some((applied, key)) = self.session_of(&s.agent_id, session, src, now, policy, out)
        else {
            return;
        };
        if s.seq <= applied {
            self.reply_to(policy, ack(applied, ts, false), Some(&key), out);
            return;
        }
        if !s.full && applied.checked_add(1) != Some(s.seq) {
            self.reply_to(policy, ack(applied, ts, true), Some(&key), out);
            return;
        }
        let token = self
            .agents
            .get(&s.agent_id)
            .map(|a| a.token.clone())
            .unwrap_or_default();
        // Nothing of a state with one bad backend is applied (or acked):
        // the agent is told why and registers again.
        let admitted = check_backends(policy, &token, &s.upserts).and_then(|b| {
            let removed: Result<Vec<_>, _> = s.removals.iter().map(parse_key).collect();
            Ok((b, removed?))
        });
        let (backends, removed) = match admitted {
            Ok(a) => a,
            Err((reason, detail)) => {
                self.agents.remove(&s.agent_id);
                self.reject(Some(s.agent_id), src, reason, detail, policy, out);
                return;
            }
        };
        if let Some(a) = self.agents.get_mut(&s.agent_id) {
            a.applied_seq = s.seq;
        }
        out.events.push(OverwatchEvent::State {
            agent_id: s.agent_id,
            backends,
            removed: if s.full { Vec::new() } else { removed },
            full: s.full,
        });
        self.reply_to(policy, ack(s.seq, ts, false), Some(&key), out);
    }
}

fn ack(acked_seq: u64, echo_ts: u64, need_full: bool) -> Message {
    Message::Ack {
        acked_seq,
        echo_ts,
        need_full,
    }
}
