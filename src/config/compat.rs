//! OpenGSLB v1.1 forms that still load: value spellings v1.1 accepted,
//! backend host names, and domains outside `dns.zones`.
//!
//! Two passes around the loader's own checks. `normalize_raw` runs on the
//! merged YAML tree before the key walk, so the walk's enum checks see the
//! canonical spelling (`HTTP` → `http`, `rr` → `round-robin`) and an empty
//! `overwatch.gossip.bind_address` counts as absent (v1.1's "not set").
//! `resolve_hosts` and `implicit_zones` run on the typed configuration
//! before validation; they change what the daemon is handed (addresses,
//! zones) and say so in warnings, each naming the key, so the operator
//! sees at `--check` time what will be served.

use super::schema::{AgentBackend, Config, Mode, Server};
use super::values::{in_zone, is_dns_name, normalize_name};
use serde_norway::Value;
use std::net::{IpAddr, ToSocketAddrs};

/// A v1.1 routing name (any case, aliases of SPEC §11) in our spelling.
pub fn routing_alias(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    match lower.as_str() {
        "rr" | "roundrobin" | "round_robin" => "round-robin".into(),
        "weight" => "weighted".into(),
        "active-standby" | "activestandby" | "active_standby" => "failover".into(),
        "geo" => "geolocation".into(),
        "learned-latency" | "learnedlatency" => "learned_latency".into(),
        _ => lower,
    }
}

/// Rewrites v1.1 spellings in the raw tree (see the module note).
pub fn normalize_raw(root: &mut Value) {
    let Some(map) = root.as_mapping_mut() else {
        return;
    };
    if let Some(domains) = map.get_mut("domains").and_then(Value::as_sequence_mut) {
        for d in domains.iter_mut() {
            if let Some(Value::String(s)) = d.get_mut("routing_algorithm") {
                *s = routing_alias(s);
            }
        }
    }
    if let Some(regions) = map.get_mut("regions").and_then(Value::as_sequence_mut) {
        for r in regions.iter_mut() {
            lower_at(r, &["health_check", "type"]);
        }
    }
    if let Some(backends) = map
        .get_mut("agent")
        .and_then(|a| a.get_mut("backends"))
        .and_then(Value::as_sequence_mut)
    {
        for b in backends.iter_mut() {
            lower_at(b, &["health_check", "type"]);
        }
    }
    lower_at(root, &["logging", "format"]);
    if let Some(gossip) = root
        .get_mut("overwatch")
        .and_then(|o| o.get_mut("gossip"))
        .and_then(Value::as_mapping_mut)
        && gossip
            .get("bind_address")
            .and_then(Value::as_str)
            .is_some_and(|s| s.trim().is_empty())
    {
        gossip.remove("bind_address");
    }
}

/// Lowercases the string at `path` under `v`, if there is one.
fn lower_at(v: &mut Value, path: &[&str]) {
    let mut node = v;
    for key in path {
        match node.get_mut(*key) {
            Some(next) => node = next,
            None => return,
        }
    }
    if let Value::String(s) = node {
        *s = s.trim().to_ascii_lowercase();
    }
}

/// (concrete key path, message) pairs, as the validator returns them.
pub type Notes = Vec<(String, String)>;

/// Resolves backend addresses written as host names (v1.1 allowed them).
/// The first address takes the server's place; further addresses are
/// appended to the same list so indices of the configured entries (and
/// with them file and line in messages) stay put.
pub fn resolve_hosts(cfg: &mut Config, mode: Mode, errors: &mut Notes, warnings: &mut Notes) {
    let mut resolve = |path: String, name: &str, port: u16| -> Option<Vec<IpAddr>> {
        match lookup(name, port) {
            Ok(addrs) => {
                let list: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
                warnings.push((
                    path,
                    format!(
                        "host name {name:?} resolved to {} at load; it is looked up again only on reload (SIGHUP); write an IP address to avoid the lookup",
                        list.join(", ")
                    ),
                ));
                Some(addrs)
            }
            Err(e) => {
                errors.push((path, e));
                None
            }
        }
    };
    match mode {
        Mode::Overwatch => {
            for (i, region) in cfg.regions.iter_mut().enumerate() {
                let mut extra: Vec<Server> = Vec::new();
                for (j, server) in region.servers.iter_mut().enumerate() {
                    if !is_host_name(&server.address) {
                        continue;
                    }
                    let path = format!("regions[{i}].servers[{j}].address");
                    let Some(addrs) = resolve(path, &server.address, server.port) else {
                        continue;
                    };
                    let name = std::mem::take(&mut server.address);
                    for (n, ip) in addrs.into_iter().enumerate() {
                        if n == 0 {
                            server.address = ip.to_string();
                        } else {
                            extra.push(Server {
                                address: ip.to_string(),
                                ..server.clone()
                            });
                        }
                    }
                    // A check of a server written by name keeps sending the
                    // name as Host header and TLS name, as v1.1 did.
                    if server.host.is_empty() {
                        server.host = name.clone();
                        for e in extra.iter_mut().filter(|e| e.host.is_empty()) {
                            e.host = name.clone();
                        }
                    }
                }
                region.servers.extend(extra);
            }
        }
        Mode::Agent => {
            let Some(agent) = cfg.agent.as_mut() else {
                return;
            };
            let mut extra: Vec<AgentBackend> = Vec::new();
            for (i, b) in agent.backends.iter_mut().enumerate() {
                if !is_host_name(&b.address) {
                    continue;
                }
                let path = format!("agent.backends[{i}].address");
                let Some(addrs) = resolve(path, &b.address, b.port) else {
                    continue;
                };
                let name = std::mem::take(&mut b.address);
                if b.health_check.host.is_empty() {
                    b.health_check.host = name;
                }
                for (n, ip) in addrs.into_iter().enumerate() {
                    if n == 0 {
                        b.address = ip.to_string();
                    } else {
                        extra.push(AgentBackend {
                            address: ip.to_string(),
                            ..b.clone()
                        });
                    }
                }
            }
            agent.backends.extend(extra);
        }
    }
}

