//! The agent's identity: a self-signed ECDSA P-256 certificate and its key
//! on disk, generated when missing, unreadable or expired, renewed at two
//! thirds of its lifetime (`renew_at`, `renew`; the agent runtime keeps
//! the timer), and the signatures that prove possession of the key
//! (registration) and hand a pin over from an old key to a new one
//! (rotation).
//!
//! Whenever a certificate is replaced and its key still loads, the old key
//! signs the new fingerprint; that proof is written beside the certificate
//! (`<cert_path>.rotation`) so every Overwatch that still pins the old
//! certificate accepts the new one, even after an agent restart. The files
//! are written proof first, then certificate, then key, each through a
//! temporary file and a rename: a renewal cut short between the
//! certificate and the key leaves the old key beside the new certificate,
//! and the next start finds the old certificate in the proof, pairs it with
//! the key and renews again.

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
use std::time::Duration;

/// Validity of a generated certificate.
pub const CERT_VALIDITY_SECS: u64 = 365 * 86_400;

#[derive(Clone, Debug)]
pub struct Identity {
    pub cert_der: Vec<u8>,
    pub key_pkcs8: Vec<u8>,
    /// Hex SHA-256 of `cert_der`.
    pub fingerprint: String,
    /// Unix seconds.
    pub not_before: u64,
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

    /// A fresh identity that lives only in memory (tests, simulations):
    /// valid from a day before `now_secs` (clock skew) for `validity_secs`.
    pub fn generate(agent_id: &str, now_secs: u64, validity_secs: u64) -> Result<Identity, String> {
        Self::generate_valid(
            agent_id,
            now_secs.saturating_sub(86_400),
            now_secs.saturating_add(validity_secs),
        )
    }

    /// A fresh identity valid from `not_before` to `not_after` (unix
    /// seconds, exact), e.g. a short-lived one in tests.
    pub fn generate_valid(
        agent_id: &str,
        not_before: u64,
        not_after: u64,
    ) -> Result<Identity, String> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| format!("generating key: {e}"))?;
        let mut params = rcgen::CertificateParams::new(vec![agent_id.to_string()])
            .map_err(|e| format!("certificate for {agent_id:?}: {e}"))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, agent_id);
        // rcgen does not re-export the `time` type, so let inference name
        // it: the epoch plus a std Duration, to the second.
        let at = |unix: u64| rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(unix);
        params.not_before = at(not_before);
        params.not_after = at(not_after);
        let cert = params
            .self_signed(&key)
            .map_err(|e| format!("signing certificate: {e}"))?;
        let cert_der = cert.der().to_vec();
        let info = cert::parse(&cert_der).map_err(|e| e.to_string())?;
        Ok(Identity {
            fingerprint: super::fingerprint(&cert_der),
            not_before: info.not_before,
            not_after: info.not_after,
            cert_der,
            key_pkcs8: key.serialize_der(),
            rotation: None,
        })
    }

    /// Unix seconds at which this certificate is renewed (`renew_at`).
    pub fn renew_at(&self) -> u64 {
        renew_at(self.not_before, self.not_after)
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

/// When a certificate valid from `not_before` to `not_after` (unix
/// seconds) is renewed: two thirds into its lifetime. A generated one-year
/// certificate renews with about four months left, a 90-day one with 30
/// days, both far from the 14 days at which `OpenGSLBAgentCertExpiring`
/// fires.
pub fn renew_at(not_before: u64, not_after: u64) -> u64 {
    let life = not_after.saturating_sub(not_before) as u128;
    not_before.saturating_add((life * 2 / 3) as u64)
}

/// Loads the identity at `cert_path`/`key_path`, or generates and writes a
/// new one when either file is missing, unreadable, mismatched or the
/// certificate has expired. Renewal before expiry is the runtime's timer
/// (`renew_at`, `renew`).
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
    if let Some(id) = read(cert_path, key_path) {
        if id.not_after > now_secs {
            return Ok(id);
        }
        log::warn!(
            "certificate {} expired at {}; generating a new one",
            cert_path.display(),
            crate::timefmt::rfc3339(id.not_after)
        );
        return renew(cert_path, key_path, agent_id, &id, now_secs);
    }
    if let Some(old) = interrupted_renewal(cert_path, key_path) {
        log::warn!(
            "key {} belongs to the certificate the last renewal replaced (it was cut short); renewing again",
            key_path.display()
        );
        return renew(cert_path, key_path, agent_id, &old, now_secs);
    }
    log::info!("generating agent certificate {}", cert_path.display());
    let new = Identity::generate(agent_id, now_secs, CERT_VALIDITY_SECS)?;
    write_pair(cert_path, key_path, &new)?;
    Ok(new)
}

