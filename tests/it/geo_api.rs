//! Geolocation mappings through the API (SPEC §11) against the real
//! binary: a mapping set with PUT answers `dig +subnet` from its region at
//! once, `geo/test` explains it, a config mapping on the same cidr wins
//! and the listing says so, bad bodies are 400s naming the field and
//! change nothing, a restart keeps the mapping, DELETE reverts it.

use crate::geo::dig;
use crate::util::ops::cli;
use crate::util::*;
use serde_json::{Value, json};
use std::time::Duration;

fn call(api: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let text = body.map(|b| b.to_string());
    let (code, out) = http(&format!("{api}{path}"), method, text.as_deref())
        .unwrap_or_else(|| panic!("{method} {path}: no answer"));
    (code, serde_json::from_str(&out).unwrap_or(Value::Null))
}

fn api_mappings(api: &str) -> Vec<Value> {
    let (code, list) = call(api, "GET", "/api/v1/geo/mappings", None);
    assert_eq!(code, 200, "{list}");
    list["mappings"].as_array().cloned().unwrap_or_default()
}

#[test]
fn mappings_set_through_the_api_route_dns_survive_restarts_and_delete() {
    if !need_tools("geo_api::mappings_set_through_the_api_route_dns", &["dig"]) {
        return;
    }
    let dir = TempDir::new("geo-api-it");
    let eu = HttpBackend::start("127.0.0.2");
    let ap = HttpBackend::start("127.0.0.4");
    let dns_port = free_port("127.0.0.1");
    let api_port = free_port("127.0.0.1");
    let api = format!("http://127.0.0.1:{api_port}");
    let server = |b: &HttpBackend| {
        format!(
            "    servers: [{{address: \"{}\", port: {}}}]\n    health_check: {{type: http, path: /health, interval: 200ms, timeout: 500ms, failure_threshold: 1, success_threshold: 1}}\n",
            b.addr.ip(),
            b.addr.port()
        )
    };
    let yaml = format!(
        "mode: overwatch\ndns:\n  listen_address: \"127.0.0.1:{dns_port}\"\n  zones: [gslb.test]\noverwatch:\n  data_dir: \"{}\"\n  validation: {{enabled: true, check_interval: 200ms, check_timeout: 500ms}}\n  geolocation:\n    default_region: eu\n    custom_mappings:\n      - {{cidr: 10.20.0.0/16, region: ap, comment: office}}\nregions:\n  - name: eu\n{}  - name: ap\n{}domains:\n  - {{name: www.gslb.test, routing_algorithm: geolocation, regions: [eu, ap]}}\napi:\n  address: \"127.0.0.1:{api_port}\"\n",
        dir.path().join("data").display(),
        server(&eu),
        server(&ap),
    );
    let path = dir.write("ow.yaml", &yaml);
    let daemon = Daemon::start_file(&dir, "ow", &path, "overwatch");
    let answer = |subnet: &str| dig(dns_port, "www.gslb.test", subnet).0;
    let want = |subnet: &str, addr: &str| {
        wait_for(
            &format!("{subnet} → {addr}"),
            Duration::from_secs(20),
            || (answer(subnet) == [addr]).then_some(()),
        )
    };
    // Both regions healthy: the config mapping sends 10.20/16 to ap,
    // anything else goes to the default region.
    want("10.20.1.0/24", "127.0.0.4");
    want("10.9.1.0/24", "127.0.0.2");

    // Set: in DNS before the answer.
    let (code, body) = call(
        &api,
        "PUT",
        "/api/v1/geo/mappings",
        Some(json!({"cidr": "10.9.7.7/16", "region": "ap", "comment": "lab"})),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["cidr"], "10.9.0.0/16");
    assert_eq!(answer("10.9.1.0/24"), ["127.0.0.4"]);
    let (code, t) = call(&api, "GET", "/api/v1/geo/test?ip=10.9.1.2", None);
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
    let (code, t) = call(&api, "GET", "/api/v1/geo/test?ip=100.64.0.1", None);
    assert_eq!(
        (code, &t["match_type"], &t["region"]),
        (200, &json!("default"), &json!("eu"))
    );

    // A config mapping wins on the same cidr, and the listing says so.
    let (code, _) = call(
        &api,
        "PUT",
        "/api/v1/geo/mappings",
        Some(json!({"cidr": "10.20.0.0/16", "region": "eu"})),
    );
    assert_eq!(code, 200);
    assert_eq!(answer("10.20.1.0/24"), ["127.0.0.4"]);
    let list = api_mappings(&api);
    let find = |cidr: &str, source: &str| {
        list.iter()
            .find(|m| m["cidr"] == cidr && m["source"] == source)
            .unwrap_or_else(|| panic!("{cidr} from {source} in {list:?}"))
            .clone()
    };
    assert_eq!(find("10.20.0.0/16", "config")["shadowed_by_config"], false);
    assert_eq!(find("10.20.0.0/16", "api")["shadowed_by_config"], true);
    assert_eq!(find("10.9.0.0/16", "api")["comment"], "lab");
    assert_eq!(list.len(), 3);

    // Bad input: 400 naming the field, nothing changed.
    for (bad, field) in [
        (json!({"cidr": "10.0.0.0/33", "region": "ap"}), "cidr"),
        (json!({"cidr": "10.1.0.0/16", "region": "mars"}), "region"),
        (json!({"cidr": "10.1.0.0/16"}), "region"),
        (
            json!({"cidr": "10.1.0.0/16", "region": "ap", "why": 1}),
            "why",
        ),
    ] {
        let (code, e) = call(&api, "PUT", "/api/v1/geo/mappings", Some(bad.clone()));
        assert_eq!(code, 400, "{bad} → {e}");
        assert!(e["error"].as_str().unwrap_or("").contains(field), "{e}");
    }
    assert_eq!(api_mappings(&api), list);
    let (code, _) = call(&api, "GET", "/api/v1/geo/test?ip=nope", None);
    assert_eq!(code, 400);

    // Audited.
    let (_, audit) = call(&api, "GET", "/api/v1/audit-logs", None);
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"set_geo_mapping"), "{actions:?}");

    // A restart keeps the mapping.
    drop(daemon);
    let _daemon = Daemon::start_file(&dir, "ow", &path, "overwatch");
    want("10.9.1.0/24", "127.0.0.4");
    // Both regions healthy again before the delete is checked.
    want("100.64.0.0/24", "127.0.0.2");
    assert_eq!(api_mappings(&api), list);

    // Delete (slash percent-encoded or written `_`): reverts at once.
    let (code, body) = call(&api, "DELETE", "/api/v1/geo/mappings/10.9.0.0%2F16", None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(answer("10.9.1.0/24"), ["127.0.0.2"]);
    let (code, _) = call(&api, "DELETE", "/api/v1/geo/mappings/10.9.0.0_16", None);
    assert_eq!(code, 404);
    let (code, _) = call(&api, "DELETE", "/api/v1/geo/mappings/10.20.0.0_16", None);
    assert_eq!(code, 200);
    assert_eq!(api_mappings(&api).len(), 1);

    // The CLI: set, list, test, delete.
    let out = cli(
        &api,
        &[
            "geo",
            "mappings",
            "set",
            "10.9.0.0/16",
            "ap",
            "--comment",
            "cli",
        ],
    )
    .ok("geo mappings set");
    assert!(out.contains("10.9.0.0/16 -> ap"), "{out}");
    assert_eq!(answer("10.9.1.0/24"), ["127.0.0.4"]);
    let out = cli(&api, &["geo", "mappings"]).ok("geo mappings");
    assert!(
        out.contains("SOURCE") && out.contains("10.9.0.0/16") && out.contains("api"),
        "{out}"
    );
    let out = cli(&api, &["geo", "test", "10.9.1.2"]).ok("geo test");
    assert!(
        out.contains("custom_mapping") && out.contains("10.9.0.0/16"),
        "{out}"
    );
    let bad = cli(&api, &["geo", "mappings", "set", "10.9.0.0/16", "mars"]);
    assert_ne!(bad.code, 0);
    cli(&api, &["geo", "mappings", "delete", "10.9.0.0/16"]).ok("geo mappings delete");
    assert_eq!(answer("10.9.1.0/24"), ["127.0.0.2"]);
}
