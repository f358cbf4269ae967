//! The Overwatch gossip listener as the daemon sees it: `start` binds UDP
//! and TCP on one port and spawns the loop (`server_loop.rs`, thread
//! `gossip-server`) that feeds every datagram and frame to
//! `OverwatchProtocol`, sends the replies back the way the request came,
//! and hands events to the registry channel; `GossipServer` is the handle.
//!
//! TCP carries the same sealed packets as UDP, framed by `gossip::io`, for
//! what does not fit a datagram. A connection on which nothing decrypted
//! yet is pre-auth: it reads under a smaller frame limit and within the
//! `PreAuthBudget` (per-source and total connection and byte caps), so
//! peers without the key cannot make this loop hold more than a few MiB.
//! Heartbeats the registry has no room for are coalesced (`coalesce.rs`).
//! Counters are published to a shared snapshot after each batch so metrics
//! never touch the loop. This loop does I/O only; the protocol decides.
//!
//! The loop reads `Now` once per turn and passes it down; it beats an
//! `Arc<Liveness>` with `now.mono` every turn, and stops through a
//! `StopHandle`, so the daemon needs no lock on the server to supervise it.

use super::coalesce::Coalescer;
use super::server_loop::Loop;
use super::{Counters, OverwatchConfig, OverwatchEvent, OverwatchProtocol};
use crate::clock::{Liveness, Now};
use crate::gossip::io::{PreAuthBudget, PreAuthLimits};
use crate::gossip::{Policy, RejectReason};
use crate::snapshot::SnapshotCell;
use crossbeam_channel::Sender;
use mio::net::{TcpListener, UdpSocket};
use mio::{Interest, Poll, Token, Waker};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub(super) const UDP: Token = Token(0);
pub(super) const LISTENER: Token = Token(1);
pub(super) const WAKER: Token = Token(2);
pub(super) const FIRST_CONN: usize = 3;
pub(super) const MAX_CONNS: usize = 1024;
pub(super) const CONN_IDLE_MS: u64 = 60_000;
pub(super) const HOUSEKEEPING_MS: u64 = 1_000;
/// `alive()` is false when the loop has not turned for this long.
pub const ALIVE_WITHIN: Duration = Duration::from_secs(10);

pub(super) enum Command {
    Forget(String),
    Stop,
}

#[derive(Default)]
pub(super) struct Shared {
    pub(super) counters: Mutex<Counters>,
    /// Pre-auth TCP connections and the bytes they hold, after each turn.
    pub(super) preauth: Mutex<(usize, usize)>,
    pub(super) liveness: Arc<Liveness>,
    pub(super) exited: AtomicBool,
}

/// A running listener; stops when dropped.
pub struct GossipServer {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    stopper: StopHandle,
    thread: Option<JoinHandle<()>>,
}

/// Asks the loop to stop (or to forget an agent) from any thread, without
/// a lock on the `GossipServer`. Cheap to clone.
#[derive(Clone)]
pub struct StopHandle {
    commands: Sender<Command>,
    waker: Arc<Waker>,
}

impl StopHandle {
    /// Asks the loop to return; `GossipServer::stop` (or drop) joins it.
    pub fn stop(&self) {
        let _ = self.commands.send(Command::Stop);
        let _ = self.waker.wake();
    }

    /// Drops the agent's session and locally learned pin (after the
    /// operator forgot it in the registry).
    pub fn forget(&self, agent_id: &str) {
        let _ = self.commands.send(Command::Forget(agent_id.to_string()));
        let _ = self.waker.wake();
    }
}

/// Binds UDP and TCP on `bind` (port 0 picks one free port for both) and
/// starts the loop on thread `gossip-server`.
pub fn start(
    bind: SocketAddr,
    policy: Arc<SnapshotCell<Policy>>,
    events: Sender<OverwatchEvent>,
) -> io::Result<GossipServer> {
    start_with(bind, policy, events, OverwatchConfig::default())
}

pub fn start_with(
    bind: SocketAddr,
    policy: Arc<SnapshotCell<Policy>>,
    events: Sender<OverwatchEvent>,
    cfg: OverwatchConfig,
) -> io::Result<GossipServer> {
    start_with_peers(bind, policy, events, cfg, None)
}

