//! Who may call the API: the network ACL (`api.allowed_networks`), the
//! client address behind a trusted proxy, and bearer tokens for writes.
//! Pure functions over the request's headers and peer address.

use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The parsed access policy of `api:`.
#[derive(Clone, Debug)]
pub struct Access {
    networks: Vec<IpNet>,
    trust_proxy_headers: bool,
    /// name → token
    tokens: BTreeMap<String, String>,
}

impl Access {
    /// Parses `allowed_networks`; an entry without a prefix is one host.
    /// An empty list means the default, loopback only: an API nobody may
    /// reach is never what an operator meant.
    pub fn new(
        allowed_networks: &[String],
        trust_proxy_headers: bool,
        tokens: &BTreeMap<String, String>,
    ) -> Result<Access, String> {
        let loopback = ["127.0.0.0/8".to_string(), "::1/128".to_string()];
        let allowed_networks = if allowed_networks.is_empty() {
            &loopback[..]
        } else {
            allowed_networks
        };
        let mut networks = Vec::new();
        for text in allowed_networks {
            let net = text
                .parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!(
                        "api.allowed_networks: invalid network {text:?} (expected e.g. 10.0.0.0/8)"
                    )
                })?;
            networks.push(net);
        }
        if let Some((name, _)) = tokens.iter().find(|(_, t)| t.is_empty()) {
            return Err(format!("api.tokens: token {name:?} is empty"));
        }
        Ok(Access {
            networks,
            trust_proxy_headers,
            tokens: tokens.clone(),
        })
    }

    /// The address the request is attributed to: the first `X-Forwarded-For`
    /// entry when proxy headers are trusted, else the peer.
    pub fn client_ip(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        if self.trust_proxy_headers
            && let Some(first) = forwarded_for.and_then(|h| h.split(',').next())
            && let Ok(ip) = first.trim().parse::<IpAddr>()
        {
            return Some(ip);
        }
        peer
    }

    /// Whether the client address is inside `allowed_networks`.
    pub fn allowed(&self, client: Option<IpAddr>) -> bool {
        let Some(ip) = client else { return false };
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.networks.iter().any(|n| n.contains(&ip))
    }

    pub fn tokens_required(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The name of the token presented in `Authorization: Bearer …`, or
    /// `Ok(None)` when no tokens are configured; `Err` means 401.
    pub fn authorize(&self, authorization: Option<&str>) -> Result<Option<String>, &'static str> {
        if self.tokens.is_empty() {
            return Ok(None);
        }
        let presented = authorization
            .and_then(|h| {
                let (scheme, rest) = h.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .ok_or("this write needs Authorization: Bearer <token> (api.tokens is set)")?;
        // Compare against every token so timing does not reveal which matched.
        let mut found = None;
        for (name, token) in &self.tokens {
            if constant_time_eq(token.as_bytes(), presented.as_bytes()) && found.is_none() {
                found = Some(name.clone());
            }
        }
        found.map(Some).ok_or("invalid bearer token")
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The audit author: `X-User` (with the token name when one was used),
/// the token name, or `anonymous`.
pub fn author(x_user: Option<&str>, token_name: Option<&str>) -> String {
    let user = x_user.map(str::trim).filter(|u| !u.is_empty());
    match (user, token_name) {
        (Some(u), Some(t)) => format!("{u} (token {t})"),
        (Some(u), None) => u.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => "anonymous".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(nets: &[&str], trust: bool, tokens: &[(&str, &str)]) -> Access {
        let nets: Vec<String> = nets.iter().map(|s| s.to_string()).collect();
        let tokens = tokens
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        Access::new(&nets, trust, &tokens).expect("valid")
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn loopback_default_and_mapped_v4() {
        let a = access(&["127.0.0.0/8", "::1/128"], false, &[]);
        assert!(a.allowed(ip("127.0.0.1")));
        assert!(a.allowed(ip("::1")));
        assert!(a.allowed(ip("::ffff:127.0.0.1")));
        assert!(!a.allowed(ip("10.0.0.1")));
        assert!(!a.allowed(None));
        let empty = access(&[], false, &[]);
        assert!(empty.allowed(ip("127.0.0.1")));
        assert!(!empty.allowed(ip("10.0.0.1")));
        let host = access(&["10.1.2.3"], false, &[]);
        assert!(host.allowed(ip("10.1.2.3")));
        assert!(!host.allowed(ip("10.1.2.4")));
    }

    #[test]
    fn invalid_network_is_named() {
        let err = Access::new(&["10.0.0.0/33".into()], false, &BTreeMap::new()).expect_err("bad");
        assert!(err.contains("10.0.0.0/33"));
    }

    #[test]
    fn forwarded_for_only_when_trusted() {
        let peer = ip("127.0.0.1");
        let untrusted = access(&["127.0.0.0/8"], false, &[]);
        assert_eq!(untrusted.client_ip(peer, Some("10.9.9.9")), peer);
        let trusted = access(&["127.0.0.0/8"], true, &[]);
        assert_eq!(
            trusted.client_ip(peer, Some(" 10.9.9.9 , 127.0.0.1")),
            ip("10.9.9.9")
        );
        assert_eq!(trusted.client_ip(peer, Some("garbage")), peer);
    }

    #[test]
    fn bearer_tokens() {
        let open = access(&[], false, &[]);
        assert_eq!(open.authorize(None), Ok(None));
        let a = access(&[], false, &[("ops", "s3cret"), ("ci", "other")]);
        assert_eq!(a.authorize(Some("Bearer s3cret")), Ok(Some("ops".into())));
        assert_eq!(a.authorize(Some("bearer other")), Ok(Some("ci".into())));
        assert!(a.authorize(Some("Bearer wrong")).is_err());
        assert!(a.authorize(Some("Basic s3cret")).is_err());
        assert!(a.authorize(None).is_err());
    }

    #[test]
    fn author_names() {
        assert_eq!(author(Some("alice"), Some("ops")), "alice (token ops)");
        assert_eq!(author(None, Some("ops")), "ops");
        assert_eq!(author(Some(" "), None), "anonymous");
    }
}
