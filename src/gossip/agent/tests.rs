//! Session schedules: registration backoff, failure counting while no
//! node answers, state retransmits and heartbeat resends.

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

fn policy() -> Policy {
    Policy {
        keyring: Keyring::from_raw(&[[1; 32]]),
        agent_tokens: BTreeMap::from([("svc".to_string(), "t".to_string())]),
        known_services: BTreeSet::from(["svc".to_string()]),
        ..Policy::default()
    }
}

/// Registers `s` over a perfect link; the time after it.
fn register(s: &mut AgentSession) -> u64 {
    let mut ow = OverwatchProtocol::new(OverwatchConfig::default());
    let (policy, src) = (policy(), "192.0.2.1:5000".parse().expect("addr"));
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
    now
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
    let (policy, mut now) = (policy(), register(&mut s));
    // now the link drops everything: the delta goes out at once and
    // again after 100, 200, 400 … 2000 ms
    let b = crate::backend::BackendReport {
        key: crate::backend::BackendKey::new("svc", [10, 0, 0, 1].into(), 80),
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
    let mut now = register(&mut s);
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

/// Runs `s` against `ow` over a perfect link for a few turns; the events
/// the Overwatch raised.
fn exchange(
    s: &mut AgentSession,
    ow: &mut OverwatchProtocol,
    from: u64,
) -> Vec<crate::gossip::overwatch::OverwatchEvent> {
    let (policy, src) = (policy(), "192.0.2.1:5000".parse().expect("addr"));
    let mut events = Vec::new();
    for now in from..from + 4 {
        for o in s.tick(at(now)) {
            let out = ow.on_packet(&o.bytes, src, at(now), &policy);
            events.extend(out.events);
            for r in out.replies {
                s.on_datagram(&r, at(now));
            }
        }
    }
    events
}

#[test]
fn a_renewed_identity_registers_again_and_moves_the_pin_with_its_proof() {
    use crate::gossip::overwatch::OverwatchEvent;
    let registered = |events: &[OverwatchEvent]| {
        events.iter().find_map(|e| match e {
            OverwatchEvent::Registered {
                fingerprint,
                cert_not_after,
                pinned_new,
                rotated,
                ..
            } => Some((fingerprint.clone(), *cert_not_after, *pinned_new, *rotated)),
            _ => None,
        })
    };
    let mut s = session(1);
    let old = Arc::clone(&s.cfg.identity);
    let mut ow = OverwatchProtocol::new(OverwatchConfig::default());
    let first = exchange(&mut s, &mut ow, T0);
    assert_eq!(
        registered(&first),
        Some((old.fingerprint.clone(), old.not_after, true, false))
    );
    assert!(s.status().connected);

    // renewed with the old key's proof: registers again, still connected
    let mut new = Identity::generate("eu-a", T0 / 1000 + 60, 365 * 86_400).expect("new");
    new.rotation = Some(old.rotation_proof_for("eu-a", &new).expect("proof"));
    let new = Arc::new(new);
    s.set_identity(Arc::clone(&new), at(T0 + 10));
    assert!(!s.is_registered());
    assert!(s.status().connected, "a renewal is not lost contact");
    let second = exchange(&mut s, &mut ow, T0 + 10);
    assert_eq!(
        registered(&second),
        Some((new.fingerprint.clone(), new.not_after, false, true))
    );
    assert!(s.is_registered() && s.status().connected);
    assert_eq!(s.counters().heartbeat_failures, 0);

    // a certificate without proof is refused: the pin moved to `new`
    let stranger = Identity::generate("eu-a", T0 / 1000, 86_400).expect("stranger");
    s.set_identity(Arc::new(stranger), at(T0 + 20));
    assert!(registered(&exchange(&mut s, &mut ow, T0 + 20)).is_none());
    assert!(!s.status().connected);
    let err = s.status().last_error.clone().unwrap_or_default();
    assert!(err.starts_with("pin_mismatch"), "{err}");
}

#[test]
fn connected_ends_with_the_missed_window_while_registering_again() {
    let mut s = session(1);
    let now = register(&mut s);
    let id = Arc::clone(&s.cfg.identity);
    s.set_identity(id, at(now));
    assert!(s.status().connected);
    // nobody answers from here: connected until interval × threshold
    // after the last ack, then not
    let mut t = now;
    while s.status().connected && t < now + 10_000 {
        s.tick(at(t));
        t = s.next_deadline().0.max(t + 1);
    }
    assert!(!s.status().connected);
    assert!(t <= now + 3_001, "the window is 3 s: {}", t - now);
}
