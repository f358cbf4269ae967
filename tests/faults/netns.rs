//! Fault injection across real hosts (issue 6): every Overwatch, agent and
//! HTTP backend runs in its own network namespace, joined by a bridge in a
//! "core" namespace that this test creates and deletes. Faults are cut
//! links and random loss (iptables inside the agent's namespace), process
//! restarts, gossip key rotation and certificate rotation; every outcome
//! is read from DNS answers and the API, from a client namespace.
//!
//! Needs root and iproute2/iptables/python3; otherwise each test prints
//! `SKIPPED: <test>: <what is missing>` and returns. All traffic stays
//! inside the namespaces (10.77.0.0/24 exists only there).

mod net;
mod site;

use crate::util::wait_for;
use net::can_run;
use opengslb::gossip::identity::{self, Identity};
use site::{Monitor, Site, agent_yaml, assert_never, get, ow_yaml};
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const K1: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
const K2: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const NAME: &str = "app.gslb.test";

#[test]
fn agent_cut_off_from_one_overwatch() {
    if !can_run("netns::agent_cut_off_from_one_overwatch") {
        return;
    }
    let site = Site::new("nf-cut", 2, 3);
    site.wait_all_in_dns(Duration::from_secs(20));
    let (ow1, ag1) = (site.net.ip("ow1"), site.net.ip("ag1"));
    let t = Instant::now();
    site.net
        .iptables("ag1", &["-A", "OUTPUT", "-d", &ow1, "-j", "DROP"]);
    site.net
        .iptables("ag1", &["-A", "INPUT", "-s", &ow1, "-j", "DROP"]);
    site.wait_dns("ow1", &ag1, false, Duration::from_secs(10));
    let gone = t.elapsed();
    assert_eq!(site.agent_status("ow1", "ag1")["status"], "stale");
    assert_eq!(site.agent_status("ow2", "ag1")["status"], "active");
    for _ in 0..10 {
        assert!(site.answers("ow2").contains(&ag1), "ow2 keeps serving ag1");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, m) = get(&format!("{}/metrics", site.api("ow1"))).unwrap();
    assert!(m.contains("opengslb_overwatch_stale_agents 1"), "{m}");
    let t = Instant::now();
    site.net
        .iptables("ag1", &["-D", "OUTPUT", "-d", &ow1, "-j", "DROP"]);
    site.net
        .iptables("ag1", &["-D", "INPUT", "-s", &ow1, "-j", "DROP"]);
    site.wait_dns("ow1", &ag1, true, Duration::from_secs(15));
    let back = t.elapsed();
    assert_eq!(site.agent_status("ow1", "ag1")["status"], "active");
    assert!(site.answers("ow2").contains(&ag1));
    eprintln!("FIGURES cut-off: out of ow1's DNS after {gone:?}; back after restore in {back:?}");
}

#[test]
fn ten_percent_loss_never_flaps_to_stale() {
    if !can_run("netns::ten_percent_loss_never_flaps_to_stale") {
        return;
    }
    let site = Site::new("nf-loss", 2, 3);
    site.wait_all_in_dns(Duration::from_secs(20));
    for dir in ["OUTPUT", "INPUT"] {
        site.net.iptables(
            "ag1",
            &[
                "-A",
                dir,
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                "0.1",
                "-j",
                "DROP",
            ],
        );
    }
    let mon = Monitor::start(&site);
    std::thread::sleep(Duration::from_secs(60));
    let seen = mon.finish();
    let polls = seen.polls;
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            site.net.ns("ag1"),
            "iptables",
            "-w",
            "-L",
            "-v",
            "-n",
            "-x",
        ])
        .output()
        .unwrap();
    let dropped: u64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("statistic"))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    eprintln!(
        "FIGURES loss: {polls} polls over 60 s, {dropped} packets dropped on ag1's link, max API latency {:?}, statuses {:?}",
        seen.max_latency, seen.counts
    );
    assert!(polls > 300, "the monitor polled: {polls}");
    assert!(dropped > 0, "the loss rule dropped something");
    assert_never(&seen, "stale");
    for ow in ["ow1", "ow2"] {
        assert_eq!(site.agent_status(ow, "ag1")["status"], "active");
    }
}

