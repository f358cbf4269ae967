//! The Overwatch gossip listener: one mio loop on a named thread that owns
//! the UDP socket and the TCP listener on the same port, feeds every
//! datagram and frame to `OverwatchProtocol`, sends the replies back the
//! way the request came, and hands events to the registry channel.
//!
//! TCP carries the same sealed packets as UDP, each prefixed with its u32
//! length, for what does not fit a datagram. Counters are published to a
//! shared snapshot after each batch so metrics never touch the loop.
//!
//! The loop reads `Now` once per turn and passes it down; it beats an
//! `Arc<Liveness>` with `now.mono` every turn, and stops through a
//! `StopHandle`, so the daemon needs no lock on the server to supervise it.

use super::{Counters, OverwatchConfig, OverwatchEvent, OverwatchProtocol};
use crate::clock::{Liveness, Mono, Now};
use crate::gossip::wire::{MAX_FRAME, MAX_RECV_DATAGRAM, frame, take_frames};
use crate::gossip::{Policy, RejectReason};
use crate::snapshot::SnapshotCell;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const UDP: Token = Token(0);
const LISTENER: Token = Token(1);
const WAKER: Token = Token(2);
const FIRST_CONN: usize = 3;
const MAX_CONNS: usize = 1024;
const CONN_IDLE_MS: u64 = 60_000;
const HOUSEKEEPING_MS: u64 = 1_000;
/// `alive()` is false when the loop has not turned for this long.
pub const ALIVE_WITHIN: Duration = Duration::from_secs(10);

enum Command {
    Forget(String),
    Stop,
}

#[derive(Default)]
struct Shared {
    counters: Mutex<Counters>,
    liveness: Arc<Liveness>,
    exited: AtomicBool,
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
        pending_heartbeats: HashMap::new(),
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

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    last_active: Mono,
    writable: bool,
}

struct Loop {
    poll: Poll,
    udp: UdpSocket,
    listener: TcpListener,
    conns: HashMap<Token, Conn>,
    next_token: usize,
    proto: OverwatchProtocol,
    policy: Arc<SnapshotCell<Policy>>,
    events: Sender<OverwatchEvent>,
    commands: Receiver<Command>,
    shared: Arc<Shared>,
    buf: Vec<u8>,
    /// Heartbeats the registry had no room for, newest per agent. The
    /// acks went out already; the registry gets the latest time as soon
    /// as it catches up, so an overloaded registry never stalls this
    /// thread into dropping datagrams (which would make agents register
    /// again and feed the overload).
    pending_heartbeats: HashMap<String, Now>,
}

