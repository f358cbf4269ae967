//! Starting and running an agent: identity, local checks, drain file,
//! predictive signals, the local API and the gossip client, joined by the
//! `agent` thread, which owns the state and pushes every change to all
//! Overwatch nodes at once.

use super::notify::{notify, watchdog_interval};
use super::signals::{self, Signal};
use crate::agent::api::{AgentApi, AgentStatusView, BackendStatus, DrainCommand, OverwatchStatus};
use crate::agent::drain_file::DrainWatcher;
use crate::agent::metrics::{AgentCounters, render};
use crate::agent::predictive::{self, CpuTimes, Predictor};
use crate::agent::state::AgentState;
use crate::config::{self, AgentConfig, Loaded, Mode};
use crate::exit;
use crate::gossip::{self, BackendReport, client::AgentEvent, identity::Identity};
use crate::health::{self, CheckResult, HealthChecker};
use crate::snapshot::SnapshotCell;
use crate::timefmt;
use crossbeam_channel::{Receiver, select};
use log::{error, info, warn};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Predictive sampling is clamped to this, so a huge configured interval
/// cannot overflow the deadline arithmetic.
const MAX_CHECK_INTERVAL: Duration = Duration::from_secs(86_400);

/// Longest the agent thread waits, so status and watchdog stay fresh.
const TICK: Duration = Duration::from_millis(500);

enum Control {
    Reload(Box<AgentConfig>, gossip::Keyring),
    Stop,
}

