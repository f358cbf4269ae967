//! Client-dependent routing through the full responder: the region a
//! client lands in (ECS or source), failover to the next region, ECS
//! scope, learned latency with a fake table, and the fallbacks.

use super::super::responder::{Responder, Transport};
use super::super::sample;
use super::super::stats::DnsStats;
use super::super::table::{DnsTable, TableSpec};
use super::*;
use crate::config::{Config, load_str};
use domain::base::iana::Rtype;
use domain::base::name::Name;
use domain::base::opt::UnknownOptData;
use domain::base::{Message, MessageBuilder};
use domain::dep::octseq::OctetsBuilder;
use domain::rdata::AllRecordData;
use std::str::FromStr;
use std::sync::Arc;

const YAML: &str = r#"
mode: overwatch
overwatch:
  agent_tokens: {geo.example.com: t0ken-t0ken-t0ken}
  geolocation:
    default_region: eu
    ecs_enabled: true
    custom_mappings:
      - {cidr: 198.51.100.0/24, region: us}
      - {cidr: 203.0.113.0/24, region: ap}
      - {cidr: "2001:db8:a::/48", region: ap}
regions:
  - {name: eu, servers: [{address: 192.0.2.1}]}
  - {name: us, servers: [{address: 192.0.2.2}]}
  - {name: ap, servers: [{address: 192.0.2.3}]}
dns:
  zones: [example.com]
domains:
  - {name: geo.example.com, routing_algorithm: geo, regions: [eu, us, ap]}
"#;

fn config() -> Config {
    match load_str(YAML, std::path::Path::new("t.yaml"), None) {
        Ok(l) => l.config,
        Err(e) => panic!("{e}"),
    }
}

fn region(name: &str, addrs: &[&str]) -> RegionTargets {
    RegionTargets {
        region: name.into(),
        targets: addrs
            .iter()
            .map(|a| super::super::table::Target {
                ip: a.parse().unwrap(),
                weight: 1,
            })
            .collect(),
    }
}

/// `geo.example.com` with the given algorithm and regions' targets.
fn table(stats: &DnsStats, algorithm: RoutingAlgorithm, regions: &[RegionTargets]) -> DnsTable {
    let cfg = config();
    let mut spec: TableSpec = sample::spec();
    let all: Vec<&str> = Vec::new();
    let mut d = sample::domain("geo.example.com", algorithm, &all);
    d.targets = regions.iter().flat_map(|r| r.targets.clone()).collect();
    d.by_region = regions.to_vec();
    spec.domains.push(d);
    spec.geo = GeoResolver::new(&cfg, None, &[]).map(Arc::new);
    DnsTable::build(&spec, stats)
}

fn query(qtype: Rtype, ecs: Option<(u16, u8, &[u8])>) -> Vec<u8> {
    let mut b = MessageBuilder::new_vec();
    b.header_mut().set_id(7);
    let mut q = b.question();
    q.push((Name::<Vec<u8>>::from_str("geo.example.com").unwrap(), qtype))
        .unwrap();
    let mut add = q.additional();
    if let Some((family, source, addr)) = ecs {
        let mut body = family.to_be_bytes().to_vec();
        body.extend_from_slice(&[source, 0]);
        body.extend_from_slice(addr);
        add.opt(|o| {
            o.set_udp_payload_size(1232);
            o.push_raw_option(
                domain::base::iana::OptionCode::CLIENT_SUBNET,
                body.len() as u16,
                |t| t.append_slice(&body),
            )
        })
        .unwrap();
    }
    add.finish()
}

struct Answer {
    addrs: Vec<String>,
    /// (source, scope) of the answer's ECS option.
    ecs: Option<(u8, u8)>,
}

fn ask_with(r: &mut Responder, t: &DnsTable, stats: &DnsStats, q: &[u8], from: &str) -> Answer {
    let out = r
        .respond(q, from.parse().unwrap(), Transport::Udp, t, stats)
        .expect("answered")
        .to_vec();
    let m = Message::from_octets(out).unwrap();
    let addrs = m
        .answer()
        .unwrap()
        .limit_to::<AllRecordData<_, _>>()
        .map(|r| r.unwrap().data().to_string())
        .collect();
    let ecs = m.opt().and_then(|opt| {
        opt.opt()
            .iter::<UnknownOptData<_>>()
            .map(|o| o.unwrap())
            .find(|o| o.code().to_int() == 8)
            .map(|o| (o.data()[2], o.data()[3]))
    });
    Answer { addrs, ecs }
}

