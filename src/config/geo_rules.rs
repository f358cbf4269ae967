//! The rules of SPEC §11's keys: geolocation, regions' countries and
//! continents, `latency_config`, and the routing algorithms that need them.
//! Returns (key path, message) errors for the loader to place by file and
//! line. Opening the database is `database_errors` (it touches the disk,
//! so `--check` and SIGHUP both see a missing or unreadable file).

use super::schema::{Config, RoutingAlgorithm};
use ipnet::IpNet;

const CONTINENTS: &[&str] = &["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

pub fn errors(cfg: &Config) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut err = |p: String, m: String| out.push((p, m));
    let region_exists = |name: &str| cfg.regions.iter().any(|r| r.name == name);
    for (i, r) in cfg.regions.iter().enumerate() {
        for (j, c) in r.countries.iter().enumerate() {
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
                err(
                    format!("regions[{i}].countries[{j}]"),
                    format!("{c:?} is not a two-letter ISO 3166 country code"),
                );
            }
        }
        for (j, c) in r.continents.iter().enumerate() {
            if !CONTINENTS.contains(&c.to_ascii_uppercase().as_str()) {
                err(
                    format!("regions[{i}].continents[{j}]"),
                    format!(
                        "{c:?} is not a continent code (one of {})",
                        CONTINENTS.join(", ")
                    ),
                );
            }
        }
    }
    if let Some(g) = &cfg.overwatch.geolocation {
        let p = "overwatch.geolocation";
        if g.default_region.is_empty() {
            err(format!("{p}.default_region"), "is required".into());
        } else if !region_exists(&g.default_region) {
            err(
                format!("{p}.default_region"),
                format!("region {:?} is not defined in regions", g.default_region),
            );
        }
        if g.database_path.as_deref().is_none_or(str::is_empty) && g.custom_mappings.is_empty() {
            err(
                p.into(),
                "needs database_path or custom_mappings (or both)".into(),
            );
        }
        let mut seen: Vec<IpNet> = Vec::new();
        for (i, m) in g.custom_mappings.iter().enumerate() {
            let mp = format!("{p}.custom_mappings[{i}]");
            match m.cidr.parse::<IpNet>() {
                Ok(net) if seen.contains(&net.trunc()) => {
                    err(format!("{mp}.cidr"), format!("{} is mapped twice", m.cidr))
                }
                Ok(net) => seen.push(net.trunc()),
                Err(_) => err(
                    format!("{mp}.cidr"),
                    format!("{:?} is not a CIDR (like 198.51.100.0/24)", m.cidr),
                ),
            }
            if !region_exists(&m.region) {
                err(
                    format!("{mp}.region"),
                    format!("region {:?} is not defined in regions", m.region),
                );
            }
        }
    }
    for (i, d) in cfg.domains.iter().enumerate() {
        let p = format!("domains[{i}]");
        if d.routing_algorithm == RoutingAlgorithm::Geolocation
            && cfg.overwatch.geolocation.is_none()
        {
            err(
                format!("{p}.routing_algorithm"),
                "geolocation needs overwatch.geolocation (database_path or custom_mappings, and default_region)".into(),
            );
        }
        let l = &d.latency_config;
        if !(l.smoothing_factor > 0.0 && l.smoothing_factor <= 1.0) {
            err(
                format!("{p}.latency_config.smoothing_factor"),
                "must be greater than 0 and at most 1".into(),
            );
        }
        if l.max_latency_ms == 0 {
            err(
                format!("{p}.latency_config.max_latency_ms"),
                "must be at least 1".into(),
            );
        }
        if l.min_samples == 0 {
            err(
                format!("{p}.latency_config.min_samples"),
                "must be at least 1".into(),
            );
        }
    }
    out
}

/// The database named by `overwatch.geolocation.database_path` must open
/// (start-up, `--check` and SIGHUP refuse a file that does not).
pub fn database_errors(cfg: &Config) -> Vec<(String, String)> {
    let Some(path) = cfg
        .overwatch
        .geolocation
        .as_ref()
        .and_then(|g| g.database_path.as_deref())
        .filter(|p| !p.is_empty())
    else {
        return Vec::new();
    };
    match crate::geo::open_database(path) {
        Ok(_) => Vec::new(),
        Err(e) => vec![("overwatch.geolocation.database_path".into(), e)],
    }
}
