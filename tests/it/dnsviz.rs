//! dnsviz (PyPI; `.ci/run` installs it in target/dnsviz-venv, with bind9
//! for the `named` it serves the parent zone with) on our zones: `dnsviz
//! probe` in authoritative mode against our server on 127.0.0.1, with the
//! delegation (and DS) given on the command line, then `dnsviz grok`; no
//! error and no warning anywhere in the analysis (issue 13 for a signed
//! zone, issue 12 for an unsigned one). Every server dnsviz queries is
//! given as a loopback address (-N, -x, its own named on 127.0.0.1/::1),
//! so it sends nothing elsewhere. The zone signed with another key than
//! the DS must give errors, so the test can fail.

use super::dnssec::{ZONE, server, spec};
use opengslb::dns::dnssec::{Algorithm, KeyFile};
use opengslb::dns::keystore::KeyRing;
use opengslb::dns::{DnsStats, DnsTable};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const TEST: &str = "dnsviz_finds_no_error_or_warning_in_signed_and_unsigned_zones";

fn dnsviz() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dnsviz-venv/bin/dnsviz");
    if venv.is_file() {
        return Some(venv);
    }
    crate::util::on_path("dnsviz").then(|| PathBuf::from("dnsviz"))
}

/// Every error and warning of a `dnsviz grok` document, with where.
fn findings(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                if (k == "errors" || k == "warnings")
                    && let Some(list) = x.as_array()
                {
                    for e in list {
                        out.push(format!("{k} at {path}: {e}"));
                    }
                } else {
                    findings(x, &format!("{path}/{k}"), out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| findings(x, path, out)),
        _ => {}
    }
}

/// dnsviz serves the parent zone with a `named` on port 50053 (fixed in
/// dnsviz) and stops it with SIGTERM, then SIGKILL a second later; the
/// next probe must not reach the previous probe's parent (with another
/// DS), so wait until that port is free again.
fn wait_for_parent_port() {
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:50053").is_ok()
            && std::net::UdpSocket::bind("127.0.0.1:50053").is_ok()
    };
    crate::util::wait_for(
        "port 50053 (dnsviz's parent named) to be free",
        std::time::Duration::from_secs(30),
        || free().then_some(()),
    );
}

/// probe + grok of `ZONE` served at `srv`, with `ds` at the parent (None:
/// unsigned delegation); returns the grok document.
fn analyse(bin: &Path, srv: SocketAddr, ds: Option<&str>, dir: &Path) -> serde_json::Value {
    let ns = format!("{ZONE}:ns1.{ZONE}=127.0.0.1:{}", srv.port());
    let probe = dir.join("probe.json");
    let mut args = vec![
        "probe".to_string(),
        "-A".into(),
        "-a".into(),
        ZONE.into(),
        "-N".into(),
        ns.clone(),
        "-x".into(),
        ns,
        "-o".into(),
        probe.to_str().unwrap().into(),
    ];
    if let Some(ds) = ds {
        // "zone. IN DS tag alg type digest" -> "zone:tag alg type digest"
        let f: Vec<&str> = ds.split_whitespace().collect();
        args.push("-D".into());
        args.push(format!("{ZONE}:{}", f[3..].join(" ")));
    }
    args.extend([
        ZONE.to_string(),
        format!("app.{ZONE}"),
        format!("ns1.{ZONE}"),
    ]);
    wait_for_parent_port();
    let out = Command::new(bin).args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "dnsviz {args:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(bin)
        .args(["grok", "-P", "-r", probe.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dnsviz grok:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn dnsviz_finds_no_error_or_warning_in_signed_and_unsigned_zones() {
    if !crate::util::need_tools(TEST, &["named", "named-checkconf"]) {
        return;
    }
    let Some(bin) = dnsviz() else {
        crate::util::skip(TEST, "dnsviz not installed (target/dnsviz-venv or PATH)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("opengslb-dnsviz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kf = KeyFile::generate(ZONE, Algorithm::EcdsaP256Sha256, 0).unwrap();
    let ds = kf.signing_key().unwrap().ds_text(ZONE).unwrap();
    let ring = |kf: &KeyFile| {
        Some(Arc::new(
            KeyRing::from_key_files(&[(PathBuf::from("k"), kf.clone())]).unwrap(),
        ))
    };
    let stats = Arc::new(DnsStats::new());
    let addrs = ["10.0.0.1", "2001:db8::1"];
    let (srv, cell) = server(
        DnsTable::build(&spec(&addrs), &stats).with_dnssec(ring(&kf)),
        &stats,
    );

    let signed = analyse(&bin, srv.local_addr(), Some(&ds), &dir);
    let mut found = Vec::new();
    findings(&signed, "", &mut found);
    assert!(found.is_empty(), "signed zone:\n{}", found.join("\n"));
    let zone = &signed[format!("{ZONE}.")];
    assert_eq!(zone["delegation"]["status"], "SECURE", "{zone}");
    assert_eq!(zone["status"], "NOERROR");

    // Unsigned (issue 12): the same zone without DNSSEC, no DS.
    cell.publish(DnsTable::build(&spec(&addrs), &stats));
    let unsigned = analyse(&bin, srv.local_addr(), None, &dir);
    let mut found = Vec::new();
    findings(&unsigned, "", &mut found);
    assert!(found.is_empty(), "unsigned zone:\n{}", found.join("\n"));
    assert_eq!(
        unsigned[format!("{ZONE}.")]["delegation"]["status"],
        "INSECURE"
    );

    // Signed with a key the DS does not name: dnsviz must object.
    let other = KeyFile::generate(ZONE, Algorithm::EcdsaP256Sha256, 0).unwrap();
    cell.publish(DnsTable::build(&spec(&addrs), &stats).with_dnssec(ring(&other)));
    let wrong = analyse(&bin, srv.local_addr(), Some(&ds), &dir);
    let mut found = Vec::new();
    findings(&wrong, "", &mut found);
    assert!(!found.is_empty(), "a wrong key went unnoticed: {wrong}");
    srv.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