/// Without lookups (`load_str`): one warning per host-name address, left
/// as written.
pub fn note_hosts(cfg: &Config, mode: Mode, warnings: &mut Notes) {
    let mut note = |path: String, name: &str| {
        warnings.push((
            path,
            format!("host name {name:?} will be resolved when the daemon loads the file (and on SIGHUP); write an IP address to avoid the lookup"),
        ));
    };
    match mode {
        Mode::Overwatch => {
            for (i, region) in cfg.regions.iter().enumerate() {
                for (j, s) in region.servers.iter().enumerate() {
                    if is_host_name(&s.address) {
                        note(format!("regions[{i}].servers[{j}].address"), &s.address);
                    }
                }
            }
        }
        Mode::Agent => {
            for (i, b) in cfg.agent.iter().flat_map(|a| a.backends.iter()).enumerate() {
                if is_host_name(&b.address) {
                    note(format!("agent.backends[{i}].address"), &b.address);
                }
            }
        }
    }
}

/// A value that is not an IP address but is a valid DNS name.
/// A malformed IPv4 address such as `10.0.0.300` is a valid DNS name by
/// its characters, but no top-level domain is all digits, so it is not
/// taken for a name (and reported as a bad address instead).
pub fn is_host_name(address: &str) -> bool {
    let last = address
        .trim_end_matches('.')
        .rsplit('.')
        .next()
        .unwrap_or("");
    address.parse::<IpAddr>().is_err()
        && is_dns_name(address)
        && !last.bytes().all(|b| b.is_ascii_digit())
}

/// Every distinct address of `name`, in the resolver's order.
fn lookup(name: &str, port: u16) -> Result<Vec<IpAddr>, String> {
    let found = (name, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve host name {name:?}: {e}"))?;
    let mut addrs: Vec<IpAddr> = Vec::new();
    for a in found {
        if !addrs.contains(&a.ip()) {
            addrs.push(a.ip());
        }
    }
    if addrs.is_empty() {
        return Err(format!("host name {name:?} has no address"));
    }
    Ok(addrs)
}

/// v1.1 ignored `dns.zones`, so its files may list domains under no zone.
/// Each such domain becomes its own zone apex (SOA and NS from `dns.soa`
/// and `dns.nameservers`, as for configured zones), with a warning naming
/// the key. With no `dns.zones` at all nothing changes: the DNS table
/// already serves every domain as an implicit apex.
pub fn implicit_zones(cfg: &mut Config, warnings: &mut Notes) {
    if cfg.dns.zones.is_empty() {
        return;
    }
    let configured = cfg.dns.zones.join(", ");
    // Shortest names first, so a domain under another outside domain
    // lands in that one's new zone instead of becoming a second apex.
    let mut order: Vec<usize> = (0..cfg.domains.len()).collect();
    order.sort_by_key(|&i| cfg.domains[i].name.matches('.').count());
    for i in order {
        let name = normalize_name(&cfg.domains[i].name);
        if !is_dns_name(&name) || cfg.dns.zones.iter().any(|z| in_zone(&name, z)) {
            continue;
        }
        warnings.push((
            format!("domains[{i}].name"),
            format!(
                "{name:?} is outside every zone in dns.zones ({configured}); it is served as its own zone apex (SOA and NS synthesised); add it or its parent zone to dns.zones to silence this"
            ),
        ));
        cfg.dns.zones.push(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases() {
        for (v11, ours) in [
            ("rr", "round-robin"),
            ("RoundRobin", "round-robin"),
            ("ROUND-ROBIN", "round-robin"),
            ("weight", "weighted"),
            ("Weighted", "weighted"),
            ("active-standby", "failover"),
            ("ActiveStandby", "failover"),
            ("geo", "geolocation"),
            ("learned-latency", "learned_latency"),
            ("learned_latency", "learned_latency"),
            ("Latency", "latency"),
        ] {
            assert_eq!(routing_alias(v11), ours, "{v11}");
        }
    }

    #[test]
    fn raw_spellings() {
        let mut v: Value = serde_norway::from_str(
            "overwatch:\n  gossip:\n    bind_address: ''\nlogging:\n  format: JSON\nregions:\n  - health_check:\n      type: HTTP\ndomains:\n  - routing_algorithm: RR\n",
        )
        .unwrap();
        normalize_raw(&mut v);
        assert!(v["overwatch"]["gossip"].get("bind_address").is_none());
        assert_eq!(v["logging"]["format"].as_str(), Some("json"));
        assert_eq!(
            v["regions"][0]["health_check"]["type"].as_str(),
            Some("http")
        );
        assert_eq!(
            v["domains"][0]["routing_algorithm"].as_str(),
            Some("round-robin")
        );
    }

    #[test]
    fn host_names() {
        assert!(is_host_name("localhost"));
        assert!(is_host_name("app.example.com"));
        assert!(!is_host_name("10.0.0.1"));
        assert!(!is_host_name("::1"));
        assert!(!is_host_name("not a name"));
        assert!(!is_host_name("10.0.0.300"));
    }
}
