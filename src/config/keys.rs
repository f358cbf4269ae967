//! The table of every configuration key: its dotted path, its YAML type,
//! whether it is required, and whether it is a v1.1 key kept only for
//! compatibility.
//!
//! This one table drives the unknown-key check (with "did you mean"), the
//! type check, the v1.1 warnings, `all_keys()` and, through a test, the man
//! page. A key added to `schema.rs` must be added here too; the loader's
//! tests deserialize the shipped files, which fails if the two disagree.

/// The YAML shape a key expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A mapping whose children are listed in the table.
    Section,
    /// A sequence of mappings; children are listed as `path[].child`.
    List,
    /// Like `List`, but an item may also be a plain string, shorthand for
    /// a mapping with only `name` (`- ns1.example.net`).
    NamedList,
    Str,
    Bool,
    U16,
    U32,
    Usize,
    F64,
    Dur,
    StrList,
    U16List,
    /// A mapping from free-form names to strings (tokens).
    StrMap,
    /// A non-negative integer or a string `N%` (`domains[].min_healthy`).
    CountOrPercent,
    /// A string out of a fixed set.
    Enum(&'static [&'static str]),
    /// Anything (v1.1 sections we accept and ignore).
    Any,
}

#[derive(Clone, Copy, Debug)]
pub struct Key {
    pub path: &'static str,
    pub kind: Kind,
    pub required: bool,
    /// Accepted for v1.1 compatibility, no effect.
    pub inert: bool,
}

const fn k(path: &'static str, kind: Kind) -> Key {
    Key {
        path,
        kind,
        required: false,
        inert: false,
    }
}

const fn req(path: &'static str, kind: Kind) -> Key {
    Key {
        path,
        kind,
        required: true,
        inert: false,
    }
}

const fn inert(path: &'static str, kind: Kind) -> Key {
    Key {
        path,
        kind,
        required: false,
        inert: true,
    }
}

pub const MODES: &[&str] = &["overwatch", "agent"];
pub const CHECK_TYPES: &[&str] = &["http", "https", "tcp"];
/// `overwatch.dnssec.algorithm` (SPEC §13).
pub const DNSSEC_ALGORITHMS: &[&str] = &["ECDSAP256SHA256", "ED25519"];

pub const ALGORITHMS: &[&str] = &[
    "round-robin",
    "weighted",
    "failover",
    "geolocation",
    "latency",
    "learned_latency",
];
pub const LOG_FORMATS: &[&str] = &["text", "json"];

use Kind::*;

/// Health-check keys, repeated under `regions[]` and `agent.backends[]`.
macro_rules! health_check {
    ($p:literal) => {
        [
            k(concat!($p, ".health_check"), Section),
            k(concat!($p, ".health_check.type"), Enum(CHECK_TYPES)),
            k(concat!($p, ".health_check.path"), Str),
            k(concat!($p, ".health_check.host"), Str),
            k(concat!($p, ".health_check.interval"), Dur),
            k(concat!($p, ".health_check.timeout"), Dur),
            k(concat!($p, ".health_check.failure_threshold"), U32),
            k(concat!($p, ".health_check.success_threshold"), U32),
            k(concat!($p, ".health_check.expected_status"), U16List),
            k(concat!($p, ".health_check.insecure_skip_verify"), Bool),
        ]
    };
}

