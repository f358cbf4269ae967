//! The agent runtime: the `agent` thread, the only owner of the agent's
//! state. It takes check results, drain-file changes, operator drain
//! commands, gossip events and control messages, and pushes every change
//! to all Overwatch nodes at once through the gossip client; after each
//! turn it publishes the status the local API shows and beats its
//! `Liveness` for the watchdog. At start and at a deadline computed from
//! the certificate's dates (`renewal.rs`) it renews the certificate at two
//! thirds of its lifetime: new key and certificate on disk with the old
//! key's proof, and the gossip client registers again with every
//! Overwatch. On `Stop` it marks itself shutting down, tells every
//! Overwatch that it leaves, and stops its checker.

use super::api::{AgentStatusView, BackendStatus, DrainCommand, OverwatchStatus};
use super::predictive::{self, CpuTimes, Predictor};
use super::renewal::{self, Renewal};
use super::state::AgentState;
use crate::backend::BackendReport;
use crate::clock::{Liveness, Mono, Now};
use crate::config::AgentConfig;
use crate::gossip::agent::client::{AgentEvent, GossipClient};
use crate::gossip::{
    self,
    identity::{self, Identity},
};
use crate::health::{self, CheckResult, HealthChecker};
use crate::snapshot::SnapshotCell;
use crate::timefmt;
use crossbeam_channel::{Receiver, select};
use log::{error, info, warn};
use std::path::Path;
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

/// What the runtime copies out for `/metrics`: the gossip client's
/// counters and the current certificate's expiry (it moves on renewal).
#[derive(Debug, Default)]
pub struct Counters {
    pub heartbeats_sent: AtomicU64,
    pub heartbeat_failures: AtomicU64,
    /// Unix seconds (`opengslb_agent_cert_not_after_seconds`).
    pub cert_not_after: AtomicU64,
}

pub struct Runtime {
    cfg: AgentConfig,
    agent_id: String,
    identity: Arc<Identity>,
    state: AgentState,
    predictor: Predictor,
    last_cpu: Option<CpuTimes>,
    next_predictive: Mono,
    /// When to look at the certificate's renewal point again.
    next_renewal: Mono,
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
        counters
            .cert_not_after
            .store(identity.not_after, Ordering::Relaxed);
        let now = Now::read();
        Runtime {
            state: AgentState::new(&cfg.backends),
            cfg,
            agent_id,
            identity,
            predictor: Predictor::default(),
            last_cpu: None,
            next_predictive: now.mono,
            next_renewal: now.mono,
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
        let wait = now
            .mono
            .until(self.next_predictive.min(self.next_renewal))
            .min(TICK);
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
        if now.mono >= self.next_renewal {
            self.renew_if_due(now, client);
        }
        if now.mono >= self.next_predictive {
            changed |= self.sample_predictive(now);
        }
        if changed {
            self.push(client);
        }
        self.publish(client);
        true
    }

