//! Lost agents as an operator means it (issue 11 item 4, SPEC §4): an
//! agent that cannot be reached is in `lost_agents` of healthz (API and
//! CLI) from the moment it turns stale, long before remove_after, and
//! `status` is `degraded` until it returns; a graceful leave is not lost.

use crate::util::ops::{KEY, Overwatch, OwOptions, SERVICE, agent, cli, cli_json};
use crate::util::*;
use std::time::Duration;

#[test]
fn healthz_lists_a_killed_agent_once_stale_and_clears_when_it_returns() {
    let dir = TempDir::new("ag-lost");
    let ow = Overwatch::start(
        &dir,
        "ow1",
        &OwOptions {
            // Lost long before removal: the listing must not wait for it.
            remove_after: "10m",
            stale_threshold: Some("1s"),
            ..OwOptions::default()
        },
    );
    let web = HttpBackend::start("127.0.0.63");
    let ip = web.addr.ip().to_string();
    let other = HttpBackend::start("127.0.0.72");
    let a = agent(&dir, "lost1", web.addr, &[&ow.gossip], KEY, "app-token");
    let mut b = agent(&dir, "left1", other.addr, &[&ow.gossip], KEY, "app-token");
    ow.wait_in_dns(&ip, true, Duration::from_secs(15));
    ow.wait_in_dns(&other.addr.ip().to_string(), true, Duration::from_secs(15));
    assert_eq!(ow.get_json("/api/v1/healthz")["status"], "ok");

    // A graceful stop is not lost.
    b.daemon.signal(libc::SIGTERM);
    assert_eq!(b.daemon.wait_exit(Duration::from_secs(5)), Some(0));
    wait_for("left1 left", Duration::from_secs(10), || {
        (ow.agent("left1")["status"] == "left").then_some(())
    });

    a.daemon.signal(libc::SIGKILL);
    let h = wait_for("lost1 in healthz", Duration::from_secs(15), || {
        let h = ow.get_json("/api/v1/healthz");
        (h["lost_agents"].as_array()?.len() == 1).then_some(h)
    });
    assert_eq!(h["status"], "degraded", "{h}");
    let l = &h["lost_agents"][0];
    assert_eq!(l["agent_id"], "lost1", "{h}");
    assert_eq!(l["env"], "east", "{h}");
    assert_eq!(l["ip"], "127.0.0.1", "{h}");
    assert_eq!(l["service"], SERVICE, "{h}");
    assert!(l["last_heartbeat"].is_string(), "{h}");
    // Listed while the registry still holds it as stale (not removed).
    assert_eq!(ow.agent("lost1")["status"], "stale");
    let text = cli(&ow.api, &["healthz"]).ok("healthz");
    assert!(text.starts_with("status: degraded\n"), "{text}");
    assert!(text.contains("lost1"), "{text}");
    assert!(!text.contains("left1"), "{text}");
    assert_eq!(
        cli_json(&ow.api, &["healthz"])["lost_agents"][0]["agent_id"],
        "lost1"
    );

    // Restarted with the same identity: no longer lost, and `ok` again
    // once its backend is healthy (`degraded` also means nothing healthy).
    let _again = Daemon::start_file(&dir, "lost1-again", &a.config, "agent");
    let h = wait_for("healthz clears", Duration::from_secs(15), || {
        let h = ow.get_json("/api/v1/healthz");
        (h["status"] == "ok").then_some(h)
    });
    assert_eq!(h["lost_agents"].as_array().map(Vec::len), Some(0), "{h}");
    assert_eq!(ow.agent("lost1")["status"], "active");
}
