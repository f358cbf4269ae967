//! Overwatch peers (SPEC §12) on loopback: three nodes whose gossip
//! listens on 127.0.0.1, .2 and .3, so one node can be cut off with
//! iptables rules on its address alone (the test adds and removes them).
//! An override set on one node reaches every node's DNS; a partition with
//! writes on both sides heals to the same state (compared by the digest
//! of `GET /api/v1/cluster/status`); a node restarted during a partition
//! converges; forged peer packets are refused with a reason and counted.

use crate::util::dnsclient::{self, A, Query};
use crate::util::ops::{KEY, OTHER_KEY, SERVICE, stable_port};
use crate::util::*;
use opengslb::gossip::crypto::Keyring;
use opengslb::gossip::wire::PEER_SESSION;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const BACKENDS: [&str; 3] = ["127.0.0.10", "127.0.0.11", "127.0.0.12"];

struct Node {
    name: String,
    daemon: Daemon,
    config: PathBuf,
    dns: SocketAddr,
    api: String,
    gossip: SocketAddr,
    runs: u32,
}

impl Node {
    fn answers(&self) -> Vec<String> {
        let mut v = dnsclient::udp(self.dns, &Query::new(SERVICE, A))
            .map(|r| r.addr_strings())
            .unwrap_or_default();
        v.sort();
        v
    }

