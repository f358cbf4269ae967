//! Bodies refused with the field named, and the overlay: API entries
//! added, the file's entries winning, nothing dropped by a reload.

use super::*;
use serde_json::json;

const YAML: &str = r#"
dns: { zones: [gslb.test] }
regions:
  - name: east
    servers: [{ address: 10.0.0.1, port: 80 }]
domains:
  - { name: app.gslb.test, regions: [east] }
"#;

fn base() -> Config {
    serde_norway::from_str(YAML).unwrap()
}

#[test]
fn bad_bodies_name_the_field() {
    let cases = [
        (json!([]), "the body must be a JSON object"),
        (json!({"port": 80, "region": "east"}), "address: required"),
        (
            json!({"address": "web", "port": 80, "region": "east"}),
            "address:",
        ),
        (
            json!({"address": "10.0.0.9", "region": "east"}),
            "port: required",
        ),
        (
            json!({"address": "10.0.0.9", "port": 0, "region": "east"}),
            "port:",
        ),
        (
            json!({"address": "10.0.0.9", "port": 80}),
            "region: required",
        ),
        (
            json!({"address": "10.0.0.9", "port": 80, "region": "east", "wat": 1}),
            "wat: unknown field",
        ),
        (
            json!({"address": "10.0.0.9", "port": "80", "region": "east"}),
            "port:",
        ),
    ];
    for (b, want) in cases {
        let e = body::server(&b, None).unwrap_err();
        assert!(e.starts_with(want), "{b}: {e}");
    }
    let v11 = json!({"name": "web-9", "address": "10.0.0.9", "port": 80, "region": "east",
                     "protocol": "http", "priority": 1, "enabled": true, "weight": 0});
    let s = body::server(&v11, None).unwrap();
    assert_eq!((s.id().as_str(), s.weight), ("10.0.0.9:80", 100));
    assert!(
        body::domain(&json!({"name": "a..b"}), None)
            .unwrap_err()
            .starts_with("name:")
    );
    let e = body::domain(
        &json!({"name": "x.gslb.test", "routing_algorithm": "latency"}),
        None,
    );
    assert!(e.unwrap_err().starts_with("routing_algorithm:"));
    assert!(
        body::region(&json!({"name": "a b"}), None)
            .unwrap_err()
            .starts_with("name:")
    );
}

#[test]
fn updates_keep_what_they_do_not_name() {
    let old = body::server(
        &json!({"address": "10.0.0.9", "port": 80, "region": "east"}),
        None,
    )
    .unwrap();
    let new = body::server(&json!({"weight": 5}), Some(&old)).unwrap();
    assert_eq!(
        (new.address.as_str(), new.port, new.weight),
        ("10.0.0.9", 80, 5)
    );
}

#[test]
fn overlay_adds_api_entries_and_the_file_wins() {
    let m = Managed {
        servers: vec![
            body::server(
                &json!({"address": "10.0.0.1", "port": 80, "region": "east", "weight": 7}),
                None,
            )
            .unwrap(),
            body::server(
                &json!({"address": "10.0.0.2", "port": 80, "region": "west"}),
                None,
            )
            .unwrap(),
            body::server(
                &json!({"address": "10.0.0.3", "port": 80, "region": "gone"}),
                None,
            )
            .unwrap(),
        ],
        regions: vec![body::region(&json!({"name": "west"}), None).unwrap()],
        domains: vec![
            body::domain(&json!({"name": "APP.gslb.test.", "ttl": 5}), None).unwrap(),
            body::domain(
                &json!({"name": "api.other.test", "regions": ["west"]}),
                None,
            )
            .unwrap(),
        ],
    };
    let (cfg, skipped) = overlay(&base(), &m);
    assert_eq!(cfg.regions.len(), 2);
    // The file's 10.0.0.1:80 wins: it keeps its weight and is not doubled.
    assert_eq!(cfg.regions[0].servers.len(), 1);
    assert_eq!(cfg.regions[0].servers[0].weight, 100);
    assert_eq!(cfg.regions[1].servers[0].address, "10.0.0.2");
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(cfg.domains.len(), 2);
    assert_eq!(cfg.domains[0].ttl, None, "file's app.gslb.test wins");
    assert!(cfg.dns.zones.contains(&"api.other.test".to_string()));
    let l = listing(&base(), &m);
    let shadowed: Vec<bool> = l
        .servers
        .iter()
        .map(|s| s["shadowed_by_config"] == true)
        .collect();
    assert_eq!(shadowed, [false, true, false, false]);
    assert_eq!(l.servers[1]["source"], "api");
    assert_eq!(l.api_domains[0], ("app.gslb.test".to_string(), true));
}

