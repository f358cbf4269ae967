//! Wiring an agent: identity, gossip client, local checks, drain file,
//! local API and metrics listener, then the `agent` runtime thread
//! (`crate::agent::runtime`) under the supervision loop. Nothing here runs
//! per request or per check.

use super::listen;
use super::supervise::Supervisor;
use crate::agent::api::{self, AgentStatusView, DrainCommand};
use crate::agent::drain_file::DrainWatcher;
use crate::agent::latency::poller::{self, LatencyCounters};
use crate::agent::latency::subnets::Listener as LatencyListener;
use crate::agent::metrics::{AgentCounters, render};
use crate::agent::runtime::{Control, Counters, Inputs, Runtime};
use crate::config::{self, Listener, Loaded, Mode};
use crate::exit::ExitError;
use crate::gossip;
use crate::health::{self, HealthChecker};
use crate::metrics::Render;
use crate::snapshot::SnapshotCell;
use crate::timefmt;
use crossbeam_channel::Sender;
use log::{error, info, warn};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub fn run(loaded: Loaded, config_path: &Path) -> Result<(), ExitError> {
    for w in &loaded.warnings {
        warn!("{w}");
    }
    let cfg = loaded
        .config
        .agent
        .clone()
        .ok_or_else(|| ExitError::config("agent mode needs an `agent:` section"))?;
    let agent_id = cfg.identity.agent_id.clone().unwrap_or_else(|| {
        // `<region>-<host>`; just the host when the region is empty (v1.1).
        let id = gossip::identity::default_agent_id(&cfg.identity.region);
        id.trim_start_matches('-').to_string()
    });
    let identity = gossip::identity::ensure_certificate(
        &cfg.identity.cert_path,
        &cfg.identity.key_path,
        &agent_id,
    )
    .map(Arc::new)
    .map_err(|e| ExitError::failure(format!("agent identity: {e}")))?;
    info!(
        "agent {agent_id}: certificate {} valid until {}",
        identity.fingerprint,
        timefmt::rfc3339(identity.not_after)
    );

    let (event_tx, events) = crossbeam_channel::bounded(1024);
    let client = gossip::agent::client::start(
        gossip::agent::client::ClientConfig {
            nodes: cfg.gossip.overwatch_nodes.clone(),
            identity: Arc::clone(&identity),
            keyring: gossip::Keyring::from_raw(&loaded.secrets.gossip_keys),
            token: loaded.secrets.service_token.clone().unwrap_or_default(),
            region: cfg.identity.region.clone(),
            agent_id: agent_id.clone(),
            heartbeat_interval: *cfg.heartbeat.interval,
            missed_threshold: cfg.heartbeat.missed_threshold,
            time_window_ms: 60_000,
        },
        event_tx,
    )
    .map_err(|e| ExitError::failure(format!("cannot start gossip: {e}")))?;

    let (check_tx, checks) = crossbeam_channel::bounded(4096);
    let checker = HealthChecker::start(
        health::DEFAULT_WORKERS.min(cfg.backends.len().max(1)),
        check_tx,
    );
    let (drain_tx, drains) = crossbeam_channel::bounded(64);
    let watcher =
        match &cfg.drain_file {
            Some(path) => Some(DrainWatcher::start(PathBuf::from(path), drain_tx).map_err(
                |e| ExitError::failure(format!("cannot watch the drain file {path}: {e}")),
            )?),
            None => None,
        };
    let view = Arc::new(SnapshotCell::new(AgentStatusView::default()));
    let counters = Arc::new(Counters::default());
    let latency = Arc::new(LatencyCounters::default());
    let (latency_stop, latency_stopped) = crossbeam_channel::bounded::<()>(1);
    let latency_thread = poller::start(
        &cfg.latency_learning,
        latency_listeners(&cfg),
        client.latency_sink(),
        Arc::clone(&latency),
        latency_stopped,
    );
    let metrics: Render = {
        let (view, counters, latency) = (
            Arc::clone(&view),
            Arc::clone(&counters),
            Arc::clone(&latency),
        );
        counters
            .cert_not_after
            .store(identity.not_after, Ordering::Relaxed);
        Arc::new(move || {
            let c = AgentCounters {
                heartbeats_sent: counters.heartbeats_sent.load(Ordering::Relaxed),
                heartbeat_failures: counters.heartbeat_failures.load(Ordering::Relaxed),
                latency_subnets: latency.subnets.load(Ordering::Relaxed),
                latency_reports_sent: latency.reports_sent.load(Ordering::Relaxed),
            };
            // moves when the runtime renews the certificate
            let not_after = counters.cert_not_after.load(Ordering::Relaxed);
            render(&view.load(), &c, Some(not_after))
        })
    };
    let (api_tx, api_rx) = crossbeam_channel::bounded::<DrainCommand>(16);
    let mut agent_api = match listen::address(&loaded.config, Mode::Agent, Listener::AgentApi)? {
        Some(addr) => {
            let a =
                api::start(addr, Arc::clone(&view), api_tx, Arc::clone(&metrics)).map_err(|e| {
                    ExitError::failure(format!("cannot start the agent API on {addr}: {e}"))
                })?;
            info!("agent API listening on http://{}", a.local_addr());
            Some(a)
        }
        None => None,
    };
    let mut metrics_server = listen::start_metrics(&loaded.config, Mode::Agent, metrics)?;

    let runtime = Runtime::new(cfg, agent_id, identity, view, counters);
    let (ctl_tx, control) = crossbeam_channel::bounded(8);
    let inputs = Inputs {
        checks,
        drains,
        api: api_rx,
        events,
        control,
    };
    let mut sup = Supervisor::new();
    sup.watch("agent", runtime.liveness());
    sup.watch("gossip", client.liveness());
    sup.spawn("agent", move || {
        runtime.run(client, checker, inputs);
        Ok(())
    })?;
    super::notify::notify("READY=1");
    let outcome = sup.run(|| reload(config_path, &ctl_tx));

    super::notify::notify("STOPPING=1");
    info!("stopping: telling every Overwatch that this agent leaves");
    let _ = ctl_tx.send(Control::Stop);
    drop(latency_stop);
    if let Some(t) = latency_thread {
        let _ = t.join();
    }
    sup.join();
    if let Some(a) = agent_api.as_mut() {
        a.stop();
    }
    if let Some(m) = metrics_server.as_mut() {
        m.stop();
    }
    if let Some(w) = watcher {
        w.stop();
    }
    info!("stopped");
    outcome
}

/// SIGHUP: a valid file goes to the runtime; an invalid one is logged and
/// the old configuration keeps running.
fn reload(path: &Path, control: &Sender<Control>) {
    match config::load(path, Some(Mode::Agent)) {
        Ok(l) => match l.config.agent {
            Some(a) => {
                for w in &l.warnings {
                    warn!("{w}");
                }
                let keyring = gossip::Keyring::from_raw(&l.secrets.gossip_keys);
                let _ = control.send(Control::Reload(Box::new(a), keyring));
                info!("SIGHUP: configuration {} accepted", path.display());
            }
            None => error!("SIGHUP: no agent section; keeping the old configuration"),
        },
        Err(e) => error!(
            "SIGHUP: configuration {} rejected, keeping the old one:\n{e}",
            path.display()
        ),
    }
}

/// The backend ports (and addresses) whose clients' round trips are learned.
fn latency_listeners(cfg: &crate::config::AgentConfig) -> Vec<LatencyListener> {
    cfg.backends
        .iter()
        .map(|b| LatencyListener {
            service: crate::backend::normalize_name(&b.service),
            address: b.address.parse().ok(),
            port: b.port,
        })
        .collect()
}
