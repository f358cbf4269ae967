//! The agent's section of the typed configuration (`agent:` in SPEC §3):
//! identity, backends, gossip, heartbeat, predictive signals, the agent
//! API and latency learning. Split from `schema.rs` only for size; the
//! same rules hold (defaults next to their key, every field named in
//! `keys.rs`).

use super::*;

#[derive(Clone, Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    pub identity: AgentIdentity,
    pub backends: Vec<AgentBackend>,
    pub gossip: AgentGossip,
    pub heartbeat: HeartbeatConfig,
    pub predictive: PredictiveConfig,
    pub drain_file: Option<String>,
    pub api: AgentApi,
    pub latency_learning: LatencyLearningConfig,
}

/// `agent.latency_learning`: the round trips of clients' established TCP
/// connections, read from the kernel and reported per client prefix
/// (SPEC §11, `docs/learned-latency.md`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatencyLearningConfig {
    pub enabled: bool,
    pub poll_interval: Dur,
    /// Connections younger than this are not sampled (a handshake's first
    /// round trips are noisy).
    pub min_connection_age: Dur,
    pub ipv4_prefix: u32,
    pub ipv6_prefix: u32,
    pub ewma_alpha: f64,
    pub max_subnets: usize,
    pub subnet_ttl: Dur,
    /// Samples a prefix needs before it is reported.
    pub min_samples: u32,
    pub report_interval: Dur,
}

impl Default for LatencyLearningConfig {
    fn default() -> Self {
        LatencyLearningConfig {
            enabled: false,
            poll_interval: Dur::secs(10),
            min_connection_age: Dur::secs(5),
            ipv4_prefix: 24,
            ipv6_prefix: 48,
            ewma_alpha: 0.3,
            max_subnets: 10_000,
            subnet_ttl: Dur::secs(3600),
            min_samples: 3,
            report_interval: Dur::secs(30),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentIdentity {
    pub service_token: Option<String>,
    pub service_token_file: Option<String>,
    pub region: String,
    pub agent_id: Option<String>,
    pub cert_path: String,
    pub key_path: String,
}

impl Default for AgentIdentity {
    fn default() -> Self {
        AgentIdentity {
            service_token: None,
            service_token_file: None,
            region: String::new(),
            agent_id: None,
            cert_path: "/var/lib/opengslb/agent.crt".into(),
            key_path: "/var/lib/opengslb/agent.key".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentBackend {
    pub service: String,
    pub address: String,
    pub port: u16,
    #[serde(default = "default_weight")]
    pub weight: u32,
    #[serde(default)]
    pub health_check: HealthCheck,
}

#[derive(Clone, Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AgentGossip {
    pub encryption_key: Option<String>,
    pub encryption_key_file: Option<String>,
    pub encryption_keys: Vec<String>,
    pub overwatch_nodes: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeartbeatConfig {
    pub interval: Dur,
    pub missed_threshold: u32,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig {
            interval: Dur::secs(1),
            missed_threshold: 3,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PredictiveConfig {
    pub enabled: bool,
    pub check_interval: Dur,
    pub cpu: PredictiveSignal,
    pub memory: PredictiveSignal,
    pub error_rate: PredictiveSignal,
}

impl Default for PredictiveConfig {
    fn default() -> Self {
        PredictiveConfig {
            enabled: false,
            check_interval: Dur::secs(5),
            cpu: PredictiveSignal::with_threshold(0.9),
            memory: PredictiveSignal::with_threshold(0.9),
            error_rate: PredictiveSignal::with_threshold(0.5),
        }
    }
}

/// One predictive signal. Thresholds are fractions (0.85 = 85 %); values
/// above 1 are read as percentages so `threshold: 85` also works.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PredictiveSignal {
    pub threshold: f64,
    /// How long the signal must stay below the threshold before the drain
    /// lifts (hysteresis against flapping).
    pub bleed_duration: Dur,
    /// Error rate only: the window of checks the rate is computed over.
    pub window: Dur,
}

impl PredictiveSignal {
    fn with_threshold(threshold: f64) -> Self {
        PredictiveSignal {
            threshold,
            ..Default::default()
        }
    }
}

impl Default for PredictiveSignal {
    fn default() -> Self {
        PredictiveSignal {
            threshold: 0.9,
            bleed_duration: Dur::secs(30),
            window: Dur::secs(60),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentApi {
    pub enabled: bool,
    pub address: String,
}

impl Default for AgentApi {
    fn default() -> Self {
        AgentApi {
            enabled: true,
            address: "127.0.0.1:9100".into(),
        }
    }
}