pub fn run(loaded: Loaded, config_path: &Path) -> i32 {
    for w in &loaded.warnings {
        warn!("{w}");
    }
    let Some(cfg) = loaded.config.agent.clone() else {
        error!("agent mode needs an `agent:` section");
        return exit::CONFIG;
    };
    let agent_id = cfg
        .identity
        .agent_id
        .clone()
        .unwrap_or_else(|| gossip::identity::default_agent_id(&cfg.identity.region));
    let identity = match gossip::identity::ensure_certificate(
        &cfg.identity.cert_path,
        &cfg.identity.key_path,
        &agent_id,
    ) {
        Ok(i) => Arc::new(i),
        Err(e) => {
            error!("agent identity: {e}");
            return exit::FAILURE;
        }
    };
    info!(
        "agent {agent_id}: certificate {} valid until {}",
        identity.fingerprint,
        timefmt::rfc3339(identity.not_after)
    );
    let token = loaded.secrets.service_token.clone().unwrap_or_default();
    let keyring = gossip::Keyring::from_raw(&loaded.secrets.gossip_keys);

    let (event_tx, event_rx) = crossbeam_channel::bounded(1024);
    let mut client = match gossip::client::start(
        gossip::client::ClientConfig {
            nodes: cfg.gossip.overwatch_nodes.clone(),
            identity: Arc::clone(&identity),
            keyring,
            token,
            region: cfg.identity.region.clone(),
            agent_id: agent_id.clone(),
            heartbeat_interval: *cfg.heartbeat.interval,
            missed_threshold: cfg.heartbeat.missed_threshold,
            time_window_ms: 60_000,
        },
        event_tx,
    ) {
        Ok(c) => c,
        Err(e) => {
            error!("cannot start gossip: {e}");
            return exit::FAILURE;
        }
    };

    let (check_tx, check_rx) = crossbeam_channel::bounded(4096);
    let checker = HealthChecker::start(
        health::DEFAULT_WORKERS.min(cfg.backends.len().max(1)),
        check_tx,
    );
    let (drain_tx, drain_rx) = crossbeam_channel::bounded(64);
    let watcher = match &cfg.drain_file {
        Some(path) => match DrainWatcher::start(PathBuf::from(path), drain_tx) {
            Ok(w) => Some(w),
            Err(e) => {
                error!("cannot watch the drain file {path}: {e}");
                return exit::FAILURE;
            }
        },
        None => None,
    };
    let view = Arc::new(SnapshotCell::new(AgentStatusView::default()));
    let counters = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let (api_tx, api_rx) = crossbeam_channel::bounded::<DrainCommand>(16);
    let api = if cfg.api.enabled {
        let addr = match config::parse_listen(&cfg.api.address, 9100) {
            Ok(a) => a,
            Err(e) => {
                error!("agent.api.address: {e}");
                return exit::CONFIG;
            }
        };
        let render_fn = {
            let (view, counters, not_after) =
                (Arc::clone(&view), Arc::clone(&counters), identity.not_after);
            Arc::new(move || {
                let c = AgentCounters {
                    heartbeats_sent: counters.0.load(Ordering::Relaxed),
                    heartbeat_failures: counters.1.load(Ordering::Relaxed),
                };
                render(&view.load(), &c, Some(not_after))
            }) as Arc<dyn Fn() -> String + Send + Sync>
        };
        match AgentApi::start(addr, Arc::clone(&view), api_tx, render_fn) {
            Ok(a) => {
                info!("agent API listening on http://{}", a.local_addr());
                Some(a)
            }
            Err(e) => {
                error!("cannot start the agent API on {addr}: {e}");
                return exit::FAILURE;
            }
        }
    } else {
        None
    };

    let mut agent = AgentLoop {
        cfg,
        agent_id,
        identity,
        state: AgentState::default(),
        predictor: Predictor::default(),
        last_cpu: None,
        next_predictive: Instant::now(),
        view,
        counters,
        last_reports: Vec::new(),
        beat: Arc::new(AtomicU64::new(0)),
    };
    agent.state = AgentState::new(&agent.cfg.backends);
    checker.set_targets(agent.targets());
    let (ctl_tx, ctl_rx) = crossbeam_channel::bounded(8);
    let beat = Arc::clone(&agent.beat);
    let thread = std::thread::Builder::new()
        .name("agent".into())
        .spawn(move || {
            agent.run(
                &mut client,
                &checker,
                check_rx,
                drain_rx,
                api_rx,
                event_rx,
                ctl_rx,
            );
            checker.stop();
            client
        });
    let thread = match thread {
        Ok(t) => t,
        Err(e) => {
            error!("cannot start the agent thread: {e}");
            return exit::FAILURE;
        }
    };
    notify("READY=1");
    let watchdog = watchdog_interval();
    let mut last_watchdog = Instant::now();
    let started = Instant::now();
    let code = loop {
        match signals::wait(Duration::from_millis(500)) {
            Some(Signal::Terminate) => break exit::OK,
            Some(Signal::Reload) => match config::load(config_path, Some(Mode::Agent)) {
                Ok(l) => match l.config.agent {
                    Some(a) => {
                        let keyring = gossip::Keyring::from_raw(&l.secrets.gossip_keys);
                        let _ = ctl_tx.send(Control::Reload(Box::new(a), keyring));
                        info!("SIGHUP: configuration {} accepted", config_path.display());
                    }
                    None => error!("SIGHUP: no agent section; keeping the old configuration"),
                },
                Err(e) => error!(
                    "SIGHUP: configuration {} rejected, keeping the old one:\n{e}",
                    config_path.display()
                ),
            },
            None => {}
        }
        if thread.is_finished() {
            error!("the agent thread stopped");
            break exit::FAILURE;
        }
        if let Some(every) = watchdog
            && last_watchdog.elapsed() >= every
        {
            let alive = (started.elapsed().as_millis() as u64)
                .saturating_sub(beat.load(Ordering::Relaxed))
                < 5_000;
            if alive {
                notify("WATCHDOG=1");
            }
            last_watchdog = Instant::now();
        }
    };
    notify("STOPPING=1");
    info!("stopping: telling every Overwatch that this agent leaves");
    let _ = ctl_tx.send(Control::Stop);
    if let Ok(mut client) = thread.join() {
        client.leave_and_stop();
    }
    if let Some(a) = api {
        a.stop();
    }
    if let Some(w) = watcher {
        w.stop();
    }
    info!("stopped");
    code
}

