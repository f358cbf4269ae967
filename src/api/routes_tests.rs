//! Unit tests of the API routing table (routes.rs): every route, 404 and
//! 405, and the parsers of path parameters.

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
        ("/api/v1/overwatch/latency?limit=5", Route::Latency),
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
        ("/api/v1/dnssec", Route::Dnssec),
        ("/api/v1/audit-logs?limit=5", Route::AuditLogs),
        ("/metrics", Route::Metrics),
        ("/health", Route::Health),
        (
            "/api/v1/overwatch/agents/expiring?within=720h",
            Route::ExpiringAgents,
        ),
        ("/api/v1/health/regions", Route::HealthRegions),
        ("/api/v1/config", Route::Config),
        ("/api/v1/cluster/status", Route::ClusterStatus),
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

#[test]
fn geo_routes() {
    assert_eq!(route("GET", "/api/v1/geo/mappings"), Ok(Route::GeoMappings));
    assert_eq!(
        route("PUT", "/api/v1/geo/mappings"),
        Ok(Route::SetGeoMapping)
    );
    assert_eq!(
        route("GET", "/api/v1/geo/test?ip=10.0.0.1"),
        Ok(Route::GeoTest)
    );
    for path in [
        "/api/v1/geo/mappings/10.0.0.0%2F8",
        "/api/v1/geo/mappings/10.0.0.0_8",
        "/api/v1/geo/mappings/10.1.2.3%2f8",
    ] {
        assert_eq!(
            route("DELETE", path),
            Ok(Route::DeleteGeoMapping("10.0.0.0/8".into())),
            "{path}"
        );
    }
    assert_eq!(
        route("DELETE", "/api/v1/geo/mappings/2001:db8::%2F32"),
        Ok(Route::DeleteGeoMapping("2001:db8::/32".into()))
    );
    assert!(matches!(
        route("DELETE", "/api/v1/geo/mappings/nope"),
        Err(RouteError::BadPath(m)) if m.starts_with("cidr:")
    ));
    assert!(route("POST", "/api/v1/geo/mappings").is_err());
}
