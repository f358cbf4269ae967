//! The agent gossip client: one mio loop on thread `gossip-client` that
//! drives an `AgentSession` per Overwatch node, each over its own connected
//! UDP socket, plus a TCP connection opened on demand for packets that do
//! not fit a datagram.
//!
//! Node names are resolved at start and again while a node is unreachable
//! (at most every 5 s, or every 30 s while it does not answer), so a node
//! whose address changes is found again. Lookups run on thread
//! `gossip-resolve` (`resolve.rs`), never in this loop: a slow DNS server
//! must not stall heartbeats to the other nodes.
//!
//! The loop reads `Now` once per turn and passes it to the sessions; it
//! beats an `Arc<Liveness>` with `now.mono` every turn (at least once a
//! second).

use super::resolve::{self, Answer, ResolveFn, Resolver};
use super::{AgentSession, NodeStatus, Outgoing, SessionConfig, SessionEvent};
use crate::clock::{Liveness, Mono, Now};
use crate::gossip::identity::Identity;
use crate::gossip::io::{FrameReader, MAX_FRAME, flush_stream, frame};
use crate::gossip::{BackendReport, Keyring, RejectReason};
use crate::netio::{interrupted, would_block};
use crossbeam_channel::{Receiver, Sender};
use mio::net::{TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const WAKER: Token = Token(usize::MAX);
const RESOLVE_RETRY_MS: u64 = 5_000;
const RESOLVE_REFRESH_MS: u64 = 30_000;
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

enum Command {
    SetBackends(Vec<BackendReport>),
    SetKeyring(Keyring),
    LeaveAndStop,
    Stop,
}

#[derive(Default)]
struct Shared {
    status: Mutex<Vec<(String, NodeStatus)>>,
    heartbeats_sent: Mutex<(u64, u64)>,
    liveness: Arc<Liveness>,
    exited: AtomicBool,
}

pub struct GossipClient {
    shared: Arc<Shared>,
    commands: Sender<Command>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

/// Starts thread `gossip-client` (and `gossip-resolve`) with the system
/// resolver.
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
    let resolver = Resolver::start(resolve, Arc::clone(&waker))?;
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

    /// Replaces the gossip keys (SIGHUP during a key rotation): new
    /// messages are sealed with the first key, replies opened with any.
    pub fn set_keyring(&self, keyring: Keyring) {
        let _ = self.commands.send(Command::SetKeyring(keyring));
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

struct Tcp {
    stream: TcpStream,
    frames: FrameReader,
    wbuf: Vec<u8>,
}

struct Node {
    name: String,
    addr: Option<SocketAddr>,
    resolved_at: Mono,
    /// A lookup is on the resolver thread; no second one is asked for.
    resolving: bool,
    udp: Option<UdpSocket>,
    tcp: Option<Tcp>,
    session: AgentSession,
    io_error: Option<String>,
    was_connected: bool,
}

struct Loop {
    poll: Poll,
    resolver: Resolver,
    nodes: Vec<Node>,
    commands: Receiver<Command>,
    events: Sender<AgentEvent>,
    shared: Arc<Shared>,
    buf: Vec<u8>,
    leave_deadline: Option<Mono>,
}

fn udp_token(i: usize) -> Token {
    Token(i * 2)
}
fn tcp_token(i: usize) -> Token {
    Token(i * 2 + 1)
}

/// Loopback for a loopback peer (tests), the wildcard otherwise.
fn local_for(peer: SocketAddr) -> SocketAddr {
    let ip = match (peer.ip().is_loopback(), peer.is_ipv4()) {
        (true, true) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        (true, false) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        (false, true) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (false, false) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, 0)
}

impl Loop {
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(64);
        let mut timeout = Duration::ZERO;
        loop {
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if interrupted(&e) => events.clear(),
                Err(e) => return Err(e),
            }
            // One reading per turn, passed down to everything it does.
            let now = Now::read();
            self.shared.liveness.beat(now.mono);
            let answers: Vec<Answer> = self.resolver.answers().collect();
            for a in answers {
                self.apply_address(a);
            }
            for event in events.iter() {
                let t = event.token().0;
                if event.token() == WAKER || t / 2 >= self.nodes.len() {
                    continue;
                }
                if t % 2 == 0 {
                    self.read_udp(t / 2, now);
                } else {
                    self.tcp_ready(t / 2, event.is_readable(), now);
                }
            }
            while let Ok(cmd) = self.commands.try_recv() {
                match cmd {
                    Command::Stop => return Ok(()),
                    Command::SetKeyring(k) => {
                        for node in &mut self.nodes {
                            node.session.set_keyring(k.clone());
                        }
                    }
                    Command::SetBackends(b) => {
                        for i in 0..self.nodes.len() {
                            let outs = self.nodes[i].session.set_state(&b, now);
                            self.send(i, outs, now);
                        }
                    }
                    Command::LeaveAndStop => {
                        self.leave_deadline
                            .get_or_insert(now.mono.after(Duration::from_millis(LEAVE_WAIT_MS)));
                        for i in 0..self.nodes.len() {
                            let outs = self.nodes[i].session.leave(now);
                            self.send(i, outs, now);
                        }
                    }
                }
            }
            if let Some(d) = self.leave_deadline
                && (now.mono >= d || self.nodes.iter().all(|n| n.session.has_left()))
            {
                self.publish();
                return Ok(());
            }
            let mut deadline = self.leave_deadline.unwrap_or(Mono(u64::MAX));
            for i in 0..self.nodes.len() {
                if self.nodes[i].session.next_deadline() <= now.mono {
                    self.maybe_resolve(i, now);
                    let outs = self.nodes[i].session.tick(now);
                    self.send(i, outs, now);
                }
                deadline = deadline.min(self.nodes[i].session.next_deadline());
            }
            self.publish();
            timeout = now
                .mono
                .until(deadline)
                .clamp(Duration::from_millis(1), Duration::from_secs(1));
        }
    }

    fn maybe_resolve(&mut self, i: usize, now: Now) {
        let n = &self.nodes[i];
        let age = now.mono.since(n.resolved_at);
        let due = match (n.addr, n.session.is_registered()) {
            (None, _) => age >= Duration::from_millis(RESOLVE_RETRY_MS),
            (Some(_), false) => age >= Duration::from_millis(RESOLVE_REFRESH_MS),
            (Some(_), true) => false,
        };
        if due {
            self.request_address(i, now);
        }
    }

    /// Asks the resolver thread (a literal address is answered at once).
    fn request_address(&mut self, i: usize, now: Now) {
        let node = &mut self.nodes[i];
        if node.resolving {
            return;
        }
        node.resolved_at = now.mono;
        match self.resolver.request(i, &node.name) {
            Some(answer) => self.apply_address(answer),
            None => node.resolving = true,
        }
    }

    /// Takes a lookup's answer: a new address gets a fresh socket.
    fn apply_address(&mut self, answer: Answer) {
        let i = answer.node;
        let Some(node) = self.nodes.get_mut(i) else {
            return;
        };
        node.resolving = false;
        let addr = match answer.result {
            Ok(addr) => addr,
            Err(e) => {
                if node.addr.is_none() {
                    log::warn!("gossip: cannot resolve overwatch node {}: {e}", node.name);
                }
                node.io_error = Some(e);
                return;
            }
        };
        if node.addr == Some(addr) && node.udp.is_some() {
            return;
        }
        if let Some(mut old) = node.udp.take() {
            let _ = self.poll.registry().deregister(&mut old);
        }
        if let Some(mut old) = node.tcp.take() {
            let _ = self.poll.registry().deregister(&mut old.stream);
        }
        node.addr = Some(addr);
        let sock = UdpSocket::bind(local_for(addr)).and_then(|s| {
            s.connect(addr)?;
            Ok(s)
        });
        match sock {
            Ok(mut s) => {
                if self
                    .poll
                    .registry()
                    .register(&mut s, udp_token(i), Interest::READABLE)
                    .is_ok()
                {
                    node.udp = Some(s);
                }
            }
            Err(e) => node.io_error = Some(format!("udp socket for {addr}: {e}")),
        }
    }

    fn send(&mut self, i: usize, outs: Vec<Outgoing>, now: Now) {
        for o in outs {
            let node = &mut self.nodes[i];
            if o.tcp {
                self.send_tcp(i, o.bytes, now);
                continue;
            }
            let Some(udp) = node.udp.as_ref() else {
                continue;
            };
            if let Err(e) = udp.send(&o.bytes) {
                node.io_error = Some(format!("sending to {}: {e}", node.name));
            }
        }
    }

    fn send_tcp(&mut self, i: usize, packet: Vec<u8>, now: Now) {
        let node = &mut self.nodes[i];
        let Some(addr) = node.addr else { return };
        if node.tcp.is_none() {
            match TcpStream::connect(addr) {
                Ok(mut stream) => {
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, tcp_token(i), interest)
                        .is_err()
                    {
                        return;
                    }
                    node.tcp = Some(Tcp {
                        stream,
                        frames: FrameReader::new(),
                        wbuf: Vec::new(),
                    });
                }
                Err(e) => {
                    node.io_error = Some(format!("tcp connect to {addr}: {e}"));
                    return;
                }
            }
        }
        if let Some(t) = node.tcp.as_mut() {
            if t.wbuf.len() > 2 * MAX_FRAME {
                // The node does not read; retransmission will resend.
                return;
            }
            frame(&packet, &mut t.wbuf);
        }
        // Writable fires once the connect completes; on an established
        // connection write now.
        self.tcp_ready(i, false, now);
    }

    fn tcp_ready(&mut self, i: usize, readable: bool, now: Now) {
        let Some(mut t) = self.nodes[i].tcp.take() else {
            return;
        };
        let mut open = flush_stream(&mut t.stream, &mut t.wbuf);
        let mut frames = Vec::new();
        while open && readable {
            match t.stream.read(&mut self.buf) {
                Ok(0) => open = false,
                Ok(n) => {
                    let bytes = self.buf.get(..n).unwrap_or_default();
                    if let Err(e) = t.frames.feed(bytes, MAX_FRAME, &mut frames) {
                        self.nodes[i].io_error = Some(format!("{}: {e}", self.nodes[i].name));
                        open = false;
                    }
                }
                Err(e) if would_block(&e) => break,
                Err(e) if interrupted(&e) => continue,
                Err(_) => open = false,
            }
        }
        if open {
            self.nodes[i].tcp = Some(t);
        } else {
            let _ = self.poll.registry().deregister(&mut t.stream);
        }
        for f in frames {
            self.receive(i, &f, now);
        }
    }

    fn read_udp(&mut self, i: usize, now: Now) {
        loop {
            let Some(udp) = self.nodes[i].udp.as_ref() else {
                return;
            };
            match udp.recv(&mut self.buf) {
                Ok(n) => {
                    let packet = self.buf.get(..n).unwrap_or_default().to_vec();
                    self.receive(i, &packet, now);
                }
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => continue,
                Err(e) => {
                    // e.g. ICMP port unreachable on the connected socket
                    self.nodes[i].io_error = Some(format!("{}: {e}", self.nodes[i].name));
                    continue;
                }
            }
        }
    }

    fn receive(&mut self, i: usize, packet: &[u8], now: Now) {
        let node = &mut self.nodes[i];
        for ev in node.session.on_datagram(packet, now) {
            match ev {
                SessionEvent::Registered => {
                    let addr = node.addr.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
                    log::info!("registered with overwatch {addr}");
                    node.io_error = None;
                    let _ = self.events.send(AgentEvent::Registered {
                        node: node.name.clone(),
                        addr,
                    });
                }
                SessionEvent::Rejected { reason, detail } => {
                    log::warn!(
                        "overwatch {} rejected this agent: {reason}: {detail}",
                        node.name
                    );
                    let _ = self.events.send(AgentEvent::Rejected {
                        node: node.name.clone(),
                        reason,
                        detail,
                    });
                }
                SessionEvent::Acked { .. } => node.io_error = None,
            }
        }
        let outs = node.session.tick(now);
        self.send(i, outs, now);
    }

    fn publish(&mut self) {
        let mut status = Vec::with_capacity(self.nodes.len());
        let (mut sent, mut failed) = (0, 0);
        for n in &mut self.nodes {
            let mut s = n.session.status().clone();
            if s.last_error.is_none() {
                s.last_error = n.io_error.clone();
            }
            if n.was_connected && !s.connected {
                log::warn!("lost contact with overwatch {}", n.name);
                let _ = self.events.send(AgentEvent::Disconnected {
                    node: n.name.clone(),
                });
            }
            n.was_connected = s.connected;
            let c = n.session.counters();
            sent += c.heartbeats_sent;
            failed += c.heartbeat_failures;
            status.push((n.name.clone(), s));
        }
        *self.shared.status.lock().unwrap_or_else(|e| e.into_inner()) = status;
        *self
            .shared
            .heartbeats_sent
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = (sent, failed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::Policy;
    use crate::gossip::overwatch::{OverwatchEvent, server};
    use crate::snapshot::SnapshotCell;
    use std::collections::{BTreeMap, BTreeSet};

    /// Regression (issue 9, bug 4): node names were resolved with the
    /// blocking resolver inside the poll loop, so one lookup that hung
    /// stalled heartbeats to every node. Here the lookup of the first
    /// node never returns while the test runs; the second node, an IP
    /// literal, must still register and get heartbeats.
    #[test]
    fn a_hanging_lookup_does_not_stall_heartbeats_to_other_nodes() {
        let policy = Policy {
            keyring: Keyring::from_raw(&[[3; 32]]),
            agent_tokens: BTreeMap::from([("app.example.com".to_string(), "tok".to_string())]),
            known_services: BTreeSet::from(["app.example.com".to_string()]),
            ..Policy::default()
        };
        let (etx, erx) = crossbeam_channel::unbounded();
        let cell = Arc::new(SnapshotCell::new(policy));
        let mut srv =
            server::start("127.0.0.1:0".parse().expect("addr"), cell, etx).expect("server");
        let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
        let (asked_tx, asked_rx) = crossbeam_channel::unbounded::<String>();
        let hang: ResolveFn = Arc::new(move |name: &str| {
            let _ = asked_tx.send(name.to_string());
            // blocks until the test ends (the sender is dropped)
            let _ = gate_rx.recv();
            Err(io::Error::other("gave up"))
        });
        let now = Now::read();
        let cfg = ClientConfig {
            nodes: vec![
                "overwatch-slow.invalid:7946".into(),
                format!("127.0.0.1:{}", srv.local_addr().port()),
            ],
            identity: Arc::new(Identity::generate("eu-a", now.wall_secs(), 86_400).expect("id")),
            keyring: Keyring::from_raw(&[[3; 32]]),
            token: "tok".into(),
            region: "eu".into(),
            agent_id: "eu-a".into(),
            heartbeat_interval: Duration::from_millis(50),
            missed_threshold: 3,
            time_window_ms: 60_000,
        };
        let (atx, _arx) = crossbeam_channel::unbounded();
        let mut cl = start_with_resolver(cfg, atx, hang).expect("client");
        let asked = asked_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the slow name went to the resolver");
        assert_eq!(asked, "overwatch-slow.invalid:7946");
        // Count heartbeats from the literal node while the lookup hangs.
        let mut heartbeats = 0;
        while heartbeats < 5 {
            match erx.recv_timeout(Duration::from_secs(10)) {
                Ok(OverwatchEvent::Heartbeat { .. }) => heartbeats += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        assert_eq!(heartbeats, 5, "heartbeats stalled behind the lookup");
        assert!(cl.alive());
        let status = cl.node_status();
        assert!(status[1].1.connected, "{status:?}");
        assert!(!status[0].1.connected);
        cl.stop();
        srv.stop();
        drop(gate_tx);
    }
}
