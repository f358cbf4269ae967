//! Registration on the Overwatch side: a Hello gets a challenge (reused
//! while it is fresh); a Register that answers it passes admission
//! (`admission.rs`), derives the session key from the key shares and
//! becomes an agent session. A retransmitted Register with the same key
//! share keeps the key already derived and at most applies newer state.

use super::admission::{RegisterOk, check_backends, check_register};
use super::{AgentEntry, Challenge, Output, OverwatchEvent, OverwatchProtocol, Pkt};
use crate::clock::Mono;
use crate::gossip::session;
use crate::gossip::wire::{Message, Register};
use crate::gossip::{Policy, RejectReason, ct_eq, fingerprint};
use std::time::Duration;

impl OverwatchProtocol {
    /// Hands out a challenge; revocation and everything else is checked
    /// once the agent proved its key.
    pub(super) fn on_hello(
        &mut self,
        agent_id: String,
        session: u64,
        now: Mono,
        policy: &Policy,
        out: &mut Output,
    ) {
        let reuse = self
            .challenges
            .get(&session)
            .filter(|c| c.agent_id == agent_id && c.expires > now)
            .map(|c| c.nonce);
        let nonce = match reuse {
            Some(n) => n,
            None => {
                if self.challenges.len() >= self.cfg.max_sessions {
                    self.challenges.retain(|_, c| c.expires > now);
                    if self.challenges.len() >= self.cfg.max_sessions {
                        return;
                    }
                }
                let nonce = self.entropy.bytes::<32>();
                self.challenges.insert(
                    session,
                    Challenge {
                        agent_id,
                        nonce,
                        expires: Mono(now.0.saturating_add(self.cfg.challenge_ttl_ms)),
                    },
                );
                nonce
            }
        };
        let m = Message::Challenge {
            agent_session: session,
            nonce,
        };
        self.reply(policy, m, out);
    }

    pub(super) fn on_register(&mut self, r: Register, pkt: Pkt<'_>, out: &mut Output) {
        let Pkt {
            session,
            src,
            ts,
            now,
            policy,
        } = pkt;
        let answered = self.challenges.get(&session).is_some_and(|c| {
            c.agent_id == r.agent_id && c.expires > now.mono && ct_eq(&c.nonce, &r.challenge)
        });
        if !answered {
            // A lost or stale challenge: issue a fresh one instead.
            self.challenges.remove(&session);
            self.on_hello(r.agent_id, session, now.mono, policy, out);
            return;
        }
        let id = r.agent_id.clone();
        let pin = self.pin_cache.get(&r.agent_id);
        let admitted = match self.repeat_of(&r, session, now.wall_ms, policy) {
            Some(ok) => {
                self.counters.register_repeats += 1;
                Ok(ok)
            }
            None => check_register(&r, session, now.wall_ms, policy, pin),
        };
        match admitted {
            Err((reason, detail)) => self.reject(Some(id), src, reason, detail, policy, out),
            Ok(mut ok) => {
                // The same registration again (same session and key share):
                // a retransmit, or a resend carrying newer state because the
                // state changed before our answer arrived. It keeps the
                // session key already derived: the agent may have taken our
                // first answer, and a second key would make every later
                // message of the session fail its tag (the agent then went
                // stale and re-registered after the missed-heartbeat window).
                let same_offer = self.agents.get_mut(&id).filter(|a| {
                    a.session == session
                        && a.fingerprint == ok.fingerprint
                        && a.agent_dh == r.agent_dh
                });
                let ow_dh = if let Some(a) = same_offer {
                    // never move the state back; apply a newer one in full
                    if r.state_seq > a.applied_seq {
                        a.applied_seq = r.state_seq;
                        a.last_seen = now.mono;
                        out.events.push(OverwatchEvent::State {
                            agent_id: id.clone(),
                            backends: std::mem::take(&mut ok.backends),
                            removed: Vec::new(),
                            full: true,
                        });
                    }
                    a.ow_dh
                } else {
                    let Some(mine) = self.entropy.with_ring_rng(session::offer_with) else {
                        return;
                    };
                    let ow_dh = mine.public;
                    let Some(key) = session::derive(mine, &r.agent_dh, &r.challenge, session)
                    else {
                        let detail = "invalid session key share".to_string();
                        self.reject(
                            Some(id),
                            src,
                            RejectReason::CertInvalid,
                            detail,
                            policy,
                            out,
                        );
                        return;
                    };
                    if ok.pinned_new || ok.rotated {
                        self.pin_cache.insert(id.clone(), ok.fingerprint.clone());
                    }
                    self.agents.insert(
                        id.clone(),
                        AgentEntry {
                            session,
                            token: r.token.clone(),
                            region: r.region.clone(),
                            fingerprint: ok.fingerprint.clone(),
                            applied_seq: r.state_seq,
                            last_seen: now.mono,
                            agent_dh: r.agent_dh,
                            ow_dh,
                            key,
                            challenge: r.challenge,
                            cert_not_after: ok.not_after,
                        },
                    );
                    out.events.push(OverwatchEvent::Registered {
                        agent_id: id,
                        region: r.region,
                        addr: src,
                        fingerprint: ok.fingerprint,
                        cert_not_after: ok.not_after,
                        heartbeat_interval: Duration::from_millis(r.heartbeat_interval_ms as u64),
                        missed_threshold: r.missed_threshold,
                        backends: ok.backends,
                        pinned_new: ok.pinned_new,
                        rotated: ok.rotated,
                    });
                    ow_dh
                };
                let m = Message::Registered {
                    state_seq: r.state_seq,
                    echo_ts: ts,
                    agent_dh: r.agent_dh,
                    ow_dh,
                };
                self.reply(policy, m, out);
            }
        }
    }

    /// A retransmit of the registration this session already passed with:
    /// the same key share, challenge, region, token and certificate, so
    /// the proof of possession covered exactly these fields already and is
    /// not checked again. (The agent signs each copy anew, ECDSA signatures
    /// differ each time; the signature bytes are not compared. A key holder
    /// gains nothing: the accepted copy's signature, which it can read,
    /// verifies for these fields anyway, and the signature never covered
    /// the backends, which are checked.) Under a restart's wave every agent
    /// resends its Register while the first waits in our queue, and each
    /// copy cost a certificate parse and an ECDSA verification, which made
    /// the queue longer (issue 9). Expiry, revocation, the token and the
    /// backends are checked anew; anything else goes the full way
    /// (`check_register`).
    fn repeat_of(
        &self,
        r: &Register,
        session: u64,
        now_wall_ms: u64,
        policy: &Policy,
    ) -> Option<RegisterOk> {
        let a = self.agents.get(&r.agent_id)?;
        let same = a.session == session
            && a.agent_dh == r.agent_dh
            && a.challenge == r.challenge
            && a.region == r.region
            && ct_eq(a.token.as_bytes(), r.token.as_bytes())
            && a.cert_not_after > now_wall_ms / 1000
            && !policy.revoked.contains(&r.agent_id)
            && a.fingerprint == fingerprint(&r.cert_der);
        if !same {
            return None;
        }
        let backends = check_backends(policy, &r.token, &r.backends).ok()?;
        Some(RegisterOk {
            fingerprint: a.fingerprint.clone(),
            not_after: a.cert_not_after,
            pinned_new: false,
            rotated: false,
            backends,
        })
    }
}
