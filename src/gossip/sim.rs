//! A deterministic simulated network between agent sessions and one
//! Overwatch protocol object, for unit tests, integration tests and
//! benchmarks: a seeded PRNG decides loss, delay (and so reordering) and
//! duplication; a fake clock (monotonic and wall, steppable apart) drives
//! both sides; every datagram toward the Overwatch is captured so tests
//! can replay it. No sockets, no threads, no real time.
//!
//! The protocol objects draw their randomness (session ids, nonces, key
//! shares) from streams seeded from the same seed (`gossip::entropy`), so
//! with the same seed, identities and actions a run puts the same bytes
//! on the wire at the same times (`trace`).

use super::agent::{AgentSession, Outgoing, SessionConfig, SessionEvent};
use super::entropy::Entropy;
use super::identity::Identity;
use super::overwatch::{OverwatchConfig, OverwatchEvent, OverwatchProtocol};
use super::{Keyring, Policy, RejectReason};
use crate::backend::{BackendKey, BackendReport};
use crate::clock::Now;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub const T0: u64 = 1_800_000_000_000;
pub const SERVICE: &str = "app.example.com";
pub const TOKEN: &str = "s3cret";

/// A small seeded PRNG (xorshift64*): loss, delay and duplication come from
/// it alone, so a seed replays the same run.
pub struct Rng(u64);

impl Rng {
    /// Zero would stay zero forever.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, permille: u64) -> bool {
        self.below(1000) < permille
    }
}

/// Per-mille loss and duplication, and a delay range in ms.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    pub loss: u64,
    pub dup: u64,
    pub delay_min: u64,
    pub delay_max: u64,
}

pub const CLEAN: Faults = Faults {
    loss: 0,
    dup: 0,
    delay_min: 1,
    delay_max: 2,
};
pub const LOSSY: Faults = Faults {
    loss: 250,
    dup: 50,
    delay_min: 2,
    delay_max: 120,
};

/// (deliver at, tie-break, to agent index or None for the Overwatch, bytes)
type InFlight = Reverse<(u64, u64, Option<usize>, Vec<u8>)>;

/// One Overwatch, any number of agents, and the network between them.
pub struct Sim {
    /// Monotonic milliseconds; the run advances it in 5 ms steps.
    pub now: u64,
    /// What the wall clock reads minus `now`: tests step it to model an
    /// NTP or operator step while the monotonic clock runs on.
    pub wall_offset_ms: i64,
    pub rng: Rng,
    pub faults: Faults,
    pub ow: OverwatchProtocol,
    pub policy: Policy,
    pub agents: Vec<AgentSession>,
    pub addrs: Vec<SocketAddr>,
    queue: BinaryHeap<InFlight>,
    tie: u64,
    pub events: Vec<OverwatchEvent>,
    pub agent_events: Vec<Vec<SessionEvent>>,
    /// Every packet an agent sent, with its index.
    pub captured: Vec<(usize, Vec<u8>)>,
    pub tcp_sent: usize,
    /// Every packet put on the wire (before loss): the monotonic time, the
    /// destination (an agent, or `None` for the Overwatch) and the bytes.
    pub trace: Vec<(u64, Option<usize>, Vec<u8>)>,
    seed: u64,
}

pub fn keyring(b: u8) -> Keyring {
    Keyring::from_raw(&[[b; 32]])
}

pub fn policy() -> Policy {
    Policy {
        keyring: keyring(7),
        agent_tokens: BTreeMap::from([(SERVICE.to_string(), TOKEN.to_string())]),
        known_services: BTreeSet::from([SERVICE.to_string(), "other.example.com".to_string()]),
        ..Policy::default()
    }
}

pub fn identity() -> Arc<Identity> {
    Arc::new(Identity::generate("eu-a", T0 / 1000, 365 * 86_400).expect("identity"))
}

pub fn config(agent_id: &str, identity: Arc<Identity>) -> SessionConfig {
    SessionConfig {
        agent_id: agent_id.into(),
        region: "eu".into(),
        token: TOKEN.into(),
        identity,
        keyring: keyring(7),
        heartbeat_interval: Duration::from_secs(1),
        missed_threshold: 3,
        time_window_ms: 60_000,
    }
}

