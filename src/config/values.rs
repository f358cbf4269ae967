//! Parsers for the value formats used in the configuration: `host:port`
//! peers, networks, DNS names and gossip keys (listen addresses have their
//! own module, `listen`).
//! Other modules use these too, so a value accepted by `--check` is
//! exactly the value the daemon will use.

use base64::Engine;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

fn parse_port(port: &str, whole: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(format!("invalid port in {whole:?}: expected 1 to 65535")),
    }
}

/// Parses a peer as `host:port` where host is an IP, `[IPv6]` or a DNS
/// name. Returns the host (without brackets) and port.
pub fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let s = s.trim();
    if let Ok(addr) = s.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err(format!("invalid port in {s:?}: expected 1 to 65535"));
        }
        return Ok((addr.ip().to_string(), addr.port()));
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("invalid address {s:?}: expected HOST:PORT"));
    };
    let port = parse_port(port, s)?;
    if host.is_empty() || host.contains(':') || !is_dns_name(host) {
        return Err(format!("invalid address {s:?}: expected HOST:PORT"));
    }
    Ok((host.to_string(), port))
}

/// Parses a network in CIDR form; a bare IP means that one host.
pub fn parse_network(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    Err(format!(
        "invalid network {s:?}: expected CIDR such as 10.0.0.0/8 or ::1/128"
    ))
}

/// Decodes a gossip key: standard base64 of exactly 32 bytes.
pub fn decode_key(b64: &str) -> Result<[u8; 32], String> {
    let text = b64.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| {
            format!(
                "encryption key is not valid base64 ({e}); generate one with `opengslb-cli gen-key`"
            )
        })?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "encryption key must decode to 32 bytes, got {}; generate one with `opengslb-cli gen-key`",
            bytes.len()
        )
    })
}

/// Whether `name` is a valid DNS name (letters, digits, `-`, `_`, labels of
/// 1..=63 bytes, 253 bytes in all; a trailing dot is allowed).
pub fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

pub use crate::backend::normalize_name;

/// Whether `name` is `zone` or below it.
pub fn in_zone(name: &str, zone: &str) -> bool {
    let name = normalize_name(name);
    let zone = normalize_name(zone);
    name == zone || name.ends_with(&format!(".{zone}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        assert_eq!(
            parse_host_port("ow1.example.com:7946").unwrap(),
            ("ow1.example.com".into(), 7946)
        );
        assert_eq!(parse_host_port("[::1]:7946").unwrap(), ("::1".into(), 7946));
        for bad in ["ow1", ":7946", "ow1:0", "a b:1", "::1:7946x"] {
            assert!(parse_host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_and_networks() {
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(decode_key(&format!(" {key}\n")).unwrap(), [7u8; 32]);
        assert!(decode_key("c2hvcnQ=").unwrap_err().contains("32 bytes"));
        assert!(decode_key("not base64!").is_err());
        assert_eq!(
            parse_network("10.0.0.1").unwrap().to_string(),
            "10.0.0.1/32"
        );
        assert!(parse_network("10.0.0.0/33").is_err());
        assert!(in_zone("App.Example.com.", "example.com"));
        assert!(!in_zone("badexample.com", "example.com"));
        assert!(!is_dns_name("a..b"));
    }
}
