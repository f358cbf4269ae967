//! Where the protocol objects get their randomness: session ids, challenge
//! nonces, AEAD nonces, ephemeral key shares and signature nonces.
//!
//! In production that is the system's (`Entropy::System`). The simulated
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
    Seeded(SplitMix64),
}

impl Entropy {
    pub fn seeded(seed: u64) -> Self {
        Entropy::Seeded(SplitMix64::new(seed))
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        match self {
            // Fails only without any OS entropy source; a zero value is
            // then still unique per counter within a session.
            Entropy::System => {
                let _ = SystemRandom::new().fill(out);
            }
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
            Entropy::System => f(&SystemRandom::new()),
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
}
