//! Decision rules and ECS scope of the resolver, against a database built
//! by the tests' own MaxMind DB writer.

use super::*;
use crate::config::load_str;

#[path = "../../tests/util/mmdb.rs"]
mod mmdb;

const YAML: &str = r#"
mode: overwatch
overwatch:
  agent_tokens: {app.example.com: t0ken-t0ken-t0ken}
  geolocation:
    default_region: eu
    custom_mappings:
      - {cidr: 10.0.0.0/8, region: us, comment: corp}
      - {cidr: 10.20.0.0/16, region: eu}
      - {cidr: "2001:db8:ff::/48", region: us}
regions:
  - name: eu
    countries: [de, FR]
    continents: [EU]
    servers: [{address: 192.0.2.1}]
  - name: us
    countries: [US]
    continents: [NA, sa]
    servers: [{address: 192.0.2.2}]
  - name: ap
    continents: [AS, OC]
    servers: [{address: 192.0.2.3}]
dns:
  zones: [example.com]
domains:
  - {name: app.example.com, routing_algorithm: geo, regions: [eu, us, ap]}
"#;

fn database() -> std::sync::Arc<Database> {
    let mut w = mmdb::MmdbWriter::new();
    w.insert("198.51.0.0/16", "US", "NA");
    w.insert("198.51.100.0/24", "DE", "EU");
    w.insert("203.0.113.0/24", "JP", "AS");
    w.insert("192.0.2.0/25", "BR", "SA");
    w.insert("100.64.0.0/10", "ZA", "AF");
    w.insert("2001:db8:1::/48", "FR", "EU");
    let dir = std::env::temp_dir().join(format!("opengslb-geo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // One file per call: tests run in parallel and one rewriting the file
    // another has mapped made the reader see a torn database.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("test-{n}.mmdb"));
    std::fs::write(&path, w.bytes()).unwrap();
    std::sync::Arc::new(open_database(path.to_str().unwrap()).unwrap())
}

fn resolver(api: &[GeoMapping]) -> GeoResolver {
    let cfg = match load_str(YAML, std::path::Path::new("t.yaml"), None) {
        Ok(l) => l.config,
        Err(e) => panic!("{e}"),
    };
    GeoResolver::new(&cfg, Some(database()), api).unwrap()
}

fn at(r: &GeoResolver, ip: &str) -> (String, MatchType, u8) {
    let d = r.resolve(ip.parse().unwrap());
    (r.region_name(d.region).to_string(), d.match_type, d.scope)
}

#[test]
fn longest_custom_mapping_wins_and_sets_the_scope() {
    let r = resolver(&[]);
    assert_eq!(
        at(&r, "10.1.2.3"),
        ("us".into(), MatchType::CustomMapping, 8)
    );
    assert_eq!(
        at(&r, "10.20.2.3"),
        ("eu".into(), MatchType::CustomMapping, 16)
    );
    assert_eq!(
        at(&r, "2001:db8:ff::9"),
        ("us".into(), MatchType::CustomMapping, 48)
    );
    assert_eq!(
        at(&r, "::ffff:10.1.2.3"),
        ("us".into(), MatchType::CustomMapping, 8)
    );
}

#[test]
fn database_country_beats_continent_and_scope_is_the_network() {
    let r = resolver(&[]);
    // DE is listed by eu; the /24 inside the US /16 is the matched network.
    assert_eq!(at(&r, "198.51.100.7"), ("eu".into(), MatchType::Geoip, 24));
    // The tree splits the /16 around the /24: 198.51.7.7 sits in the /18
    // that differs from 198.51.100.0 at bit 18 (the scope a resolver may
    // cache the answer for).
    assert_eq!(at(&r, "198.51.7.7"), ("us".into(), MatchType::Geoip, 18));
    // JP is no region's country: continent AS → ap.
    assert_eq!(at(&r, "203.0.113.9"), ("ap".into(), MatchType::Geoip, 24));
    // Lowercase config codes match: continent sa → us.
    assert_eq!(at(&r, "192.0.2.9"), ("us".into(), MatchType::Geoip, 25));
    assert_eq!(at(&r, "2001:db8:1::1"), ("eu".into(), MatchType::Geoip, 48));
}

#[test]
fn unknown_or_unmapped_location_goes_to_default_with_scope_zero() {
    let r = resolver(&[]);
    // In the database (ZA/AF) but no region lists it.
    assert_eq!(at(&r, "100.64.1.1"), ("eu".into(), MatchType::Default, 0));
    // Not in the database at all.
    assert_eq!(at(&r, "8.8.8.8"), ("eu".into(), MatchType::Default, 0));
    assert_eq!(at(&r, "2001:db9::1"), ("eu".into(), MatchType::Default, 0));
}

#[test]
fn config_mappings_win_over_api_mappings_of_the_same_cidr() {
    let api = [
        GeoMapping {
            cidr: "10.0.0.0/8".into(),
            region: "ap".into(),
            comment: String::new(),
        },
        GeoMapping {
            cidr: "203.0.113.0/28".into(),
            region: "eu".into(),
            comment: "api".into(),
        },
    ];
    let r = resolver(&api);
    assert_eq!(at(&r, "10.1.2.3").0, "us");
    assert_eq!(
        at(&r, "203.0.113.3"),
        ("eu".into(), MatchType::CustomMapping, 28)
    );
    let from: Vec<(&str, bool)> = r
        .mappings()
        .iter()
        .map(|m| (m.mapping.cidr.as_str(), m.from_config))
        .collect();
    assert!(from.contains(&("203.0.113.0/28", false)));
    assert!(
        !from.contains(&("10.0.0.0/8", false)),
        "shadowed API mapping"
    );
}

#[test]
fn explain_names_cidr_country_and_continent() {
    let r = resolver(&[]);
    let e = r.explain("198.51.100.7".parse().unwrap());
    assert_eq!(e.region, "eu");
    assert_eq!(e.country.as_deref(), Some("DE"));
    assert_eq!(e.continent.as_deref(), Some("EU"));
    assert_eq!(e.scope, 24);
    let e = r.explain("10.20.9.9".parse().unwrap());
    assert_eq!(e.matched_cidr.as_deref(), Some("10.20.0.0/16"));
    assert_eq!(e.match_type.as_str(), "custom_mapping");
}

#[test]
fn a_garbage_database_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("opengslb-geo-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.mmdb");
    std::fs::write(&path, b"not a database").unwrap();
    let e = open_database(path.to_str().unwrap()).unwrap_err();
    assert!(e.contains("bad.mmdb"), "{e}");
    let e = open_database("/nonexistent/x.mmdb").unwrap_err();
    assert!(e.contains("/nonexistent/x.mmdb"), "{e}");
}

/// The per-/16 shortcut answers exactly as walking the database does.
#[test]
fn whole_sixteens_answer_like_the_tree_walk() {
    let r = resolver(&[]);
    let filled = r.v4_sixteens.iter().filter(|&&e| e & WHOLE != 0).count();
    // 100.64.0.0/10 alone covers 64 /16s; 198.51.0.0/16 holds a /24.
    assert!(filled >= 64, "{filled}");
    assert_eq!(r.v4_sixteens[(198 << 8) | 51] & WHOLE, 0);
    for top in (0u32..=0xffff)
        .step_by(7)
        .chain([(100 << 8) | 64, (198 << 8) | 51])
    {
        for low in [0u32, 0x1234, 0xffff] {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(top << 16 | low));
            assert_eq!(r.in_database(ip), r.walk(ip), "{ip}");
        }
    }
}
