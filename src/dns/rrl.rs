//! Response rate limiting (RRL), modelled on NSD and Knot (SPEC §14).
//!
//! A spoofed-source flood turns an authoritative server into an amplifier
//! aimed at the spoofed address. RRL counts UDP responses per client
//! prefix (`ipv4_prefix`, `ipv6_prefix`) and response class: positive
//! answers and NODATA per query name, NXDOMAIN per zone (so random names
//! under a zone count together), errors per prefix alone. Each key has a
//! token bucket refilled at `responses_per_second` with a burst of one
//! second. Over the limit, responses are dropped, except every `slip`-th,
//! which is sent truncated (TC=1, no records) so a real client behind the
//! prefix retries over TCP and is served; a client that sent a DNS cookie
//! gets BADCOOKIE with a fresh cookie instead, and once it returns that
//! cookie it is exempt. TCP, valid cookies and `whitelist` are never
//! limited.
//!
//! The table is a fixed array of `BUCKETS` atomics shared by every
//! responder thread (allocated once, when a table with RRL is first
//! built): a query costs one keyed hash and one compare-and-swap, no lock
//! and no allocation. A slot holds a 12-bit tag of its key, a 22-bit
//! millisecond stamp (wraps every 70 minutes; an old slot looks at worst
//! less refilled) and 30 bits of milli-tokens. Keys that collide on a
//! slot evict each other, which errs on the side of answering. The hash
//! (SipHash-1-3, as Rust's `HashMap` uses against flooding) is keyed with
//! a per-process random secret, so an attacker cannot aim keys at one slot.

use super::siphash::siphash13;
use crate::config::{RateLimitConfig, parse_network};
use crate::metrics::{Kind, TextWriter};
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Slots in the shared table (8 bytes each: 2 MiB).
const BUCKETS: usize = 1 << 18;
const STAMP_BITS: u32 = 22;
const TOKEN_BITS: u32 = 30;
const STAMP_MASK: u64 = (1 << STAMP_BITS) - 1;
const TOKEN_MASK: u64 = (1 << TOKEN_BITS) - 1;
/// One response, in milli-tokens.
const COST: u64 = 1000;

/// `dns.rate_limit`, parsed, as the table carries it (reloadable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub responses_per_second: u32,
    pub slip: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    pub whitelist: Vec<IpNet>,
}

impl RateLimit {
    /// None when rate limiting is off (`responses_per_second: 0`).
    /// Invalid values were rejected by the loader; here they are clamped.
    pub fn from_config(c: &RateLimitConfig) -> Option<RateLimit> {
        if c.responses_per_second == 0 {
            return None;
        }
        Some(RateLimit {
            responses_per_second: c.responses_per_second.min((TOKEN_MASK / COST) as u32),
            slip: c.slip,
            ipv4_prefix: c.ipv4_prefix.clamp(1, 32) as u8,
            ipv6_prefix: c.ipv6_prefix.clamp(1, 128) as u8,
            whitelist: c
                .whitelist
                .iter()
                .filter_map(|n| parse_network(n).ok())
                .collect(),
        })
    }

    fn exempt(&self, ip: IpAddr) -> bool {
        self.whitelist.iter().any(|n| n.contains(&ip))
    }
}

/// The response classes counted apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Records in the answer section, keyed by query name.
    Answer = 1,
    /// NODATA, keyed by query name.
    NoData = 2,
    /// NXDOMAIN, keyed by zone.
    NxDomain = 3,
    /// REFUSED, SERVFAIL, FORMERR, NOTIMP...: keyed by prefix alone.
    Error = 4,
}

/// The shared bucket table and the counters of what it did.
#[derive(Default)]
pub struct RrlState {
    slots: OnceLock<Box<[AtomicU64]>>,
    key: OnceLock<[u8; 16]>,
    dropped: AtomicU64,
    slipped: AtomicU64,
}

impl std::fmt::Debug for RrlState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RrlState")
            .field("allocated", &self.slots.get().is_some())
            .field("dropped", &self.dropped)
            .field("slipped", &self.slipped)
            .finish()
    }
}

/// The hash input's head: the client's prefix (IPv4 canonical, masked),
/// its family and the class, padded to whole 8-byte words for SipHash.
fn head(ip: IpAddr, cfg: &RateLimit, class: Class) -> [u8; 24] {
    let mut out = [0u8; 24];
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let bits = u32::from(cfg.ipv4_prefix.min(32));
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            out[..4].copy_from_slice(&(u32::from(v4) & mask).to_be_bytes());
            out[16] = 4;
        }
        IpAddr::V6(v6) => {
            let bits = u32::from(cfg.ipv6_prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            out[..16].copy_from_slice(&(u128::from(v6) & mask).to_be_bytes());
            out[16] = 6;
        }
    }
    out[17] = class as u8;
    out
}

impl RrlState {
    /// Allocates the table (called when a table with RRL is built, never
    /// on a query).
    pub(crate) fn prepare(&self) {
        self.slots
            .get_or_init(|| (0..BUCKETS).map(|_| AtomicU64::new(0)).collect());
        self.key.get_or_init(super::cookies::random_key);
    }

