//! etc/grafana/opengslb.json: every PromQL expression in it parses
//! (`promtool check rules` on a rules file made of them, Grafana variables
//! replaced by plain values), and every metric, label and label value it
//! names is one a live Overwatch and a live agent really export: no panel
//! on a metric that does not exist.

use crate::util::ops::*;
use crate::util::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

const DASHBOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/etc/grafana/opengslb.json");

fn dashboard() -> Value {
    let text = std::fs::read_to_string(DASHBOARD).expect("read the dashboard");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every `expr` of every panel (rows included) and every variable query.
fn expressions(d: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr", Value::String(e)) => out.push(e.clone()),
                        ("definition", Value::String(e)) => out.push(e.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&d["panels"], &mut out);
    walk(&d["templating"], &mut out);
    out
}

/// Grafana's variables replaced by values PromQL accepts; a variable query
/// `label_values(m, l)` becomes the selector `m`.
fn plain(expr: &str) -> String {
    let e = expr
        .replace("$__rate_interval", "5m")
        .replace("$__range", "1h")
        .replace("$instance", ".*")
        .replace("$agent", ".*");
    match e.strip_prefix("label_values(") {
        Some(rest) => rest.split(',').next().unwrap_or("").trim().to_string(),
        None => e,
    }
}

/// `opengslb_*` metric names in an expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(pos) = expr[i..].find("opengslb_") {
        let start = i + pos;
        let before = start.checked_sub(1).map(|j| bytes[j]);
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'"') {
            out.insert(expr[start..end].to_string());
        }
        i = end;
    }
    out
}

/// (label, operator, value) of one matcher.
type Matcher = (String, String, String);

/// `metric{a="x", b=~"y"}` → (metric, [(label, op, value)]).
fn selectors(expr: &str) -> Vec<(String, Vec<Matcher>)> {
    let mut out = Vec::new();
    for name in metric_names(expr) {
        let mut rest = expr;
        while let Some(pos) = rest.find(&name) {
            let after = &rest[pos + name.len()..];
            rest = after;
            let Some(body) = after.strip_prefix('{') else {
                continue;
            };
            let Some(close) = body.find('}') else {
                continue;
            };
            let mut matchers = Vec::new();
            for m in body[..close].split(',').filter(|m| !m.trim().is_empty()) {
                let op_at = m.find(['=', '!']).expect("matcher has an operator");
                let label = m[..op_at].trim().to_string();
                let op_len = if m[op_at + 1..].starts_with(['=', '~']) {
                    2
                } else {
                    1
                };
                let op = m[op_at..op_at + op_len].to_string();
                let value = m[op_at + op_len..].trim().trim_matches('"').to_string();
                matchers.push((label, op, value));
            }
            out.push((name.clone(), matchers));
        }
    }
    out
}

/// `by (a, b)` label lists in an expression.
fn by_labels(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(pos) = rest.find("by (") {
        let after = &rest[pos + 4..];
        let close = after.find(')').unwrap_or(after.len());
        for l in after[..close].split(',') {
            out.insert(l.trim().to_string());
        }
        rest = &after[close..];
    }
    out
}

/// Metric family → label name → values seen, from Prometheus text.
type Exported = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn parse_exposition(text: &str, into: &mut Exported) {
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap_or("").to_string();
            into.entry(name).or_default();
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let entry = into.entry(line[..name_end].to_string()).or_default();
        if let Some(labels) = line[name_end..].strip_prefix('{') {
            let labels = &labels[..labels.rfind('}').unwrap_or(labels.len())];
            for pair in labels.split("\",") {
                if let Some((k, v)) = pair.split_once('=') {
                    let v = v.trim_matches('"').to_string();
                    entry.entry(k.trim().to_string()).or_default().insert(v);
                }
            }
        }
    }
}

/// What a live Overwatch and agent export after one DNS answer.
fn exported() -> Exported {
    let dir = TempDir::new("dashboard");
    let web = HttpBackend::start("127.0.0.93");
    let ow = Overwatch::start(&dir, "ow", &OwOptions::default());
    let a = agent(&dir, "d1", web.addr, &[&ow.gossip], KEY, "app-token");
    wait_for(
        "an answer in DNS",
        std::time::Duration::from_secs(15),
        || Some(()).filter(|_| !ow.answers().is_empty()),
    );
    let mut out = Exported::new();
    parse_exposition(&ow.metrics(), &mut out);
    let (code, body) = http_get(&format!("{}/metrics", a.api)).unwrap_or_default();
    assert_eq!(code, 200, "agent /metrics: {body}");
    parse_exposition(&body, &mut out);
    out
}

