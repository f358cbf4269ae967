//! The `api_slow` fuzz target: the Overwatch API's whole request path
//! (tiny_http's parser, `httpguard`'s socket, `api::server`, the writer
//! slots, `httpbody`) driven by clients that send arbitrary bytes in
//! arbitrary chunks and stop anywhere. A "pause" is not a sleep: it is a
//! point where the clients stop sending and another connection must get
//! its `GET /api/v1/ready` answered before they go on, so a replay is as
//! fast and deterministic as the server.
//!
//! The input is a script of steps, each a byte `op` and its operands:
//! - `op % 4 == 0`: connection `(op >> 2) % CLIENTS` sends the next
//!   `len` bytes of the input (`len` is the following byte);
//! - `1`: pause (the liveness check above);
//! - `2`: that connection ends its sending side (a client that is done);
//! - `3`: that connection closes.
//!
//! Invariants: no panic (libFuzzer aborts on a panic in any thread); at
//! every pause and at the end `/ready` answers 200 while the clients hold
//! whatever they started; once they are gone, a write from the same source
//! is accepted again (no writer slot leaked); and nothing they sent changed
//! what the API reads back (the view is the registry's alone).

use opengslb::api::view::OverwatchView;
use opengslb::api::{self, ApiError, CommandRequest};
use opengslb::config::ApiConfig;
use opengslb::httpguard::LIMITS;
use opengslb::snapshot::SnapshotCell;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Connections one input drives at once: more than the per-source writer
/// cap, so a script can hold every writer slot its source may take and
/// still have writes refused.
const CLIENTS: usize = api::server::MAX_WRITERS_PER_SOURCE + 2;
/// Steps run from one input at most.
const MAX_STEPS: usize = 64;
/// How long a pause waits for `/ready`: a healthy server answers in
/// microseconds, so this only turns a stall into a failure; it is shorter
/// than the guard's idle limit, so a stall that only the guard's cutting
/// of the paused clients would end is a failure too.
const ANSWER_WITHIN: Duration = Duration::from_secs(LIMITS.idle.as_secs() / 2);

struct Served {
    addr: SocketAddr,
    /// `GET /api/v1/overrides` as first served.
    baseline: String,
    _server: api::ApiServer,
}

/// One API server for the whole process (fuzzing runs many inputs).
fn served() -> &'static Served {
    static SERVED: OnceLock<Served> = OnceLock::new();
    SERVED.get_or_init(|| {
        let cfg = ApiConfig {
            address: "127.0.0.1:0".into(),
            ..ApiConfig::default()
        };
        let view = Arc::new(SnapshotCell::new(OverwatchView {
            node_id: "fuzz".into(),
            ready: true,
            ..OverwatchView::default()
        }));
        let (tx, rx) = crossbeam_channel::unbounded::<CommandRequest>();
        std::thread::Builder::new()
            .name("fuzz-registry".into())
            .spawn(move || {
                for req in rx {
                    // Every command the API sends is well formed.
                    assert!(!req.command.action().is_empty() && !req.from.is_empty());
                    let reply: Result<serde_json::Value, ApiError> =
                        Ok(serde_json::json!({"ok": true}));
                    let _ = req.reply.send(reply);
                }
            })
            .expect("spawn the fuzz registry");
        let metrics: api::MetricsFn = Arc::new(String::new);
        let config: api::server::ConfigFn = Arc::new(|| serde_json::json!({}));
        let cluster: api::server::ConfigFn = Arc::new(|| serde_json::json!({}));
        let latency: api::server::LatencyFn = Arc::new(|_| Ok(serde_json::json!({})));
        let server =
            api::start(&cfg, view, tx, metrics, config, cluster, latency).expect("start the API");
        let addr = server.local_addr();
        let baseline = exchange(addr, "GET /api/v1/overrides", "").1;
        Served {
            addr,
            baseline,
            _server: server,
        }
    })
}

/// One request on a fresh connection; the status and the body.
fn exchange(addr: SocketAddr, line: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the API");
    s.set_read_timeout(Some(ANSWER_WITHIN)).expect("timeout");
    let req = format!(
        "{line} HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send a request");
    let mut raw = Vec::new();
    let read = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no answer to {line} while clients paused ({read:?})"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn assert_live(addr: SocketAddr) {
    let (status, body) = exchange(addr, "GET /api/v1/ready", "");
    assert_eq!(status, 200, "/ready while clients paused: {body}");
}

/// Runs one script; returns the steps that reached the server (bytes
/// sent on an open connection, pauses answered).
pub fn api_slow(data: &[u8]) -> usize {
    let served = served();
    let mut clients: Vec<Option<TcpStream>> = (0..CLIENTS).map(|_| None).collect();
    let mut steps = 0;
    let mut reached = 0;
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        steps += 1;
        if steps > MAX_STEPS {
            break;
        }
        let slot = &mut clients[usize::from(op >> 2) % CLIENTS];
        match op % 4 {
            0 => {
                let Some((&len, tail)) = rest.split_first() else {
                    break;
                };
                let n = usize::from(len).min(tail.len());
                let (chunk, tail) = tail.split_at(n);
                rest = tail;
                if slot.is_none() {
                    *slot = TcpStream::connect(served.addr).ok();
                }
                // The server may have answered and closed: not an error.
                if let Some(s) = slot
                    && s.write_all(chunk).is_ok()
                {
                    reached += 1;
                }
            }
            1 => {
                assert_live(served.addr);
                reached += 1;
            }
            2 => {
                if let Some(s) = slot {
                    let _ = s.shutdown(Shutdown::Write);
                }
            }
            _ => *slot = None,
        }
    }
    assert_live(served.addr);
    drop(clients);
    // Every writer slot comes back once the clients are gone: the writer
    // threads see end-of-file and finish. Bounded retries, no sleeps.
    let mut accepted = false;
    for _ in 0..10_000 {
        let (status, _) = exchange(served.addr, "POST /api/v1/overwatch/validate", "");
        if status == 200 {
            accepted = true;
            break;
        }
        assert_eq!(status, 503, "a write after the clients left");
        std::thread::yield_now();
    }
    assert!(accepted, "a writer slot stayed taken after its client left");
    let (_, now) = exchange(served.addr, "GET /api/v1/overrides", "");
    assert_eq!(now, served.baseline, "what the API reads back changed");
    reached
}
