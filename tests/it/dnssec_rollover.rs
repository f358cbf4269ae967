//! A DNSSEC key rollover driven by `opengslb-cli dnssec rollover` (issue
//! 13): answers validate before, during and after the roll. At each phase
//! the key files the CLI left are loaded as the daemon loads them
//! (`keystore::load_zone_key`) and published to a running DNS server; a
//! fresh validating unbound (nothing cached, so each phase is judged on
//! its own) with the DS the parent would publish must mark A, AAAA,
//! NXDOMAIN, NODATA and DNSKEY answers secure, and delv must say "fully
//! validated". While the new key signs, both the old and the new DS
//! validate; after the roll, the old DS no longer does (so the test can
//! fail), and a step taken before it is due is refused.

use super::dnssec::{ZONE, assert_secure, dig, server, spec, start_unbound, status};
use opengslb::dns::dnssec::Algorithm;
use opengslb::dns::keystore::{self, KeyRing};
use opengslb::dns::{DnsStats, DnsTable};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

fn cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(crate::util::CLI).args(args).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn ds_of(key: &Path) -> String {
    let (ok, text) = cli(&["dnssec", "ds", ZONE, "--key-file", key.to_str().unwrap()]);
    assert!(ok, "{text}");
    text.trim().to_string()
}

fn load(key: &Path) -> Option<Arc<KeyRing>> {
    let zk = keystore::load_zone_key(&format!("{ZONE}."), key, Algorithm::EcdsaP256Sha256).unwrap();
    Some(Arc::new(KeyRing { zones: vec![zk] }))
}

