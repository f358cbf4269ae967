//! The typed configuration: every key of SPEC §3 for both modes.
//!
//! These structs are the single definition of the YAML schema. The loader
//! (`load.rs`) walks the raw YAML first to report every unknown key, wrong
//! type and bad value at once with file and line, then deserializes into
//! these types. Defaults live here, next to the key they belong to, so the
//! man page and `etc/` examples can be checked against one place.
//!
//! Keys of the v1.1 format that this implementation does not act on (for
//! example `overwatch.dnssec`, `regions[].countries`) are accepted so old
//! files load unchanged; the loader lists those present in
//! `Loaded::warnings` so the daemon can warn about them once at start.
//! The key table in `keys.rs` must name every field here (a unit test
//! deserializes a document built from the table).

use super::duration::Dur;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

mod agent;
pub use agent::*;

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Overwatch,
    Agent,
}

#[derive(Clone, Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub mode: Option<Mode>,
    pub includes: Vec<String>,
    pub dns: DnsConfig,
    pub overwatch: OverwatchConfig,
    pub regions: Vec<Region>,
    pub domains: Vec<Domain>,
    pub api: ApiConfig,
    pub metrics: MetricsConfig,
    pub logging: LoggingConfig,
    pub agent: Option<AgentConfig>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// `host:port`, or `:port` for every interface.
    pub listen_address: String,
    pub zones: Vec<String>,
    pub default_ttl: u32,
    pub return_last_healthy: bool,
    /// Responder threads sharing the port with SO_REUSEPORT.
    pub threads: usize,
    /// TCP: idle timeout per connection and the connection cap.
    pub tcp_idle_timeout: Dur,
    pub tcp_max_connections: usize,
    /// Largest UDP answer we send to clients without EDNS is 512; with EDNS
    /// the client's size is capped at this value.
    pub max_udp_size: u16,
    /// SOA and NS for every zone apex.
    pub soa: SoaConfig,
    /// NS names of every zone, with the addresses in-zone names resolve
    /// to; empty means `ns1.<zone>` with this node's own addresses.
    pub nameservers: Vec<NameServer>,
    /// Response rate limiting (SPEC §14); off unless
    /// `responses_per_second` is set.
    pub rate_limit: RateLimitConfig,
}

/// One `dns.nameservers` item: a name, or a name with addresses.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(from = "NameServerItem")]
pub struct NameServer {
    pub name: String,
    /// A/AAAA served for the name when it lies inside a zone we serve;
    /// empty means this Overwatch node's own addresses.
    pub addresses: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NameServerItem {
    Name(String),
    Full(NameServerFull),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameServerFull {
    name: String,
    #[serde(default)]
    addresses: Vec<String>,
}

impl From<NameServerItem> for NameServer {
    fn from(item: NameServerItem) -> Self {
        match item {
            NameServerItem::Name(name) => NameServer {
                name,
                addresses: Vec::new(),
            },
            NameServerItem::Full(f) => NameServer {
                name: f.name,
                addresses: f.addresses,
            },
        }
    }
}

/// `dns.rate_limit`, modelled on NSD/Knot response rate limiting.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Responses per second per client prefix and response class; 0 = off.
    pub responses_per_second: u32,
    /// Every `slip`-th limited response is sent truncated (TC=1) instead
    /// of dropped; 0 drops them all, 1 truncates them all.
    pub slip: u32,
    pub ipv4_prefix: u32,
    pub ipv6_prefix: u32,
    /// Clients (CIDR or address) never limited.
    pub whitelist: Vec<String>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            responses_per_second: 0,
            slip: 2,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            whitelist: Vec::new(),
        }
    }
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            listen_address: ":53".into(),
            zones: Vec::new(),
            default_ttl: 60,
            return_last_healthy: false,
            threads: 1,
            tcp_idle_timeout: Dur::secs(10),
            tcp_max_connections: 256,
            max_udp_size: 1232,
            soa: SoaConfig::default(),
            nameservers: Vec::new(),
            rate_limit: RateLimitConfig::default(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SoaConfig {
    /// Primary name server (MNAME); default `ns1.<zone>`.
    pub mname: Option<String>,
    /// Responsible mailbox (RNAME) in domain form; default `hostmaster.<zone>`.
    pub rname: Option<String>,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    /// Negative-caching TTL (RFC 2308): the SOA's MINIMUM field.
    pub minimum: u32,
    pub ttl: u32,
}

impl Default for SoaConfig {
    fn default() -> Self {
        SoaConfig {
            mname: None,
            rname: None,
            refresh: 3600,
            retry: 600,
            expire: 86400,
            minimum: 30,
            ttl: 3600,
        }
    }
}

/// `overwatch.dnssec` (SPEC §13): online signing of every zone in
/// `dns.zones` with one combined signing key per zone.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DnssecConfig {
    pub enabled: bool,
    /// `ECDSAP256SHA256` (default) or `ED25519`: the algorithm the key
    /// files must hold.
    pub algorithm: String,
    /// Key file of the (single) zone; default `data_dir/dnssec/<zone>.key`.
    pub key_file: Option<String>,
}

