//! Checks of the appliance files that ship beside the binaries: the
//! Prometheus rules (promtool, and that each alert fires as documented and
//! links to a runbook heading), the shell scripts (shellcheck), the systemd
//! units (systemd-analyze and the hardening they promise), the man pages
//! (mandoc, and that flags and exit codes match the code), and install.sh /
//! uninstall.sh into a DESTDIR. A check whose tool is not installed says so
//! on stderr and passes; CI installs them all (prometheus, shellcheck,
//! systemd, mandoc).

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// True when `tool` is on PATH; otherwise says which check is skipped.
fn have(tool: &str, check: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    if !found {
        eprintln!("SKIPPED {check}: `{tool}` is not installed");
    }
    found
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("ogslb-appl-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const RULES: &str = "etc/prometheus/opengslb-alerts.yml";

// ------------------------------------------------------------ prometheus

#[test]
fn alert_rules_pass_promtool() {
    if !have("promtool", "promtool check rules") {
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
    if !have("promtool", "promtool test rules") {
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

// ------------------------------------------------------------ shell

fn scripts() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(root().join("scripts"))
        .expect("scripts/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sh"))
        .collect();
    v.sort();
    v
}

#[test]
fn scripts_pass_shellcheck() {
    let all = scripts();
    for name in ["install.sh", "uninstall.sh", "drain.sh"] {
        assert!(
            all.iter().any(|p| p.ends_with(name)),
            "scripts/{name} missing"
        );
    }
    for p in &all {
        let mode = fs::metadata(p).unwrap().permissions().mode();
        assert!(mode & 0o111 != 0, "{} is not executable", p.display());
        let first = fs::read_to_string(p).unwrap();
        assert!(
            first.starts_with("#!/bin/sh\n"),
            "{} must be POSIX sh",
            p.display()
        );
    }
    if !have("shellcheck", "shellcheck") {
        return;
    }
    let out = Command::new("shellcheck")
        .args(["-s", "sh"])
        .args(&all)
        .output()
        .unwrap();
    assert!(out.status.success(), "shellcheck:\n{}", text(&out));
}

// ------------------------------------------------------------ systemd

const UNITS: &[&str] = &["opengslb-overwatch.service", "opengslb-agent.service"];

fn unit(name: &str) -> String {
    fs::read_to_string(root().join("systemd").join(name))
        .unwrap_or_else(|e| panic!("systemd/{name}: {e}"))
}

fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn units_promise_the_documented_hardening() {
    for name in UNITS {
        let u = unit(name);
        let has = |key: &str, want: &dyn Fn(&str) -> bool| {
            assert!(
                values(&u, key).iter().any(|v| want(v)),
                "{name}: no acceptable {key}= ({:?})",
                values(&u, key)
            );
        };
        let yes = |v: &str| matches!(v, "true" | "yes" | "1" | "on");
        has("Type", &|v| v == "notify");
        has("ExecReload", &|v| {
            v.contains("kill -HUP") || v.contains("SIGHUP")
        });
        has("Restart", &|v| v == "on-failure");
        has("User", &|v| v == "opengslb");
        has("StateDirectory", &|v| v == "opengslb");
        has("ProtectSystem", &|v| v == "strict");
        has("NoNewPrivileges", &yes);
        has("PrivateTmp", &yes);
        has("RestrictAddressFamilies", &|v| {
            v.contains("AF_INET") && v.contains("AF_UNIX")
        });
        has("SystemCallFilter", &|v| v == "@system-service");
        has("WatchdogSec", &|v| !v.is_empty());
        // The command lines must parse with the daemon's own flag parser.
        let start = values(&u, "ExecStart");
        assert_eq!(start.len(), 1, "{name}: one ExecStart");
        let argv: Vec<String> = start[0]
            .split_whitespace()
            .skip(1)
            .map(String::from)
            .collect();
        match opengslb::daemon::args::parse(argv) {
            Ok(opengslb::daemon::args::Action::Run(a)) => {
                let mode = if name.contains("agent") {
                    "agent"
                } else {
                    "overwatch"
                };
                assert_eq!(
                    a.config,
                    PathBuf::from(format!("/etc/opengslb/{mode}.yaml")),
                    "{name}"
                );
                assert!(
                    start[0].contains(&format!("--mode {mode}")),
                    "{name}: --mode {mode}"
                );
            }
            other => panic!("{name}: ExecStart does not parse as a run: {other:?}"),
        }
        let check = values(&u, "ExecReload")
            .into_iter()
            .find(|v| v.contains("--check"))
            .unwrap_or_else(|| panic!("{name}: no ExecReload with --check"));
        let argv: Vec<String> = check.split_whitespace().skip(1).map(String::from).collect();
        assert!(
            matches!(
                opengslb::daemon::args::parse(argv),
                Ok(opengslb::daemon::args::Action::Check(_))
            ),
            "{name}: the --check ExecReload does not parse"
        );
        // install.sh rewrites this prefix to $PREFIX/bin.
        assert!(
            start[0].starts_with("/usr/local/bin/opengslb "),
            "{name}: ExecStart path"
        );
    }
    let ow = unit("opengslb-overwatch.service");
    assert!(
        values(&ow, "AmbientCapabilities").contains(&"CAP_NET_BIND_SERVICE"),
        "overwatch binds :53"
    );
    let agent = unit("opengslb-agent.service");
    assert!(
        values(&agent, "RuntimeDirectory").contains(&"opengslb"),
        "agent drain file dir"
    );
}

#[test]
fn units_pass_systemd_analyze_verify() {
    if !have("systemd-analyze", "systemd-analyze verify") {
        return;
    }
    // The real daemon when this crate has the binary target; /bin/true
    // otherwise (verify only needs an executable path).
    let exe = option_env!("CARGO_BIN_EXE_opengslb").unwrap_or("/bin/true");
    let dir = TempDir::new("units");
    for name in UNITS {
        let rewritten: String = unit(name)
            .lines()
            .map(|l| {
                if l.starts_with("ExecStart=") || l.starts_with("ExecReload=") {
                    l.replace("/usr/local/bin/opengslb", exe)
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let path = dir.0.join(name);
        fs::write(&path, rewritten + "\n").unwrap();
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&path)
            .output()
            .unwrap();
        let all = text(&out);
        let complaints: Vec<&str> = all.lines().filter(|l| l.contains(name)).collect();
        assert!(
            complaints.is_empty(),
            "systemd-analyze verify {name}:\n{}",
            complaints.join("\n")
        );
        if !out.status.success() {
            eprintln!(
                "systemd-analyze verify {name} exited {} without naming the unit:\n{all}",
                out.status
            );
        }
    }
}

// ------------------------------------------------------------ man pages

fn man_pages() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(root().join("man"))
        .expect("man/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "1" || x == "5" || x == "8")
        })
        .collect();
    v.sort();
    v
}

#[test]
fn man_pages_pass_mandoc_lint() {
    let pages = man_pages();
    assert!(
        pages.iter().any(|p| p.ends_with("opengslb.8")),
        "man/opengslb.8 missing"
    );
    if !have("mandoc", "mandoc -Tlint") {
        return;
    }
    for p in &pages {
        let out = Command::new("mandoc")
            .arg("-Tlint")
            .arg(p)
            .output()
            .unwrap();
        let t = text(&out);
        assert!(
            out.status.success() && t.trim().is_empty(),
            "mandoc -Tlint {}:\n{t}",
            p.display()
        );
    }
}

/// The lines of one `.SH` section.
fn section<'a>(page: &'a str, name: &str) -> Vec<&'a str> {
    page.lines()
        .skip_while(|l| *l != format!(".SH {name}"))
        .skip(1)
        .take_while(|l| !l.starts_with(".SH "))
        .collect()
}

/// The line after each `.TP` of a section.
fn tagged(lines: &[&str]) -> Vec<String> {
    lines
        .windows(2)
        .filter(|w| w[0] == ".TP")
        .map(|w| w[1].to_string())
        .collect()
}

#[test]
fn man_page_flags_match_the_flag_table() {
    let page = fs::read_to_string(root().join("man/opengslb.8")).unwrap();
    let tags = tagged(&section(&page, "OPTIONS"));
    let documented: BTreeSet<String> = tags
        .iter()
        .filter_map(|t| {
            let rest = t.strip_prefix("\\fB\\-\\-")?;
            Some(format!("--{}", &rest[..rest.find("\\fR")?]))
        })
        .collect();
    assert_eq!(
        documented.len(),
        tags.len(),
        "an OPTIONS tag breaks the convention: {tags:?}"
    );
    let table: BTreeSet<String> = opengslb::daemon::args::FLAGS
        .iter()
        .map(|f| f.0.to_string())
        .collect();
    assert_eq!(
        documented, table,
        "man/opengslb.8 OPTIONS vs src/daemon/args.rs FLAGS"
    );
    for (flag, value, _) in opengslb::daemon::args::FLAGS {
        let tag = tags
            .iter()
            .find(|t| t.contains(&flag.replace('-', "\\-")))
            .expect("tag");
        if value.is_empty() {
            assert!(!tag.contains("\\fI"), "{flag} takes no value: {tag}");
        } else {
            assert!(
                tag.contains(&format!("\\fI{value}\\fR")),
                "{flag} {value}: {tag}"
            );
        }
    }
}

#[test]
fn man_page_exit_codes_match_the_exit_table() {
    let page = fs::read_to_string(root().join("man/opengslb.8")).unwrap();
    let codes: Vec<i32> = tagged(&section(&page, "EXIT STATUS"))
        .iter()
        .filter_map(|t| t.strip_prefix(".B ")?.trim().parse().ok())
        .collect();
    let table: Vec<i32> = opengslb::exit::TABLE.iter().map(|e| e.0).collect();
    assert_eq!(codes, table, "man/opengslb.8 EXIT STATUS vs src/exit.rs");
    for s in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "SIGNALS",
        "EXIT STATUS",
        "FILES",
        "ENVIRONMENT",
        "EXAMPLES",
        "SEE ALSO",
    ] {
        assert!(
            page.contains(&format!(".SH {s}\n")),
            "man/opengslb.8 has no {s} section"
        );
    }
    let signals = section(&page, "SIGNALS").join("\n");
    for s in ["SIGHUP", "SIGTERM", "SIGINT"] {
        assert!(signals.contains(s), "SIGNALS lacks {s}");
    }
    let env = section(&page, "ENVIRONMENT").join("\n");
    for v in ["RUST_LOG", "NOTIFY_SOCKET", "WATCHDOG_USEC"] {
        assert!(env.contains(v), "ENVIRONMENT lacks {v}");
    }
}

