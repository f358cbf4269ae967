//! Registry behaviour over time, driven by made-up clocks.

use super::super::model::*;
use super::super::precedence::Status;
use super::{Registry, RegistryConfig};
use crate::clock::{Mono, Now};
use crate::config::Config;
use std::net::SocketAddr;

const YAML: &str = r#"
dns: { zones: [gslb.test] }
overwatch: { validation: { enabled: false }, stale: { remove_after: 60s } }
regions:
  - name: east
    servers:
      - { address: 10.0.0.1, port: 80, service: app.gslb.test }
domains:
  - { name: app.gslb.test, regions: [east] }
"#;

/// Wall-clock unix seconds at monotonic 0 in these tests.
const WALL0_SECS: u64 = 1_700_000_000;

/// A reading `ms` after the start, the wall clock in step with the monotonic one.
fn t(ms: u64) -> Now {
    Now::at(ms, WALL0_SECS * 1000 + ms)
}

fn registry() -> Registry {
    let config: Config = serde_norway::from_str(YAML).unwrap();
    Registry::new(RegistryConfig::from_config(&config))
}

fn report(addr: &str, healthy: bool, draining: bool) -> BackendReport {
    BackendReport {
        key: BackendKey::new("APP.gslb.test.", addr.parse().unwrap(), 80),
        weight: 100,
        healthy,
        draining,
        drain_reason: draining.then(|| "maintenance".into()),
        last_error: None,
    }
}

fn status(r: &Registry, addr: &str) -> Option<Status> {
    let key = BackendKey::new("app.gslb.test", addr.parse().unwrap(), 80);
    r.effective(&key).map(|e| e.status)
}

fn register(r: &mut Registry, id: &str, reports: Vec<BackendReport>, now: u64) {
    let now = t(now);
    let from: SocketAddr = "10.0.0.9:40000".parse().unwrap();
    r.agent_registered(id, "east", from, "fp1", 2_000_000_000, 3000, reports, now);
}

#[test]
fn static_server_waits_for_its_first_check() {
    let mut r = registry();
    r.recompute(t(0));
    assert_eq!(status(&r, "10.0.0.1"), Some(Status::Unhealthy));
    let key = BackendKey::new("app.gslb.test", "10.0.0.1".parse().unwrap(), 80);
    r.validation_result(
        &[key],
        Verdict {
            healthy: true,
            last_check_ms: 1,
            error: None,
        },
    );
    r.recompute(t(1));
    assert_eq!(status(&r, "10.0.0.1"), Some(Status::Healthy));
}

#[test]
fn agent_goes_stale_then_lost_then_returns() {
    let mut r = registry();
    register(&mut r, "a1", vec![report("10.0.0.2", true, false)], 0);
    r.recompute(t(0));
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Healthy));
    r.agent_heartbeat("a1", t(2000));
    r.recompute(t(4999));
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Healthy));
    assert_eq!(r.next_deadline(), Some(Mono(5000)));
    r.recompute(t(5000));
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Stale));
    r.recompute(t(62_000));
    assert_eq!(status(&r, "10.0.0.2"), None);
    assert!(r.lost().contains_key("a1"));
    register(&mut r, "a1", vec![report("10.0.0.2", true, false)], 70_000);
    r.recompute(t(70_000));
    assert!(!r.lost().contains_key("a1"));
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Healthy));
}

#[test]
fn graceful_leave_is_immediate_and_not_lost() {
    let mut r = registry();
    register(&mut r, "a1", vec![report("10.0.0.2", true, false)], 0);
    r.agent_left("a1", t(100));
    r.recompute(t(100));
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Draining));
    r.recompute(t(100_000));
    assert_eq!(status(&r, "10.0.0.2"), None);
    assert!(!r.lost().contains_key("a1"));
}

