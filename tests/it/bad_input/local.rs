//! Bad input that never crosses the network: command-line arguments of
//! both binaries, configuration files (`--check`, start-up and SIGHUP) and
//! the drain file's contents. Same rules as the parent module: each row
//! names the input and its exact outcome.

use crate::util::dnsclient::{self, A, Query};
use crate::util::site::{Site, noise, run_bin, site};
use crate::util::*;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn cli_arguments() {
    let s = site("bad-cli", "127.0.0.54");
    let before = s.state();
    let api = s.api.as_str();
    // (binary, arguments, exit code, text of the one stderr line)
    let table: Vec<(&str, Vec<&str>, i32, &str)> = vec![
        (
            CLI,
            vec!["--api", api, "--bogus", "status"],
            2,
            "unknown flag --bogus",
        ),
        (CLI, vec!["--api"], 2, "--api needs a value"),
        (CLI, vec!["--api", api, "frobnicate"], 2, "unknown command"),
        (
            CLI,
            vec![
                "--api",
                api,
                "overrides",
                "set",
                "app.gslb.test",
                "127.0.0.54:80",
                "--healthy=maybe",
                "--reason",
                "x",
            ],
            2,
            "expected true or false",
        ),
        (
            CLI,
            vec![
                "--api",
                api,
                "overrides",
                "set",
                "app.gslb.test",
                "127.0.0.54:80",
                "--healthy",
            ],
            2,
            "--healthy needs a value",
        ),
        (
            CLI,
            vec![
                "--api",
                api,
                "overrides",
                "set",
                "app.gslb.test",
                "::1:80",
                "--healthy=false",
                "--reason",
                "x",
            ],
            2,
            "invalid address:port",
        ),
        (
            CLI,
            vec![
                "--api",
                api,
                "overrides",
                "set",
                "app.gslb.test",
                "127.0.0.54:0",
                "--healthy=false",
                "--reason",
                "x",
            ],
            2,
            "invalid port",
        ),
        (
            CLI,
            vec![
                "--api",
                api,
                "overrides",
                "set",
                "app.gslb.test",
                "[::1:80",
                "--healthy=false",
                "--reason",
                "x",
            ],
            2,
            "invalid address:port",
        ),
        (
            CLI,
            vec!["--api", api, "--timeout", "abc", "status"],
            2,
            "--timeout",
        ),
        (CLI, vec!["--api", "not a url", "status"], 2, "invalid URL"),
        (BIN, vec!["--bogus"], 2, "unknown argument \"--bogus\""),
        (BIN, vec!["--config"], 2, "--config needs a value"),
        (
            BIN,
            vec!["--mode", "both"],
            2,
            "--mode must be overwatch or agent",
        ),
        (BIN, vec!["--mode"], 2, "--mode needs a value"),
    ];
    let mut failures = Vec::new();
    for (bin, args, code, text) in &table {
        let (got, err) = run_bin(bin, args);
        let lines = err.lines().count();
        if got != Some(*code) || !err.contains(text) || (*code == 2 && lines != 1) {
            failures.push(format!("{bin} {args:?}: exit {got:?}, stderr {err:?}; want {code} with one line containing {text:?}"));
        }
        s.assert_unchanged(&before, &format!("{args:?}"));
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn config_files() {
    let dir = TempDir::new("bad-cfg");
    let base = "mode: overwatch\ndns:\n  listen_address: \"127.0.0.1:5353\"\n  zones: [gslb.test]\nregions:\n  - name: east\ndomains:\n  - { name: app.gslb.test, routing_algorithm: round-robin, regions: [east] }\n";
    let ok = dir.write("ok.yaml", base);
    let (code, err) = run_bin(BIN, &["--config", ok.to_str().unwrap(), "--check"]);
    assert_eq!(code, Some(0), "{err}");
    // (what, file content, text the error must contain)
    let table: Vec<(&str, String, &str)> = vec![
        (
            "unknown key",
            format!("{base}bogus: 1\n"),
            "bogus: unknown key",
        ),
        (
            "misspelt key",
            format!("{base}api: {{ adress: x }}\n"),
            "api.adress: unknown key (did you mean \"address\"?)",
        ),
        (
            "wrong type",
            base.replace("zones:", "default_ttl: lots\n  zones:"),
            "dns.default_ttl: expected an integer",
        ),
        (
            "bad duration",
            format!("{base}overwatch: {{ stale: {{ remove_after: 5 parsecs }} }}\n"),
            "overwatch.stale.remove_after: invalid duration",
        ),
        (
            "bad enum",
            base.replace("round-robin", "roulette"),
            "domains[0].routing_algorithm: invalid value \"roulette\"",
        ),
        (
            "bad listen address",
            base.replace("127.0.0.1:5353", "999.1.1.1:53"),
            "dns.listen_address: invalid listen address",
        ),
        (
            "bad key",
            format!("{base}overwatch: {{ gossip: {{ encryption_key: notbase64 }} }}\n"),
            "overwatch.gossip.encryption_key",
        ),
        (
            "tab indentation",
            "mode: overwatch\n\tdns: 1\n".into(),
            "invalid YAML",
        ),
        (
            "unclosed flow list",
            "mode: [overwatch\n".into(),
            "invalid YAML",
        ),
        (
            "duplicate key",
            format!("{base}mode: agent\n"),
            "duplicate entry with key \"mode\"",
        ),
        ("a scalar", "42\n".into(), "must hold a mapping"),
        ("a list", "- a\n- b\n".into(), "must hold a mapping"),
        ("empty file", String::new(), "the file is empty"),
        (
            "only a comment",
            "# nothing here\n".into(),
            "the file is empty",
        ),
        (
            "agent mode without agent section",
            "mode: agent\n".into(),
            "agent: section",
        ),
        (
            "deep nesting",
            format!("{base}x: {}1{}\n", "[".repeat(200), "]".repeat(200)),
            "x",
        ),
    ];
    let mut failures = Vec::new();
    for (i, (what, text, want)) in table.iter().enumerate() {
        let p = dir.write(&format!("c{i}.yaml"), text);
        let (code, err) = run_bin(BIN, &["--config", p.to_str().unwrap(), "--check"]);
        if code != Some(3) || !err.contains(want) {
            failures.push(format!(
                "{what}: exit {code:?}, stderr {err:?}; want 3 containing {want:?}"
            ));
        }
    }
    // Binary garbage, a directory, a missing file, a world-readable file.
    let garbage = dir.path().join("garbage.yaml");
    std::fs::write(&garbage, noise(4096, 31)).unwrap();
    let mode = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(m)).unwrap()
    };
    mode(&garbage, 0o600);
    let open = dir.write("open.yaml", base);
    mode(&open, 0o644);
    for (what, path, want) in [
        ("binary garbage", garbage.clone(), "cannot read"),
        ("a directory", dir.path().to_path_buf(), "Is a directory"),
        ("missing file", dir.path().join("nope.yaml"), "No such file"),
        ("world-readable", open, "chmod 600"),
    ] {
        let (code, err) = run_bin(BIN, &["--config", path.to_str().unwrap(), "--check"]);
        if code != Some(3) || !err.contains(want) {
            failures.push(format!(
                "{what}: exit {code:?}, stderr {err:?}; want 3 containing {want:?}"
            ));
        }
    }
    // Not readable by the daemon's user: as root, run it as nobody.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        use std::os::unix::process::CommandExt;
        let run = Command::new(BIN)
            .args(["--config", ok.to_str().unwrap(), "--check"])
            .uid(65534)
            .output();
        match run {
            // The binary itself may sit where nobody cannot reach it.
            Err(e) => skip(
                "bad_input::config_files (unreadable-file row)",
                &format!("cannot run as nobody: {e}"),
            ),
            Ok(out) => {
                let err = String::from_utf8_lossy(&out.stderr);
                if out.status.code() != Some(3) || !err.contains("Permission denied") {
                    failures.push(format!(
                        "unreadable: exit {:?}, stderr {err:?}",
                        out.status.code()
                    ));
                }
            }
        }
    } else {
        skip(
            "bad_input::config_files (unreadable-file row)",
            "needs root to run the check as another user",
        );
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn broken_config_on_sighup_keeps_the_old_one() {
    let s = site("bad-hup", "127.0.0.55");
    let before = s.state();
    let good = std::fs::read_to_string(&s.ow.config).unwrap();
    for (i, text) in ["", "mode: [overwatch\n", "bogus: 1\n", "\u{0}\u{1}garbage"]
        .iter()
        .enumerate()
    {
        let text = if i == 2 {
            format!("{good}{text}")
        } else {
            text.to_string()
        };
        std::fs::write(&s.ow.config, text).unwrap();
        s.ow.signal(libc::SIGHUP);
        wait_for("reload rejected", Duration::from_secs(5), || {
            let (_, m) = http_get(&format!("{}/metrics", s.api))?;
            m.lines()
                .any(|l| {
                    l.starts_with("opengslb_config_reloads_total{result=\"failure\"}")
                        && l.ends_with(&format!(" {}", i + 1))
                })
                .then_some(())
        });
        s.assert_unchanged(&before, &format!("SIGHUP with broken file #{i}"));
    }
    std::fs::write(&s.ow.config, good).unwrap();
}

fn drain_reason(s: &Site) -> Option<String> {
    let (_, body) = http_get(&format!("{}/api/v1/agent/status", s.agent_api))?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let r = v["drain_reason"]
        .as_str()
        .or_else(|| v["draining_reason"].as_str())?;
    Some(r.to_string())
}

fn ow_drain_reason(s: &Site) -> Option<String> {
    let (_, body) = http_get(&format!("{}/api/v1/overwatch/backends", s.api))?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let b = v["backends"].as_array()?.first()?.clone();
    (b["effective_status"] == "draining")
        .then(|| b["drain_reason"].as_str().unwrap_or("").to_string())
}

/// (what, how to make the drain path, which reason is right).
type DrainCase = (
    &'static str,
    Box<dyn Fn(&std::path::Path)>,
    Box<dyn Fn(&str) -> bool>,
);

#[test]
fn drain_file_contents() {
    let s = site("bad-drain", "127.0.0.56");
    let mut garbage = noise(300, 41);
    garbage.retain(|b| *b != b'\n' && *b != b'\r');
    garbage.splice(0..0, b"disk \x07swap\x1b[31m ".iter().copied());
    let long = "r".repeat(1 << 20);
    // (what, make the drain path, reason the Overwatch must show)
    let cases: Vec<DrainCase> = vec![
        (
            "empty file",
            Box::new(|p| std::fs::write(p, "").unwrap()),
            Box::new(|r| r == "drain file present"),
        ),
        (
            "binary garbage",
            Box::new(move |p| std::fs::write(p, &garbage).unwrap()),
            Box::new(|r| {
                r.starts_with("disk swap[31m")
                    && !r.chars().any(char::is_control)
                    && r.chars().count() <= 256
            }),
        ),
        (
            "a directory",
            Box::new(|p| std::fs::create_dir(p).unwrap()),
            Box::new(|r| r == "drain file present"),
        ),
        (
            "1 MB of text",
            Box::new(move |p| std::fs::write(p, &long).unwrap()),
            Box::new(|r| r.len() == 256 && r.bytes().all(|b| b == b'r')),
        ),
    ];
    for (what, make, ok) in &cases {
        make(&s.drain);
        // fs::write creates the file before it writes it: the agent may
        // first see it empty ("drain file present") and then whole. Wait
        // for the settled reason; the last one seen is in the failure.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut reason = None;
        while Instant::now() < deadline && !reason.as_deref().is_some_and(ok) {
            std::thread::sleep(Duration::from_millis(25));
            reason = ow_drain_reason(&s).or(reason);
        }
        assert!(
            reason.as_deref().is_some_and(ok),
            "{what}: Overwatch shows reason {reason:?}"
        );
        let local = drain_reason(&s);
        assert!(
            local.as_deref().is_none_or(ok),
            "{what}: agent shows {local:?}"
        );
        assert!(
            dnsclient::udp(s.dns, &Query::new("app.gslb.test", A))
                .is_some_and(|r| r.answers.is_empty()),
            "{what}: drained"
        );
        if s.drain.is_dir() {
            std::fs::remove_dir(&s.drain).unwrap();
        } else {
            std::fs::remove_file(&s.drain).unwrap();
        }
        wait_for(
            &format!("back after {what}"),
            Duration::from_secs(5),
            || s.serving().then_some(()),
        );
    }
}
