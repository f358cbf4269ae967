//! Servers, regions and domains managed through the API (the v1.1
//! `/api/v1/servers`, `/api/v1/regions`, `/api/v1/domains` writes).
//!
//! They live beside the configuration file, never in it: `overlay` lays
//! them over the file's configuration each time it is (re)loaded, so a
//! reload never drops them, and an entry of the file with the same key
//! (server `address:port`, region name, domain name) wins — the entry is
//! then listed `shadowed_by_config`. Everything here is pure; the runtime
//! (`ingest::managed`) applies the writes, persists `managed.json` and
//! republishes through the reload path, so DNS follows at once.

pub mod body;
pub mod replicated;
#[cfg(test)]
mod tests;

use crate::api::view::ManagedListing as Listing;
use crate::backend::normalize_name;
use crate::config::{Config, Domain, HealthCheck, Region, RoutingAlgorithm, Server};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const STORE_FILE: &str = "managed";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ManagedServer {
    /// Canonical IP text.
    pub address: String,
    pub port: u16,
    pub weight: u32,
    pub region: String,
    /// Empty: every domain that lists the region.
    #[serde(default)]
    pub service: String,
    /// v1.1's display name, kept and listed.
    #[serde(default)]
    pub name: String,
}

impl ManagedServer {
    /// The server's key and API id: `address:port` (`[v6]:port`).
    pub fn id(&self) -> String {
        crate::api::command::host_port(&self.address, self.port)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ManagedRegion {
    pub name: String,
    #[serde(default)]
    pub countries: Vec<String>,
    #[serde(default)]
    pub continents: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ManagedDomain {
    /// Normalised (lowercase, no trailing dot).
    pub name: String,
    pub routing_algorithm: RoutingAlgorithm,
    #[serde(default)]
    pub regions: Vec<String>,
    #[serde(default)]
    pub ttl: Option<u32>,
}

/// Everything the API manages; persisted whole.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Managed {
    #[serde(default)]
    pub servers: Vec<ManagedServer>,
    #[serde(default)]
    pub regions: Vec<ManagedRegion>,
    #[serde(default)]
    pub domains: Vec<ManagedDomain>,
}

/// Whether the configuration file has a server `address:port`.
pub fn config_has_server(cfg: &Config, address: &str, port: u16) -> bool {
    cfg.regions.iter().any(|r| {
        r.servers
            .iter()
            .any(|s| crate::api::routes::canonical(&s.address) == address && s.port == port)
    })
}

pub fn config_has_region(cfg: &Config, name: &str) -> bool {
    cfg.regions.iter().any(|r| r.name == name)
}

pub fn config_has_domain(cfg: &Config, name: &str) -> bool {
    cfg.domains.iter().any(|d| normalize_name(&d.name) == name)
}

/// The file's configuration with every managed entry it does not shadow
/// added: regions after the file's, servers into their region (skipped
/// with the reason when the region no longer exists), domains after the
/// file's, each outside `dns.zones` made its own apex as v1.1 files are.
pub fn overlay(base: &Config, m: &Managed) -> (Config, Vec<String>) {
    let mut cfg = base.clone();
    let mut skipped = Vec::new();
    for r in &m.regions {
        if !config_has_region(base, &r.name) {
            cfg.regions.push(Region {
                name: r.name.clone(),
                servers: Vec::new(),
                health_check: HealthCheck::default(),
                countries: r.countries.clone(),
                continents: r.continents.clone(),
            });
        }
    }
    for s in &m.servers {
        if config_has_server(base, &s.address, s.port) {
            continue;
        }
        match cfg.regions.iter_mut().find(|r| r.name == s.region) {
            Some(region) => region.servers.push(Server {
                address: s.address.clone(),
                port: s.port,
                host: String::new(),
                weight: s.weight,
                service: s.service.clone(),
            }),
            None => skipped.push(format!(
                "API server {} skipped: region {:?} no longer exists",
                s.id(),
                s.region
            )),
        }
    }
    for d in &m.domains {
        if config_has_domain(base, &d.name) {
            continue;
        }
        let regions: Vec<String> = d
            .regions
            .iter()
            .filter(|r| cfg.regions.iter().any(|c| &c.name == *r))
            .cloned()
            .collect();
        let inside = cfg.dns.zones.iter().any(|z| {
            let z = normalize_name(z);
            d.name == z || d.name.ends_with(&format!(".{z}"))
        });
        if !inside {
            cfg.dns.zones.push(d.name.clone());
        }
        cfg.domains.push(Domain {
            name: d.name.clone(),
            routing_algorithm: d.routing_algorithm,
            regions,
            ttl: d.ttl,
            ..Domain::default()
        });
    }
    (cfg, skipped)
}

/// The listings of `GET /api/v1/servers|regions`, every entry with its
/// `source` (config or api) and, for API entries, whether the file
/// shadows them.
pub fn listing(base: &Config, m: &Managed) -> Listing {
    let mut servers = Vec::new();
    for r in &base.regions {
        for s in &r.servers {
            let address = crate::api::routes::canonical(&s.address);
            servers.push(json!({
                "id": crate::api::command::host_port(&address, s.port),
                "name": "",
                "address": address,
                "port": s.port,
                "weight": s.weight,
                "region": r.name,
                "service": s.service,
                "source": "config",
                "shadowed_by_config": false,
            }));
        }
    }
    for s in &m.servers {
        servers.push(server_json(base, s));
    }
    let mut regions: Vec<Value> = base
        .regions
        .iter()
        .map(|r| {
            json!({"name": r.name, "countries": r.countries, "continents": r.continents,
                   "source": "config", "shadowed_by_config": false})
        })
        .collect();
    regions.extend(m.regions.iter().map(|r| region_json(base, r)));
    Listing {
        servers,
        regions,
        api_domains: m
            .domains
            .iter()
            .map(|d| (d.name.clone(), config_has_domain(base, &d.name)))
            .collect(),
    }
}

pub fn server_json(base: &Config, s: &ManagedServer) -> Value {
    json!({
        "id": s.id(),
        "name": s.name,
        "address": s.address,
        "port": s.port,
        "weight": s.weight,
        "region": s.region,
        "service": s.service,
        "source": "api",
        "shadowed_by_config": config_has_server(base, &s.address, s.port),
    })
}

pub fn region_json(base: &Config, r: &ManagedRegion) -> Value {
    json!({"name": r.name, "countries": r.countries, "continents": r.continents,
           "source": "api", "shadowed_by_config": config_has_region(base, &r.name)})
}

pub fn domain_json(base: &Config, d: &ManagedDomain) -> Value {
    json!({
        "name": d.name,
        "routing_algorithm": d.routing_algorithm.as_str(),
        "regions": d.regions,
        "ttl": d.ttl,
        "source": "api",
        "shadowed_by_config": config_has_domain(base, &d.name),
    })
}
