//! `opengslb-cli cluster status` and `servers --cluster` (SPEC §12): the
//! peers of the node `--api` points at, and the backends as every node of
//! the cluster sees them, one STATUS column per node, so "is it out
//! everywhere?" is one command. Nodes are found through
//! `GET /api/v1/cluster/status` (each peer's `api` is what that node
//! advertises); a node that does not answer shows `unreachable`.

use super::client::{CliError, Client};
use super::render::{cell, rows, table};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

pub fn status_table(v: &Value) -> String {
    let mut s = format!(
        "node: {}\ndigest: {}\n",
        cell(v.get("node_id")),
        cell(v.get("digest"))
    );
    s.push_str(&table(
        &[
            "NODE",
            "ADDRESS",
            "STATE",
            "LAST_CONTACT",
            "RTT_MS",
            "IN_SYNC",
        ],
        &rows(
            v.get("peers"),
            &[
                "node_id",
                "address",
                "state",
                "last_contact",
                "rtt_ms",
                "in_sync",
            ],
        ),
    ));
    // Replicated entries this node did not take (it keeps what it had).
    if v["rejected"].as_array().is_some_and(|r| !r.is_empty()) {
        s.push_str("\nnot applied on this node:\n");
        s.push_str(&table(
            &["KIND", "ID", "ORIGIN", "OPERATOR", "REASON"],
            &rows(
                v.get("rejected"),
                &["kind", "id", "origin", "operator", "reason"],
            ),
        ));
    }
    s
}

/// (node id, API base URL or `None` when the node did not advertise one).
fn nodes(first: &Client) -> Result<Vec<(String, Option<String>)>, CliError> {
    let v = first.call("GET", "/api/v1/cluster/status", None)?;
    let mut out = vec![(cell(v.get("node_id")), Some(first.base().to_string()))];
    for p in v
        .get("peers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = match p.get("node_id").and_then(Value::as_str) {
            Some(n) => n.to_string(),
            None => cell(p.get("address")),
        };
        let api = p
            .get("api")
            .and_then(Value::as_str)
            .map(|a| format!("http://{a}"));
        out.push((name, api));
    }
    Ok(out)
}

pub fn servers(
    inv: &super::args::Invocation,
    first: &Client,
    query: &str,
    timeout: Duration,
) -> Result<String, CliError> {
    let nodes = nodes(first)?;
    // (service, address, port, region) → status per node.
    let mut table_rows: BTreeMap<(String, String, String, String), Vec<String>> = BTreeMap::new();
    let n = nodes.len();
    let mut answers = Vec::new();
    for (i, (name, base)) in nodes.iter().enumerate() {
        let v = base
            .as_ref()
            .and_then(|b| Client::new(b, inv.flag("token").map(str::to_string), timeout).ok())
            .and_then(|c| {
                c.call("GET", &format!("/api/v1/overwatch/backends{query}"), None)
                    .ok()
            });
        answers.push(serde_json::json!({"node_id": name, "backends": v.clone()}));
        for b in v
            .as_ref()
            .and_then(|v| v.get("backends"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = (
                cell(b.get("service")),
                cell(b.get("address")),
                cell(b.get("port")),
                cell(b.get("region")),
            );
            let row = table_rows
                .entry(key)
                .or_insert_with(|| vec!["-".to_string(); n]);
            row[i] = cell(b.get("effective_status"));
        }
        if v.is_none() {
            for row in table_rows.values_mut() {
                row[i] = "unreachable".into();
            }
        }
    }
    if inv.switch("json") {
        let mut s = serde_json::to_string_pretty(&Value::Array(answers)).unwrap_or_default();
        s.push('\n');
        return Ok(s);
    }
    let headers: Vec<String> = ["SERVICE", "ADDRESS", "PORT", "REGION"]
        .iter()
        .map(|s| s.to_string())
        .chain(nodes.iter().map(|(name, _)| format!("STATUS@{name}")))
        .collect();
    let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let body: Vec<Vec<String>> = table_rows
        .into_iter()
        .map(|((s, a, p, r), st)| [s, a, p, r].into_iter().chain(st).collect())
        .collect();
    Ok(table(&header_refs, &body))
}
