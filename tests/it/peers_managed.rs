//! Managed entries and `overwatch.peers` reloads across two peered
//! Overwatches on loopback (gossip on 127.0.0.1 and 127.0.0.2).
//!
//! B starts listing no peer, so A's packets are refused; a SIGHUP that
//! lists A connects them and A's API servers, regions and domains reach
//! B's DNS. A domain naming a region only A's file has is refused on B,
//! which keeps answering, lists it in the cluster status and counts it,
//! and takes it once a reload gives B the region. An update replicates,
//! a delete made while B is down reaches B when it restarts, and a
//! SIGHUP that drops A from B's list disconnects them.

use super::peers::http_req;
use crate::util::dnsclient::{self, A, Query};
use crate::util::ops::{KEY, SERVICE, cli, stable_port};
use crate::util::*;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

struct Node {
    name: String,
    dns: SocketAddr,
    api: String,
    gossip: SocketAddr,
    data: PathBuf,
}

impl Node {
    fn new(name: &str, ip: &str) -> Node {
        Node {
            name: name.into(),
            dns: format!("127.0.0.1:{}", stable_port()).parse().unwrap(),
            api: format!("127.0.0.1:{}", stable_port()),
            gossip: format!("{ip}:{}", stable_port()).parse().unwrap(),
            data: PathBuf::new(),
        }
    }

    /// The node's file: region east (and north when `north` is set).
    fn yaml(&self, peers: &[SocketAddr], east: SocketAddr, north: Option<SocketAddr>) -> String {
        let peers: Vec<String> = peers.iter().map(|p| format!("\"{p}\"")).collect();
        let region = |name: &str, b: SocketAddr| {
            format!(
                "  - name: {name}\n    servers: [{{ address: \"{}\", port: {} }}]\n    health_check: {{ type: http, path: /health, interval: 200ms, timeout: 500ms }}\n",
                b.ip(),
                b.port()
            )
        };
        format!(
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
{east}{north}domains:
  - {{ name: {SERVICE}, routing_algorithm: round-robin, regions: [east] }}
api:
  address: "{api}"
"#,
            dns = self.dns,
            name = self.name,
            g = self.gossip,
            data = self.data.display(),
            peers = peers.join(", "),
            api = self.api,
            east = region("east", east),
            north = north.map(|n| region("north", n)).unwrap_or_default(),
        )
    }

    fn answers(&self, name: &str) -> Vec<String> {
        let mut v = dnsclient::udp(self.dns, &Query::new(name, A))
            .map(|r| r.addr_strings())
            .unwrap_or_default();
        v.sort();
        v
    }

    fn wait_answers(&self, name: &str, want: &[String]) {
        wait_for(
            &format!("{} answers {name} {want:?}", self.name),
            WAIT,
            || (self.answers(name) == want).then_some(()),
        );
    }