const TOP: &[Key] = &[
    k("mode", Enum(MODES)),
    k("includes", StrList),
    k("dns", Section),
    k("dns.listen_address", Str),
    k("dns.zones", StrList),
    k("dns.default_ttl", U32),
    k("dns.return_last_healthy", Bool),
    k("dns.threads", Usize),
    k("dns.tcp_idle_timeout", Dur),
    k("dns.tcp_max_connections", Usize),
    k("dns.max_udp_size", U16),
    k("dns.soa", Section),
    k("dns.soa.mname", Str),
    k("dns.soa.rname", Str),
    k("dns.soa.refresh", U32),
    k("dns.soa.retry", U32),
    k("dns.soa.expire", U32),
    k("dns.soa.minimum", U32),
    k("dns.soa.ttl", U32),
    k("dns.nameservers", NamedList),
    req("dns.nameservers[].name", Str),
    k("dns.nameservers[].addresses", StrList),
    k("dns.rate_limit", Section),
    k("dns.rate_limit.responses_per_second", U32),
    k("dns.rate_limit.slip", U32),
    k("dns.rate_limit.ipv4_prefix", U32),
    k("dns.rate_limit.ipv6_prefix", U32),
    k("dns.rate_limit.whitelist", StrList),
    k("overwatch", Section),
    k("overwatch.identity", Section),
    k("overwatch.identity.node_id", Str),
    k("overwatch.identity.region", Str),
    k("overwatch.agent_tokens", StrMap),
    k("overwatch.gossip", Section),
    k("overwatch.gossip.bind_address", Str),
    k("overwatch.gossip.encryption_key", Str),
    k("overwatch.gossip.encryption_key_file", Str),
    k("overwatch.gossip.encryption_keys", StrList),
    inert("overwatch.gossip.probe_interval", Dur),
    inert("overwatch.gossip.probe_timeout", Dur),
    inert("overwatch.gossip.gossip_interval", Dur),
    k("overwatch.validation", Section),
    k("overwatch.validation.enabled", Bool),
    k("overwatch.validation.check_interval", Dur),
    k("overwatch.validation.check_timeout", Dur),
    k("overwatch.stale", Section),
    k("overwatch.stale.threshold", Dur),
    k("overwatch.stale.remove_after", Dur),
    k("overwatch.data_dir", Str),
    k("overwatch.peers", StrList),
    k("overwatch.peer_sync", Section),
    k("overwatch.peer_sync.interval", Dur),
    k("overwatch.peer_sync.tombstone_ttl", Dur),
    k("overwatch.audit", Section),
    k("overwatch.audit.max_size", Usize),
    k("overwatch.audit.max_files", Usize),
    k("overwatch.dnssec", Section),
    k("overwatch.dnssec.enabled", Bool),
    k("overwatch.dnssec.algorithm", Enum(DNSSEC_ALGORITHMS)),
    k("overwatch.dnssec.key_file", Str),
    k("overwatch.geolocation", Section),
    k("overwatch.geolocation.database_path", Str),
    k("overwatch.geolocation.default_region", Str),
    k("overwatch.geolocation.ecs_enabled", Bool),
    k("overwatch.geolocation.custom_mappings", List),
    req("overwatch.geolocation.custom_mappings[].cidr", Str),
    req("overwatch.geolocation.custom_mappings[].region", Str),
    k("overwatch.geolocation.custom_mappings[].comment", Str),
    k("regions", List),
    req("regions[].name", Str),
    k("regions[].servers", List),
    req("regions[].servers[].address", Str),
    k("regions[].servers[].port", U16),
    k("regions[].servers[].host", Str),
    k("regions[].servers[].weight", U32),
    k("regions[].servers[].service", Str),
    k("regions[].countries", StrList),
    k("regions[].continents", StrList),
    k("domains", List),
    req("domains[].name", Str),
    k("domains[].routing_algorithm", Enum(ALGORITHMS)),
    k("domains[].regions", StrList),
    k("domains[].ttl", U32),
    k("domains[].max_records", Usize),
    k("domains[].return_last_healthy", Bool),
    k("domains[].min_healthy", CountOrPercent),
    k("domains[].latency_config", Section),
    k("domains[].latency_config.smoothing_factor", F64),
    k("domains[].latency_config.max_latency_ms", U32),
    k("domains[].latency_config.min_samples", U32),
    k("api", Section),
    k("api.enabled", Bool),
    k("api.address", Str),
    k("api.allowed_networks", StrList),
    k("api.trust_proxy_headers", Bool),
    k("api.tokens", StrMap),
    k("metrics", Section),
    k("metrics.enabled", Bool),
    k("metrics.address", Str),
    k("logging", Section),
    k("logging.level", Str),
    k("logging.format", Enum(LOG_FORMATS)),
    k("agent", Section),
    k("agent.identity", Section),
    k("agent.identity.service_token", Str),
    k("agent.identity.service_token_file", Str),
    k("agent.identity.region", Str),
    k("agent.identity.agent_id", Str),
    k("agent.identity.cert_path", Str),
    k("agent.identity.key_path", Str),
    k("agent.backends", List),
    req("agent.backends[].service", Str),
    req("agent.backends[].address", Str),
    req("agent.backends[].port", U16),
    k("agent.backends[].weight", U32),
    k("agent.gossip", Section),
    k("agent.gossip.encryption_key", Str),
    k("agent.gossip.encryption_key_file", Str),
    k("agent.gossip.encryption_keys", StrList),
    k("agent.gossip.overwatch_nodes", StrList),
    k("agent.heartbeat", Section),
    k("agent.heartbeat.interval", Dur),
    k("agent.heartbeat.missed_threshold", U32),
    k("agent.predictive", Section),
    k("agent.predictive.enabled", Bool),
    k("agent.predictive.check_interval", Dur),
    k("agent.drain_file", Str),
    k("agent.api", Section),
    k("agent.api.enabled", Bool),
    k("agent.api.address", Str),
    k("agent.latency_learning", Section),
    k("agent.latency_learning.enabled", Bool),
    k("agent.latency_learning.poll_interval", Dur),
    k("agent.latency_learning.min_connection_age", Dur),
    k("agent.latency_learning.ipv4_prefix", U32),
    k("agent.latency_learning.ipv6_prefix", U32),
    k("agent.latency_learning.ewma_alpha", F64),
    k("agent.latency_learning.max_subnets", Usize),
    k("agent.latency_learning.subnet_ttl", Dur),
    k("agent.latency_learning.min_samples", U32),
    k("agent.latency_learning.report_interval", Dur),
];

