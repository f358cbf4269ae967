//! The configuration loader as an operator meets it: the shipped files
//! load, a v1.1 file loads unchanged, mistakes are all reported with file,
//! line and a suggestion, world-readable files are refused with the fix,
//! includes merge, and every key is documented in opengslb.yaml(5).

use opengslb::config::{self, Mode, all_keys};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A fresh temporary folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "opengslb-config-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// Writes `rel` with mode 600 (the way operators are told to).
    fn write(&self, rel: &str, text: &str) -> PathBuf {
        self.write_mode(rel, text, 0o600)
    }

    fn write_mode(&self, rel: &str, text: &str, mode: u32) -> PathBuf {
        let path = self.0.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn shipped(rel: &str) -> String {
    fs::read_to_string(Path::new(ROOT).join(rel)).unwrap()
}

const KEY: &str = "b3BlbmdzbGItZXhhbXBsZS1rZXktUkVQTEFDRS1NRSE=";

/// The geolocation example loads once its database is there.
#[test]
fn shipped_geolocation_example_loads_with_a_database() {
    let dir = TempDir::new("shipped-geo");
    let rel = "etc/opengslb/examples/geolocation.yaml";
    let path = dir.write("geolocation.yaml", &shipped(rel));
    let mut w = crate::util::mmdb::MmdbWriter::new();
    w.insert("192.0.2.0/24", "US", "NA");
    fs::write(dir.0.join("GeoLite2-Country.mmdb"), w.bytes()).unwrap();
    let loaded = config::load(&path, None).unwrap_or_else(|e| panic!("{rel}:\n{e}"));
    assert_eq!(loaded.config.regions.len(), 3);
}

#[test]
fn shipped_files_load() {
    let dir = TempDir::new("shipped");
    for (rel, mode) in [
        ("etc/opengslb/overwatch.yaml", Mode::Overwatch),
        ("etc/opengslb/agent.yaml", Mode::Agent),
        ("etc/opengslb/examples/weighted.yaml", Mode::Overwatch),
        ("etc/opengslb/examples/failover.yaml", Mode::Overwatch),
        ("etc/opengslb/examples/multi-region.yaml", Mode::Overwatch),
        ("etc/opengslb/examples/latency.yaml", Mode::Overwatch),
    ] {
        let name = Path::new(rel).file_name().unwrap().to_str().unwrap();
        let path = dir.write(name, &shipped(rel));
        let loaded = config::load(&path, None).unwrap_or_else(|e| panic!("{rel}:\n{e}"));
        assert_eq!(loaded.mode, mode, "{rel}");
        assert_eq!(loaded.secrets.gossip_keys.len(), 1, "{rel}");
        for w in &loaded.warnings {
            assert!(!w.contains("v1.1"), "{rel}: {w}");
        }
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.contains("published example key")),
            "{rel}: {:?}",
            loaded.warnings
        );
    }
    let agent = config::load(&dir.0.join("agent.yaml"), None).unwrap();
    assert_eq!(
        agent.secrets.service_token.as_deref(),
        Some("change-me-app-token")
    );
    let a = agent.config.agent.as_ref().unwrap();
    assert_eq!(a.backends[0].health_check.interval.as_secs(), 5);
    assert_eq!(a.gossip.overwatch_nodes, ["overwatch-1.example.com:7946"]);
}

#[test]
fn v11_file_loads_unchanged_with_warnings() {
    let dir = TempDir::new("v11");
    let path = dir.write(
        "overwatch.yaml",
        &shipped("tests/fixtures/v11-overwatch.yaml"),
    );
    let loaded = config::load(&path, None).unwrap_or_else(|e| panic!("{e}"));
    let cfg = &loaded.config;
    assert_eq!(cfg.regions.len(), 2);
    assert_eq!(cfg.domains.len(), 3);
    assert_eq!(cfg.api.address, ":9090");
    assert_eq!(
        config::Listener::Api.parse(&cfg.api.address).unwrap(),
        "[::]:9090".parse().unwrap()
    );
    assert_eq!(cfg.logging.format, config::LogFormat::Json);
    for key in [
        "overwatch.gossip.probe_interval",
        "overwatch.gossip.probe_timeout",
        "overwatch.gossip.gossip_interval",
    ] {
        let want = format!("key {key} is accepted for v1.1 compatibility and has no effect");
        assert!(
            loaded.warnings.iter().any(|w| w.ends_with(&want)),
            "no warning for {key}: {:?}",
            loaded.warnings
        );
    }
    // Once per key, not once per region.
    assert_eq!(
        loaded
            .warnings
            .iter()
            .filter(|w| w.contains("overwatch.gossip.probe_interval"))
            .count(),
        1
    );
    // overwatch.dnssec is real now (SPEC §13); `enabled: false` is quiet.
    assert!(
        !loaded
            .warnings
            .iter()
            .any(|w| w.contains("overwatch.dnssec")),
        "{:?}",
        loaded.warnings
    );
    assert!(!cfg.overwatch.dnssec.enabled);
}