/// Like `start_with`; peer packets (`wire::PEER_SESSION`) go to `peers`.
pub fn start_with_peers(
    bind: SocketAddr,
    policy: Arc<SnapshotCell<Policy>>,
    events: Sender<OverwatchEvent>,
    cfg: OverwatchConfig,
    peers: Option<Sender<(Vec<u8>, SocketAddr)>>,
) -> io::Result<GossipServer> {
    let (udp, listener) = bind_both(bind)?;
    let local_addr = udp.local_addr()?;
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let (tx, rx) = crossbeam_channel::unbounded();
    let shared = Arc::new(Shared::default());
    let mut lp = Loop {
        poll,
        udp: UdpSocket::from_std(udp),
        listener: TcpListener::from_std(listener),
        conns: HashMap::new(),
        next_token: FIRST_CONN,
        proto: OverwatchProtocol::new(cfg),
        policy,
        events,
        commands: rx,
        shared: Arc::clone(&shared),
        buf: vec![0u8; 65_536],
        heartbeats: Coalescer::new(),
        preauth: PreAuthBudget::new(PreAuthLimits::default()),
        peer_packets: peers,
        stopping: false,
    };
    lp.poll
        .registry()
        .register(&mut lp.udp, UDP, Interest::READABLE)?;
    lp.poll
        .registry()
        .register(&mut lp.listener, LISTENER, Interest::READABLE)?;
    let thread_shared = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("gossip-server".into())
        .spawn(move || {
            if let Err(e) = lp.run() {
                log::error!("gossip server loop failed: {e}");
            }
            thread_shared.exited.store(true, Ordering::Relaxed);
        })?;
    log::info!("gossip listening on {local_addr} (udp and tcp)");
    Ok(GossipServer {
        local_addr,
        shared,
        stopper: StopHandle {
            commands: tx,
            waker,
        },
        thread: Some(thread),
    })
}

/// UDP first; TCP on the port UDP got. With port 0 another process may
/// hold that TCP port, so try a few ports.
fn bind_both(bind: SocketAddr) -> io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let mut last = None;
    for _ in 0..10 {
        let udp = std::net::UdpSocket::bind(bind)?;
        let port = udp.local_addr()?.port();
        match std::net::TcpListener::bind(SocketAddr::new(bind.ip(), port)) {
            Ok(tcp) => {
                // Heartbeats of a large fleet arrive in bursts: the default
                // ~208 KB buffer overflowed at 25,000 agents (scale.sh), as
                // DNS asks for 4 MB. Best effort: the kernel caps it at
                // net.core.rmem_max.
                let _ =
                    crate::netio::set_int_option(&udp, libc::SOL_SOCKET, libc::SO_RCVBUF, 4 << 20);
                udp.set_nonblocking(true)?;
                tcp.set_nonblocking(true)?;
                return Ok((udp, tcp));
            }
            Err(e) if bind.port() == 0 => last = Some(e),
            Err(e) => return Err(io::Error::new(e.kind(), format!("tcp {bind}: {e}"))),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free port for udp and tcp")))
}

impl GossipServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the loop and joins the thread.
    pub fn stop(&mut self) {
        self.stopper.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// A handle that stops the loop (or forgets an agent) from any thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.stopper.clone()
    }

    /// Drops the agent's session and locally learned pin (after the
    /// operator forgot it in the registry).
    pub fn forget(&self, agent_id: &str) {
        self.stopper.forget(agent_id);
    }

    /// Beaten with `now.mono` every loop turn (at least once a second).
    pub fn liveness(&self) -> Arc<Liveness> {
        Arc::clone(&self.shared.liveness)
    }

    /// The loop thread runs and turned within `ALIVE_WITHIN`, both on the
    /// monotonic clock.
    pub fn alive(&self) -> bool {
        !self.shared.exited.load(Ordering::Relaxed)
            && self.shared.liveness.fresh(Now::read().mono, ALIVE_WITHIN)
    }

    pub fn counters(&self) -> Counters {
        self.shared
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// TCP connections on which nothing decrypted yet, and the bytes they
    /// hold (bounded by `PreAuthLimits`), as of the loop's last turn.
    pub fn preauth_in_use(&self) -> (usize, usize) {
        *self
            .shared
            .preauth
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Datagrams and frames that no key opened, by source address.
    pub fn decrypt_failures(&self) -> Vec<(IpAddr, u64)> {
        let mut v: Vec<(IpAddr, u64)> = self
            .counters()
            .decrypt_failures_by_source
            .into_iter()
            .collect();
        v.sort();
        v
    }

    /// `opengslb_gossip_decrypt_failures_total`
    pub fn decrypt_failures_total(&self) -> u64 {
        self.counters().decrypt_failures
    }

    /// `opengslb_overwatch_agent_auth_failures_total{reason}`, every
    /// reason listed (zero included). `decrypt_failed` is the decrypt total.
    pub fn auth_failures(&self) -> Vec<(RejectReason, u64)> {
        let c = self.counters();
        RejectReason::ALL
            .into_iter()
            .map(|r| {
                let n = match r {
                    RejectReason::DecryptFailed => c.decrypt_failures,
                    _ => c.auth_failures.get(&r).copied().unwrap_or(0),
                };
                (r, n)
            })
            .collect()
    }
}

impl Drop for GossipServer {
    fn drop(&mut self) {
        self.stop();
    }
}
