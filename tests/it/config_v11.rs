//! OpenGSLB v1.1 files that must keep loading (issue 15): one fixture per
//! v1.1 form under tests/fixtures/v11/, loaded the way the daemon loads
//! them, with the warnings that tell the operator what changed.

use opengslb::config::{self, CheckType, LogFormat, Mode, RoutingAlgorithm};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v11");

/// A fresh temporary folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "opengslb-v11-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// Copies fixture `rel` (a file or a folder) in, every file mode 600
    /// as operators are told to keep them.
    fn copy(&self, rel: &str) -> PathBuf {
        let from = Path::new(FIXTURES).join(rel);
        let to = self.0.join(rel);
        copy_tree(&from, &to);
        to
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.0.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        path
    }
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        fs::create_dir_all(to).unwrap();
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(from, to).unwrap();
        fs::set_permissions(to, fs::Permissions::from_mode(0o600)).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn has_warning(loaded: &config::Loaded, needle: &str) -> bool {
    loaded.warnings.iter().any(|w| w.contains(needle))
}

#[test]
fn overwatch_v11_forms_load() {
    let dir = TempDir::new("ow");
    let path = dir.copy("overwatch-compat.yaml");
    let loaded = config::load(&path, None).unwrap_or_else(|e| panic!("{e}"));
    let cfg = &loaded.config;
    let east = &cfg.regions[0];

    // regions[].servers[].host, and a server without port is port 80.
    assert_eq!(east.servers[0].host, "www.corp.example");
    assert_eq!(east.servers[0].port, 80);
    assert_eq!(east.servers[1].port, 8080);
    assert_eq!(cfg.regions[1].servers[0].host, "eu.corp.example");

    // A host-name address is resolved at load, with a warning naming it;
    // the name stays the check's Host header.
    let resolved: Vec<&str> = east
        .servers
        .iter()
        .filter(|s| s.port == 8081)
        .map(|s| s.address.as_str())
        .collect();
    assert!(!resolved.is_empty());
    for a in &resolved {
        let ip: std::net::IpAddr = a.parse().unwrap();
        assert!(ip.is_loopback(), "{a}");
    }
    assert_eq!(east.servers[2].host, "localhost");
    assert!(
        has_warning(
            &loaded,
            "regions[0].servers[2].address: host name \"localhost\" resolved to"
        ),
        "{:?}",
        loaded.warnings
    );

    // Empty gossip bind address means "not set": the default applies.
    assert_eq!(cfg.overwatch.gossip.bind_address, "0.0.0.0:7946");

    // Aliases and case.
    let algs: Vec<RoutingAlgorithm> = cfg.domains.iter().map(|d| d.routing_algorithm).collect();
    assert_eq!(
        algs,
        [
            RoutingAlgorithm::RoundRobin,
            RoutingAlgorithm::Weighted,
            RoutingAlgorithm::Failover,
            RoutingAlgorithm::RoundRobin
        ]
    );
    assert_eq!(east.health_check.kind, CheckType::Http);
    assert_eq!(cfg.regions[1].health_check.kind, CheckType::Https);
    assert_eq!(cfg.logging.format, LogFormat::Json);

    // Go duration forms.
    assert_eq!(
        *cfg.overwatch.validation.check_interval,
        Duration::from_secs(5400)
    );
    assert_eq!(
        *cfg.overwatch.validation.check_timeout,
        Duration::from_millis(2500)
    );
    assert_eq!(
        cfg.overwatch.stale.threshold.map(|d| *d),
        Some(Duration::from_nanos(250))
    );
    assert_eq!(
        cfg.overwatch.gossip.probe_timeout.map(|d| *d),
        Some(Duration::from_micros(500))
    );
    assert_eq!(*east.health_check.timeout, Duration::from_millis(1500));

    // A domain outside dns.zones becomes its own zone apex, with a
    // warning naming the key (file and line).
    assert_eq!(cfg.dns.zones, ["gslb.corp.example", "legacy.other.example"]);
    let p = path.display().to_string();
    assert!(
        loaded.warnings.iter().any(|w| w.starts_with(&format!(
            "{p}:65: domains[3].name: \"legacy.other.example\" is outside every zone"
        ))),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn agent_v11_forms_load() {
    let dir = TempDir::new("agent");
    let path = dir.copy("agent-compat.yaml");
    let loaded = config::load(&path, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.mode, Mode::Agent);
    let agent = loaded.config.agent.as_ref().unwrap();
    assert_eq!(agent.identity.region, "");
    let b = &agent.backends[0];
    assert!(b.address.parse::<std::net::IpAddr>().unwrap().is_loopback());
    assert_eq!(b.health_check.host, "localhost");
    assert_eq!(b.health_check.kind, CheckType::Http);
    assert_eq!(*b.health_check.interval, Duration::from_millis(1500));
    assert_eq!(loaded.config.logging.format, LogFormat::Json);
    assert!(has_warning(
        &loaded,
        "agent.backends[0].address: host name \"localhost\""
    ));
}

#[test]
fn unresolvable_host_name_is_an_error_with_its_line() {
    let dir = TempDir::new("unresolved");
    let path = dir.write(
        "ow.yaml",
        "regions:\n  - name: a\n    servers:\n      - address: no-such-host.invalid\ndomains:\n  - name: www.example.com\n    regions: [a]\n",
    );
    let text = config::load(&path, None).unwrap_err().to_string();
    assert!(
        text.contains("ow.yaml:4: regions[0].servers[0].address: cannot resolve host name \"no-such-host.invalid\""),
        "{text}"
    );
}

#[test]
fn geolocation_latency_and_learned_latency_load_after_aliases() {
    use opengslb::config::RoutingAlgorithm;
    let dir = TempDir::new("geo");
    let path = dir.copy("geolocation.yaml");
    let loaded = config::load(&path, None).unwrap_or_else(|e| panic!("{e}"));
    let algs: Vec<RoutingAlgorithm> = loaded
        .config
        .domains
        .iter()
        .map(|d| d.routing_algorithm)
        .collect();
    assert_eq!(
        algs,
        [
            RoutingAlgorithm::Geolocation,
            RoutingAlgorithm::LearnedLatency,
            RoutingAlgorithm::Latency
        ]
    );
    let geo = loaded.config.overwatch.geolocation.as_ref().unwrap();
    assert!(geo.ecs_enabled);
    assert_eq!(geo.custom_mappings[0].comment, "Corporate network");
    assert_eq!(loaded.config.regions[1].continents, ["EU", "AF"]);
    assert_eq!(loaded.config.domains[2].latency_config.max_latency_ms, 500);
}

#[test]
fn geolocation_mistakes_are_errors_with_file_and_line() {
    let dir = TempDir::new("geo-bad");
    let path = dir.write(
        "ow.yaml",
        "overwatch:\n  geolocation:\n    default_region: mars\n    custom_mappings:\n      - {cidr: 10.0.0.0/33, region: a}\n      - {cidr: 10.1.0.0/16, regoin: a}\nregions:\n  - name: a\n    continents: [XX]\n    servers:\n      - address: 10.0.0.1\ndomains:\n  - name: www.example.com\n    routing_algorithm: geolocation\n    regions: [a]\n    latency_config: {smoothing_factor: 2}\n",
    );
    let text = config::load(&path, None).unwrap_err().to_string();
    for want in [
        "ow.yaml:3: overwatch.geolocation.default_region: region \"mars\" is not defined",
        "ow.yaml:5: overwatch.geolocation.custom_mappings[0].cidr: \"10.0.0.0/33\" is not a CIDR",
        "did you mean \"region\"",
        "ow.yaml:9: regions[0].continents[0]: \"XX\" is not a continent code",
        "domains[0].latency_config.smoothing_factor: must be greater than 0",
    ] {
        assert!(text.contains(want), "{want}\n{text}");
    }
}

#[test]
fn nested_includes_and_custom_mappings_merge() {
    let dir = TempDir::new("nested");
    dir.copy("nested");
    let main = dir.0.join("nested/overwatch.yaml");
    let loaded = config::load(&main, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.files.len(), 3, "{:?}", loaded.files);
    let names: Vec<&str> = loaded
        .config
        .domains
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(names, ["www.gslb.corp.example", "api.gslb.corp.example"]);
    assert_eq!(loaded.config.regions.len(), 1);
    let geo = loaded.config.overwatch.geolocation.as_ref().unwrap();
    let cidrs: Vec<&str> = geo
        .custom_mappings
        .iter()
        .map(|m| m.cidr.as_str())
        .collect();
    assert_eq!(cidrs, ["10.0.0.0/8", "192.168.0.0/16"]);
}

#[test]
fn scalar_keys_in_included_files_stay_errors_with_file_and_line() {
    let dir = TempDir::new("scalar");
    dir.copy("nested");
    let bad = dir.write(
        "nested/conf.d/geo/bad.yaml",
        "domains: []\nlogging:\n  level: debug\noverwatch:\n  geolocation:\n    default_region: eu\n",
    );
    let main = dir.0.join("nested/overwatch.yaml");
    let text = config::load(&main, None).unwrap_err().to_string();
    let b = bad.display().to_string();
    assert!(
        text.contains(&format!(
            "{b}:2: logging: cannot be set in an included file"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("{b}:6: overwatch.geolocation.default_region: only a list of overwatch.geolocation.custom_mappings")),
        "{text}"
    );
}

#[test]
fn include_loops_are_read_once() {
    let dir = TempDir::new("loop");
    let main = dir.write(
        "ow.yaml",
        "includes: [a.yaml]\ndomains:\n  - name: www.example.com\n",
    );
    dir.write("a.yaml", "includes: [b.yaml]\n");
    dir.write(
        "b.yaml",
        "includes: [a.yaml, ow.yaml]\ndomains:\n  - name: api.example.com\n",
    );
    let loaded = config::load(&main, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.config.domains.len(), 2);
    assert_eq!(loaded.files.len(), 3);
}

#[test]
fn check_refuses_v11_metrics_on_the_api_port_with_the_fix() {
    let dir = TempDir::new("clash");
    let path = dir.copy("overwatch-metrics-9090.yaml");
    let text = config::load(&path, None).unwrap_err().to_string();
    let p = path.display().to_string();
    assert!(
        text.contains(&format!("{p}:26: metrics.address: \":9090\" takes the same port as api.address (\"127.0.0.1:9090\"); the daemon would fail to start. The API listens on 127.0.0.1:9090 by default")),
        "{text}"
    );
    assert!(
        text.contains("Fix: add `api: {address: \"127.0.0.1:9092\"}` to the file"),
        "{text}"
    );

    // The fix it names works, and the missing tokens draw the warning.
    let fixed = fs::read_to_string(&path).unwrap() + "api: {address: \"127.0.0.1:9092\"}\n";
    let path = dir.write("fixed.yaml", &fixed);
    let loaded = config::load(&path, None).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        has_warning(
            &loaded,
            "overwatch: no overwatch.agent_tokens: any agent that reports to this Overwatch will be refused (token_invalid)"
        ),
        "{:?}",
        loaded.warnings
    );

    let agent = dir.copy("agent-metrics-9100.yaml");
    let text = config::load(&agent, None).unwrap_err().to_string();
    assert!(
        text.contains("metrics.address: \":9100\" takes the same port as agent.api.address (\"127.0.0.1:9100\")")
            && text.contains("Fix: add `api: {address: \"127.0.0.1:9102\"}` under `agent:`"),
        "{text}"
    );
}

#[test]
fn tokens_keyed_by_non_domains_warn() {
    let dir = TempDir::new("tokens");
    let path = dir.write(
        "ow.yaml",
        "overwatch:\n  agent_tokens:\n    webapp: t0k3n\nregions:\n  - name: a\n    servers:\n      - address: 10.0.0.1\ndomains:\n  - name: www.example.com\n    regions: [a]\n",
    );
    let loaded = config::load(&path, None).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        has_warning(
            &loaded,
            "ow.yaml:3: overwatch.agent_tokens.webapp: no domain named \"webapp\"; agents reporting this service will be refused"
        ),
        "{:?}",
        loaded.warnings
    );
}

/// `opengslb-cli config migrate` on a v1.1 Overwatch file without
/// agent_tokens: the output loads without the clash or the token warning,
/// and a v1.1 agent given the printed token for its service loads too.
#[test]
fn config_migrate_makes_a_v11_pair_consistent() {
    let dir = TempDir::new("migrate");
    let ow = dir.copy("overwatch-metrics-9090.yaml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_opengslb-cli"))
        .args(["config", "migrate", ow.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true, "{v}");
    let token = v["tokens"]["www.gslb.corp.example"]
        .as_str()
        .unwrap()
        .to_string();
    let text = v["text"].as_str().unwrap();
    assert!(text.starts_with("# Migrated from OpenGSLB v1.1"), "{text}");
    assert!(
        text.contains("# v1.1 example-overwatch.yaml shape"),
        "comments kept: {text}"
    );

    let migrated = dir.write("ow-migrated.yaml", text);
    let loaded = config::load(&migrated, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.config.api.address, "127.0.0.1:9092");
    assert_eq!(loaded.config.metrics.address.as_deref(), Some(":9090"));
    assert_eq!(
        loaded.config.overwatch.agent_tokens["www.gslb.corp.example"],
        token
    );
    assert!(
        !has_warning(&loaded, "agent_tokens"),
        "{:?}",
        loaded.warnings
    );

    // The agent: migrate moves its API off the v1.1 metrics port; the
    // operator sets the printed token.
    let agent = dir.copy("agent-metrics-9100.yaml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_opengslb-cli"))
        .args(["config", "migrate", agent.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)
        .unwrap()
        .replace("s3cr3t-www-token", &token);
    let agent = dir.write("agent-migrated.yaml", &text);
    let loaded = config::load(&agent, None).unwrap_or_else(|e| panic!("{e}"));
    let a = loaded.config.agent.as_ref().unwrap();
    assert_eq!(a.api.address, "127.0.0.1:9102");
    assert_eq!(
        loaded.secrets.service_token.as_deref(),
        Some(token.as_str())
    );
}

#[test]
fn missing_or_unreadable_geoip_database_is_an_error() {
    let dir = TempDir::new("geoip");
    let path = dir.write(
        "ow.yaml",
        "overwatch:\n  geolocation:\n    database_path: GeoLite2-Country.mmdb\n    default_region: a\nregions:\n  - name: a\n    servers:\n      - address: 10.0.0.1\ndomains:\n  - name: www.example.com\n    routing_algorithm: geo\n    regions: [a]\n",
    );
    let text = config::load(&path, None).unwrap_err().to_string();
    assert!(
        text.contains("ow.yaml:3: overwatch.geolocation.database_path: cannot open GeoIP database")
            && text.contains("GeoLite2-Country.mmdb"),
        "{text}"
    );
    dir.write("GeoLite2-Country.mmdb", "garbage");
    let text = config::load(&path, None).unwrap_err().to_string();
    assert!(text.contains("cannot open GeoIP database"), "{text}");
    let mut w = crate::util::mmdb::MmdbWriter::new();
    w.insert("192.0.2.0/24", "US", "NA");
    std::fs::write(dir.0.join("GeoLite2-Country.mmdb"), w.bytes()).unwrap();
    config::load(&path, None).unwrap_or_else(|e| panic!("{e}"));
}

/// `load_str` (the fuzzer, `config migrate`) never looks names up: the
/// name stays and a warning says when it will be resolved.
#[test]
fn load_str_leaves_host_names_alone() {
    let text = "regions:\n  - name: a\n    servers:\n      - address: no-such-host.invalid\ndomains:\n  - name: www.example.com\n    regions: [a]\n";
    let loaded =
        config::load_str(text, Path::new("/x/ow.yaml"), None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        loaded.config.regions[0].servers[0].address,
        "no-such-host.invalid"
    );
    assert!(
        has_warning(
            &loaded,
            "/x/ow.yaml:4: regions[0].servers[0].address: host name \"no-such-host.invalid\" will be resolved when the daemon loads the file"
        ),
        "{:?}",
        loaded.warnings
    );
}
