//! The gossip protocol over the deterministic simulated network of
//! `opengslb::gossip::sim`: loss, reordering, duplication, replays, wrong
//! keys, rejections, pins, leaves, TCP fallback and restarts.

use opengslb::backend::{BackendKey, BackendReport};
use opengslb::gossip::identity::Identity;
use opengslb::gossip::overwatch::{OverwatchConfig, OverwatchEvent, OverwatchProtocol};
use opengslb::gossip::sim::{
    CLEAN, Faults, LOSSY, Rng, Sim, T0, backend, config, identity, keyring,
};
use opengslb::gossip::{Keyring, RejectReason};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn registration_completes_despite_loss() {
    let mut worst = 0;
    for seed in 1..=20 {
        let mut sim = Sim::new(seed, Faults { loss: 300, ..LOSSY });
        let a = sim.add_agent(config("eu-a", identity()));
        sim.set_state(a, &[backend(1, true)]);
        let mut took = 0;
        while !sim.agents[a].is_registered() && took < 60_000 {
            sim.run(100);
            took += 100;
        }
        worst = worst.max(took);
        sim.run(60_000 - took);
        assert!(sim.agents[a].is_registered(), "seed {seed}: not registered");
        let regs = sim.registered();
        // retransmitted registrations take effect once; loss alone never
        // makes the agent start over
        assert_eq!(regs.len(), 1, "seed {seed}");
        match regs[0] {
            OverwatchEvent::Registered {
                agent_id,
                pinned_new,
                backends,
                heartbeat_interval,
                ..
            } => {
                assert_eq!(agent_id, "eu-a");
                assert!(*pinned_new);
                assert_eq!(*heartbeat_interval, Duration::from_secs(1));
                assert!(backends.len() <= 1);
            }
            _ => unreachable!(),
        }
        let hb = sim
            .events
            .iter()
            .filter(|e| matches!(e, OverwatchEvent::Heartbeat { .. }))
            .count();
        assert!(hb > 20, "seed {seed}: only {hb} heartbeats");
        assert!(sim.agents[a].status().rtt.is_some());
    }
    eprintln!("30% loss: slowest registration of 20 seeds took {worst} ms");
}

/// The Overwatch's view of the agent's backends, rebuilt from events.
fn apply(view: &mut BTreeMap<BackendKey, BackendReport>, e: &OverwatchEvent) -> bool {
    match e {
        OverwatchEvent::Registered { backends, .. } => {
            *view = backends
                .iter()
                .map(|b| (b.key.clone(), b.clone()))
                .collect();
        }
        OverwatchEvent::State {
            backends,
            removed,
            full,
            ..
        } => {
            if *full {
                view.clear();
            }
            for k in removed {
                view.remove(k);
            }
            for b in backends {
                view.insert(b.key.clone(), b.clone());
            }
        }
        _ => return false,
    }
    true
}

#[test]
fn deltas_take_effect_exactly_once_and_in_order() {
    for seed in 1..=10 {
        let mut sim = Sim::new(seed * 7919, LOSSY);
        let a = sim.add_agent(config("eu-a", identity()));
        sim.run(20_000);
        let mut history: Vec<BTreeMap<BackendKey, BackendReport>> = vec![BTreeMap::new()];
        let mut current: BTreeMap<u32, bool> = BTreeMap::new();
        for step in 0..60 {
            let i = sim.rng.below(12) as u32;
            match sim.rng.below(3) {
                0 => {
                    current.remove(&i);
                }
                _ => {
                    current.insert(i, step % 2 == 0);
                }
            }
            let list: Vec<BackendReport> = current.iter().map(|(i, h)| backend(*i, *h)).collect();
            sim.set_state(a, &list);
            history.push(list.iter().map(|b| (b.key.clone(), b.clone())).collect());
            let pause = 1 + sim.rng.below(400);
            sim.run(pause);
        }
        sim.faults = CLEAN;
        sim.run(10_000);
        assert_eq!(sim.agents[a].unacked(), 0, "seed {seed}");
        let mut view = BTreeMap::new();
        let mut at = 0;
        for e in &sim.events {
            if apply(&mut view, e) {
                let Some(pos) = history.iter().skip(at).position(|h| *h == view) else {
                    panic!("seed {seed}: the overwatch saw a state the agent never had: {e:?}");
                };
                at += pos;
            }
        }
        assert_eq!(Some(&view), history.last(), "seed {seed}");
    }
}