impl Default for DnssecConfig {
    fn default() -> Self {
        DnssecConfig {
            enabled: false,
            algorithm: "ECDSAP256SHA256".into(),
            key_file: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OverwatchConfig {
    pub identity: OverwatchIdentity,
    pub agent_tokens: BTreeMap<String, String>,
    pub gossip: OverwatchGossip,
    pub validation: ValidationConfig,
    pub stale: StaleConfig,
    pub data_dir: String,
    /// Gossip addresses (`host:port`) of the other Overwatch nodes (SPEC §12).
    pub peers: Vec<String>,
    pub peer_sync: PeerSyncConfig,
    pub audit: super::audit::AuditConfig,
    pub dnssec: DnssecConfig,
    /// Client-location routing (SPEC §11); None = not configured.
    pub geolocation: Option<GeolocationConfig>,
}

/// `overwatch.geolocation`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeolocationConfig {
    /// A MaxMind DB (GeoIP2/GeoLite2 Country or City), memory-mapped.
    pub database_path: Option<String>,
    /// Region answering clients nothing else places.
    pub default_region: String,
    /// Route on the EDNS Client Subnet address when a query carries one.
    pub ecs_enabled: bool,
    pub custom_mappings: Vec<GeoMapping>,
}

impl Default for GeolocationConfig {
    fn default() -> Self {
        GeolocationConfig {
            database_path: None,
            default_region: String::new(),
            ecs_enabled: true,
            custom_mappings: Vec::new(),
        }
    }
}

/// One `custom_mappings` entry: clients in `cidr` go to `region`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GeoMapping {
    pub cidr: String,
    pub region: String,
    #[serde(default)]
    pub comment: String,
}

impl Default for OverwatchConfig {
    fn default() -> Self {
        OverwatchConfig {
            identity: OverwatchIdentity::default(),
            agent_tokens: BTreeMap::new(),
            gossip: OverwatchGossip::default(),
            validation: ValidationConfig::default(),
            stale: StaleConfig::default(),
            data_dir: "/var/lib/opengslb".into(),
            peers: Vec::new(),
            peer_sync: PeerSyncConfig::default(),
            audit: Default::default(),
            dnssec: DnssecConfig::default(),
            geolocation: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OverwatchIdentity {
    pub node_id: Option<String>,
    pub region: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OverwatchGossip {
    pub bind_address: String,
    pub encryption_key: Option<String>,
    pub encryption_key_file: Option<String>,
    /// Older keys still accepted for decryption during a rotation.
    pub encryption_keys: Vec<String>,
    /// v1.1 keys accepted and not acted on (memberlist tuning).
    pub probe_interval: Option<Dur>,
    pub probe_timeout: Option<Dur>,
    pub gossip_interval: Option<Dur>,
}

impl Default for OverwatchGossip {
    fn default() -> Self {
        OverwatchGossip {
            bind_address: "0.0.0.0:7946".into(),
            encryption_key: None,
            encryption_key_file: None,
            encryption_keys: Vec::new(),
            probe_interval: None,
            probe_timeout: None,
            gossip_interval: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidationConfig {
    pub enabled: bool,
    pub check_interval: Dur,
    pub check_timeout: Dur,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            enabled: true,
            check_interval: Dur::secs(30),
            check_timeout: Dur::secs(5),
        }
    }
}

/// Replication between Overwatch peers: how often the digests are
/// compared, and how long deletes are remembered.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PeerSyncConfig {
    pub interval: Dur,
    pub tombstone_ttl: Dur,
}

impl Default for PeerSyncConfig {
    fn default() -> Self {
        PeerSyncConfig {
            interval: Dur::secs(10),
            tombstone_ttl: Dur::secs(7 * 86_400),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaleConfig {
    /// When unset, an agent is stale after its heartbeat interval × missed
    /// threshold (it tells us both at registration).
    pub threshold: Option<Dur>,
    pub remove_after: Dur,
}

impl Default for StaleConfig {
    fn default() -> Self {
        StaleConfig {
            threshold: None,
            remove_after: Dur::secs(300),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Region {
    pub name: String,
    pub servers: Vec<Server>,
    pub health_check: HealthCheck,
    /// ISO 3166 country codes and continent codes (AF, AN, AS, EU, NA,
    /// OC, SA) whose clients geolocation sends to this region.
    pub countries: Vec<String>,
    pub continents: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// An IP address, or a host name resolved at load (and on SIGHUP).
    pub address: String,
    /// v1.1: a server without a port is port 80.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Host header (HTTP) and TLS server name (HTTPS) for this server's
    /// checks; overrides the region's `health_check.host`.
    #[serde(default)]
    pub host: String,
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// The domain this server answers for; empty means every domain that
    /// lists the server's region.
    #[serde(default)]
    pub service: String,
}

fn default_weight() -> u32 {
    100
}

fn default_port() -> u16 {
    80
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum CheckType {
    #[default]
    Http,
    Https,
    Tcp,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheck {
    #[serde(rename = "type")]
    pub kind: CheckType,
    pub path: String,
    pub host: String,
    pub interval: Dur,
    pub timeout: Dur,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    /// Status codes that count as healthy; empty means any 2xx.
    pub expected_status: Vec<u16>,
    /// HTTPS only: skip certificate verification (self-signed backends).
    pub insecure_skip_verify: bool,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            kind: CheckType::Http,
            path: "/health".into(),
            host: String::new(),
            interval: Dur::secs(30),
            timeout: Dur::secs(5),
            failure_threshold: 3,
            success_threshold: 2,
            expected_status: Vec::new(),
            insecure_skip_verify: false,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RoutingAlgorithm {
    #[default]
    RoundRobin,
    Weighted,
    Failover,
    Geolocation,
    Latency,
    #[serde(rename = "learned_latency")]
    LearnedLatency,
}

impl RoutingAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            RoutingAlgorithm::RoundRobin => "round-robin",
            RoutingAlgorithm::Weighted => "weighted",
            RoutingAlgorithm::Failover => "failover",
            RoutingAlgorithm::Geolocation => "geolocation",
            RoutingAlgorithm::Latency => "latency",
            RoutingAlgorithm::LearnedLatency => "learned_latency",
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Domain {
    pub name: String,
    pub routing_algorithm: RoutingAlgorithm,
    pub regions: Vec<String>,
    pub ttl: Option<u32>,
    /// Records per answer; default all for round-robin, one otherwise.
    pub max_records: Option<usize>,
    /// Per-domain override of `dns.return_last_healthy`.
    pub return_last_healthy: Option<bool>,
    /// The drain guard's floor (`overwatch::drain_guard`); none: no guard.
    pub min_healthy: Option<super::MinHealthy>,
    /// `latency` routing's smoothing of the checks' round trips.
    pub latency_config: LatencyConfig,
}

/// `domains[].latency_config`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LatencyConfig {
    /// EWMA weight of a new round trip, in (0, 1].
    pub smoothing_factor: f64,
    /// A backend whose smoothed round trip (ms) is above this is not ranked.
    pub max_latency_ms: u32,
    /// Samples a backend needs before its average counts.
    pub min_samples: u32,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        LatencyConfig {
            smoothing_factor: 0.3,
            max_latency_ms: 5000,
            min_samples: 3,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub enabled: bool,
    pub address: String,
    pub allowed_networks: Vec<String>,
    pub trust_proxy_headers: bool,
    /// Bearer tokens for writes: name → token. Empty means writes need none.
    pub tokens: BTreeMap<String, String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: true,
            address: "127.0.0.1:9090".into(),
            allowed_networks: vec!["127.0.0.0/8".into(), "::1/128".into()],
            trust_proxy_headers: false,
            tokens: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// Optional extra listener; `/metrics` is always on the API address.
    pub address: Option<String>,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    pub level: String,
    pub format: LogFormat,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}
