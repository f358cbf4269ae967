//! Helpers shared by the operations tests (tests/ops_*.rs): an Overwatch
//! whose ports and data_dir stay fixed across restarts, agents with real
//! HTTP backends, the real `opengslb-cli` binary, and Prometheus text
//! parsing.

use super::dnsclient::{self, A, Query};
use super::*;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

pub const KEY: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
pub const OTHER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub const SERVICE: &str = "app.gslb.test";

/// Knobs of the Overwatch file.
#[derive(Clone)]
pub struct OwOptions {
    pub remove_after: &'static str,
    pub stale_threshold: Option<&'static str>,
    /// `overwatch.validation` with 200 ms checks, and static servers.
    pub validation: bool,
    pub static_servers: Vec<SocketAddr>,
    /// Lines added to the `dns:` section (indented two spaces).
    pub dns_extra: &'static str,
    /// Lines added to the `overwatch:` section (indented two spaces).
    pub overwatch_extra: &'static str,
    /// Lines added at the end of the file.
    pub tail: &'static str,
}

impl Default for OwOptions {
    fn default() -> Self {
        OwOptions {
            remove_after: "30s",
            stale_threshold: None,
            validation: false,
            static_servers: Vec::new(),
            dns_extra: "",
            overwatch_extra: "",
            tail: "",
        }
    }
}

/// An Overwatch whose config (ports, data_dir) survives restarts.
pub struct Overwatch {
    pub daemon: Daemon,
    pub dns: SocketAddr,
    pub api: String,
    pub gossip: String,
    pub data: PathBuf,
    pub config: PathBuf,
    pub name: String,
    starts: u32,
}

pub fn overwatch_yaml(
    name: &str,
    dns_port: u16,
    api_port: u16,
    gossip_port: u16,
    data: &str,
    o: &OwOptions,
) -> String {
    let threshold = o
        .stale_threshold
        .map(|t| format!(", threshold: {t}"))
        .unwrap_or_default();
    let servers: String = o
        .static_servers
        .iter()
        .map(|s| {
            format!(
                "      - {{ address: \"{}\", port: {}, weight: 1, service: {SERVICE} }}\n",
                s.ip(),
                s.port()
            )
        })
        .collect();
    let region = if servers.is_empty() {
        "  - name: east\n".to_string()
    } else {
        format!(
            "  - name: east\n    servers:\n{servers}    health_check: {{ type: http, path: /health, interval: 200ms, timeout: 500ms, failure_threshold: 2, success_threshold: 1 }}\n"
        )
    };
    format!(
        r#"mode: overwatch
dns:
  listen_address: "127.0.0.1:{dns_port}"
  zones: [gslb.test]
{dns_extra}overwatch:
  identity: {{ node_id: {name} }}
  agent_tokens: {{ {SERVICE}: "app-token" }}
  gossip: {{ bind_address: "127.0.0.1:{gossip_port}", encryption_key: "{KEY}" }}
  validation: {{ enabled: {validation}, check_interval: 200ms, check_timeout: 500ms }}
  stale: {{ remove_after: {remove_after}{threshold} }}
  data_dir: "{data}"
{overwatch_extra}regions:
{region}domains:
  - {{ name: {SERVICE}, routing_algorithm: round-robin, regions: [east] }}
api:
  address: "127.0.0.1:{api_port}"
{tail}"#,
        dns_extra = o.dns_extra,
        overwatch_extra = o.overwatch_extra,
        tail = o.tail,
        validation = o.validation,
        remove_after = o.remove_after,
    )
}

