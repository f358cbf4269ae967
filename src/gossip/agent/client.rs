//! The agent gossip client as the daemon sees it: `start` (or
//! `start_with_resolver`) spawns the loop (`client_loop.rs`, thread
//! `gossip-client`) that drives an `AgentSession` per Overwatch node, and
//! returns a `GossipClient` handle that sends it commands (backends,
//! keyring, identity, leave, stop) through a channel and its `Waker`, and reads what
//! the loop published (node status, heartbeat counters, liveness).
//!
//! Node names are resolved at start and again while a node is unreachable
//! (at most every 5 s, or every 30 s while it does not answer), so a node
//! whose address changes is found again. Lookups run on threads
//! `gossip-resolve` (`resolve.rs`), never in the loop: a slow DNS server
//! must not stall heartbeats to the other nodes.
//!
//! The loop reads `Now` once per turn and passes it to the sessions; it
//! beats an `Arc<Liveness>` with `now.mono` every turn (at least once a
//! second).

use super::client_loop::{Loop, Node};
use super::resolve::{self, ResolveFn, Resolver};
use super::{AgentSession, NodeStatus, SessionConfig};
use crate::backend::BackendReport;
use crate::clock::{Liveness, Now};
use crate::gossip::identity::Identity;
use crate::gossip::{Keyring, RejectReason};
use crossbeam_channel::Sender;
use mio::{Poll, Token, Waker};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub(super) const WAKER: Token = Token(usize::MAX);
pub(super) const RESOLVE_RETRY_MS: u64 = 5_000;
pub(super) const RESOLVE_REFRESH_MS: u64 = 30_000;
/// How long `leave_and_stop` waits for the nodes to acknowledge.
pub const LEAVE_WAIT_MS: u64 = 500;
/// `alive()` is false when the loop has not turned for this long.
pub const ALIVE_WITHIN: Duration = Duration::from_secs(10);

/// What the client needs; the daemon fills it from `agent.*`.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `host:port` of every Overwatch node (`agent.gossip.overwatch_nodes`).
    pub nodes: Vec<String>,
    pub identity: Arc<Identity>,
    pub keyring: Keyring,
    pub token: String,
    pub region: String,
    pub agent_id: String,
    pub heartbeat_interval: Duration,
    pub missed_threshold: u32,
    /// Accepted clock distance for messages (default 60 s).
    pub time_window_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentEvent {
    Registered {
        node: String,
        addr: SocketAddr,
    },
    Rejected {
        node: String,
        reason: RejectReason,
        detail: String,
    },
    /// No acknowledgement within heartbeat interval × missed threshold.
    Disconnected {
        node: String,
    },
}

pub(super) enum Command {
    SetBackends(Vec<BackendReport>),
    LatencyReport(Vec<crate::gossip::wire::LatencyEntry>),
    SetKeyring(Keyring),
    SetIdentity(Arc<Identity>),
    LeaveAndStop,
    Stop,
}

#[derive(Default)]
pub(super) struct Shared {
    pub(super) status: Mutex<Vec<(String, NodeStatus)>>,
    pub(super) heartbeats_sent: Mutex<(u64, u64)>,
    pub(super) liveness: Arc<Liveness>,
    pub(super) exited: AtomicBool,
}