#[test]
fn drain_and_delta_updates() {
    let mut r = registry();
    register(
        &mut r,
        "a1",
        vec![
            report("10.0.0.2", true, false),
            report("10.0.0.3", true, false),
        ],
        0,
    );
    r.agent_state("a1", vec![report("10.0.0.2", true, true)], false, t(10));
    r.recompute(t(10));
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Draining));
    assert_eq!(status(&r, "10.0.0.3"), Some(Status::Healthy));
    // A full state without 10.0.0.3 removes it.
    r.agent_state("a1", vec![report("10.0.0.2", true, false)], true, t(20));
    r.recompute(t(20));
    assert_eq!(status(&r, "10.0.0.3"), None);
}

#[test]
fn agent_report_merges_with_static_server() {
    let mut r = registry();
    register(&mut r, "a1", vec![report("10.0.0.1", false, false)], 0);
    r.recompute(t(0));
    assert_eq!(r.backends().len(), 1);
    assert_eq!(status(&r, "10.0.0.1"), Some(Status::Unhealthy));
    r.agent_left("a1", t(1));
    r.recompute(t(200_000));
    // The static server stays after its agent is gone.
    assert_eq!(r.backends().len(), 1);
}

#[test]
fn override_wins_and_expires() {
    let mut r = registry();
    register(&mut r, "a1", vec![report("10.0.0.2", true, false)], 0);
    let key = BackendKey::new("app.gslb.test", "10.0.0.2".parse().unwrap(), 80);
    r.set_override(
        Override {
            key: key.clone(),
            healthy: false,
            reason: "test".into(),
            by: "ops".into(),
            at: WALL0_SECS,
            expires_at: Some(WALL0_SECS + 2),
        },
        t(0),
    );
    r.agent_heartbeat("a1", t(1000));
    r.recompute(t(1000));
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Unhealthy));
    r.agent_heartbeat("a1", t(2000));
    r.recompute(t(2000));
    assert!(r.overrides().is_empty());
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Healthy));
}

#[test]
fn rejected_agent_loses_its_backends() {
    let mut r = registry();
    register(&mut r, "a1", vec![report("10.0.0.2", true, false)], 0);
    let from: SocketAddr = "10.0.0.9:40000".parse().unwrap();
    r.agent_rejected(Some("a1"), from, "pin_mismatch", t(10));
    r.recompute(t(10));
    assert_eq!(status(&r, "10.0.0.2"), None);
    assert_eq!(
        r.agents()["a1"].reject_reason.as_deref(),
        Some("pin_mismatch")
    );
    assert!(r.forget_agent("a1"));
    assert!(!r.pins().contains_key("a1"));
}

#[test]
fn unknown_service_is_ignored() {
    let mut r = registry();
    let mut bad = report("10.0.0.5", true, false);
    bad.key = BackendKey::new("other.test", bad.key.address, bad.key.port);
    register(&mut r, "a1", vec![bad], 0);
    r.recompute(t(0));
    assert_eq!(r.backends().len(), 1);
}

