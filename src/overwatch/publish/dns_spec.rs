//! From registry to DNS: one domain's `DomainSpec` and the zones.
//!
//! A domain's targets are its healthy backends in priority order: the
//! order of `domains[].regions` (backends of unlisted regions last), then
//! the configured order of static servers, then address and port for
//! agent-reported ones. `failover` serves the first of that list, so the
//! primary returns automatically when it is healthy again. `latency`
//! carries each healthy target's usable smoothed check round trip. Each domain is
//! built from its own backends only, so the publisher rebuilds just the
//! domains that changed.

use super::super::model::{Backend, BackendKey, normalize_name};
use super::super::precedence::Status;
use super::super::registry::Registry;
use crate::config::{Config, Domain, RoutingAlgorithm};
use crate::dns::{DomainSpec, RegionTargets, Target, ZoneSpec};
use crate::geo::GeoResolver;
use std::collections::BTreeSet;
use std::sync::Arc;

pub fn zones(cfg: &Config) -> Vec<ZoneSpec> {
    cfg.dns
        .zones
        .iter()
        .map(|z| ZoneSpec {
            apex: normalize_name(z),
            soa: cfg.dns.soa.clone(),
            nameservers: cfg.dns.nameservers.iter().map(|n| n.name.clone()).collect(),
        })
        .collect()
}

/// `held`: the backends the drain guard keeps in although precedence took
/// them out (`publish::guard`).
pub fn domain(reg: &Registry, d: &Domain, held: &BTreeSet<BackendKey>) -> DomainSpec {
    let cfg = &reg.cfg().config;
    let name = normalize_name(&d.name);
    let rank = |b: &Backend| {
        let region_rank = d
            .regions
            .iter()
            .position(|r| *r == b.region)
            .unwrap_or(usize::MAX);
        let static_rank = b.static_order.unwrap_or(usize::MAX);
        (region_rank, static_rank, b.key.address, b.key.port)
    };
    // Walks the domain's own backends: no lookup per backend.
    let mut healthy: Vec<&Backend> = reg
        .domain_backends(&name)
        .filter(|b| {
            b.effective.is_some_and(|e| e.status == Status::Healthy) || held.contains(&b.key)
        })
        .collect();
    healthy.sort_by_cached_key(|b| rank(b));
    let targets: Vec<Target> = healthy.iter().map(|b| target(b)).collect();
    let by_region = if matches!(
        d.routing_algorithm,
        RoutingAlgorithm::Geolocation | RoutingAlgorithm::LearnedLatency
    ) {
        by_region(&d.regions, &healthy)
    } else {
        Vec::new()
    };
    let round_trips = if d.routing_algorithm == RoutingAlgorithm::Latency {
        healthy
            .iter()
            .filter_map(|b| {
                let us = reg.round_trip(&b.key)?.usable(&d.latency_config)?;
                Some((b.key.address, us))
            })
            .collect()
    } else {
        Vec::new()
    };
    let return_last = d.return_last_healthy.unwrap_or(cfg.dns.return_last_healthy);
    let last_healthy = if return_last && !targets.is_empty() {
        // Healthy backends now: they are the last healthy set.
        Some(targets.clone())
    } else if return_last {
        // A backend that went since keeps its place last, weight 1.
        let mut last: Vec<(Option<&Backend>, &BackendKey)> = reg
            .last_healthy(&name)
            .unwrap_or_default()
            .iter()
            .map(|k| (reg.backends().get(k), k))
            .collect();
        last.sort_by_cached_key(|(b, k)| match b {
            Some(b) => rank(b),
            None => (usize::MAX, usize::MAX, k.address, k.port),
        });
        Some(
            last.iter()
                .map(|(b, k)| match b {
                    Some(b) => target(b),
                    None => Target {
                        ip: k.address,
                        weight: 1,
                    },
                })
                .collect(),
        )
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
        by_region,
        round_trips,
    }
}

/// Healthy backends (already in domain order) grouped by region: every
/// region of the domain in its order (one without healthy backends stays,
/// empty, so its clients go on to the next), then unlisted regions.
fn by_region(order: &[String], healthy: &[&Backend]) -> Vec<RegionTargets> {
    let mut out: Vec<RegionTargets> = order
        .iter()
        .map(|r| RegionTargets {
            region: r.clone(),
            targets: Vec::new(),
        })
        .collect();
    for b in healthy {
        match out.iter_mut().find(|r| r.region == b.region) {
            Some(r) => r.targets.push(target(b)),
            None => out.push(RegionTargets {
                region: b.region.clone(),
                targets: vec![target(b)],
            }),
        }
    }
    out
}

/// The geolocation resolver of the running configuration: the database
/// is (re)opened at each configuration load; should it fail to open now
/// (the loader checked it a moment ago), the previous one keeps serving.
pub fn geo_resolver(reg: &Registry, old: Option<&GeoResolver>) -> Option<Arc<GeoResolver>> {
    let cfg = &reg.cfg().config;
    let geo = cfg.overwatch.geolocation.as_ref()?;
    let db = match geo.database_path.as_deref().filter(|p| !p.is_empty()) {
        None => None,
        Some(path) => match crate::geo::open_database(path) {
            Ok(db) => Some(Arc::new(db)),
            Err(e) => {
                log::error!("geolocation: {e}; the previous database keeps serving");
                old.and_then(GeoResolver::database)
            }
        },
    };
    GeoResolver::new(cfg, db, &reg.geo_mappings()).map(Arc::new)
}

/// The resolver again with the registry's API mappings, keeping the
/// database already open (an API change does not reopen the file).
pub fn geo_remapped(reg: &Registry, old: Option<&GeoResolver>) -> Option<Arc<GeoResolver>> {
    let db = old.and_then(GeoResolver::database);
    GeoResolver::new(&reg.cfg().config, db, &reg.geo_mappings()).map(Arc::new)
}

/// Config and API mappings for the API: `source` config or api, and an
/// API one whose cidr the configuration also maps says `shadowed_by_config`.
pub fn geo_listing(reg: &Registry) -> Vec<serde_json::Value> {
    let canonical = |c: &str| {
        c.parse::<ipnet::IpNet>()
            .map(|n| n.trunc().to_string())
            .unwrap_or_else(|_| c.to_string())
    };
    let config = reg
        .cfg()
        .config
        .overwatch
        .geolocation
        .as_ref()
        .map(|g| g.custom_mappings.as_slice())
        .unwrap_or_default();
    let from_config: std::collections::BTreeSet<String> =
        config.iter().map(|m| canonical(&m.cidr)).collect();
    let mut out: Vec<serde_json::Value> = config
        .iter()
        .map(|m| {
            serde_json::json!({"cidr": m.cidr, "region": m.region, "comment": m.comment,
                               "source": "config", "shadowed_by_config": false})
        })
        .collect();
    out.extend(reg.geo_mappings().iter().map(|m| {
        serde_json::json!({"cidr": m.cidr, "region": m.region, "comment": m.comment,
                           "source": "api",
                           "shadowed_by_config": from_config.contains(&canonical(&m.cidr))})
    }));
    out
}

fn target(b: &Backend) -> Target {
    Target {
        ip: b.key.address,
        weight: b.weight,
    }
}
