//! `opengslb-cli dnssec keygen|ds` (SPEC §13): local key management. These
//! commands read and write key files on this machine and never talk to the
//! API, so no key material crosses the network.

use super::args::Invocation;
use super::client::CliError;
use crate::dns::dnssec::{Algorithm, KeyFile};
use crate::dns::keystore;
use serde_json::json;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const DEFAULT_DATA_DIR: &str = "/var/lib/opengslb";

pub(super) fn zone_arg(inv: &Invocation) -> Result<String, CliError> {
    let zone = inv.arg(0).unwrap_or("");
    crate::dns::dnssec::wire::name_wire(zone)
        .ok()
        .filter(|w| w.len() > 1)
        .ok_or_else(|| CliError::Usage(format!("dnssec: {zone:?} is not a zone name")))?;
    Ok(crate::dns::dnssec::keyfile::fqdn(zone))
}

/// `overwatch.data_dir` of the file given with --config (read leniently:
/// the configuration may not be valid yet, e.g. signing enabled before
/// the key exists).
fn data_dir(inv: &Invocation) -> Result<String, CliError> {
    let Some(path) = inv.flag("config") else {
        return Ok(DEFAULT_DATA_DIR.to_string());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Config(format!("cannot read {path}: {e}")))?;
    let v: serde_norway::Value =
        serde_norway::from_str(&text).map_err(|e| CliError::Config(format!("{path}: {e}")))?;
    Ok(v.get("overwatch")
        .and_then(|o| o.get("data_dir"))
        .and_then(|d| d.as_str())
        .unwrap_or(DEFAULT_DATA_DIR)
        .to_string())
}

/// `dns.soa.ttl` of the file given with --config (the TTL the DNSKEY
/// RRset is served with), 3600 without one; read leniently like data_dir.
pub(super) fn dnskey_ttl(inv: &Invocation) -> Result<u64, CliError> {
    let Some(path) = inv.flag("config") else {
        return Ok(3600);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Config(format!("cannot read {path}: {e}")))?;
    let v: serde_norway::Value =
        serde_norway::from_str(&text).map_err(|e| CliError::Config(format!("{path}: {e}")))?;
    Ok(v.get("dns")
        .and_then(|d| d.get("soa"))
        .and_then(|s| s.get("ttl"))
        .and_then(|t| t.as_u64())
        .unwrap_or(3600))
}

pub(super) fn key_path(inv: &Invocation, zone: &str) -> Result<PathBuf, CliError> {
    Ok(match inv.flag("key-file") {
        Some(f) => PathBuf::from(f),
        None => keystore::default_path(&data_dir(inv)?, zone),
    })
}

pub(super) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Writes `text` to a new file with mode 0600 (the directory 0700 if it
/// has to be made); an existing file is never replaced.
pub fn write_new_key(path: &Path, text: &str) -> Result<(), CliError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| CliError::Failure(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => CliError::Failure(format!(
                "{} exists; a zone's key is replaced with a rollover (docs/dnssec.md), not overwritten",
                path.display()
            )),
            _ => CliError::Failure(format!("cannot create {}: {e}", path.display())),
        })?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| CliError::Failure(format!("cannot write {}: {e}", path.display())))
}

pub fn keygen(inv: &Invocation, json_out: bool) -> Result<String, CliError> {
    let zone = zone_arg(inv)?;
    let alg_text = inv.flag("algorithm").unwrap_or("ECDSAP256SHA256");
    let algorithm = Algorithm::parse(alg_text).ok_or_else(|| {
        CliError::Usage(format!(
            "dnssec keygen: unknown algorithm {alg_text:?} (ECDSAP256SHA256 or ED25519)"
        ))
    })?;
    let path = key_path(inv, &zone)?;
    let kf = KeyFile::generate(&zone, algorithm, now_secs()).map_err(CliError::Failure)?;
    let key = kf.signing_key().map_err(CliError::Failure)?;
    write_new_key(&path, &kf.to_text())?;
    let ds = key
        .ds_text(&zone)
        .map_err(|e| CliError::Failure(e.to_string()))?;
    Ok(if json_out {
        super::commands::pretty(&json!({
            "zone": zone, "file": path.display().to_string(), "algorithm": algorithm.mnemonic(),
            "key_tag": key.key_tag(), "ds": ds,
        }))
    } else {
        format!(
            "wrote {} ({} key, key tag {}) for {zone}\n\
             copy it (mode 0600, owned by the service user) to every Overwatch of the zone,\n\
             then publish this DS at the parent:\n{ds}\n",
            path.display(),
            algorithm,
            key.key_tag()
        )
    })
}

pub fn ds(inv: &Invocation, json_out: bool) -> Result<String, CliError> {
    let zone = zone_arg(inv)?;
    let path = key_path(inv, &zone)?;
    let kf = keystore::read_key_file(&path).map_err(CliError::Config)?;
    if kf.zone != zone {
        return Err(CliError::Config(format!(
            "{} holds the key of zone {}, not {zone}",
            path.display(),
            kf.zone
        )));
    }
    let key = kf.signing_key().map_err(CliError::Config)?;
    let ds = key
        .ds_text(&zone)
        .map_err(|e| CliError::Failure(e.to_string()))?;
    Ok(if json_out {
        super::commands::pretty(&json!({
            "zone": zone, "key_tag": key.key_tag(), "algorithm": key.algorithm().number(),
            "digest_type": 2, "ds": ds,
        }))
    } else {
        format!("{ds}\n")
    })
}

/// `dnssec status` as text: one line per zone, then the cache figures.
pub fn render_status(v: &serde_json::Value) -> String {
    let mut out = String::new();
    let enabled = v.get("enabled").and_then(|e| e.as_bool()).unwrap_or(false);
    out.push_str(&format!(
        "signing: {}\n",
        if enabled { "on" } else { "off" }
    ));
    for z in v
        .get("zones")
        .and_then(|z| z.as_array())
        .into_iter()
        .flatten()
    {
        let f = |k: &str| {
            z.get(k)
                .map(|x| x.to_string().trim_matches('"').to_string())
                .unwrap_or_default()
        };
        out.push_str(&format!(
            "zone {}  algorithm {}  key tag {}  file {}\n  {}\n",
            f("zone"),
            f("algorithm"),
            f("key_tag"),
            f("key_file"),
            f("ds")
        ));
        if let Some(r) = z.get("rollover").filter(|r| !r.is_null()) {
            let g = |k: &str| {
                r.get(k)
                    .map(|x| x.to_string().trim_matches('"').to_string())
                    .unwrap_or_default()
            };
            out.push_str(&format!(
                "  rollover: phase {} since {}; next step at {}: {}\n  DNSKEY key tags {}\n",
                g("phase"),
                g("since"),
                g("next_step_at"),
                g("next_step"),
                f("dnskey_tags")
            ));
        }
    }
    if let Some(c) = v.get("signature_cache") {
        let g = |k: &str| c.get(k).cloned().unwrap_or_default();
        out.push_str(&format!(
            "signature cache: hits {}  misses {}  hit rate {:.3}  entries {}  bytes {}\n",
            g("hits"),
            g("misses"),
            g("hit_rate").as_f64().unwrap_or(0.0),
            g("entries"),
            g("bytes")
        ));
    }
    out
}
