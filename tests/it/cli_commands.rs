//! `opengslb-cli` as an operator runs it: the built binary against the real
//! API server (and a fake agent API) on free loopback ports, every command
//! in table and `--json` form, and the exit codes of the failure cases.

use crate::util::api::*;
use opengslb::api::Command;
use serde_json::Value;
use std::process::{Command as Proc, Output};

fn cli(args: &[&str]) -> Output {
    Proc::new(env!("CARGO_BIN_EXE_opengslb-cli"))
        .args(args)
        .env_remove("OPENGSLB_API")
        .env_remove("OPENGSLB_TOKEN")
        .env("USER", "tester")
        .output()
        .expect("run opengslb-cli")
}

fn ok(args: &[&str]) -> String {
    let out = cli(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stderr.is_empty(), "{args:?} wrote to stderr");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ok_json(args: &[&str]) -> Value {
    let mut with = args.to_vec();
    with.push("--json");
    let text = ok(&with);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {text}"))
}

/// (exit code, stderr) of a failing run; stderr must be one line.
fn fails(args: &[&str]) -> (i32, String) {
    let out = cli(args);
    assert!(!out.status.success(), "{args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        err.lines().count(),
        1,
        "{args:?}: stderr is not one line: {err:?}"
    );
    (out.status.code().unwrap_or(-1), err)
}

#[test]
fn servers_table_has_status_column_and_filters() {
    let f = start(|_| {});
    let api = f.base.as_str();
    let table = ok(&["servers", "--api", api]);
    let mut lines = table.lines();
    let header = lines.next().unwrap_or("");
    assert!(header.contains("STATUS"), "{header}");
    let stale: Vec<&str> = table.lines().filter(|l| l.contains("stale")).collect();
    assert!(stale.iter().all(|l| l.contains("10.0.2.10")), "{stale:?}");
    for status in ["healthy", "unhealthy", "draining", "stale"] {
        assert!(
            table
                .lines()
                .skip(1)
                .any(|l| l.split_whitespace().any(|w| w == status)),
            "{status} missing:\n{table}"
        );
    }
    let filtered = ok(&["--api", api, "servers", "list", "--status", "stale"]);
    assert_eq!(filtered.lines().count(), 2, "{filtered}");
    let v = ok_json(&[
        "servers",
        "--api",
        api,
        "--service=app.example.com",
        "--region",
        "eu-west",
    ]);
    assert_eq!(v.as_array().map(Vec::len), Some(2), "v1.1 shape: {v}");
    let (code, err) = fails(&["servers", "--api", api, "--status", "sick"]);
    assert_eq!(code, opengslb::exit::USAGE);
    assert!(err.contains("sick"));
}

#[test]
fn read_commands_in_both_forms() {
    let f = start(|_| {});
    let api = f.base.as_str();
    let status = ok(&["status", "--api", api]);
    assert!(
        status.contains("stale_backends:") && status.contains("backends_by_service:"),
        "{status}"
    );
    assert_eq!(ok_json(&["status", "--api", api])["total_backends"], 4);

    for form in [&["agents"][..], &["agents", "list"][..]] {
        let mut args = form.to_vec();
        args.extend(["--api", api]);
        let t = ok(&args);
        assert!(t.starts_with("ID"), "{t}");
        assert!(
            t.lines().any(|l| l.contains("web-3")
                && l.contains("rejected")
                && l.contains("pin_mismatch")),
            "{t}"
        );
        // Plain --json: the bare array (v1.1 shape); =object: the API's.
        assert_eq!(ok_json(&args).as_array().map(Vec::len), Some(3));
        args.push("--json=object");
        let obj: Value = serde_json::from_str(&ok(&args)).unwrap_or_default();
        assert_eq!(obj["agents"].as_array().map(Vec::len), Some(3));
    }
    let one = ok(&["agents", "show", "web-2", "--api", api]);
    assert!(one.contains("status:") && one.contains("stale"), "{one}");
    assert_eq!(
        ok_json(&["agents", "show", "web-2", "--api", api])["id"],
        "web-2"
    );

    let o = ok(&["overrides", "list", "--api", api]);
    assert!(
        o.lines()
            .any(|l| l.contains("10.0.1.11") && l.contains("maintenance")),
        "{o}"
    );
    assert_eq!(
        ok_json(&["overrides", "list", "--api", api])["overrides"][0]["by"],
        "alice"
    );

    let d = ok(&["domains", "--api", api]);
    assert!(
        d.lines().any(|l| l.contains("app.example.com")
            && l.contains("round-robin")
            && l.contains("10.0.1.10")),
        "{d}"
    );
    assert_eq!(ok_json(&["domains", "--api", api])["domains"][0]["ttl"], 30);
    assert_eq!(
        ok_json(&["domains", "app.example.com", "--api", api])["routing_algorithm"],
        "round-robin"
    );

    let h = ok(&["healthz", "--api", api]);
    assert!(h.starts_with("status: degraded"), "{h}");
    assert!(
        h.lines()
            .any(|l| l.contains("web-9") && l.contains("ap-south")),
        "{h}"
    );
    assert_eq!(
        ok_json(&["healthz", "--api", api])["lost_agents"][0]["last_heartbeat"],
        "2026-11-21 21:10:58"
    );
}

#[test]
fn write_commands_send_commands() {
    let f = start(|_| {});
    let api = f.base.as_str();
    let t = ok(&[
        "overrides",
        "set",
        "app.example.com",
        "10.0.1.10:80",
        "--healthy=false",
        "--reason",
        "maint",
        "--expires",
        "1h",
        "--api",
        api,
    ]);
    assert!(t.contains("override set"), "{t}");
    let v = ok_json(&[
        "--api",
        api,
        "overrides",
        "set",
        "app.example.com",
        "[2001:db8::1]:443",
        "--healthy",
        "true",
        "--reason=back",
    ]);
    assert_eq!(v["action"], "set_override");
    assert!(
        ok(&[
            "overrides",
            "clear",
            "app.example.com",
            "10.0.1.10:80",
            "--api",
            api
        ])
        .contains("cleared")
    );
    assert_eq!(
        ok_json(&[
            "overrides",
            "clear",
            "app.example.com",
            "[::1]:80",
            "--api",
            api
        ])["action"],
        "clear_override"
    );
    assert!(ok(&["agents", "forget", "web-3", "--api", api]).contains("web-3"));
    assert_eq!(
        ok_json(&["agents", "forget", "web-3", "--api", api])["action"],
        "forget_agent"
    );
    assert!(
        ok(&[
            "agents",
            "revoke",
            "web-3",
            "--reason",
            "stolen laptop",
            "--api",
            api
        ])
        .contains("revoked")
    );
    assert_eq!(
        ok_json(&["agents", "revoke", "web-3", "--reason", "x", "--api", api])["action"],
        "revoke_agent"
    );
    assert!(ok(&["validate", "--api", api]).contains("validation"));
    assert_eq!(ok_json(&["validate", "--api", api])["action"], "validate");

    let seen = f.seen();
    assert_eq!(seen.len(), 10);
    assert!(
        matches!(&seen[0].command, Command::SetOverride { healthy: false, expires_in: Some(d), reason, .. } if d.as_secs() == 3600 && reason == "maint")
    );
    assert!(
        matches!(&seen[1].command, Command::SetOverride { address, port: 443, healthy: true, .. } if address == "2001:db8::1")
    );
    assert!(matches!(&seen[3].command, Command::ClearOverride { address, .. } if address == "::1"));
    assert_eq!(
        seen[6].command,
        Command::RevokeAgent {
            id: "web-3".into(),
            reason: "stolen laptop".into()
        }
    );
    assert_eq!(seen[0].by, "tester");
}

#[test]
fn token_flag_and_refusals() {
    let f = start(|c| {
        c.tokens.insert("ops".into(), "s3cret".into());
    });
    let api = f.base.as_str();
    let (code, err) = fails(&["validate", "--api", api]);
    assert_eq!(code, opengslb::exit::FAILURE);
    assert!(err.contains("401"), "{err}");
    ok(&["validate", "--api", api, "--token", "s3cret"]);
    let out = Proc::new(env!("CARGO_BIN_EXE_opengslb-cli"))
        .args(["validate"])
        .env("OPENGSLB_API", api)
        .env("OPENGSLB_TOKEN", "s3cret")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, err) = fails(&[
        "agents", "forget", "nope", "--api", api, "--token", "s3cret",
    ]);
    assert_eq!(code, opengslb::exit::FAILURE);
    assert!(err.contains("no agent") && err.contains("404"), "{err}");
}

