//! The bounds-checked cursor the decoder reads with, the writer the
//! encoder appends with, and the typed error a decode fails with.
//!
//! Every read names the field it reads, so a failed decode says which
//! field at which offset was wrong (logged at debug, counted as
//! `malformed`); nothing past the end of the input can be read, and no
//! input can panic.

use std::fmt;

/// Why a payload or header does not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended inside `field`, which starts at byte `at`.
    Truncated { field: &'static str, at: usize },
    /// Not our magic bytes or version.
    NotOurs,
    /// A message type code no version of the protocol uses.
    UnknownType(u8),
    /// A `Rejected` reason code we do not know.
    UnknownReason(u8),
    /// A boolean or option tag that is neither 0 nor 1, or backend flags
    /// with unknown bits.
    BadValue {
        field: &'static str,
        at: usize,
        value: u8,
    },
    /// A string field that is not UTF-8.
    BadUtf8 { field: &'static str, at: usize },
    /// Bytes left over after the message (`n` of them).
    Trailing(usize),
    /// A list longer than its message type allows.
    TooMany {
        field: &'static str,
        at: usize,
        count: u32,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { field, at } => {
                write!(f, "input ends inside {field} (at byte {at})")
            }
            DecodeError::NotOurs => write!(f, "not an OpenGSLB gossip v1 packet"),
            DecodeError::UnknownType(t) => write!(f, "unknown message type {t}"),
            DecodeError::UnknownReason(c) => write!(f, "unknown rejection reason {c}"),
            DecodeError::BadValue { field, at, value } => {
                write!(f, "invalid {field} value {value} (at byte {at})")
            }
            DecodeError::BadUtf8 { field, at } => {
                write!(f, "{field} is not UTF-8 (at byte {at})")
            }
            DecodeError::Trailing(n) => write!(f, "{n} bytes after the message"),
            DecodeError::TooMany { field, at, count } => {
                write!(f, "{field} {count} is over the limit (at byte {at})")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Appends big-endian fields.
pub struct Writer(pub Vec<u8>);

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    /// Strings longer than 65535 bytes are cut at a char boundary; no
    /// field we send comes close.
    pub fn str(&mut self, s: &str) {
        let mut end = s.len().min(u16::MAX as usize);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.u16(end as u16);
        self.0.extend_from_slice(&s.as_bytes()[..end]);
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    pub fn opt_str(&mut self, s: &Option<String>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }
}

/// A bounds-checked cursor: every read past the end is an error naming
/// the field.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn pos(&self) -> usize {
        self.pos
    }
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let at = self.pos;
        let end = at
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(DecodeError::Truncated { field, at })?;
        self.pos = end;
        Ok(&self.buf[at..end])
    }
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let at = self.pos;
        self.take(N, field)?
            .try_into()
            .map_err(|_| DecodeError::Truncated { field, at })
    }
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }
    pub fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        let at = self.pos;
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::BadValue { field, at, value }),
        }
    }
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }
    pub fn str(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let n = self.u16(field)? as usize;
        let at = self.pos;
        let bytes = self.take(n, field)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::BadUtf8 { field, at })
    }
    pub fn bytes(&mut self, field: &'static str) -> Result<Vec<u8>, DecodeError> {
        let n = self.u32(field)? as usize;
        Ok(self.take(n, field)?.to_vec())
    }
    pub fn opt_str(&mut self, field: &'static str) -> Result<Option<String>, DecodeError> {
        Ok(if self.bool(field)? {
            Some(self.str(field)?)
        } else {
            None
        })
    }
    /// The whole input was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field_and_offset() {
        let mut r = Reader::new(&[0, 5, b'a']);
        assert_eq!(
            r.str("agent id"),
            Err(DecodeError::Truncated {
                field: "agent id",
                at: 2
            })
        );
        let mut r = Reader::new(&[0, 1, 0xff]);
        assert_eq!(
            r.str("region"),
            Err(DecodeError::BadUtf8 {
                field: "region",
                at: 2
            })
        );
        let mut r = Reader::new(&[2]);
        assert_eq!(
            r.bool("full"),
            Err(DecodeError::BadValue {
                field: "full",
                at: 0,
                value: 2
            })
        );
        let r = Reader::new(&[1, 2]);
        assert_eq!(r.finish(), Err(DecodeError::Trailing(2)));
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            r.bytes("cert"),
            Err(DecodeError::Truncated { field: "cert", .. })
        ));
        assert_eq!(
            DecodeError::Truncated {
                field: "nonce",
                at: 9
            }
            .to_string(),
            "input ends inside nonce (at byte 9)"
        );
    }
}
