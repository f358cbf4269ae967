//! The Prometheus rules in etc/prometheus/opengslb-alerts.yml: promtool
//! accepts them, each alert fires (and stays quiet) as documented in
//! promtool unit tests, uses only SPEC §9 metric names, and carries a
//! severity, a summary, a description and a runbook link that lands on a
//! heading of docs/operations.md. promtool checks are skipped with a
//! message when promtool is missing (CI installs `prometheus`).

use crate::util::appliance::{root, text};
use crate::util::{TempDir, need_tools};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const RULES: &str = "etc/prometheus/opengslb-alerts.yml";

#[test]
fn alert_rules_pass_promtool() {
    if !need_tools("rules::alert_rules_pass_promtool", &["promtool"]) {
        return;
    }
    let out = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(root().join(RULES))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules failed:\n{}",
        text(&out)
    );
}

fn rules_yaml() -> serde_norway::Value {
    let s = fs::read_to_string(root().join(RULES)).expect("read rules");
    serde_norway::from_str(&s).expect("rules are YAML")
}

fn alerts(v: &serde_norway::Value) -> Vec<serde_norway::Value> {
    let mut out = Vec::new();
    for g in v["groups"].as_sequence().expect("groups") {
        for r in g["rules"].as_sequence().expect("rules") {
            out.push(r.clone());
        }
    }
    out
}

