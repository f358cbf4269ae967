//! The one listen-address parser. `--check` (config validation) and the
//! daemon's binding code both call [`Listener::parse`], so an address the
//! checker accepts is exactly the address the daemon binds.
//!
//! Forms, for every listener:
//! - `IP:PORT` (`127.0.0.1:53`) and `[IPv6]:PORT` (`[::1]:53`);
//! - `:PORT`, every address: IPv6 any, dual-stack, so IPv4 clients are
//!   served too (as `[::]` with `IPV6_V6ONLY` off, the Linux default);
//! - a bare IP (`127.0.0.1`, `::1`, `[::1]`), on the listener's default
//!   port (53 for DNS, 7946 for gossip, 9090 for the API, 9091 for the
//!   metrics listener, 9100 for the agent API);
//! - `localhost` and `localhost:PORT`, which mean 127.0.0.1.
//!
//! Port 0 asks the kernel for a free port (the daemon logs the one it got);
//! other host names are refused: a listener binds an address, and a name
//! that resolves differently at start and at `--check` time would break
//! the promise above.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The daemon's listeners, each with its key and default port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// `dns.listen_address`
    Dns,
    /// `overwatch.gossip.bind_address`
    Gossip,
    /// `api.address`
    Api,
    /// `metrics.address`
    Metrics,
    /// `agent.api.address`
    AgentApi,
}

impl Listener {
    pub const ALL: [Listener; 5] = [
        Listener::Dns,
        Listener::Gossip,
        Listener::Api,
        Listener::Metrics,
        Listener::AgentApi,
    ];

    /// The configuration key that holds this listener's address.
    pub const fn key(self) -> &'static str {
        match self {
            Listener::Dns => "dns.listen_address",
            Listener::Gossip => "overwatch.gossip.bind_address",
            Listener::Api => "api.address",
            Listener::Metrics => "metrics.address",
            Listener::AgentApi => "agent.api.address",
        }
    }

    /// The port a bare IP means.
    pub const fn default_port(self) -> u16 {
        match self {
            Listener::Dns => 53,
            Listener::Gossip => 7946,
            Listener::Api => 9090,
            Listener::Metrics => 9091,
            Listener::AgentApi => 9100,
        }
    }

    /// Parses this listener's address; see the module documentation.
    pub fn parse(self, text: &str) -> Result<SocketAddr, ListenError> {
        parse(text, self.default_port())
    }
}

/// Why a listen address was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenError {
    /// Neither `IP:PORT`, `[IPv6]:PORT`, `:PORT` nor a bare IP.
    Invalid { text: String },
    /// The address is fine but the port is not a number up to 65535.
    Port { text: String },
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenError::Invalid { text } => write!(
                f,
                "invalid listen address {text:?}: expected IP:PORT, [IPv6]:PORT, :PORT or a bare IP"
            ),
            ListenError::Port { text } => {
                write!(
                    f,
                    "invalid port in listen address {text:?}: expected 0 to 65535"
                )
            }
        }
    }
}

impl std::error::Error for ListenError {}

/// Parses a listen address; a bare IP takes `default_port`.
pub fn parse(text: &str, default_port: u16) -> Result<SocketAddr, ListenError> {
    let s = text.trim();
    let invalid = || ListenError::Invalid {
        text: text.to_string(),
    };
    let port = |p: &str| {
        p.parse::<u16>().map_err(|_| ListenError::Port {
            text: text.to_string(),
        })
    };
    if s.is_empty() {
        return Err(invalid());
    }
    // `:PORT` — but not a bare IPv6 address such as `::1`.
    if let Some(p) = s.strip_prefix(':').filter(|p| !p.contains(':')) {
        return Ok(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port(p)?));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        let ip: Ipv6Addr = inner.parse().map_err(|_| invalid())?;
        return Ok(SocketAddr::new(ip.into(), default_port));
    }
    if s == "localhost" {
        return Ok(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), default_port));
    }
    // Everything left has a port after its last colon; this tells a bad
    // port from a bad address.
    let (host, p) = s.rsplit_once(':').ok_or_else(invalid)?;
    let ip = match host {
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        _ => match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => IpAddr::V6(v6.parse().map_err(|_| invalid())?),
            None => IpAddr::V4(host.parse().map_err(|_| invalid())?),
        },
    };
    Ok(SocketAddr::new(ip, port(p)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_form() {
        let table: &[(&str, u16, &str)] = &[
            ("127.0.0.1:53", 1, "127.0.0.1:53"),
            (" 127.0.0.1:5353 ", 1, "127.0.0.1:5353"),
            ("[::1]:53", 1, "[::1]:53"),
            (":53", 1, "[::]:53"),
            (":0", 1, "[::]:0"),
            ("127.0.0.1", 53, "127.0.0.1:53"),
            ("::1", 9090, "[::1]:9090"),
            ("[::1]", 9100, "[::1]:9100"),
            ("::", 7946, "[::]:7946"),
            ("0.0.0.0", 9091, "0.0.0.0:9091"),
            ("localhost", 9090, "127.0.0.1:9090"),
            ("localhost:9091", 1, "127.0.0.1:9091"),
            ("[fe80::1%2]:53", 1, "[fe80::1%2]:53"),
        ];
        for (text, default, want) in table {
            assert_eq!(parse(text, *default), Ok(sa(want)), "{text}");
        }
    }

    #[test]
    fn refusals_say_why() {
        for bad in [
            "",
            "host:53",
            "ow1.example.com",
            "999.1.1.1:53",
            "[::1",
            "[nonsense]:53",
            "::1:53x",
            "1.2.3.4:53:1",
        ] {
            let e = parse(bad, 53).unwrap_err();
            assert!(
                e.to_string().starts_with("invalid listen address"),
                "{bad}: {e}"
            );
        }
        for bad in [":", ":99999", ":x", "1.2.3.4:", "1.2.3.4:x", "[::1]:-1"] {
            let e = parse(bad, 53).unwrap_err();
            assert!(matches!(e, ListenError::Port { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn default_ports_are_the_documented_ones() {
        let bare: Vec<(Listener, u16)> = Listener::ALL
            .iter()
            .map(|l| (*l, l.parse("127.0.0.1").unwrap().port()))
            .collect();
        assert_eq!(
            bare,
            [
                (Listener::Dns, 53),
                (Listener::Gossip, 7946),
                (Listener::Api, 9090),
                (Listener::Metrics, 9091),
                (Listener::AgentApi, 9100),
            ]
        );
        assert_eq!(Listener::Gossip.default_port(), crate::gossip::DEFAULT_PORT);
    }
}