#[test]
fn replayed_datagrams_are_dropped_and_counted() {
    let mut sim = Sim::new(3, CLEAN);
    let a = sim.add_agent(config("eu-a", identity()));
    sim.set_state(a, &[backend(1, true)]);
    sim.run(3_000);
    sim.set_state(a, &[backend(1, false)]);
    sim.run(3_000);
    let before = sim.events.len();
    let replays = sim.ow.counters().replays;
    let captured = sim.captured.clone();
    assert!(captured.len() > 5);
    for (i, bytes) in &captured {
        sim.inject(*i, bytes);
    }
    assert_eq!(sim.events.len(), before, "a replay reached the events");
    assert_eq!(sim.ow.counters().replays - replays, captured.len() as u64);
    // and later, outside the time window, still nothing
    sim.run(120_000);
    let before = sim.events.len();
    for (i, bytes) in &captured {
        sim.inject(*i, bytes);
    }
    assert_eq!(sim.events.len(), before);
    assert_eq!(
        sim.ow
            .counters()
            .auth_failures
            .get(&RejectReason::Replay)
            .copied(),
        Some(2 * captured.len() as u64)
    );
}

#[test]
fn wrong_key_is_counted_and_never_reaches_events() {
    let mut sim = Sim::new(4, CLEAN);
    let mut cfg = config("eu-a", identity());
    cfg.keyring = keyring(8);
    let a = sim.add_agent(cfg);
    sim.run(10_000);
    assert!(sim.events.is_empty());
    let c = sim.ow.counters();
    assert!(c.decrypt_failures >= 3, "{c:?}");
    assert_eq!(
        c.decrypt_failures_by_source.get(&sim.addrs[a].ip()),
        Some(&c.decrypt_failures)
    );
    assert!(!sim.agents[a].is_registered());
}

#[test]
fn keyring_rotation_without_flag_day() {
    let mut sim = Sim::new(5, CLEAN);
    sim.policy.keyring = Keyring::from_raw(&[[9; 32], [7; 32]]);
    let old = sim.add_agent(config("eu-old", identity()));
    let mut cfg = config("eu-new", identity());
    cfg.keyring = Keyring::from_raw(&[[9; 32]]);
    let new = sim.add_agent(cfg);
    sim.run(3_000);
    // replies go out under the key of the request, so both agents register
    // while the Overwatch already encrypts with the new key first
    assert!(sim.agents[old].is_registered() && sim.agents[new].is_registered());
    assert_eq!(sim.ow.counters().decrypt_failures, 0);
}

fn rejected_with(sim: &mut Sim, a: usize, reason: RejectReason) {
    sim.run(3_000);
    assert!(!sim.agents[a].is_registered());
    assert!(sim.registered().is_empty());
    assert_eq!(sim.rejections().first(), Some(&reason), "{:?}", sim.events);
    assert_eq!(sim.agent_rejections(a).first(), Some(&reason));
    assert!(
        sim.agents[a]
            .status()
            .last_error
            .as_deref()
            .unwrap_or("")
            .starts_with(reason.as_str())
    );
    assert!(
        sim.ow
            .counters()
            .auth_failures
            .get(&reason)
            .copied()
            .unwrap_or(0)
            >= 1
    );
}

#[test]
fn wrong_token_is_told_to_the_agent() {
    let mut sim = Sim::new(6, CLEAN);
    let mut cfg = config("eu-a", identity());
    cfg.token = "guess".into();
    let a = sim.add_agent(cfg);
    sim.set_state(a, &[backend(1, true)]);
    rejected_with(&mut sim, a, RejectReason::TokenInvalid);
}

#[test]
fn unknown_service_is_refused() {
    let mut sim = Sim::new(7, CLEAN);
    let a = sim.add_agent(config("eu-a", identity()));
    let mut b = backend(1, true);
    b.key.service = "nope.example.com".into();
    sim.set_state(a, &[b]);
    rejected_with(&mut sim, a, RejectReason::UnknownService);
}

