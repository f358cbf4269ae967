//! Signature cache and validity windows.
//!
//! Time is cut into one-day windows. A signature made in window `w` has
//! inception one hour before the window starts and expires seven days
//! after it, plus a jitter of up to a day taken from the RRset's hash, so
//! expiries of many RRsets do not fall together. Every signature is thus
//! replaced at least six days before it expires, and every Overwatch node
//! with the same key computes the same validity fields.
//!
//! The cache is a fixed array of slots (eight-way set associative, chosen
//! by a keyed SipHash of the signed RRset, the key tag, the type and the
//! window), allocated once: a lookup or an insert never allocates, and the
//! memory is bounded by the slot count. A 64-bit hash identifies the
//! content; a collision among at most a few hundred thousand live entries
//! has a probability below 1e-9.

use super::key::SIGNATURE_LEN;
use crate::dns::siphash::SipHasher;

pub const WINDOW_SECS: u64 = 86_400;
pub const INCEPTION_BACK_SECS: u64 = 3_600;
pub const EXPIRY_SECS: u64 = 7 * 86_400;
/// Slots per set: 10,000 answer sets in 32,768 slots all stay cached.
const WAYS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub window: u32,
    pub inception: u32,
    pub expiration: u32,
}

impl Validity {
    /// Validity of a signature made at `unix_now` for an RRset whose hash
    /// is `content_hash`. RRSIG times are serial numbers modulo 2^32
    /// (RFC 4034 §3.1.5), hence the truncation.
    pub fn at(unix_now: u64, content_hash: u64) -> Validity {
        let window = unix_now / WINDOW_SECS;
        let start = window * WINDOW_SECS;
        let jitter = content_hash % WINDOW_SECS;
        Validity {
            window: window as u32,
            inception: start.saturating_sub(INCEPTION_BACK_SECS) as u32,
            expiration: (start + EXPIRY_SECS + jitter) as u32,
        }
    }
}

#[derive(Clone, Copy)]
struct Slot {
    hash: u64,
    window: u32,
    used: u32,
    signature: [u8; SIGNATURE_LEN],
}

const EMPTY: Slot = Slot {
    hash: 0,
    window: 0,
    used: 0,
    signature: [0; SIGNATURE_LEN],
};

pub struct SignatureCache {
    slots: Box<[Slot]>,
    mask: usize,
    secret: [u8; 16],
    clock: u32,
    pub hits: u64,
    pub misses: u64,
    pub entries: u64,
}

impl SignatureCache {
    /// A cache for about `capacity` signatures (rounded up to a power of
    /// two, at least 2); `secret` keys the hash.
    pub fn new(capacity: usize, secret: [u8; 16]) -> SignatureCache {
        let n = capacity.max(WAYS).next_power_of_two();
        SignatureCache {
            slots: vec![EMPTY; n].into_boxed_slice(),
            mask: n / WAYS - 1,
            secret,
            clock: 0,
            hits: 0,
            misses: 0,
            entries: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Bytes held by the slots (the bound on the cache's memory).
    pub fn memory_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Slot>()
    }

    /// Hash of one RRset to sign: key tag, type covered, TTL and the
    /// canonical RRs (owner included), so any change of content, TTL or
    /// key gives another entry.
    pub fn hash(&self, key_tag: u16, rtype: u16, canonical_rrs: &[u8]) -> u64 {
        let mut h = SipHasher::new(&self.secret, 1, 3);
        h.write(&key_tag.to_be_bytes());
        h.write(&rtype.to_be_bytes());
        h.write(canonical_rrs);
        h.finish() | 1 // 0 marks nothing
    }

    /// The cached signature of `hash` made in `window`, if any.
    pub fn get(&mut self, hash: u64, window: u32) -> Option<&[u8; SIGNATURE_LEN]> {
        let set = ((hash >> 32) as usize & self.mask) * WAYS;
        self.clock = self.clock.wrapping_add(1);
        for i in set..set + WAYS {
            if self.slots[i].hash == hash && self.slots[i].window == window {
                self.slots[i].used = self.clock;
                self.hits += 1;
                return Some(&self.slots[i].signature);
            }
        }
        self.misses += 1;
        None
    }

    /// Stores a signature, replacing the least recently used of its set
    /// (an entry of an older window first).
    pub fn put(&mut self, hash: u64, window: u32, signature: &[u8; SIGNATURE_LEN]) {
        let set = ((hash >> 32) as usize & self.mask) * WAYS;
        self.clock = self.clock.wrapping_add(1);
        // An empty slot or one of an older window first, else the least
        // recently used.
        let mut victim = set;
        for i in set..set + WAYS {
            let (s, v) = (&self.slots[i], &self.slots[victim]);
            if s.hash == 0 || s.window != window {
                victim = i;
                break;
            }
            if (s.used.wrapping_sub(v.used) as i32) < 0 {
                victim = i;
            }
        }
        if self.slots[victim].hash == 0 {
            self.entries += 1;
        }
        self.slots[victim] = Slot {
            hash,
            window,
            used: self.clock,
            signature: *signature,
        };
    }

    /// Fraction of lookups answered from the cache (0 before any lookup).
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_is_one_hour_back_and_seven_days_ahead_with_jitter() {
        let now = 1_800_000_000u64;
        let v = Validity::at(now, 12_345);
        let start = now / WINDOW_SECS * WINDOW_SECS;
        assert_eq!(v.inception as u64, start - 3_600);
        assert!(v.inception as u64 <= now - 3_600);
        assert_eq!(v.expiration as u64, start + 7 * 86_400 + 12_345);
        // Re-signed in the next window: at least six days before expiry.
        assert!(v.expiration as u64 - (start + WINDOW_SECS) >= 6 * 86_400);
        assert_eq!(Validity::at(now + 1, 12_345), v);
    }

    #[test]
    fn hit_after_put_miss_in_next_window() {
        let mut c = SignatureCache::new(16, [7; 16]);
        let h = c.hash(1, 1, b"rrs");
        assert!(c.get(h, 5).is_none());
        c.put(h, 5, &[9; 64]);
        assert_eq!(c.get(h, 5), Some(&[9; 64]));
        assert!(c.get(h, 6).is_none());
        assert_eq!((c.hits, c.misses), (1, 2));
        assert!(c.hash(1, 1, b"rrs") != c.hash(2, 1, b"rrs"));
    }

    #[test]
    fn bounded_and_evicts_least_recently_used() {
        let mut c = SignatureCache::new(16, [1; 16]);
        for i in 0..1000u64 {
            c.put(i * 2 + 1, 0, &[i as u8; 64]);
        }
        assert_eq!(c.capacity(), 16);
        assert!(c.entries <= 16);
        // A full set of one: the entry used last survives a newcomer,
        // the least recently used one goes.
        let mut c = SignatureCache::new(8, [1; 16]);
        for h in 0..8u64 {
            c.put((h << 32) | 1, 0, &[h as u8; 64]);
        }
        assert!(c.get(1, 0).is_some());
        c.put(101, 0, &[5; 64]);
        assert!(c.get(1, 0).is_some());
        assert!(c.get((1 << 32) | 1, 0).is_none());
        assert!(c.get(101, 0).is_some());
    }
}
