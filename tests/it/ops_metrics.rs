//! Every SPEC §9 metric, scraped from a live Overwatch and a live agent:
//! the text passes `promtool check metrics`, and each series moves when
//! the event it counts happens.

use crate::util::ops::*;
use crate::util::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn agent_metrics(a: &Agent) -> String {
    let (code, body) = http_get(&format!("{}/metrics", a.api)).unwrap_or_default();
    assert_eq!(code, 200, "{body}");
    body
}

#[test]
fn overwatch_and_agent_metrics_are_valid_and_live() {
    let dir = TempDir::new("ops-metrics");
    let stat = HttpBackend::start("127.0.0.91");
    let web = HttpBackend::start("127.0.0.92");
    let opts = OwOptions {
        validation: true,
        static_servers: vec![stat.addr],
        ..OwOptions::default()
    };
    let mut ow = Overwatch::start(&dir, "ow", &opts);
    let m = || ow.metrics();
    let reg = "opengslb_overwatch_agents_registered";

    // Before any agent.
    let first = m();
    assert_eq!(sample(&first, reg), Some(0.0), "{first}");
    assert_eq!(sample(&first, "opengslb_overwatch_stale_agents"), Some(0.0));
    assert_eq!(
        sample(
            &first,
            &format!("opengslb_build_info{{version=\"{}\"}}", opengslb::VERSION)
        ),
        Some(1.0),
        "{first}"
    );

    let a = agent(&dir, "m1", web.addr, &[&ow.gossip], KEY, "app-token");
    wait_sample("agent registered", m, reg, |v| v == 1.0);
    let text = m();
    let not_after = sample(
        &text,
        r#"opengslb_overwatch_agent_cert_not_after_seconds{agent_id="m1"}"#,
    )
    .expect("cert expiry series");
    assert!(
        not_after > now_secs() + 86_400.0,
        "certificate expiry in the future: {not_after}"
    );
    let hb = sample(&text, "opengslb_overwatch_heartbeats_received_total").unwrap();
    wait_sample(
        "heartbeats counted",
        m,
        "opengslb_overwatch_heartbeats_received_total",
        |v| v >= hb + 2.0,
    );
    wait_sample(
        "both backends healthy",
        m,
        r#"opengslb_overwatch_backends{status="healthy"}"#,
        |v| v == 2.0,
    );

    // Validation of the static server: successes, then failures.
    let ok = wait_sample(
        "validation success",
        m,
        r#"opengslb_overwatch_validation_checks_total{result="success"}"#,
        |v| v > 0.0,
    );
    wait_sample(
        "more validation success",
        m,
        r#"opengslb_overwatch_validation_checks_total{result="success"}"#,
        |v| v > ok,
    );
    stat.set_status(503);
    wait_sample(
        "validation failure",
        m,
        r#"opengslb_overwatch_validation_checks_total{result="failure"}"#,
        |v| v > 0.0,
    );
    wait_sample(
        "static server unhealthy",
        m,
        r#"opengslb_overwatch_backends{status="unhealthy"}"#,
        |v| v == 1.0,
    );
    stat.set_status(200);
    wait_sample(
        "static server healthy again",
        m,
        r#"opengslb_overwatch_backends{status="healthy"}"#,
        |v| v == 2.0,
    );

    // Drain file: the backend counts as draining on both sides.
    std::fs::write(&a.drain_file, "maintenance\n").unwrap();
    wait_sample(
        "draining backend",
        m,
        r#"opengslb_overwatch_backends{status="draining"}"#,
        |v| v == 1.0,
    );
    wait_sample(
        "agent draining",
        || agent_metrics(&a),
        "opengslb_agent_draining",
        |v| v == 1.0,
    );
    std::fs::remove_file(&a.drain_file).unwrap();
    wait_sample(
        "drain over",
        m,
        r#"opengslb_overwatch_backends{status="draining"}"#,
        |v| v == 0.0,
    );
    wait_sample(
        "agent not draining",
        || agent_metrics(&a),
        "opengslb_agent_draining",
        |v| v == 0.0,
    );

    // Overrides.
    assert_eq!(
        sample(&m(), "opengslb_overwatch_overrides_active"),
        Some(0.0)
    );
    let target = format!("{}:{}", web.addr.ip(), web.addr.port());
    cli(
        &ow.api,
        &[
            "overrides",
            "set",
            SERVICE,
            &target,
            "--healthy=false",
            "--reason",
            "metrics test",
        ],
    )
    .ok("overrides set");
    assert_eq!(
        sample(&m(), "opengslb_overwatch_overrides_active"),
        Some(1.0)
    );
    cli(&ow.api, &["overrides", "clear", SERVICE, &target]).ok("overrides clear");
    assert_eq!(
        sample(&m(), "opengslb_overwatch_overrides_active"),
        Some(0.0)
    );

    // DNS queries and answers.
    let q = r#"opengslb_dns_queries_total{qtype="A",rcode="NOERROR"}"#;
    let answers = format!(r#"opengslb_dns_answers_total{{domain="{SERVICE}"}}"#);
    let before = m();
    let (q0, a0) = (
        sample(&before, q).unwrap_or(0.0),
        sample(&before, &answers).unwrap_or(0.0),
    );
    ow.wait_in_dns(&web.addr.ip().to_string(), true, Duration::from_secs(10));
    let after = m();
    assert!(sample(&after, q).unwrap() > q0, "{after}");
    assert!(sample(&after, &answers).unwrap() > a0, "{after}");

    // Reloads: a good file, then a bad one (the old config keeps serving).
    let good = std::fs::read_to_string(&ow.config).unwrap();
    ow.daemon.signal(libc::SIGHUP);
    wait_sample(
        "good reload",
        m,
        r#"opengslb_config_reloads_total{result="success"}"#,
        |v| v == 1.0,
    );
    std::fs::write(&ow.config, format!("{good}\nnot_a_key: [\n")).unwrap();
    ow.daemon.signal(libc::SIGHUP);
    wait_sample(
        "bad reload",
        m,
        r#"opengslb_config_reloads_total{result="failure"}"#,
        |v| v == 1.0,
    );
    assert_eq!(
        sample(&m(), r#"opengslb_config_reloads_total{result="success"}"#),
        Some(1.0)
    );
    std::fs::write(&ow.config, &good).unwrap();
    ow.wait_in_dns(&web.addr.ip().to_string(), true, Duration::from_secs(5));

    // A wrong token and a wrong key are counted.
    let bad_token_web = HttpBackend::start("127.0.0.93");
    let bad_key_web = HttpBackend::start("127.0.0.94");
    let _bt = agent(
        &dir,
        "badtoken",
        bad_token_web.addr,
        &[&ow.gossip],
        KEY,
        "wrong-token",
    );
    let _bk = agent(
        &dir,
        "badkey",
        bad_key_web.addr,
        &[&ow.gossip],
        OTHER_KEY,
        "app-token",
    );
    wait_sample(
        "token_invalid",
        m,
        r#"opengslb_overwatch_agent_auth_failures_total{reason="token_invalid"}"#,
        |v| v > 0.0,
    );
    wait_sample(
        "decrypt failures",
        m,
        "opengslb_gossip_decrypt_failures_total",
        |v| v > 0.0,
    );
    assert_eq!(
        sample(&m(), reg),
        Some(1.0),
        "rejected agents are not registered"
    );

    // The Overwatch's whole output passes promtool.
    promtool_check(
        "ops_metrics::overwatch_and_agent_metrics_are_valid_and_live",
        &m(),
    );

    // The agent's own metrics.
    let am = agent_metrics(&a);
    let sent = sample(&am, "opengslb_agent_heartbeats_sent_total").expect("heartbeats_sent");
    wait_sample(
        "heartbeats sent",
        || agent_metrics(&a),
        "opengslb_agent_heartbeats_sent_total",
        |v| v >= sent + 2.0,
    );
    let connected = format!(
        r#"opengslb_agent_overwatch_connected{{overwatch="{}"}}"#,
        ow.gossip
    );
    assert_eq!(sample(&am, &connected), Some(1.0), "{am}");
    let healthy =
        format!(r#"opengslb_agent_backend_healthy{{service="{SERVICE}",address="{target}"}}"#);
    assert_eq!(sample(&am, &healthy), Some(1.0), "{am}");
    let cert = sample(&am, "opengslb_agent_cert_not_after_seconds").expect("agent cert expiry");
    assert_eq!(
        cert, not_after,
        "agent and Overwatch agree on the certificate"
    );
    // An ack slower than one interval on a loaded machine counts too, so
    // the baseline is read rather than assumed to be 0.
    let fails0 =
        sample(&am, "opengslb_agent_heartbeat_failures_total").expect("heartbeat_failures");
    web.set_status(503);
    wait_sample(
        "backend unhealthy",
        || agent_metrics(&a),
        &healthy,
        |v| v == 0.0,
    );
    web.set_status(200);
    wait_sample(
        "backend healthy",
        || agent_metrics(&a),
        &healthy,
        |v| v == 1.0,
    );
    promtool_check(
        "ops_metrics::overwatch_and_agent_metrics_are_valid_and_live",
        &agent_metrics(&a),
    );

    // A SIGKILLed agent goes stale.
    let other_web = HttpBackend::start("127.0.0.95");
    let other = agent(&dir, "m2", other_web.addr, &[&ow.gossip], KEY, "app-token");
    wait_sample("second agent", m, reg, |v| v == 2.0);
    other.daemon.signal(libc::SIGKILL);
    wait_sample("stale agent", m, "opengslb_overwatch_stale_agents", |v| {
        v == 1.0
    });
    assert_eq!(
        sample(&m(), reg),
        Some(2.0),
        "a stale agent is still registered"
    );
    // With validation on, the stale agent's backend is decided by the
    // Overwatch's own check (SPEC §4 rule 5), so it is not counted stale.
    wait_sample(
        "stale backend validated",
        m,
        r#"opengslb_overwatch_backends{status="stale"}"#,
        |v| v == 0.0,
    );

    // The Overwatch goes away: the agent counts failures and disconnects.
    ow.daemon.signal(libc::SIGKILL);
    ow.daemon.wait_exit(Duration::from_secs(5));
    wait_sample(
        "heartbeat failures",
        || agent_metrics(&a),
        "opengslb_agent_heartbeat_failures_total",
        |v| v > fails0,
    );
    wait_sample(
        "disconnected",
        || agent_metrics(&a),
        &connected,
        |v| v == 0.0,
    );
    promtool_check(
        "ops_metrics::overwatch_and_agent_metrics_are_valid_and_live",
        &agent_metrics(&a),
    );
}

/// An agent past `overwatch.stale.remove_after` leaves the gauges: it is
/// no longer registered nor stale, and its certificate series goes away.
#[test]
fn removed_agents_leave_the_gauges() {
    let dir = TempDir::new("ops-metrics-rm");
    let ow = Overwatch::start(
        &dir,
        "ow",
        &OwOptions {
            remove_after: "4s",
            ..OwOptions::default()
        },
    );
    let m = || ow.metrics();
    let web = HttpBackend::start("127.0.0.96");
    let a = agent(&dir, "rm1", web.addr, &[&ow.gossip], KEY, "app-token");
    let reg = "opengslb_overwatch_agents_registered";
    let cert = r#"opengslb_overwatch_agent_cert_not_after_seconds{agent_id="rm1"}"#;
    wait_sample("registered", m, reg, |v| v == 1.0);
    assert!(sample(&m(), cert).is_some());
    a.daemon.signal(libc::SIGKILL);
    wait_sample("stale", m, "opengslb_overwatch_stale_agents", |v| v == 1.0);
    wait_sample(
        "stale backend",
        m,
        r#"opengslb_overwatch_backends{status="stale"}"#,
        |v| v == 1.0,
    );
    wait_sample("removed", m, reg, |v| v == 0.0);
    let text = m();
    assert_eq!(
        sample(&text, "opengslb_overwatch_stale_agents"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(sample(&text, cert), None, "{text}");
    assert_eq!(
        sample(&text, r#"opengslb_overwatch_backends{status="stale"}"#),
        Some(0.0),
        "{text}"
    );
    promtool_check("ops_metrics::removed_agents_leave_the_gauges", &text);
}
