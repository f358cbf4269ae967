//! A v1.1-style Overwatch and agent pair (no `agent_tokens`, empty agent
//! region, metrics listeners on both) taken through `opengslb-cli config
//! migrate`: they work together, `/health` answers on every listener the
//! v1.1 docker healthchecks call, and both serve `process_*` and the v1.1
//! metric names.

use crate::util::ops::*;
use crate::util::*;
use std::time::Duration;

fn overwatch_v11(dns: u16, api: u16, gossip: u16, metrics: u16, data: &str) -> String {
    format!(
        r#"# v1.1 style: no agent_tokens (v1.1 never checked them).
mode: overwatch
dns:
  listen_address: "127.0.0.1:{dns}"
  zones: [gslb.test]
overwatch:
  identity:
    node_id: ow-v11
    region: east
  gossip:
    bind_address: "127.0.0.1:{gossip}"
    encryption_key: "{KEY}"
  data_dir: "{data}"
regions:
  - name: east
domains:
  - name: {SERVICE}
    routing_algorithm: RoundRobin
    regions: [east]
api:
  address: "127.0.0.1:{api}"
metrics:
  enabled: true
  address: "127.0.0.1:{metrics}"
logging:
  format: JSON
"#
    )
}

fn agent_v11(
    dir: &TempDir,
    token: &str,
    backend: std::net::SocketAddr,
    gossip: u16,
    api: u16,
    metrics: u16,
) -> String {
    format!(
        r#"mode: agent
agent:
  identity:
    service_token: "{token}"
    region: ""
    agent_id: v11-agent
    cert_path: "{d}/v11.crt"
    key_path: "{d}/v11.key"
  backends:
    - service: {SERVICE}
      address: "{ip}"
      port: {port}
      health_check: {{ type: HTTP, path: /health, interval: 200ms, timeout: 500ms, failure_threshold: 2, success_threshold: 1 }}
  gossip:
    encryption_key: "{KEY}"
    overwatch_nodes: ["127.0.0.1:{gossip}"]
  heartbeat: {{ interval: 500ms }}
  api: {{ address: "127.0.0.1:{api}" }}
metrics:
  enabled: true
  address: "127.0.0.1:{metrics}"
"#,
        d = dir.path().display(),
        ip = backend.ip(),
        port = backend.port(),
    )
}

fn health(url: &str) {
    let (code, body) = http_get(&format!("{url}/health")).unwrap_or_default();
    assert_eq!((code, body.as_str()), (200, "OK"), "{url}/health");
}

#[test]
fn v11_pair_works_after_config_migrate() {
    let dir = TempDir::new("ops-v11");
    let web = HttpBackend::start("127.0.0.97");
    let (dns, api, gossip, ow_metrics) =
        (stable_port(), stable_port(), stable_port(), stable_port());
    let data = dir.path().join("ow-data");
    let original = dir.write(
        "ow-v11.yaml",
        &overwatch_v11(dns, api, gossip, ow_metrics, data.to_str().unwrap()),
    );

    // The migration: a token for the one domain, printed for the operator.
    let out = std::process::Command::new(CLI)
        .args(["config", "migrate", original.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = m["tokens"][SERVICE]
        .as_str()
        .expect("token for the domain")
        .to_string();
    let migrated = dir.write("ow.yaml", m["text"].as_str().unwrap());

    let ow_daemon = Daemon::start_file(&dir, "ow", &migrated, "overwatch");
    let ow_api = format!("http://127.0.0.1:{api}");
    wait_for("overwatch ready", Duration::from_secs(15), || {
        http_get(&format!("{ow_api}/api/v1/ready")).filter(|(c, _)| *c == 200)
    });

    let (agent_api, agent_metrics) = (free_port("127.0.0.1"), free_port("127.0.0.1"));
    let agent = Daemon::start(
        &dir,
        "agent",
        &agent_v11(&dir, &token, web.addr, gossip, agent_api, agent_metrics),
        "agent",
    );

    // The agent registers, filed under the Overwatch's region, and its
    // backend is served.
    let a = wait_for("agent registered", Duration::from_secs(15), || {
        let (_, body) = http_get(&format!("{ow_api}/api/v1/overwatch/agents/v11-agent"))?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (v["status"] == "active").then_some(v)
    });
    assert_eq!(a["region"], "east", "{a}");
    wait_for("backend healthy", Duration::from_secs(15), || {
        let (_, body) = http_get(&format!(
            "{ow_api}/api/v1/overwatch/backends?status=healthy"
        ))?;
        body.contains(&web.addr.ip().to_string()).then_some(())
    });

    // The v1.1 reads.
    let get = |path: &str| -> serde_json::Value {
        let (code, body) = http_get(&format!("{ow_api}{path}")).unwrap_or_default();
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    };
    let regions = get("/api/v1/health/regions");
    assert_eq!(regions["regions"][0]["name"], "east", "{regions}");
    assert_eq!(regions["regions"][0]["healthy_count"], 1, "{regions}");
    let soon = get("/api/v1/overwatch/agents/expiring?within=24h");
    assert_eq!(soon["count"], 0, "{soon}");
    let all = get("/api/v1/overwatch/agents/expiring?within=36500d");
    assert_eq!(all["expiring"][0]["agent_id"], "v11-agent", "{all}");
    let (code, body) = http_get(&format!("{ow_api}/api/v1/config")).unwrap_or_default();
    assert_eq!(code, 200, "{body}");
    assert!(
        !body.contains(&token) && !body.contains(KEY),
        "secret in {body}"
    );
    let cfg: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(cfg["overwatch"]["agent_tokens"][SERVICE], "<redacted>");
    assert_eq!(cfg["domains"][0]["routing_algorithm"], "round-robin");
    assert_eq!(cfg["api"]["address"], format!("127.0.0.1:{api}"));

    // /health on every listener v1.1 healthchecks call.
    health(&ow_api);
    health(&format!("http://127.0.0.1:{ow_metrics}"));
    health(&format!("http://127.0.0.1:{agent_api}"));
    health(&format!("http://127.0.0.1:{agent_metrics}"));

    // process_* and the v1.1 names on both; the remote agent scrape works.
    let ow_text = http_get(&format!("http://127.0.0.1:{ow_metrics}/metrics"))
        .unwrap()
        .1;
    let agent_text = http_get(&format!("http://127.0.0.1:{agent_metrics}/metrics"))
        .unwrap()
        .1;
    for (who, text) in [("overwatch", &ow_text), ("agent", &agent_text)] {
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            // CPU seconds may still read 0 (10 ms ticks) on an idle agent.
            let min = if name == "process_cpu_seconds_total" {
                0.0
            } else {
                1.0
            };
            assert!(
                sample(text, name).is_some_and(|v| v >= min),
                "{who}: {name}\n{text}"
            );
        }
        let info = format!("opengslb_app_info{{version=\"{}\"}}", opengslb::VERSION);
        assert_eq!(sample(text, &info), Some(1.0), "{who}");
    }
    assert_eq!(
        sample(&ow_text, "opengslb_overwatch_backends_healthy"),
        Some(1.0),
        "{ow_text}"
    );
    assert_eq!(
        sample(&ow_text, "opengslb_configured_domains"),
        Some(1.0),
        "{ow_text}"
    );
    // Asserts itself; false (and SKIPPED) only when promtool is missing.
    let _ = promtool_check("ops_v11", &ow_text);
    let _ = promtool_check("ops_v11", &agent_text);
    drop(agent);
    drop(ow_daemon);
}
