//! The drain guard through the publisher: a fleet-wide predictive drain
//! keeps the name answering, the API says `drain_guard`, a deliberate
//! drain still empties it, and incremental publishing equals a full one.

use super::super::model::*;
use super::super::registry::{Registry, RegistryConfig};
use super::{Publisher, ViewInputs};
use crate::api::view::{BackendStatus, OverwatchView};
use crate::clock::Now;
use crate::config::Config;
use std::net::SocketAddr;

const YAML: &str = r#"
dns: { zones: [gslb.test], return_last_healthy: false }
regions: [{ name: east, servers: [] }]
domains:
  - { name: a.gslb.test, regions: [east], min_healthy: "50%" }
  - { name: b.gslb.test, regions: [east] }
"#;

fn t(ms: u64) -> Now {
    Now::at(ms, 1_700_000_000_000 + ms)
}

fn report(service: &str, host: u8, healthy: bool, reason: Option<&str>) -> BackendReport {
    BackendReport {
        key: BackendKey::new(service, format!("10.0.2.{host}").parse().unwrap(), 80),
        weight: 100,
        healthy,
        draining: reason.is_some(),
        drain_reason: reason.map(str::to_string),
        last_error: None,
    }
}

fn fleet(reason: Option<&str>) -> Vec<BackendReport> {
    vec![
        report("a.gslb.test", 1, true, reason),
        report("b.gslb.test", 1, true, reason),
    ]
}

fn view(p: &Publisher, r: &Registry) -> OverwatchView {
    let inputs = ViewInputs {
        node_id: "ow",
        now_secs: 1,
        ready: true,
        audit: &[],
    };
    p.view(r, &inputs)
}

fn answers(p: &Publisher, name: &str) -> usize {
    let spec = p.table_spec(1);
    spec.domains
        .iter()
        .find(|d| d.name == name)
        .unwrap()
        .targets
        .len()
}

fn step(p: &mut Publisher, r: &mut Registry, now: Now) {
    r.recompute(now);
    let changes = r.take_changes();
    p.update(r, &changes);
    let full = Publisher::full(r);
    assert_eq!(
        format!("{:?}", p.table_spec(1).domains),
        format!("{:?}", full.table_spec(1).domains),
        "incremental equals full"
    );
    let (mut a, b) = (view(p, r), view(&full, r));
    // Activations count history, which a fresh publisher has not seen.
    let strip = |v: &mut OverwatchView| {
        for d in &mut v.domains {
            std::sync::Arc::make_mut(d).drain_guard_activations = 0;
        }
    };
    strip(&mut a);
    let mut b = b;
    strip(&mut b);
    assert_eq!(a.backends, b.backends);
    assert_eq!(a.domains, b.domains);
}

#[test]
fn a_fleet_wide_predictive_drain_keeps_the_guarded_name_answering() {
    let config: Config = serde_norway::from_str(YAML).unwrap();
    let mut r = Registry::new(RegistryConfig::from_config(&config));
    let mut p = Publisher::default();
    let from: SocketAddr = "10.0.0.9:40000".parse().unwrap();
    for (i, id) in ["w1", "w2"].iter().enumerate() {
        let reports = vec![
            report("a.gslb.test", i as u8 + 1, true, None),
            report("b.gslb.test", i as u8 + 1, true, None),
        ];
        r.agent_registered(id, "east", from, "fp", 2_000_000_000, 3000, reports, t(0));
    }
    step(&mut p, &mut r, t(0));
    assert_eq!(answers(&p, "a.gslb.test"), 2);

    // A CPU spike everywhere: both agents drain predictively.
    let cpu = Some("predictive: cpu above 90%");
    for (i, id) in ["w1", "w2"].iter().enumerate() {
        let mut reports = fleet(cpu);
        for rep in &mut reports {
            rep.key.address = format!("10.0.2.{}", i + 1).parse().unwrap();
        }
        r.agent_state(id, reports, true, t(10));
    }
    step(&mut p, &mut r, t(10));
    assert_eq!(
        answers(&p, "a.gslb.test"),
        2,
        "guarded name keeps its backends"
    );
    assert_eq!(answers(&p, "b.gslb.test"), 0, "unguarded name drains");
    let v = view(&p, &r);
    let a: Vec<_> = v
        .backends
        .iter()
        .filter(|b| b.service == "a.gslb.test")
        .collect();
    assert!(a.iter().all(|b| b.status_reason == "drain_guard"));
    assert!(
        a.iter()
            .all(|b| b.effective_status == BackendStatus::Healthy)
    );
    let d = v.domains.iter().find(|d| d.name == "a.gslb.test").unwrap();
    assert!(d.drain_guard_active);
    assert_eq!(d.drain_guard_activations, 1);
    assert_eq!(d.min_healthy.as_deref(), Some("50%"));

    // A deliberate drain (drain file) on w1 counts: only w2 stays held in.
    let mut reports = fleet(Some("maintenance"));
    for rep in &mut reports {
        rep.key.address = "10.0.2.1".parse().unwrap();
    }
    r.agent_state("w1", reports, true, t(20));
    step(&mut p, &mut r, t(20));
    assert_eq!(answers(&p, "a.gslb.test"), 1);

    // Signals clear: the guard turns off, verdicts apply again.
    for (i, id) in ["w1", "w2"].iter().enumerate() {
        let mut reports = fleet(None);
        for rep in &mut reports {
            rep.key.address = format!("10.0.2.{}", i + 1).parse().unwrap();
        }
        r.agent_state(id, reports, true, t(30));
    }
    step(&mut p, &mut r, t(30));
    let v = view(&p, &r);
    let d = v.domains.iter().find(|d| d.name == "a.gslb.test").unwrap();
    assert!(!d.drain_guard_active);
    assert_eq!(d.drain_guard_activations, 1);
    assert!(
        v.backends
            .iter()
            .all(|b| b.status_reason == "agent_healthy")
    );
}