/// Replaces `old` on disk by a new key and a certificate valid
/// `CERT_VALIDITY_SECS` from `now_secs`, with the old key's signature over
/// the new fingerprint: the proof first, then the certificate, then the
/// key (0600), each written atomically. The returned identity carries the
/// proof, so every Overwatch that pins `old` moves its pin.
pub fn renew(
    cert_path: &Path,
    key_path: &Path,
    agent_id: &str,
    old: &Identity,
    now_secs: u64,
) -> Result<Identity, String> {
    let mut new = Identity::generate(agent_id, now_secs, CERT_VALIDITY_SECS)?;
    let proof = old.rotation_proof_for(agent_id, &new)?;
    write_file(
        &rotation_path(cert_path),
        encode_rotation(&proof, &new.fingerprint).as_bytes(),
        0o644,
    )?;
    new.rotation = Some(proof);
    write_pair(cert_path, key_path, &new)?;
    Ok(new)
}

/// Writes `id` as the certificate file and the key file (0600), each
/// atomically, certificate first (the module header says why).
pub fn write_pair(cert_path: &Path, key_path: &Path, id: &Identity) -> Result<(), String> {
    write_file(
        cert_path,
        pem("CERTIFICATE", &id.cert_der).as_bytes(),
        0o644,
    )?;
    write_file(
        key_path,
        pem("PRIVATE KEY", &id.key_pkcs8).as_bytes(),
        0o600,
    )
}

fn read_pem(path: &Path, label: &str) -> Option<Vec<u8>> {
    unpem(&fs::read_to_string(path).ok()?, label)
}

/// The identity on disk with its rotation proof, when both files read,
/// parse and belong together; never writes (tests, tools).
pub fn read(cert_path: &Path, key_path: &Path) -> Option<Identity> {
    let mut id = load(cert_path, key_path)?;
    id.rotation = load_rotation(cert_path, &id.fingerprint);
    Some(id)
}

/// The pair on disk, when both files read, parse and belong together.
fn load(cert_path: &Path, key_path: &Path) -> Option<Identity> {
    let cert_der = read_pem(cert_path, "CERTIFICATE")?;
    let key_pkcs8 = read_pem(key_path, "PRIVATE KEY")?;
    match pair(cert_der, key_pkcs8) {
        Ok(id) => Some(id),
        Err(e) => {
            log::warn!(
                "certificate {} with key {}: {e}",
                cert_path.display(),
                key_path.display()
            );
            None
        }
    }
}

/// A renewal cut short after the certificate and before the key: the
/// proof names the certificate on disk, and the key on disk belongs to the
/// old certificate the proof carries. That old pair, to renew from.
fn interrupted_renewal(cert_path: &Path, key_path: &Path) -> Option<Identity> {
    let cert_der = read_pem(cert_path, "CERTIFICATE")?;
    let proof = load_rotation(cert_path, &super::fingerprint(&cert_der))?;
    pair(proof.old_cert_der, read_pem(key_path, "PRIVATE KEY")?).ok()
}

fn pair(cert_der: Vec<u8>, key_pkcs8: Vec<u8>) -> Result<Identity, String> {
    let info = cert::parse(&cert_der).map_err(|e| e.to_string())?;
    let key = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        &key_pkcs8,
        &SystemRandom::new(),
    )
    .map_err(|e| format!("private key: {e}"))?;
    if key.public_key().as_ref() != info.public_key.as_slice() {
        return Err("the key does not match the certificate".into());
    }
    Ok(Identity {
        fingerprint: super::fingerprint(&cert_der),
        not_before: info.not_before,
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
    fs::rename(&tmp, path).map_err(ctx)?;
    // The rename durable before the next file is written, so a crash
    // keeps the order the module header relies on.
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
#[path = "identity_tests.rs"]
mod tests;