const MISTAKES: &str = "\
mode: overwatch
dns:
  listen_adress: \":53\"
  zones: [gslb.example.com]
  default_ttl: sixty
overwatch:
  gossip:
    encryption_key: c2hvcnQ=
regions:
  - name: eu
    servers:
      - address: 10.0.0.300
        port: 80
        service: nope.gslb.example.com
    health_check:
      interval: 10x
      failure_threshold: 0
domains:
  - name: app.gslb.example.com
    routing_algorithm: geolocation
    regions: [eu, mars]
  - name: app.other.example
    regions: [eu]
  - name: app.gslb.example.com
    routing_algoritm: weighted
    regions: [eu]
logging:
  level: loud
";

#[test]
fn every_mistake_is_reported_with_its_line() {
    let dir = TempDir::new("mistakes");
    let path = dir.write("overwatch.yaml", MISTAKES);
    let errs = config::load(&path, None).unwrap_err();
    let text = errs.to_string();
    let p = path.display().to_string();
    let expect = [
        (
            3,
            "dns.listen_adress: unknown key (did you mean \"listen_address\"?)",
        ),
        (5, "dns.default_ttl: expected an integer"),
        (
            8,
            "overwatch.gossip.encryption_key: encryption key must decode to 32 bytes",
        ),
        (
            12,
            "regions[0].servers[0].address: \"10.0.0.300\" is not an IP address",
        ),
        (
            14,
            "regions[0].servers[0].service: \"nope.gslb.example.com\" is not a configured domain",
        ),
        (16, "regions[0].health_check.interval: invalid duration"),
        (
            17,
            "regions[0].health_check.failure_threshold: must be at least 1",
        ),
        (
            20,
            "domains[0].routing_algorithm: geolocation needs overwatch.geolocation",
        ),
        (21, "domains[0].regions[1]: region \"mars\" is not defined"),
        (
            24,
            "domains[2].name: domain \"app.gslb.example.com\" is defined twice: first at PATH:19",
        ),
        (
            25,
            "domains[2].routing_algoritm: unknown key (did you mean \"routing_algorithm\"?)",
        ),
        (28, "logging.level: invalid level \"loud\""),
    ];
    for (line, msg) in expect {
        let want = format!("{p}:{line}: {}", msg.replace("PATH", &p));
        assert!(
            text.lines().any(|l| l.starts_with(&want)),
            "missing {want:?} in:\n{text}"
        );
    }
    assert_eq!(errs.len(), expect.len(), "{text}");
    // One error per line, in line order.
    let lines: Vec<usize> = errs.iter().map(|e| e.line.unwrap()).collect();
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    assert_eq!(lines, sorted);
}

#[test]
fn world_readable_files_are_refused_with_the_fix() {
    let dir = TempDir::new("perms");
    let path = dir.write_mode(
        "overwatch.yaml",
        &shipped("etc/opengslb/overwatch.yaml"),
        0o644,
    );
    let text = config::load(&path, None).unwrap_err().to_string();
    assert!(
        text.contains(&format!("chmod 600 {}", path.display())),
        "{text}"
    );

    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    assert!(config::load(&path, None).is_ok());

    let main = dir.write(
        "main.yaml",
        "includes: [extra.yaml]\ndns:\n  zones: [example.com]\n",
    );
    let extra = dir.write_mode("extra.yaml", "domains: []\n", 0o604);
    let text = config::load(&main, None).unwrap_err().to_string();
    assert!(
        text.contains(&format!("chmod 600 {}", extra.display())),
        "{text}"
    );
}

