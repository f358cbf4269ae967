//! Agents and Overwatch over real gossip on loopback (issue 3): drains,
//! failing checks, SIGKILL, restarts, graceful stop, wrong key, wrong
//! token, certificate pinning, and two Overwatch nodes.

use crate::util::ops::{KEY, OTHER_KEY, Overwatch, OwOptions, agent, agent_yaml};
use crate::util::*;
use std::time::Duration;

fn overwatch(dir: &TempDir, name: &str) -> Overwatch {
    Overwatch::start(dir, name, &OwOptions::default())
}

#[test]
fn drain_file_and_failing_check_take_the_backend_out() {
    let dir = TempDir::new("ag-drain");
    let ow = overwatch(&dir, "ow1");
    let web = HttpBackend::start("127.0.0.21");
    let ip = web.addr.ip().to_string();
    let a = agent(&dir, "web1", web.addr, &[&ow.gossip], KEY, "app-token");
    ow.wait_in_dns(&ip, true, Duration::from_secs(15));
    assert!(
        a.daemon
            .log_text()
            .contains(&format!("registered with overwatch {}", ow.gossip))
    );

    // Drain file: out of DNS while the backend still serves /health.
    std::fs::write(&a.drain_file, "kernel upgrade\n").unwrap();
    ow.wait_in_dns(&ip, false, Duration::from_secs(5));
    assert_eq!(
        http_get(&format!("http://{}/health", web.addr)).unwrap().0,
        200
    );
    let b = ow.backend(&ip);
    assert_eq!(b["effective_status"], "draining");
    assert_eq!(b["drain_reason"], "kernel upgrade");
    assert_eq!(b["status_reason"], "agent_draining");
    std::fs::remove_file(&a.drain_file).unwrap();
    ow.wait_in_dns(&ip, true, Duration::from_secs(5));

    // Drain through the agent's API.
    let (code, body) = http(
        &format!("{}/api/v1/agent/drain", a.api),
        "POST",
        Some(r#"{"reason":"patching"}"#),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    ow.wait_in_dns(&ip, false, Duration::from_secs(5));
    http(&format!("{}/api/v1/agent/drain", a.api), "DELETE", None).unwrap();
    ow.wait_in_dns(&ip, true, Duration::from_secs(5));

    // A failing health check: out after the thresholds, back after recovery.
    web.set_status(503);
    ow.wait_in_dns(&ip, false, Duration::from_secs(5));
    assert_eq!(ow.backend(&ip)["status_reason"], "agent_unhealthy");
    web.set_status(200);
    ow.wait_in_dns(&ip, true, Duration::from_secs(5));

    // Agent metrics move.
    let (_, metrics) = http_get(&format!("{}/metrics", a.api)).unwrap();
    assert!(
        metrics.contains("opengslb_agent_heartbeats_sent_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "opengslb_agent_overwatch_connected{{overwatch=\"{}\"}} 1",
            ow.gossip
        )),
        "{metrics}"
    );
}

#[test]
fn killed_agent_goes_stale_and_restarted_agent_returns() {
    let dir = TempDir::new("ag-kill");
    let ow = overwatch(&dir, "ow1");
    let web = HttpBackend::start("127.0.0.22");
    let ip = web.addr.ip().to_string();
    let a = agent(&dir, "web2", web.addr, &[&ow.gossip], KEY, "app-token");
    ow.wait_in_dns(&ip, true, Duration::from_secs(15));
    a.daemon.signal(libc::SIGKILL);
    let gone = ow.wait_in_dns(&ip, false, Duration::from_secs(10));
    eprintln!("SIGKILL -> out of DNS in {gone:?} (heartbeat 500ms x 3)");
    assert_eq!(ow.backend(&ip)["effective_status"], "stale");
    assert_eq!(ow.agent("web2")["status"], "stale");
    let (_, metrics) = http_get(&format!("{}/metrics", ow.api)).unwrap();
    assert!(
        metrics.contains("opengslb_overwatch_stale_agents 1"),
        "{metrics}"
    );
    // Restarted with the same identity: back by itself.
    let _a2 = Daemon::start_file(&dir, "web2-again", &a.config, "agent");
    ow.wait_in_dns(&ip, true, Duration::from_secs(15));
    assert_eq!(ow.agent("web2")["status"], "active");
}

#[test]
fn graceful_stop_leaves_dns_at_once() {
    let dir = TempDir::new("ag-stop");
    let ow = overwatch(&dir, "ow1");
    let web = HttpBackend::start("127.0.0.23");
    let ip = web.addr.ip().to_string();
    let mut a = agent(&dir, "web3", web.addr, &[&ow.gossip], KEY, "app-token");
    ow.wait_in_dns(&ip, true, Duration::from_secs(15));
    a.daemon.signal(libc::SIGTERM);
    assert_eq!(a.daemon.wait_exit(Duration::from_secs(5)), Some(0));
    // Gone through the leave message, not the stale threshold: the agent
    // is "left", never "stale".
    ow.wait_in_dns(&ip, false, Duration::from_secs(10));
    assert_eq!(ow.agent("web3")["status"], "left");
}

#[test]
fn wrong_key_and_wrong_token_are_refused_and_visible() {
    let dir = TempDir::new("ag-auth");
    let ow = overwatch(&dir, "ow1");
    let web = HttpBackend::start("127.0.0.24");
    let web2 = HttpBackend::start("127.0.0.25");
    let bad_key = agent(
        &dir,
        "badkey",
        web.addr,
        &[&ow.gossip],
        OTHER_KEY,
        "app-token",
    );
    let bad_token = agent(&dir, "badtoken", web2.addr, &[&ow.gossip], KEY, "wrong");
    wait_for("token_invalid listed", Duration::from_secs(10), || {
        let a = ow.agent("badtoken");
        (a["status"] == "rejected" && a["reject_reason"] == "token_invalid").then_some(())
    });
    wait_for("decrypt failures counted", Duration::from_secs(10), || {
        let (_, m) = http_get(&format!("{}/metrics", ow.api))?;
        m.lines()
            .any(|l| l.starts_with("opengslb_gossip_decrypt_failures_total ") && !l.ends_with(" 0"))
            .then_some(())
    });
    assert!(ow.answers().is_empty(), "nothing registered");
    assert_eq!(
        ow.agent("badkey")["id"],
        serde_json::Value::Null,
        "unauthenticated agents never reach the registry"
    );
    wait_for("agent logs the rejection", Duration::from_secs(5), || {
        bad_token
            .daemon
            .log_text()
            .contains("token_invalid")
            .then_some(())
    });
    let (_, m) = http_get(&format!("{}/metrics", ow.api)).unwrap();
    assert!(
        m.lines().any(|l| l
            .starts_with("opengslb_overwatch_agent_auth_failures_total{reason=\"token_invalid\"}")
            && !l.ends_with(" 0")),
        "{m}"
    );
    drop(bad_key);
}

#[test]
fn new_certificate_is_refused_until_the_pin_is_forgotten() {
    let dir = TempDir::new("ag-pin");
    let ow = overwatch(&dir, "ow1");
    let web = HttpBackend::start("127.0.0.26");
    let ip = web.addr.ip().to_string();
    let mut a = agent(&dir, "web6", web.addr, &[&ow.gossip], KEY, "app-token");
    ow.wait_in_dns(&ip, true, Duration::from_secs(15));
    let fp = ow.agent("web6")["fingerprint"].clone();
    assert!(fp.is_string());
    // A reinstalled host: both certificate and key are gone.
    a.daemon.signal(libc::SIGTERM);
    a.daemon.wait_exit(Duration::from_secs(5));
    std::fs::remove_file(dir.path().join("web6.crt")).unwrap();
    std::fs::remove_file(dir.path().join("web6.key")).unwrap();
    let _b = Daemon::start_file(&dir, "web6-new", &a.config, "agent");
    wait_for("pin_mismatch listed", Duration::from_secs(10), || {
        (ow.agent("web6")["reject_reason"] == "pin_mismatch").then_some(())
    });
    let (code, body) = http(
        &format!("{}/api/v1/overwatch/agents/web6", ow.api),
        "DELETE",
        None,
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    ow.wait_in_dns(&ip, true, Duration::from_secs(15));
    assert_ne!(
        ow.agent("web6")["fingerprint"],
        fp,
        "the new certificate is pinned"
    );
}

#[test]
fn two_overwatches_are_independent() {
    let dir = TempDir::new("ag-two");
    let ow1 = overwatch(&dir, "ow1");
    let mut ow2 = overwatch(&dir, "ow2");
    let web = HttpBackend::start("127.0.0.27");
    let ip = web.addr.ip().to_string();
    let _a = agent(
        &dir,
        "web7",
        web.addr,
        &[&ow1.gossip, &ow2.gossip],
        KEY,
        "app-token",
    );
    ow1.wait_in_dns(&ip, true, Duration::from_secs(15));
    ow2.wait_in_dns(&ip, true, Duration::from_secs(15));
    ow2.daemon.kill();
    // ow1 keeps serving through a few stale thresholds.
    for _ in 0..8 {
        assert!(ow1.answers().contains(&ip));
        std::thread::sleep(Duration::from_millis(250));
    }
    ow2.spawn_again(&dir);
    ow2.wait_in_dns(&ip, true, Duration::from_secs(20));
    assert!(ow1.answers().contains(&ip));
}

/// Rewrites a config file in place (keeps its 0600 mode).
fn rewrite(path: &std::path::Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from} not in {}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

#[test]
fn gossip_key_rotation_without_a_flag_day() {
    let dir = TempDir::new("ag-rotate");
    let ow = overwatch(&dir, "ow1");
    let web = HttpBackend::start("127.0.0.28");
    let ip = web.addr.ip().to_string();
    let a = agent(&dir, "web8", web.addr, &[&ow.gossip], KEY, "app-token");
    ow.wait_in_dns(&ip, true, Duration::from_secs(15));
    let steady = |what: &str| {
        // Across a few heartbeat windows the agent stays active and served.
        for _ in 0..12 {
            assert_eq!(ow.agent("web8")["status"], "active", "{what}");
            assert!(ow.answers().contains(&ip), "{what}");
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    let old = format!("encryption_key: \"{KEY}\"");
    // 1. Every Overwatch accepts the new key too.
    rewrite(
        &ow.daemon.config,
        &old,
        &format!("encryption_key: \"{KEY}\", encryption_keys: [\"{OTHER_KEY}\"]"),
    );
    ow.daemon.signal(libc::SIGHUP);
    steady("new key accepted");
    // 2. Agents send with the new key, still accepting the old.
    rewrite(
        &a.config,
        &old,
        &format!("encryption_key: \"{OTHER_KEY}\"\n    encryption_keys: [\"{KEY}\"]"),
    );
    a.daemon.signal(libc::SIGHUP);
    steady("agent on the new key");
    // 3. Overwatch makes it primary and drops the old one; agents too.
    rewrite(
        &ow.daemon.config,
        &format!("encryption_key: \"{KEY}\", encryption_keys: [\"{OTHER_KEY}\"]"),
        &format!("encryption_key: \"{OTHER_KEY}\""),
    );
    ow.daemon.signal(libc::SIGHUP);
    steady("old key removed on the Overwatch");
    rewrite(
        &a.config,
        &format!("\n    encryption_keys: [\"{KEY}\"]"),
        "",
    );
    a.daemon.signal(libc::SIGHUP);
    steady("old key removed everywhere");
    assert!(
        !ow.daemon.log_text().contains("rejected"),
        "{}",
        ow.daemon.log_text()
    );
}

#[test]
fn predictive_memory_signal_drains_and_lifts_after_bleed() {
    let dir = TempDir::new("ag-pred");
    let ow = overwatch(&dir, "ow1");
    let web = HttpBackend::start("127.0.0.29");
    let ip = web.addr.ip().to_string();
    let api_port = free_port("127.0.0.1");
    // Any machine uses more than 1 % of its memory: the signal fires. CPU is
    // kept out of it (threshold 100 %): a busy CI machine is above 90 %.
    let yaml = agent_yaml(&dir, "web9", web.addr, &[&ow.gossip], KEY, "app-token", api_port).replace(
        "  drain_file:",
        "  predictive:\n    enabled: true\n    check_interval: 200ms\n    cpu: { threshold: 1.0 }\n    memory: { threshold: 0.01, bleed_duration: 1s }\n  drain_file:",
    );
    let a = Daemon::start(&dir, "web9", &yaml, "agent");
    wait_for(
        "predictive drain visible on the Overwatch",
        Duration::from_secs(15),
        || {
            let b = ow.backend(&ip);
            (b["effective_status"] == "draining").then_some(b)
        },
    );
    let b = ow.backend(&ip);
    assert!(
        b["drain_reason"].as_str().unwrap_or("").contains("memory"),
        "{b}"
    );
    assert!(!ow.answers().contains(&ip));
    // Raise the threshold: the drain lifts after the bleed duration.
    rewrite(&a.config, "threshold: 0.01", "threshold: 0.9999");
    a.signal(libc::SIGHUP);
    ow.wait_in_dns(&ip, true, Duration::from_secs(10));
}
