//! The HTTP server of the Overwatch API on tiny_http.
//!
//! A few named worker threads take parsed requests from tiny_http's queue;
//! each request is checked against the network ACL, routed, and either
//! answered from the published view (reads) or handed to a short-lived
//! writer thread that reads the body, sends the command to the registry and
//! waits for its reply (writes).
//!
//! Slow clients: tiny_http parses request heads on its own per-connection
//! threads, and reads bodies of up to 1 KiB (every body this API accepts in
//! practice) there too, before the request is queued; so a slow client
//! never holds a worker. Writes, and any request whose body tiny_http did
//! not buffer, run on a short-lived side thread; at most `MAX_WRITERS`
//! exist, beyond that such requests are refused while reads keep flowing.
//! Bodies are read through a 64 KiB limit (413 above it, checked first
//! against Content-Length); a declared body above 1 MiB is refused without
//! being drained (`crate::httpbody`). The socket is bound through
//! `crate::httpguard`: a read or write that blocks longer than its idle
//! deadline fails, a connection older than its age limit (a body that
//! trickles in) is shut down, and so are connections beyond the
//! per-client and total caps; so a slow client holds a side thread or a
//! worker for a bounded time (at most the age limit). One client address
//! holds at most `MAX_WRITERS_PER_SOURCE` of the `MAX_WRITERS` side
//! threads (`api::writers`), so trickled bodies from one source cannot
//! lock other operators out of writes. A request answered without its
//! body being read (a refused write, an oversized body) is finished
//! through `crate::httpbody`, which never drains the body on the worker.

use super::access::{Access, author};
use super::command::{ApiError, CommandRequest, CommandSender, REPLY_TIMEOUT};
use super::routes::{Route, RouteError, route};
use super::view::OverwatchView;
use super::write;
use super::writers::{Refused, WriterSlots};
use super::{read, v11};
use crate::config::{ApiConfig, Listener};
use crate::httpbody;
use crate::httpguard::{self, Guard};
use crate::snapshot::SnapshotCell;
use serde_json::Value;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Worker threads answering requests.
pub const WORKERS: usize = 4;
/// Declared bodies above this are refused without being drained
/// (`crate::httpbody`).
pub const DRAIN_LIMIT: usize = httpbody::DRAIN_LIMIT;
/// Bodies up to this size are read by tiny_http before the request is
/// queued; larger ones are read from the socket later.
pub const PREBUFFERED: usize = httpbody::PREBUFFERED;
/// Concurrent writes (and requests with unbuffered bodies) in flight
/// before new ones are refused.
pub const MAX_WRITERS: usize = 16;
/// Of those, at most this many from one client address (`api::writers`).
pub const MAX_WRITERS_PER_SOURCE: usize = 4;

/// Renders the `/metrics` text.
pub type MetricsFn = crate::metrics::Render;

/// The effective configuration, secrets redacted (`GET /api/v1/config`);
/// the same shape of closure answers `GET /api/v1/cluster/status`.
pub type ConfigFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;
/// `GET /api/v1/overwatch/latency`: the query string in, the page (or why
/// the query is wrong) out.
pub type LatencyFn = Arc<dyn Fn(&str) -> Result<serde_json::Value, String> + Send + Sync>;

struct Shared {
    access: Access,
    view: Arc<SnapshotCell<OverwatchView>>,
    commands: CommandSender,
    metrics: MetricsFn,
    config: ConfigFn,
    writers: Arc<WriterSlots>,
    cluster: ConfigFn,
    latency: LatencyFn,
    /// `GET /api/v1/dnssec` (SPEC §13), set by the Overwatch after start.
    dnssec: std::sync::OnceLock<ConfigFn>,
}

/// A running API server; `stop()` (or drop) ends its threads.
pub struct ApiServer {
    addr: SocketAddr,
    /// Dropped by `stop()`, which closes the listening socket.
    server: Option<Arc<tiny_http::Server>>,
    workers: Vec<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
    guard: Option<Guard>,
    shared: Arc<Shared>,
}