#[test]
fn includes_merge_and_report_in_their_own_file() {
    let dir = TempDir::new("includes");
    let main = dir.write(
        "overwatch.yaml",
        &format!(
            "includes:\n  - conf.d/**/*.yaml\ndns:\n  zones: [example.com]\noverwatch:\n  agent_tokens:\n    a.example.com: ta\n  gossip:\n    encryption_key: \"{KEY}\"\nregions:\n  - name: r1\ndomains:\n  - name: a.example.com\n    regions: [r1]\n"
        ),
    );
    let b = dir.write(
        "conf.d/b.yaml",
        "regions:\n  - name: r2\n    servers:\n      - address: 10.0.0.2\n        port: 80\ndomains:\n  - name: b.example.com\n    regions: [r1, r2]\noverwatch:\n  agent_tokens:\n    b.example.com: tb\n",
    );
    dir.write(
        "conf.d/deep/c.yaml",
        "domains:\n  - name: c.example.com\n    regions: [r2]\n",
    );
    let loaded = config::load(&main, None).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = loaded
        .config
        .domains
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(names, ["a.example.com", "b.example.com", "c.example.com"]);
    assert_eq!(loaded.config.regions.len(), 2);
    assert_eq!(loaded.config.overwatch.agent_tokens.len(), 2);
    assert_eq!(loaded.files.len(), 3);

    // Errors inside an included file point into that file; a token
    // defined twice names both files; other keys are not allowed there.
    dir.write(
        "conf.d/deep/c.yaml",
        "domains:\n  - name: c.example.com\n    regions: [r9]\noverwatch:\n  agent_tokens:\n    b.example.com: again\ndns:\n  default_ttl: 5\n",
    );
    let text = config::load(&main, None).unwrap_err().to_string();
    let c = dir.0.join("conf.d/deep/c.yaml").display().to_string();
    assert!(
        text.contains(&format!(
            "{c}:3: domains[2].regions[0]: region \"r9\" is not defined"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{c}:6: overwatch.agent_tokens.b.example.com: defined twice: already set in {}:11",
            b.display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("{c}:7: dns: cannot be set in an included file")),
        "{text}"
    );

    // An agent's backends may come from included files too; --mode
    // stands in for a missing mode key.
    let agent = shipped("etc/opengslb/agent.yaml")
        .replace("mode: agent\n", "includes: [backends.d/*.yaml]\n");
    let agent_path = dir.write("agent.yaml", &agent);
    dir.write(
        "backends.d/extra.yaml",
        "agent:\n  backends:\n    - service: app.gslb.example.com\n      address: 10.0.1.21\n      port: 81\n",
    );
    let loaded = config::load(&agent_path, Some(Mode::Agent)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.mode, Mode::Agent);
    assert_eq!(loaded.config.agent.as_ref().unwrap().backends.len(), 2);

    let missing = dir.write("m.yaml", "includes: [nothere.yaml]\n");
    let text = config::load(&missing, None).unwrap_err().to_string();
    assert!(
        text.contains("m.yaml:1: includes[0]: included file"),
        "{text}"
    );
}

#[test]
fn mode_rules() {
    let dir = TempDir::new("mode");
    let ow = dir.write("ow.yaml", &shipped("etc/opengslb/overwatch.yaml"));
    let text = config::load(&ow, Some(Mode::Agent))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("agent mode needs an agent: section"),
        "{text}"
    );

    let mixed = dir.write("mixed.yaml", "agent:\n  drain_file: /tmp/x\n");
    let text = config::load(&mixed, None).unwrap_err().to_string();
    assert!(
        text.contains("mixed.yaml:1: agent: an overwatch configuration must not contain agent:"),
        "{text}"
    );

    let agent = dir.write(
        "agent.yaml",
        "mode: agent\nagent:\n  identity:\n    region: \"\"\n  gossip:\n    overwatch_nodes: [\"ow1\"]\n",
    );
    let text = config::load(&agent, None).unwrap_err().to_string();
    for want in [
        "agent.yaml:3: agent.identity: missing service_token",
        "agent.yaml:2: agent.backends: no backends configured",
        "agent.yaml:5: agent.gossip: missing encryption_key",
        "agent.yaml:6: agent.gossip.overwatch_nodes[0]: invalid address \"ow1\"",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

#[test]
fn secrets_from_files() {
    let dir = TempDir::new("secrets");
    dir.write("gossip.key", &format!("{KEY}\n"));
    dir.write("token", "  tok-123 \n");
    let agent = shipped("etc/opengslb/agent.yaml")
        .replace(
            &format!("encryption_key: \"{KEY}\""),
            &format!(
                "encryption_key_file: gossip.key\n    encryption_keys: [\"{}\"]",
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
            ),
        )
        .replace(
            "service_token: \"change-me-app-token\"",
            "service_token_file: token",
        );
    let path = dir.write("agent.yaml", &agent);
    let loaded = config::load(&path, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.secrets.service_token.as_deref(), Some("tok-123"));
    assert_eq!(loaded.secrets.gossip_keys.len(), 2);
    assert_eq!(
        loaded.secrets.gossip_keys[0],
        config::decode_key(KEY).unwrap()
    );
    assert_eq!(
        loaded.config.resolved_secrets(Mode::Agent).unwrap(),
        loaded.secrets
    );

    fs::set_permissions(dir.0.join("token"), fs::Permissions::from_mode(0o644)).unwrap();
    let text = config::load(&path, None).unwrap_err().to_string();
    assert!(
        text.contains("agent.identity.service_token_file:"),
        "{text}"
    );
    assert!(
        text.contains(&format!("chmod 600 {}", dir.0.join("token").display())),
        "{text}"
    );
}

/// Key names listed in the man page: the `.B` line after each `.TP` that
/// looks like a dotted key (file paths and flags do not).
fn man_keys() -> Vec<String> {
    let man = shipped("man/opengslb.yaml.5");
    let lines: Vec<&str> = man.lines().collect();
    let mut keys = Vec::new();
    for pair in lines.windows(2) {
        let Some(key) = pair[1].strip_prefix(".B ").filter(|_| pair[0] == ".TP") else {
            continue;
        };
        let looks_like_key = key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.[]".contains(c));
        if looks_like_key {
            keys.push(key.to_string());
        }
    }
    keys
}

#[test]
fn man_page_documents_every_key() {
    let documented = man_keys();
    let known = all_keys();
    for key in &known {
        assert!(
            documented.iter().any(|d| d == key),
            "{key} is not in man/opengslb.yaml.5"
        );
    }
    for key in &documented {
        assert!(
            known.contains(&key.as_str()),
            "man/opengslb.yaml.5 documents unknown key {key}"
        );
    }
}

#[test]
fn odd_input_is_reported_not_panicked_on() {
    let dir = TempDir::new("odd");
    let cases = [
        // An empty file is refused: most often a truncated write (issue 6).
        ("", false),
        ("---\n", false),
        ("just a string\n", false),
        ("- a\n- b\n", false),
        ("dns: {listen_address: \":53\", zones: [x.example]}\n", true),
        ("dns:\n\tzones: []\n", false),
        ("regions:\n  - - nested\n", false),
        ("regions:\n  - !tag {name: a}\n", false),
        ("? [complex]\n: key\n", false),
        ("dns:\n  zones: [\"\u{e9}t\u{e9}.example\"]\n", false),
        ("hc: &hc {type: tcp}\n", false),
        ("mode: 5\n", false),
        ("dns:\n  default_ttl: -1\n  max_udp_size: 70000\n", false),
        (
            "regions:\n  - name: a\n    health_check: &hc\n      type: tcp\n  - name: b\n    health_check:\n      <<: *hc\n      interval: 5s\n      timeout: 1s\n",
            true,
        ),
        ("dns: [\n", false),
        ("dns:\n  default_ttl: 1\n  default_ttl: 2\n", false),
    ];
    for (i, (text, ok)) in cases.iter().enumerate() {
        let path = dir.write(&format!("c{i}.yaml"), text);
        let result = config::load(&path, None);
        assert_eq!(
            result.is_ok(),
            *ok,
            "{text:?}: {:?}",
            result.err().map(|e| e.to_string())
        );
        if let Err(errs) = result {
            assert!(!errs.is_empty());
            for e in errs.iter() {
                assert!(
                    e.to_string().starts_with(&path.display().to_string()),
                    "{e}"
                );
            }
        }
    }
    let syntax = dir.write("syntax.yaml", "dns:\n  zones: [a\nmode: agent\n");
    let text = config::load(&syntax, None).unwrap_err().to_string();
    assert!(
        text.contains("syntax.yaml:") && text.contains("invalid YAML"),
        "{text}"
    );
}

/// The installed files show every key (set or commented out with its
/// default), except the v1.1 keys that have no effect.
#[test]
fn shipped_files_show_every_key() {
    let overwatch = shipped("etc/opengslb/overwatch.yaml");
    let agent = shipped("etc/opengslb/agent.yaml");
    for key in all_keys() {
        let inert = config::keys::find(key).is_some_and(|k| k.inert);
        if inert {
            continue;
        }
        let leaf = key.rsplit('.').next().unwrap().trim_end_matches("[]");
        let file = if key.starts_with("agent") {
            &agent
        } else {
            &overwatch
        };
        let shown = file.lines().any(|l| {
            let l = l.trim_start().trim_start_matches('#').trim_start();
            let l = l.strip_prefix("- ").unwrap_or(l);
            l.starts_with(&format!("{leaf}:"))
        });
        assert!(shown, "{key} is not shown in the shipped file");
    }
}
