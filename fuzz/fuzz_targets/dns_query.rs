//! Fuzz target: arbitrary bytes as a DNS query against a fixed table, over
//! UDP and TCP. The responder must never panic, and any answer it gives
//! must fit the transport's size limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opengslb::config::{RoutingAlgorithm, SoaConfig};
use opengslb::dns::{
    DnsStats, DnsTable, DomainSpec, Responder, TableSpec, Target, Transport, ZoneSpec,
};
use std::sync::OnceLock;

fn table() -> &'static (DnsTable, DnsStats) {
    static T: OnceLock<(DnsTable, DnsStats)> = OnceLock::new();
    T.get_or_init(|| {
        let stats = DnsStats::new();
        let t = |a: &str| Target {
            ip: a.parse().unwrap(),
            weight: 2,
        };
        let spec = TableSpec {
            zones: vec![ZoneSpec {
                apex: "example.com".into(),
                soa: SoaConfig::default(),
                nameservers: vec![],
            }],
            domains: vec![
                DomainSpec {
                    name: "app.example.com".into(),
                    ttl: 30,
                    algorithm: RoutingAlgorithm::RoundRobin,
                    max_records: None,
                    targets: vec![t("10.0.0.1"), t("10.0.0.2"), t("2001:db8::1")],
                    last_healthy: None,
                },
                DomainSpec {
                    name: "w.example.com".into(),
                    ttl: 30,
                    algorithm: RoutingAlgorithm::Weighted,
                    max_records: Some(2),
                    targets: vec![t("10.0.0.3"), t("10.0.0.4")],
                    last_healthy: None,
                },
                DomainSpec {
                    name: "down.test".into(),
                    ttl: 30,
                    algorithm: RoutingAlgorithm::Failover,
                    max_records: None,
                    targets: vec![],
                    last_healthy: None,
                },
            ],
            serial: 1,
        };
        (DnsTable::build(&spec, &stats), stats)
    })
}

fuzz_target!(|data: &[u8]| {
    let (table, stats) = table();
    let mut r = Responder::new(1232);
    let client = "127.0.0.1".parse().unwrap();
    if let Some(out) = r.respond(data, client, Transport::Udp, table, stats) {
        assert!(out.len() <= 1232);
    }
    let _ = r.respond(data, client, Transport::Tcp, table, stats);
});