/// Binds `cfg.address` and starts the workers; returns once listening.
pub fn start(
    cfg: &ApiConfig,
    view: Arc<SnapshotCell<OverwatchView>>,
    commands: CommandSender,
    metrics: MetricsFn,
    config: ConfigFn,
    cluster: ConfigFn,
    latency: LatencyFn,
) -> io::Result<ApiServer> {
    let access = Access::new(&cfg.allowed_networks, cfg.trust_proxy_headers, &cfg.tokens)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let wanted = Listener::Api
        .parse(&cfg.address)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("api.address: {e}")))?;
    let (server, guard) = httpguard::bind("api", wanted, httpguard::LIMITS)
        .map_err(|e| io::Error::new(e.kind(), format!("api.address {wanted}: {e}")))?;
    let addr = server.server_addr().to_ip().unwrap_or(wanted);
    let server = Arc::new(server);
    let shared = Arc::new(Shared {
        access,
        view,
        commands,
        metrics,
        config,
        writers: WriterSlots::new(MAX_WRITERS, MAX_WRITERS_PER_SOURCE),
        cluster,
        latency,
        dnssec: std::sync::OnceLock::new(),
    });
    let stopping = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for i in 0..WORKERS {
        let (server, shared, stopping) = (server.clone(), shared.clone(), stopping.clone());
        let handle = std::thread::Builder::new()
            .name(format!("api-worker-{i}"))
            .spawn(move || worker(&server, &shared, &stopping))?;
        workers.push(handle);
    }
    log::info!("API listening on http://{addr}");
    Ok(ApiServer {
        addr,
        server: Some(server),
        workers,
        stopping,
        guard: Some(guard),
        shared,
    })
}

impl ApiServer {
    /// What `GET /api/v1/dnssec` answers (public key facts and signature
    /// cache figures only, never key material); set once.
    pub fn set_dnssec_status(&self, status: ConfigFn) {
        let _ = self.shared.dnssec.set(status);
    }

    /// The bound address (the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting requests, joins the workers and closes the socket
    /// (tiny_http's accept thread lets go of it a moment later). Writes
    /// already handed to a writer thread still get their answer.
    pub fn stop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        let Some(server) = self.server.take() else {
            return;
        };
        for _ in 0..self.workers.len() {
            server.unblock();
        }
        for handle in self.workers.drain(..) {
            let _ = handle.join();
        }
        drop(server);
        self.guard.take();
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn worker(server: &tiny_http::Server, shared: &Arc<Shared>, stopping: &AtomicBool) {
    loop {
        match server.recv() {
            Ok(request) => handle(request, shared),
            Err(_) if stopping.load(Ordering::SeqCst) => return,
            Err(e) => log::warn!("API: accepting a connection failed: {e}"),
        }
    }
}

fn header<'a>(request: &'a tiny_http::Request, name: &'static str) -> Option<&'a str> {
    request
        .headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str())
}

/// Sorts a request onto the right thread. Bodies tiny_http did not buffer
/// and every write go to a bounded side thread, so neither a slow body nor
/// a slow registry can hold a worker; reads are answered here.
fn handle(request: tiny_http::Request, shared: &Arc<Shared>) {
    if httpbody::oversized(&request) {
        let err = ApiError::new(413, format!("request body larger than {BODY_LIMIT} bytes"));
        return respond_error(request, &err, &[]);
    }
    let unbuffered_body = httpbody::unbuffered(&request);
    let method = request.method().as_str().to_ascii_uppercase();
    let is_write = route(&method, request.url()).is_ok_and(|r| r.is_write());
    if !(is_write || unbuffered_body) {
        return serve(request, shared);
    }
    let source = shared.access.client_ip(
        request.remote_addr().map(|a| a.ip()),
        header(&request, "X-Forwarded-For"),
    );
    let slot = match shared.writers.acquire(source) {
        Ok(slot) => slot,
        Err(why) => {
            // An unbuffered body is left to the drain thread (httpbody).
            let err = ApiError::unavailable(match why {
                Refused::Full => "too many writes in flight; retry".to_string(),
                Refused::SourceFull => format!(
                    "this client already has {MAX_WRITERS_PER_SOURCE} writes in flight; retry"
                ),
            });
            return respond_error(request, &err, &[]);
        }
    };
    let side = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("api-write".into())
        .spawn(move || {
            serve(request, &side);
            drop(slot);
        });
    if let Err(e) = spawned {
        // The request and the slot moved into the closure and are dropped
        // with it; the client sees the connection close.
        log::error!("API: cannot start a writer thread: {e}");
    }
}

