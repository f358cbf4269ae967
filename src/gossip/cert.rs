//! Just enough X.509 to check an agent's certificate: a DER walk to the
//! validity dates and the P-256 public key, nothing else.
//!
//! The certificate's own signature is not checked: it is self-signed, so it
//! proves nothing a proof of possession does not; what the Overwatch trusts
//! is the pinned fingerprint plus a fresh signature over its challenge.

use std::fmt;

/// What the Overwatch needs out of a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// Uncompressed P-256 point (65 bytes, 0x04 first).
    pub public_key: Vec<u8>,
    pub not_before: u64,
    pub not_after: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertError(pub &'static str);

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "certificate: {}", self.0)
    }
}

impl std::error::Error for CertError {}

const SEQUENCE: u8 = 0x30;
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// One DER element: (tag, contents), advancing the slice.
fn tlv<'a>(buf: &mut &'a [u8]) -> Result<(u8, &'a [u8]), CertError> {
    let err = CertError("truncated DER");
    let (&tag, rest) = buf.split_first().ok_or(err.clone())?;
    let (&first, mut rest) = rest.split_first().ok_or(err.clone())?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return Err(CertError("unsupported DER length"));
        }
        let bytes = rest.get(..n).ok_or(err.clone())?;
        rest = &rest[n..];
        bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize)
    };
    let body = rest.get(..len).ok_or(err)?;
    *buf = &rest[len..];
    Ok((tag, body))
}

fn expect(buf: &mut &[u8], tag: u8, what: &'static str) -> Result<Vec<u8>, CertError> {
    let (t, body) = tlv(buf)?;
    if t != tag {
        return Err(CertError(what));
    }
    Ok(body.to_vec())
}

pub fn parse(der: &[u8]) -> Result<CertInfo, CertError> {
    let mut outer = der;
    let cert = expect(&mut outer, SEQUENCE, "not a SEQUENCE")?;
    let mut c = cert.as_slice();
    let tbs = expect(&mut c, SEQUENCE, "no tbsCertificate")?;
    let mut t = tbs.as_slice();
    let (mut tag, _) = tlv(&mut t)?;
    if tag == 0xa0 {
        // explicit version; the serial number follows
        tag = tlv(&mut t)?.0;
    }
    if tag != 0x02 {
        return Err(CertError("no serial number"));
    }
    expect(&mut t, SEQUENCE, "no signature algorithm")?;
    expect(&mut t, SEQUENCE, "no issuer")?;
    let validity = expect(&mut t, SEQUENCE, "no validity")?;
    let mut v = validity.as_slice();
    let not_before = time(&mut v)?;
    let not_after = time(&mut v)?;
    expect(&mut t, SEQUENCE, "no subject")?;
    let spki = expect(&mut t, SEQUENCE, "no subjectPublicKeyInfo")?;
    let mut s = spki.as_slice();
    let alg = expect(&mut s, SEQUENCE, "no key algorithm")?;
    let mut a = alg.as_slice();
    let kind = expect(&mut a, 0x06, "no key algorithm OID")?;
    let curve = expect(&mut a, 0x06, "no curve OID")?;
    if kind != OID_EC_PUBLIC_KEY || curve != OID_P256 {
        return Err(CertError("key is not ECDSA P-256"));
    }
    let bits = expect(&mut s, 0x03, "no public key BIT STRING")?;
    match bits.split_first() {
        Some((0, point)) if point.len() == 65 && point[0] == 4 => Ok(CertInfo {
            public_key: point.to_vec(),
            not_before,
            not_after,
        }),
        _ => Err(CertError("public key is not an uncompressed P-256 point")),
    }
}

/// UTCTime or GeneralizedTime ("...Z" forms only, as DER requires).
fn time(buf: &mut &[u8]) -> Result<u64, CertError> {
    let (tag, body) = tlv(buf)?;
    let bad = CertError("bad validity time");
    let s = std::str::from_utf8(body).map_err(|_| bad.clone())?;
    let digits = s.strip_suffix('Z').ok_or(bad.clone())?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, CertError> {
        digits
            .get(r)
            .and_then(|d| d.parse().ok())
            .ok_or(CertError("bad validity time"))
    };
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy = num(0..2)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        (0x18, 14) => (num(0..4)?, 4),
        _ => return Err(bad),
    };
    let (mo, d) = (num(rest..rest + 2)?, num(rest + 2..rest + 4)?);
    let (h, mi, sec) = (
        num(rest + 4..rest + 6)?,
        num(rest + 6..rest + 8)?,
        num(rest + 8..rest + 10)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return Err(bad);
    }
    let days = days_from_civil(year, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec;
    Ok(secs.max(0) as u64)
}

/// Howard Hinnant's days_from_civil.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_roundtrip() {
        for unix in [0u64, 951_782_400, 1_700_000_000, 4_102_444_800] {
            let (y, m, d, ..) = crate::timefmt::civil(unix);
            let days = days_from_civil(y, m as i64, d as i64);
            assert_eq!(days as u64, unix / 86_400);
        }
    }

    #[test]
    fn parses_rcgen_certificate() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = rcgen::CertificateParams::new(vec!["x".into()]).expect("params");
        params.not_before = rcgen::date_time_ymd(2026, 1, 2);
        params.not_after = rcgen::date_time_ymd(2060, 3, 4);
        let cert = params.self_signed(&key).expect("cert");
        let info = parse(cert.der()).expect("parse");
        assert_eq!(info.not_before, 1_767_312_000);
        assert_eq!(info.not_after, 2_845_584_000);
        assert_eq!(info.public_key, key.public_key_raw());
    }

    #[test]
    fn garbage_never_panics() {
        let mut x = 1u64;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (x >> 56) as u8
                })
                .collect();
            let _ = parse(&bytes);
        }
        assert!(parse(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
