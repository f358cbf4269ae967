//! The agent runtime: the `agent` thread, the only owner of the agent's
//! state. It takes check results, drain-file changes, operator drain
//! commands, gossip events and control messages, and pushes every change
//! to all Overwatch nodes at once through the gossip client; after each
//! turn it publishes the status the local API shows and beats its
//! `Liveness` for the watchdog. On `Stop` it marks itself shutting down,
//! tells every Overwatch that it leaves, and stops its checker.

use super::api::{AgentStatusView, BackendStatus, DrainCommand, OverwatchStatus};
use super::predictive::{self, CpuTimes, Predictor};
use super::state::AgentState;
use crate::backend::BackendReport;
use crate::clock::{Liveness, Mono, Now};
use crate::config::AgentConfig;
use crate::gossip::agent::client::{AgentEvent, GossipClient};
use crate::gossip::{self, identity::Identity};
use crate::health::{self, CheckResult, HealthChecker};
use crate::snapshot::SnapshotCell;
use crate::timefmt;
use crossbeam_channel::{Receiver, select};
use log::{error, info, warn};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Predictive sampling is clamped to this, so a huge configured interval
/// cannot overflow the deadline arithmetic.
const MAX_CHECK_INTERVAL: Duration = Duration::from_secs(86_400);

/// Longest the agent thread waits, so status and watchdog stay fresh.
const TICK: Duration = Duration::from_millis(500);

pub enum Control {
    /// A SIGHUP's new backends, checks, predictive thresholds and keys.
    Reload(Box<AgentConfig>, gossip::Keyring),
    Stop,
}

/// What the runtime listens to.
pub struct Inputs {
    pub checks: Receiver<CheckResult>,
    pub drains: Receiver<Option<String>>,
    pub api: Receiver<DrainCommand>,
    pub events: Receiver<AgentEvent>,
    pub control: Receiver<Control>,
}

/// Counters the runtime copies from the gossip client for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    pub heartbeats_sent: AtomicU64,
    pub heartbeat_failures: AtomicU64,
}

pub struct Runtime {
    cfg: AgentConfig,
    agent_id: String,
    identity: Arc<Identity>,
    state: AgentState,
    predictor: Predictor,
    last_cpu: Option<CpuTimes>,
    next_predictive: Mono,
    view: Arc<SnapshotCell<AgentStatusView>>,
    counters: Arc<Counters>,
    last_reports: Vec<BackendReport>,
    liveness: Arc<Liveness>,
}

impl Runtime {
    pub fn new(
        cfg: AgentConfig,
        agent_id: String,
        identity: Arc<Identity>,
        view: Arc<SnapshotCell<AgentStatusView>>,
        counters: Arc<Counters>,
    ) -> Runtime {
        Runtime {
            state: AgentState::new(&cfg.backends),
            cfg,
            agent_id,
            identity,
            predictor: Predictor::default(),
            last_cpu: None,
            next_predictive: Now::read().mono,
            view,
            counters,
            last_reports: Vec::new(),
            liveness: Arc::new(Liveness::new()),
        }
    }

    /// Beaten once per turn with the turn's `Now.mono`.
    pub fn liveness(&self) -> Arc<Liveness> {
        Arc::clone(&self.liveness)
    }