    fn json(&self, path: &str) -> serde_json::Value {
        let (code, body) = http_get(&format!("{}{path}", self.api)).unwrap_or_default();
        assert_eq!(code, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    fn digest(&self) -> String {
        self.json("/api/v1/cluster/status")["digest"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn set(&self, b: SocketAddr, healthy: bool, who: &str) {
        let url = format!(
            "{}/api/v1/overwatch/backends/{SERVICE}/{}/{}/override",
            self.api,
            b.ip(),
            b.port()
        );
        let body = format!("{{\"healthy\": {healthy}, \"reason\": \"test by {who}\"}}");
        let (code, text) = http_req(&url, "POST", Some(&body), who);
        assert_eq!(code, 200, "{text}");
    }

    fn clear(&self, b: SocketAddr) {
        let url = format!(
            "{}/api/v1/overwatch/backends/{SERVICE}/{}/{}/override",
            self.api,
            b.ip(),
            b.port()
        );
        let (code, text) = http_req(&url, "DELETE", None, "tester");
        assert!(code == 200 || code == 404, "{text}");
    }

    fn wait_answers(&self, want: &[&str]) {
        let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        wait_for(&format!("{} answers {want:?}", self.name), WAIT, || {
            (self.answers() == want).then_some(())
        });
    }

    fn metric(&self, needle: &str) -> f64 {
        let (_, text) = http_get(&format!("{}/metrics", self.api)).unwrap_or_default();
        text.lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    fn wait_ready(&self) {
        wait_for(&format!("{} ready", self.name), WAIT, || {
            http_get(&format!("{}/api/v1/ready", self.api)).filter(|(c, _)| *c == 200)
        });
    }

    fn restart(&mut self, dir: &TempDir) {
        self.daemon.kill();
        self.runs += 1;
        let name = format!("{}-run{}", self.name, self.runs);
        self.daemon = Daemon::start_file(dir, &name, &self.config, "overwatch");
        self.wait_ready();
    }
}

/// `POST`/`DELETE` with `X-User` (the audited operator).
pub(crate) fn http_req(url: &str, method: &str, body: Option<&str>, user: &str) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method])
        .args(["-H", &format!("X-User: {user}")])
        .args(["-H", "Content-Type: application/json"]);
    if let Some(b) = body {
        cmd.args(["-d", b]);
    }
    let out = cmd.arg(url).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// The three static backends, HTTP servers on 127.0.0.{10,11,12}.
fn backends() -> Vec<HttpBackend> {
    BACKENDS.iter().map(|ip| HttpBackend::start(ip)).collect()
}

/// Three nodes, gossip on 127.0.0.{1,2,3}, each listing the two others,
/// validating `be` (so they are healthy until an override says otherwise).
fn cluster(dir: &TempDir, be: &[HttpBackend]) -> Vec<Node> {
    let gossip: Vec<SocketAddr> = (1..=3)
        .map(|i| format!("127.0.0.{i}:{}", stable_port()).parse().unwrap())
        .collect();
    (0..3)
        .map(|i| {
            let name = format!("ow-{}", ["a", "b", "c"][i]);
            let dns: SocketAddr = format!("127.0.0.1:{}", stable_port()).parse().unwrap();
            let api = format!("127.0.0.1:{}", stable_port());
            let peers: Vec<String> = gossip
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, g)| format!("\"{g}\""))
                .collect();
            let data = dir.path().join(format!("{name}-data"));
            let servers: String = be
                .iter()
                .map(|b| {
                    format!(
                        "      - {{ address: \"{}\", port: {}, weight: 1, service: {SERVICE} }}\n",
                        b.addr.ip(),
                        b.addr.port()
                    )
                })
                .collect();
            let yaml = format!(
                r#"mode: overwatch
dns:
  listen_address: "{dns}"
  zones: [gslb.test]
overwatch:
  identity: {{ node_id: {name} }}
  agent_tokens: {{ {SERVICE}: "app-token" }}
  gossip: {{ bind_address: "{g}", encryption_key: "{KEY}" }}
  validation: {{ enabled: true, check_interval: 200ms, check_timeout: 500ms }}
  data_dir: "{data}"
  peers: [{peers}]
  peer_sync: {{ interval: 1s }}
regions:
  - name: east
    servers:
{servers}    health_check: {{ type: http, path: /health, interval: 200ms, timeout: 500ms, failure_threshold: 2, success_threshold: 1 }}
domains:
  - {{ name: {SERVICE}, routing_algorithm: round-robin, regions: [east] }}
api:
  address: "{api}"
"#,
                g = gossip[i],
                data = data.display(),
                peers = peers.join(", "),
            );
            let config = dir.write(&format!("{name}.yaml"), &yaml);
            let daemon = Daemon::start_file(dir, &name, &config, "overwatch");
            Node {
                name,
                daemon,
                config,
                dns,
                api: format!("http://{api}"),
                gossip: gossip[i],
                runs: 1,
            }
        })
        .collect()
}

fn all_connected(nodes: &[Node]) {
    for n in nodes {
        wait_for(&format!("{} sees its peers", n.name), WAIT, || {
            let v = n.json("/api/v1/cluster/status");
            let peers = v["peers"].as_array()?;
            (peers.len() == 2 && peers.iter().all(|p| p["state"] == "connected")).then_some(())
        });
    }
}

fn same_digest(nodes: &[Node]) -> String {
    wait_for("every node holds the same state", WAIT, || {
        let d: Vec<String> = nodes.iter().map(Node::digest).collect();
        (d.iter().all(|x| *x == d[0] && !x.is_empty())).then(|| d[0].clone())
    })
}

#[test]
fn an_override_on_one_node_is_in_every_nodes_dns_and_audited_with_its_origin() {
    if !need_tools("peers basic", &["curl"]) {
        return;
    }
    let dir = TempDir::new("peers-basic");
    let be = backends();
    let nodes = cluster(&dir, &be);
    for n in &nodes {
        n.wait_ready();
    }
    all_connected(&nodes);
    for n in &nodes {
        n.wait_answers(&BACKENDS);
    }
    nodes[0].set(be[0].addr, false, "alice");
    for n in &nodes {
        n.wait_answers(&BACKENDS[1..]);
    }
    // Cleared on another node: back everywhere.
    nodes[2].clear(be[0].addr);
    for n in &nodes {
        n.wait_answers(&BACKENDS);
    }
    same_digest(&nodes);
    // The audit log of B records A's change with origin and operator.
    let audit = nodes[1].json("/api/v1/audit-logs");
    let text = audit.to_string();
    assert!(
        text.contains("peer:ow-a") && text.contains("alice"),
        "{text}"
    );
    assert!(
        nodes[1].metric("opengslb_overwatch_peer_sync_changes_total{direction=\"received\"}")
            >= 2.0
    );
    assert_eq!(
        nodes[0].metric("opengslb_overwatch_peers{state=\"connected\"}"),
        2.0
    );
}

/// Drops every packet to and from one loopback address while alive.
struct Cut(String);

impl Cut {
    fn new(ip: &str) -> Option<Cut> {
        for (chain, flag) in [("INPUT", "-s"), ("INPUT", "-d")] {
            let ok = Command::new("iptables")
                .args(["-I", chain, flag, ip, "-p", "udp", "-j", "DROP"])
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return None;
            }
        }
        Some(Cut(ip.to_string()))
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        for flag in ["-s", "-d"] {
            let _ = Command::new("iptables")
                .args(["-D", "INPUT", flag, &self.0, "-p", "udp", "-j", "DROP"])
                .status();
        }
    }
}

