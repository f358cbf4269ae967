//! Starting and running an Overwatch: binds DNS, gossip and the API before
//! telling systemd READY=1, then serves until SIGTERM, re-reading the
//! configuration on SIGHUP.

use super::notify::{notify, watchdog_interval};
use super::signals::{self, Signal};
use crate::api;
use crate::config::{self, Config, Loaded, Mode};
use crate::dns::{self, DnsStats, DnsTable};
use crate::exit;
use crate::gossip;
use crate::health::{DEFAULT_WORKERS, HealthChecker};
use crate::metrics::TextWriter;
use crate::metrics::server::MetricsServer;
use crate::overwatch::metrics::OverwatchCounters;
use crate::overwatch::runtime::{Channels, Control, Inputs, Published, Runtime};
use crate::persist::AuditLog;
use crate::persist::Store;
use crate::snapshot::SnapshotCell;
use log::{error, info, warn};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub fn run(loaded: Loaded, config_path: &Path) -> i32 {
    let config = loaded.config.clone();
    for w in &loaded.warnings {
        warn!("{w}");
    }
    let store = match Store::open(&config.overwatch.data_dir) {
        Ok(s) => s,
        Err(e) => {
            error!("{e}");
            return exit::STATE;
        }
    };
    let audit = match AuditLog::open(&config.overwatch.data_dir) {
        Ok(a) => a,
        Err(e) => {
            error!("{e}");
            return exit::STATE;
        }
    };
    let ch = Channels::default();
    let dns_stats = Arc::new(DnsStats::new());
    let published = Published {
        dns: Arc::new(SnapshotCell::new(DnsTable::empty())),
        view: Arc::new(SnapshotCell::new(Default::default())),
        policy: Arc::new(SnapshotCell::new(Default::default())),
        dns_stats: Arc::clone(&dns_stats),
        counters: Arc::new(OverwatchCounters::default()),
        liveness: Arc::new(crate::clock::Liveness::new()),
    };
    let (dns_cell, view_cell, policy_cell) = (
        Arc::clone(&published.dns),
        Arc::clone(&published.view),
        Arc::clone(&published.policy),
    );
    let counters = Arc::clone(&published.counters);
    let registry_beat = Arc::clone(&published.liveness);
    let checker = HealthChecker::start(DEFAULT_WORKERS, ch.checks.0.clone());
    let mut runtime = match Runtime::new(&config, store, audit, checker, published) {
        Ok(r) => r,
        Err(e) => {
            error!("cannot start: {e}");
            return exit::STATE;
        }
    };

    // Sockets: everything is bound before READY=1.
    let listen = match dns::parse_listen(&config.dns.listen_address) {
        Ok(a) => a,
        Err(e) => {
            error!("dns.listen_address: {e}");
            return exit::CONFIG;
        }
    };
    let dns_cfg = dns::server::ServerConfig {
        listen,
        threads: config.dns.threads.max(1),
        tcp_idle_timeout: *config.dns.tcp_idle_timeout,
        tcp_max_connections: config.dns.tcp_max_connections,
        max_udp_size: config.dns.max_udp_size,
    };
    let dns_server =
        match dns::server::start(&dns_cfg, Arc::clone(&dns_cell), Arc::clone(&dns_stats)) {
            Ok(s) => s,
            Err(e) => {
                error!("cannot serve DNS on {listen}: {e}");
                return exit::FAILURE;
            }
        };
    info!(
        "DNS listening on {} (udp+tcp, {} thread(s))",
        dns_server.local_addr(),
        dns_cfg.threads
    );
    // Without a key nothing could be decrypted: a static-only Overwatch
    // (v1.1 files) runs without the gossip listener.
    let gossip_server = if loaded.secrets.gossip_keys.is_empty() {
        warn!("no overwatch.gossip.encryption_key: gossip is off, only static servers are served");
        None
    } else {
        let gossip_bind =
            match config::parse_listen(&config.overwatch.gossip.bind_address, gossip::DEFAULT_PORT)
            {
                Ok(a) => a,
                Err(e) => {
                    error!("overwatch.gossip.bind_address: {e}");
                    return exit::CONFIG;
                }
            };
        match gossip::server::start(gossip_bind, Arc::clone(&policy_cell), ch.gossip.0.clone()) {
            Ok(s) => {
                info!("gossip listening on {}", s.local_addr());
                Some(Arc::new(Mutex::new(s)))
            }
            Err(e) => {
                error!("cannot listen for gossip on {gossip_bind}: {e}");
                return exit::FAILURE;
            }
        }
    };
    runtime.set_gossip(gossip_server.clone());
    let render = {
        let (view_cell, counters, dns_stats, gossip) = (
            Arc::clone(&view_cell),
            Arc::clone(&counters),
            Arc::clone(&dns_stats),
            gossip_server.clone(),
        );
        Arc::new(move || {
            let mut w = TextWriter::new();
            let gossip_counters = gossip
                .as_ref()
                .map(|g| lock(g).counters())
                .unwrap_or_default();
            counters.write(&view_cell.load(), &gossip_counters, &mut w);
            dns_stats.write_metrics(&mut w);
            w.finish()
        }) as api::server::MetricsFn
    };
    let mut api_server = if config.api.enabled {
        match api::server::start(
            &config.api,
            Arc::clone(&view_cell),
            ch.api.0.clone(),
            Arc::clone(&render),
        ) {
            Ok(s) => Some(s),
            Err(e) => {
                error!("cannot start the API: {e}");
                return exit::FAILURE;
            }
        }
    } else {
        None
    };
    let mut metrics_server = match metrics_listener(&config, Arc::clone(&render)) {
        Ok(s) => s,
        Err(e) => {
            error!("cannot start the metrics listener: {e}");
            return exit::FAILURE;
        }
    };

    runtime.set_ready();
    let inputs = Inputs {
        checks: ch.checks.1.clone(),
        gossip: ch.gossip.1.clone(),
        api: ch.api.1.clone(),
        control: ch.control.1.clone(),
    };
    let registry = match std::thread::Builder::new()
        .name("registry".into())
        .spawn(move || runtime.run(inputs))
    {
        Ok(h) => h,
        Err(e) => {
            error!("cannot start the registry thread: {e}");
            return exit::FAILURE;
        }
    };
    notify("READY=1");
    info!("overwatch ready (config {})", config_path.display());

    let watchdog = watchdog_interval();
    let mut last_watchdog = Instant::now();
    let code = loop {
        match signals::wait(Duration::from_millis(500)) {
            Some(Signal::Terminate) => break exit::OK,
            Some(Signal::Reload) => reload(config_path, &ch.control.0, &counters),
            None => {}
        }
        if registry.is_finished() {
            error!("the registry thread stopped");
            break exit::FAILURE;
        }
        if let Some(every) = watchdog
            && last_watchdog.elapsed() >= every
        {
            if dns_server.alive()
                && gossip_server.as_ref().is_none_or(|g| lock(g).alive())
                && registry_beat.fresh(crate::clock::Now::read().mono, Duration::from_secs(5))
            {
                notify("WATCHDOG=1");
            } else {
                warn!("a loop looks stuck; not feeding the watchdog");
            }
            last_watchdog = Instant::now();
        }
    };
    notify("STOPPING=1");
    info!("stopping");
    if let Some(api) = api_server.as_mut() {
        api.stop();
    }
    if let Some(m) = metrics_server.as_mut() {
        m.stop();
    }
    let _ = ch.control.0.send(Control::Stop);
    let _ = registry.join();
    if let Some(g) = &gossip_server {
        lock(g).stop();
    }
    dns_server.stop();
    info!("stopped");
    code
}

