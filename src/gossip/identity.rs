//! The agent's identity: a self-signed ECDSA P-256 certificate and its key
//! on disk, generated when missing, unreadable or expired, and the
//! signatures that prove possession of the key (registration) and hand a
//! pin over from an old key to a new one (rotation).
//!
//! When an expired certificate is replaced and its key still loads, the old
//! key signs the new fingerprint; that proof is written beside the
//! certificate (`<cert_path>.rotation`) so every Overwatch that still pins
//! the old certificate accepts the new one, even after an agent restart.

use super::cert;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Validity of a generated certificate.
pub const CERT_VALIDITY_SECS: u64 = 365 * 86_400;

#[derive(Clone, Debug)]
pub struct Identity {
    pub cert_der: Vec<u8>,
    pub key_pkcs8: Vec<u8>,
    /// Hex SHA-256 of `cert_der`.
    pub fingerprint: String,
    /// Unix seconds.
    pub not_after: u64,
    pub rotation: Option<RotationProof>,
}

/// The old certificate and its key's signature over the new fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationProof {
    pub old_cert_der: Vec<u8>,
    pub signature: Vec<u8>,
}

impl Identity {
    /// Signs with the identity's key (ECDSA P-256, SHA-256, ASN.1 DER).
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, String> {
        sign(&self.key_pkcs8, msg)
    }

    /// A fresh identity that lives only in memory (tests, simulations).
    pub fn generate(agent_id: &str, now_secs: u64, validity_secs: u64) -> Result<Identity, String> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| format!("generating key: {e}"))?;
        let mut params = rcgen::CertificateParams::new(vec![agent_id.to_string()])
            .map_err(|e| format!("certificate for {agent_id:?}: {e}"))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, agent_id);
        // rcgen does not re-export the `time` type, so let inference name it.
        let ymd = |unix: u64| {
            let (y, m, d, ..) = crate::timefmt::civil(unix);
            rcgen::date_time_ymd(y as i32, m as u8, d as u8)
        };
        params.not_before = ymd(now_secs.saturating_sub(86_400));
        params.not_after = ymd(now_secs.saturating_add(validity_secs));
        let cert = params
            .self_signed(&key)
            .map_err(|e| format!("signing certificate: {e}"))?;
        let cert_der = cert.der().to_vec();
        let info = cert::parse(&cert_der).map_err(|e| e.to_string())?;
        Ok(Identity {
            fingerprint: super::fingerprint(&cert_der),
            not_after: info.not_after,
            cert_der,
            key_pkcs8: key.serialize_der(),
            rotation: None,
        })
    }

    /// A proof, signed by this (old) identity, that `new` replaces it.
    pub fn rotation_proof_for(
        &self,
        agent_id: &str,
        new: &Identity,
    ) -> Result<RotationProof, String> {
        Ok(RotationProof {
            old_cert_der: self.cert_der.clone(),
            signature: self.sign(&rotation_message(agent_id, &new.fingerprint))?,
        })
    }
}

pub fn sign(key_pkcs8: &[u8], msg: &[u8]) -> Result<Vec<u8>, String> {
    sign_with(key_pkcs8, msg, &SystemRandom::new())
}

/// `sign` with the caller's RNG (see `gossip::entropy`).
pub fn sign_with(key_pkcs8: &[u8], msg: &[u8], rng: &dyn SecureRandom) -> Result<Vec<u8>, String> {
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, key_pkcs8, rng)
        .map_err(|e| format!("loading private key: {e}"))?;
    let sig = pair.sign(rng, msg).map_err(|e| format!("signing: {e}"))?;
    Ok(sig.as_ref().to_vec())
}

pub fn verify(public_key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public_key)
        .verify(msg, sig)
        .is_ok()
}

/// What the agent signs to register: the Overwatch's challenge bound to
/// the agent id, its session and region, the certificate and the agent's
/// ephemeral key for the session key.
pub fn register_message(
    challenge: &[u8; 32],
    agent_id: &str,
    agent_session: u64,
    region: &str,
    fingerprint: &str,
    agent_dh: &[u8; 32],
) -> Vec<u8> {
    let mut w = super::wire::Writer(b"opengslb-register-v1\0".to_vec());
    w.0.extend_from_slice(challenge);
    w.str(agent_id);
    w.u64(agent_session);
    w.str(region);
    w.str(fingerprint);
    w.0.extend_from_slice(agent_dh);
    w.0
}

/// What the old key signs to hand the pin to a new certificate.
pub fn rotation_message(agent_id: &str, new_fingerprint: &str) -> Vec<u8> {
    let mut w = super::wire::Writer(b"opengslb-rotate-v1\0".to_vec());
    w.str(agent_id);
    w.str(new_fingerprint);
    w.0
}

