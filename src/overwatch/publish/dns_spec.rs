//! From registry to DNS: one domain's `DomainSpec` and the zones.
//!
//! A domain's targets are its healthy backends in priority order: the
//! order of `domains[].regions` (backends of unlisted regions last), then
//! the configured order of static servers, then address and port for
//! agent-reported ones. `failover` serves the first of that list, so the
//! primary returns automatically when it is healthy again. Each domain is
//! built from its own backends only, so the publisher rebuilds just the
//! domains that changed.

use super::super::model::{BackendKey, normalize_name};
use super::super::precedence::Status;
use super::super::registry::Registry;
use crate::config::{Config, Domain};
use crate::dns::{DomainSpec, Target, ZoneSpec};

pub fn zones(cfg: &Config) -> Vec<ZoneSpec> {
    cfg.dns
        .zones
        .iter()
        .map(|z| ZoneSpec {
            apex: normalize_name(z),
            soa: cfg.dns.soa.clone(),
            nameservers: cfg.dns.nameservers.clone(),
        })
        .collect()
}

pub fn domain(reg: &Registry, d: &Domain) -> DomainSpec {
    let cfg = &reg.cfg().config;
    let name = normalize_name(&d.name);
    let priority = |key: &BackendKey| {
        let b = reg.backends().get(key);
        let region_rank = b
            .and_then(|b| d.regions.iter().position(|r| *r == b.region))
            .unwrap_or(usize::MAX);
        let static_rank = b.and_then(|b| b.static_order).unwrap_or(usize::MAX);
        (region_rank, static_rank, key.address, key.port)
    };
    let mut healthy: Vec<&BackendKey> = reg
        .domain_backends(&name)
        .filter(|b| {
            reg.effective(&b.key)
                .is_some_and(|e| e.status == Status::Healthy)
        })
        .map(|b| &b.key)
        .collect();
    healthy.sort_by_cached_key(|k| priority(k));
    let targets = to_targets(reg, healthy.iter().copied());
    let return_last = d.return_last_healthy.unwrap_or(cfg.dns.return_last_healthy);
    let last_healthy = if return_last {
        let mut last: Vec<&BackendKey> = reg
            .last_healthy(&name)
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        last.sort_by_cached_key(|k| priority(k));
        Some(to_targets(reg, last.into_iter()))
    } else {
        None
    };
    DomainSpec {
        name,
        ttl: d.ttl.unwrap_or(cfg.dns.default_ttl),
        algorithm: d.routing_algorithm,
        max_records: d.max_records,
        targets,
        last_healthy,
    }
}

fn to_targets<'a>(reg: &Registry, keys: impl Iterator<Item = &'a BackendKey>) -> Vec<Target> {
    keys.map(|k| Target {
        ip: k.address,
        weight: reg.backends().get(k).map(|b| b.weight).unwrap_or(1),
    })
    .collect()
}
