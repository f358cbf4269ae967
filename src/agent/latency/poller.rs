//! The `latency` thread: every `poll_interval` one sock_diag dump fed to
//! the aggregation, every `report_interval` the reportable prefixes handed
//! to gossip (which batches them to every Overwatch). Without root or
//! `CAP_NET_ADMIN`, or when the kernel refuses the dump (EPERM), it logs
//! once and reports nothing.

use super::sockdiag::{DiagSocket, capable};
use super::subnets::{Listener, Subnets};
use crate::clock::Now;
use crate::config::LatencyLearningConfig;
use crate::gossip::wire::LatencyEntry;
use crossbeam_channel::Receiver;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What the metrics read: `opengslb_agent_latency_subnets` and
/// `opengslb_agent_latency_reports_sent_total`.
#[derive(Default)]
pub struct LatencyCounters {
    pub subnets: AtomicU64,
    pub reports_sent: AtomicU64,
}

/// Starts the thread unless learning is off or not permitted; it ends when
/// `stop` is closed or sent to.
pub fn start(
    cfg: &LatencyLearningConfig,
    listeners: Vec<Listener>,
    send: impl Fn(Vec<LatencyEntry>) + Send + 'static,
    counters: Arc<LatencyCounters>,
    stop: Receiver<()>,
) -> Option<std::thread::JoinHandle<()>> {
    if !cfg.enabled {
        return None;
    }
    if !capable() {
        log::warn!(
            "latency learning: not root and no CAP_NET_ADMIN; the kernel's TCP round trips cannot be read, nothing will be reported"
        );
        return None;
    }
    let cfg = cfg.clone();
    std::thread::Builder::new()
        .name("latency".into())
        .spawn(move || run(cfg, listeners, &send, &counters, &stop))
        .map_err(|e| log::warn!("latency learning: cannot start its thread: {e}"))
        .ok()
}

fn run(
    cfg: LatencyLearningConfig,
    listeners: Vec<Listener>,
    send: &dyn Fn(Vec<LatencyEntry>),
    counters: &LatencyCounters,
    stop: &Receiver<()>,
) {
    let mut sock = match DiagSocket::open() {
        Ok(s) => s,
        Err(e) => {
            log::warn!(
                "latency learning: cannot open a sock_diag socket ({e}); nothing will be reported"
            );
            return;
        }
    };
    let poll = *cfg.poll_interval;
    let report_every = *cfg.report_interval;
    let mut subnets = Subnets::new(cfg, listeners);
    let mut next_report = Now::read().mono.after(report_every);
    loop {
        let now = Now::read().mono;
        subnets.begin_poll();
        let dumped = sock.dump(&mut |s| subnets.offer(s, now.0));
        if let Err(e) = dumped {
            log::warn!(
                "latency learning: the kernel refused the socket dump ({e}); nothing will be reported"
            );
            return;
        }
        subnets.end_poll(now.0);
        counters
            .subnets
            .store(subnets.len() as u64, Ordering::Relaxed);
        if now >= next_report {
            next_report = now.after(report_every);
            let entries = subnets.report();
            if !entries.is_empty() {
                let batches = entries.len().div_ceil(crate::gossip::wire::LATENCY_BATCH);
                send(entries);
                counters
                    .reports_sent
                    .fetch_add(batches as u64, Ordering::Relaxed);
            }
        }
        let wait = poll.min(now.until(next_report).max(Duration::from_millis(10)));
        match stop.recv_timeout(wait) {
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}