struct AgentLoop {
    cfg: AgentConfig,
    agent_id: String,
    identity: Arc<Identity>,
    state: AgentState,
    predictor: Predictor,
    last_cpu: Option<CpuTimes>,
    next_predictive: Instant,
    view: Arc<SnapshotCell<AgentStatusView>>,
    counters: Arc<(AtomicU64, AtomicU64)>,
    last_reports: Vec<BackendReport>,
    /// Milliseconds since start of the last loop turn, for the watchdog.
    beat: Arc<AtomicU64>,
}

impl AgentLoop {
    fn targets(&self) -> Vec<health::Target> {
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

    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        client: &mut gossip::client::GossipClient,
        checker: &HealthChecker,
        checks: Receiver<CheckResult>,
        drains: Receiver<Option<String>>,
        api: Receiver<DrainCommand>,
        events: Receiver<AgentEvent>,
        control: Receiver<Control>,
    ) {
        let start = Instant::now();
        self.push(client);
        loop {
            self.beat
                .store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
            let wait = self
                .next_predictive
                .saturating_duration_since(Instant::now())
                .min(TICK);
            let mut changed = false;
            select! {
                recv(checks) -> m => if let Ok(r) = m { changed |= self.on_check(r) },
                recv(drains) -> m => if let Ok(d) = m {
                    match (&d, &self.state.file_drain) {
                        (Some(reason), _) => info!("drain file present: draining ({reason})"),
                        (None, Some(_)) => info!("drain file removed"),
                        (None, None) => {}
                    }
                    self.state.file_drain = d;
                    changed = true;
                },
                recv(api) -> m => if let Ok((reason, reply)) = m {
                    match &reason {
                        Some(r) => info!("drain on by operator ({r})"),
                        None => info!("drain off by operator"),
                    }
                    self.state.api_drain = reason;
                    self.push(client);
                    self.publish(client);
                    let _ = reply.send(());
                },
                recv(events) -> m => if let Ok(e) = m { self.on_event(e) },
                recv(control) -> m => match m {
                    Ok(Control::Reload(cfg, keyring)) => {
                        client.set_keyring(keyring);
                        self.cfg.predictive = cfg.predictive.clone();
                        self.cfg.backends = cfg.backends.clone();
                        self.state.reconfigure(&self.cfg.backends);
                        checker.set_targets(self.targets());
                        changed = true;
                        info!("configuration reloaded (backends, checks, predictive thresholds, gossip keys)");
                    }
                    Ok(Control::Stop) | Err(_) => {
                        self.state.shutting_down = true;
                        self.push(client);
                        return;
                    }
                },
                default(wait) => {}
            }
            if Instant::now() >= self.next_predictive {
                changed |= self.sample_predictive();
            }
            if changed {
                self.push(client);
            }
            self.publish(client);
        }
    }

    fn on_check(&mut self, r: CheckResult) -> bool {
        let now_ms = start_ms(r.at);
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

    fn on_event(&mut self, e: AgentEvent) {
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

    /// Samples CPU and memory; true when the predictive drain changed.
    fn sample_predictive(&mut self) -> bool {
        self.next_predictive = Instant::now()
            + (*self.cfg.predictive.check_interval)
                .clamp(Duration::from_millis(100), MAX_CHECK_INTERVAL);
        if !self.cfg.predictive.enabled {
            return false;
        }
        let (cpu, mem) = predictive::sample_system();
        let cpu_fraction = match (self.last_cpu, cpu) {
            (Some(a), Some(b)) => predictive::cpu_fraction(a, b),
            _ => None,
        };
        self.last_cpu = cpu;
        let now_ms = crate::clock::Now::read().wall_ms; // same clock as the errors window (check stamps)
        if self
            .predictor
            .update(&self.cfg.predictive, cpu_fraction, mem, now_ms)
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
    fn push(&mut self, client: &gossip::client::GossipClient) {
        let reports = self.state.reports();
        if reports != self.last_reports {
            client.set_backends(reports.clone());
            self.last_reports = reports;
        }
    }

    fn publish(&mut self, client: &gossip::client::GossipClient) {
        self.counters
            .0
            .store(client.heartbeats_sent(), Ordering::Relaxed);
        self.counters
            .1
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

fn start_ms(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
