//! One combined signing key (CSK): algorithm, private key (ring), and the
//! public values derived from it — DNSKEY RDATA, key tag (RFC 4034
//! Appendix B), DS SHA-256 (RFC 4509) and CDS/CDNSKEY (RFC 7344, the same
//! RDATA as DS and DNSKEY).
//!
//! Both algorithms give 64-byte signatures: ECDSA P-256 with SHA-256 in
//! the fixed r||s form RFC 6605 asks for, and Ed25519 (RFC 8080).

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use std::fmt;

use super::wire;

/// DNSKEY flags of a CSK: Zone Key and Secure Entry Point.
pub const CSK_FLAGS: u16 = 257;
/// Every signature both algorithms make is this long.
pub const SIGNATURE_LEN: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    EcdsaP256Sha256,
    Ed25519,
}

impl Algorithm {
    /// IANA DNSSEC algorithm number.
    pub fn number(self) -> u8 {
        match self {
            Algorithm::EcdsaP256Sha256 => 13,
            Algorithm::Ed25519 => 15,
        }
    }

    /// The mnemonic used in the configuration, the key file and the CLI.
    pub fn mnemonic(self) -> &'static str {
        match self {
            Algorithm::EcdsaP256Sha256 => "ECDSAP256SHA256",
            Algorithm::Ed25519 => "ED25519",
        }
    }

    pub fn parse(s: &str) -> Option<Algorithm> {
        match s.to_ascii_uppercase().as_str() {
            "ECDSAP256SHA256" | "13" => Some(Algorithm::EcdsaP256Sha256),
            "ED25519" | "15" => Some(Algorithm::Ed25519),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mnemonic())
    }
}

enum Pair {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

pub struct SigningKey {
    algorithm: Algorithm,
    pair: Pair,
    rng: SystemRandom,
    dnskey_rdata: Vec<u8>,
    key_tag: u16,
}

impl fmt::Debug for SigningKey {
    // Never prints key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("key_tag", &self.key_tag)
            .finish()
    }
}

/// Creates a new private key in PKCS#8 form.
pub fn generate_pkcs8(algorithm: Algorithm) -> Result<Vec<u8>, String> {
    let rng = SystemRandom::new();
    let doc = match algorithm {
        Algorithm::EcdsaP256Sha256 => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        }
        Algorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng),
    }
    .map_err(|_| "the system random number generator failed".to_string())?;
    Ok(doc.as_ref().to_vec())
}