/// A fresh unbound with `ds` as trust anchor: every answer kind secure,
/// and delv with the same anchor fully validates app A.
fn assert_validates(srv: SocketAddr, ds: &str, when: &str, dir: &Path) {
    let tag = format!("roll-{}", when.replace([' ', ','], "-"));
    let unbound = start_unbound(srv, ds, &tag).unwrap();
    assert_secure(unbound.addr, when);
    drop(unbound);
    let f: Vec<&str> = ds.split_whitespace().collect();
    let anchor = dir.join("anchor.conf");
    std::fs::write(
        &anchor,
        format!(
            "trust-anchors {{\n  {ZONE}. static-ds {} {} {} \"{}\";\n}};\n",
            f[3], f[4], f[5], f[6]
        ),
    )
    .unwrap();
    let out = Command::new("delv")
        .args([
            "@127.0.0.1",
            "-p",
            &srv.port().to_string(),
            "-a",
            anchor.to_str().unwrap(),
            &format!("+root={ZONE}"),
            &format!("app.{ZONE}"),
            "A",
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("fully validated"), "{when}: delv:\n{text}");
}

/// (DNSKEY records, RRSIGs over them) in a direct DNSKEY answer.
fn dnskeys(srv: SocketAddr) -> (usize, usize) {
    let out = dig(srv, ZONE, "DNSKEY");
    let count = |t: &str| {
        out.lines()
            .filter(|l| !l.starts_with(';'))
            .filter(|l| l.split_whitespace().nth(3) == Some(t))
            .count()
    };
    (count("DNSKEY"), count("RRSIG"))
}

#[test]
fn rollover_keeps_answers_validating_before_during_and_after() {
    if !crate::util::need_tools(
        "rollover_keeps_answers_validating_before_during_and_after",
        &["dig", "delv"],
    ) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("opengslb-roll-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("signed.test.key");
    let k = key.to_str().unwrap();
    let (ok, text) = cli(&["dnssec", "keygen", ZONE, "--key-file", k]);
    assert!(ok, "{text}");
    let old_ds = ds_of(&key);
    let stats = Arc::new(DnsStats::new());
    let table = |key: &Path| {
        DnsTable::build(&spec(&["10.0.0.1", "2001:db8::1"]), &stats).with_dnssec(load(key))
    };
    let (srv, cell) = server(table(&key), &stats);
    let addr = srv.local_addr();
    assert_eq!(dnskeys(addr), (1, 1));
    assert_validates(addr, &old_ds, "before", &dir);

    // Published: both keys in the DNSKEY RRset, the old one signs.
    let (ok, text) = cli(&["dnssec", "rollover", ZONE, "--key-file", k]);
    assert!(ok && text.contains("next step"), "{text}");
    cell.publish(table(&key));
    assert_eq!(dnskeys(addr), (2, 1));
    let st = keystore::status(&cell.load(), &stats);
    assert_eq!(st["zones"][0]["rollover"]["phase"], "published", "{st}");
    assert_validates(addr, &old_ds, "published", &dir);
    // Not due yet: refused, and nothing changed.
    let (ok, text) = cli(&["dnssec", "rollover", ZONE, "--key-file", k, "--step"]);
    assert!(!ok && text.contains("--now"), "{text}");

    // Active: the new key signs; both DS validate; CDS shows the new one.
    let new_ds = ds_of(&keystore::next_key_path(&key));
    let (ok, text) = cli(&[
        "dnssec",
        "rollover",
        ZONE,
        "--key-file",
        k,
        "--step",
        "--now",
    ]);
    assert!(ok && text.contains(&new_ds), "{text}");
    cell.publish(table(&key));
    assert_eq!(dnskeys(addr), (2, 2));
    let digest = new_ds
        .split_whitespace()
        .last()
        .unwrap()
        .to_ascii_lowercase();
    let cds = dig(addr, ZONE, "CDS").to_ascii_lowercase().replace(' ', "");
    assert!(cds.contains(&digest), "CDS shows the new key:\n{cds}");
    assert_validates(addr, &old_ds, "active with the old DS", &dir);
    assert_validates(addr, &new_ds, "active with the new DS", &dir);

    // Done: only the new key; the old DS no longer validates.
    let (ok, text) = cli(&[
        "dnssec",
        "rollover",
        ZONE,
        "--key-file",
        k,
        "--step",
        "--now",
    ]);
    assert!(ok && text.contains("rollover done"), "{text}");
    assert_eq!(ds_of(&key), new_ds);
    cell.publish(table(&key));
    assert_eq!(dnskeys(addr), (1, 1));
    assert_validates(addr, &new_ds, "after", &dir);
    let unbound = start_unbound(addr, &old_ds, "roll-old-ds-after").unwrap();
    let out = dig(unbound.addr, &format!("app.{ZONE}"), "A");
    assert_eq!(status(&out), "SERVFAIL", "old DS after the roll:\n{out}");
    drop(unbound);
    let (ok, text) = cli(&["dnssec", "rollover", ZONE, "--key-file", k, "--step"]);
    assert!(!ok && text.contains("no rollover"), "{text}");
    srv.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The daemon takes each rollover step on SIGHUP even when no domain
/// changed (the DNS table is rebuilt when the keys change).
#[test]
fn the_daemon_loads_each_rollover_step_on_sighup() {
    use crate::util::{Daemon, HttpBackend, TempDir, free_port, wait_for};
    use std::time::Duration;
    if !crate::util::need_tools("the_daemon_loads_each_rollover_step_on_sighup", &["dig"]) {
        return;
    }
    let dir = TempDir::new("roll-daemon");
    let backend = HttpBackend::start("127.0.0.2");
    let dns_port = free_port("127.0.0.1");
    let data = dir.path().join("data");
    let yaml = format!(
        r#"mode: overwatch
dns:
  listen_address: "127.0.0.1:{dns_port}"
  zones: [{ZONE}]
  soa: {{ ttl: 600 }}
overwatch:
  data_dir: "{}"
  dnssec: {{ enabled: true }}
  validation: {{ enabled: true, check_interval: 200ms, check_timeout: 500ms }}
regions:
  - name: east
    servers:
      - {{ address: "127.0.0.2", port: {}, service: app.{ZONE} }}
    health_check: {{ type: http, path: /health, interval: 200ms, timeout: 500ms }}
domains:
  - {{ name: app.{ZONE}, routing_algorithm: round-robin, regions: [east] }}
api:
  address: "127.0.0.1:{}"
"#,
        data.display(),
        backend.addr.port(),
        free_port("127.0.0.1"),
    );
    let config = dir.write("overwatch.yaml", &yaml);
    let c = config.to_str().unwrap();
    let (ok, text) = cli(&["dnssec", "keygen", ZONE, "--config", c]);
    assert!(ok, "{text}");
    let mut daemon = Daemon::start_file(&dir, "overwatch", &config, "overwatch");
    let addr: SocketAddr = format!("127.0.0.1:{dns_port}").parse().unwrap();
    let keys = |want: (usize, usize)| {
        wait_for(
            &format!("DNSKEY/RRSIG {want:?}"),
            Duration::from_secs(15),
            || (dnskeys(addr) == want).then_some(()),
        )
    };
    keys((1, 1));
    // The first wait is the DNSKEY TTL (dns.soa.ttl, 600) plus an hour.
    let (ok, text) = cli(&["dnssec", "rollover", ZONE, "--config", c]);
    assert!(ok && text.contains("in 4200 s"), "{text}");
    daemon.signal(libc::SIGHUP);
    keys((2, 1));
    for (args, want) in [
        (
            vec!["dnssec", "rollover", ZONE, "--config", c, "--step", "--now"],
            (2, 2),
        ),
        (
            vec!["dnssec", "rollover", ZONE, "--config", c, "--step", "--now"],
            (1, 1),
        ),
    ] {
        let (ok, text) = cli(&args);
        assert!(ok, "{text}");
        daemon.signal(libc::SIGHUP);
        keys(want);
    }
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(0));
}
