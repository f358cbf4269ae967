//! Shared helpers for every integration-test binary (tests/it, tests/faults,
//! tests/appliance, tests/bench), included with
//! `#[path = "../util/mod.rs"] mod util;`: free loopback ports, temp dirs,
//! the real `opengslb` binary started with a config file, HTTP backends
//! whose health can be flipped, polling with a deadline, and the one way a
//! test says it could not run (`skip`). The submodules hold the DNS client,
//! the API fixture, the Overwatch/agent builders of the operations tests
//! and the appliance helpers.
#![allow(dead_code)]

pub mod api;
pub mod appliance;
pub mod dnsclient;
pub mod health;
pub mod mmdb;
pub mod ops;
pub mod site;
pub mod slow;
pub mod unbound;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_opengslb");
pub const CLI: &str = env!("CARGO_BIN_EXE_opengslb-cli");

/// Says that `test` (or a named part of it) did not run, and why, as the
/// line `SKIPPED: <test>: <why>` that `.ci/run` looks for; the caller then
/// returns. Written straight to the process's stderr, not through
/// `eprintln!`, so the line shows even though libtest captures the output
/// of passing tests.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let line = format!("SKIPPED: {test}: {why}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// True when `tool` is an executable file on PATH.
pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// True when every tool is on PATH; otherwise reports `test` as skipped
/// (naming the missing ones) and returns false.
pub fn need_tools(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !on_path(t)).collect();
    if missing.is_empty() {
        return true;
    }
    skip(test, &format!("not installed: {}", missing.join(", ")));
    false
}

/// True when running as root; otherwise reports `test` as skipped.
pub fn need_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        skip(test, "needs root");
    }
    root
}

/// A port free for both UDP and TCP on `ip`, below the kernel's ephemeral
/// range, for a program that binds it itself later (unbound): a port the
/// kernel hands out can be taken again by another test's outgoing or
/// TIME_WAIT connection before that program binds it.
pub fn free_port_outside_ephemeral(ip: &str) -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() % 8000) as u16;
    for _ in 0..2000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20000 + (seed.wrapping_add(n.wrapping_mul(7)) % 12000);
        let udp = UdpSocket::bind((ip, port));
        let tcp = TcpListener::bind((ip, port));
        if udp.is_ok() && tcp.is_ok() {
            return port;
        }
    }
    panic!("no free port below the ephemeral range on {ip}");
}

/// A port free for both UDP and TCP on `ip`.
pub fn free_port(ip: &str) -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind((ip, 0)).expect("bind udp");
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on {ip}");
}

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("ogslb-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes a private (0600) file.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `f` until it returns Some or the deadline passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > end {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A running `opengslb` process; killed on drop. Its log is kept in the
/// temp dir and printed when a test fails while holding it.
pub struct Daemon {
    pub child: Option<Child>,
    pub log: PathBuf,
    pub config: PathBuf,
}

impl Daemon {
    pub fn start(dir: &TempDir, name: &str, yaml: &str, mode: &str) -> Daemon {
        let config = dir.write(&format!("{name}.yaml"), yaml);
        Self::start_file(dir, name, &config, mode)
    }

    pub fn start_file(dir: &TempDir, name: &str, config: &Path, mode: &str) -> Daemon {
        let log = dir.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(BIN)
            .args(["--config", config.to_str().unwrap(), "--mode", mode])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start opengslb");
        Daemon {
            child: Some(child),
            log,
            config: config.to_path_buf(),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Waits for exit; returns the exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let end = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.code();
            }
            if Instant::now() > end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- log of {} ----\n{}",
                self.config.display(),
                self.log_text()
            );
        }
    }
}

/// A real HTTP backend on `ip:port` answering `/health` with a status the
/// test can change, and `/` with 200.
pub struct HttpBackend {
    pub addr: SocketAddr,
    pub status: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
    server: Arc<tiny_http::Server>,
}

impl HttpBackend {
    pub fn start(ip: &str) -> HttpBackend {
        let server = Arc::new(tiny_http::Server::http((ip, 0)).expect("backend bind"));
        let addr = server.server_addr().to_ip().unwrap();
        let status = Arc::new(AtomicU16::new(200));
        let stop = Arc::new(AtomicBool::new(false));
        let (srv, st, flag) = (Arc::clone(&server), Arc::clone(&status), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                if let Ok(Some(req)) = srv.recv_timeout(Duration::from_millis(100)) {
                    let code = if req.url().starts_with("/health") {
                        st.load(Ordering::Relaxed)
                    } else {
                        200
                    };
                    let _ =
                        req.respond(tiny_http::Response::from_string("ok").with_status_code(code));
                }
            }
        });
        HttpBackend {
            addr,
            status,
            stop,
            server,
        }
    }

    pub fn set_status(&self, code: u16) {
        self.status.store(code, Ordering::Relaxed);
    }
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.server.unblock();
    }
}

/// GET over plain HTTP; (status, body).
pub fn http_get(url: &str) -> Option<(u16, String)> {
    http(url, "GET", None)
}

pub fn http(url: &str, method: &str, body: Option<&str>) -> Option<(u16, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let resp = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        ("DELETE", _) => agent.delete(url).call(),
        ("POST", Some(b)) => agent
            .post(url)
            .content_type("application/json")
            .send(b.as_bytes()),
        ("POST", None) => agent.post(url).send_empty(),
        ("PUT", Some(b)) => agent
            .put(url)
            .content_type("application/json")
            .send(b.as_bytes()),
        ("PUT", None) => agent.put(url).send_empty(),
        _ => return None,
    }
    .ok()?;
    let status = resp.status().as_u16();
    let mut text = String::new();
    resp.into_body()
        .into_reader()
        .read_to_string(&mut text)
        .ok()?;
    Some((status, text))
}
