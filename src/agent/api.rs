//! The agent's local API on `agent.api.address` (default 127.0.0.1:9100):
//! `GET /api/v1/agent/status`, `POST`/`DELETE /api/v1/agent/drain` and
//! `GET /metrics`. Reads come from the snapshot the agent runtime
//! publishes; drain commands go to the runtime, which owns the state.

use crate::snapshot::SnapshotCell;
use crossbeam_channel::{Sender, bounded};
use serde::Serialize;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use tiny_http::{Header, Method, Request, Response, Server};

const MAX_BODY: usize = 16 * 1024;

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

pub struct AgentApi {
    server: Arc<Server>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl AgentApi {
    pub fn start(
        address: SocketAddr,
        view: Arc<SnapshotCell<AgentStatusView>>,
        drains: Sender<DrainCommand>,
        metrics: Arc<dyn Fn() -> String + Send + Sync>,
    ) -> std::io::Result<AgentApi> {
        let server =
            Server::http(address).map_err(|e| std::io::Error::other(format!("{address}: {e}")))?;
        let addr = server.server_addr().to_ip().unwrap_or(address);
        let server = Arc::new(server);
        let stop = Arc::new(AtomicBool::new(false));
        let (srv, flag) = (Arc::clone(&server), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("agent-api".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    match srv.recv_timeout(Duration::from_millis(500)) {
                        Ok(Some(req)) => handle(req, &view, &drains, &*metrics),
                        Ok(None) => {}
                        Err(_) => break,
                    }
                }
            })?;
        Ok(AgentApi {
            server,
            stop,
            thread: Some(thread),
            addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn json<T: Serialize>(code: u16, body: &T) -> Response<std::io::Cursor<Vec<u8>>> {
    let bytes = serde_json::to_vec_pretty(body).unwrap_or_default();
    Response::from_data(bytes)
        .with_status_code(code)
        .with_header(Header::from_bytes("Content-Type", "application/json").expect("static header"))
}

fn error(code: u16, msg: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    json(code, &serde_json::json!({"error": msg, "code": code}))
}

/// 405 with the `Allow` header RFC 9110 requires.
fn not_allowed(allow: &'static str) -> Response<std::io::Cursor<Vec<u8>>> {
    let resp = error(405, &format!("method not allowed; allowed: {allow}"));
    match Header::from_bytes("Allow", allow) {
        Ok(h) => resp.with_header(h),
        Err(()) => resp,
    }
}

fn handle(
    mut req: Request,
    view: &SnapshotCell<AgentStatusView>,
    drains: &Sender<DrainCommand>,
    metrics: &(dyn Fn() -> String + Send + Sync),
) {
    let path = req.url().split('?').next().unwrap_or("").to_string();
    let method = req.method().clone();
    let resp = match (path.as_str(), &method) {
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
        ("/metrics", Method::Get) => Response::from_string(metrics()).with_header(
            Header::from_bytes("Content-Type", "text/plain; version=0.0.4").expect("static header"),
        ),
        ("/api/v1/agent/status" | "/metrics", _) => not_allowed("GET"),
        ("/api/v1/agent/drain", _) => not_allowed("POST, DELETE"),
        _ => error(404, "not found"),
    };
    let _ = req.respond(resp);
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
) -> Response<std::io::Cursor<Vec<u8>>> {
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
