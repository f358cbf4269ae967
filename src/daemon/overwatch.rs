//! Wiring an Overwatch: opens the state, binds DNS, gossip, the API and
//! the metrics listener before telling systemd READY=1, then runs the
//! `registry` thread (`crate::overwatch::runtime`) under the supervision
//! loop until SIGTERM, re-reading the configuration on SIGHUP.

use super::listen;
use super::notify::notify;
use super::supervise::Supervisor;
use crate::api;
use crate::clock::Liveness;
use crate::clock::Now;
use crate::config::{self, Listener, Loaded, Mode};
use crate::dns::{self, DnsStats, DnsTable};
use crate::exit::ExitError;
use crate::gossip::overwatch::OverwatchEvent;
use crate::gossip::{self, overwatch::server::GossipServer};
use crate::health::{DEFAULT_WORKERS, HealthChecker};
use crate::metrics::{self, TextWriter};
use crate::overwatch::metrics::OverwatchCounters;
use crate::overwatch::peers::link::{self, LinkConfig};
use crate::overwatch::peers::status::{self, ClusterStatus};
use crate::overwatch::runtime::{Channels, Control, Inputs, Published, Runtime};
use crate::persist::{AuditLog, Store};
use crate::snapshot::SnapshotCell;
use crossbeam_channel::Sender;
use log::{error, info, warn};
use std::path::Path;
use std::sync::Arc;