/// What one node holds, replicated to another: every entry taken, the
/// same set on both; what the receiver cannot take leaves it unchanged.
#[test]
fn replicated_entries_round_trip_and_bad_ones_leave_state_unchanged() {
    use crate::overwatch::peers::Kind;
    let mut origin = Managed::default();
    origin.regions.push(ManagedRegion {
        name: "west".into(),
        countries: vec!["US".into()],
        continents: vec![],
    });
    origin.servers.push(ManagedServer {
        address: "10.0.0.9".into(),
        port: 8080,
        weight: 3,
        region: "west".into(),
        service: String::new(),
        name: "web-9".into(),
    });
    origin.domains.push(ManagedDomain {
        name: "shop.gslb.test".into(),
        routing_algorithm: RoutingAlgorithm::Weighted,
        regions: vec!["west".into(), "east".into()],
        ttl: None,
    });
    let mut here = Managed::default();
    for (kind, id) in replicated::keys(&origin) {
        let v = replicated::value_of(&origin, kind, &id);
        replicated::apply(&base(), &mut here, kind, &id, v.as_deref()).unwrap();
    }
    assert_eq!(here, origin);

    // A domain naming a region this node lacks: refused, nothing changes.
    let mut lacking = Managed::default();
    let v = replicated::value_of(&origin, Kind::ManagedDomain, "shop.gslb.test");
    let err = replicated::apply(
        &base(),
        &mut lacking,
        Kind::ManagedDomain,
        "shop.gslb.test",
        v.as_deref(),
    )
    .unwrap_err();
    assert!(
        err.contains("\"west\" is not a region on this node"),
        "{err}"
    );
    assert_eq!(lacking, Managed::default());

    // An id that does not match the body, a body the API would refuse.
    let before = here.clone();
    let v = replicated::value_of(&origin, Kind::ManagedServer, "10.0.0.9:8080");
    assert!(
        replicated::apply(
            &base(),
            &mut here,
            Kind::ManagedServer,
            "10.0.0.8:80",
            v.as_deref()
        )
        .is_err()
    );
    let bad = r#"{"address":"web","port":80,"region":"west"}"#;
    assert!(
        replicated::apply(&base(), &mut here, Kind::ManagedServer, "web:80", Some(bad)).is_err()
    );
    // A region still used by a server here is not deleted.
    assert!(replicated::apply(&base(), &mut here, Kind::ManagedRegion, "west", None).is_err());
    assert_eq!(here, before);

    // Deletes (tombstones) remove, in any order the references allow.
    for (kind, id) in [
        (Kind::ManagedDomain, "shop.gslb.test"),
        (Kind::ManagedServer, "10.0.0.9:8080"),
        (Kind::ManagedRegion, "west"),
    ] {
        replicated::apply(&base(), &mut here, kind, id, None).unwrap();
    }
    assert_eq!(here, Managed::default());
}

#[test]
fn the_replicated_key_of_a_write_comes_from_the_path_or_the_body() {
    use crate::api::command::{Entity, ManageOp};
    use crate::overwatch::peers::Kind;
    let b = json!({"address": "10.0.0.9", "port": 80, "region": "east"});
    assert_eq!(
        replicated::key_of(Entity::Server, ManageOp::Create, None, &b),
        Some((Kind::ManagedServer, "10.0.0.9:80".to_string()))
    );
    assert_eq!(
        replicated::key_of(
            Entity::Domain,
            ManageOp::Delete,
            Some("Shop.GSLB.test."),
            &json!(null)
        ),
        Some((Kind::ManagedDomain, "shop.gslb.test".to_string()))
    );
}
