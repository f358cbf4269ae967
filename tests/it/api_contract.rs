//! The HTTP API contract of SPEC §7, checked against the real server on a
//! free loopback port: every endpoint and field, the filters, the ACL and
//! token checks, and the error codes an operator's scripts depend on.

use crate::util::api::*;
use opengslb::api::Command;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut k: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    k.sort();
    k
}

#[test]
fn backends_have_every_field_and_filter() {
    let f = start(|_| {});
    let r = get(&f, "/api/v1/overwatch/backends");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["generated_at"], "2026-11-21T23:10:58Z");
    let backends = v["backends"].as_array().expect("array");
    assert_eq!(backends.len(), 4);
    let want = sorted(&[
        "service",
        "address",
        "port",
        "weight",
        "region",
        "agent_id",
        "effective_status",
        "status_reason",
        "agent_healthy",
        "agent_last_seen",
        "validation_healthy",
        "validation_last_check",
        "validation_error",
        "override_status",
        "override_reason",
        "override_by",
        "override_at",
        "override_expires_at",
        "drain_reason",
        "round_trip_ms",
    ]);
    for b in backends {
        assert_eq!(keys(b), want);
    }
    assert_eq!(backends[0]["agent_last_seen"], "2026-11-21T23:10:57Z");
    assert!(backends[0]["override_status"].is_null());
    assert_eq!(backends[3]["override_expires_at"], "2026-11-22T00:09:18Z");

    let stale = get(&f, "/api/v1/overwatch/backends?status=stale").json();
    assert_eq!(stale["backends"].as_array().map(Vec::len), Some(1));
    assert_eq!(stale["backends"][0]["address"], "10.0.2.10");
    let eu_app = get(
        &f,
        "/api/v1/overwatch/backends?service=app.example.com&region=eu-west",
    )
    .json();
    assert_eq!(eu_app["backends"].as_array().map(Vec::len), Some(2));
    let bad = get(&f, "/api/v1/overwatch/backends?status=sick");
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"].as_str().unwrap_or("").contains("sick"));
}

#[test]
fn stats_fields() {
    let f = start(|_| {});
    let v = get(&f, "/api/v1/overwatch/stats").json();
    assert_eq!(
        keys(&v),
        sorted(&[
            "active_agents",
            "stale_agents",
            "registered_agents",
            "total_backends",
            "healthy_backends",
            "unhealthy_backends",
            "draining_backends",
            "stale_backends",
            "active_overrides",
            "validation_enabled",
            "validated_backends",
            "disagreement_count",
            "unique_services",
            "backends_by_service",
            "backends_by_region",
            "generated_at",
        ])
    );
    assert_eq!(v["total_backends"], 4);
    assert_eq!(v["healthy_backends"], 1);
    assert_eq!(v["stale_backends"], 1);
    assert_eq!(v["draining_backends"], 1);
    assert_eq!(v["unhealthy_backends"], 1);
    assert_eq!(v["registered_agents"], 2);
    assert_eq!(v["active_overrides"], 1);
    assert_eq!(v["validated_backends"], 1);
    assert_eq!(v["unique_services"], 2);
    assert_eq!(v["backends_by_service"]["app.example.com"], 3);
    assert_eq!(v["backends_by_region"]["us-east"], 1);
}

#[test]
fn agents_list_and_one() {
    let f = start(|_| {});
    let v = get(&f, "/api/v1/overwatch/agents").json();
    let agents = v["agents"].as_array().expect("array");
    assert_eq!(agents.len(), 3);
    let want = sorted(&[
        "id",
        "region",
        "status",
        "reject_reason",
        "last_error",
        "address",
        "fingerprint",
        "cert_not_after",
        "first_seen",
        "last_seen",
        "backend_count",
    ]);
    for a in agents {
        assert_eq!(keys(a), want);
    }
    assert_eq!(agents[2]["status"], "rejected");
    assert_eq!(agents[2]["reject_reason"], "pin_mismatch");
    let one = get(&f, "/api/v1/overwatch/agents/web-2").json();
    assert_eq!(one["status"], "stale");
    let missing = get(&f, "/api/v1/overwatch/agents/zzz");
    assert_eq!(missing.status, 404);
    assert_eq!(keys(&missing.json()), sorted(&["error", "code"]));
    assert_eq!(missing.json()["code"], 404);
}

