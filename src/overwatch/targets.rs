//! Which endpoints the Overwatch checks itself, and with what check.
//!
//! Static servers use their region's `health_check`. Agent-reported
//! backends are validated when `overwatch.validation.enabled`: with the
//! `health_check` of the configured region of the same name if there is
//! one, else a TCP connect, at `validation.check_interval` and
//! `check_timeout`. Backends sharing an endpoint and check share one
//! target, so a server listed under two domains is probed once.

use super::model::BackendKey;
use super::registry::Registry;
use crate::config::{CheckType, HealthCheck};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// One probe the health checker runs, and the backends its verdict feeds.
#[derive(Clone, Debug)]
pub struct CheckPlan {
    pub id: u64,
    pub address: IpAddr,
    pub port: u16,
    pub check: HealthCheck,
    pub backends: Vec<BackendKey>,
}

/// Identity of a probe: endpoint plus everything that changes the probe.
type ProbeKey = (IpAddr, u16, String, String, String, u128, u128, u32, u32);

fn probe_key(address: IpAddr, port: u16, c: &HealthCheck) -> ProbeKey {
    (
        address,
        port,
        format!("{:?}", c.kind),
        c.path.clone(),
        c.host.clone(),
        c.interval.as_millis(),
        c.timeout.as_millis(),
        c.failure_threshold,
        c.success_threshold,
    )
}

/// Stable ids across rebuilds: an unchanged probe keeps its id (and with
/// it the checker's rise/fall state).
#[derive(Default)]
pub struct TargetIds {
    ids: BTreeMap<ProbeKey, u64>,
    next: u64,
}

impl TargetIds {
    fn id_for(&mut self, key: ProbeKey) -> u64 {
        if let Some(id) = self.ids.get(&key) {
            return *id;
        }
        self.next += 1;
        self.ids.insert(key, self.next);
        self.next
    }
}

/// The `host` of the configured server behind a static backend, if set.
fn server_host<'a>(
    cfg: &'a crate::config::Config,
    region: &str,
    key: &BackendKey,
) -> Option<&'a str> {
    cfg.regions
        .iter()
        .filter(|r| r.name == region)
        .flat_map(|r| r.servers.iter())
        .find(|s| {
            s.port == key.port && s.address.trim().parse::<IpAddr>().ok() == Some(key.address)
        })
        .map(|s| s.host.as_str())
        .filter(|h| !h.is_empty())
}

pub fn plan(reg: &Registry, ids: &mut TargetIds) -> Vec<CheckPlan> {
    let cfg = &reg.cfg().config;
    let region_check = |name: &str| -> Option<&HealthCheck> {
        cfg.regions
            .iter()
            .find(|r| r.name == name)
            .map(|r| &r.health_check)
    };
    let mut plans: BTreeMap<ProbeKey, CheckPlan> = BTreeMap::new();
    for b in reg.backends().values() {
        if !reg.is_validated(b) {
            continue;
        }
        let check = if b.static_order.is_some() {
            let mut c = region_check(&b.region).cloned().unwrap_or_default();
            // `regions[].servers[].host` (v1.1) overrides the region's.
            if let Some(host) = server_host(cfg, &b.region, &b.key) {
                c.host = host.to_string();
            }
            c
        } else {
            let mut c = region_check(&b.region).cloned().unwrap_or(HealthCheck {
                kind: CheckType::Tcp,
                ..HealthCheck::default()
            });
            c.interval = cfg.overwatch.validation.check_interval;
            c.timeout = cfg.overwatch.validation.check_timeout;
            c
        };
        let key = probe_key(b.key.address, b.key.port, &check);
        plans
            .entry(key)
            .or_insert_with(|| CheckPlan {
                id: 0,
                address: b.key.address,
                port: b.key.port,
                check,
                backends: Vec::new(),
            })
            .backends
            .push(b.key.clone());
    }
    let mut out: Vec<CheckPlan> = Vec::with_capacity(plans.len());
    let keep: Vec<ProbeKey> = plans.keys().cloned().collect();
    for (key, mut p) in plans {
        p.id = ids.id_for(key);
        out.push(p);
    }
    ids.ids.retain(|k, _| keep.contains(k));
    out
}
