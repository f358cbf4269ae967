//! The one sample DNS table of the tests, the fuzz targets and the corpus
//! replay: zone `example.com` (SOA TTL 300, negative TTL 20, two name
//! servers) and one name for each responder path. Hidden from the docs; it
//! is a fixture, not an interface, and lives in the library only so unit
//! tests, integration tests and `fuzz/` build the same table.
//!
//! | name | algorithm | addresses |
//! |---|---|---|
//! | `app.example.com` | round-robin | 10.0.0.1, 10.0.0.2, 2001:db8::2 |
//! | `fo.example.com` | failover | 10.0.0.5, 10.0.0.6 |
//! | `w.example.com` | weighted | 10.0.0.7, 10.0.0.8 |
//! | `down.example.com` | round-robin | none (SERVFAIL) |
//! | `big.example.com` | round-robin | 10.1.0.1 – 10.1.0.100 (truncates) |
//! | `example.com` | failover | 10.9.9.9 (the apex) |
//! | `v6.example.com` | round-robin, TTL 10 | 2001:db8::1 |
//! | `last.example.com` | failover | none; last healthy 192.0.2.9 |
//!
//! Every name has TTL 42 unless said otherwise, every address weight 1.

use crate::config::{RoutingAlgorithm, SoaConfig};
use crate::dns::stats::DnsStats;
use crate::dns::table::{DnsTable, DomainSpec, TableSpec, Target, ZoneSpec};
use std::net::IpAddr;

/// The TTL of every sample name but `v6.example.com`.
pub const TTL: u32 = 42;

/// A name with `targets` (address literals; a bad one panics: they are
/// test constants), weight 1 each, TTL [`TTL`].
pub fn domain(name: &str, algorithm: RoutingAlgorithm, targets: &[&str]) -> DomainSpec {
    DomainSpec {
        name: name.into(),
        ttl: TTL,
        algorithm,
        max_records: None,
        targets: targets.iter().map(|a| target(a)).collect(),
        last_healthy: None,
        by_region: Vec::new(),
        round_trips: Vec::new(),
    }
}

fn target(literal: &str) -> Target {
    let ip: IpAddr = literal
        .parse()
        .unwrap_or_else(|e| panic!("sample address {literal:?}: {e}"));
    Target { ip, weight: 1 }
}

/// The sample table as a spec, for tests that change a name before
/// building it.
pub fn spec() -> TableSpec {
    let mut v6only = domain(
        "v6.example.com",
        RoutingAlgorithm::RoundRobin,
        &["2001:db8::1"],
    );
    v6only.ttl = 10;
    let mut last = domain("last.example.com", RoutingAlgorithm::Failover, &[]);
    last.last_healthy = Some(vec![target("192.0.2.9")]);
    let many: Vec<String> = (1..=100).map(|i| format!("10.1.0.{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    TableSpec {
        zones: vec![ZoneSpec {
            apex: "example.com".into(),
            soa: SoaConfig {
                ttl: 300,
                minimum: 20,
                ..SoaConfig::default()
            },
            nameservers: vec!["ns1.example.com".into(), "ns2.example.net".into()],
        }],
        domains: vec![
            domain(
                "app.example.com",
                RoutingAlgorithm::RoundRobin,
                &["10.0.0.1", "10.0.0.2", "2001:db8::2"],
            ),
            domain(
                "fo.example.com",
                RoutingAlgorithm::Failover,
                &["10.0.0.5", "10.0.0.6"],
            ),
            domain(
                "w.example.com",
                RoutingAlgorithm::Weighted,
                &["10.0.0.7", "10.0.0.8"],
            ),
            domain("down.example.com", RoutingAlgorithm::RoundRobin, &[]),
            domain("big.example.com", RoutingAlgorithm::RoundRobin, &many),
            domain("example.com", RoutingAlgorithm::Failover, &["10.9.9.9"]),
            v6only,
            last,
        ],
        serial: 2026,
        nameservers: crate::dns::NameServerSpec {
            hosts: vec![],
            self_addrs: vec![
                "192.0.2.53".parse().expect("literal"),
                "2001:db8::53".parse().expect("literal"),
            ],
        },
        rate_limit: None,
        geo: None,
    }
}

/// The sample table, built with `stats`.
pub fn table(stats: &DnsStats) -> DnsTable {
    DnsTable::build(&spec(), stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_in_the_zone_and_unique() {
        let s = spec();
        let mut names: Vec<&str> = s.domains.iter().map(|d| d.name.as_str()).collect();
        assert!(names.iter().all(|n| n.ends_with("example.com")));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), s.domains.len());
    }
}