/// `<region>-<hostname>`.
pub fn default_agent_id(region: &str) -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(gethostname)
        .unwrap_or_else(|| "localhost".to_string());
    format!("{region}-{host}")
}

fn gethostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its full length, which is what we pass.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec()).ok()
}

/// Loads the identity at `cert_path`/`key_path`, or generates and writes a
/// new one when either file is missing, unreadable, mismatched or the
/// certificate has expired.
pub fn ensure_certificate(
    cert_path: &str,
    key_path: &str,
    agent_id: &str,
) -> Result<Identity, String> {
    ensure_certificate_at(
        Path::new(cert_path),
        Path::new(key_path),
        agent_id,
        crate::timefmt::unix_now(),
    )
}

pub fn ensure_certificate_at(
    cert_path: &Path,
    key_path: &Path,
    agent_id: &str,
    now_secs: u64,
) -> Result<Identity, String> {
    let old = load(cert_path, key_path);
    if let Some(id) = &old {
        if id.not_after > now_secs {
            let mut id = id.clone();
            id.rotation = load_rotation(cert_path, &id.fingerprint);
            return Ok(id);
        }
        log::warn!(
            "certificate {} expired at {}; generating a new one",
            cert_path.display(),
            crate::timefmt::rfc3339(id.not_after)
        );
    } else {
        log::info!("generating agent certificate {}", cert_path.display());
    }
    let mut new = Identity::generate(agent_id, now_secs, CERT_VALIDITY_SECS)?;
    if let Some(old) = &old {
        let proof = old.rotation_proof_for(agent_id, &new)?;
        write_file(
            &rotation_path(cert_path),
            encode_rotation(&proof, &new.fingerprint).as_bytes(),
            0o644,
        )?;
        new.rotation = Some(proof);
    }
    let key_pem = pem("PRIVATE KEY", &new.key_pkcs8);
    write_file(key_path, key_pem.as_bytes(), 0o600)?;
    write_file(
        cert_path,
        pem("CERTIFICATE", &new.cert_der).as_bytes(),
        0o644,
    )?;
    Ok(new)
}

/// The pair on disk, when both files read, parse and belong together.
fn load(cert_path: &Path, key_path: &Path) -> Option<Identity> {
    let cert_der = unpem(&fs::read_to_string(cert_path).ok()?, "CERTIFICATE")?;
    let key_pkcs8 = unpem(&fs::read_to_string(key_path).ok()?, "PRIVATE KEY")?;
    let info = cert::parse(&cert_der).ok()?;
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        &key_pkcs8,
        &SystemRandom::new(),
    )
    .ok()?;
    if pair.public_key().as_ref() != info.public_key.as_slice() {
        log::warn!(
            "key {} does not match certificate {}",
            key_path.display(),
            cert_path.display()
        );
        return None;
    }
    Some(Identity {
        fingerprint: super::fingerprint(&cert_der),
        not_after: info.not_after,
        cert_der,
        key_pkcs8,
        rotation: None,
    })
}

fn rotation_path(cert_path: &Path) -> PathBuf {
    let mut p = cert_path.as_os_str().to_owned();
    p.push(".rotation");
    PathBuf::from(p)
}

fn encode_rotation(p: &RotationProof, new_fingerprint: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "{}\n{}\n{}\n",
        new_fingerprint,
        b64.encode(&p.old_cert_der),
        b64.encode(&p.signature)
    )
}

fn load_rotation(cert_path: &Path, fingerprint: &str) -> Option<RotationProof> {
    let text = fs::read_to_string(rotation_path(cert_path)).ok()?;
    let mut lines = text.lines();
    if lines.next()? != fingerprint {
        return None;
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    Some(RotationProof {
        old_cert_der: b64.decode(lines.next()?).ok()?,
        signature: b64.decode(lines.next()?).ok()?,
    })
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(chunk));
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

fn unpem(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text.get(start..)?.find(&end)?;
    let body: String = text
        .get(start..stop)?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// Writes through a temporary file and a rename so a crash never leaves
/// half a key; the mode is set before any byte is written.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let ctx = |e: std::io::Error| format!("writing {}: {e}", path.display());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(ctx)?;
    }
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(ctx)?;
    f.write_all(bytes).map_err(ctx)?;
    f.sync_all().map_err(ctx)?;
    fs::rename(&tmp, path).map_err(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmpdir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("opengslb-identity-{name}-{}", std::process::id()));
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
}
