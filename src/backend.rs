//! The one backend model shared by the agent, gossip and the Overwatch.
//!
//! A backend is one (service, address, port). The service is the DNS name
//! it answers for, normalised once (`normalize_name`) where it enters the
//! process, and the address is parsed once where it enters (config load,
//! gossip admission), so nothing downstream compares spellings or drops a
//! report it could not parse after acknowledging it.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// Static servers and agent reports with the same key are the same backend.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BackendKey {
    pub service: String,
    pub address: IpAddr,
    pub port: u16,
}

impl BackendKey {
    pub fn new(service: &str, address: IpAddr, port: u16) -> Self {
        BackendKey {
            service: normalize_name(service),
            address,
            port,
        }
    }

    pub fn socket(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }
}

impl std::fmt::Display for BackendKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.service, self.socket())
    }
}

/// Lowercase, without surrounding space or the trailing dot: the one form
/// in which DNS and service names are compared.
pub fn normalize_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// What an agent says about one of its backends: produced by the agent,
/// carried by gossip, kept by the Overwatch as the agent's claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendReport {
    pub key: BackendKey,
    pub weight: u32,
    pub healthy: bool,
    pub draining: bool,
    pub drain_reason: Option<String>,
    pub last_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_normalised_once_at_construction() {
        let k = BackendKey::new(" App.Example.COM. ", "10.0.0.1".parse().unwrap(), 80);
        assert_eq!(k.service, "app.example.com");
        assert_eq!(k.to_string(), "app.example.com 10.0.0.1:80");
        let v6 = BackendKey::new("a", "2001:db8::1".parse().unwrap(), 443);
        assert_eq!(v6.socket().to_string(), "[2001:db8::1]:443");
    }
}
