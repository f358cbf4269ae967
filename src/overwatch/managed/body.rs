//! The JSON bodies of the managed-entity writes, checked field by field:
//! every error names the field, and nothing is changed unless the whole
//! body is valid. A create starts from defaults, an update (PUT/PATCH)
//! from the existing entry, so an update may carry only what changes.
//! v1.1 fields we do not act on (`protocol`, `priority`, `enabled`,
//! `description`, `tags`, `metadata`, `code`, ...) are accepted and
//! ignored, so v1.1 scripts keep working; any other field is refused.

use super::{ManagedDomain, ManagedRegion, ManagedServer};
use crate::backend::normalize_name;
use crate::config::RoutingAlgorithm;
use serde_json::{Map, Value};

const SERVER_FIELDS: &[&str] = &["address", "port", "weight", "region", "service", "name"];
const SERVER_IGNORED: &[&str] = &[
    "id",
    "protocol",
    "priority",
    "enabled",
    "healthy",
    "description",
    "tags",
    "metadata",
    "health_check",
    "created_at",
    "updated_at",
    "status",
    "source",
];
const REGION_FIELDS: &[&str] = &["name", "countries", "continents", "continent"];
const REGION_IGNORED: &[&str] = &[
    "id",
    "code",
    "description",
    "latitude",
    "longitude",
    "enabled",
    "priority",
    "server_count",
    "healthy_servers",
    "created_at",
    "updated_at",
    "source",
];
const DOMAIN_FIELDS: &[&str] = &["name", "routing_algorithm", "regions", "ttl"];
const DOMAIN_IGNORED: &[&str] = &[
    "id",
    "enabled",
    "description",
    "health_check",
    "created_at",
    "updated_at",
    "source",
];

/// The algorithms an API domain may use (the others need configuration
/// that only the file carries).
const API_ALGORITHMS: &[&str] = &["round-robin", "weighted", "failover"];

fn object<'a>(
    body: &'a Value,
    fields: &[&str],
    ignored: &[&str],
) -> Result<&'a Map<String, Value>, String> {
    let obj = body.as_object().ok_or("the body must be a JSON object")?;
    for k in obj.keys() {
        if !fields.contains(&k.as_str()) && !ignored.contains(&k.as_str()) {
            return Err(format!(
                "{k}: unknown field (expected one of {})",
                fields.join(", ")
            ));
        }
    }
    Ok(obj)
}

fn string(obj: &Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    match obj.get(field) {
        None => Ok(None),
        Some(Value::String(s)) if s.len() <= 253 => Ok(Some(s.trim().to_string())),
        Some(Value::String(_)) => Err(format!("{field}: longer than 253 characters")),
        Some(_) => Err(format!("{field}: expected a string")),
    }
}

fn int(obj: &Map<String, Value>, field: &str, min: u64, max: u64) -> Result<Option<u64>, String> {
    match obj.get(field) {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(format!("{field}: expected an integer from {min} to {max}")),
        },
    }
}

fn strings(obj: &Map<String, Value>, field: &str) -> Result<Option<Vec<String>>, String> {
    match obj.get(field) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .filter(|s| !s.trim().is_empty() && s.len() <= 253)
                    .map(|s| s.trim().to_string())
                    .ok_or_else(|| format!("{field}: expected a list of non-empty strings"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(format!("{field}: expected a list of strings")),
    }
}

fn required<T>(v: Option<T>, field: &str) -> Result<T, String> {
    v.ok_or_else(|| format!("{field}: required"))
}

/// A server from a body; `old` for an update. The address must be an IP
/// (host names are resolved only for the file's servers).
pub fn server(body: &Value, old: Option<&ManagedServer>) -> Result<ManagedServer, String> {
    let obj = object(body, SERVER_FIELDS, SERVER_IGNORED)?;
    let mut s = old.cloned().unwrap_or(ManagedServer {
        weight: 100,
        ..ManagedServer::default()
    });
    if let Some(a) = string(obj, "address")? {
        let ip: std::net::IpAddr = a
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("address: {a:?} is not an IP address"))?;
        s.address = ip.to_string();
    } else if old.is_none() {
        return Err("address: required".into());
    }
    match int(obj, "port", 1, 65535)? {
        Some(p) => s.port = p as u16,
        None if old.is_none() => return Err("port: required".into()),
        None => {}
    }
    // v1.1 sends weight 0 for "default".
    if let Some(w) = int(obj, "weight", 0, 1_000_000)? {
        s.weight = if w == 0 { 100 } else { w as u32 };
    }
    if let Some(r) = string(obj, "region")? {
        s.region = r;
    }
    if s.region.is_empty() {
        return Err("region: required (the region the server belongs to)".into());
    }
    if let Some(v) = string(obj, "service")? {
        s.service = normalize_name(&v);
    }
    if let Some(v) = string(obj, "name")? {
        s.name = v;
    }
    Ok(s)
}

pub fn region(body: &Value, old: Option<&ManagedRegion>) -> Result<ManagedRegion, String> {
    let obj = object(body, REGION_FIELDS, REGION_IGNORED)?;
    let mut r = old.cloned().unwrap_or_default();
    if let Some(name) = string(obj, "name")? {
        if old.is_some_and(|o| o.name != name) {
            return Err("name: a region cannot be renamed; delete and create it".into());
        }
        r.name = name;
    }
    let name = required(Some(r.name.clone()).filter(|n| !n.is_empty()), "name")?;
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(format!(
            "name: {name:?} may contain only letters, digits, '-', '_' and '.'"
        ));
    }
    if let Some(v) = strings(obj, "countries")? {
        r.countries = v;
    }
    if let Some(v) = strings(obj, "continents")? {
        r.continents = v;
    }
    if let Some(c) = string(obj, "continent")?.filter(|c| !c.is_empty()) {
        r.continents = vec![c];
    }
    Ok(r)
}

pub fn domain(body: &Value, old: Option<&ManagedDomain>) -> Result<ManagedDomain, String> {
    let obj = object(body, DOMAIN_FIELDS, DOMAIN_IGNORED)?;
    let mut d = old.cloned().unwrap_or_default();
    if let Some(name) = string(obj, "name")? {
        let name = normalize_name(&name);
        if old.is_some_and(|o| o.name != name) {
            return Err("name: a domain cannot be renamed; delete and create it".into());
        }
        d.name = name;
    }
    if d.name.is_empty() {
        return Err("name: required".into());
    }
    let valid = d.name.len() <= 253
        && d.name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if !valid {
        return Err(format!("name: {:?} is not a DNS name", d.name));
    }
    if let Some(a) = string(obj, "routing_algorithm")? {
        let a = a.to_ascii_lowercase().replace('_', "-");
        let a = if a == "roundrobin" {
            "round-robin".into()
        } else {
            a
        };
        if !API_ALGORITHMS.contains(&a.as_str()) {
            return Err(format!(
                "routing_algorithm: {a:?} is not one of {} (others need the configuration file)",
                API_ALGORITHMS.join(", ")
            ));
        }
        d.routing_algorithm = serde_json::from_value::<RoutingAlgorithm>(Value::String(a))
            .map_err(|e| format!("routing_algorithm: {e}"))?;
    }
    if let Some(v) = strings(obj, "regions")? {
        d.regions = v;
    }
    if let Some(t) = int(obj, "ttl", 0, 86_400)? {
        d.ttl = Some(t as u32);
    }
    Ok(d)
}
