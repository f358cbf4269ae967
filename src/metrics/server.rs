//! The optional extra metrics listener (`metrics.address`): serves only
//! `GET /metrics`, for scrapers that should not reach the API.

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
        ("/metrics", _) => httpserve::reply(405, "text/plain", b"method not allowed\n".to_vec()),
        _ => httpserve::reply(404, "text/plain", b"not found\n".to_vec()),
    }
}
