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
//! is keyed with a per-process random secret, so an attacker cannot aim
//! keys at one slot.

use super::siphash::siphash24;
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

/// The client's prefix as 16 bytes (IPv4 canonical, masked) plus family.
fn prefix(ip: IpAddr, cfg: &RateLimit) -> [u8; 17] {
    let mut out = [0u8; 17];
    let (bytes, bits, family): ([u8; 16], u8, u8) = match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&v4.octets());
            (b, cfg.ipv4_prefix.min(32), 4)
        }
        IpAddr::V6(v6) => (v6.octets(), cfg.ipv6_prefix.min(128), 6),
    };
    for (i, (o, b)) in out.iter_mut().zip(bytes).enumerate() {
        let keep = u32::from(bits).saturating_sub(8 * i as u32).min(8);
        *o = if keep == 0 {
            0
        } else {
            b & (0xffu8 << (8 - keep))
        };
    }
    out[16] = family;
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
        let h = siphash24(key, &[&[class as u8], &prefix(client, cfg), name]);
        let Some(slot) = slots.get((h as usize) % slots.len()) else {
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
        assert_eq!(
            prefix(ip("::ffff:198.51.100.7"), &c),
            prefix(ip("198.51.100.99"), &c)
        );
        assert_ne!(
            prefix(ip("::ffff:198.51.100.7"), &c),
            prefix(ip("198.51.101.7"), &c)
        );
        // /56: the last 72 bits do not matter.
        assert_eq!(
            prefix(ip("2001:db8:0:1::1"), &c),
            prefix(ip("2001:db8:0:ff:ffff::1"), &c)
        );
        assert_ne!(
            prefix(ip("2001:db8:0:100::1"), &c),
            prefix(ip("2001:db8::1"), &c)
        );
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