#[test]
fn unreachable_api_exits_5_with_one_line() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let api = format!("http://127.0.0.1:{port}");
    let (code, err) = fails(&["servers", "--api", &api, "--timeout", "2"]);
    assert_eq!(code, opengslb::exit::UNREACHABLE);
    assert!(err.contains("cannot reach"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["frob"][..],
        &["servers", "--bogus"][..],
        &["agents", "revoke", "x"][..],
        &[][..],
        &[
            "overrides",
            "set",
            "app",
            "10.0.0.300",
            "--healthy=false",
            "--reason",
            "x",
        ][..],
        &["servers", "--api", "localhost:1"][..],
    ] {
        let (code, _) = fails(args);
        assert_eq!(code, opengslb::exit::USAGE, "{args:?}");
    }
    let help = ok(&["--help"]);
    assert!(help.contains("overrides set") && help.contains("--timeout"));
    assert!(ok(&["--version"]).contains(opengslb::VERSION));
    assert!(ok(&["-v"]).contains(opengslb::VERSION));
}

#[test]
fn agent_side_commands() {
    let (agent, log) = fake_agent();
    let s = ok(&["agent", "status", "--agent", &agent]);
    assert!(s.contains("agent_id:") && s.contains("web-1"), "{s}");
    assert_eq!(
        ok_json(&["agent", "status", "--agent", &agent])["region"],
        "eu-west"
    );
    assert!(ok(&["drain", "on", "--reason", "deploy", "--agent", &agent]).contains("drain on"));
    assert_eq!(
        ok_json(&["drain", "off", "--agent", &agent])["draining"],
        false
    );
    let requests = log.lock().map(|l| l.clone()).unwrap_or_default();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("POST /api/v1/agent/drain") && r.contains("deploy")),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("DELETE /api/v1/agent/drain")),
        "{requests:?}"
    );
    let (code, _) = fails(&["drain", "maybe", "--agent", &agent]);
    assert_eq!(code, opengslb::exit::USAGE);
}