const REGION_HC: [Key; 10] = health_check!("regions[]");
const BACKEND_HC: [Key; 10] = health_check!("agent.backends[]");

/// The predictive signal keys: `agent.predictive.{cpu,memory,error_rate}.*`.
const PREDICTIVE: [Key; 12] = {
    macro_rules! sig {
        ($s:literal) => {
            [
                k(concat!("agent.predictive.", $s), Section),
                k(concat!("agent.predictive.", $s, ".threshold"), F64),
                k(concat!("agent.predictive.", $s, ".bleed_duration"), Dur),
                k(concat!("agent.predictive.", $s, ".window"), Dur),
            ]
        };
    }
    let c = sig!("cpu");
    let m = sig!("memory");
    let e = sig!("error_rate");
    [
        c[0], c[1], c[2], c[3], m[0], m[1], m[2], m[3], e[0], e[1], e[2], e[3],
    ]
};

/// Every key of the schema, sections included, in a stable order.
pub fn table() -> Vec<Key> {
    let mut all: Vec<Key> = TOP.to_vec();
    all.extend_from_slice(&REGION_HC);
    all.extend_from_slice(&BACKEND_HC);
    all.extend_from_slice(&PREDICTIVE);
    all
}

/// Every dotted key path (e.g. `dns.listen_address`,
/// `regions[].servers[].port`), sections included.
pub fn all_keys() -> Vec<&'static str> {
    table().iter().map(|key| key.path).collect()
}

/// Looks up a generic path (`regions[].name`).
pub fn find(path: &str) -> Option<Key> {
    table().into_iter().find(|key| key.path == path)
}

