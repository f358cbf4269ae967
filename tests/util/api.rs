//! Shared fixture of the API and CLI tests: the real API server on a free
//! loopback port, fed a hand-built view and a fake registry thread that
//! records every command and answers it; a fake agent local API; and a raw
//! HTTP/1.1 helper so status codes and headers are checked byte for byte.

use crossbeam_channel::unbounded;
use opengslb::api::view::*;
use opengslb::api::{ApiError, ApiServer, Command, CommandRequest};
use opengslb::config::ApiConfig;
use opengslb::snapshot::SnapshotCell;
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const NOW: u64 = 1_795_302_658; // 2026-11-21T23:10:58Z

/// A command as the fake registry received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub command: Command,
    pub by: String,
    pub from: String,
}

pub struct Fixture {
    pub server: ApiServer,
    pub addr: SocketAddr,
    pub base: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub view: Arc<SnapshotCell<OverwatchView>>,
}

impl Fixture {
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn backend(
    service: &str,
    address: &str,
    port: u16,
    region: &str,
    status: BackendStatus,
    reason: &str,
) -> BackendView {
    BackendView {
        service: service.into(),
        address: address.into(),
        port,
        weight: 100,
        region: region.into(),
        effective_status: status,
        status_reason: reason.into(),
        ..Default::default()
    }
}

pub fn sample_view() -> OverwatchView {
    let mut healthy = backend(
        "app.example.com",
        "10.0.1.10",
        80,
        "eu-west",
        BackendStatus::Healthy,
        "healthy",
    );
    healthy.agent_id = Some("web-1".into());
    healthy.agent_healthy = Some(true);
    healthy.agent_last_seen = LastSeen::at(NOW - 1);
    healthy.validation_healthy = Some(true);
    healthy.validation_last_check = Some(NOW - 5);
    let mut stale = backend(
        "app.example.com",
        "10.0.2.10",
        80,
        "us-east",
        BackendStatus::Stale,
        "agent_stale",
    );
    stale.agent_id = Some("web-2".into());
    stale.agent_healthy = Some(true);
    stale.agent_last_seen = LastSeen::at(NOW - 60);
    let mut draining = backend(
        "api.example.com",
        "2001:db8::1",
        443,
        "eu-west",
        BackendStatus::Draining,
        "agent_draining",
    );
    draining.agent_id = Some("web-1".into());
    draining.drain_reason = Some("drain file".into());
    let mut forced = backend(
        "app.example.com",
        "10.0.1.11",
        80,
        "eu-west",
        BackendStatus::Unhealthy,
        "override",
    );
    forced.override_status = Some("unhealthy".into());
    forced.override_reason = Some("maintenance".into());
    forced.override_by = Some("alice".into());
    forced.override_at = Some(NOW - 100);
    forced.override_expires_at = Some(NOW + 3500);
    OverwatchView {
        node_id: "ow-1".into(),
        generated_at: NOW,
        ready: true,
        validation_enabled: true,
        disagreement_count: 1,
        backends: vec![healthy.into(), stale.into(), draining.into(), forced.into()],
        agents: vec![
            AgentView {
                id: "web-1".into(),
                region: "eu-west".into(),
                status: AgentStatus::Active,
                address: Some("10.0.1.10:7946".into()),
                fingerprint: Some("ab".repeat(32)),
                cert_not_after: Some(NOW + 86_400 * 365),
                first_seen: Some(NOW - 3600),
                last_seen: LastSeen::at(NOW - 1),
                backend_count: 2,
                ..Default::default()
            }
            .into(),
            AgentView {
                id: "web-2".into(),
                region: "us-east".into(),
                status: AgentStatus::Stale,
                last_seen: LastSeen::at(NOW - 60),
                backend_count: 1,
                ..Default::default()
            }
            .into(),
            AgentView {
                id: "web-3".into(),
                region: "us-east".into(),
                status: AgentStatus::Rejected,
                reject_reason: Some("pin_mismatch".into()),
                last_error: Some("certificate does not match the pinned one".into()),
                ..Default::default()
            }
            .into(),
        ],
        overrides: vec![OverrideView {
            service: "app.example.com".into(),
            address: "10.0.1.11".into(),
            port: 80,
            healthy: false,
            reason: "maintenance".into(),
            by: "alice".into(),
            at: NOW - 100,
            expires_at: Some(NOW + 3500),
        }],
        domains: vec![
            DomainView {
                name: "app.example.com".into(),
                routing_algorithm: "round-robin".into(),
                ttl: 30,
                answers: vec!["10.0.1.10".into()],
                ..Default::default()
            }
            .into(),
        ],
        lost_agents: vec![LostAgentView {
            agent_id: "web-9".into(),
            region: "ap-south".into(),
            ip: "10.0.9.9".into(),
            service: "app.example.com".into(),
            last_heartbeat: NOW - 7200,
        }],
        audit: vec![AuditEntry {
            at: NOW - 100,
            by: "alice".into(),
            from: "127.0.0.1".into(),
            action: "set_override".into(),
            target: "app.example.com/10.0.1.11:80".into(),
            detail: Some("unhealthy: maintenance".into()),
            result: "ok".into(),
        }],
        managed: Default::default(),
        geo_mappings: Vec::new(),
        geo: None,
    }
}

/// Starts the API on 127.0.0.1:0 with `tweak` applied to the config.
pub fn start(tweak: impl FnOnce(&mut ApiConfig)) -> Fixture {
    let mut cfg = ApiConfig {
        address: "127.0.0.1:0".into(),
        ..ApiConfig::default()
    };
    tweak(&mut cfg);
    let view = Arc::new(SnapshotCell::new(sample_view()));
    let (tx, rx) = unbounded::<CommandRequest>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = seen.clone();
    std::thread::Builder::new()
        .name("fake-registry".into())
        .spawn(move || {
            for req in rx {
                let reply = match &req.command {
                    Command::ForgetAgent { id } | Command::RevokeAgent { id, .. }
                        if id == "nope" =>
                    {
                        Err(ApiError::not_found(format!("no agent {id:?}")))
                    }
                    c => Ok(json!({"ok": true, "action": c.action(), "target": c.target()})),
                };
                if let Ok(mut s) = recorder.lock() {
                    s.push(Seen {
                        command: req.command.clone(),
                        by: req.by.clone(),
                        from: req.from.clone(),
                    });
                }
                let _ = req.reply.send(reply);
            }
        })
        .expect("spawn fake registry");
    let metrics: opengslb::api::MetricsFn = Arc::new(|| {
        "# TYPE opengslb_overwatch_agents_registered gauge\nopengslb_overwatch_agents_registered 2\n".to_string()
    });
    let config: opengslb::api::server::ConfigFn =
        Arc::new(|| opengslb::config::redact::redacted_json(&opengslb::config::Config::default()));
    let cluster: opengslb::api::server::ConfigFn = Arc::new(
        || serde_json::json!({"node_id": "ow-test", "digest": "", "peers": [], "generated_at": "2026-01-01T00:00:00Z"}),
    );
    let learned = opengslb::overwatch::learned::Learned::default();
    let latency: opengslb::api::server::LatencyFn =
        Arc::new(move |q: &str| learned.page_json(q, 0));
    let server = opengslb::api::start(&cfg, view.clone(), tx, metrics, config, cluster, latency)
        .expect("start API");
    let addr = server.local_addr();
    Fixture {
        base: format!("http://{addr}"),
        server,
        addr,
        seen,
        view,
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request over a fresh connection.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write head");
    s.write_all(body).expect("write body");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_string(),
    }
}

pub fn get(f: &Fixture, path: &str) -> Resp {
    http(f.addr, "GET", path, &[], b"")
}

/// A fake agent local API: status, drain on, drain off. Returns its base
/// URL and the log of requests it served.
pub fn fake_agent() -> (String, Arc<Mutex<Vec<String>>>) {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("bind fake agent");
    let addr = server.server_addr().to_ip().expect("ip listener");
    let log = Arc::new(Mutex::new(Vec::new()));
    let recorder = log.clone();
    std::thread::Builder::new()
        .name("fake-agent".into())
        .spawn(move || {
            for mut req in server.incoming_requests() {
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                let line = format!("{} {} {}", req.method(), req.url(), body);
                if let Ok(mut l) = recorder.lock() {
                    l.push(line);
                }
                let answer = match (req.method().as_str(), req.url()) {
                    ("GET", "/api/v1/agent/status") => {
                        json!({"agent_id": "web-1", "region": "eu-west", "draining": false, "backends": 2})
                    }
                    ("POST", "/api/v1/agent/drain") => json!({"draining": true}),
                    ("DELETE", "/api/v1/agent/drain") => json!({"draining": false}),
                    _ => json!({"error": "no such endpoint", "code": 404}),
                };
                let _ = req.respond(tiny_http::Response::from_string(answer.to_string()));
            }
        })
        .expect("spawn fake agent");
    (format!("http://{addr}"), log)
}
