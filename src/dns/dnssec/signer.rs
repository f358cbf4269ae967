//! The signer of one DNS thread: a signature cache and scratch buffers,
//! shared by every zone the thread answers for. `sign_rrset` returns the RRSIG fields and signature for an RRset,
//! computing the signature only on a cache miss. Scratch buffers are kept
//! between calls, so once warm a call allocates nothing.

use super::cache::{SignatureCache, Validity};
use super::key::{SIGNATURE_LEN, SigningKey};
use super::rrsig::{RrsigFields, write_canonical_rrset};
use super::wire;

pub struct Signer {
    pub cache: SignatureCache,
    rrs: Vec<u8>,
    data: Vec<u8>,
    /// Signatures computed (cache misses that signed).
    pub signed: u64,
}

impl Signer {
    pub fn new(cache: SignatureCache) -> Signer {
        Signer {
            cache,
            rrs: Vec::with_capacity(4096),
            data: Vec::with_capacity(4096),
            signed: 0,
        }
    }

    /// Signs the RRset `owner_wire`/`rtype` with `rdata` (reordered in
    /// place into canonical order) with `key` of the zone `zone_wire`.
    /// Both names in canonical (lower case) wire form.
    #[allow(clippy::too_many_arguments)]
    pub fn sign_rrset(
        &mut self,
        key: &SigningKey,
        zone_wire: &[u8],
        owner_wire: &[u8],
        rtype: u16,
        ttl: u32,
        rdata: &mut [&[u8]],
        unix_now: u64,
    ) -> Result<(RrsigFields, [u8; SIGNATURE_LEN]), String> {
        let n = wire::sort_rdata(rdata);
        self.rrs.clear();
        write_canonical_rrset(owner_wire, rtype, ttl, &rdata[..n], &mut self.rrs);
        let hash = self.cache.hash(key.key_tag(), rtype, &self.rrs);
        // The jitter comes from an unkeyed hash so every thread and every
        // Overwatch with this key computes the same validity fields.
        let validity = Validity::at(unix_now, jitter_hash(&self.rrs));
        let fields = RrsigFields {
            type_covered: rtype,
            algorithm: key.algorithm().number(),
            labels: wire::label_count(owner_wire),
            original_ttl: ttl,
            expiration: validity.expiration,
            inception: validity.inception,
            key_tag: key.key_tag(),
        };
        if let Some(sig) = self.cache.get(hash, validity.window) {
            return Ok((fields, *sig));
        }
        self.data.clear();
        fields.write_prefix(zone_wire, &mut self.data);
        self.data.extend_from_slice(&self.rrs);
        let mut sig = [0u8; SIGNATURE_LEN];
        key.sign(&self.data, &mut sig)?;
        self.signed += 1;
        self.cache.put(hash, validity.window, &sig);
        Ok((fields, sig))
    }
}

/// Hash of a canonical RRset for the expiry jitter (not secret).
fn jitter_hash(canonical_rrs: &[u8]) -> u64 {
    let mut h = crate::dns::siphash::SipHasher::new(&[0; 16], 1, 3);
    h.write(canonical_rrs);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::dnssec::key::{Algorithm, generate_pkcs8};

    fn verify(key: &SigningKey, data: &[u8], sig: &[u8]) -> bool {
        let (alg, public): (&dyn ring::signature::VerificationAlgorithm, Vec<u8>) =
            match key.algorithm() {
                Algorithm::EcdsaP256Sha256 => (
                    &ring::signature::ECDSA_P256_SHA256_FIXED,
                    [&[4u8][..], key.public_key()].concat(),
                ),
                Algorithm::Ed25519 => (&ring::signature::ED25519, key.public_key().to_vec()),
            };
        ring::signature::UnparsedPublicKey::new(alg, &public)
            .verify(data, sig)
            .is_ok()
    }

    #[test]
    fn signs_once_per_window_and_signature_verifies() {
        for alg in [Algorithm::EcdsaP256Sha256, Algorithm::Ed25519] {
            let key = SigningKey::from_pkcs8(alg, &generate_pkcs8(alg).unwrap()).unwrap();
            let zone = wire::name_wire("Example.com.").unwrap();
            let mut s = Signer::new(SignatureCache::new(64, [3; 16]));
            let owner = wire::name_wire("www.example.com").unwrap();
            let now = 1_800_000_000;
            let (f1, sig1) = s
                .sign_rrset(
                    &key,
                    &zone,
                    &owner,
                    1,
                    30,
                    &mut [&[10, 0, 0, 2], &[10, 0, 0, 1]],
                    now,
                )
                .unwrap();
            // Same set in another order: same entry, no new signature.
            let (f2, sig2) = s
                .sign_rrset(
                    &key,
                    &zone,
                    &owner,
                    1,
                    30,
                    &mut [&[10, 0, 0, 1], &[10, 0, 0, 2]],
                    now + 5,
                )
                .unwrap();
            assert_eq!((f1, sig1), (f2, sig2));
            assert_eq!(s.signed, 1);
            assert_eq!(f1.labels, 3);
            assert_eq!(f1.key_tag, key.key_tag());
            // Independent reconstruction of the signed data.
            let mut data = Vec::new();
            f1.write_prefix(&wire::name_wire("example.com").unwrap(), &mut data);
            write_canonical_rrset(&owner, 1, 30, &[&[10, 0, 0, 1], &[10, 0, 0, 2]], &mut data);
            assert!(verify(&key, &data, &sig1));
            // Another TTL or address is another RRset.
            s.sign_rrset(
                &key,
                &zone,
                &owner,
                1,
                60,
                &mut [&[10, 0, 0, 1], &[10, 0, 0, 2]],
                now,
            )
            .unwrap();
            s.sign_rrset(&key, &zone, &owner, 1, 30, &mut [&[10, 0, 0, 1]], now)
                .unwrap();
            assert_eq!(s.signed, 3);
            // The next day signs again.
            s.sign_rrset(
                &key,
                &zone,
                &owner,
                1,
                30,
                &mut [&[10, 0, 0, 1]],
                now + 86_400,
            )
            .unwrap();
            assert_eq!(s.signed, 4);
        }
    }
}