#[test]
fn a_partition_with_writes_on_both_sides_and_a_restart_heals_to_one_state() {
    if !need_root("peers partition") || !need_tools("peers partition", &["iptables", "curl"]) {
        return;
    }
    let dir = TempDir::new("peers-partition");
    let be = backends();
    let mut nodes = cluster(&dir, &be);
    for n in &nodes {
        n.wait_ready();
    }
    all_connected(&nodes);
    let cut = Cut::new(&nodes[2].gossip.ip().to_string()).expect("iptables rule");
    // Both sides write, the same key on both and one key each.
    nodes[0].set(be[0].addr, false, "alice");
    nodes[2].set(be[1].addr, false, "carol");
    nodes[2].set(be[0].addr, true, "carol");
    nodes[1].wait_answers(&["127.0.0.11", "127.0.0.12"]);
    // C restarts while cut off: it keeps its own writes (state.json).
    nodes[2].restart(&dir);
    nodes[2].wait_answers(&["127.0.0.10", "127.0.0.12"]);
    drop(cut);
    // Healed: C's later write on .10 wins everywhere, and .11 is out.
    let digest = same_digest(&nodes);
    for n in &nodes {
        n.wait_answers(&["127.0.0.10", "127.0.0.12"]);
        assert_eq!(n.digest(), digest);
    }
}

/// A sealed peer packet with `body` from `from`.
fn send_peer(key: &str, from: &str, to: SocketAddr, body: &str) {
    let ring = Keyring::from_base64(&[key]).unwrap();
    let packet = ring.seal(PEER_SESSION, 1, body.as_bytes()).unwrap();
    let s = UdpSocket::bind(format!("{from}:0")).unwrap();
    s.send_to(&packet, to).unwrap();
}

#[test]
fn forged_peers_are_refused_with_a_reason_and_counted() {
    let dir = TempDir::new("peers-forged");
    let be = backends();
    let nodes = cluster(&dir, &be);
    for n in &nodes {
        n.wait_ready();
    }
    all_connected(&nodes);
    let before = nodes[0].digest();
    let b_port = nodes[1].gossip.port();
    let entry_from = |port: u16, wall: u64, kind: u8| {
        format!(
            r#"{{"t":"push","from":"evil","gossip_port":{port},"seq":1,"entries":[{{"kind":{kind},"id":"{SERVICE}/127.0.0.10/80","stamp":{{"wall_ms":{wall},"logical":0,"node":"evil"}},"operator":"mallory","value":null}}]}}"#
        )
    };
    let entry = |wall: u64, kind: u8| entry_from(b_port, wall, kind);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let to = nodes[0].gossip;
    // Wrong key.
    send_peer(OTHER_KEY, "127.0.0.2", to, &entry(now_ms, 1));
    // The right key (an agent holds it) from an address that is not listed.
    send_peer(KEY, "127.0.0.9", to, &entry_from(1, now_ms, 1));
    // The right key, a listed peer's port, another address.
    send_peer(KEY, "127.0.0.3", to, &entry(now_ms, 1));
    // From B's address: a stamp a day ahead, and an unknown object kind.
    send_peer(KEY, "127.0.0.2", to, &entry(now_ms + 86_400_000, 1));
    send_peer(KEY, "127.0.0.2", to, &entry(now_ms, 99));
    for reason in [
        "decrypt_failed",
        "not_listed",
        "address_mismatch",
        "clock_skew",
        "unknown_kind",
    ] {
        let name = format!("opengslb_overwatch_peer_refused_total{{reason=\"{reason}\"}}");
        wait_for(&name, WAIT, || {
            (nodes[0].metric(&name) >= 1.0).then_some(())
        });
    }
    assert_eq!(nodes[0].digest(), before);
    let log = std::fs::read_to_string(&nodes[0].daemon.log).unwrap_or_default();
    assert!(log.contains("refused: not_listed"), "{log}");
}