    /// At two thirds of the certificate's lifetime: a new key and
    /// certificate on disk, proved by the old key, and every Overwatch
    /// session registers again with them. A failure (disk) is retried
    /// after `renewal::RETRY`; the old certificate stays in use meanwhile.
    fn renew_if_due(&mut self, now: Now, client: &GossipClient) {
        let old = Arc::clone(&self.identity);
        if let Renewal::CheckAt(t) = renewal::decide(now, old.not_before, old.not_after) {
            self.next_renewal = t;
            return;
        }
        let paths = &self.cfg.identity;
        let (cert_path, key_path) = (Path::new(&paths.cert_path), Path::new(&paths.key_path));
        match identity::renew(cert_path, key_path, &self.agent_id, &old, now.wall_secs()) {
            Ok(new) => {
                info!(
                    "certificate renewed at two thirds of its lifetime: {} (valid until {}) replaces {} (valid until {}); registering again with every Overwatch, with proof from the old key",
                    new.fingerprint,
                    timefmt::rfc3339(new.not_after),
                    old.fingerprint,
                    timefmt::rfc3339(old.not_after)
                );
                self.counters
                    .cert_not_after
                    .store(new.not_after, Ordering::Relaxed);
                self.identity = Arc::new(new);
                client.set_identity(Arc::clone(&self.identity));
                self.next_renewal =
                    match renewal::decide(now, self.identity.not_before, self.identity.not_after) {
                        Renewal::CheckAt(t) => t,
                        Renewal::Due => now.mono.after(renewal::RETRY),
                    };
            }
            Err(e) => {
                error!(
                    "cannot renew certificate {}: {e}; keeping the old one (expires {}), retrying in {} s",
                    cert_path.display(),
                    timefmt::rfc3339(old.not_after),
                    renewal::RETRY.as_secs()
                );
                self.next_renewal = now.mono.after(renewal::RETRY);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::agent::client::{self, ClientConfig};
    use std::fs;

    const T: u64 = 1_800_000_000;
    const DAY: u64 = 86_400;

    /// A runtime whose certificate files live in a fresh temp dir, and a
    /// gossip client with no nodes.
    fn runtime(name: &str, cert_path: String, key_path: String) -> (Runtime, GossipClient) {
        let mut cfg = AgentConfig::default();
        cfg.identity.cert_path = cert_path.clone();
        cfg.identity.key_path = key_path.clone();
        // issued 300 days before T, a year valid: due since day 244
        let id = identity::ensure_certificate_at(
            Path::new(&cert_path),
            Path::new(&key_path),
            name,
            T - 300 * DAY,
        )
        .expect("certificate");
        let id = Arc::new(id);
        let (tx, _rx) = crossbeam_channel::unbounded();
        let cl = client::start(
            ClientConfig {
                nodes: Vec::new(),
                identity: Arc::clone(&id),
                keyring: gossip::Keyring::from_raw(&[[1; 32]]),
                token: String::new(),
                region: "eu".into(),
                agent_id: name.into(),
                heartbeat_interval: Duration::from_secs(1),
                missed_threshold: 3,
                time_window_ms: 60_000,
            },
            tx,
        )
        .expect("client");
        let view = Arc::new(SnapshotCell::new(AgentStatusView::default()));
        let rt = Runtime::new(cfg, name.into(), id, view, Arc::default());
        (rt, cl)
    }

    fn tmpdir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("opengslb-rt-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("tmpdir");
        d
    }

    #[test]
    fn renews_once_due_and_then_waits() {
        let d = tmpdir("renew");
        let (c, k) = (d.join("a.crt"), d.join("a.key"));
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let (mut rt, mut cl) = runtime("eu-a", path(&c), path(&k));
        let old = Arc::clone(&rt.identity);
        assert_eq!(
            rt.counters.cert_not_after.load(Ordering::Relaxed),
            old.not_after
        );
        assert!(T >= old.renew_at() && T < old.not_after);

        rt.renew_if_due(Now::at(1_000, T * 1000), &cl);
        let new = Arc::clone(&rt.identity);
        assert_ne!(new.fingerprint, old.fingerprint);
        assert_eq!(new.not_after, T + identity::CERT_VALIDITY_SECS);
        assert_eq!(
            rt.counters.cert_not_after.load(Ordering::Relaxed),
            new.not_after
        );
        assert_eq!(rt.next_renewal, Mono(1_000).after(renewal::RECHECK));
        // what a restart reads: the new pair, with the old key's proof
        let disk = identity::ensure_certificate_at(&c, &k, "eu-a", T + 1).expect("reload");
        assert_eq!(disk.fingerprint, new.fingerprint);
        let proof = disk.rotation.expect("proof");
        let old_key = gossip::cert::parse(&proof.old_cert_der)
            .expect("old")
            .public_key;
        assert_eq!(proof.old_cert_der, old.cert_der);
        assert!(identity::verify(
            &old_key,
            &identity::rotation_message("eu-a", &new.fingerprint),
            &proof.signature
        ));

        // the next look, an hour on: nothing to do
        rt.renew_if_due(Now::at(3_601_000, (T + 3_600) * 1000), &cl);
        assert_eq!(rt.identity.fingerprint, new.fingerprint);
        assert_eq!(rt.next_renewal, Mono(3_601_000).after(renewal::RECHECK));
        cl.stop();
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_failed_renewal_keeps_the_old_certificate_and_retries() {
        let d = tmpdir("fail");
        let (c, k) = (d.join("a.crt"), d.join("a.key"));
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let (mut rt, mut cl) = runtime("eu-b", path(&c), path(&k));
        let old = Arc::clone(&rt.identity);
        // the certificate's directory is gone and a file stands in its way
        fs::remove_dir_all(&d).expect("rm");
        fs::write(&d, "not a directory").expect("block");
        rt.renew_if_due(Now::at(1_000, T * 1000), &cl);
        assert_eq!(rt.identity.fingerprint, old.fingerprint);
        assert_eq!(
            rt.counters.cert_not_after.load(Ordering::Relaxed),
            old.not_after
        );
        assert_eq!(rt.next_renewal, Mono(1_000).after(renewal::RETRY));
        cl.stop();
        let _ = fs::remove_file(&d);
    }
}
