//! The client loop against a real listener on loopback.

use super::client::*;
use crate::clock::Now;
use crate::gossip::Keyring;
use crate::gossip::Policy;
use crate::gossip::agent::resolve::ResolveFn;
use crate::gossip::identity::Identity;
use crate::gossip::overwatch::{OverwatchEvent, server};
use crate::snapshot::SnapshotCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// Regression (issue 9, bug 4): node names were resolved with the
/// blocking resolver inside the poll loop, so one lookup that hung
/// stalled heartbeats to every node. Here the lookup of the first
/// node never returns while the test runs; the second node, an IP
/// literal, must still register and get heartbeats.
#[test]
fn a_hanging_lookup_does_not_stall_heartbeats_to_other_nodes() {
    let policy = Policy {
        keyring: Keyring::from_raw(&[[3; 32]]),
        agent_tokens: BTreeMap::from([("app.example.com".to_string(), "tok".to_string())]),
        known_services: BTreeSet::from(["app.example.com".to_string()]),
        ..Policy::default()
    };
    let (etx, erx) = crossbeam_channel::unbounded();
    let cell = Arc::new(SnapshotCell::new(policy));
    let mut srv = server::start("127.0.0.1:0".parse().expect("addr"), cell, etx).expect("server");
    let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
    let (asked_tx, asked_rx) = crossbeam_channel::unbounded::<String>();
    let hang: ResolveFn = Arc::new(move |name: &str| {
        let _ = asked_tx.send(name.to_string());
        // blocks until the test ends (the sender is dropped)
        let _ = gate_rx.recv();
        Err(io::Error::other("gave up"))
    });
    let now = Now::read();
    let cfg = ClientConfig {
        nodes: vec![
            "overwatch-slow.invalid:7946".into(),
            format!("127.0.0.1:{}", srv.local_addr().port()),
        ],
        identity: Arc::new(Identity::generate("eu-a", now.wall_secs(), 86_400).expect("id")),
        keyring: Keyring::from_raw(&[[3; 32]]),
        token: "tok".into(),
        region: "eu".into(),
        agent_id: "eu-a".into(),
        heartbeat_interval: Duration::from_millis(50),
        missed_threshold: 3,
        time_window_ms: 60_000,
    };
    let (atx, _arx) = crossbeam_channel::unbounded();
    let mut cl = start_with_resolver(cfg, atx, hang).expect("client");
    let asked = asked_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the slow name went to the resolver");
    assert_eq!(asked, "overwatch-slow.invalid:7946");
    // Count heartbeats from the literal node while the lookup hangs.
    let mut heartbeats = 0;
    while heartbeats < 5 {
        match erx.recv_timeout(Duration::from_secs(10)) {
            Ok(OverwatchEvent::Heartbeat { .. }) => heartbeats += 1,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert_eq!(heartbeats, 5, "heartbeats stalled behind the lookup");
    assert!(cl.alive());
    let status = cl.node_status();
    assert!(status[1].1.connected, "{status:?}");
    assert!(!status[0].1.connected);
    cl.stop();
    srv.stop();
    drop(gate_tx);
}