    fn json(&self, path: &str) -> Value {
        let (code, body) = http_get(&format!("http://{}{path}", self.api)).unwrap_or_default();
        assert_eq!(code, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string());
        let url = format!("http://{}{path}", self.api);
        let (code, text) = http_req(&url, method, body.as_deref(), "alice");
        assert!((200..300).contains(&code), "{method} {path}: {code} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    fn metric(&self, needle: &str) -> f64 {
        let (_, text) = http_get(&format!("http://{}/metrics", self.api)).unwrap_or_default();
        text.lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    fn wait_ready(&self) {
        wait_for(&format!("{} ready", self.name), WAIT, || {
            http_get(&format!("http://{}/api/v1/ready", self.api)).filter(|(c, _)| *c == 200)
        });
    }

    fn api_server(&self, id: &str) -> Option<Value> {
        self.json("/api/v1/servers")["servers"]
            .as_array()?
            .iter()
            .find(|s| s["id"] == id && s["source"] == "api")
            .cloned()
    }
}

/// Writes B's file and sends SIGHUP; waits for the reload to be taken.
fn reload(d: &Daemon, dir: &TempDir, file: &str, yaml: &str, reloads: &mut usize) {
    dir.write(file, yaml);
    d.signal(libc::SIGHUP);
    *reloads += 1;
    let want = *reloads;
    wait_for("SIGHUP taken", WAIT, || {
        (d.log_text().matches("configuration reloaded").count() >= want).then_some(())
    });
}

#[test]
fn managed_entries_replicate_refusals_stay_local_and_peers_follow_sighup() {
    if !need_tools("peers managed", &["curl"]) {
        return;
    }
    let dir = TempDir::new("peers-managed");
    let (east, west, north) = (
        HttpBackend::start("127.0.0.10"),
        HttpBackend::start("127.0.0.13"),
        HttpBackend::start("127.0.0.14"),
    );
    let mut a = Node::new("ow-a", "127.0.0.1");
    let mut b = Node::new("ow-b", "127.0.0.2");
    a.data = dir.path().join("a-data");
    b.data = dir.path().join("b-data");
    let a_file = dir.write("a.yaml", &a.yaml(&[b.gossip], east.addr, Some(north.addr)));
    let b_file = dir.write("b.yaml", &b.yaml(&[], east.addr, None));
    let _da = Daemon::start_file(&dir, "ow-a", &a_file, "overwatch");
    let mut db = Daemon::start_file(&dir, "ow-b", &b_file, "overwatch");
    a.wait_ready();
    b.wait_ready();

    // Made on A while B does not list A (A's packets are refused there).
    a.call("POST", "/api/v1/regions", Some(json!({"name": "west"})));
    let server = west.addr.to_string();
    cli(
        &format!("http://{}", a.api),
        &["servers", "create", &server, "--region", "west"],
    )
    .ok("servers create");
    a.call(
        "POST",
        "/api/v1/domains",
        Some(json!({"name": "shop.gslb.test", "regions": ["west"]})),
    );
    a.call(
        "POST",
        "/api/v1/domains",
        Some(json!({"name": "north.gslb.test", "regions": ["north"]})),
    );
    let west_ip = vec![west.addr.ip().to_string()];
    let north_ip = vec![north.addr.ip().to_string()];
    a.wait_answers("shop.gslb.test", &west_ip);
    a.wait_answers("north.gslb.test", &north_ip);
    wait_for("B refuses the unlisted A", WAIT, || {
        (b.metric("opengslb_overwatch_peer_refused_total{reason=\"not_listed\"}") >= 1.0)
            .then_some(())
    });

    // SIGHUP lists A on B: connected, A's entries are in B's DNS.
    let mut reloads = 0;
    reload(
        &db,
        &dir,
        "b.yaml",
        &b.yaml(&[a.gossip], east.addr, None),
        &mut reloads,
    );
    wait_for("B connected to A", WAIT, || {
        let v = b.json("/api/v1/cluster/status");
        let p = v["peers"].as_array()?;
        (p.len() == 1 && p[0]["state"] == "connected").then_some(())
    });
    b.wait_answers("shop.gslb.test", &west_ip);
    let audit = b.json("/api/v1/audit-logs").to_string();
    assert!(
        audit.contains("peer:ow-a")
            && audit.contains("alice")
            && audit.contains("ops-test")
            && audit.contains("set_domain")
            && audit.contains("set_server"),
        "{audit}"
    );

    // north.gslb.test names a region B lacks: refused, listed, counted;
    // B keeps serving everything else.
    let rejected = wait_for("B lists the refused domain", WAIT, || {
        let v = b.json("/api/v1/cluster/status");
        let r = v["rejected"].as_array()?.clone();
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(rejected[0]["id"], "north.gslb.test", "{rejected:?}");
    assert_eq!(rejected[0]["kind"], "managed_domain");
    assert_eq!(rejected[0]["origin"], "ow-a");
    assert!(rejected[0]["reason"].as_str().unwrap().contains("north"));
    assert_eq!(b.metric("opengslb_overwatch_peer_rejected "), 1.0);
    assert!(b.metric("opengslb_overwatch_peer_rejected_total") >= 1.0);
    assert!(b.answers("north.gslb.test").is_empty());
    assert_eq!(b.answers(SERVICE), vec![east.addr.ip().to_string()]);
    assert!(db.log_text().contains("not applied on this node"));
    let shown = cli(&format!("http://{}", b.api), &["cluster", "status"]).ok("cluster status");
    assert!(
        shown.contains("not applied on this node") && shown.contains("north.gslb.test"),
        "{shown}"
    );

    // An update replicates.
    a.call(
        "PUT",
        &format!("/api/v1/servers/{server}"),
        Some(json!({"weight": 7})),
    );
    wait_for("B has the new weight", WAIT, || {
        (b.api_server(&server)?["weight"] == 7).then_some(())
    });

    // A reload that gives B the region: the refused domain is taken.
    reload(
        &db,
        &dir,
        "b.yaml",
        &b.yaml(&[a.gossip], east.addr, Some(north.addr)),
        &mut reloads,
    );
    b.wait_answers("north.gslb.test", &north_ip);
    wait_for("B lists nothing refused", WAIT, || {
        (b.json("/api/v1/cluster/status")["rejected"] == json!([])).then_some(())
    });
    let audit = b.json("/api/v1/audit-logs").to_string();
    assert!(
        audit.contains("not applied here") && audit.contains("taken now"),
        "{audit}"
    );

    // A delete made while B is down reaches B when it restarts.
    db.kill();
    a.call("DELETE", "/api/v1/domains/shop.gslb.test", None);
    a.wait_answers("shop.gslb.test", &[]);
    db = Daemon::start_file(&dir, "ow-b-run2", &b_file, "overwatch");
    b.wait_ready();
    b.wait_answers("shop.gslb.test", &[]);
    let digests = || {
        let (x, y) = (
            a.json("/api/v1/cluster/status")["digest"].clone(),
            b.json("/api/v1/cluster/status")["digest"].clone(),
        );
        (x == y).then_some(())
    };
    wait_for("A and B hold the same state", WAIT, digests);
    assert!(
        b.json("/api/v1/domains")
            .to_string()
            .contains("north.gslb.test")
    );
    assert!(b.api_server(&server).is_some());

    // SIGHUP drops A from B's list: disconnected, A refused again.
    let before = b.metric("opengslb_overwatch_peer_refused_total{reason=\"not_listed\"}");
    reloads = 0;
    reload(
        &db,
        &dir,
        "b.yaml",
        &b.yaml(&[], east.addr, Some(north.addr)),
        &mut reloads,
    );
    wait_for("B lists no peer", WAIT, || {
        let v = b.json("/api/v1/cluster/status");
        v["peers"].as_array()?.is_empty().then_some(())
    });
    wait_for("A refused after the reload", WAIT, || {
        (b.metric("opengslb_overwatch_peer_refused_total{reason=\"not_listed\"}") > before)
            .then_some(())
    });
    assert!(db.log_text().contains("peers: SIGHUP: 0 listed"));
}