#[test]
fn overrides_domains_servers_audit() {
    let f = start(|_| {});
    let o = get(&f, "/api/v1/overrides").json();
    assert_eq!(
        keys(&o["overrides"][0]),
        sorted(&[
            "service",
            "address",
            "port",
            "healthy",
            "reason",
            "by",
            "at",
            "expires_at"
        ])
    );
    let d = get(&f, "/api/v1/domains").json();
    assert_eq!(
        keys(&d["domains"][0]),
        sorted(&[
            "name",
            "routing_algorithm",
            "ttl",
            "answers",
            "min_healthy",
            "drain_guard_active",
            "source",
            "shadowed_by_config"
        ])
    );
    let one = get(&f, "/api/v1/domains/APP.example.com.").json();
    assert_eq!(one["answers"][0], "10.0.1.10");
    assert_eq!(get(&f, "/api/v1/domains/nope.example.com").status, 404);
    let s = get(&f, "/api/v1/health/servers").json();
    let servers = s["servers"].as_array().expect("array");
    assert_eq!(servers.len(), 4);
    assert_eq!(
        keys(&servers[0]),
        sorted(&[
            "address",
            "port",
            "service",
            "region",
            "healthy",
            "status",
            "last_check"
        ])
    );
    assert_eq!(servers[0]["healthy"], true);
    assert_eq!(servers[1]["status"], "stale");
    let a = get(&f, "/api/v1/audit-logs").json();
    assert_eq!(
        keys(&a["entries"][0]),
        sorted(&["at", "by", "from", "action", "target", "detail", "result"])
    );
    assert_eq!(a["entries"][0]["at"], "2026-11-21T23:09:18Z");
    assert_eq!(
        get(&f, "/api/v1/audit-logs?limit=0").json()["entries"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    assert_eq!(get(&f, "/api/v1/audit-logs?limit=x").status, 400);
}

#[test]
fn healthz_exact_shape() {
    let f = start(|_| {});
    let v = get(&f, "/api/v1/healthz").json();
    assert_eq!(keys(&v), sorted(&["status", "lost_agents", "generated_at"]));
    assert_eq!(v["status"], "degraded");
    let lost = &v["lost_agents"][0];
    assert_eq!(
        keys(lost),
        sorted(&["agent_id", "env", "ip", "service", "last_heartbeat"])
    );
    assert_eq!(lost["env"], "ap-south");
    assert_eq!(lost["last_heartbeat"], "2026-11-21 21:10:58");
    let mut view = sample_view();
    view.lost_agents.clear();
    f.view.publish(view);
    assert_eq!(get(&f, "/api/v1/healthz").json()["status"], "ok");
}

#[test]
fn probes_version_metrics() {
    let f = start(|_| {});
    assert_eq!(get(&f, "/api/v1/live").status, 200);
    assert_eq!(get(&f, "/api/v1/ready").status, 200);
    let mut view = sample_view();
    view.ready = false;
    f.view.publish(view);
    let not_ready = get(&f, "/api/v1/ready");
    assert_eq!(not_ready.status, 503);
    assert_eq!(not_ready.json()["code"], 503);
    let v = get(&f, "/api/v1/version").json();
    assert_eq!(v["version"], opengslb::VERSION);
    let m = get(&f, "/metrics");
    assert_eq!(m.status, 200);
    assert!(
        m.header("Content-Type")
            .unwrap_or("")
            .starts_with("text/plain; version=0.0.4")
    );
    assert!(m.body.contains("opengslb_overwatch_agents_registered 2"));
}

#[test]
fn writes_become_commands() {
    let f = start(|_| {});
    let json = [("Content-Type", "application/json"), ("X-User", "bob")];
    let r = http(
        f.addr,
        "POST",
        "/api/v1/overwatch/backends/app.example.com/10.0.1.10/80/override",
        &json,
        br#"{"healthy": false, "reason": "maint", "expires_in": "1h"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["action"], "set_override");
    let r = http(
        f.addr,
        "PUT",
        "/api/v1/overrides/app.example.com/%5B2001:db8::1%5D:443",
        &json,
        br#"{"healthy": true, "reason": "ok", "expires_in": 60}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        http(
            f.addr,
            "DELETE",
            "/api/v1/overrides/app.example.com/[::1]:80",
            &json,
            b""
        )
        .status,
        200
    );
    assert_eq!(
        http(
            f.addr,
            "DELETE",
            "/api/v1/overwatch/backends/app.example.com/10.0.1.10/80/override",
            &[],
            b""
        )
        .status,
        200
    );
    assert_eq!(
        http(f.addr, "DELETE", "/api/v1/overwatch/agents/web-3", &[], b"").status,
        200
    );
    assert_eq!(
        http(
            f.addr,
            "POST",
            "/api/v1/overwatch/agents/web-3/revoke",
            &json,
            br#"{"reason": "stolen"}"#
        )
        .status,
        200
    );
    assert_eq!(
        http(f.addr, "POST", "/api/v1/overwatch/validate", &[], b"").status,
        200
    );
    let refused = http(f.addr, "DELETE", "/api/v1/overwatch/agents/nope", &[], b"");
    assert_eq!(refused.status, 404);
    assert_eq!(refused.json()["code"], 404);

    let seen = f.seen();
    assert_eq!(seen.len(), 8);
    assert_eq!(
        seen[0].command,
        Command::SetOverride {
            service: "app.example.com".into(),
            address: "10.0.1.10".into(),
            port: 80,
            healthy: false,
            reason: "maint".into(),
            expires_in: Some(Duration::from_secs(3600)),
        }
    );
    assert_eq!(seen[0].by, "bob");
    assert_eq!(seen[0].from, "127.0.0.1");
    assert!(
        matches!(&seen[1].command, Command::SetOverride { address, port: 443, healthy: true, expires_in: Some(d), .. } if address == "2001:db8::1" && d.as_secs() == 60)
    );
    assert!(
        matches!(&seen[2].command, Command::ClearOverride { address, port: 80, .. } if address == "::1")
    );
    assert_eq!(seen[4].command, Command::ForgetAgent { id: "web-3".into() });
    assert_eq!(
        seen[5].command,
        Command::RevokeAgent {
            id: "web-3".into(),
            reason: "stolen".into()
        }
    );
    assert_eq!(seen[6].command, Command::Validate);
    assert_eq!(seen[6].by, "anonymous");
}

#[test]
fn error_codes() {
    let f = start(|_| {});
    let nf = get(&f, "/api/v1/nothing");
    assert_eq!(nf.status, 404);
    assert_eq!(keys(&nf.json()), sorted(&["error", "code"]));
    let na = http(f.addr, "POST", "/api/v1/overwatch/stats", &[], b"{}");
    assert_eq!(na.status, 405);
    assert_eq!(na.header("Allow"), Some("GET, HEAD"));
    assert_eq!(na.json()["code"], 405);
    let na = get(&f, "/api/v1/overwatch/validate");
    assert_eq!((na.status, na.header("Allow")), (405, Some("POST")));
    let path = "/api/v1/overrides/app.example.com/10.0.1.10:80";
    let bad = http(f.addr, "PUT", path, &[], b"{\"healthy\": tru");
    assert_eq!(bad.status, 400);
    let msg = bad.json()["error"].as_str().unwrap_or("").to_string();
    assert!(
        msg.contains("invalid JSON body") && msg.contains("line 1"),
        "{msg}"
    );
    let missing = http(f.addr, "PUT", path, &[], br#"{"reason": "x"}"#);
    assert!(
        missing.json()["error"]
            .as_str()
            .unwrap_or("")
            .contains("missing field `healthy`")
    );
    assert_eq!(
        http(
            f.addr,
            "PUT",
            "/api/v1/overrides/app.example.com/10.0.1.10:99999",
            &[],
            b"{}"
        )
        .status,
        400
    );
    let big = vec![b' '; 70 * 1024];
    let too_big = http(f.addr, "PUT", path, &[], &big);
    assert_eq!(too_big.status, 413);
    assert_eq!(too_big.json()["code"], 413);
    assert!(
        f.seen().is_empty(),
        "no rejected write may reach the registry"
    );
}

#[test]
fn acl_denies_outside_networks() {
    let f = start(|c| c.allowed_networks = vec!["10.0.0.0/8".into()]);
    for path in ["/api/v1/live", "/metrics", "/api/v1/overwatch/backends"] {
        let r = get(&f, path);
        assert_eq!(r.status, 403, "{path}");
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap_or("")
                .contains("127.0.0.1")
        );
    }
    assert_eq!(
        http(f.addr, "POST", "/api/v1/overwatch/validate", &[], b"").status,
        403
    );
    // X-Forwarded-For is ignored unless proxy headers are trusted.
    let r = http(
        f.addr,
        "GET",
        "/api/v1/live",
        &[("X-Forwarded-For", "10.1.2.3")],
        b"",
    );
    assert_eq!(r.status, 403);
    assert!(f.seen().is_empty());

    let proxied = start(|c| {
        c.allowed_networks = vec!["10.0.0.0/8".into()];
        c.trust_proxy_headers = true;
    });
    let r = http(
        proxied.addr,
        "GET",
        "/api/v1/live",
        &[("X-Forwarded-For", "10.1.2.3, 127.0.0.1")],
        b"",
    );
    assert_eq!(r.status, 200);
    let r = http(
        proxied.addr,
        "POST",
        "/api/v1/overwatch/validate",
        &[("X-Forwarded-For", "10.1.2.3")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(proxied.seen()[0].from, "10.1.2.3");
}

#[test]
fn tokens_guard_writes_only() {
    let f = start(|c| {
        let mut t = BTreeMap::new();
        t.insert("ops".to_string(), "s3cret".to_string());
        c.tokens = t;
    });
    assert_eq!(
        get(&f, "/api/v1/overwatch/backends").status,
        200,
        "reads need no token"
    );
    let path = "/api/v1/overwatch/validate";
    let none = http(f.addr, "POST", path, &[], b"");
    assert_eq!(none.status, 401);
    assert_eq!(none.header("WWW-Authenticate"), Some("Bearer"));
    assert_eq!(none.json()["code"], 401);
    let wrong = http(
        f.addr,
        "POST",
        path,
        &[("Authorization", "Bearer nope")],
        b"",
    );
    assert_eq!(wrong.status, 401);
    assert!(f.seen().is_empty());
    let ok = http(
        f.addr,
        "POST",
        path,
        &[("Authorization", "Bearer s3cret"), ("X-User", "alice")],
        b"",
    );
    assert_eq!(ok.status, 200);
    assert_eq!(f.seen()[0].by, "alice (token ops)");
}

#[test]
fn stop_releases_the_port() {
    let mut f = start(|_| {});
    assert_eq!(get(&f, "/api/v1/live").status, 200);
    f.server.stop();
    // tiny_http's accept thread drops the listener shortly after stop()
    // returns, and exposes no way to join it: allow it two seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let mut listener = std::net::TcpListener::bind(f.addr);
    while listener.is_err() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        listener = std::net::TcpListener::bind(f.addr);
    }
    assert!(listener.is_ok(), "port still held after stop: {listener:?}");
}

#[test]
fn a_slow_body_does_not_block_reads() {
    use std::io::Write;
    let f = start(|_| {});
    // Several clients announce large bodies and never send them.
    let mut hung = Vec::new();
    for _ in 0..opengslb::api::server::WORKERS + 2 {
        let mut s = std::net::TcpStream::connect(f.addr).expect("connect");
        s.write_all(b"PUT /api/v1/overrides/app.example.com/10.0.1.10:80 HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n{")
            .expect("write");
        hung.push(s);
    }
    // Give tiny_http time to queue the hung requests to the workers first,
    // so the read below really competes with them.
    std::thread::sleep(Duration::from_millis(200));
    let r = get(&f, "/api/v1/overwatch/stats");
    assert_eq!(r.status, 200);
    drop(hung);
}

#[test]
fn head_answers_without_body() {
    let f = start(|_| {});
    let r = http(f.addr, "HEAD", "/api/v1/overwatch/stats", &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty(), "{}", r.body);
}

#[test]
fn listens_on_ipv6_loopback() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        crate::util::skip(
            "api_contract::listens_on_ipv6_loopback",
            "no IPv6 loopback on this host",
        );
        return;
    }
    let f = start(|c| c.address = "[::1]:0".into());
    assert!(f.addr.is_ipv6());
    let r = get(&f, "/api/v1/live");
    assert_eq!(r.status, 200);
    let r = http(f.addr, "POST", "/api/v1/overwatch/validate", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(f.seen()[0].from, "::1");
}

/// Regression: tiny_http's body reader allocates the whole unread length
/// when dropped, so a forged Content-Length used to abort the process.
#[test]
fn forged_content_length_does_not_kill_the_server() {
    use std::io::{Read, Write};
    let f = start(|c| c.allowed_networks = vec!["127.0.0.0/8".into()]);
    for (method, path) in [
        ("GET", "/api/v1/live"),
        ("PUT", "/api/v1/overrides/app.example.com/10.0.1.10:80"),
        ("POST", "/nowhere"),
    ] {
        let mut s = std::net::TcpStream::connect(f.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 18446744073709551615\r\n\r\n"
        );
        s.write_all(head.as_bytes()).expect("write");
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).expect("read answer");
        let text = String::from_utf8_lossy(buf.get(..n).unwrap_or(&[]));
        assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    }
    assert_eq!(get(&f, "/api/v1/live").status, 200);
    assert!(f.seen().is_empty());
}

#[test]
fn a_body_just_over_the_buffered_size_is_read() {
    let f = start(|_| {});
    let reason = "r".repeat(3000);
    let body = format!(r#"{{"healthy": false, "reason": "{reason}"}}"#);
    let r = http(
        f.addr,
        "PUT",
        "/api/v1/overrides/app.example.com/10.0.1.10:80",
        &[],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http(f.addr, "GET", "/api/v1/live", &[], &vec![b'x'; 5000]);
    assert_eq!(r.status, 200);
}
