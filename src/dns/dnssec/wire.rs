//! Canonical DNS wire form (RFC 4034 §6.2) for the names and RRsets that
//! are signed: names uncompressed and in lower case, records of one RRset
//! ordered by their RDATA as unsigned byte strings.
//!
//! Names are given as text (`www.example.com.` or without the final dot);
//! the GSLB names are already validated by the configuration loader, so a
//! label longer than 63 bytes or an empty inner label is reported as an
//! error rather than written.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError(pub String);

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid DNS name {:?}", self.0)
    }
}

/// Writes `name` in canonical wire form (lower case, uncompressed) into
/// `out` and returns the number of bytes written.
pub fn write_name(name: &str, out: &mut Vec<u8>) -> Result<usize, NameError> {
    let start = out.len();
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if label.is_empty() || label.len() > 63 {
                out.truncate(start);
                return Err(NameError(name.to_string()));
            }
            out.push(label.len() as u8);
            out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        }
    }
    out.push(0);
    if out.len() - start > 255 {
        out.truncate(start);
        return Err(NameError(name.to_string()));
    }
    Ok(out.len() - start)
}

/// Canonical wire form of `name` as a new vector.
pub fn name_wire(name: &str) -> Result<Vec<u8>, NameError> {
    let mut v = Vec::with_capacity(name.len() + 2);
    write_name(name, &mut v)?;
    Ok(v)
}

/// Lower-cases a wire-form name in place (labels only, not lengths).
pub fn lowercase_wire_name(name: &mut [u8]) {
    let mut i = 0;
    while i < name.len() {
        let len = name[i] as usize;
        if len == 0 {
            break;
        }
        let end = (i + 1 + len).min(name.len());
        name[i + 1..end].make_ascii_lowercase();
        i = end;
    }
}

/// Number of labels of a wire-form name, as RRSIG counts them (the root
/// label and a leading `*` label are not counted; RFC 4034 §3.1.3).
pub fn label_count(name_wire: &[u8]) -> u8 {
    let mut i = 0;
    let mut n = 0u8;
    let mut first = true;
    while i < name_wire.len() {
        let len = name_wire[i] as usize;
        if len == 0 {
            break;
        }
        let wildcard = first && len == 1 && name_wire.get(i + 1) == Some(&b'*');
        if !wildcard {
            n += 1;
        }
        first = false;
        i += 1 + len;
    }
    n
}

/// Sorts RDATA slices in canonical order (RFC 4034 §6.3) and drops
/// duplicates, as an RRset holds each record once.
pub fn sort_rdata(rdata: &mut [&[u8]]) -> usize {
    rdata.sort_unstable();
    let mut w = 0;
    for r in 0..rdata.len() {
        if w == 0 || rdata[w - 1] != rdata[r] {
            rdata[w] = rdata[r];
            w += 1;
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_case_and_end_with_root() {
        assert_eq!(
            name_wire("WWW.Example.com.").unwrap(),
            b"\x03www\x07example\x03com\x00"
        );
        assert_eq!(name_wire("example.com").unwrap(), b"\x07example\x03com\x00");
        assert_eq!(name_wire(".").unwrap(), b"\x00");
        assert!(name_wire("a..b").is_err());
        assert!(name_wire(&"x".repeat(64)).is_err());
    }

    #[test]
    fn labels_skip_root_and_wildcard() {
        assert_eq!(label_count(&name_wire("www.example.com").unwrap()), 3);
        assert_eq!(label_count(&name_wire("*.example.com").unwrap()), 2);
        assert_eq!(label_count(&name_wire(".").unwrap()), 0);
    }

    #[test]
    fn lowercases_wire_names_in_place() {
        let mut n = b"\x03WwW\x07EXAMPLE\x00".to_vec();
        lowercase_wire_name(&mut n);
        assert_eq!(n, b"\x03www\x07example\x00");
    }

    #[test]
    fn rdata_sorted_as_unsigned_bytes_without_duplicates() {
        let a: &[u8] = &[192, 0, 2, 10];
        let b: &[u8] = &[10, 0, 0, 1];
        let c: &[u8] = &[192, 0, 2, 9];
        let mut v = [a, b, c, b];
        let n = sort_rdata(&mut v);
        assert_eq!(&v[..n], &[b, c, a]);
    }
}