/// ACL, routing, authorization, then the answer.
fn serve(request: tiny_http::Request, shared: &Shared) {
    let peer: Option<IpAddr> = request.remote_addr().map(|a| a.ip());
    let client = shared
        .access
        .client_ip(peer, header(&request, "X-Forwarded-For"));
    let client_text = client
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "unknown".into());
    if !shared.access.allowed(client) {
        let err = ApiError::new(
            403,
            format!("client {client_text} is not in api.allowed_networks"),
        );
        return respond_error(request, &err, &[]);
    }
    let url = request.url().to_string();
    let method = request.method().as_str().to_ascii_uppercase();
    let route = match route(&method, &url) {
        Ok(route) => route,
        Err(RouteError::NotFound) => {
            return respond_error(
                request,
                &ApiError::not_found(format!("no such endpoint {}", path_of(&url))),
                &[],
            );
        }
        Err(RouteError::MethodNotAllowed { allow }) => {
            let err = ApiError::new(
                405,
                format!(
                    "method {method} not allowed on {}; allowed: {allow}",
                    path_of(&url)
                ),
            );
            return respond_error(request, &err, &[("Allow", allow)]);
        }
        Err(RouteError::BadPath(why)) => {
            return respond_error(request, &ApiError::bad_request(why), &[]);
        }
    };
    if !route.is_write() {
        return answer_read(request, &route, &url, shared);
    }
    let token_name = match shared.access.authorize(header(&request, "Authorization")) {
        Ok(name) => name,
        Err(why) => {
            return respond_error(
                request,
                &ApiError::new(401, why),
                &[("WWW-Authenticate", "Bearer")],
            );
        }
    };
    let by = author(header(&request, "X-User"), token_name.as_deref());
    answer_write(request, &route, by, client_text, shared);
}

