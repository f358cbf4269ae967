//! Geolocation routing against the real binary (SPEC §11): a MaxMind DB
//! built by the test, custom mappings, three regions of real HTTP
//! backends, and `dig +subnet` as a recursive resolver would ask. Checks
//! the region each client subnet gets, the ECS scope in the answer, and
//! that a region whose backend fails hands its clients to the next one.

use crate::util::*;
use std::process::Command;
use std::time::Duration;

/// (addresses, ECS option text) of `dig +subnet=SUBNET name A`.
pub(crate) fn dig(port: u16, name: &str, subnet: &str) -> (Vec<String>, String) {
    let out = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &port.to_string(),
            "+tries=1",
            "+time=2",
            &format!("+subnet={subnet}"),
            name,
            "A",
        ])
        .output()
        .expect("dig runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut addrs: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with(';') && l.contains("\tA\t"))
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect();
    addrs.sort();
    let ecs = text
        .lines()
        .find_map(|l| {
            l.split_once("CLIENT-SUBNET: ")
                .map(|(_, e)| e.trim().to_string())
        })
        .unwrap_or_default();
    (addrs, ecs)
}

#[test]
fn ecs_subnets_get_their_region_with_scope_and_fail_over() {
    if !need_tools(
        "geo::ecs_subnets_get_their_region_with_scope_and_fail_over",
        &["dig"],
    ) {
        return;
    }
    let dir = TempDir::new("geo-it");
    let mut w = mmdb::MmdbWriter::new();
    w.insert("198.51.0.0/16", "US", "NA");
    w.insert("203.0.113.0/24", "JP", "AS");
    w.insert("192.0.2.0/24", "DE", "EU");
    std::fs::write(dir.path().join("geo.mmdb"), w.bytes()).unwrap();
    let eu = HttpBackend::start("127.0.0.2");
    let us = HttpBackend::start("127.0.0.3");
    let ap = HttpBackend::start("127.0.0.4");
    let dns_port = free_port("127.0.0.1");
    let server = |b: &HttpBackend| {
        format!(
            "    servers: [{{address: \"{}\", port: {}}}]\n    health_check: {{type: http, path: /health, interval: 200ms, timeout: 500ms, failure_threshold: 1, success_threshold: 1}}\n",
            b.addr.ip(),
            b.addr.port()
        )
    };
    let yaml = format!(
        "mode: overwatch\ndns:\n  listen_address: \"127.0.0.1:{dns_port}\"\n  zones: [gslb.test]\noverwatch:\n  data_dir: \"{}\"\n  validation: {{enabled: true, check_interval: 200ms, check_timeout: 500ms}}\n  geolocation:\n    database_path: geo.mmdb\n    default_region: eu\n    custom_mappings:\n      - {{cidr: 10.20.0.0/16, region: ap, comment: office}}\nregions:\n  - name: eu\n    countries: [DE]\n{}  - name: us\n    continents: [NA]\n{}  - name: ap\n    continents: [AS]\n{}domains:\n  - {{name: www.gslb.test, routing_algorithm: geolocation, regions: [eu, us, ap]}}\napi:\n  address: \"127.0.0.1:{}\"\n",
        dir.path().join("data").display(),
        server(&eu),
        server(&us),
        server(&ap),
        free_port("127.0.0.1"),
    );
    let path = dir.write("ow.yaml", &yaml);
    let _daemon = Daemon::start_file(&dir, "ow", &path, "overwatch");
    let want = |subnet: &str, addr: &str, ecs: &str| {
        wait_for(
            &format!("{subnet} → {addr}"),
            Duration::from_secs(20),
            || {
                let got = dig(dns_port, "www.gslb.test", subnet);
                (got.0 == [addr] && got.1 == ecs).then_some(())
            },
        )
    };
    // Database: country (DE → eu) and continent (NA → us, AS → ap).
    want("192.0.2.0/24", "127.0.0.2", "192.0.2.0/24/24");
    want("198.51.100.0/24", "127.0.0.3", "198.51.100.0/24/16");
    want("203.0.113.0/24", "127.0.0.4", "203.0.113.0/24/24");
    // Custom mapping wins; scope is its prefix.
    want("10.20.30.0/24", "127.0.0.4", "10.20.30.0/24/16");
    // Nowhere known: the default region, scope 0.
    want("100.64.0.0/24", "127.0.0.2", "100.64.0.0/24/0");
    // us fails: its clients go to the next region in the domain's order.
    us.set_status(500);
    want("198.51.100.0/24", "127.0.0.4", "198.51.100.0/24/16");
    us.set_status(200);
    want("198.51.100.0/24", "127.0.0.3", "198.51.100.0/24/16");
}