#[test]
fn restarted_overwatch_keeps_overrides_pins_and_revocations() {
    if !can_run("netns::restarted_overwatch_keeps_overrides_pins_and_revocations") {
        return;
    }
    let mut site = Site::new("nf-restart", 2, 3);
    site.wait_all_in_dns(Duration::from_secs(20));
    let api = site.api("ow1");
    let ag2 = site.net.ip("ag2");
    let (code, body) = crate::util::http(
        &format!("{api}/api/v1/overwatch/backends/{NAME}/{ag2}/8080/override"),
        "POST",
        Some(r#"{"healthy": false, "reason": "fault test"}"#),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let (code, body) = crate::util::http(
        &format!("{api}/api/v1/overwatch/agents/ag3/revoke"),
        "POST",
        Some(r#"{"reason":"fault test"}"#),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    site.wait_dns("ow1", &ag2, false, Duration::from_secs(5));
    site.wait_dns("ow1", &site.net.ip("ag3"), false, Duration::from_secs(5));
    let pins: Vec<serde_json::Value> = ["ag1", "ag2", "ag3"]
        .iter()
        .map(|a| site.agent_status("ow1", a)["fingerprint"].clone())
        .collect();
    assert!(pins.iter().all(|p| p.is_string()), "{pins:?}");

    let code = site.ows.get_mut("ow1").unwrap().stop();
    assert_eq!(code, Some(0));
    let t = Instant::now();
    site.start_ow("ow1", (K1, &[]));
    wait_for("ow1 ready again", Duration::from_secs(15), || {
        get(&format!("{api}/api/v1/ready")).filter(|(c, _)| *c == 200)
    });
    site.wait_dns("ow1", &site.net.ip("ag1"), true, Duration::from_secs(20));
    let rejoin = t.elapsed();
    let (_, o) = get(&format!("{api}/api/v1/overrides")).unwrap();
    assert!(
        o.contains(&ag2) && o.contains("fault test"),
        "override kept: {o}"
    );
    wait_for("ag2 active again", Duration::from_secs(15), || {
        (site.agent_status("ow1", "ag2")["status"] == "active").then_some(())
    });
    for (a, pin) in ["ag1", "ag2", "ag3"].iter().zip(&pins) {
        wait_for(
            &format!("pin of {a} listed"),
            Duration::from_secs(10),
            || {
                site.agent_status("ow1", a)["fingerprint"]
                    .is_string()
                    .then_some(())
            },
        );
        assert_eq!(
            &site.agent_status("ow1", a)["fingerprint"],
            pin,
            "pin of {a} kept"
        );
    }
    wait_for("ag3 still revoked", Duration::from_secs(15), || {
        let v = site.agent_status("ow1", "ag3");
        (v["status"] == "rejected" && v["reject_reason"] == "revoked").then_some(())
    });
    let a = site.answers("ow1");
    assert_eq!(
        a,
        vec![site.net.ip("ag1")],
        "only ag1: ag2 overridden, ag3 revoked"
    );
    assert_eq!(site.answers("ow2").len(), 3, "ow2 is independent");
    // The pin really survived: ag1 with a new certificate is refused.
    assert_eq!(site.agents.get_mut("ag1").unwrap().stop(), Some(0));
    std::fs::remove_file(site.dir.path().join("ag1.crt")).unwrap();
    std::fs::remove_file(site.dir.path().join("ag1.key")).unwrap();
    site.start_agent("ag1", &["ow1", "ow2"], (K1, &[]));
    wait_for(
        "pin_mismatch after restart",
        Duration::from_secs(15),
        || (site.agent_status("ow1", "ag1")["reject_reason"] == "pin_mismatch").then_some(()),
    );
    eprintln!("FIGURES restart: ow1 back in DNS with ag1 {rejoin:?} after restart");
}

#[test]
fn gossip_key_rotation_without_stale() {
    if !can_run("netns::gossip_key_rotation_without_stale") {
        return;
    }
    let site = Site::new("nf-keys", 2, 3);
    site.wait_all_in_dns(Duration::from_secs(20));
    let mon = Monitor::start(&site);
    let t = Instant::now();
    let ows = ["ow1", "ow2"];
    let mut steps: Vec<(u128, String)> = Vec::new();
    let reload_ow = |site: &Site, steps: &mut Vec<(u128, String)>, keys: (&str, &[&str])| {
        for ow in ows {
            site.write_config(ow, &ow_yaml(&site.net, &site.dir, ow, keys));
            site.ows[ow].signal(libc::SIGHUP);
            steps.push((mon.now_ms(), format!("SIGHUP {ow} keys {keys:?}")));
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    // Agents re-read their keys on SIGHUP without dropping their sessions.
    let reload_agents = |site: &Site, steps: &mut Vec<(u128, String)>, keys: (&str, &[&str])| {
        for ag in ["ag1", "ag2", "ag3"] {
            site.write_config(ag, &agent_yaml(&site.net, &site.dir, ag, &ows, keys));
            site.agents[ag].signal(libc::SIGHUP);
            steps.push((mon.now_ms(), format!("SIGHUP {ag} keys {keys:?}")));
        }
        std::thread::sleep(Duration::from_millis(2500));
    };
    // 1. Overwatches learn the new key; 2. agents send with it, keep the old;
    // 3. Overwatches make it primary and drop the old; 4. so do agents.
    reload_ow(&site, &mut steps, (K1, &[K2]));
    reload_agents(&site, &mut steps, (K2, &[K1]));
    reload_ow(&site, &mut steps, (K2, &[]));
    reload_agents(&site, &mut steps, (K2, &[]));
    std::thread::sleep(Duration::from_secs(4));
    let seen = mon.finish();
    eprintln!(
        "FIGURES key rotation: {:?} in total, {} polls, statuses {:?}, steps {steps:?}",
        t.elapsed(),
        seen.polls,
        seen.counts
    );
    assert_never(&seen, "stale");
    assert_never(&seen, "rejected");
    assert_never(&seen, "left");
    for ow in ows {
        for ag in ["ag1", "ag2", "ag3"] {
            assert_eq!(
                site.agent_status(ow, ag)["status"],
                "active",
                "{ag} on {ow}"
            );
        }
        let (_, m) = get(&format!("{}/metrics", site.api(ow))).unwrap();
        let reloads = m
            .lines()
            .find(|l| l.starts_with("opengslb_config_reloads_total{result=\"success\"}"));
        assert!(
            reloads.is_some_and(|l| l.ends_with(" 2")),
            "{ow} reloaded twice: {reloads:?}"
        );
    }
}

#[test]
fn expired_certificate_rotates_with_proof_from_the_old_key() {
    if !can_run("netns::expired_certificate_rotates_with_proof_from_the_old_key") {
        return;
    }
    // One Overwatch, one agent whose first certificate lives 30 seconds.
    let mut site = Site::bare("nf-cert", &["ow1", "ag1", "client"]);
    site.start_ow("ow1", (K1, &[]));
    let www = site.dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("health"), "ok").unwrap();
    let ip = site.net.ip("ag1");
    let log = site.dir.path().join("http.log");
    site._backends.push(site.net.spawn(
        "ag1",
        &[
            "python3",
            "-m",
            "http.server",
            "8080",
            "--bind",
            &ip,
            "--directory",
            www.to_str().unwrap(),
        ],
        &log,
    ));
    site.net.enter("client");
    wait_for("ow1 ready", Duration::from_secs(15), || {
        get(&format!("{}/api/v1/ready", site.api("ow1"))).filter(|(c, _)| *c == 200)
    });
    // Valid from now for 30 s: the agent would renew it at two thirds
    // (20 s, tests/it/cert_renewal.rs); it is stopped before that and
    // started again once the certificate expired.
    let crt_path = site.dir.path().join("ag1.crt");
    let now = opengslb::timefmt::unix_now();
    let first = Identity::generate_valid("ag1", now, now + 30).unwrap();
    identity::write_pair(&crt_path, &site.dir.path().join("ag1.key"), &first).unwrap();
    let expires = Instant::now() + Duration::from_secs(30);
    site.start_agent("ag1", &["ow1"], (K1, &[]));
    site.wait_dns("ow1", &ip, true, Duration::from_secs(15));
    let old_fp = site.agent_status("ow1", "ag1")["fingerprint"].clone();
    assert!(old_fp.is_string());
    assert_eq!(site.agents.get_mut("ag1").unwrap().stop(), Some(0));
    let log = site.agents["ag1"].log_text();
    assert!(
        !log.contains("renewed at two thirds"),
        "the first run lasted past two thirds of the certificate's 30 s: {log}"
    );
    std::thread::sleep(expires.saturating_duration_since(Instant::now()) + Duration::from_secs(2));
    let t = Instant::now();
    site.start_agent("ag1", &["ow1"], (K1, &[]));
    site.wait_dns("ow1", &ip, true, Duration::from_secs(15));
    let took = t.elapsed();
    let v = site.agent_status("ow1", "ag1");
    assert_eq!(v["status"], "active", "{v}");
    assert_ne!(
        v["fingerprint"], old_fp,
        "the new certificate is pinned without operator action"
    );
    assert!(v["reject_reason"].is_null(), "{v}");
    let log = site.agents["ag1"].log_text();
    assert!(log.contains("expired"), "{log}");
    assert!(Path::new(&format!("{}.rotation", crt_path.display())).exists());
    let mut text = String::new();
    std::fs::File::open(&crt_path)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.contains("BEGIN CERTIFICATE"));
    eprintln!(
        "FIGURES cert rotation: expired certificate replaced and re-pinned in {took:?} after start"
    );
}
