//! Incremental publishing: what one change rebuilds, and that the
//! incrementally published snapshots always equal a full rebuild.

use super::super::model::*;
use super::super::registry::{Registry, RegistryConfig};
use super::{Publisher, ViewInputs};
use crate::api::view::OverwatchView;
use crate::clock::Now;
use crate::config::Config;
use std::net::SocketAddr;

const YAML: &str = r#"
dns: { zones: [gslb.test], return_last_healthy: false }
overwatch: { validation: { enabled: true }, stale: { remove_after: 20s } }
regions:
  - name: east
    servers:
      - { address: 10.0.0.1, port: 80, service: a.gslb.test }
      - { address: 10.0.0.2, port: 80, service: b.gslb.test }
  - name: west
    servers:
      - { address: 10.0.1.1, port: 80 }
domains:
  - { name: a.gslb.test, regions: [east, west], return_last_healthy: true }
  - { name: b.gslb.test, regions: [west, east] }
  - { name: c.gslb.test, regions: [west], routing_algorithm: failover }
"#;

const SERVICES: [&str; 3] = ["a.gslb.test", "b.gslb.test", "c.gslb.test"];
const WALL0_MS: u64 = 1_700_000_000_000;

fn t(ms: u64) -> Now {
    Now::at(ms, WALL0_MS + ms)
}

fn registry() -> Registry {
    let config: Config = serde_norway::from_str(YAML).unwrap();
    Registry::new(RegistryConfig::from_config(&config))
}

fn key(service: &str, host: u8) -> BackendKey {
    BackendKey::new(service, format!("10.0.2.{host}").parse().unwrap(), 80)
}

fn report(service: &str, host: u8, healthy: bool, draining: bool, weight: u32) -> BackendReport {
    BackendReport {
        key: key(service, host),
        weight,
        healthy,
        draining,
        drain_reason: draining.then(|| "maintenance".into()),
        last_error: None,
    }
}

fn register(r: &mut Registry, id: &str, reports: Vec<BackendReport>, now: Now) {
    let from: SocketAddr = "10.0.0.9:40000".parse().unwrap();
    r.agent_registered(id, "east", from, "fp", 2_000_000_000, 3000, reports, now);
}

fn view(p: &Publisher, r: &Registry) -> OverwatchView {
    p.view(
        r,
        &ViewInputs {
            node_id: "ow",
            now_secs: 1,
            ready: true,
            audit: &[],
        },
    )
}

/// What the runtime does after a batch: decide, then publish the changes.
fn publish(p: &mut Publisher, r: &mut Registry, now: Now) -> bool {
    r.recompute(now);
    let changes = r.take_changes();
    p.update(r, &changes)
}

fn verdict(healthy: bool, at: u64) -> Verdict {
    Verdict {
        healthy,
        last_check_ms: at,
        error: (!healthy).then(|| "refused".into()),
    }
}

#[test]
fn one_backend_change_rebuilds_its_entry_and_its_domain_only() {
    let mut r = registry();
    let mut p = Publisher::default();
    for (i, id) in ["a1", "a2", "a3"].iter().enumerate() {
        let reports = SERVICES
            .iter()
            .map(|s| report(s, i as u8 + 10, true, false, 100))
            .collect();
        register(&mut r, id, reports, t(0));
    }
    publish(&mut p, &mut r, t(0));
    let before = p.rebuilt();

    // An override on one backend: its entry and its domain.
    r.set_override(
        Override {
            key: key("b.gslb.test", 11),
            healthy: false,
            reason: "test".into(),
            by: "ops".into(),
            at: WALL0_MS / 1000,
            expires_at: None,
        },
        t(10),
    );
    assert!(publish(&mut p, &mut r, t(10)), "DNS changed");
    let after = p.rebuilt();
    assert_eq!(after.domains - before.domains, 1);
    assert_eq!(after.backends - before.backends, 1);
    assert_eq!(after.agents, before.agents);

    // Heartbeats rebuild no domain (DNS does not change) and no view
    // entry either: the last-seen time is a cell the entries of the agent
    // and of its backends share, read when the API renders.
    let shown = view(&p, &r);
    r.agent_heartbeat("a1", t(1000));
    r.agent_heartbeat("a2", t(1000));
    assert!(!r.changes().visible());
    assert!(!publish(&mut p, &mut r, t(1000)), "DNS unchanged");
    let hb = p.rebuilt();
    assert_eq!(hb.domains, after.domains);
    assert_eq!(hb.agents, after.agents);
    assert_eq!(hb.backends, after.backends);
    let secs = (WALL0_MS + 1000) / 1000;
    let a1 = shown.agents.iter().find(|a| a.id == "a1").expect("a1");
    assert_eq!(a1.last_seen.get(), Some(secs), "the published entry moved");
    let moved = shown
        .backends
        .iter()
        .filter(|b| b.agent_last_seen.get() == Some(secs))
        .count();
    assert_eq!(moved, 6, "so did the entries of their backends");

    // A check that only moves the last-check time: its entry, no domain.
    r.validation_result(&[key("a.gslb.test", 12)], verdict(true, 5));
    publish(&mut p, &mut r, t(1000));
    let first = p.rebuilt();
    r.validation_result(&[key("a.gslb.test", 12)], verdict(true, 6));
    assert!(!r.changes().visible());
    assert!(!publish(&mut p, &mut r, t(1000)));
    assert_eq!(p.rebuilt().domains, first.domains);
    assert_eq!(p.rebuilt().backends - first.backends, 1);
    assert_eq!(view(&p, &r), view(&Publisher::full(&r), &r));
}