pub fn run(loaded: Loaded, config_path: &Path) -> Result<(), ExitError> {
    let config = loaded.config.clone();
    for w in &loaded.warnings {
        warn!("{w}");
    }
    let store = Store::open(&config.overwatch.data_dir).map_err(ExitError::state)?;
    let audit = AuditLog::open_rotating(
        &config.overwatch.data_dir,
        config.overwatch.audit.rotation(),
    )
    .map_err(ExitError::state)?;
    let reopen_audit = audit.reopen_handle();
    let ch = Channels::default();
    let dns_stats = Arc::new(DnsStats::new());
    share_cookies(&dns_stats, &loaded);
    let published = Published {
        dns: Arc::new(SnapshotCell::new(DnsTable::empty())),
        view: Arc::new(SnapshotCell::new(Default::default())),
        policy: Arc::new(SnapshotCell::new(Default::default())),
        dns_stats: Arc::clone(&dns_stats),
        counters: Arc::new(OverwatchCounters::default()),
        liveness: Arc::new(Liveness::new()),
        learned: Default::default(),
    };
    let (dns_cell, view_cell, policy_cell) = (
        Arc::clone(&published.dns),
        Arc::clone(&published.view),
        Arc::clone(&published.policy),
    );
    let counters = Arc::clone(&published.counters);
    let learned = published.learned.clone();
    let registry_beat = Arc::clone(&published.liveness);
    let checker = HealthChecker::start(DEFAULT_WORKERS, ch.checks.0.clone());
    let mut runtime = Runtime::new(&config, store, audit, checker, published)
        .map_err(|e| ExitError::state(format!("cannot start: {e}")))?;

    // Sockets: everything is bound before READY=1.
    let listen = listen::required(&config, Mode::Overwatch, Listener::Dns)?;
    let dns_cfg = dns::server::ServerConfig {
        listen,
        threads: config.dns.threads.max(1),
        tcp_idle_timeout: *config.dns.tcp_idle_timeout,
        tcp_max_connections: config.dns.tcp_max_connections,
        max_udp_size: config.dns.max_udp_size,
        learned: Some(crate::overwatch::learned::lookup_for_dns(&learned)),
    };
    let dns_server = dns::server::start(&dns_cfg, Arc::clone(&dns_cell), Arc::clone(&dns_stats))
        .map_err(|e| ExitError::failure(format!("cannot serve DNS on {listen}: {e}")))?;
    info!(
        "DNS listening on {} (udp+tcp, {} thread(s))",
        dns_server.local_addr(),
        dns_cfg.threads
    );
    // Peers (SPEC §12): their packets arrive on the gossip port and go to
    // the `peers` thread, which never holds up DNS or the registry. It
    // runs whenever gossip does, even with no peer listed yet, so a
    // SIGHUP can add the first one.
    let want_peers = !loaded.secrets.gossip_keys.is_empty();
    let (peer_packets_tx, peer_packets_rx) = crossbeam_channel::bounded(4096);
    let gossip_server = start_gossip(
        &loaded,
        Arc::clone(&policy_cell),
        ch.gossip.0.clone(),
        want_peers.then_some(peer_packets_tx),
    )?;
    let node_id = crate::overwatch::runtime::node_id(&config);
    let peer_link = match (&gossip_server, want_peers) {
        (Some(g), true) => {
            let cfg = LinkConfig {
                node_id: node_id.clone(),
                gossip_port: g.local_addr().port(),
                bind_ip: g.local_addr().ip(),
                peers: config.overwatch.peers.clone(),
                interval: *config.overwatch.peer_sync.interval,
                tombstone_ttl_ms: config.overwatch.peer_sync.tombstone_ttl.as_millis() as u64,
                api: advertised_api(&config, g.local_addr().ip()),
            };
            let (handles, _thread) = link::start(
                cfg,
                Arc::clone(&policy_cell),
                runtime.replica(),
                ch.peers.0.clone(),
                peer_packets_rx,
            )
            .map_err(|e| ExitError::failure(format!("cannot start the peers thread: {e}")))?;
            runtime.attach_peers(handles.local.clone());
            Some(handles)
        }
        _ => None,
    };
    let cluster_status = peer_link
        .as_ref()
        .map(|h| Arc::clone(&h.status))
        .unwrap_or_else(|| {
            Arc::new(SnapshotCell::new(ClusterStatus {
                node_id: node_id.clone(),
                ..Default::default()
            }))
        });
    let peer_counters = peer_link
        .as_ref()
        .map(|h| Arc::clone(&h.counters))
        .unwrap_or_default();
    let render = {
        let (view_cell, counters, dns_stats, gossip, learned) = (
            Arc::clone(&view_cell),
            Arc::clone(&counters),
            Arc::clone(&dns_stats),
            gossip_server.clone(),
            learned.clone(),
        );
        let (cluster_status, peer_counters) =
            (Arc::clone(&cluster_status), Arc::clone(&peer_counters));
        Arc::new(move || {
            let mut w = TextWriter::new();
            let gossip_counters = gossip.as_ref().map(|g| g.counters()).unwrap_or_default();
            let view = view_cell.load();
            counters.write(&view, &gossip_counters, &mut w);
            dns_stats.write_metrics(&mut w);
            status::write_metrics(&cluster_status.load(), &peer_counters, &mut w);
            w.single(
                "opengslb_overwatch_learned_prefixes",
                "Client prefixes in the learned-latency table.",
                metrics::Kind::Gauge,
                learned.prefixes() as f64,
            );
            // v1.1 names (dashboards of migrated sites) and process_*.
            metrics::v11::write_common(&mut w);
            metrics::v11::write_overwatch(&view, &mut w);
            metrics::process::write(&metrics::process::read(), &mut w);
            w.finish()
        }) as api::server::MetricsFn
    };
    // `GET /api/v1/config`: the last accepted file, secrets redacted.
    let effective = Arc::new(SnapshotCell::new(config::redact::redacted_json(&config)));
    let config_fn: api::server::ConfigFn = {
        let effective = Arc::clone(&effective);
        Arc::new(move || (*effective.load()).clone())
    };
    let mut api_server = match listen::address(&config, Mode::Overwatch, Listener::Api)? {
        Some(_) => Some(
            api::server::start(
                &config.api,
                Arc::clone(&view_cell),
                ch.api.0.clone(),
                Arc::clone(&render),
                config_fn,
                {
                    let cluster_status = Arc::clone(&cluster_status);
                    Arc::new(move || {
                        status::status_json(&cluster_status.load(), Now::read().wall_secs())
                    })
                },
                latency_fn(&learned),
            )
            .map_err(|e| ExitError::failure(format!("cannot start the API: {e}")))?,
        ),
        None => None,
    };
    if let Some(api) = &api_server {
        let (cell, stats) = (Arc::clone(&dns_cell), Arc::clone(&dns_stats));
        api.set_dnssec_status(Arc::new(move || {
            dns::keystore::status(&cell.load(), &stats)
        }));
    }
    let mut metrics_server = listen::start_metrics(&config, Mode::Overwatch, render)?;

    runtime.set_ready();
    let inputs = Inputs {
        checks: ch.checks.1.clone(),
        gossip: ch.gossip.1.clone(),
        api: ch.api.1.clone(),
        peers: ch.peers.1.clone(),
        control: ch.control.1.clone(),
    };
    let mut sup = Supervisor::new();
    sup.watch("registry", registry_beat);
    sup.on_reopen(move || reopen_audit.request());
    sup.probe("dns", || dns_server.alive());
    if let Some(g) = &gossip_server {
        sup.watch("gossip", g.liveness());
    }
    // Stopped before the registry: a gossip thread blocked on a full
    // registry channel is freed by the registry still draining it.
    let gossip_stop = gossip_server.as_ref().map(|g| g.stop_handle());
    sup.spawn("registry", move || {
        runtime.run(inputs);
        Ok(())
    })?;
    notify("READY=1");
    info!("overwatch ready (config {})", config_path.display());
    let peer_reload = peer_link.as_ref().map(|h| h.reload.clone());
    let outcome = sup.run(|| {
        reload(
            config_path,
            &ch.control.0,
            peer_reload.as_ref(),
            &counters,
            &effective,
            &dns_stats,
        )
    });

    notify("STOPPING=1");
    info!("stopping");
    if let Some(api) = api_server.as_mut() {
        api.stop();
    }
    if let Some(m) = metrics_server.as_mut() {
        m.stop();
    }
    if let Some(g) = &gossip_stop {
        g.stop();
    }
    if let Some(p) = &peer_link {
        let _ = p.stop.send(());
    }
    let _ = ch.control.0.send(Control::Stop);
    sup.join();
    dns_server.stop();
    info!("stopped");
    outcome
}

