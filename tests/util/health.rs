//! Health-check fixtures shared by tests/it/health_checks.rs and the
//! timing harness (tests/bench/timing.rs): an HTTP backend whose status
//! can be switched, a port nobody listens on, a listener that never
//! answers, and builders for checks, probe specs and checker targets.

use crossbeam_channel::Receiver;
use opengslb::config::{CheckType, Dur, HealthCheck};
use opengslb::health::{CheckResult, ProbeSpec, Target, TargetId};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An HTTP backend whose status can be switched while it runs. With
/// `required_host` it answers 404 unless the Host header matches.
pub struct Backend {
    server: Arc<tiny_http::Server>,
    pub addr: SocketAddr,
    status: Arc<AtomicU16>,
    pub hits: Arc<AtomicUsize>,
    pub last_host: Arc<Mutex<Option<String>>>,
}

impl Backend {
    pub fn start(bind: &str, required_host: Option<&str>) -> Option<Backend> {
        let server = Arc::new(tiny_http::Server::http(bind).ok()?);
        let addr = server.server_addr().to_ip()?;
        let status = Arc::new(AtomicU16::new(200));
        let hits = Arc::new(AtomicUsize::new(0));
        let last_host = Arc::new(Mutex::new(None));
        let required = required_host.map(str::to_string);
        let (s, st, h, lh) = (
            server.clone(),
            status.clone(),
            hits.clone(),
            last_host.clone(),
        );
        std::thread::Builder::new()
            .name(format!("test-backend-{addr}"))
            .spawn(move || {
                for req in s.incoming_requests() {
                    h.fetch_add(1, Ordering::SeqCst);
                    let host = req
                        .headers()
                        .iter()
                        .find(|hd| hd.field.equiv("Host"))
                        .map(|hd| hd.value.as_str().to_string());
                    *lh.lock().unwrap() = host.clone();
                    let code = match &required {
                        Some(want) if host.as_deref() != Some(want.as_str()) => 404,
                        _ => st.load(Ordering::SeqCst),
                    };
                    let mut resp = tiny_http::Response::from_string("ok").with_status_code(code);
                    if code == 301 {
                        let loc = "Location: http://127.0.0.1:1/moved".parse::<tiny_http::Header>();
                        resp = resp.with_header(loc.unwrap());
                    }
                    let _ = req.respond(resp);
                }
            })
            .unwrap();
        Some(Backend {
            server,
            addr,
            status,
            hits,
            last_host,
        })
    }

    pub fn set_status(&self, code: u16) {
        self.status.store(code, Ordering::SeqCst);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

/// A port on `ip` that nobody listens on.
pub fn closed_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Accepts connections and never answers.
pub fn black_hole(ip: &str) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::Builder::new()
        .name("test-black-hole".into())
        .spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                held.push(conn);
            }
        })
        .unwrap();
    addr
}

pub fn check(kind: CheckType) -> HealthCheck {
    HealthCheck {
        kind,
        path: "/health".into(),
        timeout: Dur::secs(1),
        ..HealthCheck::default()
    }
}

pub fn spec_at(hc: &HealthCheck, addr: SocketAddr) -> ProbeSpec {
    ProbeSpec::new(hc, addr).unwrap()
}

pub fn target(id: TargetId, spec: ProbeSpec, interval_ms: u64, fail: u32, rise: u32) -> Target {
    Target {
        id,
        spec,
        interval: Duration::from_millis(interval_ms),
        failure_threshold: fail,
        success_threshold: rise,
    }
}

/// Next result for `id`, skipping others; panics after `within`.
pub fn next_for(rx: &Receiver<CheckResult>, id: TargetId, within: Duration) -> CheckResult {
    let deadline = Instant::now() + within;
    loop {
        let r = rx
            .recv_deadline(deadline)
            .unwrap_or_else(|_| panic!("no result for target {id} within {within:?}"));
        if r.id == id {
            return r;
        }
    }
}
