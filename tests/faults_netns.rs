//! Fault injection across real hosts (issue 6): every Overwatch, agent and
//! HTTP backend runs in its own network namespace, joined by a bridge in a
//! "core" namespace that this test creates and deletes. Faults are cut
//! links and random loss (iptables inside the agent's namespace), process
//! restarts, gossip key rotation and certificate rotation; every outcome
//! is read from DNS answers and the API, from a client namespace.
//!
//! Needs root and iproute2/iptables; otherwise each test prints
//! "SKIPPED: needs root and iproute2" and returns. All traffic stays
//! inside the namespaces (10.77.0.0/24 exists only there).

mod common;

use common::dnsclient::{self, A, Query};
use common::{BIN, TempDir, wait_for};
use std::collections::BTreeMap;
use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const K1: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
const K2: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const NAME: &str = "app.gslb.test";

fn can_run() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let tool = |t: &str, arg: &str| {
        Command::new(t)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let ok = root && tool("ip", "-V") && tool("iptables", "-V") && tool("python3", "-V");
    if !ok {
        eprintln!("SKIPPED: needs root and iproute2 (and iptables, python3)");
    }
    ok
}

/// Runs a command; panics with its stderr when it fails.
fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A process started inside a namespace; killed on drop, its log printed
/// when the test fails.
struct Proc {
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    fn signal(&self, sig: i32) {
        if self.pid() > 0 {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(self.pid(), sig) };
        }
    }

    fn stop(&mut self) -> Option<i32> {
        self.signal(libc::SIGTERM);
        let child = self.child.as_mut()?;
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(st)) = child.try_wait() {
                self.child = None;
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        None
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- {} ----\n{}", self.log.display(), self.log_text());
        }
    }
}

/// The namespaces of one test: a bridge in `core`, one veth per host.
/// Dropping it deletes every namespace, which deletes the veths.
struct Net {
    core: String,
    hosts: Vec<(String, String)>,
}

static RUN: AtomicU32 = AtomicU32::new(0);

impl Net {
    fn new(hosts: &[&str]) -> Net {
        let id = format!(
            "og{}x{}",
            std::process::id(),
            RUN.fetch_add(1, Ordering::Relaxed)
        );
        let mut net = Net {
            core: format!("{id}core"),
            hosts: Vec::new(),
        };
        run(&["ip", "netns", "add", &net.core]);
        run(&[
            "ip", "-n", &net.core, "link", "add", "br0", "type", "bridge",
        ]);
        run(&["ip", "-n", &net.core, "link", "set", "br0", "up"]);
        for (i, h) in hosts.iter().enumerate() {
            let ns = format!("{id}{h}");
            run(&["ip", "netns", "add", &ns]);
            net.hosts.push((h.to_string(), ns.clone()));
            let port = format!("p{i}");
            run(&[
                "ip", "-n", &net.core, "link", "add", &port, "type", "veth", "peer", "name",
                "eth0", "netns", &ns,
            ]);
            run(&[
                "ip", "-n", &net.core, "link", "set", &port, "master", "br0", "up",
            ]);
            let addr = format!("{}/24", Self::addr(i));
            run(&["ip", "-n", &ns, "addr", "add", &addr, "dev", "eth0"]);
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        }
        net
    }

    fn addr(i: usize) -> String {
        format!("10.77.0.{}", i + 10)
    }

    fn ns(&self, host: &str) -> &str {
        &self.hosts.iter().find(|(h, _)| h == host).expect("host").1
    }

    fn ip(&self, host: &str) -> String {
        Self::addr(
            self.hosts
                .iter()
                .position(|(h, _)| h == host)
                .expect("host"),
        )
    }

