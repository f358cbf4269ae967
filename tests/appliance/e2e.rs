//! scripts/drain.sh against the real daemons on loopback: an Overwatch
//! serving DNS on a free port, an agent checking an HTTP backend run by the
//! test, and `drain.sh on --wait` returning only once the Overwatch no
//! longer answers the backend's address; `drain.sh off` brings it back.
//! Reported `SKIPPED:` when curl or dig is missing.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::util::{BIN, TempDir, free_port, need_tools};

/// A config file the daemon accepts: not readable by others.
fn write_private(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("create config");
    f.write_all(text.as_bytes()).expect("write config");
}

/// A daemon stopped with SIGTERM (so an agent sends its leave) on drop.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(bin: &str, config: &Path, log: PathBuf) -> Daemon {
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(bin)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(out.try_clone().expect("dup log"))
            .stderr(out)
            .spawn()
            .expect("start opengslb");
        Daemon { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: the pid is our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP backend answering 200 on every path.
struct Backend {
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
    port: u16,
}

impl Backend {
    fn start() -> Backend {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind backend"));
        let port = server.server_addr().to_ip().expect("ip").port();
        let srv = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name("e2e-backend".into())
            .spawn(move || {
                for req in srv.incoming_requests() {
                    let _ = req.respond(tiny_http::Response::from_string("ok"));
                }
            })
            .expect("spawn backend");
        Backend {
            server,
            thread: Some(thread),
            port,
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn dig(port: u16, name: &str) -> Vec<String> {
    let out = Command::new("dig")
        .args([
            "+short",
            "+time=1",
            "+tries=1",
            "-p",
            &port.to_string(),
            "@127.0.0.1",
            name,
            "A",
        ])
        .output()
        .expect("run dig");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Polls `f` until it holds or `limit` passes.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn drain(args: &[&str]) -> Output {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/drain.sh");
    Command::new("sh")
        .arg(script)
        .args(args)
        .output()
        .expect("run drain.sh")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const NAME: &str = "app.gslb.example.com";
// base64 of 32 bytes: a test-only gossip key.
const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

#[test]
fn drain_script_takes_a_real_agent_out_of_real_dns_and_back() {
    let bin = BIN;
    let test = "e2e::drain_script_takes_a_real_agent_out_of_real_dns_and_back";
    if !need_tools(test, &["curl", "dig"]) {
        return;
    }
    let dir = TempDir::new("e2e");
    let d = &dir.0;
    let (dns, gossip, api, agent_api) = (
        free_port("127.0.0.1"),
        free_port("127.0.0.1"),
        free_port("127.0.0.1"),
        free_port("127.0.0.1"),
    );
    let backend = Backend::start();

    let ow = d.join("overwatch.yaml");
    write_private(
        &ow,
        &format!(
            "mode: overwatch\n\
             dns:\n  listen_address: \"127.0.0.1:{dns}\"\n  zones: [gslb.example.com]\n  default_ttl: 5\n\
             overwatch:\n  identity: {{node_id: ow-e2e}}\n  agent_tokens:\n    {NAME}: \"tok\"\n\
             \x20 gossip:\n    bind_address: \"127.0.0.1:{gossip}\"\n    encryption_key: \"{KEY}\"\n\
             \x20 validation: {{enabled: false}}\n  data_dir: {data}\n\
             regions:\n  - name: eu-west\n    servers: []\n\
             domains:\n  - name: {NAME}\n    routing_algorithm: round-robin\n    regions: [eu-west]\n    ttl: 5\n\
             api:\n  enabled: true\n  address: \"127.0.0.1:{api}\"\n",
            data = d.join("ow-data").display(),
        ),
    );
    std::fs::create_dir_all(d.join("ow-data")).unwrap();
    let ag = d.join("agent.yaml");
    write_private(
        &ag,
        &format!(
            "mode: agent\n\
             agent:\n  identity:\n    service_token: \"tok\"\n    region: eu-west\n    agent_id: web-e2e\n\
             \x20   cert_path: {crt}\n    key_path: {key}\n\
             \x20 backends:\n    - service: {NAME}\n      address: 127.0.0.1\n      port: {port}\n\
             \x20     health_check: {{type: http, path: /health, interval: 1s, timeout: 1s, failure_threshold: 2, success_threshold: 1}}\n\
             \x20 gossip:\n    encryption_key: \"{KEY}\"\n    overwatch_nodes: [\"127.0.0.1:{gossip}\"]\n\
             \x20 api:\n    enabled: true\n    address: \"127.0.0.1:{agent_api}\"\n",
            crt = d.join("agent.crt").display(),
            key = d.join("agent.key").display(),
            port = backend.port,
        ),
    );

    let overwatch = Daemon::start(bin, &ow, d.join("overwatch.log"));
    let agent = Daemon::start(bin, &ag, d.join("agent.log"));
    let in_dns = || dig(dns, NAME).contains(&"127.0.0.1".to_string());
    assert!(
        eventually(Duration::from_secs(15), in_dns),
        "the backend never reached DNS\noverwatch:\n{}\nagent:\n{}",
        overwatch.log(),
        agent.log()
    );

    let agent_url = format!("http://127.0.0.1:{agent_api}");
    let dns_arg = format!("127.0.0.1:{dns}");
    let started = Instant::now();
    let out = drain(&[
        "on",
        "--reason",
        "e2e",
        "--wait",
        "--timeout",
        "10",
        "--agent",
        &agent_url,
        "--dns",
        &dns_arg,
    ]);
    let took = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\nagent:\n{}",
        text(&out),
        agent.log()
    );
    // drain.sh said it is gone: DNS agrees right now, with no grace period.
    assert!(
        !in_dns(),
        "drain.sh returned while DNS still answers the address"
    );
    eprintln!("drain.sh on --wait returned after {took:?}");

    let out = drain(&["off", "--agent", &agent_url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        eventually(Duration::from_secs(10), in_dns),
        "the backend did not return to DNS after drain off"
    );
}
