//! An Overwatch restart keeps what operators and agents rely on (SPEC §10,
//! issue 4): overrides with reason/by/expiry, certificate pins,
//! revocations and the audit log survive SIGTERM and SIGKILL; a SIGKILL in
//! the middle of writes never leaves state that stops the next start; a
//! corrupt state.json stops the start with exit code 4 and keeps the
//! previous good copy.

use crate::util::ops::*;
use crate::util::*;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

fn overrides(ow: &Overwatch) -> Vec<Value> {
    let mut v = ow.get_json("/api/v1/overrides")["overrides"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    v.sort_by_key(|o| o["address"].as_str().unwrap_or("").to_string());
    v
}

fn audit(ow: &Overwatch) -> Vec<Value> {
    ow.get_json("/api/v1/audit-logs?limit=1000")["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// (action, target, by, at) of each entry: what must survive.
fn audit_keys(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| format!("{} {} {} {}", e["action"], e["target"], e["by"], e["at"]))
        .collect()
}

fn restart_keeps_state(signal: i32) {
    let dir = TempDir::new(&format!("ops-restart-{signal}"));
    let mut ow = Overwatch::start(&dir, "ow", &OwOptions::default());
    let web = HttpBackend::start("127.0.0.61");
    let ip = web.addr.ip().to_string();
    let pinned = agent(&dir, "pinned", web.addr, &[&ow.gossip], KEY, "app-token");
    ow.wait_in_dns(&ip, true, Duration::from_secs(15));
    let fingerprint = ow.agent("pinned")["fingerprint"].clone();
    assert!(fingerprint.is_string(), "{}", ow.agent("pinned"));

    // An override with no expiry through the API, one with an expiry
    // through the CLI, and a revocation through the CLI.
    let (code, body) = http(
        &format!(
            "{}/api/v1/overwatch/backends/{SERVICE}/127.0.0.62/80/override",
            ow.api
        ),
        "POST",
        Some(r#"{"healthy": false, "reason": "api: disk swap"}"#),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    cli(
        &ow.api,
        &[
            "overrides",
            "set",
            SERVICE,
            "127.0.0.63:8080",
            "--healthy=false",
            "--reason",
            "cli: canary",
            "--expires",
            "1h",
        ],
    )
    .ok("overrides set");
    cli(
        &ow.api,
        &["agents", "revoke", "ghost", "--reason", "stolen laptop"],
    )
    .ok("agents revoke");

    let before = overrides(&ow);
    assert_eq!(before.len(), 2, "{before:?}");
    assert_eq!(before[0]["reason"], "api: disk swap");
    assert!(before[0]["expires_at"].is_null(), "{:?}", before[0]);
    assert_eq!(before[1]["reason"], "cli: canary");
    assert_eq!(before[1]["by"], "ops-test", "the CLI sends $USER as X-User");
    assert!(before[1]["expires_at"].is_string(), "{:?}", before[1]);
    let audit_before = audit(&ow);
    assert_eq!(audit_before.len(), 3, "{audit_before:?}");
    // One more that expires while the Overwatch is down.
    let short_set = std::time::Instant::now();
    let (code, body) = http(
        &format!("{}/api/v1/overrides/{SERVICE}/127.0.0.65:80", ow.api),
        "PUT",
        Some(r#"{"healthy": false, "reason": "short", "expires_in": "4s"}"#),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    // Four seconds, not one: on a loaded machine a 1 s override could
    // expire before this read, and the count would say nothing.
    assert_eq!(overrides(&ow).len(), 3);

    // Stop and start on the same data_dir.
    ow.daemon.signal(signal);
    let code = ow.daemon.wait_exit(Duration::from_secs(10));
    if signal == libc::SIGTERM {
        assert_eq!(code, Some(0), "SIGTERM is a clean stop");
    }
    // Past the short override's expiry (whole seconds, so 5 s to be sure).
    std::thread::sleep(Duration::from_secs(5).saturating_sub(short_set.elapsed()));
    ow.restart(&dir);

    assert_eq!(
        overrides(&ow),
        before, // without the one that expired while down
        "overrides with reason/by/at/expires_at survive"
    );
    let audit_after = audit(&ow);
    let keys_after = audit_keys(&audit_after);
    for k in audit_keys(&audit_before) {
        assert!(
            keys_after.contains(&k),
            "audit entry {k} lost: {audit_after:?}"
        );
    }
    // The override still takes effect in DNS (127.0.0.62 is not served)
    // and the pinned agent comes back by itself with the same certificate.
    ow.wait_in_dns(&ip, true, Duration::from_secs(20));
    let a = ow.agent("pinned");
    assert_eq!(a["status"], "active", "{a}");
    assert_eq!(a["fingerprint"], fingerprint, "{a}");
    assert!(
        a["reject_reason"].is_null(),
        "re-registered without pin_mismatch: {a}"
    );
    assert!(!pinned.daemon.log_text().contains("pin_mismatch"));

    // The revoked id is still refused.
    let other = HttpBackend::start("127.0.0.64");
    let ghost = agent(&dir, "ghost", other.addr, &[&ow.gossip], KEY, "app-token");
    wait_for("ghost refused as revoked", Duration::from_secs(15), || {
        let g = ow.agent("ghost");
        (g["status"] == "rejected" && g["reject_reason"] == "revoked").then_some(())
    });
    assert!(!ow.answers().contains(&"127.0.0.64".to_string()));
    drop(ghost);
}

#[test]
fn sigterm_restart_keeps_overrides_pins_revocations_and_audit() {
    restart_keeps_state(libc::SIGTERM);
}

#[test]
fn sigkill_restart_keeps_overrides_pins_revocations_and_audit() {
    restart_keeps_state(libc::SIGKILL);
}

/// Writes forever until told to stop: on each step key A is set with a
/// numbered reason, and key B is set or cleared in turn. `acked` is the
/// number of the last step whose writes were all answered 200.
fn hammer(
    api: String,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    start: u64,
    done: Arc<AtomicU64>,
) {
    let mut n = start;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let a = http(
            &format!("{api}/api/v1/overrides/{SERVICE}/127.0.0.71:80"),
            "PUT",
            Some(&format!(r#"{{"healthy": false, "reason": "r{n}"}}"#)),
        );
        let b = if n.is_multiple_of(2) {
            http(
                &format!("{api}/api/v1/overrides/{SERVICE}/127.0.0.72:80"),
                "PUT",
                Some(r#"{"healthy": true, "reason": "b"}"#),
            )
        } else {
            http(
                &format!("{api}/api/v1/overrides/{SERVICE}/127.0.0.72:80"),
                "DELETE",
                None,
            )
        };
        match (a, b) {
            (Some((200, _)), Some((200, _))) => {
                acked.store(n, Ordering::SeqCst);
                done.fetch_add(2, Ordering::SeqCst);
            }
            (Some((200, _)), _) => {
                done.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
    }
}

#[test]
fn sigkill_during_writes_never_blocks_the_next_start() {
    let dir = TempDir::new("ops-torn");
    let mut ow = Overwatch::start(&dir, "ow", &OwOptions::default());
    let audit_file = ow.data.join("audit.jsonl");
    let state_file = ow.data.join("state.json");
    let done = Arc::new(AtomicU64::new(0));
    let mut last_step = 0u64;
    for (round, delay_ms) in [120u64, 260, 75, 410, 190].into_iter().enumerate() {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let writer = {
            let (api, stop, acked, done) = (
                ow.api.clone(),
                Arc::clone(&stop),
                Arc::clone(&acked),
                Arc::clone(&done),
            );
            std::thread::Builder::new()
                .name(format!("hammer-{round}"))
                .spawn(move || hammer(api, stop, acked, last_step, done))
                .unwrap()
        };
        // Let some writes through, then kill the process mid-stream.
        wait_for("some writes acknowledged", Duration::from_secs(10), || {
            (acked.load(Ordering::SeqCst) > last_step).then_some(())
        });
        std::thread::sleep(Duration::from_millis(delay_ms));
        ow.daemon.signal(libc::SIGKILL);
        ow.daemon.wait_exit(Duration::from_secs(5)).unwrap_or(-1);
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        let last_acked = acked.load(Ordering::SeqCst);
        eprintln!(
            "round {round}: killed after {delay_ms} ms, last acknowledged step r{last_acked}"
        );

        // What is on disk parses.
        let state: Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap())
            .unwrap_or_else(|e| panic!("round {round}: state.json does not parse: {e}"));
        assert!(state["overrides"].is_array(), "{state}");
        if round == 2 {
            // A torn last line, as a kill inside write(2) would leave.
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&audit_file)
                .unwrap();
            f.write_all(br#"{"at":1700000000,"by":"torn","fr"#).unwrap();
        }

        ow.restart(&dir);
        // Every acknowledged write is in the audit log.
        let text = std::fs::read_to_string(&audit_file).unwrap();
        let lines = text
            .lines()
            .filter(|l| serde_json::from_str::<Value>(l).is_ok())
            .count() as u64;
        assert!(
            lines >= done.load(Ordering::SeqCst),
            "round {round}: {lines} audit lines < {} acknowledged writes",
            done.load(Ordering::SeqCst)
        );
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "round {round}: the torn tail is cut at start"
        );
        let entries = audit(&ow);
        assert!(!entries.is_empty(), "round {round}: audit log loads");
        assert!(entries.iter().all(|e| e["by"] != "torn"));
        // The last acknowledged override (or the one in flight) is there.
        let a = overrides(&ow)
            .into_iter()
            .find(|o| o["address"] == "127.0.0.71")
            .unwrap_or_else(|| panic!("round {round}: override on 127.0.0.71 lost"));
        let reason = a["reason"].as_str().unwrap_or("").to_string();
        let ok = [format!("r{last_acked}"), format!("r{}", last_acked + 1)];
        assert!(
            ok.contains(&reason),
            "round {round}: reason {reason}, last acknowledged r{last_acked}"
        );
        // It answers DNS (the zone's SOA) and serves writes again.
        let soa = crate::util::dnsclient::udp(
            ow.dns,
            &crate::util::dnsclient::Query::new("gslb.test", crate::util::dnsclient::SOA),
        )
        .unwrap_or_else(|| panic!("round {round}: no DNS answer after restart"));
        assert_eq!(soa.rcode, 0, "round {round}: NOERROR for the zone apex SOA");
        let (code, body) = http(
            &format!("{}/api/v1/overrides/{SERVICE}/127.0.0.73:80", ow.api),
            "PUT",
            Some(r#"{"healthy": true, "reason": "after restart"}"#),
        )
        .unwrap();
        assert_eq!(code, 200, "{body}");
        done.fetch_add(1, Ordering::SeqCst);
        last_step = last_acked + 1;
    }
}

#[test]
fn corrupt_state_stops_the_start_and_keeps_the_previous_copy() {
    let dir = TempDir::new("ops-corrupt");
    let mut ow = Overwatch::start(&dir, "ow", &OwOptions::default());
    for (i, addr) in ["127.0.0.81:80", "127.0.0.82:80"].iter().enumerate() {
        cli(
            &ow.api,
            &[
                "overrides",
                "set",
                SERVICE,
                addr,
                "--healthy=false",
                "--reason",
                &format!("step {i}"),
            ],
        )
        .ok("overrides set");
    }
    ow.daemon.signal(libc::SIGTERM);
    assert_eq!(ow.daemon.wait_exit(Duration::from_secs(10)), Some(0));
    let state_file = ow.data.join("state.json");
    let prev_file = ow.data.join("state.json.prev");
    let prev = std::fs::read(&prev_file).expect("state.json.prev exists after two saves");
    let prev_json: Value = serde_json::from_slice(&prev).expect("state.json.prev parses");
    assert_eq!(
        prev_json["overrides"].as_array().map(Vec::len),
        Some(1),
        "{prev_json}"
    );

    let garbage: Vec<u8> = (0..512u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&state_file, &garbage).unwrap();
    ow.spawn_again(&dir);
    let code = ow.daemon.wait_exit(Duration::from_secs(10));
    assert_eq!(
        code,
        Some(opengslb::exit::STATE),
        "exit code 4 (STATE)\n{}",
        ow.daemon.log_text()
    );
    let log = ow.daemon.log_text();
    assert!(
        log.contains(state_file.to_str().unwrap()),
        "the message names the file: {log}"
    );
    assert!(
        log.contains(prev_file.to_str().unwrap()),
        "and the previous good copy: {log}"
    );
    assert_eq!(
        std::fs::read(&prev_file).unwrap(),
        prev,
        "state.json.prev is kept as it was"
    );
    assert_eq!(
        std::fs::read(&state_file).unwrap(),
        garbage,
        "the corrupt file is left for inspection"
    );
}

/// TOFU pins are only worth something if they survive: an Overwatch
/// SIGKILLed right after an agent registered must refuse another
/// certificate for that id after the restart, and list lost agents again.
#[test]
fn pins_and_lost_agents_survive_a_sigkill_right_after_they_change() {
    let dir = TempDir::new("ops-pin-kill");
    let mut ow = Overwatch::start(
        &dir,
        "ow",
        &OwOptions {
            remove_after: "2s",
            ..OwOptions::default()
        },
    );
    let web = HttpBackend::start("127.0.0.66");
    let ip = web.addr.ip().to_string();
    let mut first = agent(&dir, "pin1", web.addr, &[&ow.gossip], KEY, "app-token");
    ow.wait_in_dns(&ip, true, Duration::from_secs(15));
    ow.daemon.signal(libc::SIGKILL);
    ow.daemon.wait_exit(Duration::from_secs(5));
    first.daemon.signal(libc::SIGKILL);
    first.daemon.wait_exit(Duration::from_secs(5));
    ow.restart(&dir);

    // The same id with a new key pair: refused, the pin was on disk.
    std::fs::remove_file(&first.cert).unwrap();
    std::fs::remove_file(&first.key).unwrap();
    let mut impostor = Daemon::start_file(&dir, "pin1-impostor", &first.config, "agent");
    wait_for(
        "pin_mismatch after restart",
        Duration::from_secs(15),
        || (ow.agent("pin1")["reject_reason"] == "pin_mismatch").then_some(()),
    );
    assert!(!ow.answers().contains(&ip));
    impostor.kill();

    // A lost agent is still listed after a SIGKILL of the Overwatch.
    let web2 = HttpBackend::start("127.0.0.67");
    let gone = agent(&dir, "lost1", web2.addr, &[&ow.gossip], KEY, "app-token");
    ow.wait_in_dns(&web2.addr.ip().to_string(), true, Duration::from_secs(15));
    gone.daemon.signal(libc::SIGKILL);
    let lost = |ow: &Overwatch| -> Option<Value> {
        let h = ow.get_json("/api/v1/healthz");
        h["lost_agents"]
            .as_array()?
            .iter()
            .find(|l| l["agent_id"] == "lost1")
            .cloned()
    };
    let before = wait_for("lost1 listed as lost", Duration::from_secs(10), || {
        lost(&ow)
    });
    ow.daemon.signal(libc::SIGKILL);
    ow.daemon.wait_exit(Duration::from_secs(5));
    ow.restart(&dir);
    assert_eq!(
        lost(&ow),
        Some(before),
        "the lost agent survives the restart"
    );
    assert_eq!(ow.get_json("/api/v1/healthz")["status"], "degraded");
}
