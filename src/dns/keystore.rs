//! DNSSEC key files on disk (SPEC §13): where they are, reading them with
//! the same permission rule as the configuration (a file every user may
//! read is refused), and the key ring the DNS table signs with.
//!
//! Each zone of `dns.zones` is signed with the key in
//! `data_dir/dnssec/<zone>.key`, or in `overwatch.dnssec.key_file` for
//! the zone that file names. The format is in `dnssec::keyfile`.

use super::dnssec::rollover::{Phase, RollState};
use super::dnssec::{Algorithm, KeyFile, SigningKey, wire};
use crate::config::Config;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct ZoneKey {
    /// Lower case, final dot.
    pub zone: String,
    pub apex_wire: Vec<u8>,
    /// The key that signs the zone's RRsets (CDS/CDNSKEY show it).
    pub key: Arc<SigningKey>,
    /// RDATA of the DS / CDS record (SHA-256) of `key`.
    pub ds_rdata: Vec<u8>,
    /// The DNSKEY RRset: `key`, and during a rollover the other key.
    pub dnskeys: Vec<Arc<SigningKey>>,
    /// The keys whose RRSIGs cover the DNSKEY RRset.
    pub dnskey_signers: Vec<Arc<SigningKey>>,
    /// A rollover in progress (`<key file>.roll`), None otherwise.
    pub roll: Option<RollState>,
    pub file: PathBuf,
    pub created: u64,
}

/// `<key file>.roll`: the rollover state (rollover.rs).
pub fn roll_path(key_file: &Path) -> PathBuf {
    suffixed(key_file, ".roll")
}

/// `<key file>.next`: the key being rolled in.
pub fn next_key_path(key_file: &Path) -> PathBuf {
    suffixed(key_file, ".next")
}

/// `<key file>.retired`: the key rolled out, kept until the next roll.
pub fn retired_key_path(key_file: &Path) -> PathBuf {
    suffixed(key_file, ".retired")
}

fn suffixed(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The key of `zone` in `path`, with the rollover beside it if one is in
/// progress (what the daemon loads for each zone).
pub fn load_zone_key(zone: &str, path: &Path, algorithm: Algorithm) -> Result<ZoneKey, String> {
    let k = read_key_file(path)?;
    with_rollover(zone_key(zone, path, &k, algorithm)?, algorithm)
}

/// Applies `<key file>.roll` and `.next` when they exist: published, the
/// new key only joins the DNSKEY RRset; active, it signs everything and
/// both keys sign the DNSKEY RRset.
fn with_rollover(mut zk: ZoneKey, algorithm: Algorithm) -> Result<ZoneKey, String> {
    let state_file = roll_path(&zk.file);
    let text = match std::fs::read_to_string(&state_file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(zk),
        Err(e) => return Err(format!("{}: cannot read: {e}", state_file.display())),
    };
    let state = RollState::parse(&text).map_err(|e| format!("{}: {e}", state_file.display()))?;
    let next_file = next_key_path(&zk.file);
    let next = zone_key(&zk.zone, &next_file, &read_key_file(&next_file)?, algorithm)?;
    let (old, new) = (Arc::clone(&zk.key), Arc::clone(&next.key));
    match state.phase {
        Phase::Published => {
            zk.dnskeys = vec![old.clone(), new];
            zk.dnskey_signers = vec![old];
        }
        Phase::Active => {
            zk.key = Arc::clone(&new);
            zk.ds_rdata = next.ds_rdata;
            zk.dnskeys = vec![new.clone(), old.clone()];
            zk.dnskey_signers = vec![new, old];
        }
    }
    zk.roll = Some(state);
    Ok(zk)
}

/// The keys of every signed zone; shared by all DNS threads.
#[derive(Default)]
pub struct KeyRing {
    pub zones: Vec<ZoneKey>,
}

impl KeyRing {
    /// A ring from key files already read (tests, tools).
    pub fn from_key_files(files: &[(PathBuf, KeyFile)]) -> Result<KeyRing, String> {
        let zones = files
            .iter()
            .map(|(p, k)| zone_key(&k.zone, p, k, k.algorithm))
            .collect::<Result<_, _>>()?;
        Ok(KeyRing { zones })
    }

    /// The key of the zone whose apex is `apex_wire` (canonical form).
    pub fn find(&self, apex_wire: &[u8]) -> Option<&ZoneKey> {
        self.zones
            .iter()
            .find(|z| z.apex_wire.eq_ignore_ascii_case(apex_wire))
    }
}

impl PartialEq for KeyRing {
    fn eq(&self, other: &KeyRing) -> bool {
        self.zones.len() == other.zones.len()
            && self.zones.iter().zip(&other.zones).all(|(a, b)| {
                let rdata = |keys: &[Arc<SigningKey>]| {
                    keys.iter()
                        .map(|k| k.dnskey_rdata().to_vec())
                        .collect::<Vec<_>>()
                };
                a.zone == b.zone
                    && a.key.dnskey_rdata() == b.key.dnskey_rdata()
                    && rdata(&a.dnskeys) == rdata(&b.dnskeys)
                    && rdata(&a.dnskey_signers) == rdata(&b.dnskey_signers)
                    && a.roll == b.roll
            })
    }
}

impl Eq for KeyRing {}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.zones.iter().map(|z| (&z.zone, z.key.key_tag())))
            .finish()
    }
}

/// `data_dir/dnssec/<zone>.key` (zone without the final dot).
pub fn default_path(data_dir: &str, zone: &str) -> PathBuf {
    let z = super::dnssec::keyfile::fqdn(zone);
    Path::new(data_dir)
        .join("dnssec")
        .join(format!("{}.key", z.trim_end_matches('.')))
}

