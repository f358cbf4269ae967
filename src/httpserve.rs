//! One small HTTP server on tiny_http for the daemon's little listeners:
//! the agent's local API and the extra metrics listener. One named thread
//! takes requests from tiny_http's queue and answers each with a router
//! function; `stop` unblocks and joins it. Requests are few and cheap
//! (status, drain, scrapes), so one thread is enough; the Overwatch API,
//! with its writers and ACL, has its own server (`api::server`). Both
//! bind through `httpguard`, which cuts slow and idle clients. A body
//! tiny_http did not read before queueing the request (over
//! `httpbody::PREBUFFERED` bytes, or chunked) would hold the one thread
//! while it trickles in, so such a request is refused with 413 and its
//! body left to `httpbody` (no route here takes a larger body).

use crate::httpbody;
use crate::httpguard::{self, Guard};
use std::io::{self, Cursor};
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use tiny_http::{Header, Request, Response, Server};

/// An answer built in memory.
pub type Reply = Response<Cursor<Vec<u8>>>;

/// A running server; `stop()` (or drop) ends its thread.
pub struct HttpServer {
    server: Arc<Server>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
    _guard: Guard,
}

impl HttpServer {
    /// Binds `address` and answers every request with `route` on a thread
    /// named `name`. `route` may read the request's body.
    pub fn start(
        name: &str,
        address: SocketAddr,
        route: impl Fn(&mut Request) -> Reply + Send + 'static,
    ) -> io::Result<HttpServer> {
        let (server, guard) = httpguard::bind(name, address, httpguard::LIMITS)
            .map_err(|e| io::Error::new(e.kind(), format!("{address}: {e}")))?;
        let addr = server.server_addr().to_ip().unwrap_or(address);
        let server = Arc::new(server);
        let srv = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                // `recv` fails once `stop` unblocks it (or the listener
                // broke); either way this server is done.
                while let Ok(mut req) = srv.recv() {
                    let reply = if httpbody::unbuffered(&req) {
                        body_too_large()
                    } else {
                        route(&mut req)
                    };
                    httpbody::finish(req, reply);
                }
            })?;
        Ok(HttpServer {
            server,
            thread: Some(thread),
            addr,
            _guard: guard,
        })
    }

    /// The bound address (the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers the requests already queued, then ends the thread.
    pub fn stop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.server.unblock();
            let _ = t.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The request's path, without the query string.
pub fn path(req: &Request) -> &str {
    req.url().split('?').next().unwrap_or("")
}

/// `body` as `content_type` with status `code`.
pub fn reply(code: u16, content_type: &'static str, body: Vec<u8>) -> Reply {
    let header = Header::from_bytes("Content-Type", content_type).expect("static header");
    Response::from_data(body)
        .with_status_code(code)
        .with_header(header)
}

/// 413 for a body this server does not read (see the module comment).
fn body_too_large() -> Reply {
    let text = format!(
        "{{\"error\": \"request bodies over {} bytes (or chunked) are not accepted here\", \"code\": 413}}\n",
        httpbody::PREBUFFERED
    );
    reply(413, "application/json", text.into_bytes())
}

/// The v1.1 liveness answer: 200 `OK` while the process serves requests.
pub fn health() -> Reply {
    reply(200, "text/plain; charset=utf-8", b"OK".to_vec())
}

/// A Prometheus scrape answer.
pub fn metrics(text: String) -> Reply {
    reply(200, "text/plain; version=0.0.4", text.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn routes_requests_and_stops() {
        let mut server =
            HttpServer::start(
                "http-test",
                "127.0.0.1:0".parse().unwrap(),
                |req| match path(req) {
                    "/metrics" => metrics("up 1\n".into()),
                    other => reply(404, "text/plain", format!("no {other}\n").into_bytes()),
                },
            )
            .unwrap();
        let addr = server.local_addr();
        let ok = get(addr, "/metrics?x=1");
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(
            ok.contains("text/plain; version=0.0.4") && ok.ends_with("up 1\n"),
            "{ok}"
        );
        let missing = get(addr, "/nope");
        assert!(missing.starts_with("HTTP/1.1 404") && missing.ends_with("no /nope\n"));
        server.stop();
        assert!(server.thread.is_none());
    }

    /// Bug: the one thread read a trickling body (and dropping a request
    /// drained it), so one slow client held the agent API and the metrics
    /// listener until the connection was cut; and a forged
    /// Content-Length made the drain allocate it all at once.
    #[test]
    fn a_slow_or_forged_body_does_not_hold_the_thread() {
        let server = HttpServer::start("http-slow", "127.0.0.1:0".parse().unwrap(), |_| {
            metrics("up 1\n".into())
        })
        .unwrap();
        let addr = server.local_addr();
        let mut held = Vec::new();
        for length in ["2048", "1099511627776", "18446744073709551615"] {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            write!(
                s,
                "POST /api/v1/agent/drain HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n{{"
            )
            .unwrap();
            let mut head = [0u8; 12];
            s.read_exact(&mut head).unwrap();
            assert_eq!(&head, b"HTTP/1.1 413", "{length}");
            held.push(s);
        }
        // The trickling body is still open while the next request is
        // answered.
        let ok = get(addr, "/metrics");
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        held[0].write_all(b"more").unwrap();
    }
}
