//! The site of the bad-input tables (tests/it/bad_input.rs) and the timing
//! harness (tests/bench/timing.rs). The daemons every bad-input table runs against (one Overwatch, one
//! agent with a real HTTP backend), the checks that nothing changed, and
//! raw helpers: HTTP over a bare socket, running a binary, noise bytes.

use super::dnsclient::{self, A, Query};
use super::ops::{Overwatch, OwOptions};
use super::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

pub use super::ops::KEY;

pub struct Site {
    pub ow: Daemon,
    pub agent: Daemon,
    pub dns: SocketAddr,
    pub gossip: SocketAddr,
    pub api: String,
    pub web: HttpBackend,
    pub drain: std::path::PathBuf,
    pub agent_api: String,
    pub _dir: TempDir,
}

pub fn site(tag: &str, ip: &str) -> Site {
    let dir = TempDir::new(tag);
    let opts = OwOptions {
        dns_extra: "  tcp_idle_timeout: 1s\n",
        ..OwOptions::default()
    };
    let ow = Overwatch::start(&dir, "ow1", &opts);
    let agent_port = free_port("127.0.0.1");
    let web = HttpBackend::start(ip);
    let drain = dir.path().join("web.drain");
    // The default health thresholds (3 down, 2 up), unlike the operations
    // tests' agents: a probe that times out on a loaded machine must not
    // change the state every bad-input row compares.
    let agent_yaml = format!(
        r#"mode: agent
agent:
  identity:
    agent_id: web1
    region: east
    service_token: "app-token"
    cert_path: "{d}/web1.crt"
    key_path: "{d}/web1.key"
  backends:
    - service: app.gslb.test
      address: "{ip}"
      port: {port}
      health_check: {{ type: http, path: /health, interval: 200ms, timeout: 500ms }}
  gossip:
    encryption_key: "{KEY}"
    overwatch_nodes: ["{gossip}"]
  heartbeat: {{ interval: 500ms, missed_threshold: 3 }}
  drain_file: "{drain}"
  api: {{ address: "127.0.0.1:{agent_port}" }}
"#,
        d = dir.path().display(),
        gossip = ow.gossip,
        port = web.addr.port(),
        drain = drain.display()
    );
    let agent = Daemon::start(&dir, "web1", &agent_yaml, "agent");
    let s = Site {
        dns: ow.dns,
        gossip: ow.gossip.parse().expect("gossip address"),
        api: ow.api,
        ow: ow.daemon,
        agent,
        web,
        drain,
        agent_api: format!("http://127.0.0.1:{agent_port}"),
        _dir: dir,
    };
    wait_for("backend in DNS", Duration::from_secs(15), || {
        s.serving().then_some(())
    });
    s
}

impl Site {
    /// DNS answers the backend over UDP and TCP.
    pub fn serving(&self) -> bool {
        let want = vec![self.web.addr.ip().to_string()];
        let q = Query::new("app.gslb.test", A);
        dnsclient::udp(self.dns, &q).is_some_and(|r| r.addr_strings() == want)
            && dnsclient::tcp(self.dns, &q).is_some_and(|r| r.addr_strings() == want)
    }

    /// What must not change: backends with their status, agents with
    /// status and pin, overrides and the number of audited writes.
    pub fn state(&self) -> String {
        let get = |path: &str| -> serde_json::Value {
            let (code, body) = http_get(&format!("{}{path}", self.api)).expect("API answers");
            assert_eq!(code, 200, "{path}: {body}");
            serde_json::from_str(&body).expect("JSON")
        };
        let b = get("/api/v1/overwatch/backends");
        let backends: Vec<String> = b["backends"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                format!(
                    "{} {} {} {} {}",
                    x["service"],
                    x["address"],
                    x["port"],
                    x["effective_status"],
                    x["override_status"]
                )
            })
            .collect();
        let a = get("/api/v1/overwatch/agents");
        let agents: Vec<String> = a["agents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| format!("{} {} {}", x["id"], x["status"], x["fingerprint"]))
            .collect();
        let o = get("/api/v1/overrides");
        // Refused attempts that reached the registry are audited too (who
        // tried what); only writes that succeeded count as a change.
        let audit = get("/api/v1/audit-logs");
        let entries = audit
            .as_array()
            .or_else(|| audit["entries"].as_array())
            .cloned()
            .unwrap_or_default();
        let applied = entries.iter().filter(|e| e["result"] == "ok").count();
        format!(
            "{backends:?} {agents:?} {} audit_ok={applied}",
            o["overrides"]
        )
    }

    pub fn metric(&self, name: &str) -> f64 {
        let (_, m) = http_get(&format!("{}/metrics", self.api)).unwrap();
        m.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// After a bad input: still answering, and nothing changed.
    pub fn assert_unchanged(&self, before: &str, what: &str) {
        assert!(self.serving(), "DNS still answers after {what}");
        assert_eq!(self.state(), before, "state unchanged after {what}");
        assert!(self.ow.child.is_some() && self.agent.child.is_some());
    }
}

pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sends raw bytes to the API and reads one response (headers, then
/// Content-Length bytes); (status, body). 0 when the server just closed.
pub fn raw_http(api: &str, request: &[u8]) -> (u16, String) {
    let addr = api.trim_start_matches("http://");
    let mut t = TcpStream::connect(addr).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = t.write_all(request);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if body.len() >= len {
                let code = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                return (code, body.to_string());
            }
        }
        match t.read(&mut buf) {
            Ok(0) | Err(_) => return (0, text),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

pub fn run_bin(bin: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(bin)
        .args(args)
        .env_remove("OPENGSLB_API")
        .output()
        .expect("run");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
