//! The cast of the namespace fault tests (two Overwatches, agents with
//! python HTTP backends, a client), their configuration files, DNS and API
//! helpers, and a monitor thread that records every agent status change.

use super::net::{Net, Proc, RUN};
use super::{K1, NAME};
use crate::util::dnsclient::{self, A, Query};
use crate::util::{BIN, TempDir, wait_for};
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The usual cast: two Overwatches, `n` agents each with a python HTTP
/// backend in its own namespace, and a client namespace the test thread
/// enters. Processes are declared before `net` so they die first.
pub struct Site {
    pub ows: BTreeMap<String, Proc>,
    pub agents: BTreeMap<String, Proc>,
    pub _backends: Vec<Proc>,
    pub dir: TempDir,
    pub net: Net,
}

pub fn ow_yaml(net: &Net, dir: &TempDir, name: &str, keys: (&str, &[&str])) -> String {
    let ip = net.ip(name);
    let extra: Vec<String> = keys.1.iter().map(|k| format!("\"{k}\"")).collect();
    format!(
        r#"mode: overwatch
dns:
  listen_address: "{ip}:53"
  zones: [gslb.test]
overwatch:
  identity: {{ node_id: {name} }}
  agent_tokens: {{ {NAME}: "app-token" }}
  gossip: {{ bind_address: "{ip}:7946", encryption_key: "{k}", encryption_keys: [{extra}] }}
  validation: {{ enabled: false }}
  data_dir: "{data}"
regions:
  - name: east
domains:
  - {{ name: {NAME}, routing_algorithm: round-robin, regions: [east] }}
api:
  address: "{ip}:9090"
  allowed_networks: ["10.77.0.0/24"]
"#,
        k = keys.0,
        extra = extra.join(", "),
        data = dir.path().join(format!("{name}-data")).display()
    )
}

pub fn agent_yaml(
    net: &Net,
    dir: &TempDir,
    name: &str,
    ows: &[&str],
    keys: (&str, &[&str]),
) -> String {
    let nodes: Vec<String> = ows
        .iter()
        .map(|o| format!("\"{}:7946\"", net.ip(o)))
        .collect();
    let extra: Vec<String> = keys.1.iter().map(|k| format!("\"{k}\"")).collect();
    format!(
        r#"mode: agent
agent:
  identity:
    agent_id: {name}
    region: east
    service_token: "app-token"
    cert_path: "{d}/{name}.crt"
    key_path: "{d}/{name}.key"
  backends:
    - service: {NAME}
      address: "{ip}"
      port: 8080
      health_check: {{ type: http, path: /health, interval: 1s, timeout: 500ms, failure_threshold: 3, success_threshold: 1 }}
  gossip:
    encryption_key: "{k}"
    encryption_keys: [{extra}]
    overwatch_nodes: [{nodes}]
  drain_file: "{d}/{name}.drain"
  api: {{ address: "127.0.0.1:9100" }}
"#,
        d = dir.path().display(),
        ip = net.ip(name),
        k = keys.0,
        extra = extra.join(", "),
        nodes = nodes.join(", ")
    )
}

impl Site {
    pub fn bare(tag: &str, hosts: &[&str]) -> Site {
        let net = Net::new(hosts);
        Site {
            ows: BTreeMap::new(),
            agents: BTreeMap::new(),
            _backends: Vec::new(),
            dir: TempDir::new(tag),
            net,
        }
    }

    pub fn new(tag: &str, n_ow: usize, n_agents: usize) -> Site {
        let ow_names: Vec<String> = (1..=n_ow).map(|i| format!("ow{i}")).collect();
        let ag_names: Vec<String> = (1..=n_agents).map(|i| format!("ag{i}")).collect();
        let mut hosts: Vec<&str> = ow_names.iter().map(String::as_str).collect();
        hosts.extend(ag_names.iter().map(String::as_str));
        hosts.push("client");
        let mut site = Site::bare(tag, &hosts);
        for ow in &ow_names {
            site.start_ow(ow, (K1, &[]));
        }
        for ag in &ag_names {
            let www = site.dir.path().join(format!("{ag}-www"));
            std::fs::create_dir_all(&www).unwrap();
            std::fs::write(www.join("health"), "ok\n").unwrap();
            let log = site.dir.path().join(format!("{ag}-http.log"));
            let ip = site.net.ip(ag);
            let args = [
                "python3",
                "-m",
                "http.server",
                "8080",
                "--bind",
                &ip,
                "--directory",
                www.to_str().unwrap(),
            ];
            site._backends.push(site.net.spawn(ag, &args, &log));
        }
        site.net.enter("client");
        for ow in &ow_names {
            let api = site.api(ow);
            wait_for(&format!("{ow} ready"), Duration::from_secs(15), || {
                get(&format!("{api}/api/v1/ready")).filter(|(c, _)| *c == 200)
            });
        }
        let ows: Vec<&str> = ow_names.iter().map(String::as_str).collect();
        for ag in &ag_names {
            site.start_agent(ag, &ows, (K1, &[]));
        }
        site
    }

    pub fn write_config(&self, name: &str, text: &str) -> PathBuf {
        TempDir::write(&self.dir, &format!("{name}.yaml"), text)
    }

    pub fn start_ow(&mut self, name: &str, keys: (&str, &[&str])) {
        let cfg = self.write_config(name, &ow_yaml(&self.net, &self.dir, name, keys));
        let n = RUN.fetch_add(1, Ordering::Relaxed);
        let log = self.dir.path().join(format!("{name}-{n}.log"));
        let p = self.net.spawn(
            name,
            &[
                BIN,
                "--config",
                cfg.to_str().unwrap(),
                "--mode",
                "overwatch",
            ],
            &log,
        );
        self.ows.insert(name.into(), p);
    }