#[test]
fn revoked_agent_is_refused_and_kicked_out() {
    let mut sim = Sim::new(8, CLEAN);
    sim.policy.revoked.insert("eu-a".into());
    let a = sim.add_agent(config("eu-a", identity()));
    rejected_with(&mut sim, a, RejectReason::Revoked);
    // revoked while registered: the next heartbeat is refused
    let mut sim = Sim::new(9, CLEAN);
    let a = sim.add_agent(config("eu-a", identity()));
    sim.run(2_000);
    assert!(sim.agents[a].is_registered());
    sim.policy.revoked.insert("eu-a".into());
    sim.run(2_000);
    assert!(!sim.agents[a].is_registered());
    assert_eq!(sim.rejections(), vec![RejectReason::Revoked]);
}

#[test]
fn expired_certificate_is_refused() {
    let mut sim = Sim::new(10, CLEAN);
    let old = Identity::generate("eu-a", T0 / 1000 - 400 * 86_400, 365 * 86_400).expect("identity");
    let a = sim.add_agent(config("eu-a", Arc::new(old)));
    rejected_with(&mut sim, a, RejectReason::CertExpired);
}

#[test]
fn pins_and_rotation() {
    let first = identity();
    let mut sim = Sim::new(11, CLEAN);
    let a = sim.add_agent(config("eu-a", first.clone()));
    sim.run(2_000);
    assert!(sim.agents[a].is_registered());
    // the same id with another certificate: refused
    let b = sim.add_agent(config("eu-a", identity()));
    sim.run(2_000);
    assert!(!sim.agents[b].is_registered());
    assert_eq!(sim.agent_rejections(b), vec![RejectReason::PinMismatch]);
    assert!(
        sim.agents[a].is_registered(),
        "the impostor must not kick the pinned agent out"
    );
    // a rotation proof by the pinned key: accepted, pin moves
    let mut second = Identity::generate("eu-a", T0 / 1000, 365 * 86_400).expect("identity");
    second.rotation = Some(first.rotation_proof_for("eu-a", &second).expect("proof"));
    let c = sim.add_agent(config("eu-a", Arc::new(second.clone())));
    sim.run(2_000);
    assert!(sim.agents[c].is_registered());
    let rotated = sim.events.iter().any(|e| {
        matches!(e, OverwatchEvent::Registered { rotated: true, fingerprint, .. } if *fingerprint == second.fingerprint)
    });
    assert!(rotated, "{:?}", sim.events);
    // now the old certificate is the stranger
    let d = sim.add_agent(config("eu-a", first.clone()));
    sim.run(2_000);
    assert_eq!(sim.agent_rejections(d), vec![RejectReason::PinMismatch]);
    // a proof signed by some other key does not move the pin
    let mut third = Identity::generate("eu-a", T0 / 1000, 365 * 86_400).expect("identity");
    third.rotation = Some(
        identity()
            .rotation_proof_for("eu-a", &third)
            .expect("proof"),
    );
    let e = sim.add_agent(config("eu-a", Arc::new(third)));
    sim.run(2_000);
    assert_eq!(sim.agent_rejections(e), vec![RejectReason::PinMismatch]);
    // pins given by the policy count too
    let mut sim = Sim::new(12, CLEAN);
    sim.policy.pins.insert("eu-a".into(), "00".repeat(32));
    let f = sim.add_agent(config("eu-a", first));
    rejected_with(&mut sim, f, RejectReason::PinMismatch);
}

#[test]
fn leave_is_reported() {
    let mut sim = Sim::new(13, LOSSY);
    let a = sim.add_agent(config("eu-a", identity()));
    sim.run(30_000);
    assert!(sim.agents[a].is_registered());
    sim.leave(a);
    sim.run(10_000);
    assert!(sim.agents[a].has_left());
    let leaves = sim
        .events
        .iter()
        .filter(|e| matches!(e, OverwatchEvent::Leave { .. }))
        .count();
    assert_eq!(leaves, 1);
    assert_eq!(sim.ow.registered(), 0);
}