/// The child names valid under a generic parent path ("" for the top).
pub fn children(parent: &str) -> Vec<&'static str> {
    table()
        .into_iter()
        .filter_map(|key| {
            let rest = if parent.is_empty() {
                key.path
            } else {
                key.path.strip_prefix(parent)?.strip_prefix('.')?
            };
            (!rest.contains('.')).then_some(rest.trim_end_matches("[]"))
        })
        .collect()
}

/// A close valid key for a mistyped one: edit distance at most 2, or one is
/// a prefix of the other.
pub fn did_you_mean(typed: &str, candidates: &[&'static str]) -> Option<&'static str> {
    let mut best: Option<(usize, &'static str)> = None;
    for &cand in candidates {
        let dist = edit_distance(typed, cand);
        let prefix = typed.len() >= 3 && (cand.starts_with(typed) || typed.starts_with(cand));
        let score = if dist <= 2 {
            dist
        } else if prefix {
            3
        } else {
            continue;
        };
        if best.is_none_or(|(s, _)| score < s) {
            best = Some((score, cand));
        }
    }
    best.map(|(_, cand)| cand)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_child_has_a_parent_section() {
        let all = all_keys();
        for path in &all {
            if let Some((parent, _)) = path.rsplit_once('.') {
                let parent = parent.trim_end_matches("[]");
                assert!(all.contains(&parent), "{path} has no parent {parent}");
            }
        }
        let mut sorted = all.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), all.len(), "duplicate key paths");
    }

    /// A document setting every key of the table deserializes into the
    /// schema (whose structs deny unknown fields), so the table names no
    /// key the schema lacks.
    #[test]
    fn table_matches_schema() {
        use serde_norway::{Mapping, Value};
        fn sample(kind: Kind) -> Value {
            match kind {
                Section | Any | StrMap => Value::Mapping(Mapping::new()),
                List | NamedList => Value::Sequence(vec![Value::Mapping(Mapping::new())]),
                Str => Value::String("x".into()),
                Bool => Value::Bool(true),
                U16 | U32 | Usize => Value::Number(1.into()),
                F64 => Value::Number(0.5.into()),
                Dur => Value::String("1s".into()),
                CountOrPercent => Value::String("50%".into()),
                StrList => Value::Sequence(vec![Value::String("a".into())]),
                U16List => Value::Sequence(vec![Value::Number(200.into())]),
                Enum(values) => Value::String(values[0].into()),
            }
        }
        fn insert(node: &mut Value, parts: &[&str], value: Value) {
            let (first, rest) = parts.split_first().unwrap();
            let (name, is_list) = match first.strip_suffix("[]") {
                Some(n) => (n, true),
                None => (*first, false),
            };
            let map = node.as_mapping_mut().unwrap();
            if rest.is_empty() {
                map.insert(Value::String(name.into()), value);
                return;
            }
            let mut child = map.get_mut(name).unwrap();
            if is_list {
                child = child.as_sequence_mut().unwrap().get_mut(0).unwrap();
            }
            insert(child, rest, value);
        }
        let mut doc = Value::Mapping(Mapping::new());
        for key in table() {
            let parts: Vec<&str> = key.path.split('.').collect();
            insert(&mut doc, &parts, sample(key.kind));
        }
        let cfg: super::super::Config = serde_norway::from_value(doc).unwrap();
        let agent = cfg.agent.unwrap();
        assert_eq!(
            agent.predictive.error_rate.window,
            crate::config::Dur::secs(1)
        );
        assert_eq!(cfg.regions[0].health_check.expected_status, [200]);
    }

    #[test]
    fn suggestions() {
        let dns = children("dns");
        assert_eq!(did_you_mean("listen_adress", &dns), Some("listen_address"));
        assert_eq!(did_you_mean("listen", &dns), Some("listen_address"));
        assert_eq!(did_you_mean("zonez", &dns), Some("zones"));
        assert_eq!(did_you_mean("frobnicate", &dns), None);
        assert!(children("").contains(&"regions"));
        assert!(children("regions[].servers[]").contains(&"port"));
    }
}
