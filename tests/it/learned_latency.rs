//! Learned latency end to end on loopback (root): a real agent reads the
//! kernel's round trip of a real client's established TCP connection to
//! its backend port, reports it over gossip, and the Overwatch lists the
//! client's prefix with the agent's region in
//! `GET /api/v1/overwatch/latency`; the agent's and the Overwatch's
//! metrics count it.
//!
//! The variant in network namespaces, with two client prefixes at
//! different delays and DNS assertions, is tests/it/learned_netns.rs.

use crate::util::ops::{KEY, Overwatch, OwOptions, cli, sample};
use crate::util::{Daemon, HttpBackend, TempDir, free_port, http_get, need_root, wait_for};
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

#[test]
fn a_real_connection_is_learned_and_listed_per_prefix() {
    if !need_root("learned_latency") {
        return;
    }
    let dir = TempDir::new("learned");
    let ow = Overwatch::start(&dir, "ow1", &OwOptions::default());
    let web = HttpBackend::start("127.0.0.1");
    let agent_port = free_port("127.0.0.1");
    let yaml = format!(
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
      address: "127.0.0.1"
      port: {port}
      health_check: {{ type: http, path: /health, interval: 200ms, timeout: 500ms }}
  gossip:
    encryption_key: "{KEY}"
    overwatch_nodes: ["{gossip}"]
  heartbeat: {{ interval: 500ms, missed_threshold: 3 }}
  api: {{ address: "127.0.0.1:{agent_port}" }}
  latency_learning:
    enabled: true
    poll_interval: 200ms
    min_connection_age: 200ms
    report_interval: 500ms
    min_samples: 2
"#,
        d = dir.path().display(),
        gossip = ow.gossip,
        port = web.addr.port(),
    );
    let _agent = Daemon::start(&dir, "web1", &yaml, "agent");
    // A client that keeps its connection open (HTTP keep-alive).
    let mut client = TcpStream::connect(web.addr).expect("connect to the backend");
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    let row = wait_for("the prefix in the table", Duration::from_secs(30), || {
        let page = ow.get_json("/api/v1/overwatch/latency?limit=10");
        page["prefixes"]
            .as_array()?
            .iter()
            .find(|p| p["prefix"] == "127.0.0.0/24")
            .cloned()
    });
    assert_eq!(row["regions"][0]["region"], "east", "{row}");
    assert!(row["regions"][0]["samples"].as_u64() >= Some(2), "{row}");
    let metrics = ow.metrics();
    assert!(sample(&metrics, "opengslb_overwatch_learned_prefixes") >= Some(1.0));
    let (_, agent_metrics) =
        http_get(&format!("http://127.0.0.1:{agent_port}/metrics")).expect("agent metrics");
    assert!(sample(&agent_metrics, "opengslb_agent_latency_subnets") >= Some(1.0));
    assert!(sample(&agent_metrics, "opengslb_agent_latency_reports_sent_total") >= Some(1.0));
    let listed = cli(&ow.api, &["latency"]).ok("latency");
    assert!(
        listed.contains("127.0.0.0/24") && listed.contains("east="),
        "{listed}"
    );
    // Paging: a bad `after` is a 400 with the reason.
    let (code, body) =
        http_get(&format!("{}/api/v1/overwatch/latency?after=x", ow.api)).expect("api");
    assert_eq!(code, 400, "{body}");
    drop(client);
}
