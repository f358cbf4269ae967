//! Unit tests of the DNS table (table.rs): name lookup, zones and the
//! snapshot built from a spec.

use super::*;

fn wire(s: &str) -> Vec<u8> {
    key(&parse_name(s).unwrap()).into_vec()
}

fn spec() -> TableSpec {
    TableSpec {
        zones: vec![ZoneSpec {
            apex: "Example.COM".into(),
            soa: SoaConfig::default(),
            nameservers: vec![],
        }],
        domains: vec![
            DomainSpec {
                name: "App.Gslb.Example.com.".into(),
                ttl: 30,
                algorithm: RoutingAlgorithm::RoundRobin,
                max_records: None,
                targets: vec![Target {
                    ip: "10.0.0.1".parse().unwrap(),
                    weight: 1,
                }],
                last_healthy: None,
                by_region: vec![],
                round_trips: Vec::new(),
            },
            DomainSpec {
                name: "lonely.test".into(),
                ttl: 30,
                algorithm: RoutingAlgorithm::Failover,
                max_records: None,
                targets: vec![],
                last_healthy: None,
                by_region: vec![],
                round_trips: Vec::new(),
            },
        ],
        serial: 7,
        ..Default::default()
    }
}

#[test]
fn lookups_cover_apex_domain_ent_nxdomain_refused() {
    let stats = DnsStats::new();
    let t = DnsTable::build(&spec(), &stats);
    assert!(matches!(
        t.lookup(&wire("example.com")),
        Lookup::Found {
            at_apex: true,
            node: None,
            ..
        }
    ));
    assert!(matches!(
        t.lookup(&wire("app.gslb.example.com")),
        Lookup::Found {
            at_apex: false,
            node: Some(Node::Domain(_)),
            ..
        }
    ));
    assert!(matches!(
        t.lookup(&wire("gslb.example.com")),
        Lookup::Found {
            node: Some(Node::Empty),
            ..
        }
    ));
    assert!(matches!(
        t.lookup(&wire("nope.example.com")),
        Lookup::Found {
            node: None,
            at_apex: false,
            ..
        }
    ));
    assert!(matches!(t.lookup(&wire("example.org")), Lookup::Refused));
    // A domain under no zone is its own apex.
    match t.lookup(&wire("lonely.test")) {
        Lookup::Found {
            zone,
            at_apex: true,
            node: Some(Node::Domain(d)),
        } => {
            assert_eq!(d.serving, Serving::ServFail);
            assert_eq!(zone.soa.mname().to_string(), "ns1.lonely.test");
            assert_eq!(zone.negative_ttl, 30);
        }
        _ => panic!("lonely.test should be an implicit apex"),
    }
    assert!(matches!(
        t.lookup(&wire("x.lonely.test")),
        Lookup::Found { node: None, .. }
    ));
    assert!(matches!(
        DnsTable::empty().lookup(&wire("example.com")),
        Lookup::Refused
    ));
}

#[test]
fn wire_name_lowercases_and_bounds() {
    let n: DName = Name::from_str("WWW.Example.Com.").unwrap();
    let w = WireName::from_labels(n.iter()).unwrap();
    assert_eq!(w.as_slice(), &wire("www.example.com")[..]);
}

#[test]
fn invalid_names_are_skipped() {
    let mut s = spec();
    s.domains[0].name = "bad..name".into();
    s.zones[0].apex = String::new();
    let t = DnsTable::build(&s, &DnsStats::new());
    assert_eq!(t.zone_count(), 1);
}
