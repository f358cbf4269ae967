//! Unit tests of `identity.rs`: generation, reuse, renewal on disk with
//! the old key's proof, recovery from a renewal cut short, the renewal
//! point, and that openssl reads what we write.

use super::*;
use std::os::unix::fs::PermissionsExt;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("opengslb-identity-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).expect("tmpdir");
    d
}

#[test]
fn generates_then_reuses_then_rotates_when_expired() {
    let d = tmpdir("cycle");
    let (c, k) = (d.join("agent.crt"), d.join("agent.key"));
    let now = 1_800_000_000;
    let first = ensure_certificate_at(&c, &k, "eu-a", now).expect("generate");
    assert_eq!(
        fs::metadata(&k).expect("key").permissions().mode() & 0o777,
        0o600
    );
    assert!(first.not_after >= now + CERT_VALIDITY_SECS - 86_400);
    assert!(first.rotation.is_none());
    let again = ensure_certificate_at(&c, &k, "eu-a", now + 10).expect("load");
    assert_eq!(again.fingerprint, first.fingerprint);
    // a year later the certificate has expired: new one, with proof
    let later = first.not_after + 1;
    let rotated = ensure_certificate_at(&c, &k, "eu-a", later).expect("rotate");
    assert_ne!(rotated.fingerprint, first.fingerprint);
    let proof = rotated.rotation.clone().expect("proof");
    let old_key = cert::parse(&proof.old_cert_der)
        .expect("old cert")
        .public_key;
    assert!(verify(
        &old_key,
        &rotation_message("eu-a", &rotated.fingerprint),
        &proof.signature
    ));
    // the proof survives a restart
    let reloaded = ensure_certificate_at(&c, &k, "eu-a", later + 5).expect("reload");
    assert_eq!(reloaded.rotation, Some(proof));
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn renewal_point_is_two_thirds_of_the_lifetime() {
    assert_eq!(renew_at(1_000, 1_300), 1_200);
    // a 90-day certificate renews with 30 days left
    let nb = 1_800_000_000;
    assert_eq!(
        nb + 90 * 86_400 - renew_at(nb, nb + 90 * 86_400),
        30 * 86_400
    );
    // a generated one (a day of skew before now, a year after) with
    // more than four months left
    let id = Identity::generate("eu-a", nb, CERT_VALIDITY_SECS).expect("generate");
    assert_eq!(
        (id.not_before, id.not_after),
        (nb - 86_400, nb + CERT_VALIDITY_SECS)
    );
    assert!(id.not_after - id.renew_at() > 120 * 86_400);
    assert!(id.renew_at() > nb + 200 * 86_400);
    // nonsense dates renew at once, and nothing overflows
    assert_eq!(renew_at(500, 100), 500);
    assert_eq!(renew_at(0, u64::MAX), u64::MAX / 3 * 2);
    assert_eq!(renew_at(u64::MAX - 1, u64::MAX), u64::MAX - 1);
}

#[test]
fn renewal_on_disk_is_proved_by_the_old_key() {
    let d = tmpdir("renew");
    let (c, k) = (d.join("agent.crt"), d.join("agent.key"));
    let now = 1_800_000_000;
    let old = Identity::generate_valid("eu-a", now - 200, now + 100).expect("old");
    write_pair(&c, &k, &old).expect("write old");
    let loaded = ensure_certificate_at(&c, &k, "eu-a", now).expect("load");
    assert_eq!(loaded.fingerprint, old.fingerprint, "not expired: kept");
    assert!(now >= loaded.renew_at());
    let new = renew(&c, &k, "eu-a", &loaded, now).expect("renew");
    assert_ne!(new.fingerprint, old.fingerprint);
    assert_eq!(new.not_after, now + CERT_VALIDITY_SECS);
    assert_eq!(
        fs::metadata(&k).expect("key").permissions().mode() & 0o777,
        0o600
    );
    let proof = new.rotation.clone().expect("proof");
    assert_eq!(proof.old_cert_der, old.cert_der);
    let old_key = cert::parse(&old.cert_der).expect("old").public_key;
    let msg = rotation_message("eu-a", &new.fingerprint);
    assert!(verify(&old_key, &msg, &proof.signature));
    let new_key = cert::parse(&new.cert_der).expect("new").public_key;
    assert!(!verify(&new_key, &msg, &proof.signature));
    // on disk: the new pair with its proof, no temporary file left
    let reloaded = ensure_certificate_at(&c, &k, "eu-a", now + 1).expect("reload");
    assert_eq!(reloaded.fingerprint, new.fingerprint);
    assert_eq!(reloaded.key_pkcs8, new.key_pkcs8);
    assert_eq!(reloaded.rotation, Some(proof));
    let names: Vec<String> = fs::read_dir(&d)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn a_renewal_cut_short_before_the_key_is_finished_at_the_next_start() {
    let d = tmpdir("interrupted");
    let (c, k) = (d.join("agent.crt"), d.join("agent.key"));
    let now = 1_800_000_000;
    let old = Identity::generate_valid("eu-a", now - 200, now + 100).expect("old");
    write_pair(&c, &k, &old).expect("write old");
    let old_key_file = fs::read(&k).expect("old key");
    let cut = renew(&c, &k, "eu-a", &old, now).expect("renew");
    // the crash: the new certificate and proof written, the key not
    fs::write(&k, &old_key_file).expect("restore old key");
    let id = ensure_certificate_at(&c, &k, "eu-a", now + 5).expect("finish");
    assert_ne!(id.fingerprint, old.fingerprint);
    assert_ne!(id.fingerprint, cut.fingerprint);
    let proof = id.rotation.clone().expect("proof");
    assert_eq!(proof.old_cert_der, old.cert_der);
    let old_key = cert::parse(&old.cert_der).expect("old").public_key;
    assert!(verify(
        &old_key,
        &rotation_message("eu-a", &id.fingerprint),
        &proof.signature
    ));
    let again = ensure_certificate_at(&c, &k, "eu-a", now + 6).expect("load");
    assert_eq!(again.fingerprint, id.fingerprint);
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn unreadable_files_are_replaced() {
    let d = tmpdir("garbage");
    let (c, k) = (d.join("agent.crt"), d.join("agent.key"));
    fs::write(&c, "junk").expect("write");
    fs::write(&k, "junk").expect("write");
    let id = ensure_certificate_at(&c, &k, "x", 1_800_000_000).expect("generate");
    assert!(id.rotation.is_none());
    let sig = id.sign(b"m").expect("sign");
    let pk = cert::parse(&id.cert_der).expect("parse").public_key;
    assert!(verify(&pk, b"m", &sig));
    assert!(!verify(&pk, b"n", &sig));
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn openssl_reads_the_certificate() {
    let Ok(out) = std::process::Command::new("openssl")
        .arg("version")
        .output()
    else {
        // Straight to stderr (libtest does not capture it), so CI sees it.
        use std::io::Write;
        let _ = std::io::stderr()
            .write_all(b"SKIPPED: openssl_reads_the_certificate: no openssl binary\n");
        return;
    };
    assert!(out.status.success());
    let d = tmpdir("openssl");
    let (c, k) = (d.join("agent.crt"), d.join("agent.key"));
    ensure_certificate_at(&c, &k, "eu-a", crate::timefmt::unix_now()).expect("generate");
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-dates", "-in"])
        .arg(&c)
        .output()
        .expect("run openssl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("notAfter="), "{text}");
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn default_id_has_region_prefix() {
    let id = default_agent_id("eu");
    assert!(id.starts_with("eu-") && id.len() > 3, "{id}");
}
