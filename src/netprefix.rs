//! A client network prefix (address masked to a length), the unit learned
//! latency is aggregated, reported and looked up by. `Copy`, hashable and
//! compact (one u128), so tables keyed by it do not allocate per key.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientPrefix {
    /// IPv4 before IPv6 in the order (listings page by it).
    pub v6: bool,
    /// The masked address bits (IPv4 in the low 32 bits).
    pub bits: u128,
    pub len: u8,
}

impl ClientPrefix {
    /// The prefix of `len` bits containing `ip` (clamped to the family's
    /// width). IPv4-mapped IPv6 addresses count as IPv4.
    pub fn of(ip: IpAddr, v4_len: u8, v6_len: u8) -> ClientPrefix {
        match canonical(ip) {
            IpAddr::V4(a) => {
                let len = v4_len.min(32);
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                ClientPrefix {
                    v6: false,
                    bits: (u32::from(a) & mask) as u128,
                    len,
                }
            }
            IpAddr::V6(a) => {
                let len = v6_len.min(128);
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                ClientPrefix {
                    v6: true,
                    bits: u128::from(a) & mask,
                    len,
                }
            }
        }
    }

    /// Rebuilds a prefix from travelling parts; `None` when the length is
    /// too long for the family or bits are set past it.
    pub fn new(addr: IpAddr, len: u8) -> Option<ClientPrefix> {
        let p = match addr {
            IpAddr::V4(_) if len > 32 => return None,
            IpAddr::V6(_) if len > 128 => return None,
            IpAddr::V4(_) => ClientPrefix::of(addr, len, 0),
            IpAddr::V6(_) => ClientPrefix::of(addr, 0, len),
        };
        (p.addr() == addr).then_some(p)
    }

    pub fn addr(&self) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(self.bits))
        } else {
            IpAddr::V4(Ipv4Addr::from(self.bits as u32))
        }
    }

    /// Parses `ADDR/LEN` (exactly, no host bits).
    pub fn parse(s: &str) -> Option<ClientPrefix> {
        let (a, l) = s.split_once('/')?;
        ClientPrefix::new(a.parse().ok()?, l.parse().ok()?)
    }
}

/// IPv4-mapped IPv6 as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl fmt::Display for ClientPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_parses_and_prints() {
        let p = ClientPrefix::of("192.0.2.77".parse().unwrap(), 24, 48);
        assert_eq!(p.to_string(), "192.0.2.0/24");
        assert_eq!(ClientPrefix::parse("192.0.2.0/24"), Some(p));
        assert_eq!(ClientPrefix::parse("192.0.2.1/24"), None);
        assert_eq!(ClientPrefix::parse("192.0.2.0/33"), None);
        let v6 = ClientPrefix::of("2001:db8:1:2::9".parse().unwrap(), 24, 48);
        assert_eq!(v6.to_string(), "2001:db8:1::/48");
        let mapped = ClientPrefix::of("::ffff:198.51.100.3".parse().unwrap(), 24, 48);
        assert_eq!(mapped.to_string(), "198.51.100.0/24");
        assert!(p < v6);
    }
}
