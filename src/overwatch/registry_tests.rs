//! Registry behaviour over time, driven by made-up clocks.

use super::model::*;
use super::precedence::Status;
use super::registry::{Registry, RegistryConfig};
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

fn registry() -> Registry {
    let config: Config = serde_norway::from_str(YAML).unwrap();
    Registry::new(RegistryConfig::from_config(&config))
}

fn report(addr: &str, healthy: bool, draining: bool) -> AgentReport {
    AgentReport {
        service: "APP.gslb.test.".into(),
        address: addr.parse().unwrap(),
        port: 80,
        weight: 100,
        healthy,
        draining,
        drain_reason: draining.then(|| "maintenance".into()),
        last_error: None,
    }
}

fn status(r: &Registry, addr: &str) -> Option<Status> {
    let key = BackendKey::new("app.gslb.test", addr.parse().unwrap(), 80);
    r.effective.get(&key).map(|e| e.status)
}

fn register(r: &mut Registry, id: &str, reports: Vec<AgentReport>, now: u64) {
    let from: SocketAddr = "10.0.0.9:40000".parse().unwrap();
    r.agent_registered(id, "east", from, "fp1", 2_000_000_000, 3000, reports, now);
}

#[test]
fn static_server_waits_for_its_first_check() {
    let mut r = registry();
    r.recompute(0);
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
    r.recompute(1);
    assert_eq!(status(&r, "10.0.0.1"), Some(Status::Healthy));
}

#[test]
fn agent_goes_stale_then_lost_then_returns() {
    let mut r = registry();
    register(&mut r, "a1", vec![report("10.0.0.2", true, false)], 0);
    r.recompute(0);
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Healthy));
    r.agent_heartbeat("a1", 2000);
    r.recompute(4999);
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Healthy));
    assert_eq!(r.next_deadline_ms(), Some(5000));
    r.recompute(5000);
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Stale));
    r.recompute(62_000);
    assert_eq!(status(&r, "10.0.0.2"), None);
    assert!(r.lost.contains_key("a1"));
    register(&mut r, "a1", vec![report("10.0.0.2", true, false)], 70_000);
    r.recompute(70_000);
    assert!(!r.lost.contains_key("a1"));
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Healthy));
}

#[test]
fn graceful_leave_is_immediate_and_not_lost() {
    let mut r = registry();
    register(&mut r, "a1", vec![report("10.0.0.2", true, false)], 0);
    r.agent_left("a1", 100);
    r.recompute(100);
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Draining));
    r.recompute(100_000);
    assert_eq!(status(&r, "10.0.0.2"), None);
    assert!(!r.lost.contains_key("a1"));
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
    r.agent_state("a1", vec![report("10.0.0.2", true, true)], false, 10);
    r.recompute(10);
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Draining));
    assert_eq!(status(&r, "10.0.0.3"), Some(Status::Healthy));
    // A full state without 10.0.0.3 removes it.
    r.agent_state("a1", vec![report("10.0.0.2", true, false)], true, 20);
    r.recompute(20);
    assert_eq!(status(&r, "10.0.0.3"), None);
}

#[test]
fn agent_report_merges_with_static_server() {
    let mut r = registry();
    register(&mut r, "a1", vec![report("10.0.0.1", false, false)], 0);
    r.recompute(0);
    assert_eq!(r.backends.len(), 1);
    assert_eq!(status(&r, "10.0.0.1"), Some(Status::Unhealthy));
    r.agent_left("a1", 1);
    r.recompute(200_000);
    // The static server stays after its agent is gone.
    assert_eq!(r.backends.len(), 1);
}

#[test]
fn override_wins_and_expires() {
    let mut r = registry();
    register(&mut r, "a1", vec![report("10.0.0.2", true, false)], 0);
    let key = BackendKey::new("app.gslb.test", "10.0.0.2".parse().unwrap(), 80);
    r.set_override(Override {
        key: key.clone(),
        healthy: false,
        reason: "test".into(),
        by: "ops".into(),
        at: 0,
        expires_at: Some(2),
    });
    r.agent_heartbeat("a1", 1000);
    r.recompute(1000);
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Unhealthy));
    r.agent_heartbeat("a1", 2000);
    r.recompute(2000);
    assert!(r.overrides.is_empty());
    assert_eq!(status(&r, "10.0.0.2"), Some(Status::Healthy));
}

#[test]
fn rejected_agent_loses_its_backends() {
    let mut r = registry();
    register(&mut r, "a1", vec![report("10.0.0.2", true, false)], 0);
    let from: SocketAddr = "10.0.0.9:40000".parse().unwrap();
    r.agent_rejected(Some("a1"), from, "pin_mismatch", 10);
    r.recompute(10);
    assert_eq!(status(&r, "10.0.0.2"), None);
    assert_eq!(
        r.agents["a1"].reject_reason.as_deref(),
        Some("pin_mismatch")
    );
    assert!(r.forget_agent("a1"));
    assert!(!r.pins.contains_key("a1"));
}

#[test]
fn unknown_service_is_ignored() {
    let mut r = registry();
    let mut bad = report("10.0.0.5", true, false);
    bad.service = "other.test".into();
    register(&mut r, "a1", vec![bad], 0);
    r.recompute(0);
    assert_eq!(r.backends.len(), 1);
}
