//! Where the protocol objects get their randomness: session ids, challenge
//! nonces, AEAD nonces, ephemeral key shares and signature nonces.
//!
//! In production that is the system's (`Entropy::System`); the Overwatch's
//! listener, which seals one reply per heartbeat, draws its nonces from
//! `Entropy::pooled`: system randomness fetched 4 KiB at a time instead of
//! one getrandom(2) per reply. Key shares and signatures always come from
//! the system RNG directly (`with_ring_rng`). The simulated
//! network gives each protocol object a seeded stream instead
//! (`Entropy::seeded`, splitmix64), so a simulation replays byte for byte.
//! ring only takes its own sealed RNG type for key generation and signing;
//! for a seeded source it gets ring's fixed-byte test RNG, filled with one
//! byte drawn from the seed (good enough for a simulation, never used with
//! `System`).

use ring::rand::{SecureRandom, SystemRandom};

/// splitmix64: tiny, seedable, and every seed (zero included) gives a
/// full-period stream.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[derive(Clone, Debug, Default)]
pub enum Entropy {
    #[default]
    System,
    /// System randomness, fetched in blocks (`fill` only).
    Pooled(Box<Pool>),
    Seeded(SplitMix64),
}

const POOL: usize = 4096;

/// Bytes from the system RNG not handed out yet; each byte is handed out
/// once and then zeroed.
#[derive(Clone)]
pub struct Pool {
    buf: [u8; POOL],
    /// Bytes of `buf` already handed out (from the front).
    used: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pool({} left)", POOL - self.used)
    }
}

impl Pool {
    fn fill(&mut self, out: &mut [u8]) {
        if out.len() > POOL / 4 {
            let _ = SystemRandom::new().fill(out);
            return;
        }
        if POOL - self.used < out.len() {
            // Fails only without any OS entropy source (see `fill`).
            let _ = SystemRandom::new().fill(&mut self.buf);
            self.used = 0;
        }
        let end = self.used + out.len();
        if let Some(src) = self.buf.get_mut(self.used..end) {
            out.copy_from_slice(src);
            src.fill(0);
        }
        self.used = end;
    }
}

impl Entropy {
    pub fn seeded(seed: u64) -> Self {
        Entropy::Seeded(SplitMix64::new(seed))
    }

    /// System randomness in blocks of 4 KiB (see the module comment).
    pub fn pooled() -> Self {
        Entropy::Pooled(Box::new(Pool {
            buf: [0; POOL],
            used: POOL,
        }))
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        match self {
            // Fails only without any OS entropy source; a zero value is
            // then still unique per counter within a session.
            Entropy::System => {
                let _ = SystemRandom::new().fill(out);
            }
            Entropy::Pooled(p) => p.fill(out),
            Entropy::Seeded(r) => {
                for chunk in out.chunks_mut(8) {
                    let v = r.next_u64().to_be_bytes();
                    chunk.copy_from_slice(&v[..chunk.len()]);
                }
            }
        }
    }

    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        self.fill(&mut b);
        b
    }

    /// A random non-zero session id.
    pub fn session_id(&mut self) -> u64 {
        u64::from_be_bytes(self.bytes::<8>()).max(1)
    }

    /// Runs `f` with an RNG ring accepts (see the module comment).
    #[allow(deprecated)]
    pub fn with_ring_rng<T>(&mut self, f: impl FnOnce(&dyn SecureRandom) -> T) -> T {
        match self {
            Entropy::System | Entropy::Pooled(_) => f(&SystemRandom::new()),
            Entropy::Seeded(r) => {
                let byte = r.next_u64() as u8;
                f(&ring::test::rand::FixedByteRandom { byte })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_stream_and_system_differs() {
        let (mut a, mut b) = (Entropy::seeded(7), Entropy::seeded(7));
        assert_eq!(a.bytes::<37>(), b.bytes::<37>());
        assert_ne!(Entropy::seeded(8).bytes::<16>(), a.bytes::<16>());
        let mut s = Entropy::System;
        assert_ne!(s.bytes::<16>(), s.bytes::<16>());
        assert_ne!(Entropy::seeded(0).session_id(), 0);
    }

    #[test]
    fn a_pool_hands_out_fresh_bytes_across_refills() {
        let mut p = Entropy::pooled();
        let mut seen = std::collections::HashSet::new();
        // 1,000 nonces of 12 bytes: three refills of the 4 KiB block.
        for _ in 0..1000 {
            assert!(seen.insert(p.bytes::<12>()), "no nonce repeats");
        }
        let big = p.bytes::<2048>();
        assert!(big.iter().any(|b| *b != 0));
    }
}
