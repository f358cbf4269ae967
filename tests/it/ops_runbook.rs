//! The agent-disconnect runbook, walked step by step with nothing but the
//! `opengslb-cli` binary (and a shell `grep`, as the runbook writes it)
//! against two real Overwatch nodes and real agents: find the stale
//! backend, read the counts, list agents and their errors (wrong token,
//! reinstalled host), forget a pin, take an address out of DNS with an
//! override and bring it back, see lost agents in healthz, read the
//! current answers. Every command also parses with `--json`.

use crate::util::ops::*;
use crate::util::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

/// `opengslb-cli --api API ARGS | grep PATTERN`, through a real shell
/// pipe; the lines grep printed.
fn cli_grep(api: &str, args: &str, pattern: &str) -> String {
    let script = format!("\"$CLI\" --api \"$API\" {args} | grep {pattern}");
    let out = Command::new("sh")
        .args(["-c", &script])
        .env("CLI", CLI)
        .env("API", api)
        .output()
        .expect("sh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The table row (whitespace-split cells) whose first cell is `first`.
fn row(table: &str, first: &str) -> Option<Vec<String>> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|cells| cells.first().map(String::as_str) == Some(first))
}

/// The value of a `key:   value` line.
fn kv<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

fn is_plain_time(s: &str) -> bool {
    // YYYY-MM-DD HH:MM:SS
    let b = s.as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn agent_disconnect_runbook_with_the_cli() {
    let dir = TempDir::new("ops-runbook");
    // ow1 keeps stale agents for 30 s; ow2 drops them after 2 s (lost).
    let ow1 = Overwatch::start(&dir, "ow1", &OwOptions::default());
    let ow2 = Overwatch::start(
        &dir,
        "ow2",
        &OwOptions {
            remove_after: "2s",
            ..OwOptions::default()
        },
    );
    let nodes = [ow1.gossip.as_str(), ow2.gossip.as_str()];
    let web1 = HttpBackend::start("127.0.0.101");
    let web2 = HttpBackend::start("127.0.0.102");
    let ip1 = web1.addr.ip().to_string();
    let ip2 = web2.addr.ip().to_string();
    let rb1 = agent(&dir, "rb1", web1.addr, &nodes, KEY, "app-token");
    let _rb2 = agent(&dir, "rb2", web2.addr, &nodes, KEY, "app-token");
    for ow in [&ow1, &ow2] {
        ow.wait_in_dns(&ip1, true, Duration::from_secs(15));
        ow.wait_in_dns(&ip2, true, Duration::from_secs(15));
    }
    let api = ow1.api.as_str();
    assert_eq!(cli_grep(api, "servers", "stale"), "", "nothing stale yet");

    // 1. The agent dies: `servers | grep stale` names its backend.
    rb1.daemon.signal(libc::SIGKILL);
    let line = wait_for("servers | grep stale", Duration::from_secs(10), || {
        let out = cli_grep(api, "servers", "stale");
        (!out.is_empty()).then_some(out)
    });
    assert_eq!(line.lines().count(), 1, "{line}");
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cells[0], SERVICE, "{line}");
    assert_eq!(cells[1], ip1, "{line}");
    assert_eq!(cells[2], web1.addr.port().to_string(), "{line}");
    assert!(cells.contains(&"stale") && cells.contains(&"rb1"), "{line}");
    assert!(
        !ow1.answers().contains(&ip1),
        "a stale backend is out of DNS"
    );
    let filtered = cli(api, &["servers", "--status", "stale"]).ok("servers --status stale");
    assert!(
        row(&filtered, SERVICE).is_some_and(|r| r[1] == ip1),
        "{filtered}"
    );

    // 2. `status` counts it.
    let status = cli(api, &["status"]).ok("status");
    assert_eq!(kv(&status, "stale_backends"), Some("1"), "{status}");
    assert_eq!(kv(&status, "stale_agents"), Some("1"), "{status}");
    assert_eq!(kv(&status, "healthy_backends"), Some("1"), "{status}");
    let s = cli_json(api, &["status"]);
    assert_eq!(
        (s["stale_backends"].as_u64(), s["active_agents"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );

    // 3. `agents` lists it with its status; a wrong token shows why.
    let _bad = agent(
        &dir,
        "rbbad",
        HttpBackend::start("127.0.0.103").addr,
        &nodes,
        KEY,
        "not-the-token",
    );
    let agents = wait_for("token_invalid in `agents`", Duration::from_secs(10), || {
        let out = cli(api, &["agents"]).ok("agents");
        row(&out, "rbbad")
            .is_some_and(|r| r.contains(&"token_invalid".to_string()))
            .then_some(out)
    });
    let header = row(&agents, "ID").expect("header");
    assert_eq!(header[..3], ["ID", "REGION", "STATUS"], "{agents}");
    assert_eq!(
        row(&agents, "rb1").map(|r| r[2].clone()),
        Some("stale".into()),
        "{agents}"
    );
    assert_eq!(
        row(&agents, "rb2").map(|r| r[2].clone()),
        Some("active".into()),
        "{agents}"
    );
    assert_eq!(
        row(&agents, "rbbad").map(|r| r[2].clone()),
        Some("rejected".into()),
        "{agents}"
    );

    // 4. On ow2 the agent passed remove_after: healthz lists it as lost.
    let healthz = wait_for("lost agent in healthz", Duration::from_secs(10), || {
        let out = cli(&ow2.api, &["healthz"]).ok("healthz");
        row(&out, "rb1").map(|r| (out, r))
    });
    let (text, lost) = healthz;
    assert!(text.starts_with("status: degraded\n"), "{text}");
    assert!(
        row(&text, "AGENT_ID").is_some(),
        "lost agents table: {text}"
    );
    assert_eq!(lost[1], "east", "env is the region: {text}");
    assert_eq!(lost[2], "127.0.0.1", "ip the agent sent from: {text}");
    assert_eq!(lost[3], SERVICE, "{text}");
    assert!(
        is_plain_time(&format!("{} {}", lost[4], lost[5])),
        "last_heartbeat YYYY-MM-DD HH:MM:SS: {text}"
    );
    let h = cli_json(&ow2.api, &["healthz"]);
    assert_eq!(h["status"], "degraded");
    let l = &h["lost_agents"][0];
    assert_eq!(
        (
            l["agent_id"].as_str(),
            l["env"].as_str(),
            l["service"].as_str()
        ),
        (Some("rb1"), Some("east"), Some(SERVICE)),
        "{h}"
    );
    assert!(
        l["last_heartbeat"].as_str().is_some_and(is_plain_time),
        "{h}"
    );
    assert!(!ow2.answers().contains(&ip1));

    // 5. The host was reinstalled (new key): pin_mismatch until forgotten.
    std::fs::remove_file(&rb1.cert).unwrap();
    std::fs::remove_file(&rb1.key).unwrap();
    let _rb1_new = Daemon::start_file(&dir, "rb1-reinstalled", &rb1.config, "agent");
    for ow in [&ow1, &ow2] {
        wait_for("pin_mismatch in `agents`", Duration::from_secs(10), || {
            let out = cli(&ow.api, &["agents"]).ok("agents");
            row(&out, "rb1")
                .is_some_and(|r| r.contains(&"pin_mismatch".to_string()))
                .then_some(())
        });
        assert!(
            !ow.answers().contains(&ip1),
            "a refused agent's backend stays out"
        );
    }
    let forgot = cli(api, &["agents", "forget", "rb1"]).ok("agents forget");
    assert!(forgot.contains("rb1"), "{forgot}");
    let forgot2 = cli_json(&ow2.api, &["agents", "forget", "rb1"]);
    assert!(forgot2.is_object(), "{forgot2}");
    for ow in [&ow1, &ow2] {
        ow.wait_in_dns(&ip1, true, Duration::from_secs(15));
        let out = cli(&ow.api, &["agents"]).ok("agents");
        assert_eq!(
            row(&out, "rb1").map(|r| r[2].clone()),
            Some("active".into()),
            "{out}"
        );
    }
    assert_eq!(
        cli_grep(api, "servers", "stale"),
        "",
        "nothing stale after the return"
    );
    let h = cli_json(&ow2.api, &["healthz"]);
    assert_eq!(h["status"], "ok", "the lost agent came back: {h}");
    assert_eq!(h["lost_agents"].as_array().map(Vec::len), Some(0), "{h}");

    // 6. An override takes an address out of DNS at once, and back.
    let target = format!("{ip2}:{}", web2.addr.port());
    cli(
        api,
        &[
            "overrides",
            "set",
            SERVICE,
            &target,
            "--healthy=false",
            "--reason",
            "runbook: bad deploy",
        ],
    )
    .ok("overrides set");
    assert!(
        !ow1.answers().contains(&ip2),
        "out of DNS as soon as the command returns"
    );
    assert!(ow1.answers().contains(&ip1));
    let list = cli(api, &["overrides", "list"]).ok("overrides list");
    let r = row(&list, SERVICE).unwrap_or_else(|| panic!("{list}"));
    assert_eq!(
        (r[1].as_str(), r[3].as_str()),
        (ip2.as_str(), "false"),
        "{list}"
    );
    assert!(
        list.contains("runbook: bad deploy") && list.contains("ops-test"),
        "reason and by: {list}"
    );
    let servers = cli(api, &["servers"]).ok("servers");
    assert!(
        servers
            .lines()
            .any(|l| l.contains(&ip2) && l.contains("unhealthy") && l.contains("override")),
        "{servers}"
    );
    let o = cli_json(api, &["overrides", "list"]);
    assert_eq!(o["overrides"][0]["reason"], "runbook: bad deploy", "{o}");
    assert_eq!(o["overrides"][0]["by"], "ops-test", "{o}");
    cli(api, &["overrides", "clear", SERVICE, &target]).ok("overrides clear");
    assert!(
        ow1.answers().contains(&ip2),
        "back in DNS as soon as the command returns"
    );
    assert_eq!(
        cli_json(api, &["overrides", "list"])["overrides"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );

    // 7. `domains` shows the current answers.
    let domains = cli(api, &["domains"]).ok("domains");
    let d = row(&domains, SERVICE).unwrap_or_else(|| panic!("{domains}"));
    assert_eq!(d[1], "round-robin", "{domains}");
    let mut shown: Vec<&str> = d[3].split(',').collect();
    shown.sort();
    let mut want = vec![ip1.as_str(), ip2.as_str()];
    want.sort();
    assert_eq!(shown, want, "{domains}");
    let dj = cli_json(api, &["domains"]);
    assert_eq!(dj["domains"][0]["name"], SERVICE, "{dj}");
    assert_eq!(
        dj["domains"][0]["answers"].as_array().map(Vec::len),
        Some(2),
        "{dj}"
    );
    let one = cli_json(api, &["domains", SERVICE]);
    assert!(one.is_object(), "{one}");

    // 8. Every other runbook command also speaks JSON.
    for args in [
        vec!["servers"],
        vec!["servers", "list", "--service", SERVICE],
        vec!["agents"],
        vec!["agents", "show", "rb1"],
        vec![
            "overrides",
            "set",
            SERVICE,
            target.as_str(),
            "--healthy=true",
            "--reason",
            "json",
            "--expires",
            "1h",
        ],
        vec!["overrides", "clear", SERVICE, target.as_str()],
        vec![
            "agents",
            "revoke",
            "retired-host",
            "--reason",
            "decommissioned",
        ],
        vec!["healthz"],
        vec!["status"],
    ] {
        let v: Value = cli_json(api, &args);
        // The lists print a bare array (the v1.1 shape); the rest objects.
        let list = matches!(args.as_slice(), ["servers", ..] | ["agents"]);
        assert!(
            if list { v.is_array() } else { v.is_object() },
            "{args:?}: {v}"
        );
    }
    // `servers --json` prints the bare array (the v1.1 shape).
    let servers = cli_json(api, &["servers"]);
    assert_eq!(servers.as_array().map(Vec::len), Some(2), "{servers}");
    let audit = ow1.get_json("/api/v1/audit-logs");
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in [
        "forget_agent",
        "set_override",
        "clear_override",
        "revoke_agent",
    ] {
        assert!(actions.contains(&a), "{a} audited: {actions:?}");
    }
}