#[test]
fn every_expression_parses_with_promtool() {
    let exprs = expressions(&dashboard());
    assert!(exprs.len() >= 20, "only {} expressions", exprs.len());
    let Some(promtool) = which("promtool") else {
        eprintln!(
            "SKIPPED: every_expression_parses_with_promtool: promtool is not installed (package prometheus)"
        );
        return;
    };
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let e = serde_json::to_string(&plain(e)).expect("quote");
        rules.push_str(&format!(
            "      - record: dashboard:expr_{i}\n        expr: {e}\n"
        ));
    }
    let dir = TempDir::new("dashboard-rules");
    let file = dir.write("dashboard-rules.yml", &rules);
    let out = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool rejects a dashboard expression:\n{}{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn which(tool: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(tool))
            .find(|f| f.is_file())
    })
}

#[test]
fn every_metric_label_and_value_is_exported() {
    let exprs = expressions(&dashboard());
    let live = exported();
    // Labels Prometheus adds at scrape time.
    let target_labels = ["instance", "job"];
    let mut used = BTreeSet::new();
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "no opengslb metric in {expr}");
        for n in &names {
            assert!(live.contains_key(n), "{n} is not exported (in {expr})");
            used.insert(n.clone());
        }
        for (metric, matchers) in selectors(&plain(expr)) {
            let labels = &live[&metric];
            for (label, op, value) in matchers {
                if target_labels.contains(&label.as_str()) {
                    continue;
                }
                let values = labels.get(&label);
                assert!(
                    values.is_some() || source_contains(&format!("(\"{label}\"")),
                    "{metric} has no label {label} (in {expr})"
                );
                // A value not seen in this scrape (SERVFAIL before any
                // failure) must at least be one the source writes.
                if op == "=" {
                    assert!(
                        values.is_some_and(|v| v.contains(&value))
                            || source_contains(&format!("\"{value}\"")),
                        "{metric}{{{label}=\"{value}\"}} is never exported (seen: {values:?})"
                    );
                }
            }
        }
        // `by (...)` labels, where the expression reads one metric.
        if names.len() == 1 {
            let metric = names.iter().next().expect("one");
            for label in by_labels(expr) {
                if target_labels.contains(&label.as_str()) {
                    continue;
                }
                let known =
                    live[metric].contains_key(&label) || source_contains(&format!("(\"{label}\""));
                assert!(known, "{metric} has no label {label} (in {expr})");
            }
        }
    }
    // The issue's list of what the dashboard shows.
    for must in [
        "opengslb_dns_queries_total",
        "opengslb_dns_answers_total",
        "opengslb_overwatch_backends",
        "opengslb_overwatch_agents_registered",
        "opengslb_overwatch_stale_agents",
        "opengslb_agent_draining",
        "opengslb_overwatch_agent_auth_failures_total",
        "opengslb_gossip_decrypt_failures_total",
        "opengslb_config_reloads_total",
        "opengslb_build_info",
    ] {
        assert!(used.contains(must), "the dashboard does not show {must}");
    }
}

/// Whether any file under src/ contains `needle`: the fallback for a label
/// or value with no sample yet (a counter by reason before the first
/// failure), checked against the code that writes it.
fn source_contains(needle: &str) -> bool {
    let mut stack = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).expect("read src").flatten() {
                stack.push(e.path());
            }
        } else if std::fs::read_to_string(&p).is_ok_and(|t| t.contains(needle)) {
            return true;
        }
    }
    false
}

#[test]
fn parsers_of_this_test() {
    let e = r#"sum by (rcode) (rate(opengslb_dns_queries_total{instance=~"$instance",rcode="SERVFAIL"}[5m])) / opengslb_x"#;
    assert_eq!(
        metric_names(e).into_iter().collect::<Vec<_>>(),
        vec!["opengslb_dns_queries_total", "opengslb_x"]
    );
    let s = selectors(&plain(e));
    assert_eq!(s[0].1[1], ("rcode".into(), "=".into(), "SERVFAIL".into()));
    assert_eq!(by_labels(e).into_iter().collect::<Vec<_>>(), vec!["rcode"]);
    let mut ex = Exported::new();
    parse_exposition("# TYPE m counter\nm{a=\"x,y\",b=\"z\"} 1\n", &mut ex);
    assert_eq!(ex["m"]["a"].iter().next().map(String::as_str), Some("x,y"));
    assert!(ex["m"].contains_key("b"));
}
