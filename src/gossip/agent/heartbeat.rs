//! Heartbeats of a registered session and what the acks say: one per
//! interval, resent twice a quarter interval apart while unacknowledged;
//! "connected" while an ack came within interval × missed threshold; the
//! session given up after three such windows (at least 30 s) of silence.
//! All on the monotonic clock; the RTT from the monotonic time the echoed
//! stamp left.

use super::{AgentSession, HEARTBEAT_RETRIES, Outgoing, Pending, Phase, REREGISTER_SILENCE_MIN_MS};
use super::{cfg_interval_ms, plus};
use crate::clock::{Mono, Now};
use crate::gossip::wire::Message;
use std::time::Duration;

impl AgentSession {
    /// While not registered, each heartbeat interval that passes counts
    /// as a failed heartbeat.
    pub(super) fn count_missed(&mut self, now: Now) {
        let interval = cfg_interval_ms(&self.cfg.heartbeat_interval);
        if self.phase == Phase::Registered {
            self.next_missed = plus(now.mono, interval);
        } else if now.mono >= self.next_missed {
            self.counters.heartbeat_failures += 1;
            self.next_missed = plus(now.mono, interval);
        }
    }

    /// "Connected" ends when no ack came within the missed-heartbeat
    /// window, registered or not (a session re-registering after a
    /// renewal keeps it until then).
    pub(super) fn expire_connected(&mut self, now: Now) {
        if self.status.connected && now.mono >= self.connected_until() {
            self.status.connected = false;
            self.status.last_error =
                Some("no acknowledgement within the missed-heartbeat window".into());
        }
    }

    pub(super) fn tick_registered(&mut self, now: Now, out: &mut Vec<Outgoing>) {
        let t = now.mono;
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
        self.tick_pending(now, out);
    }

    /// Heartbeat interval × missed threshold.
    pub(super) fn missed_window(&self) -> u64 {
        (self.cfg.heartbeat_interval.as_millis() as u64)
            .saturating_mul(self.cfg.missed_threshold.max(1) as u64)
    }

    pub(super) fn connected_until(&self) -> Mono {
        let last = self.last_ack_mono.unwrap_or_default();
        plus(last, self.missed_window().saturating_add(1))
    }

    /// After this long without any ack the session is given up and the
    /// agent registers again: three missed windows, at least 30 s, so
    /// heavy loss alone does not churn registrations.
    pub(super) fn reregister_at(&self) -> Mono {
        let silence = self
            .missed_window()
            .saturating_mul(3)
            .max(REREGISTER_SILENCE_MIN_MS);
        plus(self.last_ack_mono.unwrap_or_default(), silence)
    }

    /// An authentic ack: it answers the leave, or acknowledges state up to
    /// `acked_seq` and the outstanding heartbeat. The RTT when it counts.
    pub(super) fn on_ack(
        &mut self,
        acked_seq: u64,
        echo_ts: u64,
        need_full: bool,
        now: Now,
    ) -> Option<Duration> {
        if let Some(started) = self.leave_started {
            if echo_ts >= started {
                self.left = true;
            }
            return None;
        }
        if self.phase != Phase::Registered {
            return None;
        }
        self.pending.retain(|p| p.seq > acked_seq);
        if need_full && self.seq > acked_seq {
            self.pending.clear();
            self.pending
                .push_back(Pending::new(self.full_state(), self.seq, now));
        }
        self.heartbeat_outstanding = false;
        Some(self.acked(now, echo_ts))
    }

    pub(super) fn acked(&mut self, now: Now, echo_ts: u64) -> Duration {
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
