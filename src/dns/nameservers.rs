//! The zone's own name servers: NS names that resolve, and their glue.
//!
//! Every zone apex publishes NS records. When those names lie inside a
//! zone we serve (the default `ns1.<zone>` always does), nobody else can
//! answer for them, so the table serves their A/AAAA itself: the addresses
//! configured in `dns.nameservers[].addresses`, or else this Overwatch
//! node's own addresses. NS answers carry those addresses in the
//! additional section (glue). There are no delegations below a zone, so
//! there are no referrals to carry glue in.
//!
//! "This node's own addresses": the IP of `dns.listen_address` when it
//! names one; when it is a wildcard (`:53`), the addresses of the host's
//! interfaces in the listening family, skipping loopback, link-local,
//! multicast and unspecified ones (read once per process: a restart picks
//! up new interfaces). Behind NAT these are not the public addresses, so
//! internet-facing setups should list `dns.nameservers` with addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;

/// A/AAAA of one name server name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSpec {
    pub name: String,
    pub addrs: Vec<IpAddr>,
}

/// The addresses the hosts of in-zone NS names get.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameServerSpec {
    /// Names with configured addresses.
    pub hosts: Vec<HostSpec>,
    /// In-zone NS names without configured addresses get these.
    pub self_addrs: Vec<IpAddr>,
}

impl NameServerSpec {
    /// From `dns.nameservers` and `dns.listen_address`; addresses that do
    /// not parse are skipped (the config loader rejects them first).
    pub fn from_config(dns: &crate::config::DnsConfig) -> NameServerSpec {
        let hosts = dns
            .nameservers
            .iter()
            .filter(|n| !n.addresses.is_empty())
            .map(|n| HostSpec {
                name: crate::backend::normalize_name(&n.name),
                addrs: n
                    .addresses
                    .iter()
                    .filter_map(|a| a.trim().parse().ok())
                    .collect(),
            })
            .collect();
        let self_addrs = match crate::config::Listener::Dns.parse(&dns.listen_address) {
            Ok(listen) => self_addresses(listen, interface_addresses()),
            Err(_) => Vec::new(),
        };
        NameServerSpec { hosts, self_addrs }
    }

    /// The addresses of `name` (lowercase, no trailing dot).
    pub(crate) fn addresses_of(&self, name: &str) -> &[IpAddr] {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .map_or(&self.self_addrs[..], |h| &h.addrs[..])
    }
}

/// This node's addresses as seen from `listen` (pure: `ifaddrs` is the
/// host's interface list).
pub fn self_addresses(listen: SocketAddr, ifaddrs: &[IpAddr]) -> Vec<IpAddr> {
    let ip = listen.ip();
    if !ip.is_unspecified() {
        return vec![ip];
    }
    // An IPv4 wildcard serves only IPv4; the IPv6 one is dual-stack.
    let v6 = ip.is_ipv6();
    let mut out: Vec<IpAddr> = ifaddrs
        .iter()
        .copied()
        .filter(|a| usable(*a) && (v6 || a.is_ipv4()))
        .collect();
    out.sort();
    out.dedup();
    out
}

fn usable(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => {
            !(v4.is_loopback() || v4.is_link_local() || v4.is_multicast() || v4.is_unspecified())
        }
        IpAddr::V6(v6) => {
            let link_local = v6.segments()[0] & 0xffc0 == 0xfe80;
            !(v6.is_loopback() || link_local || v6.is_multicast() || v6.is_unspecified())
        }
    }
}

/// The host's interface addresses, read once (getifaddrs(3)).
fn interface_addresses() -> &'static [IpAddr] {
    static ADDRS: OnceLock<Vec<IpAddr>> = OnceLock::new();
    ADDRS.get_or_init(|| {
        let addrs = read_interfaces();
        if addrs.iter().all(|a| !usable(*a)) {
            log::warn!(
                "dns: no usable interface address for the default name server records; set dns.nameservers with addresses"
            );
        }
        addrs
    })
}

fn read_interfaces() -> Vec<IpAddr> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        log::warn!(
            "dns: cannot list interfaces: {}",
            std::io::Error::last_os_error()
        );
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points at a sockaddr whose family says
            // which larger struct it is.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: family AF_INET means a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(IpAddr::V4(Ipv4Addr::from(
                    sin.sin_addr.s_addr.to_ne_bytes(),
                )));
            } else if family == libc::AF_INET6 {
                // SAFETY: family AF_INET6 means a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: head came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn listen_address_or_interfaces() {
        let ifs = [
            ip("127.0.0.1"),
            ip("10.1.2.3"),
            ip("169.254.1.1"),
            ip("::1"),
            ip("fe80::1"),
            ip("2001:db8::53"),
            ip("10.1.2.3"),
        ];
        assert_eq!(
            self_addresses("192.0.2.53:53".parse().unwrap(), &ifs),
            vec![ip("192.0.2.53")]
        );
        assert_eq!(
            self_addresses("0.0.0.0:53".parse().unwrap(), &ifs),
            vec![ip("10.1.2.3")]
        );
        assert_eq!(
            self_addresses("[::]:53".parse().unwrap(), &ifs),
            vec![ip("10.1.2.3"), ip("2001:db8::53")]
        );
        assert!(self_addresses("0.0.0.0:53".parse().unwrap(), &[ip("127.0.0.1")]).is_empty());
    }

    #[test]
    fn configured_addresses_win_over_self() {
        let spec = NameServerSpec {
            hosts: vec![HostSpec {
                name: "ns2.example.com".into(),
                addrs: vec![ip("192.0.2.2")],
            }],
            self_addrs: vec![ip("192.0.2.1")],
        };
        assert_eq!(spec.addresses_of("ns2.example.com"), &[ip("192.0.2.2")]);
        assert_eq!(spec.addresses_of("ns1.example.com"), &[ip("192.0.2.1")]);
    }
}