impl Loop {
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        let mut policy = self.policy.reader();
        let mut next_housekeeping = Now::read().mono;
        let mut timeout = Duration::ZERO;
        loop {
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => events.clear(),
                Err(e) => return Err(e),
            }
            // One reading per turn, passed down to everything it does.
            let now = Now::read();
            self.shared.liveness.beat(now.mono);
            let before = self.proto.counters().clone();
            for event in events.iter() {
                match event.token() {
                    WAKER => {
                        while let Ok(cmd) = self.commands.try_recv() {
                            match cmd {
                                Command::Stop => return Ok(()),
                                Command::Forget(id) => self.proto.forget(&id),
                            }
                        }
                    }
                    UDP => self.read_udp(policy.get(), now),
                    LISTENER => self.accept(now),
                    token => self.conn_ready(
                        token,
                        event.is_readable(),
                        event.is_writable(),
                        policy.get(),
                        now,
                    ),
                }
            }
            if now.mono >= next_housekeeping {
                self.proto.expire(now, policy.get());
                self.close_idle(now.mono);
                next_housekeeping = now.mono.after(Duration::from_millis(HOUSEKEEPING_MS));
            }
            self.flush_heartbeats();
            if *self.proto.counters() != before {
                let mut c = self
                    .shared
                    .counters
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                *c = self.proto.counters().clone();
            }
            timeout = now.mono.until(next_housekeeping);
            if !self.pending_heartbeats.is_empty() {
                // Come back soon to hand them over once the registry has room.
                timeout = timeout.min(Duration::from_millis(20));
            }
        }
    }

    fn emit(&mut self, events: Vec<OverwatchEvent>) {
        self.flush_heartbeats();
        for e in events {
            match e {
                OverwatchEvent::Heartbeat { agent_id, at } => {
                    if !self.pending_heartbeats.is_empty() {
                        self.pending_heartbeats.insert(agent_id, at);
                        continue;
                    }
                    match self
                        .events
                        .try_send(OverwatchEvent::Heartbeat { agent_id, at })
                    {
                        Ok(()) => {}
                        Err(TrySendError::Full(OverwatchEvent::Heartbeat { agent_id, at })) => {
                            self.pending_heartbeats.insert(agent_id, at);
                        }
                        Err(_) => log::debug!("gossip: registry channel closed, event dropped"),
                    }
                }
                // State, registrations, leaves and rejections are never
                // dropped: they wait for room.
                other => {
                    if self.events.send(other).is_err() {
                        log::debug!("gossip: registry channel closed, event dropped");
                    }
                }
            }
        }
    }

    /// Hands coalesced heartbeats to the registry while it has room.
    fn flush_heartbeats(&mut self) {
        if self.pending_heartbeats.is_empty() {
            return;
        }
        let ids: Vec<String> = self.pending_heartbeats.keys().cloned().collect();
        for agent_id in ids {
            let Some(at) = self.pending_heartbeats.get(&agent_id).copied() else {
                continue;
            };
            match self.events.try_send(OverwatchEvent::Heartbeat {
                agent_id: agent_id.clone(),
                at,
            }) {
                Ok(()) => {
                    self.pending_heartbeats.remove(&agent_id);
                }
                Err(TrySendError::Full(_)) => return,
                Err(TrySendError::Disconnected(_)) => {
                    self.pending_heartbeats.clear();
                    return;
                }
            }
        }
    }

    fn read_udp(&mut self, policy: &Policy, now: Now) {
        loop {
            let (n, src) = match self.udp.recv_from(&mut self.buf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("gossip: udp receive: {e}");
                    continue;
                }
            };
            if n > MAX_RECV_DATAGRAM {
                self.proto.count_oversized();
                continue;
            }
            let Some(packet) = self.buf.get(..n) else {
                continue;
            };
            let out = self.proto.on_packet(packet, src, now, policy);
            for reply in &out.replies {
                if let Err(e) = self.udp.send_to(reply, src) {
                    log::debug!("gossip: udp send to {src}: {e}");
                }
            }
            self.emit(out.events);
        }
    }

    fn accept(&mut self, now: Now) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, peer)) => {
                    if self.conns.len() >= MAX_CONNS {
                        log::debug!("gossip: too many tcp connections, refusing {peer}");
                        continue;
                    }
                    let token = Token(self.next_token);
                    self.next_token = self.next_token.wrapping_add(1).max(FIRST_CONN);
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, token, Interest::READABLE)
                        .is_ok()
                    {
                        self.conns.insert(
                            token,
                            Conn {
                                stream,
                                peer,
                                rbuf: Vec::new(),
                                wbuf: Vec::new(),
                                last_active: now.mono,
                                writable: false,
                            },
                        );
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("gossip: accept: {e}");
                    return;
                }
            }
        }
    }

    fn conn_ready(
        &mut self,
        token: Token,
        readable: bool,
        writable: bool,
        policy: &Policy,
        now: Now,
    ) {
        let Some(mut conn) = self.conns.remove(&token) else {
            return;
        };
        let mut open = true;
        if readable {
            open = self.read_conn(&mut conn, policy, now);
        }
        if open && (writable || !conn.wbuf.is_empty()) {
            open = flush(&mut conn);
        }
        if open {
            let want_write = !conn.wbuf.is_empty();
            if want_write != conn.writable {
                let interest = if want_write {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                open = self
                    .poll
                    .registry()
                    .reregister(&mut conn.stream, token, interest)
                    .is_ok();
                conn.writable = want_write;
            }
        }
        if open {
            self.conns.insert(token, conn);
        } else {
            let _ = self.poll.registry().deregister(&mut conn.stream);
        }
    }

    /// Reads what is there and handles complete frames; false to close.
    fn read_conn(&mut self, conn: &mut Conn, policy: &Policy, now: Now) -> bool {
        loop {
            match conn.stream.read(&mut self.buf) {
                Ok(0) => return false,
                Ok(n) => {
                    conn.last_active = now.mono;
                    conn.rbuf
                        .extend_from_slice(self.buf.get(..n).unwrap_or_default());
                    let Ok(frames) = take_frames(&mut conn.rbuf) else {
                        self.proto.count_oversized();
                        return false;
                    };
                    for f in frames {
                        let out = self.proto.on_packet(&f, conn.peer, now, policy);
                        for reply in &out.replies {
                            frame(reply, &mut conn.wbuf);
                        }
                        self.emit(out.events);
                    }
                    if conn.wbuf.len() > 2 * MAX_FRAME {
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
    }

    fn close_idle(&mut self, now: Mono) {
        let idle: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| now.since(c.last_active) > Duration::from_millis(CONN_IDLE_MS))
            .map(|(t, _)| *t)
            .collect();
        for t in idle {
            if let Some(mut c) = self.conns.remove(&t) {
                let _ = self.poll.registry().deregister(&mut c.stream);
            }
        }
    }
}

/// Writes what the socket takes; false on error.
pub(crate) fn flush_stream(stream: &mut TcpStream, wbuf: &mut Vec<u8>) -> bool {
    while !wbuf.is_empty() {
        match stream.write(wbuf) {
            Ok(0) => return false,
            Ok(n) => {
                wbuf.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
    true
}

fn flush(conn: &mut Conn) -> bool {
    flush_stream(&mut conn.stream, &mut conn.wbuf)
}