// ------------------------------------------------------------ install.sh

fn write_exec(path: &Path, body: &str) {
    fs::write(path, body).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Every path under `dir` with its kind, size, mode and modification time.
fn snapshot(dir: &Path) -> Vec<(PathBuf, bool, u64, u32, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.push((
                p,
                m.is_dir(),
                m.len(),
                m.permissions().mode(),
                m.modified().unwrap(),
            ));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

struct Install {
    tmp: TempDir,
    dest: PathBuf,
    bins: PathBuf,
    configs: PathBuf,
}

impl Install {
    fn new() -> Install {
        let tmp = TempDir::new("install");
        let bins = tmp.0.join("bins");
        let configs = tmp.0.join("configs");
        let dest = tmp.0.join("dest");
        fs::create_dir_all(&bins).unwrap();
        fs::create_dir_all(configs.join("examples")).unwrap();
        write_exec(&bins.join("opengslb"), "#!/bin/sh\necho fake opengslb\n");
        write_exec(
            &bins.join("opengslb-cli"),
            "#!/bin/sh\necho fake opengslb-cli\n",
        );
        fs::write(configs.join("overwatch.yaml"), "mode: overwatch\n").unwrap();
        fs::write(configs.join("agent.yaml"), "mode: agent\n").unwrap();
        fs::write(
            configs.join("examples/two-sites.yaml"),
            "mode: overwatch # example\n",
        )
        .unwrap();
        Install {
            dest,
            bins,
            configs,
            tmp,
        }
    }

    fn run(&self, script: &str, args: &[&str]) -> String {
        let out = Command::new("sh")
            .arg(root().join("scripts").join(script))
            .args(args)
            .env("DESTDIR", &self.dest)
            .env("PREFIX", "/opt/ogslb")
            .env("BINDIR_SRC", &self.bins)
            .env("CONFIG_SRC", &self.configs)
            .output()
            .unwrap();
        let t = text(&out);
        assert!(out.status.success(), "{script} {args:?} failed:\n{t}");
        t
    }
}

#[test]
fn install_is_idempotent_keeps_edited_configs_and_uninstalls() {
    let i = Install::new();
    let d = &i.dest;
    let first = i.run("install.sh", &[]);
    assert!(first.contains("not creating the opengslb user"), "{first}");

    let bin = d.join("opt/ogslb/bin");
    for b in ["opengslb", "opengslb-cli", "opengslb-drain"] {
        assert_eq!(mode(&bin.join(b)), 0o755, "{b}");
    }
    assert_eq!(
        fs::read_to_string(bin.join("opengslb")).unwrap(),
        "#!/bin/sh\necho fake opengslb\n"
    );
    assert_eq!(mode(&d.join("etc/opengslb")), 0o750);
    assert_eq!(mode(&d.join("var/lib/opengslb")), 0o750);
    for c in ["overwatch.yaml", "agent.yaml"] {
        assert_eq!(
            mode(&d.join("etc/opengslb").join(c)),
            0o640,
            "{c} must not be world-readable"
        );
    }
    for u in UNITS {
        let text = fs::read_to_string(d.join("etc/systemd/system").join(u)).unwrap();
        assert!(
            text.contains("ExecStart=/opt/ogslb/bin/opengslb "),
            "{u} not rewritten to PREFIX"
        );
        assert!(
            !text.contains("/usr/local/bin"),
            "{u} still names /usr/local/bin"
        );
    }
    assert!(d.join("opt/ogslb/share/man/man8/opengslb.8").is_file());
    assert!(
        d.join("opt/ogslb/share/doc/opengslb/opengslb-alerts.yml")
            .is_file()
    );
    assert!(
        d.join("opt/ogslb/share/doc/opengslb/examples/two-sites.yaml")
            .is_file()
    );

    // A second run changes nothing at all.
    let before = snapshot(d);
    let second = i.run("install.sh", &[]);
    assert!(second.contains("everything already up to date"), "{second}");
    assert_eq!(before, snapshot(d), "the second install changed files");

    // An operator's edit survives; the shipped file lands beside it.
    let agent = d.join("etc/opengslb/agent.yaml");
    fs::write(&agent, "mode: agent\n# edited by the operator\n").unwrap();
    fs::set_permissions(&agent, fs::Permissions::from_mode(0o644)).unwrap();
    let third = i.run("install.sh", &[]);
    assert_eq!(
        fs::read_to_string(&agent).unwrap(),
        "mode: agent\n# edited by the operator\n"
    );
    assert_eq!(
        fs::read_to_string(d.join("etc/opengslb/agent.yaml.dist")).unwrap(),
        "mode: agent\n"
    );
    assert!(
        third.contains("agent.yaml.dist"),
        "install must say where the shipped file went:\n{third}"
    );
    assert_eq!(mode(&agent), 0o640, "a world-readable config is fixed");
    assert!(
        !d.join("etc/opengslb/overwatch.yaml.dist").exists(),
        "unchanged config got a .dist"
    );
    let before = snapshot(d);
    i.run("install.sh", &[]);
    assert_eq!(before, snapshot(d), "the .dist is rewritten on every run");

    // uninstall removes what install put there and keeps configs and state.
    let un = i.run("uninstall.sh", &[]);
    for b in ["opengslb", "opengslb-cli", "opengslb-drain"] {
        assert!(!bin.join(b).exists(), "{b} left behind:\n{un}");
    }
    for u in UNITS {
        assert!(
            !d.join("etc/systemd/system").join(u).exists(),
            "{u} left behind"
        );
    }
    assert!(!d.join("opt/ogslb/share/man/man8/opengslb.8").exists());
    assert!(
        !d.join("opt/ogslb/share/doc/opengslb").exists(),
        "doc dir left behind"
    );
    assert!(
        agent.is_file(),
        "uninstall without --purge removed a config"
    );
    assert!(
        d.join("var/lib/opengslb").is_dir(),
        "uninstall without --purge removed state"
    );

    let purge = i.run("uninstall.sh", &["--purge"]);
    assert!(
        !d.join("etc/opengslb").exists(),
        "--purge kept /etc/opengslb:\n{purge}"
    );
    assert!(
        !d.join("var/lib/opengslb").exists(),
        "--purge kept /var/lib/opengslb"
    );
}

#[test]
fn install_refuses_missing_binaries_and_bad_arguments() {
    let i = Install::new();
    fs::remove_file(i.bins.join("opengslb-cli")).unwrap();
    let out = Command::new("sh")
        .arg(root().join("scripts/install.sh"))
        .env("DESTDIR", &i.dest)
        .env("BINDIR_SRC", &i.bins)
        .env("CONFIG_SRC", &i.configs)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("no executable opengslb-cli"),
        "{}",
        text(&out)
    );
    let out = Command::new("sh")
        .arg(root().join("scripts/install.sh"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// The live-system path (no DESTDIR): user creation, ownership and the
/// purge, run as root inside a private mount namespace whose /etc,
/// /usr/local and /var/lib are overlays on a temp dir, so the host is left
/// untouched. Skipped, with a message, when not root or when the namespace
/// or the overlays cannot be made.
#[test]
fn install_live_as_root_in_a_private_mount_namespace() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED live install test: needs root");
        return;
    }
    if !have("unshare", "live install test") {
        return;
    }
    let i = Install::new();
    let ov = i.tmp.0.join("overlay");
    let host_etc = Path::new("/etc/opengslb").exists();
    let user_existed = Command::new("id")
        .arg("opengslb")
        .output()
        .is_ok_and(|o| o.status.success());
    let mut script = String::from("set -e\n");
    for (n, dir) in ["/etc", "/usr/local", "/var/lib"].iter().enumerate() {
        let (up, work) = (ov.join(format!("{n}/up")), ov.join(format!("{n}/work")));
        fs::create_dir_all(&up).unwrap();
        fs::create_dir_all(&work).unwrap();
        // Any failed mount stops the script before it can touch the host.
        script.push_str(&format!(
            "mount -t overlay overlay -o lowerdir={dir},upperdir={},workdir={} {dir} || exit 77\n",
            up.display(),
            work.display()
        ));
    }
    let inst = root().join("scripts/install.sh");
    let uninst = root().join("scripts/uninstall.sh");
    script.push_str(&format!(
        "sh {inst} && echo RUN2 && sh {inst}\n\
         echo STAT; stat -c '%n %U:%G %a' /etc/opengslb /etc/opengslb/agent.yaml /var/lib/opengslb /usr/local/bin/opengslb\n\
         sh {uninst} --purge\n\
         echo AFTER; id opengslb 2>&1 || true; ls /etc/opengslb 2>&1 || true\n",
        inst = inst.display(),
        uninst = uninst.display()
    ));
    let path = i.tmp.0.join("live.sh");
    fs::write(&path, script).unwrap();
    let out = Command::new("unshare")
        .arg("-m")
        .arg("sh")
        .arg(&path)
        .env_remove("DESTDIR")
        .env_remove("PREFIX")
        .env("BINDIR_SRC", &i.bins)
        .env("CONFIG_SRC", &i.configs)
        .output()
        .unwrap();
    let t = text(&out);
    if out.status.code() == Some(77) || t.contains("unshare failed") {
        eprintln!("SKIPPED live install test: no overlay mounts here:\n{t}");
        return;
    }
    assert!(out.status.success(), "live install failed:\n{t}");
    if !user_existed {
        assert!(t.contains("created system user and group opengslb"), "{t}");
        assert!(t.contains("removed user opengslb"), "{t}");
    }
    let (_, run2) = t.split_once("RUN2").expect("second run");
    assert!(run2.contains("everything already up to date"), "{t}");
    assert!(t.contains("/etc/opengslb root:opengslb 750"), "{t}");
    assert!(
        t.contains("/etc/opengslb/agent.yaml root:opengslb 640"),
        "{t}"
    );
    assert!(t.contains("/var/lib/opengslb opengslb:opengslb 750"), "{t}");
    assert!(t.contains("/usr/local/bin/opengslb root:root 755"), "{t}");
    let (_, after) = t.split_once("AFTER").expect("after purge");
    assert!(
        after.contains("No such file"),
        "--purge left /etc/opengslb: {after}"
    );
    // The host itself is untouched.
    assert_eq!(
        Path::new("/etc/opengslb").exists(),
        host_etc,
        "the host's /etc/opengslb changed"
    );
    let user_now = Command::new("id")
        .arg("opengslb")
        .output()
        .is_ok_and(|o| o.status.success());
    assert_eq!(user_now, user_existed, "the host's opengslb user changed");
}