impl SigningKey {
    pub fn from_pkcs8(algorithm: Algorithm, pkcs8: &[u8]) -> Result<SigningKey, String> {
        let rng = SystemRandom::new();
        let (pair, public) = match algorithm {
            Algorithm::EcdsaP256Sha256 => {
                let p = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
                    .map_err(|e| format!("not an ECDSAP256SHA256 private key: {e}"))?;
                // ring gives the uncompressed point 0x04||x||y; DNSKEY holds x||y.
                let public = p.public_key().as_ref()[1..].to_vec();
                (Pair::Ecdsa(p), public)
            }
            Algorithm::Ed25519 => {
                let p = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
                    .map_err(|e| format!("not an ED25519 private key: {e}"))?;
                let public = p.public_key().as_ref().to_vec();
                (Pair::Ed25519(p), public)
            }
        };
        let mut dnskey_rdata = Vec::with_capacity(4 + public.len());
        dnskey_rdata.extend_from_slice(&CSK_FLAGS.to_be_bytes());
        dnskey_rdata.push(3); // protocol
        dnskey_rdata.push(algorithm.number());
        dnskey_rdata.extend_from_slice(&public);
        let key_tag = key_tag(&dnskey_rdata);
        Ok(SigningKey {
            algorithm,
            pair,
            rng,
            dnskey_rdata,
            key_tag,
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn key_tag(&self) -> u16 {
        self.key_tag
    }

    /// RDATA of the DNSKEY (and CDNSKEY) record.
    pub fn dnskey_rdata(&self) -> &[u8] {
        &self.dnskey_rdata
    }

    /// RDATA of the DS (and CDS) record with digest type 2 (SHA-256).
    pub fn ds_rdata(&self, zone: &str) -> Result<Vec<u8>, wire::NameError> {
        let mut input = wire::name_wire(zone)?;
        input.extend_from_slice(&self.dnskey_rdata);
        let digest = ring::digest::digest(&ring::digest::SHA256, &input);
        let mut rdata = Vec::with_capacity(4 + 32);
        rdata.extend_from_slice(&self.key_tag.to_be_bytes());
        rdata.push(self.algorithm.number());
        rdata.push(2);
        rdata.extend_from_slice(digest.as_ref());
        Ok(rdata)
    }

    /// The DS record in presentation form, as the parent zone takes it.
    pub fn ds_text(&self, zone: &str) -> Result<String, wire::NameError> {
        let rdata = self.ds_rdata(zone)?;
        let mut fqdn = zone.to_ascii_lowercase();
        if !fqdn.ends_with('.') {
            fqdn.push('.');
        }
        let hex: String = rdata[4..].iter().map(|b| format!("{b:02X}")).collect();
        Ok(format!(
            "{fqdn} IN DS {} {} 2 {hex}",
            self.key_tag,
            self.algorithm.number()
        ))
    }

    /// Signs `data` into `out`.
    pub fn sign(&self, data: &[u8], out: &mut [u8; SIGNATURE_LEN]) -> Result<(), String> {
        match &self.pair {
            Pair::Ecdsa(p) => {
                let sig = p
                    .sign(&self.rng, data)
                    .map_err(|_| "ECDSA signing failed".to_string())?;
                out.copy_from_slice(sig.as_ref());
            }
            Pair::Ed25519(p) => out.copy_from_slice(p.sign(data).as_ref()),
        }
        Ok(())
    }

    /// The public key alone (no flags, protocol or algorithm).
    pub fn public_key(&self) -> &[u8] {
        &self.dnskey_rdata[4..]
    }
}

/// Key tag of a DNSKEY RDATA (RFC 4034 Appendix B).
pub fn key_tag(dnskey_rdata: &[u8]) -> u16 {
    let mut ac: u32 = 0;
    for (i, b) in dnskey_rdata.iter().enumerate() {
        ac += if i & 1 == 1 {
            *b as u32
        } else {
            (*b as u32) << 8
        };
    }
    ac += (ac >> 16) & 0xFFFF;
    (ac & 0xFFFF) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn key_tag_matches_rfc_example() {
        // RFC 6605 §6.1 example KSK (ECDSAP256SHA256, flags 257), key tag 55648.
        let pk = base64::engine::general_purpose::STANDARD
            .decode(
                "GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==",
            )
            .unwrap();
        let mut rdata = vec![1, 1, 3, 13];
        rdata.extend_from_slice(&pk);
        assert_eq!(key_tag(&rdata), 55648);
    }

    #[test]
    fn ds_matches_rfc_example() {
        // Same RFC 6605 §6.1 key: its SHA-256 DS digest.
        let pk = base64::engine::general_purpose::STANDARD
            .decode(
                "GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==",
            )
            .unwrap();
        let mut input = wire::name_wire("example.net.").unwrap();
        input.extend_from_slice(&[1, 1, 3, 13]);
        input.extend_from_slice(&pk);
        let d = ring::digest::digest(&ring::digest::SHA256, &input);
        let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "b4c8c1fe2e7477127b27115656ad6256f424625bf5c1e2770ce6d6e37df61d17"
        );
    }

    #[test]
    fn generated_keys_sign_and_verify() {
        for alg in [Algorithm::EcdsaP256Sha256, Algorithm::Ed25519] {
            let k = SigningKey::from_pkcs8(alg, &generate_pkcs8(alg).unwrap()).unwrap();
            let mut sig = [0u8; SIGNATURE_LEN];
            k.sign(b"hello", &mut sig).unwrap();
            let verify: &dyn ring::signature::VerificationAlgorithm = match alg {
                Algorithm::EcdsaP256Sha256 => &ring::signature::ECDSA_P256_SHA256_FIXED,
                Algorithm::Ed25519 => &ring::signature::ED25519,
            };
            let mut public = Vec::new();
            if alg == Algorithm::EcdsaP256Sha256 {
                public.push(4);
            }
            public.extend_from_slice(k.public_key());
            ring::signature::UnparsedPublicKey::new(verify, &public)
                .verify(b"hello", &sig)
                .unwrap();
            assert_eq!(k.dnskey_rdata()[3], alg.number());
            assert_eq!(k.key_tag(), key_tag(k.dnskey_rdata()));
            let ds = k.ds_text("Example.COM").unwrap();
            assert!(ds.starts_with(&format!(
                "example.com. IN DS {} {} 2 ",
                k.key_tag(),
                alg.number()
            )));
        }
    }

    #[test]
    fn wrong_algorithm_is_rejected() {
        let ed = generate_pkcs8(Algorithm::Ed25519).unwrap();
        assert!(SigningKey::from_pkcs8(Algorithm::EcdsaP256Sha256, &ed).is_err());
        assert!(SigningKey::from_pkcs8(Algorithm::Ed25519, b"garbage").is_err());
    }
}