/// Issue 9: the wall clock steps back and forward an hour while agents
/// heartbeat every second and an override runs. Staleness follows the
/// monotonic clock only, and the override ends exactly its given time
/// after it was set (its `expires_at` is the wall time at setting plus
/// that time), whichever way the wall clock moved meanwhile.
#[test]
fn wall_clock_steps_neither_stale_agents_nor_move_override_expiry() {
    const HOUR_MS: u64 = 3_600_000;
    for step in [-1i64, 1] {
        let mut r = registry();
        let wall = |mono: u64, stepped: bool| {
            let base = WALL0_SECS * 1000 + mono;
            match (stepped, step) {
                (false, _) => base,
                (true, -1) => base - HOUR_MS,
                (true, _) => base + HOUR_MS,
            }
        };
        let at = |mono: u64| Now::at(mono, wall(mono, mono >= 10_000));
        let now = at(0);
        register(&mut r, "a1", vec![report("10.0.0.2", true, false)], 0);
        let key = BackendKey::new("app.gslb.test", "10.0.0.2".parse().unwrap(), 80);
        r.set_override(
            Override {
                key: key.clone(),
                healthy: false,
                reason: "maintenance".into(),
                by: "ops".into(),
                at: now.wall_secs(),
                expires_at: Some(now.wall_secs() + 30),
            },
            now,
        );
        // Heartbeats every second across the step at 10 s.
        for s in 1..=29u64 {
            r.agent_heartbeat("a1", at(s * 1000));
            r.recompute(at(s * 1000));
            assert_eq!(
                r.agents()["a1"].status,
                AgentStatus::Active,
                "step {step} at {s} s"
            );
            assert_eq!(
                status(&r, "10.0.0.2"),
                Some(Status::Unhealthy),
                "override still on at {s} s"
            );
        }
        assert_eq!(r.next_deadline(), Some(Mono(30_000)));
        r.recompute(at(29_999));
        assert!(r.overrides().contains_key(&key));
        r.agent_heartbeat("a1", at(30_000));
        r.recompute(at(30_000));
        assert!(
            r.overrides().is_empty(),
            "step {step}: expired 30 s after it was set"
        );
        assert_eq!(status(&r, "10.0.0.2"), Some(Status::Healthy));
        // Operators see the wall time of the last message, stepped or not.
        assert_eq!(r.agents()["a1"].last_seen_wall_ms, wall(30_000, true));
    }
}

/// An override restored after a restart keeps its wall-clock end: the time
/// left is `expires_at` minus the wall time at the restart.
#[test]
fn restored_override_keeps_its_wall_expiry() {
    let mut r = registry();
    let key = BackendKey::new("app.gslb.test", "10.0.0.1".parse().unwrap(), 80);
    let state = crate::overwatch::persisted::PersistedState {
        overrides: vec![Override {
            key: key.clone(),
            healthy: true,
            reason: "r".into(),
            by: "ops".into(),
            at: WALL0_SECS - 100,
            expires_at: Some(WALL0_SECS + 20),
        }],
        ..Default::default()
    };
    // Restarted at monotonic 5 s, wall WALL0: 20 s left.
    crate::overwatch::persisted::restore(&mut r, state, Now::at(5_000, WALL0_SECS * 1000));
    assert_eq!(r.next_deadline(), Some(Mono(25_000)));
    r.recompute(Now::at(24_999, WALL0_SECS * 1000 + 19_999));
    assert_eq!(status(&r, "10.0.0.1"), Some(Status::Healthy));
    r.recompute(Now::at(25_000, WALL0_SECS * 1000 + 20_000));
    assert!(r.overrides().is_empty());
}

/// While the owner is behind on its input, the heartbeats that keep an
/// agent fresh may still be queued: nobody goes stale until it caught up.
#[test]
fn no_agent_goes_stale_while_heartbeats_may_be_queued() {
    let mut r = registry();
    register(&mut r, "a1", vec![report("10.0.0.2", true, false)], 0);
    r.recompute(t(0));
    r.recompute_behind(t(10_000));
    assert_eq!(r.agents()["a1"].status, AgentStatus::Active);
    // The queued heartbeat arrives; caught up, the agent is fresh.
    r.agent_heartbeat("a1", t(10_000));
    r.recompute(t(10_000));
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Healthy));
    r.recompute(t(13_000));
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Stale));
}

