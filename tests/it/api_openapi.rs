//! docs/openapi.yaml against the servers it describes: the Overwatch
//! router's table (`api::routes::ROUTES`) and the agent API answer exactly
//! the paths and methods the document lists, every operation documents the
//! errors the server can give it, and the Overwatch serves the document as
//! JSON at /api/v1/openapi.json. Response bodies are checked against the
//! schemas by schemathesis in scripts/api-contract.sh.

use crate::util::api::{get, http, start};
use crossbeam_channel::unbounded;
use opengslb::agent::api::{self as agent_api, AgentStatusView, DrainCommand};
use opengslb::api::routes::ROUTES;
use opengslb::snapshot::SnapshotCell;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "options", "head", "trace",
];

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml");
    let text = std::fs::read_to_string(path).expect("read docs/openapi.yaml");
    opengslb::api::openapi::parse(&text).expect("docs/openapi.yaml is valid YAML with string keys")
}

/// (METHOD, path) of every operation tagged `tag`.
fn operations(spec: &Value, tag: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let paths = spec["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for m in METHODS {
            let Some(op) = item.get(*m) else { continue };
            let tags = op["tags"].as_array().expect("every operation is tagged");
            if tags.iter().any(|t| t == tag) {
                out.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn every_overwatch_route_is_documented_and_nothing_else() {
    let documented = operations(&spec(), "overwatch");
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .flat_map(|r| r.methods().map(|m| (m.to_string(), r.path.to_string())))
        .collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from docs/openapi.yaml: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "docs/openapi.yaml lists routes the Overwatch does not serve: {unrouted:?}"
    );
}

#[test]
fn every_operation_documents_its_errors_and_tags() {
    let spec = spec();
    let paths = spec["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for m in METHODS {
            let Some(op) = item.get(*m) else { continue };
            let what = format!("{} {path}", m.to_uppercase());
            assert!(op["operationId"].is_string(), "{what}: operationId");
            let responses = op["responses"].as_object().expect("responses");
            // v1.1's managed-entity writes answer 201 (created) and 204
            // (deleted); everything else 200.
            assert!(
                ["200", "201", "204"]
                    .iter()
                    .any(|c| responses.contains_key(*c)),
                "{what}: 2xx"
            );
            let tags = op["tags"].as_array().expect("tags");
            assert!(
                tags.iter().all(|t| t == "overwatch" || t == "agent"),
                "{what}: tags are overwatch and/or agent"
            );
            if tags.iter().any(|t| t == "overwatch") {
                // The network ACL answers 403 on every Overwatch route.
                assert!(responses.contains_key("403"), "{what}: 403");
            }
            if *m != "get" && tags.iter().any(|t| t == "overwatch") {
                assert!(responses.contains_key("401"), "{what}: 401 (api.tokens)");
                assert!(responses.contains_key("503"), "{what}: 503 (registry busy)");
            }
        }
    }
}

#[test]
fn overwatch_serves_the_document_as_json() {
    let f = start(|_| {});
    // Large enough that tiny_http sends it chunked: read it with a real client.
    let mut r = ureq::get(format!("{}/api/v1/openapi.json", f.base))
        .call()
        .expect("GET openapi.json");
    assert_eq!(r.status(), 200);
    let ct = r
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok());
    assert_eq!(ct, Some("application/json"));
    let body = r.body_mut().read_to_string().expect("body");
    let served: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(served, spec());
    assert_eq!(get(&f, "/api/v1/version").status, 200);
    let r = http(f.addr, "POST", "/api/v1/openapi.json", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["code"], 405);
}

#[test]
fn agent_api_answers_exactly_the_documented_routes() {
    let spec = spec();
    let documented = operations(&spec, "agent");
    let (drains, rx) = unbounded::<DrainCommand>();
    std::thread::spawn(move || {
        for (_, done) in rx {
            let _ = done.send(());
        }
    });
    let view = Arc::new(SnapshotCell::new(AgentStatusView::default()));
    let mut api = agent_api::start(
        "127.0.0.1:0".parse().expect("addr"),
        view,
        drains,
        Arc::new(|| "opengslb_agent_draining 0\n".to_string()),
    )
    .expect("start agent API");
    let paths: BTreeSet<String> = documented.iter().map(|(_, p)| p.clone()).collect();
    let mut served = BTreeSet::new();
    for path in &paths {
        for m in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            let r = http(api.local_addr(), m, path, &[], b"");
            if r.status != 404 && r.status != 405 {
                served.insert((m.to_string(), path.clone()));
            }
        }
    }
    api.stop();
    assert_eq!(served, documented);
    assert!(paths.contains("/metrics") && paths.contains("/api/v1/agent/drain"));
}
