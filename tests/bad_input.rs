//! Malformed input at every entry point (issue 6): DNS over UDP and TCP,
//! gossip, the HTTP API, command-line arguments, configuration files and
//! the drain file. Each table row names the input and the exact outcome;
//! after each row the daemon must still answer correctly and its state
//! (backends, agents, overrides, audit log) must be what it was.

mod common;
#[path = "bad_input/site.rs"]
mod site;
#[path = "bad_input/wire.rs"]
mod wire;

use common::dnsclient::{self, A, Query};
use common::*;
use site::{Site, noise, raw_http, run_bin, site};
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};
use wire::*;

const CLI: &str = env!("CARGO_BIN_EXE_opengslb-cli");

#[test]
fn dns_over_udp_and_tcp() {
    let s = site("bad-dns", "127.0.0.51");
    let before = s.state();
    let mut pointer_loop = header(1, 0x0100, 1, 0);
    pointer_loop.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    let mut no_question = header(2, 0x0100, 1, 0);
    no_question.truncate(12);
    let mut long_label = header(3, 0x0100, 1, 0);
    long_label.push(63);
    long_label.extend_from_slice(&[b'a'; 40]);
    let mut a_response = header(4, 0x8100, 1, 0);
    a_response.extend_from_slice(&Query::new("app.gslb.test", A).encode(4)[12..]);
    let mut status_opcode = Query::new("app.gslb.test", A).encode(5);
    status_opcode[2] = (status_opcode[2] & 0x87) | (2 << 3);
    let mut big_garbage = header(6, 0x0100, 1, 0);
    big_garbage.extend_from_slice(&noise(65_000, 6));
    let table: Vec<(&str, Vec<u8>, Out)> = vec![
        ("empty datagram", vec![], Out::Silent),
        (
            "11 bytes, shorter than a header",
            vec![0x12; 11],
            Out::Silent,
        ),
        ("a response (QR set)", a_response, Out::Silent),
        (
            "header says 1 question, none follows",
            no_question,
            Out::Rcode(1),
        ),
        ("compression pointer to itself", pointer_loop, Out::Rcode(1)),
        ("label longer than the message", long_label, Out::Rcode(1)),
        ("opcode STATUS", status_opcode, Out::Rcode(4)),
        // Larger than the receive buffer (dns.max_udp_size): dropped unread.
        ("64 KB of garbage after a header", big_garbage, Out::Silent),
        // These bytes happen to carry opcode 5 in the flags: NOTIMP.
        ("512 random bytes", noise(512, 7), Out::Rcode(4)),
    ];
    let mut failures = Vec::new();
    for (what, bytes, want) in &table {
        let got = udp_outcome(s.dns, bytes);
        if &got != want {
            failures.push(format!("UDP {what}: got {got:?}, want {want:?}"));
        }
        s.assert_unchanged(&before, what);
    }

    // TCP: a length prefix bigger than what follows, then close.
    let mut t = TcpStream::connect(s.dns).unwrap();
    t.write_all(&[0x01, 0x00, 1, 2, 3]).unwrap();
    drop(t);
    s.assert_unchanged(&before, "TCP short message then close");
    // A zero-length message: the server closes the connection.
    assert_eq!(
        tcp_outcome(s.dns, &[0, 0]),
        TcpOut::Closed,
        "zero-length message"
    );
    s.assert_unchanged(&before, "TCP zero-length message");
    // 64 KiB of garbage in one maximal frame.
    let mut frame = vec![0xff, 0xff];
    frame.extend_from_slice(&header(9, 0x0100, 1, 0));
    frame.extend_from_slice(&noise(65_535 - 12, 9));
    assert_eq!(
        tcp_outcome(s.dns, &frame),
        TcpOut::Rcode(1),
        "64 KiB of garbage"
    );
    s.assert_unchanged(&before, "TCP 64 KiB garbage");
    // Slowloris: one byte, then silence. Others are served meanwhile and
    // the idle connection is closed after dns.tcp_idle_timeout (1 s).
    let mut slow = TcpStream::connect(s.dns).unwrap();
    slow.write_all(&[0x00]).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t0 = Instant::now();
    assert!(s.serving(), "others are served while one connection stalls");
    let mut buf = [0u8; 16];
    let closed = matches!(slow.read(&mut buf), Ok(0) | Err(_));
    let held = t0.elapsed();
    eprintln!("FIGURES slowloris connection closed by the server after {held:?}");
    assert!(
        closed && held < Duration::from_secs(4),
        "slow connection closed after the idle timeout: {held:?}"
    );
    s.assert_unchanged(&before, "TCP slowloris");
    let q = s.metric("opengslb_dns_queries_total");
    assert!(q > 0.0);
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn gossip_datagrams_and_frames() {
    let s = site("bad-gossip", "127.0.0.52");
    let before = s.state();
    let decrypt0 = s.metric("opengslb_gossip_decrypt_failures_total");
    let malformed0 = s.metric("opengslb_gossip_dropped_total");
    let valid = gossip_header(key_id(), b"OG");
    let with = |mut h: Vec<u8>, tail: &[u8]| {
        h.extend_from_slice(tail);
        h
    };
    // (what, datagram, counted as decrypt failure (true) or malformed)
    let table: Vec<(&str, Vec<u8>, bool)> = vec![
        ("random bytes", noise(300, 11), false),
        ("truncated header", valid[..20].to_vec(), false),
        (
            "wrong magic",
            with(gossip_header(key_id(), b"XX"), &noise(64, 12)),
            false,
        ),
        (
            "header and a 15-byte body (shorter than a tag)",
            with(valid.clone(), &[0; 15]),
            false,
        ),
        (
            "valid header, garbage ciphertext",
            with(valid.clone(), &noise(200, 13)),
            true,
        ),
        (
            "unknown key id, garbage ciphertext",
            with(gossip_header([9; 4], b"OG"), &noise(64, 14)),
            true,
        ),
        (
            "huge datagram (60 KB)",
            with(valid.clone(), &noise(60_000, 15)),
            false,
        ),
    ];
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut want_decrypt = 0.0;
    for (what, bytes, decrypt) in &table {
        sock.send_to(bytes, s.gossip).unwrap();
        if *decrypt {
            want_decrypt += 1.0;
        }
        let d = wait_for(&format!("{what} counted"), Duration::from_secs(5), || {
            let d = s.metric("opengslb_gossip_decrypt_failures_total") - decrypt0;
            (d >= want_decrypt).then_some(d)
        });
        assert_eq!(d, want_decrypt, "{what}: decrypt failures");
        s.assert_unchanged(&before, what);
    }
    let malformed = s.metric("opengslb_gossip_dropped_total") - malformed0;
    eprintln!(
        "FIGURES gossip: {want_decrypt} decrypt failures, {malformed} dropped as malformed/oversized"
    );
    assert!(
        malformed >= 4.0,
        "malformed datagrams are counted: {malformed}"
    );

    // TCP: a frame length beyond the 4 MiB limit, garbage, a half frame.
    for (what, bytes) in [
        (
            "TCP frame length 0xffffffff",
            vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3],
        ),
        (
            "TCP garbage frame",
            with(with(vec![0, 0, 0, 240], &valid), &noise(200, 16)),
        ),
        ("TCP half a frame then close", vec![0, 0, 1, 0, 1, 2, 3]),
    ] {
        let mut t = TcpStream::connect(s.gossip).unwrap();
        let _ = t.write_all(&bytes);
        t.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut buf = [0u8; 64];
        let _ = t.read(&mut buf);
        drop(t);
        s.assert_unchanged(&before, what);
    }
    let (_, body) = http_get(&format!("{}/api/v1/overwatch/agents", s.api)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["agents"].as_array().unwrap().len(),
        1,
        "only the real agent: {body}"
    );
}