pub fn backend(i: u32, healthy: bool) -> BackendReport {
    let address = std::net::Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8);
    BackendReport {
        key: BackendKey::new(SERVICE, address.into(), 8080),
        weight: 100,
        healthy,
        draining: !healthy && i.is_multiple_of(2),
        drain_reason: (!healthy && i.is_multiple_of(2)).then(|| "drain file".into()),
        last_error: (!healthy).then(|| "connection refused".into()),
    }
}

impl Sim {
    pub fn new(seed: u64, faults: Faults) -> Sim {
        Sim {
            now: T0,
            wall_offset_ms: 0,
            rng: Rng::new(seed),
            faults,
            ow: OverwatchProtocol::with_entropy(OverwatchConfig::default(), Entropy::seeded(!seed)),
            policy: policy(),
            agents: Vec::new(),
            addrs: Vec::new(),
            queue: BinaryHeap::new(),
            tie: 0,
            events: Vec::new(),
            agent_events: Vec::new(),
            captured: Vec::new(),
            tcp_sent: 0,
            trace: Vec::new(),
            seed,
        }
    }

    pub fn add_agent(&mut self, cfg: SessionConfig) -> usize {
        let i = self.agents.len();
        let now = self.clock();
        let entropy = Entropy::seeded(self.seed.rotate_left(17) ^ (i as u64 + 1));
        self.agents
            .push(AgentSession::with_entropy(cfg, now, entropy));
        self.addrs
            .push(SocketAddr::from(([192, 0, 2, 10 + i as u8], 40_000)));
        self.agent_events.push(Vec::new());
        i
    }