/// A tiny seeded generator, so a failing sequence replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

fn random_reports(rng: &mut Rng) -> Vec<BackendReport> {
    (0..rng.below(4))
        .map(|_| {
            report(
                SERVICES[rng.below(3) as usize],
                rng.below(6) as u8 + 10,
                rng.below(4) != 0,
                rng.below(5) == 0,
                [50, 100][rng.below(2) as usize],
            )
        })
        .collect()
}

fn random_event(r: &mut Registry, rng: &mut Rng, now: Now) {
    let id = format!("a{}", rng.below(5));
    let from: SocketAddr = "10.0.0.9:40000".parse().unwrap();
    match rng.below(12) {
        0 | 1 => register(r, &id, random_reports(rng), now),
        2 => {
            let full = rng.coin();
            r.agent_state(&id, random_reports(rng), full, now)
        }
        3 => {
            let gone = key(SERVICES[rng.below(3) as usize], rng.below(6) as u8 + 10);
            r.agent_removed(&id, &[gone]);
        }
        4 | 5 => r.agent_heartbeat(&id, now),
        6 => r.agent_left(&id, now),
        7 => r.agent_rejected(Some(&id), from, "pin_mismatch", now),
        8 => {
            let k = key(SERVICES[rng.below(3) as usize], rng.below(6) as u8 + 10);
            if rng.coin() {
                r.set_override(
                    Override {
                        key: k,
                        healthy: rng.coin(),
                        reason: "r".into(),
                        by: "ops".into(),
                        at: now.wall_secs(),
                        expires_at: rng.coin().then(|| now.wall_secs() + rng.below(20)),
                    },
                    now,
                );
            } else {
                r.clear_override(&k);
            }
        }
        9 => {
            let k = if rng.coin() {
                BackendKey::new("a.gslb.test", "10.0.0.1".parse().unwrap(), 80)
            } else {
                key(SERVICES[rng.below(3) as usize], rng.below(6) as u8 + 10)
            };
            r.validation_result(&[k], verdict(rng.below(3) != 0, now.wall_ms));
        }
        10 => {
            if rng.coin() {
                r.forget_agent(&id);
            } else {
                r.revoke_agent(Revocation {
                    agent_id: id,
                    reason: "r".into(),
                    by: "ops".into(),
                    at: now.wall_secs(),
                });
            }
        }
        _ => {
            if rng.below(10) == 0 {
                let config: Config = serde_norway::from_str(YAML).unwrap();
                r.reconfigure(RegistryConfig::from_config(&config), now);
            }
        }
    }
}

#[test]
fn incremental_snapshots_always_equal_a_full_rebuild() {
    for seed in 1..=20u64 {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let mut r = registry();
        let mut p = Publisher::default();
        let mut ms = 0u64;
        for step in 0..400 {
            // Up to 3 s between events: agents go stale and get removed.
            ms += rng.below(3000);
            let now = t(ms);
            for _ in 0..=rng.below(3) {
                random_event(&mut r, &mut rng, now);
            }
            publish(&mut p, &mut r, now);
            let full = Publisher::full(&r);
            assert_eq!(
                view(&p, &r),
                view(&full, &r),
                "seed {seed} step {step}: view"
            );
            assert_eq!(
                format!("{:?}", p.table_spec(1)),
                format!("{:?}", full.table_spec(1)),
                "seed {seed} step {step}: DNS spec"
            );
        }
    }
}