    /// The health-check targets of the configured backends.
    pub fn targets(&self) -> Vec<health::Target> {
        self.cfg
            .backends
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                match health::Target::from_config(i as u64, &b.health_check, &b.address, b.port) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        warn!("backend {}:{}: {e}", b.address, b.port);
                        None
                    }
                }
            })
            .collect()
    }

    /// Runs until `Control::Stop` (or the control channel closes), then
    /// leaves every Overwatch and stops the checker.
    pub fn run(mut self, mut client: GossipClient, checker: HealthChecker, inputs: Inputs) {
        checker.set_targets(self.targets());
        self.push(&client);
        while self.turn(&client, &checker, &inputs) {}
        self.state.shutting_down = true;
        self.push(&client);
        checker.stop();
        client.leave_and_stop();
    }

    /// One turn of the loop; false once asked to stop.
    fn turn(&mut self, client: &GossipClient, checker: &HealthChecker, inputs: &Inputs) -> bool {
        let now = Now::read();
        self.liveness.beat(now.mono);
        let wait = now.mono.until(self.next_predictive).min(TICK);
        let mut changed = false;
        select! {
            recv(inputs.checks) -> m => if let Ok(r) = m { changed |= self.on_check(r) },
            recv(inputs.drains) -> m => if let Ok(d) = m { changed |= self.on_drain_file(d) },
            recv(inputs.api) -> m => if let Ok((reason, reply)) = m {
                match &reason {
                    Some(r) => info!("drain on by operator ({r})"),
                    None => info!("drain off by operator"),
                }
                self.state.api_drain = reason;
                self.push(client);
                self.publish(client);
                let _ = reply.send(());
            },
            recv(inputs.events) -> m => if let Ok(e) = m { on_event(e) },
            recv(inputs.control) -> m => match m {
                Ok(Control::Reload(cfg, keyring)) => {
                    client.set_keyring(keyring);
                    self.cfg.predictive = cfg.predictive.clone();
                    self.cfg.backends = cfg.backends.clone();
                    self.state.reconfigure(&self.cfg.backends);
                    checker.set_targets(self.targets());
                    changed = true;
                    info!("configuration reloaded (backends, checks, predictive thresholds, gossip keys)");
                }
                Ok(Control::Stop) | Err(_) => return false,
            },
            default(wait) => {}
        }
        let now = Now::read();
        if now.mono >= self.next_predictive {
            changed |= self.sample_predictive(now);
        }
        if changed {
            self.push(client);
        }
        self.publish(client);
        true
    }

    fn on_drain_file(&mut self, d: Option<String>) -> bool {
        match (&d, &self.state.file_drain) {
            (Some(reason), _) => info!("drain file present: draining ({reason})"),
            (None, Some(_)) => info!("drain file removed"),
            (None, None) => {}
        }
        self.state.file_drain = d;
        true
    }

    fn on_check(&mut self, r: CheckResult) -> bool {
        let now_ms = unix_ms(r.at);
        self.predictor.errors_window.record(
            r.probe_ok,
            now_ms,
            *self.cfg.predictive.error_rate.window,
        );
        let before = self.state.backends.get(r.id as usize).map(|b| b.healthy);
        let changed =
            self.state
                .check_result(r.id as usize, r.healthy, r.error.clone(), now_ms / 1000);
        if changed
            && before != Some(r.healthy)
            && let Some(b) = self.state.backends.get(r.id as usize)
        {
            let what = if r.healthy { "healthy" } else { "unhealthy" };
            info!(
                "backend {} {}:{} is {what}{}",
                b.service,
                b.address,
                b.port,
                r.error
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            );
        }
        changed
    }

    /// Samples CPU and memory; true when the predictive drain changed.
    fn sample_predictive(&mut self, now: Now) -> bool {
        self.next_predictive = now.mono.after(
            (*self.cfg.predictive.check_interval)
                .clamp(Duration::from_millis(100), MAX_CHECK_INTERVAL),
        );
        if !self.cfg.predictive.enabled {
            return false;
        }
        let (cpu, mem) = predictive::sample_system();
        let cpu_fraction = match (self.last_cpu, cpu) {
            (Some(a), Some(b)) => predictive::cpu_fraction(a, b),
            _ => None,
        };
        self.last_cpu = cpu;
        // The error-rate window is stamped with the checks' wall times.
        if self
            .predictor
            .update(&self.cfg.predictive, cpu_fraction, mem, now.wall_ms)
        {
            let reason = self.predictor.reason(&self.cfg.predictive);
            match &reason {
                Some(r) => warn!("{r}: draining"),
                None => info!("predictive signals back below thresholds"),
            }
            self.state.predictive_drain = reason;
            return true;
        }
        false
    }

    /// Sends the current reports to every Overwatch when they changed.
    fn push(&mut self, client: &GossipClient) {
        let reports = self.state.reports();
        if reports != self.last_reports {
            client.set_backends(reports.clone());
            self.last_reports = reports;
        }
    }

    fn publish(&mut self, client: &GossipClient) {
        self.counters
            .heartbeats_sent
            .store(client.heartbeats_sent(), Ordering::Relaxed);
        self.counters
            .heartbeat_failures
            .store(client.heartbeat_failures(), Ordering::Relaxed);
        let drain = self.state.drain();
        let view = AgentStatusView {
            agent_id: self.agent_id.clone(),
            region: self.cfg.identity.region.clone(),
            draining: drain.is_some(),
            drain_source: drain.as_ref().map(|(s, _)| s.to_string()),
            drain_reason: drain.map(|(_, r)| r),
            cert_fingerprint: Some(self.identity.fingerprint.clone()),
            cert_not_after: Some(timefmt::rfc3339(self.identity.not_after)),
            backends: self
                .state
                .backends
                .iter()
                .map(|b| BackendStatus {
                    service: b.service.clone(),
                    address: b.address.to_string(),
                    port: b.port,
                    weight: b.weight,
                    healthy: b.healthy,
                    last_error: b.last_error.clone(),
                    last_check: b.last_check.map(timefmt::rfc3339),
                })
                .collect(),
            overwatches: client
                .node_status()
                .into_iter()
                .map(|(node, s)| OverwatchStatus {
                    address: node,
                    connected: s.connected,
                    last_ack: s.last_ack.map(|ms| timefmt::rfc3339(ms / 1000)),
                    rtt_ms: s.rtt.map(|d| d.as_secs_f64() * 1000.0),
                    last_error: s.last_error,
                })
                .collect(),
            generated_at: timefmt::rfc3339(timefmt::unix_now()),
        };
        self.view.publish(view);
    }
}

fn on_event(e: AgentEvent) {
    match e {
        AgentEvent::Registered { node, addr } => {
            info!("registered with overwatch {node} ({addr})")
        }
        AgentEvent::Rejected {
            node,
            reason,
            detail,
        } => {
            error!("overwatch {node} rejected this agent: {reason} ({detail})")
        }
        AgentEvent::Disconnected { node } => warn!("lost contact with overwatch {node}"),
    }
}

fn unix_ms(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