    /// Takes one response's token for (`class`, `name`, client prefix).
    /// True when the response is over the limit. `now_ms` is monotonic.
    pub(crate) fn limited(
        &self,
        cfg: &RateLimit,
        class: Class,
        name: &[u8],
        client: IpAddr,
        now_ms: u64,
    ) -> bool {
        let (Some(slots), Some(key)) = (self.slots.get(), self.key.get()) else {
            return false;
        };
        if cfg.exempt(client) || cfg.exempt(client.to_canonical()) {
            return false;
        }
        let name = if class == Class::Error { &[][..] } else { name };
        let h = siphash13(key, &[&head(client, cfg, class), name]);
        // BUCKETS is a power of two: a mask, not a division.
        let Some(slot) = slots.get((h as usize) & (BUCKETS - 1)) else {
            return false;
        };
        let tag = h >> 52;
        let rate = u64::from(cfg.responses_per_second);
        let cap = (rate * COST).min(TOKEN_MASK);
        let now = now_ms & STAMP_MASK;
        let mut old = slot.load(Ordering::Relaxed);
        loop {
            let (otag, ostamp, otokens) = (
                old >> (STAMP_BITS + TOKEN_BITS),
                (old >> TOKEN_BITS) & STAMP_MASK,
                old & TOKEN_MASK,
            );
            let tokens = if old == 0 || otag != tag {
                cap
            } else {
                let elapsed = now.wrapping_sub(ostamp) & STAMP_MASK;
                otokens
                    .saturating_add(elapsed.saturating_mul(rate))
                    .min(cap)
            };
            let (over, left) = match tokens.checked_sub(COST) {
                Some(left) => (false, left),
                None => (true, tokens),
            };
            let new = (tag << (STAMP_BITS + TOKEN_BITS)) | (now << TOKEN_BITS) | left;
            match slot.compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return over,
                Err(cur) => old = cur,
            }
        }
    }

    pub(crate) fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_slipped(&self) {
        self.slipped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn slipped(&self) -> u64 {
        self.slipped.load(Ordering::Relaxed)
    }

    pub fn write_metrics(&self, w: &mut TextWriter) {
        const R: &str = "opengslb_dns_rate_limited_total";
        w.family(
            R,
            "UDP responses over dns.rate_limit, by what was done instead (dropped, or slipped: sent truncated or as BADCOOKIE).",
            Kind::Counter,
        );
        w.sample(R, &[("action", "dropped")], self.dropped() as f64);
        w.sample(R, &[("action", "slipped")], self.slipped() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(rate: u32) -> RateLimit {
        RateLimit::from_config(&RateLimitConfig {
            responses_per_second: rate,
            whitelist: vec!["203.0.113.0/24".into()],
            ..RateLimitConfig::default()
        })
        .unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn off_when_rate_is_zero() {
        assert!(RateLimit::from_config(&RateLimitConfig::default()).is_none());
    }

    /// A burst of one second's worth, then the refill rate, per prefix.
    #[test]
    fn token_bucket_per_prefix_class_and_name() {
        let s = RrlState::default();
        s.prepare();
        let c = cfg(10);
        let a = ip("198.51.100.7");
        let over = |s: &RrlState, n: u64, name: &[u8], who: IpAddr, t: u64| {
            (0..n)
                .filter(|_| s.limited(&c, Class::Answer, name, who, t))
                .count()
        };
        assert_eq!(over(&s, 25, b"\x01a", a, 5000), 15, "burst of 10");
        // Same /24, same name: same bucket.
        assert_eq!(over(&s, 1, b"\x01a", ip("198.51.100.200"), 5000), 1);
        // Another name, another prefix, another class: their own buckets.
        assert_eq!(over(&s, 10, b"\x01b", a, 5000), 0);
        assert_eq!(over(&s, 10, b"\x01a", ip("198.51.101.7"), 5000), 0);
        assert!(!s.limited(&c, Class::NxDomain, b"\x01a", a, 5000));
        // 300 ms later three tokens are back.
        assert_eq!(over(&s, 5, b"\x01a", a, 5300), 2);
        // Whitelisted clients are never limited, also through a v6 socket.
        assert_eq!(over(&s, 50, b"\x01a", ip("::ffff:203.0.113.9"), 5300), 0);
    }

    #[test]
    fn ipv4_through_dual_stack_uses_the_ipv4_prefix() {
        let c = cfg(1);
        let prefix = |a: &str| head(ip(a), &c, Class::Answer);
        assert_eq!(prefix("::ffff:198.51.100.7"), prefix("198.51.100.99"));
        assert_ne!(prefix("::ffff:198.51.100.7"), prefix("198.51.101.7"));
        // /56: the last 72 bits do not matter.
        assert_eq!(prefix("2001:db8:0:1::1"), prefix("2001:db8:0:ff:ffff::1"));
        assert_ne!(prefix("2001:db8:0:100::1"), prefix("2001:db8::1"));
        // The family and class are part of the key.
        assert_ne!(prefix("0.0.0.1"), prefix("::1"));
        assert_ne!(head(ip("::1"), &c, Class::Error), prefix("::1"));
        let all = RateLimit {
            ipv4_prefix: 32,
            ipv6_prefix: 128,
            ..cfg(1)
        };
        let a = |s: &str| head(ip(s), &all, Class::Answer);
        assert_ne!(a("192.0.2.1"), a("192.0.2.2"));
        assert_ne!(a("2001:db8::1"), a("2001:db8::2"));
    }

    #[test]
    fn errors_ignore_the_name_and_unprepared_state_passes() {
        let s = RrlState::default();
        let c = cfg(1);
        assert!(!s.limited(&c, Class::Error, b"", ip("192.0.2.1"), 0));
        s.prepare();
        assert!(!s.limited(&c, Class::Error, b"\x01x", ip("192.0.2.1"), 0));
        assert!(s.limited(&c, Class::Error, b"\x01y", ip("192.0.2.1"), 0));
    }
}
