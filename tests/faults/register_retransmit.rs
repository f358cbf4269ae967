//! Regression (found by tests/faults_netns.rs, key rotation): an agent
//! whose state changed while its registration was in flight resent the
//! registration with the newer state; the Overwatch answered the resend
//! with a second session key, the agent kept the first, and every later
//! heartbeat failed its tag until the agent re-registered after the
//! missed-heartbeat window. On a restart that looked like: registered,
//! then `stale` 3 s later, then back. Pure protocol objects, no sockets.

use opengslb::backend::{BackendKey, BackendReport};
use opengslb::clock::Now;
use opengslb::gossip::agent::{AgentSession, Outgoing, SessionConfig};
use opengslb::gossip::identity::Identity;
use opengslb::gossip::overwatch::{OverwatchConfig, OverwatchEvent, OverwatchProtocol};
use opengslb::gossip::{Keyring, Policy};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const T0: u64 = 1_800_000_000_000;
const SERVICE: &str = "app.gslb.test";

/// No clock steps here: both clocks read the same.
fn at(ms: u64) -> Now {
    Now::at(ms, ms)
}

fn policy() -> Policy {
    Policy {
        keyring: Keyring::from_raw(&[[7; 32]]),
        agent_tokens: BTreeMap::from([(SERVICE.to_string(), "tok".to_string())]),
        known_services: BTreeSet::from([SERVICE.to_string()]),
        ..Policy::default()
    }
}

fn agent() -> AgentSession {
    let identity = Arc::new(Identity::generate("ag1", T0 / 1000, 86_400 * 30).expect("identity"));
    AgentSession::new(
        SessionConfig {
            agent_id: "ag1".into(),
            region: "east".into(),
            token: "tok".into(),
            identity,
            keyring: Keyring::from_raw(&[[7; 32]]),
            heartbeat_interval: Duration::from_secs(1),
            missed_threshold: 3,
            time_window_ms: 60_000,
        },
        at(T0),
    )
}

fn backend(healthy: bool) -> BackendReport {
    BackendReport {
        key: BackendKey::new(SERVICE, [127, 0, 0, 80].into(), 8080),
        weight: 1,
        healthy,
        draining: false,
        drain_reason: None,
        last_error: None,
    }
}

/// Sends every packet to the Overwatch; its replies and events.
fn to_ow(
    ow: &mut OverwatchProtocol,
    packets: Vec<Outgoing>,
    now: u64,
) -> (Vec<Vec<u8>>, Vec<OverwatchEvent>) {
    let src: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let (mut replies, mut events) = (Vec::new(), Vec::new());
    for p in packets {
        let out = ow.on_packet(&p.bytes, src, at(now), &policy());
        replies.extend(out.replies);
        events.extend(out.events);
    }
    (replies, events)
}

fn run(deliver_second_answer_first: bool) {
    let mut ow = OverwatchProtocol::new(OverwatchConfig::default());
    let mut ag = agent();
    let mut hello = ag.set_state(&[backend(false)], at(T0));
    hello.extend(ag.tick(at(T0)));
    let (challenge, _) = to_ow(&mut ow, hello, T0);
    assert_eq!(challenge.len(), 1, "a challenge");
    ag.on_datagram(&challenge[0], at(T0 + 1));
    let (first, _) = to_ow(&mut ow, ag.tick(at(T0 + 1)), T0 + 1);
    // The first health check passes before the answer arrives: the agent
    // resends its registration with the newer state at once.
    let resend = ag.set_state(&[backend(true)], at(T0 + 2));
    assert!(
        !resend.is_empty(),
        "the registration is resent with the new state"
    );
    let (second, events) = to_ow(&mut ow, resend, T0 + 2);
    assert!(
        events.iter().any(|e| match e {
            OverwatchEvent::State {
                full: true,
                backends,
                ..
            }
            | OverwatchEvent::Registered { backends, .. } => {
                backends.iter().all(|b| b.healthy)
            }
            _ => false,
        }),
        "the newer state is applied: {events:?}"
    );
    let (a, b) = if deliver_second_answer_first {
        (&second, &first)
    } else {
        (&first, &second)
    };
    for r in a.iter().chain(b.iter()) {
        ag.on_datagram(r, at(T0 + 3));
    }
    assert!(ag.is_registered());
    // Heartbeats of the session must authenticate at the Overwatch.
    let mut now = T0 + 3;
    let mut heartbeats = 0;
    for _ in 0..50 {
        now = ag.next_deadline().0.max(now + 1);
        if now > T0 + 5_000 {
            break;
        }
        let (replies, events) = to_ow(&mut ow, ag.tick(at(now)), now);
        heartbeats += events
            .iter()
            .filter(|e| matches!(e, OverwatchEvent::Heartbeat { .. }))
            .count();
        for r in replies {
            ag.on_datagram(&r, at(now));
        }
    }
    assert!(
        heartbeats >= 4,
        "heartbeats accepted over 5 s: {heartbeats}"
    );
    assert_eq!(
        ag.counters().heartbeat_failures,
        0,
        "every heartbeat acknowledged"
    );
    assert!(
        ag.status().connected && ag.status().last_error.is_none(),
        "{:?}",
        ag.status()
    );
}

#[test]
fn resent_registration_keeps_the_session_key() {
    run(false);
}

#[test]
fn resent_registration_answered_out_of_order() {
    run(true);
}