#[test]
fn large_state_goes_over_tcp() {
    let mut sim = Sim::new(14, LOSSY);
    let a = sim.add_agent(config("eu-a", identity()));
    let many: Vec<BackendReport> = (0..300).map(|i| backend(i, true)).collect();
    sim.set_state(a, &many);
    sim.run(30_000);
    assert!(sim.tcp_sent > 0);
    let Some(OverwatchEvent::Registered { backends, .. }) = sim.registered().last().copied() else {
        panic!("not registered");
    };
    assert_eq!(backends.len(), 300);
    let tcp_before = sim.tcp_sent;
    let flipped: Vec<BackendReport> = (0..300).map(|i| backend(i, false)).collect();
    sim.set_state(a, &flipped);
    sim.run(5_000);
    assert!(sim.tcp_sent > tcp_before);
    let mut view = BTreeMap::new();
    for e in &sim.events {
        apply(&mut view, e);
    }
    assert!(view.values().all(|b| !b.healthy) && view.len() == 300);
}

#[test]
fn overwatch_restart_makes_agents_register_again() {
    let mut sim = Sim::new(15, CLEAN);
    let a = sim.add_agent(config("eu-a", identity()));
    sim.set_state(a, &[backend(1, true)]);
    sim.run(2_000);
    sim.ow = OverwatchProtocol::new(OverwatchConfig::default());
    sim.events.clear();
    sim.run(3_000);
    assert!(sim.agents[a].is_registered());
    // first use again for a fresh process without persisted pins
    assert_eq!(sim.registered().len(), 1);
    assert!(sim.ow.counters().unknown_session >= 1);
}

#[test]
fn lost_connectivity_shows_in_status() {
    let mut sim = Sim::new(16, CLEAN);
    let a = sim.add_agent(config("eu-a", identity()));
    sim.run(2_000);
    assert!(sim.agents[a].status().connected);
    sim.faults = Faults {
        loss: 1000,
        ..CLEAN
    };
    sim.run(5_000);
    let st = sim.agents[a].status();
    assert!(!st.connected && st.last_error.is_some(), "{st:?}");
    assert!(sim.agents[a].counters().heartbeat_failures >= 2);
    assert!(sim.agents[a].is_registered());
    sim.faults = CLEAN;
    sim.run(2_000);
    assert!(sim.agents[a].status().connected);
    // a long silence: the agent gives up the session and registers again
    let registrations = sim.registered().len();
    sim.faults = Faults {
        loss: 1000,
        ..CLEAN
    };
    sim.run(31_000);
    assert!(!sim.agents[a].is_registered());
    sim.faults = CLEAN;
    sim.run(6_000);
    assert!(sim.agents[a].status().connected);
    assert_eq!(sim.registered().len(), registrations + 1);
}

#[test]
fn random_and_mutated_bytes_never_panic_or_leak() {
    let mut sim = Sim::new(17, CLEAN);
    let a = sim.add_agent(config("eu-a", identity()));
    sim.run(2_000);
    let captured = sim.captured.clone();
    let before = sim.events.len();
    let mut rng = Rng::new(99);
    for n in 0..20_000 {
        let bytes: Vec<u8> = if n % 2 == 0 {
            let len = rng.below(200) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if n % 4 == 0 && b.len() >= 4 {
                b[..4].copy_from_slice(b"OG\x01\x00");
            }
            b
        } else {
            let (_, orig) = &captured[rng.below(captured.len() as u64) as usize];
            let mut b = orig.clone();
            let flips = 1 + rng.below(3);
            for _ in 0..flips {
                let at = rng.below(b.len() as u64) as usize;
                b[at] ^= 1 << rng.below(8);
            }
            if rng.chance(200) {
                b.truncate(rng.below(b.len() as u64) as usize);
            }
            b
        };
        sim.inject(a, &bytes);
        let now = sim.clock();
        sim.agents[a].on_datagram(&bytes, now);
    }
    assert_eq!(sim.events.len(), before, "garbage reached the events");
    {
        // a mutation that flips one bit twice gives back a captured
        // packet: a replay
        let c = sim.ow.counters();
        assert_eq!(c.malformed + c.decrypt_failures + c.replays, 20_000);
    }
    // garbage sealed with the right key: it decrypts, and then must not
    // parse into anything that reaches the events
    let ring = keyring(7);
    let malformed = sim.ow.counters().malformed;
    for n in 0..5_000u64 {
        let len = rng.below(300) as usize;
        let mut plain: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if let Some(t) = plain.first_mut() {
            *t = (*t % 11) + 1;
        }
        if plain.len() >= 9 {
            plain[1..9].copy_from_slice(&sim.clock().wall_ms.to_be_bytes());
        }
        let packet = ring.seal(0xabc, n + 1, &plain).expect("seal");
        sim.inject(a, &packet);
        let now = sim.clock();
        sim.agents[a].on_datagram(&packet, now);
    }
    assert!(sim.ow.counters().malformed > malformed + 4_000);
    assert!(
        sim.events.iter().skip(before).all(|e| !matches!(
            e,
            OverwatchEvent::Registered { .. }
                | OverwatchEvent::State { .. }
                | OverwatchEvent::Leave { .. }
        )),
        "{:?}",
        &sim.events[before..]
    );
    let c = sim.ow.counters();
    assert!(c.decrypt_failures + c.malformed > 20_000);
}

