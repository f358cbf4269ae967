//! The key file format (documented in docs/dnssec.md): a few `name:
//! value` lines, `#` comments allowed.
//!
//! ```text
//! # OpenGSLB DNSSEC combined signing key. Secret: keep mode 0600.
//! zone: example.com.
//! algorithm: ECDSAP256SHA256
//! created: 1796300000
//! private_key_pkcs8: MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg...
//! ```
//!
//! `created` is Unix seconds; `private_key_pkcs8` the PKCS#8 document in
//! standard base64. Only parsing and formatting live here; the callers
//! check permissions and read or write the file.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::key::{Algorithm, SigningKey, generate_pkcs8};

#[derive(Clone)]
pub struct KeyFile {
    pub zone: String,
    pub algorithm: Algorithm,
    pub created: u64,
    pub pkcs8: Vec<u8>,
}

impl KeyFile {
    pub fn generate(zone: &str, algorithm: Algorithm, created: u64) -> Result<KeyFile, String> {
        Ok(KeyFile {
            zone: fqdn(zone),
            algorithm,
            created,
            pkcs8: generate_pkcs8(algorithm)?,
        })
    }

    pub fn parse(text: &str) -> Result<KeyFile, String> {
        let (mut zone, mut algorithm, mut created, mut pkcs8) = (None, None, None, None);
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(format!("line {}: expected `name: value`", i + 1));
            };
            let value = value.trim();
            match name.trim() {
                "zone" => zone = Some(fqdn(value)),
                "algorithm" => {
                    algorithm = Some(Algorithm::parse(value).ok_or_else(|| {
                        format!(
                            "line {}: unknown algorithm {value:?} (ECDSAP256SHA256 or ED25519)",
                            i + 1
                        )
                    })?)
                }
                "created" => {
                    created = Some(
                        value
                            .parse::<u64>()
                            .map_err(|_| format!("line {}: created must be Unix seconds", i + 1))?,
                    )
                }
                "private_key_pkcs8" => {
                    pkcs8 =
                        Some(STANDARD.decode(value).map_err(|_| {
                            format!("line {}: private_key_pkcs8 is not base64", i + 1)
                        })?)
                }
                other => return Err(format!("line {}: unknown field {other:?}", i + 1)),
            }
        }
        let missing = |f: &str| format!("missing field `{f}`");
        let kf = KeyFile {
            zone: zone.ok_or_else(|| missing("zone"))?,
            algorithm: algorithm.ok_or_else(|| missing("algorithm"))?,
            created: created.unwrap_or(0),
            pkcs8: pkcs8.ok_or_else(|| missing("private_key_pkcs8"))?,
        };
        kf.signing_key()?;
        Ok(kf)
    }

    pub fn to_text(&self) -> String {
        format!(
            "# OpenGSLB DNSSEC combined signing key. Secret: keep mode 0600.\n\
             zone: {}\nalgorithm: {}\ncreated: {}\nprivate_key_pkcs8: {}\n",
            self.zone,
            self.algorithm.mnemonic(),
            self.created,
            STANDARD.encode(&self.pkcs8)
        )
    }

    pub fn signing_key(&self) -> Result<SigningKey, String> {
        SigningKey::from_pkcs8(self.algorithm, &self.pkcs8)
    }
}

/// Lower case with a final dot.
pub fn fqdn(zone: &str) -> String {
    let mut z = zone.trim().to_ascii_lowercase();
    if !z.ends_with('.') {
        z.push('.');
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let kf = KeyFile::generate("Example.COM", Algorithm::Ed25519, 42).unwrap();
        let back = KeyFile::parse(&kf.to_text()).unwrap();
        assert_eq!(back.zone, "example.com.");
        assert_eq!(back.algorithm, Algorithm::Ed25519);
        assert_eq!(back.created, 42);
        assert_eq!(
            back.signing_key().unwrap().key_tag(),
            kf.signing_key().unwrap().key_tag()
        );
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let err = |t: &str| KeyFile::parse(t).err().unwrap();
        assert!(err("zone: a.\n").contains("algorithm"));
        assert!(err("zone a\n").contains("line 1"));
        assert!(err("zone: a.\nalgorithm: RSASHA1\n").contains("unknown algorithm"));
        assert!(err("zone: a.\nalgorithm: ED25519\nprivate_key_pkcs8: !!\n").contains("base64"));
        assert!(err("zone: a.\nalgorithm: ED25519\nprivate_key_pkcs8: AAAA\n").contains("ED25519"));
        assert!(err("zone: a.\nfoo: 1\n").contains("unknown field"));
    }
}
