//! The optional extra metrics listener (`metrics.address`): serves only
//! `GET /metrics`, for scrapers that should not reach the API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use tiny_http::{Header, Method, Response, Server};

pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

pub struct MetricsServer {
    server: Arc<Server>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl MetricsServer {
    pub fn start(address: SocketAddr, render: Render) -> std::io::Result<MetricsServer> {
        let server =
            Server::http(address).map_err(|e| std::io::Error::other(format!("{address}: {e}")))?;
        let addr = server.server_addr().to_ip().unwrap_or(address);
        let server = Arc::new(server);
        let stop = Arc::new(AtomicBool::new(false));
        let (srv, flag) = (Arc::clone(&server), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("metrics-http".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    match srv.recv_timeout(Duration::from_millis(500)) {
                        Ok(Some(req)) => {
                            let path = req.url().split('?').next().unwrap_or("");
                            let resp = match (path, req.method()) {
                                ("/metrics", Method::Get) => Response::from_string(render())
                                    .with_header(
                                        Header::from_bytes(
                                            "Content-Type",
                                            "text/plain; version=0.0.4",
                                        )
                                        .expect("static header"),
                                    ),
                                ("/metrics", _) => Response::from_string("method not allowed\n")
                                    .with_status_code(405),
                                _ => Response::from_string("not found\n").with_status_code(404),
                            };
                            let _ = req.respond(resp);
                        }
                        Ok(None) => {}
                        Err(_) => break,
                    }
                }
            })?;
        Ok(MetricsServer {
            server,
            stop,
            thread: Some(thread),
            addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