fn ask(t: &DnsTable, stats: &DnsStats, q: &[u8], from: &str) -> Answer {
    ask_with(&mut Responder::new(1232), t, stats, q, from)
}

fn three(stats: &DnsStats) -> DnsTable {
    table(
        stats,
        RoutingAlgorithm::Geolocation,
        &[
            region("eu", &["10.0.1.1"]),
            region("us", &["10.0.2.1", "2001:db8:2::1"]),
            region("ap", &["10.0.3.1"]),
        ],
    )
}

#[test]
fn ecs_address_decides_and_scope_is_the_mapping_prefix() {
    let stats = DnsStats::new();
    let t = three(&stats);
    let a = ask(
        &t,
        &stats,
        &query(Rtype::A, Some((1, 24, &[198, 51, 100]))),
        "127.0.0.1",
    );
    assert_eq!(a.addrs, vec!["10.0.2.1"]);
    assert_eq!(a.ecs, Some((24, 24)));
    let a = ask(
        &t,
        &stats,
        &query(Rtype::A, Some((1, 24, &[203, 0, 113]))),
        "127.0.0.1",
    );
    assert_eq!(a.addrs, vec!["10.0.3.1"]);
    // A /56 source inside an IPv6 /48 mapping.
    let v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0x0a, 0];
    let a = ask(
        &t,
        &stats,
        &query(Rtype::A, Some((2, 56, &v6))),
        "127.0.0.1",
    );
    assert_eq!(
        (a.addrs, a.ecs),
        (vec!["10.0.3.1".to_string()], Some((56, 48)))
    );
}

#[test]
fn without_ecs_the_source_address_decides() {
    let stats = DnsStats::new();
    let t = three(&stats);
    assert_eq!(
        ask(&t, &stats, &query(Rtype::A, None), "198.51.100.9").addrs,
        vec!["10.0.2.1"]
    );
    assert_eq!(
        ask(&t, &stats, &query(Rtype::A, None), "203.0.113.9").addrs,
        vec!["10.0.3.1"]
    );
}

#[test]
fn unplaced_client_gets_default_region_with_scope_zero() {
    let stats = DnsStats::new();
    let t = three(&stats);
    let a = ask(
        &t,
        &stats,
        &query(Rtype::A, Some((1, 24, &[8, 8, 8]))),
        "127.0.0.1",
    );
    assert_eq!(
        (a.addrs, a.ecs),
        (vec!["10.0.1.1".to_string()], Some((24, 0)))
    );
    // Source prefix 0: the resolver withholds the client; scope 0.
    let a = ask(
        &t,
        &stats,
        &query(Rtype::A, Some((1, 0, &[]))),
        "198.51.100.9",
    );
    assert_eq!(a.ecs, Some((0, 0)));
}

#[test]
fn region_without_healthy_backends_of_the_family_fails_over_in_domain_order() {
    let stats = DnsStats::new();
    // us has no A records: its clients get the next region (ap).
    let t = table(
        &stats,
        RoutingAlgorithm::Geolocation,
        &[
            region("eu", &["10.0.1.1"]),
            region("us", &["2001:db8:2::1"]),
            region("ap", &["10.0.3.1"]),
        ],
    );
    let q = query(Rtype::A, Some((1, 24, &[198, 51, 100])));
    assert_eq!(ask(&t, &stats, &q, "127.0.0.1").addrs, vec!["10.0.3.1"]);
    let q = query(Rtype::AAAA, Some((1, 24, &[198, 51, 100])));
    assert_eq!(
        ask(&t, &stats, &q, "127.0.0.1").addrs,
        vec!["2001:db8:2::1"]
    );
    // ap gone entirely: wraps around to eu.
    let t = table(
        &stats,
        RoutingAlgorithm::Geolocation,
        &[region("eu", &["10.0.1.1"]), region("us", &["10.0.2.1"])],
    );
    let q = query(Rtype::A, Some((1, 24, &[203, 0, 113])));
    assert_eq!(ask(&t, &stats, &q, "127.0.0.1").addrs, vec!["10.0.1.1"]);
}