fn reload(path: &Path, control: &crossbeam_channel::Sender<Control>, counters: &OverwatchCounters) {
    notify("RELOADING=1");
    match config::load(path, Some(Mode::Overwatch)) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                warn!("{w}");
            }
            OverwatchCounters::add(&counters.reload_success);
            let _ = control.send(Control::Reload(Box::new(loaded.config)));
            info!("SIGHUP: configuration {} accepted", path.display());
        }
        Err(errors) => {
            OverwatchCounters::add(&counters.reload_failure);
            error!(
                "SIGHUP: configuration {} rejected, the old one keeps serving:\n{errors}",
                path.display()
            );
        }
    }
    notify("READY=1");
}

/// The optional extra `/metrics` listener (`metrics.address`).
fn metrics_listener(
    config: &Config,
    render: api::server::MetricsFn,
) -> std::io::Result<Option<MetricsServer>> {
    let Some(address) = config
        .metrics
        .address
        .as_ref()
        .filter(|_| config.metrics.enabled)
    else {
        return Ok(None);
    };
    let addr = config::parse_listen(address, 9091).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("metrics.address: {e}"),
        )
    })?;
    let server = MetricsServer::start(addr, render)?;
    info!(
        "metrics listening on http://{}/metrics",
        server.local_addr()
    );
    Ok(Some(server))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