/// `GET /api/v1/overwatch/latency` over the learned-latency table.
fn latency_fn(learned: &crate::overwatch::learned::Learned) -> api::server::LatencyFn {
    let learned = learned.clone();
    Arc::new(move |query: &str| {
        let now_s = (crate::clock::Now::read().mono.0 / 1000) as u32;
        learned.page_json(query, now_s)
    })
}

/// The gossip listener, unless no key is configured: without a key nothing
/// could be decrypted, so a static-only Overwatch (v1.1 files) runs
/// without it.
fn start_gossip(
    loaded: &Loaded,
    policy: Arc<SnapshotCell<gossip::Policy>>,
    events: Sender<OverwatchEvent>,
    peers: Option<Sender<(Vec<u8>, std::net::SocketAddr)>>,
) -> Result<Option<Arc<GossipServer>>, ExitError> {
    if loaded.secrets.gossip_keys.is_empty() {
        warn!("no overwatch.gossip.encryption_key: gossip is off, only static servers are served");
        return Ok(None);
    }
    let bind = listen::required(&loaded.config, Mode::Overwatch, Listener::Gossip)?;
    let server = gossip::overwatch::server::start_with_peers(
        bind,
        policy,
        events,
        Default::default(),
        peers,
    )
    .map_err(|e| ExitError::failure(format!("cannot listen for gossip on {bind}: {e}")))?;
    info!("gossip listening on {}", server.local_addr());
    Ok(Some(Arc::new(server)))
}

/// The API address peers are told: `api.address`, with an unspecified
/// IP (`0.0.0.0`) replaced by the gossip IP.
fn advertised_api(config: &config::Config, gossip_ip: std::net::IpAddr) -> Option<String> {
    if !config.api.enabled {
        return None;
    }
    let addr: std::net::SocketAddr = config.api.address.parse().ok()?;
    let ip = if addr.ip().is_unspecified() {
        gossip_ip
    } else {
        addr.ip()
    };
    Some(std::net::SocketAddr::new(ip, addr.port()).to_string())
}

/// DNS cookies (RFC 9018): a node with peers derives its cookie secret
/// from the cluster's gossip keys, so each peer accepts the others'
/// cookies; a standalone node keeps its own random secret (dns/cookies.rs).
fn share_cookies(dns_stats: &DnsStats, loaded: &Loaded) {
    if loaded.config.overwatch.peers.is_empty() {
        dns_stats.cookies.standalone();
    } else {
        dns_stats.cookies.share(&loaded.secrets.gossip_keys);
    }
}

/// SIGHUP: a valid file goes to the registry; an invalid one is logged,
/// counted, and the old configuration keeps serving.
fn reload(
    path: &Path,
    control: &Sender<Control>,
    peers: Option<&Sender<link::LinkReload>>,
    counters: &OverwatchCounters,
    effective: &SnapshotCell<serde_json::Value>,
    dns_stats: &DnsStats,
) {
    match config::load(path, Some(Mode::Overwatch)) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                warn!("{w}");
            }
            share_cookies(dns_stats, &loaded);
            OverwatchCounters::add(&counters.reload_success);
            effective.publish(config::redact::redacted_json(&loaded.config));
            let ow = &loaded.config.overwatch;
            match peers {
                Some(tx) => {
                    let _ = tx.send(link::LinkReload {
                        peers: ow.peers.clone(),
                        interval: *ow.peer_sync.interval,
                        tombstone_ttl_ms: ow.peer_sync.tombstone_ttl.as_millis() as u64,
                    });
                }
                None if !ow.peers.is_empty() => error!(
                    "SIGHUP: overwatch.peers not applied: gossip was off at start (no overwatch.gossip.encryption_key); restart to connect to the peers"
                ),
                None => {}
            }
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
}
