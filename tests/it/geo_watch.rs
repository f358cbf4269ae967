//! The GeoIP database replaced between SIGHUPs (SPEC §11), against the
//! real binary: a new file renamed over `database_path` routes DNS and
//! `geo test` without a signal; a garbage one keeps the previous database
//! serving and is counted in
//! `opengslb_overwatch_geo_database_reloads_total{result="failure"}`; a
//! good one after it is taken again. Waits for states, never for a time.

use crate::geo::dig;
use crate::util::*;
use std::path::Path;
use std::time::Duration;

/// Writes a database mapping 192.0.2.0/24 to `country` beside `path`
/// and renames it over `path`, as geoipupdate does.
fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn db(country: &str, continent: &str) -> Vec<u8> {
    let mut w = mmdb::MmdbWriter::new();
    w.insert("192.0.2.0/24", country, continent);
    w.bytes()
}

fn metric(api: &str, series: &str) -> Option<f64> {
    let (_, text) = http_get(&format!("{api}/metrics"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn a_replaced_database_is_taken_and_a_bad_one_keeps_the_old_serving() {
    if !need_tools(
        "geo_watch::a_replaced_database_is_taken_and_a_bad_one_keeps_the_old_serving",
        &["dig"],
    ) {
        return;
    }
    let dir = TempDir::new("geo-watch");
    let db_path = dir.path().join("geo.mmdb");
    std::fs::write(&db_path, db("DE", "EU")).unwrap();
    let eu = HttpBackend::start("127.0.0.2");
    let us = HttpBackend::start("127.0.0.3");
    let dns_port = free_port("127.0.0.1");
    let api_port = free_port("127.0.0.1");
    let api = format!("http://127.0.0.1:{api_port}");
    let server = |b: &HttpBackend| {
        format!(
            "    servers: [{{address: \"{}\", port: {}}}]\n    health_check: {{type: http, path: /health, interval: 200ms, timeout: 500ms, failure_threshold: 1, success_threshold: 1}}\n",
            b.addr.ip(),
            b.addr.port()
        )
    };
    let yaml = format!(
        "mode: overwatch\ndns:\n  listen_address: \"127.0.0.1:{dns_port}\"\n  zones: [gslb.test]\noverwatch:\n  data_dir: \"{}\"\n  geolocation:\n    database_path: geo.mmdb\n    default_region: eu\nregions:\n  - name: eu\n    countries: [DE]\n{}  - name: us\n    countries: [US]\n{}domains:\n  - {{name: www.gslb.test, routing_algorithm: geolocation, regions: [eu, us]}}\napi:\n  address: \"127.0.0.1:{api_port}\"\n",
        dir.path().join("data").display(),
        server(&eu),
        server(&us),
    );
    let path = dir.write("ow.yaml", &yaml);
    let daemon = Daemon::start_file(&dir, "ow", &path, "overwatch");
    let want = |what: &str, addr: &str| {
        wait_for(what, Duration::from_secs(60), || {
            (dig(dns_port, "www.gslb.test", "192.0.2.0/24").0 == [addr]).then_some(())
        })
    };
    let failures = "opengslb_overwatch_geo_database_reloads_total{result=\"failure\"} ";
    let successes = "opengslb_overwatch_geo_database_reloads_total{result=\"success\"} ";
    want("DE → eu from the first database", "127.0.0.2");
    assert_eq!(metric(&api, successes), Some(0.0));
    assert_eq!(metric(&api, failures), Some(0.0));

    // Replaced: the new database routes, without a SIGHUP.
    replace(&db_path, &db("US", "NA"));
    want("US → us from the replaced database", "127.0.0.3");
    let (code, body) = http_get(&format!("{api}/api/v1/geo/test?ip=192.0.2.9")).unwrap();
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["country"], "US", "{body}");
    assert_eq!(metric(&api, successes), Some(1.0));

    // Garbage: counted, and the previous database keeps serving.
    replace(&db_path, b"this is not a MaxMind database");
    wait_for("the bad file counted", Duration::from_secs(60), || {
        (metric(&api, failures)? >= 1.0).then_some(())
    });
    assert_eq!(
        dig(dns_port, "www.gslb.test", "192.0.2.0/24").0,
        ["127.0.0.3"]
    );
    assert_eq!(metric(&api, successes), Some(1.0));

    // A good file again is taken; the bad one was reported once.
    replace(&db_path, &db("DE", "EU"));
    want("DE → eu once a good file is back", "127.0.0.2");
    assert_eq!(metric(&api, failures), Some(1.0));
    assert_eq!(metric(&api, successes), Some(2.0));
    let log = daemon.log_text();
    assert_eq!(
        log.matches("replaced database not used").count(),
        1,
        "{log}"
    );
}