/// GitHub's heading anchors: lower case, spaces to dashes, other
/// punctuation dropped.
fn anchors(markdown: &str) -> BTreeSet<String> {
    markdown
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

/// SPEC §9, exactly: an alert on any other name would never fire.
const SPEC_METRICS: &[&str] = &[
    "opengslb_overwatch_agents_registered",
    "opengslb_overwatch_stale_agents",
    "opengslb_overwatch_agent_cert_not_after_seconds",
    "opengslb_overwatch_backends",
    "opengslb_overwatch_heartbeats_received_total",
    "opengslb_overwatch_agent_auth_failures_total",
    "opengslb_gossip_decrypt_failures_total",
    "opengslb_overwatch_validation_checks_total",
    "opengslb_overwatch_overrides_active",
    "opengslb_dns_queries_total",
    "opengslb_dns_answers_total",
    "opengslb_config_reloads_total",
    "opengslb_build_info",
    "opengslb_agent_heartbeats_sent_total",
    "opengslb_agent_heartbeat_failures_total",
    "opengslb_agent_overwatch_connected",
    "opengslb_agent_backend_healthy",
    "opengslb_agent_draining",
    "opengslb_agent_cert_not_after_seconds",
    // SPEC §12 (peers), and beyond it the out-of-sync gauge of the same thread.
    "opengslb_overwatch_peers",
    "opengslb_overwatch_peers_out_of_sync",
    // Beyond §9: the per-name outcome when nothing is healthy (src/dns/stats.rs).
    "opengslb_dns_no_healthy_total",
];

#[test]
fn every_alert_has_severity_text_runbook_and_spec_metrics() {
    let ops = fs::read_to_string(root().join("docs/operations.md")).expect("docs/operations.md");
    let heads = anchors(&ops);
    let all = alerts(&rules_yaml());
    let names: Vec<&str> = all.iter().filter_map(|r| r["alert"].as_str()).collect();
    for required in [
        "OpenGSLBAgentStale",
        "OpenGSLBManyAgentsStale",
        "OpenGSLBAgentCertExpiring",
        "OpenGSLBAllBackendsDown",
        "OpenGSLBValidationFailures",
        "OpenGSLBConfigReloadFailed",
        "OpenGSLBGossipDecryptFailures",
    ] {
        assert!(
            names.contains(&required),
            "alert {required} missing from {RULES}"
        );
    }
    for r in &all {
        let name = r["alert"].as_str().expect("every rule is an alert");
        let sev = r["labels"]["severity"].as_str().unwrap_or("");
        assert!(
            ["critical", "warning", "info"].contains(&sev),
            "{name}: severity {sev:?}"
        );
        for key in ["summary", "description"] {
            assert!(
                r["annotations"][key]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "{name}: no {key}"
            );
        }
        let url = r["annotations"]["runbook_url"].as_str().unwrap_or("");
        let anchor = url.strip_prefix("docs/operations.md#").unwrap_or_else(|| {
            panic!("{name}: runbook_url {url:?} is not docs/operations.md#anchor")
        });
        assert!(
            heads.contains(anchor),
            "{name}: no heading for #{anchor} in docs/operations.md"
        );
        assert!(
            ops.contains(name),
            "{name}: docs/operations.md does not mention the alert"
        );
        let expr = r["expr"].as_str().expect("expr");
        let mut rest = expr;
        while let Some(i) = rest.find("opengslb_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let metric = &tail[..end];
            assert!(
                SPEC_METRICS.contains(&metric),
                "{name}: {metric} is not a SPEC §9 metric"
            );
            rest = &tail[end..];
        }
    }
}

/// The rules with annotations removed: promtool's unit tests compare
/// annotations too, and this test is about expressions, `for` and labels.
fn rules_without_annotations(dir: &Path) -> PathBuf {
    let mut v = rules_yaml();
    for g in v["groups"].as_sequence_mut().expect("groups") {
        for r in g["rules"].as_sequence_mut().expect("rules") {
            if let Some(m) = r.as_mapping_mut() {
                m.remove("annotations");
            }
        }
    }
    let p = dir.join("rules.yml");
    fs::write(&p, serde_norway::to_string(&v).expect("serialize")).expect("write rules");
    p
}

const RULE_TESTS: &str = r#"
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'opengslb_overwatch_stale_agents{instance="ow1"}'
        values: '1x20'
      - series: 'opengslb_overwatch_agents_registered{instance="ow1"}'
        values: '10x20'
      - series: 'opengslb_overwatch_stale_agents{instance="ow2"}'
        values: '4x20'
      - series: 'opengslb_overwatch_agents_registered{instance="ow2"}'
        values: '10x20'
      - series: 'opengslb_overwatch_stale_agents{instance="ow3"}'
        values: '0x20'
      - series: 'opengslb_overwatch_agents_registered{instance="ow3"}'
        values: '0x20'
      - series: 'up{job="opengslb-overwatch",instance="ow1"}'
        values: '1 1 0 0 0 0 0 0'
      - series: 'up{job="opengslb-overwatch",instance="ow2"}'
        values: '1x20'
    alert_rule_test:
      - eval_time: 4m
        alertname: OpenGSLBAgentStale
        exp_alerts: []
      - eval_time: 6m
        alertname: OpenGSLBAgentStale
        exp_alerts:
          - exp_labels: {severity: warning, instance: ow1}
          - exp_labels: {severity: warning, instance: ow2}
      - eval_time: 5m
        alertname: OpenGSLBOverwatchDown
        exp_alerts:
          - exp_labels: {severity: critical, job: opengslb-overwatch, instance: ow1}
      - eval_time: 6m
        alertname: OpenGSLBManyAgentsStale
        exp_alerts:
          - exp_labels: {severity: critical, instance: ow2}
  - interval: 1m
    input_series:
      - series: 'opengslb_overwatch_agent_cert_not_after_seconds{agent_id="soon"}'
        values: '864000x30'
      - series: 'opengslb_overwatch_agent_cert_not_after_seconds{agent_id="later"}'
        values: '8640000x30'
    alert_rule_test:
      - eval_time: 11m
        alertname: OpenGSLBAgentCertExpiring
        exp_alerts:
          - exp_labels: {severity: warning, agent_id: soon}
  - interval: 1m
    input_series:
      - series: 'opengslb_overwatch_backends{instance="ow1",status="healthy"}'
        values: '0x10'
      - series: 'opengslb_overwatch_backends{instance="ow1",status="unhealthy"}'
        values: '3x10'
      - series: 'opengslb_overwatch_backends{instance="ow2",status="healthy"}'
        values: '0x10'
      - series: 'opengslb_overwatch_backends{instance="ow2",status="stale"}'
        values: '0x10'
      - series: 'opengslb_agent_backend_healthy{service="www",address="192.0.2.1"}'
        values: '0x10'
      - series: 'opengslb_agent_backend_healthy{service="www",address="192.0.2.2"}'
        values: '0x10'
      - series: 'opengslb_agent_backend_healthy{service="api",address="192.0.2.3"}'
        values: '0x10'
      - series: 'opengslb_agent_backend_healthy{service="api",address="192.0.2.4"}'
        values: '1x10'
    alert_rule_test:
      - eval_time: 3m
        alertname: OpenGSLBAllBackendsDown
        exp_alerts:
          - exp_labels: {severity: critical, instance: ow1, status: healthy}
      - eval_time: 3m
        alertname: OpenGSLBServiceAllBackendsDown
        exp_alerts:
          - exp_labels: {severity: critical, service: www}
  - interval: 1m
    input_series:
      - series: 'opengslb_config_reloads_total{instance="ow1",result="failure"}'
        values: '0 0 0 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1'
      - series: 'opengslb_config_reloads_total{instance="ow1",result="success"}'
        values: '0+1x25'
      - series: 'opengslb_gossip_decrypt_failures_total{instance="ow1"}'
        values: '0+2x25'
      - series: 'opengslb_gossip_decrypt_failures_total{instance="ow2"}'
        values: '5x25'
      - series: 'opengslb_dns_no_healthy_total{instance="ow1",domain="app.example.com",action="servfail"}'
        values: '0+10x25'
      - series: 'opengslb_dns_no_healthy_total{instance="ow1",domain="app.example.com",action="last_healthy"}'
        values: '0x25'
      - series: 'opengslb_dns_no_healthy_total{instance="ow1",domain="www.example.com",action="servfail"}'
        values: '0x25'
      - series: 'opengslb_overwatch_validation_checks_total{instance="ow1",result="failure"}'
        values: '0+1x25'
      - series: 'opengslb_overwatch_validation_checks_total{instance="ow2",result="success"}'
        values: '0+1x25'
    alert_rule_test:
      - eval_time: 5m
        alertname: OpenGSLBConfigReloadFailed
        exp_alerts:
          - exp_labels: {severity: warning, instance: ow1, result: failure}
      - eval_time: 24m
        alertname: OpenGSLBConfigReloadFailed
        exp_alerts: []
      - eval_time: 12m
        alertname: OpenGSLBGossipDecryptFailures
        exp_alerts:
          - exp_labels: {severity: warning, instance: ow1}
      - eval_time: 12m
        alertname: OpenGSLBNameWithoutHealthyBackend
        exp_alerts:
          - exp_labels: {severity: critical, instance: ow1, domain: app.example.com, action: servfail}
      - eval_time: 22m
        alertname: OpenGSLBValidationFailures
        exp_alerts:
          - exp_labels: {severity: warning, instance: ow1}
"#;

#[test]
fn alert_rules_fire_as_documented() {
    if !need_tools("rules::alert_rules_fire_as_documented", &["promtool"]) {
        return;
    }
    let dir = TempDir::new("rules");
    let rules = rules_without_annotations(&dir.0);
    let tests = dir.0.join("tests.yml");
    let body = format!("rule_files:\n  - {}\n{RULE_TESTS}", rules.display());
    fs::write(&tests, body).unwrap();
    let out = Command::new("promtool")
        .arg("test")
        .arg("rules")
        .arg(&tests)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool test rules failed:\n{}",
        text(&out)
    );
}

