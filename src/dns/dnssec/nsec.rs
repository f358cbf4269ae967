//! Compact denial of existence (RFC 9824): one NSEC record at the query
//! name whose next name is the name's immediate successor `\000.<name>`,
//! so it covers nothing else and cannot be used to walk the zone.
//!
//! NXDOMAIN is answered as NOERROR with an NSEC listing RRSIG, NSEC and
//! the NXNAME pseudo-type (128); NODATA with an NSEC listing the types
//! that exist at the name plus RRSIG and NSEC.

pub const TYPE_NSEC: u16 = 47;
pub const TYPE_NXNAME: u16 = 128;
pub const TYPE_RRSIG: u16 = 46;

/// Appends the type bitmap field (RFC 4034 §4.1.2) for `types`, which
/// need not be sorted; duplicates are harmless.
pub fn write_type_bitmap(types: &[u16], out: &mut Vec<u8>) {
    let mut bits = [0u8; 32];
    // At most 256 windows; scan them in order without sorting `types`.
    let mut next_window = types.iter().map(|t| (t >> 8) as i32).min();
    while let Some(w) = next_window {
        let window = w;
        bits.fill(0);
        let mut used = 0usize;
        for t in types.iter().filter(|t| (**t >> 8) as i32 == window) {
            let low = (*t & 0xFF) as usize;
            bits[low / 8] |= 0x80 >> (low % 8);
            used = used.max(low / 8 + 1);
        }
        out.push(window as u8);
        out.push(used as u8);
        out.extend_from_slice(&bits[..used]);
        next_window = types
            .iter()
            .map(|t| (t >> 8) as i32)
            .filter(|x| *x > window)
            .min();
    }
}

/// Appends the NSEC RDATA of compact denial for the name `owner_wire`
/// (canonical wire form) with the given types present.
pub fn write_compact_nsec(owner_wire: &[u8], types_present: &[u16], out: &mut Vec<u8>) {
    out.push(1);
    out.push(0);
    out.extend_from_slice(owner_wire);
    let mut types = [0u16; 16];
    let mut n = 0;
    for t in types_present.iter().take(14) {
        types[n] = *t;
        n += 1;
    }
    types[n] = TYPE_RRSIG;
    types[n + 1] = TYPE_NSEC;
    write_type_bitmap(&types[..n + 2], out);
}

/// Appends the NSEC RDATA that answers for a name that does not exist.
pub fn write_nxname_nsec(owner_wire: &[u8], out: &mut Vec<u8>) {
    write_compact_nsec(owner_wire, &[TYPE_NXNAME], out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::dnssec::wire;

    #[test]
    fn bitmap_for_a_rrsig_nsec() {
        let mut out = Vec::new();
        write_type_bitmap(&[47, 1, 46], &mut out);
        // RFC 4034 §4.3 style: window 0, 6 bytes, A(1) RRSIG(46) NSEC(47).
        assert_eq!(out, vec![0, 6, 0x40, 0, 0, 0, 0, 0x03]);
    }

    #[test]
    fn nxname_nsec_has_successor_and_type_128() {
        let owner = wire::name_wire("nope.example").unwrap();
        let mut out = Vec::new();
        write_nxname_nsec(&owner, &mut out);
        assert_eq!(&out[..2], &[1, 0]);
        assert_eq!(&out[2..2 + owner.len()], &owner[..]);
        let bitmap = &out[2 + owner.len()..];
        // window 0 up to NSEC (byte 5), then window 0 has no 128: 128 is window 0 byte 16.
        assert_eq!(bitmap[0], 0);
        assert_eq!(bitmap[1], 17);
        assert_eq!(bitmap[2 + 16], 0x80);
        assert_eq!(bitmap[2 + 5], 0x03);
    }

    #[test]
    fn high_types_use_their_window() {
        let mut out = Vec::new();
        write_type_bitmap(&[1, 257], &mut out);
        assert_eq!(out, vec![0, 1, 0x40, 1, 1, 0x40]);
    }
}