/// Reads and parses one key file, refusing one every user may read.
pub fn read_key_file(path: &Path) -> Result<KeyFile, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("DNSSEC key file {shown}: {e}"))?;
    if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o004 != 0 {
        return Err(format!(
            "DNSSEC key file {shown} is readable by every user; fix it with: chmod 600 {shown}"
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("DNSSEC key file {shown}: cannot read: {e}"))?;
    KeyFile::parse(&text).map_err(|e| format!("DNSSEC key file {shown}: {e}"))
}

/// The key ring for `cfg`, None when signing is off. Errors are
/// (configuration key, message naming the file), one per zone.
pub fn load(cfg: &Config) -> Result<Option<KeyRing>, Vec<(String, String)>> {
    let d = &cfg.overwatch.dnssec;
    if !d.enabled {
        return Ok(None);
    }
    let mut errors = Vec::new();
    let Some(algorithm) = Algorithm::parse(&d.algorithm) else {
        return Err(vec![(
            "overwatch.dnssec.algorithm".into(),
            format!(
                "unknown algorithm {:?} (ECDSAP256SHA256 or ED25519)",
                d.algorithm
            ),
        )]);
    };
    let explicit = match &d.key_file {
        Some(f) => match read_key_file(Path::new(f)) {
            Ok(k) => Some((PathBuf::from(f), k)),
            Err(e) => {
                errors.push(("overwatch.dnssec.key_file".into(), e));
                None
            }
        },
        None => None,
    };
    if let Some((path, k)) = &explicit
        && !cfg
            .dns
            .zones
            .iter()
            .any(|z| super::dnssec::keyfile::fqdn(z) == k.zone)
    {
        errors.push((
            "overwatch.dnssec.key_file".into(),
            format!(
                "{} is the key of zone {}, which is not in dns.zones",
                path.display(),
                k.zone
            ),
        ));
    }
    if cfg.dns.zones.is_empty() {
        errors.push((
            "overwatch.dnssec.enabled".into(),
            "signing needs at least one zone in dns.zones".into(),
        ));
    }
    let mut ring = KeyRing::default();
    for zone in &cfg.dns.zones {
        let fqdn = super::dnssec::keyfile::fqdn(zone);
        let (path, file) = match &explicit {
            Some((p, k)) if k.zone == fqdn => (p.clone(), Ok(k.clone())),
            _ => {
                let p = default_path(&cfg.overwatch.data_dir, zone);
                let r = read_key_file(&p);
                (p, r)
            }
        };
        let result = file
            .and_then(|k| zone_key(&fqdn, &path, &k, algorithm))
            .and_then(|zk| with_rollover(zk, algorithm));
        match result {
            Ok(zk) => ring.zones.push(zk),
            Err(e) => errors.push((
                "overwatch.dnssec".into(),
                format!("zone {fqdn}: {e} (create it with: opengslb-cli dnssec keygen {fqdn})"),
            )),
        }
    }
    if errors.is_empty() {
        Ok(Some(ring))
    } else {
        Err(errors)
    }
}

fn zone_key(zone: &str, path: &Path, k: &KeyFile, algorithm: Algorithm) -> Result<ZoneKey, String> {
    if k.zone != zone {
        return Err(format!(
            "{} holds the key of zone {}",
            path.display(),
            k.zone
        ));
    }
    if k.algorithm != algorithm {
        return Err(format!(
            "{} holds an {} key but overwatch.dnssec.algorithm is {}",
            path.display(),
            k.algorithm,
            algorithm
        ));
    }
    let key = k
        .signing_key()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let ds_rdata = key.ds_rdata(zone).map_err(|e| e.to_string())?;
    let key = Arc::new(key);
    Ok(ZoneKey {
        ds_rdata,
        zone: zone.to_string(),
        apex_wire: wire::name_wire(zone).map_err(|e| e.to_string())?,
        dnskeys: vec![Arc::clone(&key)],
        dnskey_signers: vec![Arc::clone(&key)],
        roll: None,
        key,
        file: path.to_path_buf(),
        created: k.created,
    })
}

/// `GET /api/v1/dnssec` and `opengslb-cli dnssec status`: the keys the
/// DNS table signs with (public facts only) and the signature caches.
pub fn status(table: &super::DnsTable, stats: &super::DnsStats) -> serde_json::Value {
    use std::sync::atomic::Ordering::Relaxed;
    let zones: Vec<serde_json::Value> = table
        .dnssec
        .iter()
        .flat_map(|r| r.zones.iter())
        .map(|z| {
            serde_json::json!({
                "zone": z.zone,
                "algorithm": z.key.algorithm().mnemonic(),
                "key_tag": z.key.key_tag(),
                "flags": super::dnssec::key::CSK_FLAGS,
                "created": z.created,
                "key_file": z.file.display().to_string(),
                "ds": z.key.ds_text(&z.zone).unwrap_or_default(),
                "dnskey_tags": z.dnskeys.iter().map(|k| k.key_tag()).collect::<Vec<_>>(),
                "rollover": z.roll.as_ref().map(|r| serde_json::json!({
                    "phase": r.phase.name(),
                    "since": r.since,
                    "next_step_at": r.next_step,
                    "next_step": r.phase.next_step(),
                })),
            })
        })
        .collect();
    let d = &stats.dnssec;
    let (hits, misses) = (d.cache_hits.load(Relaxed), d.cache_misses.load(Relaxed));
    let rate = if hits + misses == 0 {
        0.0
    } else {
        hits as f64 / (hits + misses) as f64
    };
    serde_json::json!({
        "enabled": table.dnssec.is_some(),
        "zones": zones,
        "signature_cache": {
            "hits": hits,
            "misses": misses,
            "hit_rate": rate,
            "entries": d.cache_entries.load(Relaxed),
            "bytes": d.cache_bytes.load(Relaxed),
        },
    })
}