pub struct GossipClient {
    shared: Arc<Shared>,
    commands: Sender<Command>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

/// Starts thread `gossip-client` with the system resolver (lookups on
/// `gossip-resolve` threads).
pub fn start(cfg: ClientConfig, events: Sender<AgentEvent>) -> io::Result<GossipClient> {
    start_with_resolver(cfg, events, resolve::system())
}

/// `start` with another lookup function (tests make it hang).
pub fn start_with_resolver(
    cfg: ClientConfig,
    events: Sender<AgentEvent>,
    resolve: ResolveFn,
) -> io::Result<GossipClient> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let (tx, rx) = crossbeam_channel::unbounded();
    let shared = Arc::new(Shared::default());
    let now = Now::read();
    let session_cfg = SessionConfig {
        agent_id: cfg.agent_id.clone(),
        region: cfg.region.clone(),
        token: cfg.token.clone(),
        identity: Arc::clone(&cfg.identity),
        keyring: cfg.keyring.clone(),
        heartbeat_interval: cfg.heartbeat_interval,
        missed_threshold: cfg.missed_threshold,
        time_window_ms: cfg.time_window_ms,
    };
    let nodes = cfg
        .nodes
        .iter()
        .map(|name| Node {
            name: name.clone(),
            addr: None,
            resolved_at: now.mono,
            resolving: false,
            udp: None,
            tcp: None,
            session: AgentSession::new(session_cfg.clone(), now),
            io_error: None,
            was_connected: false,
        })
        .collect();
    let resolver = Resolver::new(resolve, Arc::clone(&waker));
    let mut lp = Loop {
        poll,
        resolver,
        nodes,
        commands: rx,
        events,
        shared: Arc::clone(&shared),
        buf: vec![0u8; 65_536],
        leave_deadline: None,
    };
    for i in 0..lp.nodes.len() {
        lp.request_address(i, now);
    }
    let thread_shared = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("gossip-client".into())
        .spawn(move || {
            if let Err(e) = lp.run() {
                log::error!("gossip client loop failed: {e}");
            }
            thread_shared.exited.store(true, Ordering::Relaxed);
        })?;
    Ok(GossipClient {
        shared,
        commands: tx,
        waker,
        thread: Some(thread),
    })
}

impl GossipClient {
    /// Replaces the reported backends; changes go to every node at once.
    pub fn set_backends(&self, backends: Vec<BackendReport>) {
        let _ = self.commands.send(Command::SetBackends(backends));
        let _ = self.waker.wake();
    }

    /// Sends learned latency entries to every registered Overwatch (in
    /// bounded batches, session-tagged).
    pub fn send_latency(&self, entries: Vec<crate::gossip::wire::LatencyEntry>) {
        let _ = self.commands.send(Command::LatencyReport(entries));
        let _ = self.waker.wake();
    }

    /// `send_latency` for another thread (the latency poller).
    pub fn latency_sink(&self) -> impl Fn(Vec<crate::gossip::wire::LatencyEntry>) + Send + 'static {
        let (commands, waker) = (self.commands.clone(), Arc::clone(&self.waker));
        move |entries| {
            let _ = commands.send(Command::LatencyReport(entries));
            let _ = waker.wake();
        }
    }

    /// Replaces the gossip keys (SIGHUP during a key rotation): new
    /// messages are sealed with the first key, replies opened with any.
    pub fn set_keyring(&self, keyring: Keyring) {
        let _ = self.commands.send(Command::SetKeyring(keyring));
        let _ = self.waker.wake();
    }

    /// Replaces the certificate and key (a renewal, with its proof): every
    /// node session registers again with the new identity, no restart.
    pub fn set_identity(&self, identity: Arc<Identity>) {
        let _ = self.commands.send(Command::SetIdentity(identity));
        let _ = self.waker.wake();
    }

    /// Tells every registered node that the agent leaves, waits up to
    /// `LEAVE_WAIT_MS` for their acknowledgements, and stops.
    pub fn leave_and_stop(&mut self) {
        let _ = self.commands.send(Command::LeaveAndStop);
        self.join();
    }

    /// Stops without telling anyone (the nodes will see the agent go stale).
    pub fn stop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        self.join();
    }

    fn join(&mut self) {
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    pub fn node_status(&self) -> Vec<(String, NodeStatus)> {
        self.shared
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `opengslb_agent_heartbeats_sent_total`
    pub fn heartbeats_sent(&self) -> u64 {
        self.shared.heartbeats_sent.lock().map(|c| c.0).unwrap_or(0)
    }

    /// `opengslb_agent_heartbeat_failures_total`: heartbeats unacknowledged
    /// when the next was due.
    pub fn heartbeat_failures(&self) -> u64 {
        self.shared.heartbeats_sent.lock().map(|c| c.1).unwrap_or(0)
    }

    /// Beaten with `now.mono` every loop turn (at least once a second).
    pub fn liveness(&self) -> Arc<Liveness> {
        Arc::clone(&self.shared.liveness)
    }

    /// The loop thread runs and turned within `ALIVE_WITHIN` (monotonic).
    pub fn alive(&self) -> bool {
        !self.shared.exited.load(Ordering::Relaxed)
            && self.shared.liveness.fresh(Now::read().mono, ALIVE_WITHIN)
    }
}

impl Drop for GossipClient {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop();
        }
    }
}
