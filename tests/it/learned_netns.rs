//! Learned latency across network namespaces (root): two regions (east
//! 10.11.0.11, west 10.12.0.11) with a web server and an agent each, an
//! Overwatch (10.10.0.10) with a `learned_latency` domain falling back to
//! geolocation (default east), and two clients in different /24s behind a
//! router namespace that delays A's packets to east 5 ms and to west 60 ms,
//! B's the other way round (tc netem on the router's delay devices when
//! the kernel has sch_netem, else scripts/demo-delayline.py). Real TCP
//! traffic (curl keep-alive loops to both regions) lets the agents learn;
//! then each client's resolver question, with its prefix in ECS, gets its
//! near region with ECS scope /24, and `GET /api/v1/overwatch/latency`
//! lists both prefixes with the near region first. Same topology as demo 3
//! (scripts/demo-latency.sh), one web host per region.

use crate::util::{BIN, TempDir, need_root, need_tools, wait_for};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const KEY: &str = "b3BlbmdzbGItbmV0bnMtdGVzdC1rZXktMzItYnl0ZXM=";
const NAME: &str = "app.gslb.test";
const OW: &str = "10.10.0.10";

/// The namespaces, processes and files of one test; all gone on drop.
struct Lab {
    tag: String,
    hosts: Vec<&'static str>,
    children: Vec<Child>,
    dir: TempDir,
}

impl Lab {
    fn ns(&self, host: &str) -> String {
        format!("{}{host}", self.tag)
    }

    fn ip(&self, args: &[&str]) {
        let out = Command::new("ip").args(args).output().expect("run ip");
        assert!(out.status.success(), "ip {args:?}: {}", text(&out.stderr));
    }