/// A loopback port free for UDP and TCP, below the kernel's ephemeral
/// range: a restarted Overwatch binds the same ports again, and a port
/// from the ephemeral range could meanwhile be taken by any outgoing
/// connection on the machine.
pub fn stable_port() -> u16 {
    use std::net::{TcpListener, UdpSocket};
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..2000 {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + (seed.wrapping_add(n.wrapping_mul(104_729)) % 12_000) as u16;
        if UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port below the ephemeral range");
}

impl Overwatch {
    pub fn start(dir: &TempDir, name: &str, o: &OwOptions) -> Overwatch {
        let dns_port = stable_port();
        let api_port = stable_port();
        let gossip_port = stable_port();
        let data = dir.path().join(format!("{name}-data"));
        let yaml = overwatch_yaml(
            name,
            dns_port,
            api_port,
            gossip_port,
            data.to_str().unwrap(),
            o,
        );
        let config = dir.write(&format!("{name}.yaml"), &yaml);
        let daemon = Daemon::start_file(dir, name, &config, "overwatch");
        let ow = Overwatch {
            daemon,
            dns: format!("127.0.0.1:{dns_port}").parse().unwrap(),
            api: format!("http://127.0.0.1:{api_port}"),
            gossip: format!("127.0.0.1:{gossip_port}"),
            data,
            config,
            name: name.to_string(),
            starts: 1,
        };
        ow.wait_ready();
        ow
    }

    pub fn wait_ready(&self) {
        wait_for(
            &format!("{} API ready", self.name),
            Duration::from_secs(15),
            || http_get(&format!("{}/api/v1/ready", self.api)).filter(|(c, _)| *c == 200),
        );
    }

    /// Starts the same config again (after the previous process is gone),
    /// without waiting for readiness.
    pub fn spawn_again(&mut self, dir: &TempDir) {
        self.starts += 1;
        let name = format!("{}-run{}", self.name, self.starts);
        self.daemon = Daemon::start_file(dir, &name, &self.config, "overwatch");
    }

    pub fn restart(&mut self, dir: &TempDir) {
        self.spawn_again(dir);
        self.wait_ready();
    }

    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (code, body) = http_get(&format!("{}{path}", self.api)).unwrap_or_default();
        assert_eq!(code, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    pub fn metrics(&self) -> String {
        let (code, body) = http_get(&format!("{}/metrics", self.api)).unwrap_or_default();
        assert_eq!(code, 200, "{body}");
        body
    }

    pub fn agent(&self, id: &str) -> serde_json::Value {
        let (_, body) =
            http_get(&format!("{}/api/v1/overwatch/agents/{id}", self.api)).unwrap_or_default();
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
    }

    /// The backend with address `ip` from the API, or Null.
    pub fn backend(&self, ip: &str) -> serde_json::Value {
        let v = self.get_json("/api/v1/overwatch/backends");
        v["backends"]
            .as_array()
            .and_then(|all| all.iter().find(|b| b["address"] == ip))
            .cloned()
            .unwrap_or_default()
    }

    pub fn answers(&self) -> Vec<String> {
        dnsclient::udp(self.dns, &Query::new(SERVICE, A))
            .map(|r| r.addr_strings())
            .unwrap_or_default()
    }

    pub fn wait_in_dns(&self, ip: &str, present: bool, timeout: Duration) -> Duration {
        let t = Instant::now();
        wait_for(
            &format!("{ip} present={present} in DNS of {}", self.api),
            timeout,
            || (self.answers().contains(&ip.to_string()) == present).then_some(()),
        );
        t.elapsed()
    }
}

pub struct Agent {
    pub daemon: Daemon,
    pub drain_file: PathBuf,
    pub api: String,
    pub config: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The agent file of these tests: one HTTP backend of `SERVICE` checked
/// every 200 ms, a 500 ms heartbeat, a drain file and the local API in the
/// temp dir.
pub fn agent_yaml(
    dir: &TempDir,
    name: &str,
    backend: SocketAddr,
    nodes: &[&str],
    key: &str,
    token: &str,
    api_port: u16,
) -> String {
    let nodes: Vec<String> = nodes.iter().map(|n| format!("\"{n}\"")).collect();
    format!(
        r#"mode: agent
agent:
  identity:
    agent_id: {name}
    region: east
    service_token: "{token}"
    cert_path: "{dir}/{name}.crt"
    key_path: "{dir}/{name}.key"
  backends:
    - service: {SERVICE}
      address: "{ip}"
      port: {port}
      health_check: {{ type: http, path: /health, interval: 200ms, timeout: 500ms, failure_threshold: 2, success_threshold: 1 }}
  gossip:
    encryption_key: "{key}"
    overwatch_nodes: [{nodes}]
  heartbeat: {{ interval: 500ms, missed_threshold: 3 }}
  drain_file: "{dir}/{name}.drain"
  api: {{ address: "127.0.0.1:{api_port}" }}
"#,
        dir = dir.path().display(),
        ip = backend.ip(),
        port = backend.port(),
        nodes = nodes.join(", "),
    )
}

pub fn agent(
    dir: &TempDir,
    name: &str,
    backend: SocketAddr,
    nodes: &[&str],
    key: &str,
    token: &str,
) -> Agent {
    let api_port = free_port("127.0.0.1");
    let yaml = agent_yaml(dir, name, backend, nodes, key, token, api_port);
    let daemon = Daemon::start(dir, name, &yaml, "agent");
    let config = daemon.config.clone();
    Agent {
        daemon,
        drain_file: dir.path().join(format!("{name}.drain")),
        api: format!("http://127.0.0.1:{api_port}"),
        config,
        cert: dir.path().join(format!("{name}.crt")),
        key: dir.path().join(format!("{name}.key")),
    }
}

/// What one `opengslb-cli` run printed.
pub struct CliOut {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CliOut {
    pub fn ok(self, what: &str) -> String {
        assert_eq!(
            self.code, 0,
            "opengslb-cli {what}: exit {}\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        );
        self.stdout
    }
}

/// Runs `opengslb-cli --api API ARGS...` as an operator would (USER=ops).
pub fn cli(api: &str, args: &[&str]) -> CliOut {
    let out = Command::new(CLI)
        .arg("--api")
        .arg(api)
        .args(args)
        .env("USER", "ops-test")
        .env_remove("OPENGSLB_API")
        .env_remove("OPENGSLB_TOKEN")
        .output()
        .expect("run opengslb-cli");
    CliOut {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `cli ... --json`, parsed; panics when it is not JSON.
pub fn cli_json(api: &str, args: &[&str]) -> serde_json::Value {
    let mut all: Vec<&str> = args.to_vec();
    all.push("--json");
    let text = cli(api, &all).ok(&all.join(" "));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("opengslb-cli {}: not JSON ({e}): {text}", all.join(" ")))
}

/// The value of the sample whose name and labels are exactly `series`
/// (`name` or `name{a="b",c="d"}` as rendered).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Waits until the series exists and `pred` holds for its value.
pub fn wait_sample(
    what: &str,
    scrape: impl Fn() -> String,
    series: &str,
    pred: impl Fn(f64) -> bool,
) -> f64 {
    wait_for(
        &format!("{what}: {series}"),
        Duration::from_secs(15),
        || sample(&scrape(), series).filter(|v| pred(*v)),
    )
}

/// Runs `promtool check metrics` on the text; `false` when promtool is
/// not installed (then `test` is reported skipped and the caller returns).
pub fn promtool_check(test: &str, text: &str) -> bool {
    use std::io::Write;
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            skip(
                test,
                &format!(
                    "promtool check metrics: promtool is not installed ({e}); install the `prometheus` package"
                ),
            );
            return false;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n---- metrics ----\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}