/// `return_last_healthy` serves the set a domain had just before it lost
/// its last healthy backend, even when several went in one batch.
#[test]
fn last_healthy_is_the_set_before_the_domain_went_empty() {
    let mut r = registry();
    let two = vec![
        report("10.0.0.2", true, false),
        report("10.0.0.3", true, false),
    ];
    register(&mut r, "a1", two, 0);
    r.recompute(t(0));
    r.agent_state("a1", vec![report("10.0.0.2", false, false)], false, t(10));
    r.agent_state("a1", vec![report("10.0.0.3", false, false)], false, t(10));
    r.recompute(t(10));
    let keys: Vec<String> = r
        .last_healthy("app.gslb.test")
        .unwrap_or_default()
        .iter()
        .map(|k| k.address.to_string())
        .collect();
    assert_eq!(keys, ["10.0.0.2", "10.0.0.3"]);
    // A healthy backend again, then gone with its agent: that one is the
    // last healthy set now.
    r.agent_state("a1", vec![report("10.0.0.3", true, false)], false, t(20));
    r.recompute(t(20));
    r.agent_removed(
        "a1",
        &[BackendKey::new(
            "app.gslb.test",
            "10.0.0.3".parse().unwrap(),
            80,
        )],
    );
    r.recompute(t(30));
    let keys: Vec<String> = r
        .last_healthy("app.gslb.test")
        .unwrap_or_default()
        .iter()
        .map(|k| k.address.to_string())
        .collect();
    assert_eq!(keys, ["10.0.0.3"]);
}

/// Issue 11 item 5: two agents claim one backend; one stops gracefully.
/// The other's claim keeps it healthy, and removing the stopped one
/// leaves the backend in place.
#[test]
fn two_claimants_one_leaves_the_other_keeps_the_backend() {
    let mut r = registry();
    register(&mut r, "a1", vec![report("10.0.0.2", true, false)], 0);
    register(&mut r, "a2", vec![report("10.0.0.2", true, false)], 0);
    r.recompute(t(0));
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Healthy));
    r.agent_left("a1", t(100));
    r.recompute(t(100));
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Healthy));
    // a1 is removed after remove_after (60 s) while a2 keeps heartbeating.
    for ms in (1000..=70_000).step_by(1000) {
        r.agent_heartbeat("a2", t(ms));
        r.recompute(t(ms));
    }
    assert!(!r.agents().contains_key("a1"));
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Healthy));
    let key = BackendKey::new("app.gslb.test", "10.0.0.2".parse().unwrap(), 80);
    let b = &r.backends()[&key];
    assert_eq!(b.claims.len(), 1);
    assert_eq!(r.deciding_claim(b).unwrap().agent_id, "a2");
    // The last claimant leaves: out of DNS at once.
    r.agent_left("a2", t(70_100));
    r.recompute(t(70_100));
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Draining));
}

#[test]
fn any_fresh_drain_drains_a_shared_backend() {
    let mut r = registry();
    register(&mut r, "a1", vec![report("10.0.0.2", true, false)], 0);
    register(&mut r, "a2", vec![report("10.0.0.2", true, false)], 0);
    r.agent_state("a1", vec![report("10.0.0.2", true, true)], false, t(10));
    r.recompute(t(10));
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Draining));
    r.agent_state("a1", vec![report("10.0.0.2", true, false)], false, t(20));
    r.recompute(t(20));
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Healthy));
}

#[test]
fn healthy_while_any_fresh_claim_is_healthy_and_stale_claims_do_not_count() {
    let mut r = registry();
    register(&mut r, "a1", vec![report("10.0.0.2", false, false)], 0);
    register(&mut r, "a2", vec![report("10.0.0.2", true, false)], 0);
    r.recompute(t(0));
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Healthy));
    // a2 goes silent: only a1's fresh "unhealthy" counts now.
    for ms in (1000..=4000).step_by(1000) {
        r.agent_heartbeat("a1", t(ms));
        r.recompute(t(ms));
    }
    assert_eq!(r.agents()["a2"].status, AgentStatus::Stale);
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Unhealthy));
    // a2 is removed (withdrawing its claim); the backend stays with a1's.
    for ms in (5000..=65_000).step_by(1000) {
        r.agent_heartbeat("a1", t(ms));
        r.recompute(t(ms));
    }
    assert!(!r.agents().contains_key("a2"));
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Unhealthy));
    // A rejected claimant withdraws only its own claim too.
    register(&mut r, "a3", vec![report("10.0.0.2", true, false)], 66_000);
    r.recompute(t(66_000));
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Healthy));
    let from: SocketAddr = "10.0.0.9:40000".parse().unwrap();
    r.agent_rejected(Some("a1"), from, "pin_mismatch", t(66_100));
    r.recompute(t(66_100));
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Healthy));
}