#[test]
fn decisions_are_counted_by_match_type() {
    let stats = DnsStats::new();
    let t = three(&stats);
    ask(
        &t,
        &stats,
        &query(Rtype::A, Some((1, 24, &[198, 51, 100]))),
        "127.0.0.1",
    );
    ask(&t, &stats, &query(Rtype::A, None), "8.8.8.8");
    ask(&t, &stats, &query(Rtype::A, None), "9.9.9.9");
    let c = stats.domain("geo.example.com");
    let n = |m: RouteMatch| c.routed[m.index()].load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(n(RouteMatch::Geo(MatchType::CustomMapping)), 1);
    assert_eq!(n(RouteMatch::Geo(MatchType::Default)), 2);
}

/// A learned table: 198.51.100.0/24 is fastest from ap then eu.
struct Fake;

impl LearnedLookup for Fake {
    fn visit_fastest(&self, client: IpAddr, visit: &mut dyn FnMut(&str, u8) -> bool) {
        if let IpAddr::V4(a) = client
            && a.octets()[..3] == [198, 51, 100]
        {
            for r in ["mars", "ap", "eu"] {
                if visit(r, 24) {
                    return;
                }
            }
        }
    }
}

#[test]
fn learned_latency_takes_the_fastest_region_with_backends_else_geolocation() {
    let stats = DnsStats::new();
    let t = table(
        &stats,
        RoutingAlgorithm::LearnedLatency,
        &[
            region("eu", &["10.0.1.1"]),
            region("us", &["10.0.2.1"]),
            region("ap", &["10.0.3.1"]),
        ],
    );
    let mut r = Responder::new(1232);
    r.set_learned(Some(Arc::new(Fake)));
    let q = query(Rtype::A, Some((1, 24, &[198, 51, 100])));
    let a = ask_with(&mut r, &t, &stats, &q, "127.0.0.1");
    // "mars" is unknown to the domain: skipped; ap is the first served.
    assert_eq!(
        (a.addrs, a.ecs),
        (vec!["10.0.3.1".to_string()], Some((24, 24)))
    );
    // Cold prefix: geolocation (default eu, scope 0).
    let q = query(Rtype::A, Some((1, 24, &[8, 8, 8])));
    let a = ask_with(&mut r, &t, &stats, &q, "127.0.0.1");
    assert_eq!(
        (a.addrs, a.ecs),
        (vec!["10.0.1.1".to_string()], Some((24, 0)))
    );
    let c = stats.domain("geo.example.com");
    assert_eq!(
        c.routed[5 + RouteMatch::Learned.index()].load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn learned_latency_without_geolocation_or_data_is_round_robin() {
    let stats = DnsStats::new();
    let regions = [region("eu", &["10.0.1.1"]), region("us", &["10.0.2.1"])];
    let mut spec: TableSpec = sample::spec();
    let mut d = sample::domain("geo.example.com", RoutingAlgorithm::LearnedLatency, &[]);
    d.targets = regions.iter().flat_map(|r| r.targets.clone()).collect();
    d.by_region = regions.to_vec();
    spec.domains.push(d);
    let t = DnsTable::build(&spec, &stats);
    let q = query(Rtype::A, Some((1, 24, &[8, 8, 8])));
    let a = ask(&t, &stats, &q, "127.0.0.1");
    assert_eq!(a.addrs.len(), 2, "every healthy backend, rotated");
    assert_eq!(a.ecs, Some((24, 0)));
}

#[test]
fn ecs_disabled_routes_on_the_source() {
    let stats = DnsStats::new();
    let mut cfg = config();
    if let Some(g) = cfg.overwatch.geolocation.as_mut() {
        g.ecs_enabled = false;
    }
    let mut spec: TableSpec = sample::spec();
    let regions = [region("eu", &["10.0.1.1"]), region("us", &["10.0.2.1"])];
    let mut d = sample::domain("geo.example.com", RoutingAlgorithm::Geolocation, &[]);
    d.targets = regions.iter().flat_map(|r| r.targets.clone()).collect();
    d.by_region = regions.to_vec();
    spec.domains.push(d);
    spec.geo = GeoResolver::new(&cfg, None, &[]).map(Arc::new);
    let t = DnsTable::build(&spec, &stats);
    let q = query(Rtype::A, Some((1, 24, &[198, 51, 100])));
    let a = ask(&t, &stats, &q, "127.0.0.1");
    assert_eq!(
        (a.addrs, a.ecs),
        (vec!["10.0.1.1".to_string()], Some((24, 0)))
    );
}