#[test]
fn api_requests() {
    let s = site("bad-api", "127.0.0.53");
    let before = s.state();
    let ov = "/api/v1/overwatch/backends/app.gslb.test/127.0.0.53/80/override";
    // (method, path, body, status, text the error must contain)
    let table: Vec<(&str, &str, &str, u16, &str)> = vec![
        ("POST", ov, "{not json", 400, "invalid JSON body"),
        ("POST", ov, "", 400, "a JSON body is required"),
        (
            "POST",
            ov,
            r#"{"healthy": false, "reason": "x", "colour": "red"}"#,
            400,
            "unknown field `colour`",
        ),
        (
            "POST",
            ov,
            r#"{"healthy": "no", "reason": "x"}"#,
            400,
            "invalid type",
        ),
        (
            "POST",
            ov,
            r#"{"healthy": false}"#,
            400,
            "missing field `reason`",
        ),
        (
            "POST",
            ov,
            r#"{"healthy": false, "reason": "   "}"#,
            400,
            "reason must not be empty",
        ),
        (
            "POST",
            ov,
            r#"{"healthy": false, "reason": "x", "expires_in": "soon"}"#,
            400,
            "expires_in",
        ),
        ("POST", ov, "[1,2,3]", 400, "invalid JSON body"),
        (
            "POST",
            "/api/v1/overwatch/backends/app.gslb.test/not-an-ip/80/override",
            r#"{"healthy":false,"reason":"x"}"#,
            400,
            "address",
        ),
        (
            "POST",
            "/api/v1/overwatch/backends/app.gslb.test/999.1.1.1/80/override",
            r#"{"healthy":false,"reason":"x"}"#,
            400,
            "address",
        ),
        (
            "POST",
            "/api/v1/overwatch/backends/app.gslb.test/bad%20host/80/override",
            r#"{"healthy":false,"reason":"x"}"#,
            400,
            "address",
        ),
        (
            "POST",
            "/api/v1/overwatch/backends/app.gslb.test/%00/80/override",
            r#"{"healthy":false,"reason":"x"}"#,
            400,
            "address",
        ),
        (
            "POST",
            "/api/v1/overwatch/backends/app.gslb.test/127.0.0.53/99999/override",
            r#"{"healthy":false,"reason":"x"}"#,
            400,
            "port",
        ),
        (
            "PUT",
            // v1.1's bare address: accepted when the service has one
            // backend there; this one has none.
            "/api/v1/overrides/app.gslb.test/1.2.3.4",
            r#"{"healthy":false,"reason":"x"}"#,
            404,
            "no backend",
        ),
        (
            "PUT",
            "/api/v1/overrides/app.gslb.test/::1:80",
            r#"{"healthy":false,"reason":"x"}"#,
            400,
            "address",
        ),
        (
            "POST",
            "/api/v1/overwatch/agents/web1/revoke",
            "{}",
            400,
            "missing field `reason`",
        ),
        ("GET", "/api/v1/nothing-here", "", 404, "no such endpoint"),
        ("GET", "/../../etc/passwd", "", 404, "no such endpoint"),
        ("PUT", "/api/v1/overwatch/stats", "", 405, "method"),
        ("DELETE", "/api/v1/overwatch/backends", "", 405, "method"),
        ("GET", "/api/v1/domains/no.such.name", "", 404, ""),
    ];
    let mut failures = Vec::new();
    for (method, path, body, code, text) in &table {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (got, reply) = raw_http(&s.api, req.as_bytes());
        let v: serde_json::Value = serde_json::from_str(&reply).unwrap_or_default();
        let err = v["error"].as_str().unwrap_or("");
        if got != *code || v["code"] != *code || !err.to_lowercase().contains(&text.to_lowercase())
        {
            failures.push(format!(
                "{method} {path} {body:?}: got {got} {reply:?}, want {code} containing {text:?}"
            ));
        }
        if s.state() != before {
            failures.push(format!("{method} {path}: state changed"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // A declared body far over the 64 KiB limit is refused before reading.
    let t = Instant::now();
    let (code, reply) = raw_http(
        &s.api,
        format!("POST {ov} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n{{").as_bytes(),
    );
    assert_eq!(code, 413, "{reply}");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "413 without waiting for the body"
    );
    s.assert_unchanged(&before, "huge Content-Length");
    // A body really sent, 200 KB of JSON.
    let big = format!(
        r#"{{"healthy": false, "reason": "{}"}}"#,
        "x".repeat(200_000)
    );
    let (code, reply) = raw_http(
        &s.api,
        format!("POST {ov} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{big}", big.len()).as_bytes(),
    );
    assert_eq!(code, 413, "{reply}");
    // Not HTTP at all.
    let (code, _) = raw_http(&s.api, &noise(2000, 21));
    assert!(
        code == 0 || code == 400,
        "garbage gets 400 or a closed connection: {code}"
    );
    s.assert_unchanged(&before, "garbage instead of HTTP");
    assert!(failures.is_empty(), "{failures:#?}");
}

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
            Err(e) => eprintln!("SKIPPED the unreadable-file row: cannot run as nobody: {e}"),
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
        eprintln!("SKIPPED the unreadable-file row: needs root to run the check as another user");
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
        let reason = wait_for(
            &format!("drain ({what}) seen by the Overwatch"),
            Duration::from_secs(5),
            || ow_drain_reason(&s),
        );
        assert!(ok(&reason), "{what}: Overwatch shows reason {reason:?}");
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
