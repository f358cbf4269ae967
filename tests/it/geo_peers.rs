//! Geolocation mappings replicate across peered Overwatches (SPEC §11,
//! §12) against the real binary: a mapping PUT on one node is listed by
//! the other, explained by its `geo test` and routes its DNS (`dig
//! +subnet`, scope the mapping's prefix); a DELETE on the second node
//! takes it out of the first. Waits for states, never for a time.

use crate::geo::dig;
use crate::util::ops::{KEY, stable_port};
use crate::util::*;
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

struct Node {
    dns_port: u16,
    api: String,
    _daemon: Daemon,
}

impl Node {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let text = body.map(|b| b.to_string());
        let (code, out) = http(&format!("{}{path}", self.api), method, text.as_deref())
            .unwrap_or_else(|| panic!("{method} {path}: no answer"));
        (code, serde_json::from_str(&out).unwrap_or(Value::Null))
    }

    fn api_mappings(&self) -> Vec<Value> {
        let (code, list) = self.call("GET", "/api/v1/geo/mappings", None);
        assert_eq!(code, 200, "{list}");
        list["mappings"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m["source"] == "api")
            .collect()
    }

    /// (addresses, ECS text) for a client in `subnet`.
    fn answer(&self, subnet: &str) -> (Vec<String>, String) {
        dig(self.dns_port, "www.gslb.test", subnet)
    }
}

#[test]
fn a_mapping_set_on_one_node_lists_and_routes_on_the_other_and_delete_follows() {
    if !need_tools("geo_peers::a_mapping_set_on_one_node", &["dig"]) {
        return;
    }
    let dir = TempDir::new("geo-peers");
    let eu = HttpBackend::start("127.0.0.2");
    let ap = HttpBackend::start("127.0.0.4");
    let gossip: Vec<String> = (1..=2)
        .map(|i| format!("127.0.0.{i}:{}", stable_port()))
        .collect();
    let server = |b: &HttpBackend| {
        format!(
            "    servers: [{{address: \"{}\", port: {}}}]\n    health_check: {{type: http, path: /health, interval: 200ms, timeout: 500ms, failure_threshold: 1, success_threshold: 1}}\n",
            b.addr.ip(),
            b.addr.port()
        )
    };
    let nodes: Vec<Node> = (0..2)
        .map(|i| {
            let name = ["ow-a", "ow-b"][i];
            let dns_port = stable_port();
            let api_port = stable_port();
            let yaml = format!(
                "mode: overwatch\ndns:\n  listen_address: \"127.0.0.1:{dns_port}\"\n  zones: [gslb.test]\noverwatch:\n  identity: {{node_id: {name}}}\n  gossip: {{bind_address: \"{}\", encryption_key: \"{KEY}\"}}\n  peers: [\"{}\"]\n  peer_sync: {{interval: 1s}}\n  data_dir: \"{}\"\n  geolocation:\n    default_region: eu\n    custom_mappings:\n      - {{cidr: 10.20.0.0/16, region: ap}}\nregions:\n  - name: eu\n{}  - name: ap\n{}domains:\n  - {{name: www.gslb.test, routing_algorithm: geolocation, regions: [eu, ap]}}\napi:\n  address: \"127.0.0.1:{api_port}\"\n",
                gossip[i],
                gossip[1 - i],
                dir.path().join(format!("{name}-data")).display(),
                server(&eu),
                server(&ap),
            );
            let path = dir.write(&format!("{name}.yaml"), &yaml);
            Node {
                dns_port,
                api: format!("http://127.0.0.1:{api_port}"),
                _daemon: Daemon::start_file(&dir, name, &path, "overwatch"),
            }
        })
        .collect();
    let (a, b) = (&nodes[0], &nodes[1]);
    for n in &nodes {
        wait_for("both regions served", WAIT, || {
            (n.answer("10.20.1.0/24").0 == ["127.0.0.4"]
                && n.answer("10.9.1.0/24").0 == ["127.0.0.2"])
            .then_some(())
        });
        wait_for("the peer connected", WAIT, || {
            let (_, v) = n.call("GET", "/api/v1/cluster/status", None);
            (v["peers"][0]["state"] == "connected").then_some(())
        });
    }
    assert!(b.api_mappings().is_empty());

    // PUT on a: listed, explained and routed on b.
    let (code, body) = a.call(
        "PUT",
        "/api/v1/geo/mappings",
        Some(json!({"cidr": "10.9.0.0/16", "region": "ap", "comment": "lab"})),
    );
    assert_eq!(code, 200, "{body}");
    let listed = wait_for("the mapping on b", WAIT, || {
        b.api_mappings()
            .into_iter()
            .find(|m| m["cidr"] == "10.9.0.0/16")
    });
    assert_eq!(
        (&listed["region"], &listed["comment"]),
        (&json!("ap"), &json!("lab"))
    );
    let (code, t) = b.call("GET", "/api/v1/geo/test?ip=10.9.1.2", None);
    assert_eq!(code, 200, "{t}");
    assert_eq!(
        (
            &t["region"],
            &t["match_type"],
            &t["matched_cidr"],
            &t["scope"]
        ),
        (
            &json!("ap"),
            &json!("custom_mapping"),
            &json!("10.9.0.0/16"),
            &json!(16)
        )
    );
    assert_eq!(
        b.answer("10.9.1.0/24"),
        (vec!["127.0.0.4".to_string()], "10.9.1.0/24/16".to_string())
    );

    // DELETE on b: gone from a, which routes the default region again.
    let (code, body) = b.call("DELETE", "/api/v1/geo/mappings/10.9.0.0_16", None);
    assert_eq!(code, 200, "{body}");
    wait_for("the mapping gone from a", WAIT, || {
        a.api_mappings().is_empty().then_some(())
    });
    assert_eq!(a.answer("10.9.1.0/24").0, ["127.0.0.2"]);
    let (_, t) = a.call("GET", "/api/v1/geo/test?ip=10.9.1.2", None);
    assert_eq!(t["match_type"], "default", "{t}");
    assert!(b.api_mappings().is_empty());
}