/// Issue 12: agents renew at two thirds of the certificate's lifetime, so
/// `OpenGSLBAgentCertExpiring` (and its agent-side twin) never fires on a
/// healthy fleet. 90-day certificates, hourly for 240 days: `renews` gets
/// a new one every 60 days (30 days left, the least it ever has); `stuck`
/// never does and fires from day 76 on.
const RENEWAL_TESTS: &str = r#"
evaluation_interval: 1h
tests:
  - interval: 1h
    input_series:
      - series: 'opengslb_overwatch_agent_cert_not_after_seconds{agent_id="renews"}'
        values: '7776000x1439 12960000x1439 18144000x1439 23328000x1439'
      - series: 'opengslb_overwatch_agent_cert_not_after_seconds{agent_id="stuck"}'
        values: '7776000x5759'
      - series: 'opengslb_agent_cert_not_after_seconds{instance="renews"}'
        values: '7776000x1439 12960000x1439 18144000x1439 23328000x1439'
      - series: 'opengslb_agent_cert_not_after_seconds{instance="stuck"}'
        values: '7776000x5759'
    alert_rule_test:
      - { eval_time: 59d, alertname: OpenGSLBAgentCertExpiring, exp_alerts: [] }
      - { eval_time: 59d, alertname: OpenGSLBAgentLocalCertExpiring, exp_alerts: [] }
      - { eval_time: 75d, alertname: OpenGSLBAgentCertExpiring, exp_alerts: [] }
      - eval_time: 77d
        alertname: OpenGSLBAgentCertExpiring
        exp_alerts: [ { exp_labels: { severity: warning, agent_id: stuck } } ]
      - eval_time: 77d
        alertname: OpenGSLBAgentLocalCertExpiring
        exp_alerts: [ { exp_labels: { severity: warning, instance: stuck } } ]
      - eval_time: 119d
        alertname: OpenGSLBAgentCertExpiring
        exp_alerts: [ { exp_labels: { severity: warning, agent_id: stuck } } ]
      - eval_time: 179d
        alertname: OpenGSLBAgentCertExpiring
        exp_alerts: [ { exp_labels: { severity: warning, agent_id: stuck } } ]
      - eval_time: 239d
        alertname: OpenGSLBAgentCertExpiring
        exp_alerts: [ { exp_labels: { severity: warning, agent_id: stuck } } ]
      - eval_time: 239d
        alertname: OpenGSLBAgentLocalCertExpiring
        exp_alerts: [ { exp_labels: { severity: warning, instance: stuck } } ]
"#;

#[test]
fn cert_alerts_stay_quiet_when_certificates_renew_at_two_thirds() {
    let test = "rules::cert_alerts_stay_quiet_when_certificates_renew_at_two_thirds";
    if !need_tools(test, &["promtool"]) {
        return;
    }
    let dir = TempDir::new("rules-renewal");
    let rules = rules_without_annotations(&dir.0);
    let tests = dir.0.join("renewal.yml");
    let body = format!("rule_files:\n  - {}\n{RENEWAL_TESTS}", rules.display());
    fs::write(&tests, body).unwrap();
    let out = Command::new("promtool")
        .arg("test")
        .arg("rules")
        .arg(&tests)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool test rules failed:\n{}",
        text(&out)
    );
}