    fn spawn(&self, host: &str, args: &[&str], log: &Path) -> Proc {
        let file = std::fs::File::create(log).expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", self.ns(host)])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("ip netns exec");
        Proc {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    fn iptables(&self, host: &str, rule: &[&str]) {
        let mut args = vec!["ip", "netns", "exec", self.ns(host), "iptables", "-w"];
        args.extend_from_slice(rule);
        run(&args);
    }

    /// Moves the calling thread into `host`'s namespace: every socket it
    /// opens afterwards lives there.
    fn enter(&self, host: &str) {
        let f =
            std::fs::File::open(format!("/var/run/netns/{}", self.ns(host))).expect("netns file");
        // SAFETY: setns on a valid fd; CLONE_NEWNET affects this thread only.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for (_, ns) in &self.hosts {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.core])
            .status();
    }
}

/// The usual cast: two Overwatches, `n` agents each with a python HTTP
/// backend in its own namespace, and a client namespace the test thread
/// enters. Processes are declared before `net` so they die first.
struct Site {
    ows: BTreeMap<String, Proc>,
    agents: BTreeMap<String, Proc>,
    _backends: Vec<Proc>,
    dir: TempDir,
    net: Net,
}

fn ow_yaml(net: &Net, dir: &TempDir, name: &str, keys: (&str, &[&str])) -> String {
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

fn agent_yaml(net: &Net, dir: &TempDir, name: &str, ows: &[&str], keys: (&str, &[&str])) -> String {
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
    fn bare(tag: &str, hosts: &[&str]) -> Site {
        let net = Net::new(hosts);
        Site {
            ows: BTreeMap::new(),
            agents: BTreeMap::new(),
            _backends: Vec::new(),
            dir: TempDir::new(tag),
            net,
        }
    }

    fn new(tag: &str, n_ow: usize, n_agents: usize) -> Site {
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

    fn write_config(&self, name: &str, text: &str) -> PathBuf {
        common::TempDir::write(&self.dir, &format!("{name}.yaml"), text)
    }

    fn start_ow(&mut self, name: &str, keys: (&str, &[&str])) {
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

    fn start_agent(&mut self, name: &str, ows: &[&str], keys: (&str, &[&str])) {
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

    fn api(&self, ow: &str) -> String {
        format!("http://{}:9090", self.net.ip(ow))
    }

    fn dns(&self, ow: &str) -> SocketAddr {
        format!("{}:53", self.net.ip(ow)).parse().unwrap()
    }

    fn answers(&self, ow: &str) -> Vec<String> {
        query(self.dns(ow)).unwrap_or_default()
    }

    fn agent_status(&self, ow: &str, id: &str) -> serde_json::Value {
        let (_, body) =
            get(&format!("{}/api/v1/overwatch/agents/{id}", self.api(ow))).unwrap_or_default();
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
    }

    fn wait_dns(&self, ow: &str, ip: &str, present: bool, timeout: Duration) -> Duration {
        let t = Instant::now();
        wait_for(
            &format!("{ip} present={present} in DNS of {ow}"),
            timeout,
            || (self.answers(ow).contains(&ip.to_string()) == present).then_some(()),
        );
        t.elapsed()
    }

    fn wait_all_in_dns(&self, timeout: Duration) {
        for ow in self.ows.keys() {
            for ag in self.agents.keys() {
                self.wait_dns(ow, &self.net.ip(ag), true, timeout);
            }
        }
    }
}

/// A UDP query from the current thread's namespace.
fn query(server: SocketAddr) -> Option<Vec<String>> {
    let sock = UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(1000)))
        .ok()?;
    sock.send_to(&Query::new(NAME, A).encode(7), server).ok()?;
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    Some(dnsclient::parse(buf.get(..n)?)?.addr_strings())
}

fn get(url: &str) -> Option<(u16, String)> {
    common::http_get(url)
}

/// What the monitor saw: counts per status, and every change of status
/// with its time, so a failure says when it happened.
#[derive(Clone, Debug, Default)]
struct Seen {
    counts: BTreeMap<(String, String), BTreeMap<String, u32>>,
    last: BTreeMap<(String, String), String>,
    changes: Vec<(u128, String, String, String)>,
    polls: u32,
    /// The slowest agent-list answer, for the report.
    max_latency: Duration,
}

/// Polls every Overwatch's agent list every 100 ms from the client
/// namespace, recording each agent's statuses, until stopped.
struct Monitor {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    started: Instant,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Monitor {
    fn start(site: &Site) -> Monitor {
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
    fn now_ms(&self) -> u128 {
        self.started.elapsed().as_millis()
    }

    fn finish(mut self) -> Seen {
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

fn assert_never(seen: &Seen, status: &str) {
    for ((ow, ag), st) in &seen.counts {
        assert!(
            !st.contains_key(status),
            "{ag} was {status} on {ow}: {st:?}; changes (ms, ow, agent, status): {:?}",
            seen.changes
        );
    }
}

#[test]
fn agent_cut_off_from_one_overwatch() {
    if !can_run() {
        return;
    }
    let site = Site::new("nf-cut", 2, 3);
    site.wait_all_in_dns(Duration::from_secs(20));
    let (ow1, ag1) = (site.net.ip("ow1"), site.net.ip("ag1"));
    let t = Instant::now();
    site.net
        .iptables("ag1", &["-A", "OUTPUT", "-d", &ow1, "-j", "DROP"]);
    site.net
        .iptables("ag1", &["-A", "INPUT", "-s", &ow1, "-j", "DROP"]);
    site.wait_dns("ow1", &ag1, false, Duration::from_secs(10));
    let gone = t.elapsed();
    assert_eq!(site.agent_status("ow1", "ag1")["status"], "stale");
    assert_eq!(site.agent_status("ow2", "ag1")["status"], "active");
    for _ in 0..10 {
        assert!(site.answers("ow2").contains(&ag1), "ow2 keeps serving ag1");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, m) = get(&format!("{}/metrics", site.api("ow1"))).unwrap();
    assert!(m.contains("opengslb_overwatch_stale_agents 1"), "{m}");
    let t = Instant::now();
    site.net
        .iptables("ag1", &["-D", "OUTPUT", "-d", &ow1, "-j", "DROP"]);
    site.net
        .iptables("ag1", &["-D", "INPUT", "-s", &ow1, "-j", "DROP"]);
    site.wait_dns("ow1", &ag1, true, Duration::from_secs(15));
    let back = t.elapsed();
    assert_eq!(site.agent_status("ow1", "ag1")["status"], "active");
    assert!(site.answers("ow2").contains(&ag1));
    eprintln!("FIGURES cut-off: out of ow1's DNS after {gone:?}; back after restore in {back:?}");
}

#[test]
fn ten_percent_loss_never_flaps_to_stale() {
    if !can_run() {
        return;
    }
    let site = Site::new("nf-loss", 2, 3);
    site.wait_all_in_dns(Duration::from_secs(20));
    for dir in ["OUTPUT", "INPUT"] {
        site.net.iptables(
            "ag1",
            &[
                "-A",
                dir,
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                "0.1",
                "-j",
                "DROP",
            ],
        );
    }
    let mon = Monitor::start(&site);
    std::thread::sleep(Duration::from_secs(60));
    let seen = mon.finish();
    let polls = seen.polls;
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            site.net.ns("ag1"),
            "iptables",
            "-w",
            "-L",
            "-v",
            "-n",
            "-x",
        ])
        .output()
        .unwrap();
    let dropped: u64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("statistic"))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    eprintln!(
        "FIGURES loss: {polls} polls over 60 s, {dropped} packets dropped on ag1's link, max API latency {:?}, statuses {:?}",
        seen.max_latency, seen.counts
    );
    assert!(polls > 300, "the monitor polled: {polls}");
    assert!(dropped > 0, "the loss rule dropped something");
    assert_never(&seen, "stale");
    for ow in ["ow1", "ow2"] {
        assert_eq!(site.agent_status(ow, "ag1")["status"], "active");
    }
}

#[test]
fn restarted_overwatch_keeps_overrides_pins_and_revocations() {
    if !can_run() {
        return;
    }
    let mut site = Site::new("nf-restart", 2, 3);
    site.wait_all_in_dns(Duration::from_secs(20));
    let api = site.api("ow1");
    let ag2 = site.net.ip("ag2");
    let (code, body) = common::http(
        &format!("{api}/api/v1/overwatch/backends/{NAME}/{ag2}/8080/override"),
        "POST",
        Some(r#"{"healthy": false, "reason": "fault test"}"#),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let (code, body) = common::http(
        &format!("{api}/api/v1/overwatch/agents/ag3/revoke"),
        "POST",
        Some(r#"{"reason":"fault test"}"#),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    site.wait_dns("ow1", &ag2, false, Duration::from_secs(5));
    site.wait_dns("ow1", &site.net.ip("ag3"), false, Duration::from_secs(5));
    let pins: Vec<serde_json::Value> = ["ag1", "ag2", "ag3"]
        .iter()
        .map(|a| site.agent_status("ow1", a)["fingerprint"].clone())
        .collect();
    assert!(pins.iter().all(|p| p.is_string()), "{pins:?}");

    let code = site.ows.get_mut("ow1").unwrap().stop();
    assert_eq!(code, Some(0));
    let t = Instant::now();
    site.start_ow("ow1", (K1, &[]));
    wait_for("ow1 ready again", Duration::from_secs(15), || {
        get(&format!("{api}/api/v1/ready")).filter(|(c, _)| *c == 200)
    });
    site.wait_dns("ow1", &site.net.ip("ag1"), true, Duration::from_secs(20));
    let rejoin = t.elapsed();
    let (_, o) = get(&format!("{api}/api/v1/overrides")).unwrap();
    assert!(
        o.contains(&ag2) && o.contains("fault test"),
        "override kept: {o}"
    );
    wait_for("ag2 active again", Duration::from_secs(15), || {
        (site.agent_status("ow1", "ag2")["status"] == "active").then_some(())
    });
    for (a, pin) in ["ag1", "ag2", "ag3"].iter().zip(&pins) {
        wait_for(
            &format!("pin of {a} listed"),
            Duration::from_secs(10),
            || {
                site.agent_status("ow1", a)["fingerprint"]
                    .is_string()
                    .then_some(())
            },
        );
        assert_eq!(
            &site.agent_status("ow1", a)["fingerprint"],
            pin,
            "pin of {a} kept"
        );
    }
    wait_for("ag3 still revoked", Duration::from_secs(15), || {
        let v = site.agent_status("ow1", "ag3");
        (v["status"] == "rejected" && v["reject_reason"] == "revoked").then_some(())
    });
    let a = site.answers("ow1");
    assert_eq!(
        a,
        vec![site.net.ip("ag1")],
        "only ag1: ag2 overridden, ag3 revoked"
    );
    assert_eq!(site.answers("ow2").len(), 3, "ow2 is independent");
    // The pin really survived: ag1 with a new certificate is refused.
    assert_eq!(site.agents.get_mut("ag1").unwrap().stop(), Some(0));
    std::fs::remove_file(site.dir.path().join("ag1.crt")).unwrap();
    std::fs::remove_file(site.dir.path().join("ag1.key")).unwrap();
    site.start_agent("ag1", &["ow1", "ow2"], (K1, &[]));
    wait_for(
        "pin_mismatch after restart",
        Duration::from_secs(15),
        || (site.agent_status("ow1", "ag1")["reject_reason"] == "pin_mismatch").then_some(()),
    );
    eprintln!("FIGURES restart: ow1 back in DNS with ag1 {rejoin:?} after restart");
}

#[test]
fn gossip_key_rotation_without_stale() {
    if !can_run() {
        return;
    }
    let mut site = Site::new("nf-keys", 2, 3);
    site.wait_all_in_dns(Duration::from_secs(20));
    let mon = Monitor::start(&site);
    let t = Instant::now();
    let ows = ["ow1", "ow2"];
    let mut steps: Vec<(u128, String)> = Vec::new();
    let reload_ow = |site: &Site, steps: &mut Vec<(u128, String)>, keys: (&str, &[&str])| {
        for ow in ows {
            site.write_config(ow, &ow_yaml(&site.net, &site.dir, ow, keys));
            site.ows[ow].signal(libc::SIGHUP);
            steps.push((mon.now_ms(), format!("SIGHUP {ow} keys {keys:?}")));
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let restart_agents =
        |site: &mut Site, steps: &mut Vec<(u128, String)>, keys: (&str, &[&str])| {
            for ag in ["ag1", "ag2", "ag3"] {
                steps.push((mon.now_ms(), format!("stop {ag}")));
                assert_eq!(site.agents.get_mut(ag).unwrap().stop(), Some(0));
                site.start_agent(ag, &ows, keys);
                steps.push((mon.now_ms(), format!("started {ag}")));
                for ow in ows {
                    site.wait_dns(ow, &site.net.ip(ag), true, Duration::from_secs(15));
                }
                steps.push((mon.now_ms(), format!("{ag} in DNS of both")));
            }
        };
    // 1. Overwatches learn the new key; 2. agents send with it, keep the old;
    // 3. Overwatches make it primary and drop the old; 4. so do agents.
    reload_ow(&site, &mut steps, (K1, &[K2]));
    restart_agents(&mut site, &mut steps, (K2, &[K1]));
    reload_ow(&site, &mut steps, (K2, &[]));
    restart_agents(&mut site, &mut steps, (K2, &[]));
    std::thread::sleep(Duration::from_secs(4));
    let seen = mon.finish();
    eprintln!(
        "FIGURES key rotation: {:?} in total, {} polls, statuses {:?}, steps {steps:?}",
        t.elapsed(),
        seen.polls,
        seen.counts
    );
    assert_never(&seen, "stale");
    assert_never(&seen, "rejected");
    for ow in ows {
        for ag in ["ag1", "ag2", "ag3"] {
            assert_eq!(
                site.agent_status(ow, ag)["status"],
                "active",
                "{ag} on {ow}"
            );
        }
        let (_, m) = get(&format!("{}/metrics", site.api(ow))).unwrap();
        let reloads = m
            .lines()
            .find(|l| l.starts_with("opengslb_config_reloads_total{result=\"success\"}"));
        assert!(
            reloads.is_some_and(|l| l.ends_with(" 2")),
            "{ow} reloaded twice: {reloads:?}"
        );
    }
}

/// A certificate valid for `secs` more seconds, signed by a new key.
fn short_lived_identity(id: &str, secs: u64) -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec![id.to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, id);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (y, m, d, ..) = opengslb::timefmt::civil(now);
    let midnight = rcgen::date_time_ymd(y as i32, m as u8, d as u8);
    params.not_before = midnight - Duration::from_secs(86_400);
    params.not_after = midnight + Duration::from_secs(now % 86_400 + secs);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[test]
fn expired_certificate_rotates_with_proof_from_the_old_key() {
    if !can_run() {
        return;
    }
    // One Overwatch, one agent whose first certificate lives 20 seconds.
    let mut site = Site::bare("nf-cert", &["ow1", "ag1", "client"]);
    site.start_ow("ow1", (K1, &[]));
    let www = site.dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("health"), "ok").unwrap();
    let ip = site.net.ip("ag1");
    let log = site.dir.path().join("http.log");
    site._backends.push(site.net.spawn(
        "ag1",
        &[
            "python3",
            "-m",
            "http.server",
            "8080",
            "--bind",
            &ip,
            "--directory",
            www.to_str().unwrap(),
        ],
        &log,
    ));
    site.net.enter("client");
    let (cert, key) = short_lived_identity("ag1", 20);
    let crt_path = site.dir.path().join("ag1.crt");
    std::fs::write(&crt_path, cert).unwrap();
    common::TempDir::write(&site.dir, "ag1.key", &key);
    let expires = Instant::now() + Duration::from_secs(20);
    wait_for("ow1 ready", Duration::from_secs(15), || {
        get(&format!("{}/api/v1/ready", site.api("ow1"))).filter(|(c, _)| *c == 200)
    });
    site.start_agent("ag1", &["ow1"], (K1, &[]));
    site.wait_dns("ow1", &ip, true, Duration::from_secs(15));
    let old_fp = site.agent_status("ow1", "ag1")["fingerprint"].clone();
    assert!(old_fp.is_string());
    assert_eq!(site.agents.get_mut("ag1").unwrap().stop(), Some(0));
    std::thread::sleep(expires.saturating_duration_since(Instant::now()) + Duration::from_secs(2));
    let t = Instant::now();
    site.start_agent("ag1", &["ow1"], (K1, &[]));
    site.wait_dns("ow1", &ip, true, Duration::from_secs(15));
    let took = t.elapsed();
    let v = site.agent_status("ow1", "ag1");
    assert_eq!(v["status"], "active", "{v}");
    assert_ne!(
        v["fingerprint"], old_fp,
        "the new certificate is pinned without operator action"
    );
    assert!(v["reject_reason"].is_null(), "{v}");
    let log = site.agents["ag1"].log_text();
    assert!(log.contains("expired"), "{log}");
    assert!(Path::new(&format!("{}.rotation", crt_path.display())).exists());
    let mut text = String::new();
    std::fs::File::open(&crt_path)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.contains("BEGIN CERTIFICATE"));
    eprintln!(
        "FIGURES cert rotation: expired certificate replaced and re-pinned in {took:?} after start"
    );
}