#[test]
fn config_validate_and_gen_key() {
    let dir = std::env::temp_dir().join(format!("opengslb-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let good = dir.join("good.yaml");
    std::fs::write(
        &good,
        "mode: overwatch\ndns:\n  listen_address: \"127.0.0.1:5353\"\n",
    )
    .expect("write");
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "mode: overwatch\ndnss:\n  listen_address: x\n").expect("write");
    // The loader refuses world-readable files, as the daemon does.
    use std::os::unix::fs::PermissionsExt;
    for f in [&good, &bad] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let good_s = good.to_string_lossy().into_owned();
    let bad_s = bad.to_string_lossy().into_owned();
    assert!(ok(&["config", "validate", "-c", &good_s]).contains("valid"));
    assert_eq!(
        ok_json(&["config", "validate", "--config", &good_s])["valid"],
        true
    );
    let (code, err) = fails(&["config", "validate", "-c", &bad_s]);
    assert_eq!(code, opengslb::exit::CONFIG);
    assert!(err.contains("dnss"), "{err}");
    let (code, _) = fails(&["config", "validate", "-c", "/nonexistent/x.yaml"]);
    assert_eq!(code, opengslb::exit::CONFIG);
    let _ = std::fs::remove_dir_all(&dir);

    use base64::Engine;
    let key = ok(&["gen-key"]);
    let raw = base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .expect("base64");
    assert_eq!(raw.len(), 32);
    let j = ok_json(&["gen-key"]);
    assert_eq!(j["key"].as_str().map(str::len), Some(44));
}
