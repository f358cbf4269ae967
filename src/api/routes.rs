//! Pure routing: method and path in, the endpoint and its parameters out.
//! No I/O, so every route, every 404 and every 405 is unit-tested here.

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
    /// `GET /health`: the v1.1 liveness probe (docker healthchecks).
    Health,
    /// v1.1 reads (`api::v11`).
    ExpiringAgents,
    HealthRegions,
    Config,
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
        )
    }

    /// Whether the handler reads a JSON body.
    pub fn has_body(&self) -> bool {
        matches!(self, Route::RevokeAgent(_) | Route::SetOverride(_))
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

/// Maps a method and a URL (query ignored) to a route.
pub fn route(method: &str, url: &str) -> Result<Route, RouteError> {
    let (segments, _) = split_url(url);
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    use RouteError::MethodNotAllowed as Nope;
    let get = |r: Route| {
        if method == "GET" || method == "HEAD" {
            Ok(r)
        } else {
            Err(Nope { allow: "GET, HEAD" })
        }
    };
    match s.as_slice() {
        ["metrics"] => get(Route::Metrics),
        ["health"] => get(Route::Health),
        ["api", "v1", rest @ ..] => match rest {
            ["overwatch", "backends"] => get(Route::Backends),
            ["overwatch", "stats"] => get(Route::Stats),
            ["overwatch", "agents"] => get(Route::Agents),
            // GET is v1.1's list; an agent named "expiring" is still
            // forgotten with DELETE and listed by GET /agents.
            ["overwatch", "agents", "expiring"] if method == "GET" || method == "HEAD" => {
                Ok(Route::ExpiringAgents)
            }
            ["overwatch", "agents", id] => match method {
                "GET" | "HEAD" => Ok(Route::Agent(id.to_string())),
                "DELETE" => Ok(Route::ForgetAgent(id.to_string())),
                _ => Err(Nope {
                    allow: "GET, HEAD, DELETE",
                }),
            },
            ["overwatch", "agents", id, "revoke"] => match method {
                "POST" => Ok(Route::RevokeAgent(id.to_string())),
                _ => Err(Nope { allow: "POST" }),
            },
            ["overwatch", "backends", service, address, port, "override"] => {
                let k = key(service, address, port);
                match method {
                    "POST" | "PUT" => Ok(Route::SetOverride(k?)),
                    "DELETE" => Ok(Route::ClearOverride(k?)),
                    _ => Err(Nope {
                        allow: "POST, PUT, DELETE",
                    }),
                }
            }
            ["overwatch", "validate"] => match method {
                "POST" => Ok(Route::Validate),
                _ => Err(Nope { allow: "POST" }),
            },
            ["overrides"] => get(Route::Overrides),
            ["overrides", service, host_port] => {
                // v1.1 addressed overrides by IP alone; port 0 stands for
                // "the one port this address has" (write::resolve_port).
                let k = match bare_ip(host_port) {
                    Some(address) => Ok((address, 0)),
                    None => parse_host_port(host_port).map_err(RouteError::BadPath),
                };
                let k = k.map(|(address, port)| BackendKey {
                    service: service.to_string(),
                    address,
                    port,
                });
                match method {
                    "PUT" | "POST" => Ok(Route::SetOverride(k?)),
                    "DELETE" => Ok(Route::ClearOverride(k?)),
                    _ => Err(Nope {
                        allow: "PUT, POST, DELETE",
                    }),
                }
            }
            ["health", "servers"] => get(Route::HealthServers),
            ["health", "regions"] => get(Route::HealthRegions),
            ["config"] => get(Route::Config),
            ["healthz"] => get(Route::Healthz),
            ["domains"] => get(Route::Domains),
            ["domains", name] => get(Route::Domain(name.to_string())),
            ["ready"] => get(Route::Ready),
            ["live"] => get(Route::Live),
            ["version"] => get(Route::Version),
            ["audit-logs"] => get(Route::AuditLogs),
            _ => Err(RouteError::NotFound),
        },
        _ => Err(RouteError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(service: &str, address: &str, port: u16) -> BackendKey {
        BackendKey {
            service: service.into(),
            address: address.into(),
            port,
        }
    }

    #[test]
    fn every_read_route() {
        let cases = [
            ("/api/v1/overwatch/backends?status=stale", Route::Backends),
            ("/api/v1/overwatch/stats", Route::Stats),
            ("/api/v1/overwatch/agents", Route::Agents),
            (
                "/api/v1/overwatch/agents/web-1",
                Route::Agent("web-1".into()),
            ),
            ("/api/v1/overrides", Route::Overrides),
            ("/api/v1/health/servers", Route::HealthServers),
            ("/api/v1/healthz", Route::Healthz),
            ("/api/v1/domains", Route::Domains),
            (
                "/api/v1/domains/app.example.com",
                Route::Domain("app.example.com".into()),
            ),
            ("/api/v1/ready", Route::Ready),
            ("/api/v1/live", Route::Live),
            ("/api/v1/version", Route::Version),
            ("/api/v1/audit-logs?limit=5", Route::AuditLogs),
            ("/metrics", Route::Metrics),
            ("/health", Route::Health),
            (
                "/api/v1/overwatch/agents/expiring?within=720h",
                Route::ExpiringAgents,
            ),
            ("/api/v1/health/regions", Route::HealthRegions),
            ("/api/v1/config", Route::Config),
            ("/api/v1/overwatch/stats/", Route::Stats),
        ];
        for (url, want) in cases {
            assert_eq!(route("GET", url), Ok(want), "{url}");
        }
    }

    #[test]
    fn every_write_route() {
        let p = "/api/v1/overwatch/backends/app/10.0.0.1/80/override";
        assert_eq!(
            route("POST", p),
            Ok(Route::SetOverride(k("app", "10.0.0.1", 80)))
        );
        assert_eq!(
            route("DELETE", p),
            Ok(Route::ClearOverride(k("app", "10.0.0.1", 80)))
        );
        let p6 = "/api/v1/overwatch/backends/app/2001:db8::1/443/override";
        assert_eq!(
            route("POST", p6),
            Ok(Route::SetOverride(k("app", "2001:db8::1", 443)))
        );
        assert_eq!(
            route("PUT", "/api/v1/overrides/app/%5B::1%5D:80"),
            Ok(Route::SetOverride(k("app", "::1", 80)))
        );
        assert_eq!(
            route("DELETE", "/api/v1/overrides/app/[::1]:80"),
            Ok(Route::ClearOverride(k("app", "::1", 80)))
        );
        assert_eq!(
            route("PUT", "/api/v1/overrides/app/[2001:DB8:0::1]:80"),
            Ok(Route::SetOverride(k("app", "2001:db8::1", 80)))
        );
        assert_eq!(
            route("PUT", "/api/v1/overrides/app/10.0.0.1:8080"),
            Ok(Route::SetOverride(k("app", "10.0.0.1", 8080)))
        );
        assert_eq!(
            route("DELETE", "/api/v1/overwatch/agents/a%2Fb"),
            Ok(Route::ForgetAgent("a/b".into()))
        );
        assert_eq!(
            route("POST", "/api/v1/overwatch/agents/a1/revoke"),
            Ok(Route::RevokeAgent("a1".into()))
        );
        assert_eq!(
            route("POST", "/api/v1/overwatch/validate"),
            Ok(Route::Validate)
        );
        assert!(
            route("POST", "/api/v1/overwatch/validate")
                .map(|r| r.is_write())
                .unwrap_or(false)
        );
        assert!(!Route::Backends.is_write());
    }

    #[test]
    fn unknown_paths_are_404() {
        for url in [
            "/",
            "/api",
            "/api/v2/overwatch/stats",
            "/api/v1/nope",
            "/api/v1/overwatch/agents/a/b/c",
            "/metricsx",
        ] {
            assert_eq!(route("GET", url), Err(RouteError::NotFound), "{url}");
        }
    }

    #[test]
    fn wrong_methods_are_405_with_allow() {
        assert_eq!(
            route("POST", "/api/v1/overwatch/stats"),
            Err(RouteError::MethodNotAllowed { allow: "GET, HEAD" })
        );
        assert_eq!(
            route("GET", "/api/v1/overwatch/validate"),
            Err(RouteError::MethodNotAllowed { allow: "POST" })
        );
        assert_eq!(
            route("PATCH", "/api/v1/overwatch/agents/x"),
            Err(RouteError::MethodNotAllowed {
                allow: "GET, HEAD, DELETE"
            })
        );
        assert_eq!(
            route("GET", "/api/v1/overrides/app/10.0.0.1:80"),
            Err(RouteError::MethodNotAllowed {
                allow: "PUT, POST, DELETE"
            })
        );
    }

    /// v1.1: an override addressed by IP alone (port resolved later).
    #[test]
    fn overrides_by_bare_address() {
        for (url, address) in [
            ("/api/v1/overrides/app/10.0.0.1", "10.0.0.1"),
            ("/api/v1/overrides/app/%5B2001:DB8::1%5D", "2001:db8::1"),
        ] {
            assert_eq!(
                route("PUT", url),
                Ok(Route::SetOverride(BackendKey {
                    service: "app".into(),
                    address: address.into(),
                    port: 0,
                })),
                "{url}"
            );
        }
    }

    #[test]
    fn malformed_parameters_are_400() {
        for url in [
            "/api/v1/overrides/app/10.0.0.300",
            "/api/v1/overrides/app/10.0.0.1:0",
            "/api/v1/overrides/app/::1:80",
            "/api/v1/overrides/app/[::1]80",
            "/api/v1/overrides/app/:80",
            "/api/v1/overwatch/backends/app/10.0.0.1/99999/override",
        ] {
            assert!(
                matches!(route("PUT", url), Err(RouteError::BadPath(_))),
                "{url}"
            );
        }
    }

    #[test]
    fn query_and_percent_decoding() {
        assert_eq!(
            query_pairs("status=stale&service=my+app&region=eu%2Dwest&flag"),
            vec![
                ("status".into(), "stale".into()),
                ("service".into(), "my app".into()),
                ("region".into(), "eu-west".into()),
                ("flag".into(), String::new()),
            ]
        );
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%e2%82%ac"), "€");
    }
}
