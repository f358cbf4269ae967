//! Pure routing: method and path in, the endpoint and its parameters out.
//! No I/O, so every route, every 404 and every 405 is unit-tested here.

use super::command::{Entity, ManageOp};

/// An endpoint of SPEC §7 with the parameters taken from its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Backends,
    Stats,
    Agents,
    Agent(String),
    ForgetAgent(String),
    RevokeAgent(String),
    SetOverride(BackendKey),
    ClearOverride(BackendKey),
    Overrides,
    Validate,
    HealthServers,
    Healthz,
    Domains,
    Domain(String),
    Ready,
    Live,
    Version,
    AuditLogs,
    Metrics,
    /// This API's OpenAPI document (docs/openapi.yaml as JSON).
    OpenApi,
    /// `GET /health`: the v1.1 liveness probe (docker healthchecks).
    Health,
    /// v1.1 reads (`api::v11`).
    ExpiringAgents,
    HealthRegions,
    Config,
    /// `GET /api/v1/servers`, `/api/v1/regions`: file and API entries.
    ManagedList(Entity),
    ManagedOne(Entity, String),
    /// Create (no id), update or delete an API-managed entry.
    Manage(Entity, ManageOp, Option<String>),
    /// `GET /api/v1/cluster/status`: this node and its peers (SPEC §12).
    ClusterStatus,
    /// The learned-latency table, paged (SPEC §11).
    Latency,
    /// DNSSEC keys (public facts) and signature cache figures.
    Dnssec,
    /// `GET /api/v1/geo/mappings`: config and API mappings.
    GeoMappings,
    /// `PUT /api/v1/geo/mappings` (body names the cidr).
    SetGeoMapping,
    /// `DELETE /api/v1/geo/mappings/{cidr}`, cidr canonical.
    DeleteGeoMapping(String),
    /// `GET /api/v1/geo/test?ip=`: a geolocation decision explained.
    GeoTest,
}

impl Route {
    /// Writes change state: they need a token (when tokens are set), are
    /// sent to the registry and are audited.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Route::ForgetAgent(_)
                | Route::RevokeAgent(_)
                | Route::SetOverride(_)
                | Route::ClearOverride(_)
                | Route::Validate
                | Route::Manage(..)
                | Route::SetGeoMapping
                | Route::DeleteGeoMapping(_)
        )
    }

    /// Whether the handler reads a JSON body.
    pub fn has_body(&self) -> bool {
        matches!(
            self,
            Route::RevokeAgent(_)
                | Route::SetGeoMapping
                | Route::SetOverride(_)
                | Route::Manage(_, ManageOp::Create | ManageOp::Update, _)
        )
    }
}

/// (service, address, port) of a backend, address without brackets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendKey {
    pub service: String,
    pub address: String,
    pub port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    /// The path exists; `allow` lists its methods for the `Allow` header.
    MethodNotAllowed {
        allow: &'static str,
    },
    /// The path matched but a parameter is malformed (400).
    BadPath(String),
}

/// Splits `/a/b?x=1` into decoded path segments and the raw query.
pub fn split_url(url: &str) -> (Vec<String>, &str) {
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p, q),
        None => (url, ""),
    };
    let segments = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    (segments, query)
}

/// Decoded `key=value` pairs of a query string (`+` is a space).
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

/// `%5B` → `[`; invalid escapes are kept literally.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes.get(i).copied().unwrap_or(0);
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `1.2.3.4:80`, `[::1]:80` → (address, port).
pub fn parse_host_port(text: &str) -> Result<(String, u16), String> {
    let bad = || {
        format!("invalid address:port {text:?} (expected e.g. 10.0.1.10:80 or [2001:db8::1]:80)")
    };
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, rest) = rest.split_once(']').ok_or_else(bad)?;
        (host, rest.strip_prefix(':').ok_or_else(bad)?)
    } else {
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        if host.contains(':') {
            return Err(bad());
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port = parse_port(port)?;
    Ok((canonical(host), port))
}

/// `10.0.0.1` or `[2001:db8::1]`: an IP without a port, canonical. An
/// IPv6 address must be bracketed: `::1:80` could be `[::1]:80`.
pub fn bare_ip(text: &str) -> Option<String> {
    match text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        Some(inner) => inner
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|ip| ip.to_string()),
        None => text
            .parse::<std::net::Ipv4Addr>()
            .ok()
            .map(|ip| ip.to_string()),
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("invalid port {text:?} (expected 1-65535)")),
    }
}

/// IP addresses in their canonical text (`2001:DB8:0::1` → `2001:db8::1`)
/// so the registry matches them whichever way they were typed; names stay.
pub fn canonical(address: &str) -> String {
    address
        .parse::<std::net::IpAddr>()
        .map(|ip| ip.to_string())
        .unwrap_or_else(|_| address.to_string())
}

fn key(service: &str, address: &str, port: &str) -> Result<BackendKey, RouteError> {
    let address = address.trim_start_matches('[').trim_end_matches(']');
    Ok(BackendKey {
        service: service.to_string(),
        address: canonical(address),
        port: parse_port(port).map_err(RouteError::BadPath)?,
    })
}

