//! The agent's local API on `agent.api.address` (default 127.0.0.1:9100):
//! `GET /api/v1/agent/status`, `POST`/`DELETE /api/v1/agent/drain` and
//! `GET /metrics`. Reads come from the snapshot the agent runtime
//! publishes; drain commands go to the runtime, which owns the state.

use crate::httpserve::{self, HttpServer, Reply};
use crate::metrics::Render;
use crate::snapshot::SnapshotCell;
use crossbeam_channel::{Sender, bounded};
use serde::Serialize;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tiny_http::{Header, Method, Request};

/// Larger bodies never reach the routes (`httpserve` refuses them).
const MAX_BODY: usize = crate::httpbody::PREBUFFERED;

/// What `GET /api/v1/agent/status` shows.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AgentStatusView {
    pub agent_id: String,
    pub region: String,
    pub draining: bool,
    pub drain_source: Option<String>,
    pub drain_reason: Option<String>,
    pub cert_fingerprint: Option<String>,
    pub cert_not_after: Option<String>,
    pub backends: Vec<BackendStatus>,
    pub overwatches: Vec<OverwatchStatus>,
    pub generated_at: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct BackendStatus {
    pub service: String,
    pub address: String,
    pub port: u16,
    pub weight: u32,
    pub healthy: bool,
    pub last_error: Option<String>,
    pub last_check: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct OverwatchStatus {
    pub address: String,
    pub connected: bool,
    pub last_ack: Option<String>,
    pub rtt_ms: Option<f64>,
    pub last_error: Option<String>,
}

/// A drain command: `Some(reason)` drains, `None` lifts the operator drain.
pub type DrainCommand = (Option<String>, Sender<()>);

/// Binds `address` and serves the agent API on the `agent-api` thread.
pub fn start(
    address: SocketAddr,
    view: Arc<SnapshotCell<AgentStatusView>>,
    drains: Sender<DrainCommand>,
    metrics: Render,
) -> std::io::Result<HttpServer> {
    HttpServer::start("agent-api", address, move |req| {
        route(req, &view, &drains, &*metrics)
    })
}

fn json<T: Serialize>(code: u16, body: &T) -> Reply {
    let bytes = serde_json::to_vec_pretty(body).unwrap_or_default();
    httpserve::reply(code, "application/json", bytes)
}

fn error(code: u16, msg: &str) -> Reply {
    json(code, &serde_json::json!({"error": msg, "code": code}))
}

/// 405 with the `Allow` header RFC 9110 requires.
fn not_allowed(allow: &'static str) -> Reply {
    let resp = error(405, &format!("method not allowed; allowed: {allow}"));
    match Header::from_bytes("Allow", allow) {
        Ok(h) => resp.with_header(h),
        Err(()) => resp,
    }
}

fn route(
    req: &mut Request,
    view: &SnapshotCell<AgentStatusView>,
    drains: &Sender<DrainCommand>,
    metrics: &(dyn Fn() -> String + Send + Sync),
) -> Reply {
    let path = httpserve::path(req).to_string();
    let method = req.method().clone();
    match (path.as_str(), &method) {
        ("/api/v1/agent/status", Method::Get) => json(200, &*view.load()),
        ("/api/v1/agent/drain", Method::Post) => {
            let mut body = Vec::new();
            let read = req
                .as_reader()
                .take(MAX_BODY as u64 + 1)
                .read_to_end(&mut body);
            if read.is_err() {
                error(400, "could not read the request body")
            } else if body.len() > MAX_BODY {
                error(413, "request body too large")
            } else {
                match drain_reason(&body) {
                    Ok(reason) => send_drain(drains, Some(reason), view),
                    Err(e) => error(400, &e),
                }
            }
        }
        ("/api/v1/agent/drain", Method::Delete) => send_drain(drains, None, view),
        ("/metrics", Method::Get) => httpserve::metrics(metrics()),
        ("/health", Method::Get | Method::Head) => httpserve::health(),
        ("/api/v1/agent/status" | "/metrics", _) => not_allowed("GET"),
        ("/health", _) => not_allowed("GET, HEAD"),
        ("/api/v1/agent/drain", _) => not_allowed("POST, DELETE"),
        _ => error(404, "not found"),
    }
}

/// `{"reason": "..."}`, or an empty body for the default reason.
fn drain_reason(body: &[u8]) -> Result<String, String> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok("drained by operator".into());
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        reason: Option<String>,
    }
    let b: Body = serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
    Ok(b.reason
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "drained by operator".into()))
}

fn send_drain(
    drains: &Sender<DrainCommand>,
    reason: Option<String>,
    view: &SnapshotCell<AgentStatusView>,
) -> Reply {
    let (tx, rx) = bounded(1);
    if drains.send((reason, tx)).is_err() || rx.recv_timeout(Duration::from_secs(5)).is_err() {
        return error(503, "agent is shutting down");
    }
    json(200, &*view.load())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_bodies() {
        assert_eq!(drain_reason(b"").unwrap(), "drained by operator");
        assert_eq!(
            drain_reason(br#"{"reason":"patching"}"#).unwrap(),
            "patching"
        );
        assert!(drain_reason(b"{").unwrap_err().contains("invalid JSON"));
        assert!(drain_reason(br#"{"why":"x"}"#).is_err());
    }
}
