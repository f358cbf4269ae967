//! Benchmark harness, not a functional test (ignored by default): serves
//! the benchmark's names with the in-process DNS server on
//! `$DNS_BENCH_ADDR` for `$DNS_BENCH_SECS` seconds, with one UDP thread,
//! so scripts/bench/dns.sh can compare it with NSD when the daemon binary
//! is not built. Run: `DNS_BENCH_ADDR=127.0.0.1:5399 cargo test --release
//! --test dns_bench_server -- --ignored`.

use opengslb::config::{RoutingAlgorithm, SoaConfig};
use opengslb::dns::{
    self, DnsStats, DnsTable, DomainSpec, ServerConfig, TableSpec, Target, ZoneSpec,
};
use opengslb::snapshot::SnapshotCell;
use std::sync::Arc;
use std::time::Duration;

#[test]
#[ignore = "benchmark harness; run by scripts/bench/dns.sh"]
fn serve_bench_names() {
    let addr = std::env::var("DNS_BENCH_ADDR").unwrap_or_else(|_| "127.0.0.1:5399".into());
    let secs: u64 = std::env::var("DNS_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let targets = vec![
        Target {
            ip: "127.0.0.2".parse().unwrap(),
            weight: 100,
        },
        Target {
            ip: "127.0.0.3".parse().unwrap(),
            weight: 100,
        },
    ];
    let spec = TableSpec {
        zones: vec![ZoneSpec {
            apex: "bench.test".into(),
            soa: SoaConfig::default(),
            nameservers: vec![],
        }],
        domains: (1..=4)
            .map(|i| DomainSpec {
                name: format!("app{i}.bench.test"),
                ttl: 60,
                algorithm: RoutingAlgorithm::RoundRobin,
                max_records: None,
                targets: targets.clone(),
                last_healthy: None,
                by_region: Vec::new(),
                round_trips: Vec::new(),
            })
            .collect(),
        serial: 1,
        ..Default::default()
    };
    let stats = Arc::new(DnsStats::new());
    let cell = Arc::new(SnapshotCell::new(DnsTable::build(&spec, &stats)));
    let cfg = ServerConfig {
        listen: addr.parse().expect("DNS_BENCH_ADDR is host:port"),
        threads: 1,
        tcp_idle_timeout: Duration::from_secs(10),
        tcp_max_connections: 256,
        max_udp_size: 1232,
        learned: None,
    };
    let server = dns::start(&cfg, cell, Arc::clone(&stats)).expect("bind");
    println!("serving on {}", server.local_addr());
    std::thread::sleep(Duration::from_secs(secs));
    server.stop();
}
