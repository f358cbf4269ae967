//! Agent certificates renew at two thirds of their lifetime, proved by
//! the old key, with no operator step (issue 12, hardening): against a
//! live Overwatch, the gossip client swaps its identity without a restart
//! and moves the pin, and a live agent whose certificate on disk is past
//! two thirds of its lifetime renews it, registers again with the proof
//! and stays `active` with the new fingerprint pinned; both the
//! Overwatch's and the agent's `cert_not_after` metrics move with it.

use crate::util::ops::*;
use crate::util::*;
use base64::Engine;
use opengslb::gossip::agent::client::{self, ClientConfig};
use opengslb::gossip::identity::{self, Identity};
use opengslb::gossip::{Keyring, cert};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const DAY: u64 = 86_400;
const ID: &str = "renew-a";

/// A 90-day certificate `age_days` old: past two thirds at 60.
fn aged(age_days: u64) -> Identity {
    let now = opengslb::timefmt::unix_now();
    let nb = now - age_days * DAY;
    Identity::generate_valid(ID, nb, nb + 90 * DAY).expect("identity")
}

fn series() -> String {
    format!("opengslb_overwatch_agent_cert_not_after_seconds{{agent_id=\"{ID}\"}}")
}

/// Waits until the Overwatch lists the agent active with `fingerprint`
/// pinned and its metric at `not_after`.
fn wait_pinned(ow: &Overwatch, fingerprint: &str, not_after: u64) -> serde_json::Value {
    let a = wait_for(
        &format!("{ID} active with {fingerprint}"),
        Duration::from_secs(15),
        || {
            let a = ow.agent(ID);
            (a["status"] == "active" && a["fingerprint"] == fingerprint).then_some(a)
        },
    );
    wait_sample(
        "overwatch",
        || ow.metrics(),
        &series(),
        |v| v == not_after as f64,
    );
    assert!(a["reject_reason"].is_null(), "{a}");
    a
}

#[test]
fn certificates_renew_with_proof_and_the_pin_follows() {
    let dir = TempDir::new("cert-renewal");
    let ow = Overwatch::start(&dir, "ow", &OwOptions::default());

    // 1. A gossip client registers certificate `first` (pinned on first
    //    use), then swaps in `second`, proved by `first`'s key, without a
    //    restart: the pin moves.
    let first = aged(65);
    let raw: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(KEY)
        .expect("key")
        .try_into()
        .expect("32 bytes");
    let (tx, _events) = crossbeam_channel::unbounded();
    let mut cl = client::start(
        ClientConfig {
            nodes: vec![ow.gossip.clone()],
            identity: Arc::new(first.clone()),
            keyring: Keyring::from_raw(&[raw]),
            token: "app-token".into(),
            region: "east".into(),
            agent_id: ID.into(),
            heartbeat_interval: Duration::from_millis(500),
            missed_threshold: 3,
            time_window_ms: 60_000,
        },
        tx,
    )
    .expect("client");
    wait_pinned(&ow, &first.fingerprint, first.not_after);
    let mut second = aged(64);
    second.rotation = Some(first.rotation_proof_for(ID, &second).expect("proof"));
    cl.set_identity(Arc::new(second.clone()));
    wait_pinned(&ow, &second.fingerprint, second.not_after);
    cl.leave_and_stop();

    // 2. A live agent starts with `second` on disk, 64 days into 90: it
    //    renews at once, with `second`'s key signing the new fingerprint,
    //    and registers again; the Overwatch moves the pin (no
    //    `pin_mismatch`).
    let (crt, key) = (
        dir.path().join(format!("{ID}.crt")),
        dir.path().join(format!("{ID}.key")),
    );
    identity::write_pair(&crt, &key, &second).expect("write certificate");
    let web = HttpBackend::start("127.0.0.163");
    let a = agent(&dir, ID, web.addr, &[&ow.gossip], KEY, "app-token");
    let renewed = wait_for(
        "the renewed certificate on disk",
        Duration::from_secs(15),
        || {
            let id = identity::read(&crt, &key)?;
            (id.fingerprint != second.fingerprint).then_some(id)
        },
    );
    assert_eq!(
        std::fs::metadata(&key).expect("key").permissions().mode() & 0o777,
        0o600
    );
    let proof = renewed.rotation.clone().expect("rotation proof on disk");
    assert_eq!(proof.old_cert_der, second.cert_der);
    let old_key = cert::parse(&second.cert_der).expect("cert").public_key;
    assert!(identity::verify(
        &old_key,
        &identity::rotation_message(ID, &renewed.fingerprint),
        &proof.signature
    ));
    assert!(renewed.not_after >= opengslb::timefmt::unix_now() + 364 * DAY);
    let shown = wait_pinned(&ow, &renewed.fingerprint, renewed.not_after);
    assert_eq!(shown["region"], "east");
    wait_sample(
        "agent",
        || {
            http_get(&format!("{}/metrics", a.api))
                .unwrap_or_default()
                .1
        },
        "opengslb_agent_cert_not_after_seconds",
        |v| v == renewed.not_after as f64,
    );

    let agent_log = a.daemon.log_text();
    assert_eq!(
        agent_log
            .matches("certificate renewed at two thirds")
            .count(),
        1,
        "{agent_log}"
    );
    let ow_log = ow.daemon.log_text();
    assert!(!ow_log.contains("pin_mismatch"), "{ow_log}");
    for fp in [&second.fingerprint, &renewed.fingerprint] {
        assert!(
            ow_log.contains(&format!("certificate rotated to {fp}")),
            "{ow_log}"
        );
    }
    assert_still_renewed(&ow, &crt, &key, &renewed);
}

/// A second look a few heartbeats later: still active, still pinned to
/// the renewed certificate, and the files did not change again.
fn assert_still_renewed(ow: &Overwatch, crt: &Path, key: &Path, renewed: &Identity) {
    let before = ow
        .metrics()
        .lines()
        .find(|l| l.starts_with("opengslb_overwatch_heartbeats_received_total"))
        .map(str::to_string);
    wait_for("more heartbeats", Duration::from_secs(15), || {
        let now = ow
            .metrics()
            .lines()
            .find(|l| l.starts_with("opengslb_overwatch_heartbeats_received_total"))
            .map(str::to_string);
        (now != before).then_some(())
    });
    let a = ow.agent(ID);
    assert_eq!(a["status"], "active", "{a}");
    assert_eq!(a["fingerprint"], renewed.fingerprint.as_str(), "{a}");
    let disk = identity::read(crt, key).expect("certificate and key");
    assert_eq!(disk.fingerprint, renewed.fingerprint);
}