fn path_of(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

fn answer_read(request: tiny_http::Request, route: &Route, url: &str, shared: &Shared) {
    if *route == Route::Health {
        // v1.1's answer: 200 "OK" while the process serves requests.
        let mut response = tiny_http::Response::from_string("OK");
        add_header(&mut response, "Content-Type", "text/plain; charset=utf-8");
        return send(request, response);
    }
    if *route == Route::Metrics {
        let text = (shared.metrics)();
        let mut response = tiny_http::Response::from_string(text);
        add_header(
            &mut response,
            "Content-Type",
            "text/plain; version=0.0.4; charset=utf-8",
        );
        return send(request, response);
    }
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    let view = shared.view.load();
    let answer = match route {
        Route::ExpiringAgents => v11::expiring(query, &view).map(|v| (200, v)),
        Route::HealthRegions => Ok((200, v11::health_regions(&view))),
        Route::Config => Ok((200, (shared.config)())),
        Route::ClusterStatus => Ok((200, (shared.cluster)())),
        Route::Latency => (shared.latency)(query)
            .map(|v| (200, v))
            .map_err(ApiError::bad_request),
        Route::Dnssec => Ok((
            200,
            shared.dnssec.get().map_or_else(
                || serde_json::json!({"enabled": false, "zones": []}),
                |f| f(),
            ),
        )),
        _ => read::answer(route, query, &view),
    };
    match answer {
        Ok((code, body)) => respond_json(request, code, &body, &[]),
        Err(err) => respond_error(request, &err, &[]),
    }
}

fn answer_write(
    mut request: tiny_http::Request,
    route: &Route,
    by: String,
    from: String,
    shared: &Shared,
) {
    let body = if route.has_body() {
        match read_body(&mut request) {
            Ok(body) => body,
            Err(err) => return respond_error(request, &err, &[]),
        }
    } else {
        Vec::new()
    };
    let response = match run_write(route, &body, by, from, shared) {
        // v1.1: 204 on delete, no body.
        Ok((204, _)) => tiny_http::Response::from_data(Vec::new()).with_status_code(204),
        Ok((code, value)) => json_response(code, &value, &[]),
        Err(err) => json_response(err.code, &err.to_json(), &[]),
    };
    if route.has_body() {
        // The whole body was read: nothing is left to drain.
        if let Err(e) = request.respond(response) {
            log::debug!("API: client went away before the answer: {e}");
        }
    } else {
        send(request, response);
    }
}

/// Checks and runs one write; the status code and answer of a success.
fn run_write(
    route: &Route,
    body: &[u8],
    by: String,
    from: String,
    shared: &Shared,
) -> Result<(u16, Value), ApiError> {
    let route = &write::resolve_port(route, &shared.view.load())?;
    let command = write::command(route, body)?;
    // v1.1's codes for the managed entities: 201 created, 204 deleted.
    let code = match route {
        Route::Manage(_, super::command::ManageOp::Create, _) => 201,
        Route::Manage(_, super::command::ManageOp::Delete, _) => 204,
        _ => 200,
    };
    send_command(shared, command, by, from).map(|value| (code, value))
}

fn read_body(request: &mut tiny_http::Request) -> Result<Vec<u8>, ApiError> {
    let too_large = || ApiError::new(413, format!("request body larger than {BODY_LIMIT} bytes"));
    if request.body_length().is_some_and(|n| n > BODY_LIMIT) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    request
        .as_reader()
        .take(BODY_LIMIT as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
    if body.len() > BODY_LIMIT {
        return Err(too_large());
    }
    Ok(body)
}

/// Sends a command to the registry and waits for its answer.
fn send_command(
    shared: &Shared,
    command: super::command::Command,
    by: String,
    from: String,
) -> Result<Value, ApiError> {
    let (reply, answer) = crossbeam_channel::bounded(1);
    log::info!(
        "API write {} {} by {by} from {from}",
        command.action(),
        command.target()
    );
    let request = CommandRequest {
        command,
        by,
        from,
        reply,
    };
    shared
        .commands
        .send_timeout(request, REPLY_TIMEOUT)
        .map_err(|_| ApiError::unavailable("the registry is not accepting commands"))?;
    match answer.recv_timeout(REPLY_TIMEOUT) {
        Ok(result) => result,
        Err(_) => Err(ApiError::unavailable(format!(
            "the registry did not answer within {}s",
            REPLY_TIMEOUT.as_secs()
        ))),
    }
}

/// Headers here are ASCII we wrote, so `from_bytes` (which only refuses
/// non-ASCII) succeeds; a failure would just leave the header out.
fn add_header<R: Read>(response: &mut tiny_http::Response<R>, name: &str, value: &str) {
    if let Ok(h) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
        response.add_header(h);
    }
}

fn json_response(
    code: u16,
    body: &Value,
    extra: &[(&str, &str)],
) -> tiny_http::Response<io::Cursor<Vec<u8>>> {
    let mut text = serde_json::to_string_pretty(body).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    let mut response = tiny_http::Response::from_string(text).with_status_code(code);
    add_header(&mut response, "Content-Type", "application/json");
    for (name, value) in extra {
        add_header(&mut response, name, value);
    }
    response
}

fn respond_json(request: tiny_http::Request, code: u16, body: &Value, extra: &[(&str, &str)]) {
    send(request, json_response(code, body, extra));
}

fn respond_error(request: tiny_http::Request, err: &ApiError, extra: &[(&str, &str)]) {
    respond_json(request, err.code, &err.to_json(), extra);
}

/// Every answer goes through `httpbody::finish`, so a body left unread
/// is never drained on this thread.
fn send<R: Read>(request: tiny_http::Request, response: tiny_http::Response<R>) {
    httpbody::finish(request, response);
}