/// Builds a route from the (already allowed) method and the path's
/// parameters, in template order.
type Build = fn(&str, &[&str]) -> Result<Route, RouteError>;

/// One entry of the route table: a path template (`{name}` matches one
/// segment), the methods it answers (also the `Allow` header of a 405;
/// `HEAD` goes with `GET`) and how to build the route. `route()` matches
/// against this table only, and the OpenAPI parity test compares it with
/// docs/openapi.yaml, so a route cannot exist undocumented.
pub struct RouteDef {
    pub path: &'static str,
    pub allow: &'static str,
    build: Build,
}

impl RouteDef {
    /// The methods as OpenAPI lists them (HEAD is implied by GET).
    pub fn methods(&self) -> impl Iterator<Item = &'static str> {
        self.allow.split(", ").filter(|m| *m != "HEAD")
    }

    fn allows(&self, method: &str) -> bool {
        self.allow.split(", ").any(|m| m == method)
    }

    /// The template's parameters when the segments match it.
    fn matches<'a>(&self, segments: &[&'a str]) -> Option<Vec<&'a str>> {
        let template = self.path.split('/').filter(|s| !s.is_empty());
        if template.clone().count() != segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (t, s) in template.zip(segments) {
            if t.starts_with('{') {
                params.push(*s);
            } else if t != *s {
                return None;
            }
        }
        Some(params)
    }
}

const fn def(path: &'static str, allow: &'static str, build: Build) -> RouteDef {
    RouteDef { path, allow, build }
}

const READ: &str = "GET, HEAD";

fn p<'a>(params: &[&'a str], i: usize) -> &'a str {
    params.get(i).copied().unwrap_or("")
}

fn backend_key(params: &[&str]) -> Result<BackendKey, RouteError> {
    key(p(params, 0), p(params, 1), p(params, 2))
}

fn service_host_port(params: &[&str]) -> Result<BackendKey, RouteError> {
    // v1.1 addressed overrides by IP alone; port 0 stands for "the one
    // port this address has" (write::resolve_port).
    let (address, port) = match bare_ip(p(params, 1)) {
        Some(address) => (address, 0),
        None => parse_host_port(p(params, 1)).map_err(RouteError::BadPath)?,
    };
    Ok(BackendKey {
        service: p(params, 0).to_string(),
        address,
        port,
    })
}

/// The methods of one managed entry (v1.1 takes PUT and PATCH alike).
const ENTRY: &str = "GET, HEAD, PUT, PATCH, DELETE";

/// `POST` on a managed collection: create.
fn collection(method: &str, entity: Entity) -> Option<Route> {
    (method == "POST").then_some(Route::Manage(entity, ManageOp::Create, None))
}

/// `PUT`/`PATCH`/`DELETE` on a managed entry.
fn entry(method: &str, entity: Entity, id: &str) -> Option<Route> {
    let op = match method {
        "PUT" | "PATCH" => ManageOp::Update,
        "DELETE" => ManageOp::Delete,
        _ => return None,
    };
    Some(Route::Manage(entity, op, Some(id.to_string())))
}

/// A server's id is its `address:port`, canonical.
fn server_id(text: &str) -> Result<String, RouteError> {
    let (address, port) = parse_host_port(text).map_err(RouteError::BadPath)?;
    if address.parse::<std::net::IpAddr>().is_err() {
        return Err(RouteError::BadPath(format!(
            "server id {text:?} must be IP:PORT (e.g. 10.0.1.10:80 or [2001:db8::1]:80)"
        )));
    }
    Ok(super::command::host_port(&address, port))
}

/// A cidr in a path: `10.0.0.0%2F8` (decoded before this) or
/// `10.0.0.0_8`, returned canonical (host bits cleared).
pub fn geo_cidr(text: &str) -> Result<String, RouteError> {
    canonical_cidr(&text.replace('_', "/")).map_err(RouteError::BadPath)
}

/// `198.51.100.7/24` → `198.51.100.0/24`; an error names the field.
pub fn canonical_cidr(text: &str) -> Result<String, String> {
    text.parse::<ipnet::IpNet>()
        .map(|n| n.trunc().to_string())
        .map_err(|_| format!("cidr: {text:?} is not a CIDR (like 198.51.100.0/24)"))
}