    pub fn start_agent(&mut self, name: &str, ows: &[&str], keys: (&str, &[&str])) {
        let cfg = self.write_config(name, &agent_yaml(&self.net, &self.dir, name, ows, keys));
        let n = RUN.fetch_add(1, Ordering::Relaxed);
        let log = self.dir.path().join(format!("{name}-{n}.log"));
        let p = self.net.spawn(
            name,
            &[BIN, "--config", cfg.to_str().unwrap(), "--mode", "agent"],
            &log,
        );
        self.agents.insert(name.into(), p);
    }

    pub fn api(&self, ow: &str) -> String {
        format!("http://{}:9090", self.net.ip(ow))
    }

    pub fn dns(&self, ow: &str) -> SocketAddr {
        format!("{}:53", self.net.ip(ow)).parse().unwrap()
    }

    pub fn answers(&self, ow: &str) -> Vec<String> {
        query(self.dns(ow)).unwrap_or_default()
    }

    pub fn agent_status(&self, ow: &str, id: &str) -> serde_json::Value {
        let (_, body) =
            get(&format!("{}/api/v1/overwatch/agents/{id}", self.api(ow))).unwrap_or_default();
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
    }

    pub fn wait_dns(&self, ow: &str, ip: &str, present: bool, timeout: Duration) -> Duration {
        let t = Instant::now();
        wait_for(
            &format!("{ip} present={present} in DNS of {ow}"),
            timeout,
            || (self.answers(ow).contains(&ip.to_string()) == present).then_some(()),
        );
        t.elapsed()
    }

    pub fn wait_all_in_dns(&self, timeout: Duration) {
        for ow in self.ows.keys() {
            for ag in self.agents.keys() {
                self.wait_dns(ow, &self.net.ip(ag), true, timeout);
            }
        }
    }
}

/// A UDP query from the current thread's namespace.
pub fn query(server: SocketAddr) -> Option<Vec<String>> {
    let sock = UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(1000)))
        .ok()?;
    sock.send_to(&Query::new(NAME, A).encode(7), server).ok()?;
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    Some(dnsclient::parse(buf.get(..n)?)?.addr_strings())
}

pub fn get(url: &str) -> Option<(u16, String)> {
    crate::util::http_get(url)
}

/// What the monitor saw: counts per status, and every change of status
/// with its time, so a failure says when it happened.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub counts: BTreeMap<(String, String), BTreeMap<String, u32>>,
    pub last: BTreeMap<(String, String), String>,
    pub changes: Vec<(u128, String, String, String)>,
    pub polls: u32,
    /// The slowest agent-list answer, for the report.
    pub max_latency: Duration,
}

/// Polls every Overwatch's agent list every 100 ms from the client
/// namespace, recording each agent's statuses, until stopped.
pub struct Monitor {
    pub stop: Arc<AtomicBool>,
    pub seen: Arc<Mutex<Seen>>,
    pub started: Instant,
    pub thread: Option<std::thread::JoinHandle<()>>,
}

impl Monitor {
    pub fn start(site: &Site) -> Monitor {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let apis: Vec<(String, String)> =
            site.ows.keys().map(|o| (o.clone(), site.api(o))).collect();
        let path = format!("/var/run/netns/{}", site.net.ns("client"));
        let (st, sn) = (Arc::clone(&stop), Arc::clone(&seen));
        let started = Instant::now();
        let thread = std::thread::Builder::new()
            .name("monitor".into())
            .spawn(move || {
                let f = std::fs::File::open(&path).expect("netns");
                // SAFETY: as in Net::enter.
                assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
                let mut next = Instant::now();
                // Bounded: at most ten minutes of polling.
                for _ in 0..6000 {
                    if st.load(Ordering::Relaxed) {
                        break;
                    }
                    for (ow, api) in &apis {
                        let t = Instant::now();
                        let Some((200, body)) = get(&format!("{api}/api/v1/overwatch/agents"))
                        else {
                            continue;
                        };
                        let took = t.elapsed();
                        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                        let mut seen = sn.lock().unwrap();
                        seen.max_latency = seen.max_latency.max(took);
                        for a in v["agents"].as_array().into_iter().flatten() {
                            let id = a["id"].as_str().unwrap_or("").to_string();
                            let status = a["status"].as_str().unwrap_or("").to_string();
                            let key = (ow.clone(), id.clone());
                            *seen
                                .counts
                                .entry(key.clone())
                                .or_default()
                                .entry(status.clone())
                                .or_default() += 1;
                            if seen.last.get(&key) != Some(&status) {
                                seen.changes.push((
                                    started.elapsed().as_millis(),
                                    ow.clone(),
                                    id,
                                    status.clone(),
                                ));
                                seen.last.insert(key, status);
                            }
                        }
                    }
                    sn.lock().unwrap().polls += 1;
                    next += Duration::from_millis(100);
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            })
            .expect("monitor thread");
        Monitor {
            stop,
            seen,
            started,
            thread: Some(thread),
        }
    }

    /// Milliseconds since the monitor started, to line events up.
    pub fn now_ms(&self) -> u128 {
        self.started.elapsed().as_millis()
    }

    pub fn finish(mut self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("monitor");
        }
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub fn assert_never(seen: &Seen, status: &str) {
    for ((ow, ag), st) in &seen.counts {
        assert!(
            !st.contains_key(status),
            "{ag} was {status} on {ow}: {st:?}; changes (ms, ow, agent, status): {:?}",
            seen.changes
        );
    }
}