#[test]
fn another_key_holder_cannot_forge_session_messages() {
    use opengslb::gossip::wire::{Message, Payload, WireBackend, split_tag};
    let mut sim = Sim::new(18, CLEAN);
    let a = sim.add_agent(config("eu-a", identity()));
    sim.set_state(a, &[backend(1, true)]);
    sim.run(2_000);
    sim.set_state(a, &[backend(1, false)]);
    sim.run(1_000);
    let ring = keyring(7);
    // the agent's last state message, opened with the shared key
    let (header, plain) = sim
        .captured
        .iter()
        .rev()
        .filter_map(|(_, p)| ring.open(p).ok())
        .find(|(_, plain)| plain.first() == Some(&6))
        .expect("a state message");
    let (body, tag) = split_tag(&plain).expect("split");
    let mut forged = Payload::decode(body).expect("decode");
    let Message::State(s) = &mut forged.message else {
        panic!("not state")
    };
    s.seq += 1;
    s.upserts = vec![WireBackend::from(&backend(1, true))];
    forged.timestamp_ms = sim.clock().wall_ms;
    // same session, fresh counter; keep the old tag or drop it
    let before = sim.events.len();
    for with_tag in [true, false] {
        let mut bytes = forged.encode();
        if with_tag {
            bytes.extend_from_slice(&tag.expect("tag"));
        }
        let packet = ring
            .seal(
                header.session_id,
                header.counter + 100 + with_tag as u64,
                &bytes,
            )
            .expect("seal");
        sim.inject(a, &packet);
    }
    assert_eq!(
        sim.events.len(),
        before,
        "a forged state reached the events"
    );
    assert_eq!(sim.ow.counters().session_auth_failures, 1);
    assert_eq!(
        sim.ow.counters().malformed,
        1,
        "a tagless state does not parse"
    );
    // the real agent carries on
    sim.set_state(a, &[backend(2, true)]);
    sim.run(1_000);
    assert_eq!(sim.agents[a].unacked(), 0);
}