/// Every endpoint of the Overwatch API (SPEC §7).
pub const ROUTES: &[RouteDef] = &[
    def("/metrics", READ, |_, _| Ok(Route::Metrics)),
    def("/health", READ, |_, _| Ok(Route::Health)),
    def("/api/v1/overwatch/backends", READ, |_, _| {
        Ok(Route::Backends)
    }),
    def("/api/v1/overwatch/stats", READ, |_, _| Ok(Route::Stats)),
    def("/api/v1/overwatch/agents", READ, |_, _| Ok(Route::Agents)),
    def("/api/v1/overwatch/latency", READ, |_, _| Ok(Route::Latency)),
    // Before `agents/{id}`: first match wins, so an agent named
    // "expiring" is listed by GET /agents and cannot be forgotten here.
    def("/api/v1/overwatch/agents/expiring", READ, |_, _| {
        Ok(Route::ExpiringAgents)
    }),
    def(
        "/api/v1/overwatch/agents/{id}",
        "GET, HEAD, DELETE",
        |m, ps| {
            let id = p(ps, 0).to_string();
            Ok(if m == "DELETE" {
                Route::ForgetAgent(id)
            } else {
                Route::Agent(id)
            })
        },
    ),
    def("/api/v1/overwatch/agents/{id}/revoke", "POST", |_, ps| {
        Ok(Route::RevokeAgent(p(ps, 0).to_string()))
    }),
    def(
        "/api/v1/overwatch/backends/{service}/{address}/{port}/override",
        "POST, PUT, DELETE",
        |m, ps| {
            let k = backend_key(ps)?;
            Ok(if m == "DELETE" {
                Route::ClearOverride(k)
            } else {
                Route::SetOverride(k)
            })
        },
    ),
    def("/api/v1/overwatch/validate", "POST", |_, _| {
        Ok(Route::Validate)
    }),
    def("/api/v1/overrides", READ, |_, _| Ok(Route::Overrides)),
    def(
        "/api/v1/overrides/{service}/{address_port}",
        "PUT, POST, DELETE",
        |m, ps| {
            let k = service_host_port(ps)?;
            Ok(if m == "DELETE" {
                Route::ClearOverride(k)
            } else {
                Route::SetOverride(k)
            })
        },
    ),
    def("/api/v1/health/servers", READ, |_, _| {
        Ok(Route::HealthServers)
    }),
    def("/api/v1/health/regions", READ, |_, _| {
        Ok(Route::HealthRegions)
    }),
    def("/api/v1/healthz", READ, |_, _| Ok(Route::Healthz)),
    def("/api/v1/config", READ, |_, _| Ok(Route::Config)),
    def("/api/v1/domains", "GET, HEAD, POST", |m, _| {
        Ok(collection(m, Entity::Domain).unwrap_or(Route::Domains))
    }),
    def("/api/v1/domains/{name}", ENTRY, |m, ps| {
        let name = p(ps, 0).to_string();
        Ok(entry(m, Entity::Domain, &name).unwrap_or(Route::Domain(name)))
    }),
    def("/api/v1/servers", "GET, HEAD, POST", |m, _| {
        Ok(collection(m, Entity::Server).unwrap_or(Route::ManagedList(Entity::Server)))
    }),
    def("/api/v1/servers/{id}", ENTRY, |m, ps| {
        let id = server_id(p(ps, 0))?;
        Ok(entry(m, Entity::Server, &id).unwrap_or(Route::ManagedOne(Entity::Server, id)))
    }),
    def("/api/v1/regions", "GET, HEAD, POST", |m, _| {
        Ok(collection(m, Entity::Region).unwrap_or(Route::ManagedList(Entity::Region)))
    }),
    def("/api/v1/regions/{name}", ENTRY, |m, ps| {
        let name = p(ps, 0).to_string();
        Ok(entry(m, Entity::Region, &name).unwrap_or(Route::ManagedOne(Entity::Region, name)))
    }),
    def("/api/v1/cluster/status", READ, |_, _| {
        Ok(Route::ClusterStatus)
    }),
    def("/api/v1/geo/mappings", "GET, HEAD, PUT", |m, _| {
        Ok(if m == "PUT" {
            Route::SetGeoMapping
        } else {
            Route::GeoMappings
        })
    }),
    def("/api/v1/geo/test", READ, |_, _| Ok(Route::GeoTest)),
    def("/api/v1/geo/mappings/{cidr}", "DELETE", |_, ps| {
        Ok(Route::DeleteGeoMapping(geo_cidr(p(ps, 0))?))
    }),
    def("/api/v1/ready", READ, |_, _| Ok(Route::Ready)),
    def("/api/v1/live", READ, |_, _| Ok(Route::Live)),
    def("/api/v1/version", READ, |_, _| Ok(Route::Version)),
    def("/api/v1/dnssec", READ, |_, _| Ok(Route::Dnssec)),
    def("/api/v1/audit-logs", READ, |_, _| Ok(Route::AuditLogs)),
    def("/api/v1/openapi.json", READ, |_, _| Ok(Route::OpenApi)),
];

/// Maps a method and a URL (query ignored) to a route through `ROUTES`.
pub fn route(method: &str, url: &str) -> Result<Route, RouteError> {
    let (segments, _) = split_url(url);
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    for d in ROUTES {
        if let Some(params) = d.matches(&s) {
            if !d.allows(method) {
                return Err(RouteError::MethodNotAllowed { allow: d.allow });
            }
            return (d.build)(method, &params);
        }
    }
    Err(RouteError::NotFound)
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