/// Issue 11 item 4: an agent is lost from the moment it turns stale, stays
/// lost past remove_after, and is no longer lost when it comes back; a
/// graceful leave is never lost; forgetting it ends the listing.
#[test]
fn an_agent_is_lost_from_the_moment_it_is_stale() {
    let mut r = registry();
    register(&mut r, "a1", vec![report("10.0.0.2", true, false)], 0);
    register(&mut r, "a2", vec![report("10.0.0.3", true, false)], 0);
    r.recompute(t(0));
    r.take_changes();
    r.recompute(t(2999));
    assert!(r.lost().is_empty());
    r.recompute(t(3000));
    assert_eq!(r.agents()["a1"].status, AgentStatus::Stale);
    let lost = &r.lost()["a1"];
    assert_eq!(lost.ip, "10.0.0.9");
    assert_eq!(lost.service, "app.gslb.test");
    assert_eq!(lost.region, "east");
    assert_eq!(lost.last_heartbeat, WALL0_SECS);
    assert!(r.changes().lost && r.persist_dirty());
    // Back by a heartbeat: no longer lost.
    r.agent_heartbeat("a1", t(3500));
    r.recompute(t(3500));
    assert!(!r.lost().contains_key("a1"));
    // Both fall silent; past remove_after they are gone but still lost.
    r.recompute(t(70_000));
    assert!(!r.agents().contains_key("a2"));
    assert!(r.lost().contains_key("a2"));
    assert!(r.forget_agent("a2"));
    assert_eq!(r.lost().keys().collect::<Vec<_>>(), ["a1"]);
    register(&mut r, "a1", vec![report("10.0.0.2", true, false)], 71_000);
    assert!(r.lost().is_empty());
    // Stale, then a graceful leave: it reached us, so it is not lost.
    r.recompute(t(80_000));
    assert!(r.lost().contains_key("a1"));
    r.agent_left("a1", t(80_001));
    assert!(r.lost().is_empty());
    r.recompute(t(200_000));
    assert!(r.lost().is_empty());
}

/// Issue 9 (restart): a registration does not start a plain stale window.
/// The agent heartbeats one interval after our answer reaches it, so until
/// its first heartbeat it has the threshold plus a grace (ingest gives a
/// whole stale window; 1 s here); after that heartbeat the threshold alone
/// counts again.
#[test]
fn a_fresh_registration_gets_a_grace_until_its_first_heartbeat() {
    let mut r = registry();
    register(&mut r, "a1", vec![report("10.0.0.2", true, false)], 0);
    r.expect_first_heartbeat("a1", 1000);
    r.recompute(t(0));
    r.recompute(t(3000));
    assert_eq!(
        status(&r, "10.0.0.2"),
        Some(Status::Healthy),
        "3 s after registering, before the first heartbeat could arrive"
    );
    r.recompute(t(3999));
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Healthy));
    assert_eq!(r.next_deadline(), Some(Mono(4000)));
    r.recompute(t(4000));
    assert_eq!(
        status(&r, "10.0.0.2"),
        Some(Status::Stale),
        "never heard of again"
    );

    // After the first heartbeat the grace is gone.
    register(&mut r, "a1", vec![report("10.0.0.2", true, false)], 10_000);
    r.expect_first_heartbeat("a1", 1000);
    r.agent_heartbeat("a1", t(11_000));
    r.recompute(t(13_999));
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Healthy));
    r.recompute(t(14_000));
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Stale));
}
