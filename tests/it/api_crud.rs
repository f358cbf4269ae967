//! Servers, regions and domains managed through the API as in v1.1: a
//! create is in DNS before the answer, a bad body is a 400 naming the
//! field and changes nothing, the file's entries win and the API says
//! so, SIGHUP and restarts keep the API's entries, every write is audited.

use crate::util::dnsclient::{self, A, Query};
use crate::util::ops::*;
use crate::util::*;
use serde_json::{Value, json};
use std::time::Duration;

fn call(ow: &Overwatch, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let text = body.map(|b| b.to_string());
    let (code, out) = http(&format!("{}{path}", ow.api), method, text.as_deref())
        .unwrap_or_else(|| panic!("{method} {path}: no answer"));
    (code, serde_json::from_str(&out).unwrap_or(Value::Null))
}

fn answers(ow: &Overwatch, name: &str) -> Vec<String> {
    dnsclient::udp(ow.dns, &Query::new(name, A))
        .map(|r| r.addr_strings())
        .unwrap_or_default()
}

fn api_servers(ow: &Overwatch) -> Vec<Value> {
    let list = ow.get_json("/api/v1/servers");
    list["servers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["source"] == "api")
        .cloned()
        .collect()
}

#[test]
fn servers_regions_and_domains_through_the_api() {
    let dir = TempDir::new("api-crud");
    let backend = HttpBackend::start("127.0.0.1");
    let mut ow = Overwatch::start(&dir, "ow", &OwOptions::default());
    let name = "api.gslb.test";
    let ip = backend.addr.ip().to_string();

    let (code, r) = call(
        &ow,
        "POST",
        "/api/v1/regions",
        Some(json!({"name": "west", "code": "w"})),
    );
    assert_eq!(code, 201, "{r}");
    assert_eq!(r["region"]["source"], "api");
    let server = json!({"name": "web-1", "address": ip, "port": backend.addr.port(),
                        "region": "west", "protocol": "http", "enabled": true});
    let (code, r) = call(&ow, "POST", "/api/v1/servers", Some(server.clone()));
    assert_eq!(code, 201, "{r}");
    let id = r["server"]["id"].as_str().unwrap().to_string();
    assert_eq!(id, backend.addr.to_string());
    let (code, r) = call(
        &ow,
        "POST",
        "/api/v1/domains",
        Some(json!({"name": name, "routing_algorithm": "round-robin", "regions": ["west"]})),
    );
    assert_eq!(code, 201, "{r}");
    wait_for(&format!("{name} in DNS"), Duration::from_secs(10), || {
        (answers(&ow, name) == [ip.clone()]).then_some(())
    });

    // Bad bodies: 400 naming the field, nothing changed.
    for (body, field) in [
        (
            json!({"address": "web", "port": 80, "region": "west"}),
            "address",
        ),
        (
            json!({"address": "10.9.9.9", "port": 0, "region": "west"}),
            "port",
        ),
        (
            json!({"address": "10.9.9.9", "port": 80, "region": "nowhere"}),
            "region",
        ),
        (
            json!({"address": "10.9.9.9", "port": 80, "region": "west", "x": 1}),
            "x",
        ),
    ] {
        let (code, r) = call(&ow, "POST", "/api/v1/servers", Some(body));
        assert_eq!(code, 400, "{r}");
        assert!(r["error"].as_str().unwrap().starts_with(field), "{r}");
    }
    assert_eq!(api_servers(&ow).len(), 1);
    let (code, _) = call(&ow, "POST", "/api/v1/servers", Some(server.clone()));
    assert_eq!(code, 409, "a second create of the same id");

    // The file's entries win, and the API says so.
    let (code, r) = call(
        &ow,
        "POST",
        "/api/v1/domains",
        Some(json!({"name": SERVICE, "ttl": 1})),
    );
    assert_eq!(code, 201, "{r}");
    assert_eq!(r["domain"]["shadowed_by_config"], true);
    assert!(r["domain"]["warning"].is_string());
    let d = ow.get_json(&format!("/api/v1/domains/{SERVICE}"));
    assert_eq!(
        (d["source"].as_str(), d["shadowed_by_config"].as_bool()),
        (Some("config"), Some(true))
    );
    assert_eq!(
        ow.get_json(&format!("/api/v1/domains/{name}"))["source"],
        "api"
    );
    let (code, r) = call(&ow, "DELETE", "/api/v1/regions/east", None);
    assert_eq!(code, 409, "{r}");
    let (code, _) = call(&ow, "DELETE", &format!("/api/v1/domains/{SERVICE}"), None);
    assert_eq!(code, 204);

    // A reload and a restart keep the API's entries.
    ow.daemon.signal(libc::SIGHUP);
    wait_for("reload", Duration::from_secs(10), || {
        ow.daemon
            .log_text()
            .contains("configuration reloaded")
            .then_some(())
    });
    assert_eq!(answers(&ow, name), std::slice::from_ref(&ip));
    ow.daemon.signal(libc::SIGTERM);
    ow.daemon.wait_exit(Duration::from_secs(10));
    ow.restart(&dir);
    assert_eq!(api_servers(&ow).len(), 1);
    wait_for(
        &format!("{name} in DNS after restart"),
        Duration::from_secs(10),
        || (answers(&ow, name) == [ip.clone()]).then_some(()),
    );

    // Update, then delete: DNS follows; every write is in the audit log.
    let (code, r) = call(
        &ow,
        "PUT",
        &format!("/api/v1/servers/{id}"),
        Some(json!({"weight": 7})),
    );
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["server"]["weight"], 7);
    let (code, _) = call(&ow, "DELETE", &format!("/api/v1/servers/{id}"), None);
    assert_eq!(code, 204);
    // Gone from the registry at once (DNS may keep serving it as the
    // last healthy set when dns.return_last_healthy is on, the default).
    assert!(api_servers(&ow).is_empty());
    assert!(ow.backend(&ip).is_null(), "{}", ow.backend(&ip));
    let audit = ow.get_json("/api/v1/audit-logs");
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for want in [
        "create_region",
        "create_server",
        "create_domain",
        "update_server",
        "delete_server",
    ] {
        assert!(actions.contains(&want), "{want} not audited: {actions:?}");
    }
}

#[test]
fn cli_servers_create_update_delete() {
    let dir = TempDir::new("api-crud-cli");
    let backend = HttpBackend::start("127.0.0.1");
    let ow = Overwatch::start(&dir, "ow", &OwOptions::default());
    let id = backend.addr.to_string();
    let out = cli(
        &ow.api,
        &[
            "servers", "create", &id, "--region", "east", "--weight", "3",
        ],
    );
    assert_eq!(out.ok("servers create"), format!("server {id} created\n"));
    wait_for("created server in DNS", Duration::from_secs(10), || {
        ow.answers()
            .contains(&backend.addr.ip().to_string())
            .then_some(())
    });
    let v = cli_json(&ow.api, &["servers", "update", &id, "--weight", "9"]);
    assert_eq!(v["server"]["weight"], 9);
    let bad = cli(&ow.api, &["servers", "update", &id, "--region", "nowhere"]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("region"), "{}", bad.stderr);
    cli(&ow.api, &["servers", "delete", &id]).ok("servers delete");
    assert!(api_servers(&ow).is_empty());
    let gone = cli(&ow.api, &["servers", "delete", &id]);
    assert_ne!(gone.code, 0, "deleting twice is a 404");
}
