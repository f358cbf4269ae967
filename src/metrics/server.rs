//! The optional extra metrics listener (`metrics.address`): serves only
//! `GET /metrics`, for scrapers that should not reach the API, and
//! `GET /health` (200 `OK` while the process is up), the probe v1.1's
//! docker healthchecks call on this port.

use super::Render;
use crate::httpserve::{self, HttpServer, Reply};
use std::net::SocketAddr;
use tiny_http::{Method, Request};

/// Binds `address` and serves `render()` at `/metrics`.
pub fn start(address: SocketAddr, render: Render) -> std::io::Result<HttpServer> {
    HttpServer::start("metrics-http", address, move |req| route(req, &*render))
}

fn route(req: &Request, render: &(dyn Fn() -> String + Send + Sync)) -> Reply {
    match (httpserve::path(req), req.method()) {
        ("/metrics", Method::Get) => httpserve::metrics(render()),
        ("/health", Method::Get | Method::Head) => httpserve::health(),
        ("/metrics" | "/health", _) => {
            httpserve::reply(405, "text/plain", b"method not allowed\n".to_vec())
        }
        _ => httpserve::reply(404, "text/plain", b"not found\n".to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::sync::Arc;

    fn send(addr: SocketAddr, request: &str) -> String {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.write_all(request.as_bytes()).expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        out
    }

    /// The v1.1 docker healthcheck: `GET /health` → 200 `OK` (and HEAD,
    /// which `wget --spider` sends), beside `/metrics`.
    #[test]
    fn health_and_metrics() {
        let render: Render = Arc::new(|| "up 1\n".to_string());
        let server = start("127.0.0.1:0".parse().expect("addr"), render).expect("start");
        let addr = server.local_addr();
        let get = send(
            addr,
            "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(
            get.starts_with("HTTP/1.1 200") && get.ends_with("\r\n\r\nOK"),
            "{get}"
        );
        let head = send(
            addr,
            "HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let post = send(
            addr,
            "POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        let m = send(
            addr,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(
            m.starts_with("HTTP/1.1 200") && m.ends_with("up 1\n"),
            "{m}"
        );
    }
}