    pub fn push(&mut self, to: Option<usize>, bytes: Vec<u8>, reliable: bool) {
        self.trace.push((self.now, to, bytes.clone()));
        let f = if reliable { CLEAN } else { self.faults };
        let copies = if !reliable && self.rng.chance(f.dup) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            if !reliable && self.rng.chance(f.loss) {
                continue;
            }
            let at = self.now + f.delay_min + self.rng.below(f.delay_max - f.delay_min + 1);
            self.tie += 1;
            self.queue.push(Reverse((at, self.tie, to, bytes.clone())));
        }
    }

    pub fn send_from(&mut self, i: usize, outs: Vec<Outgoing>) {
        for o in outs {
            self.tcp_sent += o.tcp as usize;
            self.captured.push((i, o.bytes.clone()));
            self.push(None, o.bytes, o.tcp);
        }
    }

    /// Feeds a raw packet to the Overwatch as if from agent `i`.
    pub fn inject(&mut self, i: usize, bytes: &[u8]) {
        let out = self
            .ow
            .on_packet(bytes, self.addrs[i], self.clock(), &self.policy);
        self.events.extend(out.events);
        for r in out.replies {
            self.push(Some(i), r, false);
        }
    }

    pub fn run(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            while let Some(Reverse((at, ..))) = self.queue.peek() {
                if *at > self.now {
                    break;
                }
                let Some(Reverse((_, _, to, bytes))) = self.queue.pop() else {
                    break;
                };
                match to {
                    None => {
                        let from = self
                            .captured
                            .iter()
                            .rev()
                            .find(|(_, b)| *b == bytes)
                            .map_or(0, |c| c.0);
                        let now = self.clock();
                        let out = self
                            .ow
                            .on_packet(&bytes, self.addrs[from], now, &self.policy);
                        self.events.extend(out.events);
                        for r in out.replies {
                            let reliable = r.len() > 1400;
                            self.push(Some(from), r, reliable);
                        }
                    }
                    Some(i) => {
                        let now = self.clock();
                        let evs = self.agents[i].on_datagram(&bytes, now);
                        self.agent_events[i].extend(evs);
                        let outs = self.agents[i].tick(now);
                        self.send_from(i, outs);
                    }
                }
            }
            for i in 0..self.agents.len() {
                let now = self.clock();
                if self.agents[i].next_deadline() <= now.mono {
                    let outs = self.agents[i].tick(now);
                    self.send_from(i, outs);
                }
            }
            if self.now.is_multiple_of(1000) {
                let now = self.clock();
                self.ow.expire(now, &self.policy);
            }
            self.now += 5;
        }
    }

    pub fn set_state(&mut self, i: usize, backends: &[BackendReport]) {
        let now = self.clock();
        let outs = self.agents[i].set_state(backends, now);
        self.send_from(i, outs);
    }

    /// Both clocks as the protocol objects see them now.
    pub fn clock(&self) -> Now {
        let wall = (self.now as i64).saturating_add(self.wall_offset_ms);
        Now::at(self.now, u64::try_from(wall).unwrap_or(0))
    }

    /// Steps the wall clock by `delta_ms` (either way); the monotonic
    /// clock is untouched, as with a real clock step.
    pub fn step_wall(&mut self, delta_ms: i64) {
        self.wall_offset_ms = self.wall_offset_ms.saturating_add(delta_ms);
    }

    /// Starts a graceful leave of agent `i`.
    pub fn leave(&mut self, i: usize) {
        let now = self.clock();
        let outs = self.agents[i].leave(now);
        self.send_from(i, outs);
    }

    pub fn count<F: Fn(&OverwatchEvent) -> bool>(&self, f: F) -> usize {
        self.events.iter().filter(|e| f(e)).count()
    }

    pub fn registered(&self) -> Vec<&OverwatchEvent> {
        self.events
            .iter()
            .filter(|e| matches!(e, OverwatchEvent::Registered { .. }))
            .collect()
    }

    pub fn rejections(&self) -> Vec<RejectReason> {
        self.events
            .iter()
            .filter_map(|e| match e {
                OverwatchEvent::Rejected { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect()
    }

    pub fn agent_rejections(&self, i: usize) -> Vec<RejectReason> {
        self.agent_events[i]
            .iter()
            .filter_map(|e| match e {
                SessionEvent::Rejected { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 9): an address that did not parse was
    /// acknowledged and then dropped silently by the registry glue. Now
    /// admission refuses the report and the agent is told why.
    #[test]
    fn a_backend_address_that_does_not_parse_is_refused_with_the_reason() {
        use crate::gossip::wire::{Message, Payload};
        let mut sim = Sim::new(22, CLEAN);
        let a = sim.add_agent(config("eu-a", identity()));
        let now = sim.clock();
        let src = sim.addrs[a];
        let ring = keyring(7);
        let mut outs = sim.agents[a].set_state(&[backend(1, true)], now);
        // Hello and challenge by hand, then catch the Register.
        let mut register = None;
        for _ in 0..3 {
            for o in std::mem::take(&mut outs) {
                let (header, plain) = ring.open(&o.bytes).expect("open");
                if plain.first() == Some(&3) {
                    register = Some((header, plain));
                    continue;
                }
                for r in sim.ow.on_packet(&o.bytes, src, now, &sim.policy).replies {
                    sim.agents[a].on_datagram(&r, now);
                }
            }
            outs = sim.agents[a].tick(now);
        }
        let (header, plain) = register.expect("a registration");
        let mut p = Payload::decode(&plain).expect("decode");
        let Message::Register(r) = &mut p.message else {
            panic!("not a registration")
        };
        // The signature covers the challenge, not the backends, so this
        // reaches admission.
        r.backends[0].key.address = "app-1.internal".into();
        let forged = ring
            .seal(header.session_id, header.counter + 100, &p.encode())
            .expect("seal");
        let out = sim.ow.on_packet(&forged, src, now, &sim.policy);
        assert!(
            out.events.iter().all(|e| !matches!(
                e,
                OverwatchEvent::Registered { .. } | OverwatchEvent::State { .. }
            )),
            "{:?}",
            out.events
        );
        assert!(out.events.iter().any(|e| matches!(
            e,
            OverwatchEvent::Rejected {
                reason: RejectReason::InvalidBackend,
                ..
            }
        )));
        let mut told = Vec::new();
        for reply in &out.replies {
            told.extend(sim.agents[a].on_datagram(reply, now));
        }
        let Some(SessionEvent::Rejected { reason, detail }) = told.first() else {
            panic!("the agent was not told: {told:?}");
        };
        assert_eq!(*reason, RejectReason::InvalidBackend);
        assert!(detail.contains("app-1.internal"), "{detail}");
        assert!(!sim.agents[a].is_registered());
    }

    /// The registry forgets an agent through the published policy alone:
    /// the listener drops the session and the pin it learned, once, and
    /// the agent registers again as on first use.
    #[test]
    fn a_forget_published_in_the_policy_is_applied_once() {
        let mut sim = Sim::new(23, CLEAN);
        let a = sim.add_agent(config("eu-a", identity()));
        sim.run(3_000);
        assert!(sim.agents[a].is_registered());
        assert_eq!(registrations(&sim), 1);
        sim.policy.forgotten.insert("eu-a".into(), 1);
        sim.run(5_000);
        assert_eq!(registrations(&sim), 2, "registered again after the forget");
        let first_use_again = sim.events.iter().rev().any(|e| {
            matches!(
                e,
                OverwatchEvent::Registered {
                    pinned_new: true,
                    ..
                }
            )
        });
        assert!(first_use_again);
        sim.run(10_000);
        assert_eq!(registrations(&sim), 2, "the same forget is applied once");
        sim.policy.forgotten.insert("eu-a".into(), 2);
        sim.run(5_000);
        assert_eq!(registrations(&sim), 3, "a newer forget is applied");
        assert!(sim.agents[a].is_registered());
    }

    #[test]
    fn a_seed_replays_byte_for_byte() {
        let ids = [identity(), identity()];
        let run = |seed: u64| {
            let mut sim = Sim::new(seed, LOSSY);
            for (k, id) in ids.iter().enumerate() {
                let a = sim.add_agent(config(&format!("eu-{k}"), Arc::clone(id)));
                sim.set_state(a, &[backend(k as u32, true)]);
            }
            sim.run(5_000);
            sim.set_state(0, &[backend(7, false)]);
            sim.run(5_000);
            assert!(sim.agents.iter().all(AgentSession::is_registered));
            sim.trace
        };
        let first = run(42);
        assert!(first.len() > 20, "{} packets", first.len());
        assert!(
            first == run(42),
            "the same seed put other bytes on the wire"
        );
        assert!(first != run(43), "another seed must give another run");
    }

    fn heartbeats(sim: &Sim) -> usize {
        sim.count(|e| matches!(e, OverwatchEvent::Heartbeat { .. }))
    }

    fn registrations(sim: &Sim) -> usize {
        sim.count(|e| matches!(e, OverwatchEvent::Registered { .. }))
    }

    /// Regression (issue 9, bug 2): every agent deadline ran on the wall
    /// clock, so a backward step stalled heartbeats for as long as the
    /// step (the agent went stale everywhere) and a forward step made the
    /// agent think it had been silent for an hour and register again.
    #[test]
    fn wall_clock_steps_neither_stall_heartbeats_nor_force_reregistration() {
        let mut sim = Sim::new(21, CLEAN);
        let a = sim.add_agent(config("eu-a", identity()));
        sim.set_state(a, &[backend(1, true)]);
        sim.run(5_000);
        assert!(sim.agents[a].is_registered() && sim.agents[a].status().connected);
        assert_eq!(registrations(&sim), 1);
        let failures = sim.agents[a].counters().heartbeat_failures;
        for step in [-3_600_000i64, 3_600_000, 3_600_000, -3_600_000] {
            let before = heartbeats(&sim);
            sim.step_wall(step);
            sim.run(10_000);
            let during = heartbeats(&sim) - before;
            // one a second; at most one interval lost around the step
            assert!(during >= 9, "step {step}: {during} heartbeats in 10 s");
            assert!(sim.agents[a].status().connected, "step {step}");
        }
        assert_eq!(registrations(&sim), 1, "no re-registration");
        assert_eq!(
            sim.agents[a].counters().heartbeat_failures,
            failures,
            "every heartbeat acknowledged"
        );
        let c = sim.ow.counters();
        assert_eq!((c.replays, c.unknown_session), (0, 0), "{c:?}");
        assert!(sim.rejections().is_empty());
    }
}