    fn exec(&self, host: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(host)])
            .args(args)
            .output()
            .expect("ip netns exec")
    }

    /// Starts `args` in `host`'s namespace; its output goes to `log` in the
    /// temp dir, or an absolute path as is (`ip netns exec` execs the
    /// command: the child is it).
    fn spawn(&mut self, host: &str, log: &str, args: &[&str]) {
        let file = std::fs::File::create(self.dir.path().join(log)).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(host)])
            .args(args)
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn in a namespace");
        self.children.push(child);
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// A host with eth0 towards the router: its own /24 (router .1), or a
    /// port of the router's bridge `br`.
    fn host(&mut self, name: &'static str, addr: &str, gw: &str, br: Option<&str>) {
        let (ns, core) = (self.ns(name), self.ns("core"));
        let peer = format!("h-{name}");
        self.ip(&["netns", "add", &ns]);
        self.hosts.push(name);
        self.ip(&["-n", &ns, "link", "set", "lo", "up"]);
        self.ip(&[
            "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &peer, "netns",
            &core,
        ]);
        self.ip(&["-n", &ns, "addr", "add", addr, "dev", "eth0"]);
        self.ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        self.ip(&["-n", &ns, "route", "add", "default", "via", gw]);
        match br {
            Some(br) => self.ip(&["-n", &core, "link", "set", &peer, "master", br]),
            None => self.ip(&[
                "-n",
                &core,
                "addr",
                "add",
                &format!("{gw}/24"),
                "dev",
                &peer,
            ]),
        }
        self.ip(&["-n", &core, "link", "set", &peer, "up"]);
    }

    /// Starts the delay line with per-device delays and waits for "ready".
    fn delay_line(&mut self, log: &str, devices: &[&str]) {
        let script = format!("{ROOT}/scripts/demo-delayline.py");
        let mut args = vec!["python3", script.as_str()];
        args.extend_from_slice(devices);
        self.spawn("core", log, &args);
        wait_for("the delay line", Duration::from_secs(10), || {
            self.log(log).contains("ready").then_some(())
        });
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Every process in the lab's namespaces is one this test started.
        for h in &self.hosts {
            let pids = Command::new("ip")
                .args(["netns", "pids", &self.ns(h)])
                .output()
                .map(|o| text(&o.stdout))
                .unwrap_or_default();
            for pid in pids
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                // SAFETY: kill(2) on a process of our own namespace.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            for log in ["overwatch.log", "e1-agent.log", "w1-agent.log", "delay.log"] {
                eprintln!("---- {log} ----\n{}", self.log(log));
            }
        }
        for h in self.hosts.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(h)])
                .status();
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Router, Overwatch, one web host per region, two clients; the delays.
fn build(lab: &mut Lab) {
    let core = lab.ns("core");
    lab.ip(&["netns", "add", &core]);
    lab.hosts.push("core");
    lab.ip(&["-n", &core, "link", "set", "lo", "up"]);
    let out = lab.exec(
        "core",
        &[
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ],
    );
    assert!(out.status.success(), "sysctl: {}", text(&out.stderr));
    for (br, addr) in [("br-east", "10.11.0.1/24"), ("br-west", "10.12.0.1/24")] {
        lab.ip(&["-n", &core, "link", "add", br, "type", "bridge"]);
        lab.ip(&["-n", &core, "addr", "add", addr, "dev", br]);
        lab.ip(&["-n", &core, "link", "set", br, "up"]);
    }
    lab.host("ow", "10.10.0.10/24", "10.10.0.1", None);
    lab.host("e1", "10.11.0.11/24", "10.11.0.1", Some("br-east"));
    lab.host("w1", "10.12.0.11/24", "10.12.0.1", Some("br-west"));
    lab.host("ca", "10.1.0.2/24", "10.1.0.1", None);
    lab.host("cb", "10.2.0.2/24", "10.2.0.1", None);

    // Each client's packets to a region leave the router through d5 or d60
    // and come back in on it after the delay; netem when there is one.
    lab.delay_line("delay0.log", &["d5:0", "d60:0"]);
    let netem = |dev: &str, ms: &str| {
        Command::new("tc")
            .args(["-n", &core, "qdisc", "add", "dev", dev, "root", "netem"])
            .args(["delay", ms])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !(netem("d5", "5ms") && netem("d60", "60ms")) {
        eprintln!(
            "learned_netns: no sch_netem in this kernel; delays by scripts/demo-delayline.py"
        );
        let mut echo = lab.children.pop().expect("the delay line");
        let _ = echo.kill();
        let _ = echo.wait();
        lab.delay_line("delay.log", &["d5:5", "d60:60"]);
    }
    for dev in ["d5", "d60"] {
        lab.ip(&["-n", &core, "link", "set", dev, "up"]);
    }
    for (table, east, west) in [("101", "d5", "d60"), ("102", "d60", "d5")] {
        lab.ip(&[
            "-n",
            &core,
            "route",
            "add",
            "10.11.0.0/24",
            "dev",
            east,
            "table",
            table,
        ]);
        lab.ip(&[
            "-n",
            &core,
            "route",
            "add",
            "10.12.0.0/24",
            "dev",
            west,
            "table",
            table,
        ]);
    }
    lab.ip(&[
        "-n", &core, "rule", "add", "pref", "100", "iif", "h-ca", "lookup", "101",
    ]);
    lab.ip(&[
        "-n", &core, "rule", "add", "pref", "101", "iif", "h-cb", "lookup", "102",
    ]);
}

fn overwatch_yaml(dir: &str) -> String {
    let hc = "{ type: http, path: /health, interval: 500ms, timeout: 500ms }";
    format!(
        r#"mode: overwatch
dns:
  listen_address: "{OW}:53"
  zones: [gslb.test]
overwatch:
  identity: {{ node_id: ow1, region: east }}
  agent_tokens: {{ {NAME}: "app-token" }}
  gossip: {{ bind_address: "{OW}:17946", encryption_key: "{KEY}" }}
  validation: {{ enabled: true, check_interval: 500ms, check_timeout: 500ms }}
  data_dir: "{dir}/ow-data"
  geolocation:
    default_region: east
    custom_mappings: [{{ cidr: 10.10.0.0/24, region: east }}]
regions:
  - {{ name: east, health_check: {hc} }}
  - {{ name: west, health_check: {hc} }}
domains:
  - {{ name: {NAME}, routing_algorithm: learned_latency, regions: [east, west], ttl: 5 }}
api:
  address: "{OW}:19090"
  allowed_networks: [10.0.0.0/8]
"#
    )
}

fn agent_yaml(dir: &str, host: &str, region: &str, addr: &str) -> String {
    format!(
        r#"mode: agent
agent:
  identity:
    agent_id: {host}
    region: {region}
    service_token: "app-token"
    cert_path: "{dir}/{host}.crt"
    key_path: "{dir}/{host}.key"
  backends:
    - service: {NAME}
      address: "{addr}"
      port: 8080
      health_check: {{ type: http, path: /health, interval: 500ms, timeout: 500ms }}
  gossip:
    encryption_key: "{KEY}"
    overwatch_nodes: ["{OW}:17946"]
  heartbeat: {{ interval: 500ms, missed_threshold: 3 }}
  api: {{ address: "{addr}:9100" }}
  latency_learning:
    enabled: true
    poll_interval: 300ms
    min_connection_age: 600ms
    min_samples: 2
    report_interval: 500ms
"#
    )
}

/// The regions the latency table ranks for `prefix`, fastest first.
fn ranked(page: &serde_json::Value, prefix: &str) -> Vec<String> {
    let rows = page["prefixes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let Some(row) = rows.iter().find(|r| r["prefix"] == prefix) else {
        return Vec::new();
    };
    let regions = row["regions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    regions
        .iter()
        .filter_map(|r| r["region"].as_str().map(str::to_string))
        .collect()
}

/// What `client`'s resolver gets for the name, asking with `subnet` in
/// ECS: the sorted addresses and the CLIENT-SUBNET line.
fn ask(lab: &Lab, client: &str, subnet: &str) -> (Vec<String>, String) {
    let server = format!("@{OW}");
    let out = lab.exec(
        client,
        &[
            "dig",
            "+time=1",
            "+tries=1",
            &format!("+subnet={subnet}"),
            &server,
            NAME,
            "A",
        ],
    );
    let out = text(&out.stdout);
    let mut addrs: Vec<String> = out
        .lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 5 && f[3] == "A").then(|| f[4].to_string())
        })
        .collect();
    addrs.sort();
    let ecs = out
        .lines()
        .find(|l| l.contains("CLIENT-SUBNET"))
        .unwrap_or_default()
        .trim()
        .to_string();
    (addrs, ecs)
}

