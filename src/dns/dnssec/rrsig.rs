//! The RRSIG record (RFC 4034 §3): its fixed fields, the RDATA prefix
//! that precedes the signature, and the data that is signed (§3.1.8.1):
//! RRSIG RDATA without the signature, then every RR of the set in
//! canonical form and order.
//!
//! Callers pass RDATA already in canonical form (names in it lower case
//! and uncompressed); for the records the GSLB signs (A, AAAA, SOA, NS,
//! DNSKEY, CDS, CDNSKEY, NSEC) that is how the responder writes them.

pub const CLASS_IN: u16 = 1;
pub const TYPE_RRSIG: u16 = 46;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RrsigFields {
    pub type_covered: u16,
    pub algorithm: u8,
    pub labels: u8,
    pub original_ttl: u32,
    pub expiration: u32,
    pub inception: u32,
    pub key_tag: u16,
}

impl RrsigFields {
    /// RRSIG RDATA up to (not including) the signature.
    pub fn write_prefix(&self, signer_wire: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&self.type_covered.to_be_bytes());
        out.push(self.algorithm);
        out.push(self.labels);
        out.extend_from_slice(&self.original_ttl.to_be_bytes());
        out.extend_from_slice(&self.expiration.to_be_bytes());
        out.extend_from_slice(&self.inception.to_be_bytes());
        out.extend_from_slice(&self.key_tag.to_be_bytes());
        out.extend_from_slice(signer_wire);
    }

    /// Length of the RRSIG RDATA with a signature of `sig_len` bytes.
    pub fn rdata_len(signer_wire: &[u8], sig_len: usize) -> usize {
        18 + signer_wire.len() + sig_len
    }
}

/// Appends the RRs of one RRset in canonical form; `rdata` must already
/// be sorted and free of duplicates (`wire::sort_rdata`).
pub fn write_canonical_rrset(
    owner_wire: &[u8],
    rtype: u16,
    ttl: u32,
    rdata: &[&[u8]],
    out: &mut Vec<u8>,
) {
    for r in rdata {
        out.extend_from_slice(owner_wire);
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&(r.len() as u16).to_be_bytes());
        out.extend_from_slice(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::dnssec::wire;

    #[test]
    fn prefix_layout_follows_rfc4034() {
        let f = RrsigFields {
            type_covered: 1,
            algorithm: 13,
            labels: 3,
            original_ttl: 30,
            expiration: 0x01020304,
            inception: 0x05060708,
            key_tag: 0xABCD,
        };
        let signer = wire::name_wire("example.com").unwrap();
        let mut out = Vec::new();
        f.write_prefix(&signer, &mut out);
        assert_eq!(
            &out[..18],
            &[0, 1, 13, 3, 0, 0, 0, 30, 1, 2, 3, 4, 5, 6, 7, 8, 0xAB, 0xCD]
        );
        assert_eq!(&out[18..], &signer[..]);
        assert_eq!(RrsigFields::rdata_len(&signer, 64), out.len() + 64);
    }

    #[test]
    fn canonical_rrset_repeats_owner_per_record() {
        let owner = wire::name_wire("a.example").unwrap();
        let mut out = Vec::new();
        write_canonical_rrset(&owner, 1, 60, &[&[10, 0, 0, 1], &[10, 0, 0, 2]], &mut out);
        assert_eq!(out.len(), 2 * (owner.len() + 10 + 4));
        assert_eq!(
            &out[owner.len()..owner.len() + 10],
            &[0, 1, 0, 1, 0, 0, 0, 60, 0, 4]
        );
    }
}
