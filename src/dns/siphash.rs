//! SipHash-2-4 (Aumasson and Bernstein), 64-bit output, and the lighter
//! SipHash-1-3 (what Rust's `HashMap` uses against hash flooding).
//!
//! RFC 9018 interoperable DNS server cookies are defined over SipHash-2-4
//! with a 128-bit secret, and response rate limiting needs a keyed hash so
//! an attacker cannot aim many keys at one bucket. Forty lines of a
//! published algorithm are easier to audit than a dependency; the test
//! vectors below come from the reference implementation and RFC 9018.
//! Streaming input (`write`) lets callers hash several slices without
//! copying them into one buffer (the DNS hot path does not allocate).

#[derive(Clone, Copy)]
pub(crate) struct SipHasher {
    v: [u64; 4],
    c_rounds: u8,
    d_rounds: u8,
    tail: u64,
    ntail: usize,
    len: usize,
}

#[inline]
fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

impl SipHasher {
    /// `key` is the 16-byte secret, read as two little-endian words;
    /// `c_rounds` per message word, `d_rounds` to finish.
    pub fn new(key: &[u8; 16], c_rounds: u8, d_rounds: u8) -> SipHasher {
        let mut k0 = [0u8; 8];
        let mut k1 = [0u8; 8];
        k0.copy_from_slice(&key[..8]);
        k1.copy_from_slice(&key[8..]);
        let (k0, k1) = (u64::from_le_bytes(k0), u64::from_le_bytes(k1));
        SipHasher {
            v: [
                k0 ^ 0x736f_6d65_7073_6575,
                k1 ^ 0x646f_7261_6e64_6f6d,
                k0 ^ 0x6c79_6765_6e65_7261,
                k1 ^ 0x7465_6462_7974_6573,
            ],
            c_rounds,
            d_rounds,
            tail: 0,
            ntail: 0,
            len: 0,
        }
    }

    fn block(&mut self, m: u64) {
        self.v[3] ^= m;
        for _ in 0..self.c_rounds {
            round(&mut self.v);
        }
        self.v[0] ^= m;
    }

    pub fn write(&mut self, mut bytes: &[u8]) {
        self.len = self.len.wrapping_add(bytes.len());
        // Fast path: whole words while no partial word is pending.
        if self.ntail == 0 {
            while let Some((word, rest)) = bytes.split_first_chunk::<8>() {
                self.block(u64::from_le_bytes(*word));
                bytes = rest;
            }
        }
        for &b in bytes {
            self.tail |= u64::from(b) << (8 * self.ntail);
            self.ntail += 1;
            if self.ntail == 8 {
                let m = self.tail;
                self.block(m);
                self.tail = 0;
                self.ntail = 0;
            }
        }
    }

    pub fn finish(mut self) -> u64 {
        let m = self.tail | ((self.len as u64 & 0xff) << 56);
        self.block(m);
        self.v[2] ^= 0xff;
        for _ in 0..self.d_rounds {
            round(&mut self.v);
        }
        self.v[0] ^ self.v[1] ^ self.v[2] ^ self.v[3]
    }
}

/// SipHash-2-4 of the concatenation of `parts`.
pub(crate) fn siphash24(key: &[u8; 16], parts: &[&[u8]]) -> u64 {
    let mut h = SipHasher::new(key, 2, 4);
    for p in parts {
        h.write(p);
    }
    h.finish()
}

/// SipHash-1-3 of the concatenation of `parts` (RRL bucket index: keyed
/// against aimed collisions, cheaper than 2-4 on every query).
pub(crate) fn siphash13(key: &[u8; 16], parts: &[&[u8]]) -> u64 {
    let mut h = SipHasher::new(key, 1, 3);
    for p in parts {
        h.write(p);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ref_key() -> [u8; 16] {
        let mut k = [0u8; 16];
        for (i, b) in k.iter_mut().enumerate() {
            *b = i as u8;
        }
        k
    }

    /// Vectors of the reference implementation (key 00..0f, message
    /// 00..n-1), including the 15-byte example of the SipHash paper.
    #[test]
    fn reference_vectors() {
        let msg: Vec<u8> = (0u8..16).collect();
        let k = ref_key();
        assert_eq!(siphash24(&k, &[&msg[..0]]), 0x726f_db47_dd0e_0e31);
        assert_eq!(siphash24(&k, &[&msg[..1]]), 0x74f8_39c5_93dc_67fd);
        assert_eq!(siphash24(&k, &[&msg[..15]]), 0xa129_ca61_49be_45e5);
        // Split input hashes like the whole.
        assert_eq!(
            siphash24(&k, &[&msg[..3], &msg[3..9], &msg[9..15]]),
            0xa129_ca61_49be_45e5
        );
        assert_eq!(
            siphash24(&k, &[&msg[..8], &msg[8..15]]),
            0xa129_ca61_49be_45e5
        );
        // SipHash-1-3 differs from 2-4 and is stable under splitting.
        let one = siphash13(&k, &[&msg[..15]]);
        assert_ne!(one, 0xa129_ca61_49be_45e5);
        assert_eq!(siphash13(&k, &[&msg[..1], &msg[1..15]]), one);
    }
}