#[test]
fn each_client_prefix_is_answered_from_its_near_region() {
    if !need_root("learned_netns")
        || !need_tools("learned_netns", &["ip", "dig", "curl", "python3"])
    {
        return;
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        crate::util::skip("learned_netns", "no /dev/net/tun for the delay line");
        return;
    }
    let mut lab = Lab {
        tag: format!("oglt{}", std::process::id()),
        hosts: Vec::new(),
        children: Vec::new(),
        dir: TempDir::new("learned-netns"),
    };
    build(&mut lab);
    let dir = lab.dir.path().display().to_string();
    let ow = lab.dir.write("overwatch.yaml", &overwatch_yaml(&dir));
    lab.spawn(
        "ow",
        "overwatch.log",
        &[BIN, "--config", ow.to_str().unwrap()],
    );
    for (host, region, addr) in [("e1", "east", "10.11.0.11"), ("w1", "west", "10.12.0.11")] {
        let www = lab.dir.path().join(host);
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("health"), "ok\n").unwrap();
        std::fs::write(www.join("page"), vec![b'x'; 20_000]).unwrap();
        let www = www.to_str().unwrap().to_string();
        lab.spawn(
            host,
            &format!("{host}-http.log"),
            &[
                "python3",
                "-m",
                "http.server",
                "8080",
                "-p",
                "HTTP/1.1",
                "--bind",
                addr,
                "--directory",
                &www,
            ],
        );
        let cfg = lab.dir.write(
            &format!("{host}-agent.yaml"),
            &agent_yaml(&dir, host, region, addr),
        );
        lab.spawn(
            host,
            &format!("{host}-agent.log"),
            &[BIN, "--config", cfg.to_str().unwrap()],
        );
    }
    let east = vec!["10.11.0.11".to_string()];
    let west = vec!["10.12.0.11".to_string()];

    // Cold prefixes: geolocation's default region for both clients.
    wait_for(
        "east in DNS for a cold prefix",
        Duration::from_secs(60),
        || (ask(&lab, "cb", "10.2.0.0/24").0 == east).then_some(()),
    );

    // Real traffic: keep-alive connections from each client to both regions.
    for client in ["ca", "cb"] {
        for web in ["10.11.0.11", "10.12.0.11"] {
            let lp = format!(
                "while :; do curl -s -o /dev/null --rate 4/s 'http://{web}:8080/page?[1-20]'; done"
            );
            lab.spawn(client, "/dev/null", &["sh", "-c", &lp]);
        }
    }

    // The table ranks both regions for both prefixes, near first, and
    // each client's resolver gets its near region, scoped to its /24.
    let url = format!("http://{OW}:19090/api/v1/overwatch/latency?limit=100");
    let (page, a, b) = wait_for(
        "each client on its near region",
        Duration::from_secs(90),
        || {
            let out = lab.exec("ow", &["curl", "-sf", &url]);
            let page: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            let both =
                ranked(&page, "10.1.0.0/24").len() == 2 && ranked(&page, "10.2.0.0/24").len() == 2;
            let a = ask(&lab, "ca", "10.1.0.0/24");
            let b = ask(&lab, "cb", "10.2.0.0/24");
            (both && a.0 == east && b.0 == west).then_some((page, a, b))
        },
    );
    assert_eq!(ranked(&page, "10.1.0.0/24"), ["east", "west"], "{page}");
    assert_eq!(ranked(&page, "10.2.0.0/24"), ["west", "east"], "{page}");
    assert!(
        a.1.contains("10.1.0.0/24/24"),
        "scope of A's answer: {}",
        a.1
    );
    assert!(
        b.1.contains("10.2.0.0/24/24"),
        "scope of B's answer: {}",
        b.1
    );
}
