//! What TCP peers that have not authenticated may make the Overwatch hold.
//!
//! Anyone can open a TCP connection to port 7946; only a key holder can
//! send a frame that decrypts. Until one frame on a connection has
//! decrypted, the connection is pre-auth: it counts against a per-source
//! and a total connection cap, and every byte it has buffered counts
//! against a per-source and a total memory cap. The listener reads from a
//! pre-auth connection no more than `room` allows and closes it at zero.
//! (Before this, a peer without the key could make the listener buffer
//! about 1024 connections × 4 MiB.) Pure bookkeeping, no sockets.

use std::collections::HashMap;
use std::net::IpAddr;

/// The caps; the defaults bound pre-auth memory to 4 MiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreAuthLimits {
    pub conns_per_source: usize,
    pub conns_total: usize,
    pub bytes_per_source: usize,
    pub bytes_total: usize,
}

impl Default for PreAuthLimits {
    fn default() -> Self {
        PreAuthLimits {
            conns_per_source: 8,
            conns_total: 64,
            bytes_per_source: 1 << 20,
            bytes_total: 4 << 20,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Use {
    conns: usize,
    bytes: usize,
}

/// Pre-auth connections and bytes, by source address and in total.
#[derive(Debug, Default)]
pub struct PreAuthBudget {
    limits: PreAuthLimits,
    by_source: HashMap<IpAddr, Use>,
    total: Use,
}

impl PreAuthBudget {
    pub fn new(limits: PreAuthLimits) -> Self {
        PreAuthBudget {
            limits,
            by_source: HashMap::new(),
            total: Use::default(),
        }
    }

    /// A new connection from `ip`: counted and true when within the caps,
    /// false (nothing counted) when it must be refused.
    pub fn admit(&mut self, ip: IpAddr) -> bool {
        let mine = self.by_source.get(&ip).copied().unwrap_or_default();
        if mine.conns >= self.limits.conns_per_source || self.total.conns >= self.limits.conns_total
        {
            return false;
        }
        self.by_source.entry(ip).or_default().conns += 1;
        self.total.conns += 1;
        true
    }

    /// How many more bytes a pre-auth connection from `ip` may buffer.
    pub fn room(&self, ip: IpAddr) -> usize {
        let mine = self.by_source.get(&ip).map_or(0, |u| u.bytes);
        self.limits
            .bytes_per_source
            .saturating_sub(mine)
            .min(self.limits.bytes_total.saturating_sub(self.total.bytes))
    }

    /// A pre-auth connection from `ip` now buffers `after` bytes instead
    /// of `before`.
    pub fn rebuffer(&mut self, ip: IpAddr, before: usize, after: usize) {
        let u = self.by_source.entry(ip).or_default();
        u.bytes = u.bytes.saturating_sub(before).saturating_add(after);
        self.total.bytes = self
            .total
            .bytes
            .saturating_sub(before)
            .saturating_add(after);
    }

    /// A pre-auth connection holding `buffered` bytes authenticated or
    /// closed: it no longer counts.
    pub fn release(&mut self, ip: IpAddr, buffered: usize) {
        self.rebuffer(ip, buffered, 0);
        if let Some(u) = self.by_source.get_mut(&ip) {
            u.conns = u.conns.saturating_sub(1);
            if u.conns == 0 && u.bytes == 0 {
                self.by_source.remove(&ip);
            }
        }
        self.total.conns = self.total.conns.saturating_sub(1);
    }

    /// (connections, bytes) in total.
    pub fn in_use(&self) -> (usize, usize) {
        (self.total.conns, self.total.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn connections_are_capped_per_source_and_in_total() {
        let limits = PreAuthLimits {
            conns_per_source: 2,
            conns_total: 3,
            ..PreAuthLimits::default()
        };
        let mut b = PreAuthBudget::new(limits);
        assert!(b.admit(ip(1)) && b.admit(ip(1)));
        assert!(!b.admit(ip(1)), "per source");
        assert!(b.admit(ip(2)));
        assert!(!b.admit(ip(3)), "in total");
        b.release(ip(1), 0);
        assert!(b.admit(ip(3)));
        assert_eq!(b.in_use(), (3, 0));
    }

    #[test]
    fn bytes_are_capped_per_source_and_in_total() {
        let limits = PreAuthLimits {
            conns_per_source: 10,
            conns_total: 10,
            bytes_per_source: 100,
            bytes_total: 150,
        };
        let mut b = PreAuthBudget::new(limits);
        assert!(b.admit(ip(1)) && b.admit(ip(1)) && b.admit(ip(2)));
        assert_eq!(b.room(ip(1)), 100);
        b.rebuffer(ip(1), 0, 60);
        assert_eq!(b.room(ip(1)), 40, "both connections of a source share");
        b.rebuffer(ip(1), 0, 40);
        assert_eq!(b.room(ip(1)), 0);
        assert_eq!(b.room(ip(2)), 50, "the total binds");
        b.release(ip(1), 60);
        assert_eq!(b.room(ip(1)), 60);
        assert_eq!(b.in_use(), (2, 40));
        b.release(ip(1), 40);
        b.release(ip(2), 0);
        assert_eq!(b.in_use(), (0, 0));
        assert!(b.by_source.is_empty(), "nothing kept for gone sources");
    }
}