/// Issue 9: after an Overwatch restart under load half the fleet went stale
/// exactly one stale window (3 s) after registering again. Slow, reordering
/// links stand in for the queues of a restart: 200 agents, the Overwatch
/// restarted, then every packet takes 200..1200 ms. Each agent registers
/// once (a "register again" answered to one of its old session's
/// heartbeats and overtaken by the registration is ignored), and the
/// silences stay within the registry's rule: none longer than interval x
/// threshold (3 s), except before the first heartbeat after a
/// registration (the agent heartbeats one interval after our answer
/// reaches it), which on these links stays within one interval more (the
/// registry allows a whole stale window more:
/// `Registry::expect_first_heartbeat`).
#[test]
fn after_an_overwatch_restart_on_slow_links_no_agent_goes_stale() {
    const AGENTS: usize = 200;
    let mut sim = Sim::new(9, CLEAN);
    let id = identity();
    for i in 0..AGENTS {
        let a = sim.add_agent(config(&format!("a-{i}"), Arc::clone(&id)));
        sim.set_state(a, &[backend(i as u32 + 1, true)]);
    }
    sim.run(3_000);
    assert_eq!(sim.registered().len(), AGENTS);
    sim.ow = OverwatchProtocol::new(OverwatchConfig::default());
    sim.faults = Faults {
        loss: 0,
        dup: 0,
        delay_min: 200,
        delay_max: 1200,
    };
    sim.events.clear();
    // agent -> (last liveness event, waiting for the first heartbeat)
    let mut last: BTreeMap<String, (u64, bool)> = BTreeMap::new();
    let mut too_long = Vec::new();
    let mut seen = 0;
    for _ in 0..(20_000 / 5) {
        sim.run(5);
        for e in &sim.events[seen..] {
            let (id, registration) = match e {
                OverwatchEvent::Registered { agent_id, .. } => (agent_id, true),
                OverwatchEvent::Heartbeat { agent_id, .. }
                | OverwatchEvent::State { agent_id, .. } => (agent_id, false),
                _ => continue,
            };
            if let Some(&(t, first)) = last.get(id) {
                let allowed = if first { 4_000 } else { 3_000 };
                if sim.now - t > allowed {
                    too_long.push((id.clone(), sim.now - t));
                }
            }
            let first = registration
                || (last.get(id).is_some_and(|l| l.1)
                    && !matches!(e, OverwatchEvent::Heartbeat { .. }));
            last.insert(id.clone(), (sim.now, first));
        }
        seen = sim.events.len();
    }
    assert_eq!(too_long, Vec::<(String, u64)>::new());
    assert_eq!(last.len(), AGENTS, "every agent is back");
    assert_eq!(sim.registered().len(), AGENTS, "each registered once");
    let stale_reregisters: u64 = sim
        .agents
        .iter()
        .map(|a| a.counters().stale_reregisters)
        .sum();
    assert!(stale_reregisters > 0, "the overtaken answers were seen");
    assert!(sim.agents.iter().all(|a| a.is_registered()));
}

/// Issue 9: a retransmitted registration with the signed fields this
/// session already passed with is admitted without verifying the proof
/// again (each copy cost a certificate parse and an ECDSA verification
/// while a restart's wave queued up; the agent signs every copy anew, so
/// the signature bytes differ); a copy with a signed field changed is not
/// a repeat and is refused as before.
#[test]
fn a_repeated_registration_skips_the_proof_but_a_changed_one_is_checked() {
    use opengslb::gossip::wire::{Message, Payload};
    let mut sim = Sim::new(31, CLEAN);
    let a = sim.add_agent(config("eu-a", identity()));
    sim.set_state(a, &[backend(1, true)]);
    sim.run(2_000);
    assert!(sim.agents[a].is_registered());
    assert_eq!(sim.ow.counters().register_repeats, 0);
    let ring = keyring(7);
    let (header, register) = sim
        .captured
        .iter()
        .rev()
        .find_map(|(_, b)| {
            let (h, plain) = ring.open(b).ok()?;
            let p = Payload::decode(&plain).ok()?;
            matches!(p.message, Message::Register(_)).then_some((h, p))
        })
        .expect("a Register was sent");
    let resend = |sim: &mut Sim, p: &Payload, counter: u64| {
        let bytes = ring
            .seal(header.session_id, counter, &p.encode())
            .expect("seal");
        sim.inject(a, &bytes);
    };
    // The same registration again (a new counter, as a retransmit has).
    resend(&mut sim, &register, header.counter + 100);
    assert_eq!(sim.ow.counters().register_repeats, 1);
    // Signed anew (other signature bytes): still the same registration.
    let mut resigned = register.clone();
    if let Message::Register(r) = &mut resigned.message {
        let last = r.signature.len() - 1;
        r.signature[last] ^= 1;
    }
    resend(&mut sim, &resigned, header.counter + 101);
    assert_eq!(sim.ow.counters().register_repeats, 2);
    assert!(sim.rejections().is_empty());
    // A signed field changed (the region): the full check refuses it.
    let mut forged = resigned.clone();
    if let Message::Register(r) = &mut forged.message {
        r.region = "us".into();
    }
    resend(&mut sim, &forged, header.counter + 102);
    assert_eq!(sim.ow.counters().register_repeats, 2);
    assert_eq!(sim.rejections(), [RejectReason::CertInvalid]);
    assert_eq!(sim.registered().len(), 1);
}
