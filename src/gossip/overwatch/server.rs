//! The Overwatch gossip listener: one mio loop on a named thread that owns
//! the UDP socket and the TCP listener on the same port, feeds every
//! datagram and frame to `OverwatchProtocol`, sends the replies back the
//! way the request came, and hands events to the registry channel.
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

use super::coalesce::{Coalescer, Sent};
use super::{Counters, OverwatchConfig, OverwatchEvent, OverwatchProtocol};
use crate::clock::{Liveness, Mono, Now};
use crate::gossip::io::{
    FrameReader, MAX_FRAME, MAX_PREAUTH_FRAME, PreAuthBudget, PreAuthLimits, flush_stream, frame,
};
use crate::gossip::wire::MAX_RECV_DATAGRAM;
use crate::gossip::{Policy, RejectReason};
use crate::netio::{interrupted, would_block};
use crate::snapshot::SnapshotCell;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::HashMap;
use std::io::{self, Read};
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
    /// Pre-auth TCP connections and the bytes they hold, after each turn.
    preauth: Mutex<(usize, usize)>,
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
        heartbeats: Coalescer::new(),
        preauth: PreAuthBudget::new(PreAuthLimits::default()),
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

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    frames: FrameReader,
    wbuf: Vec<u8>,
    last_active: Mono,
    writable: bool,
    /// Nothing on it decrypted yet: it counts against the budget.
    preauth: bool,
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
    /// Heartbeats the registry had no room for, newest per agent.
    heartbeats: Coalescer,
    preauth: PreAuthBudget,
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
                Err(e) if interrupted(&e) => events.clear(),
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
            *self
                .shared
                .preauth
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = self.preauth.in_use();
            if *self.proto.counters() != before {
                let mut c = self
                    .shared
                    .counters
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                *c = self.proto.counters().clone();
            }
            timeout = now.mono.until(next_housekeeping);
            if !self.heartbeats.is_empty() {
                // Come back soon to hand them over once the registry has room.
                timeout = timeout.min(Duration::from_millis(20));
            }
        }
    }

    fn emit(&mut self, events: Vec<OverwatchEvent>) {
        let tx = &self.events;
        let mut sink = |agent_id: &str, at: Now| heartbeat_to(tx, agent_id, at);
        for e in events {
            match e {
                OverwatchEvent::Heartbeat { agent_id, at } => {
                    self.heartbeats.offer(agent_id, at, &mut sink)
                }
                // State, registrations, leaves and rejections are never
                // dropped: they wait for room.
                other => {
                    if tx.send(other).is_err() {
                        log::debug!("gossip: registry channel closed, event dropped");
                    }
                }
            }
        }
    }

    /// Hands coalesced heartbeats to the registry while it has room.
    fn flush_heartbeats(&mut self) {
        let tx = &self.events;
        self.heartbeats
            .flush(&mut |agent_id: &str, at: Now| heartbeat_to(tx, agent_id, at));
    }

    fn read_udp(&mut self, policy: &Policy, now: Now) {
        loop {
            let (n, src) = match self.udp.recv_from(&mut self.buf) {
                Ok(x) => x,
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => continue,
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
                    if !self.preauth.admit(peer.ip()) {
                        log::debug!("gossip: pre-auth connection cap reached, refusing {peer}");
                        self.proto.count_oversized();
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
                                frames: FrameReader::new(),
                                wbuf: Vec::new(),
                                last_active: now.mono,
                                writable: false,
                                preauth: true,
                            },
                        );
                    } else {
                        self.preauth.release(peer.ip(), 0);
                    }
                }
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => continue,
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
            open = flush_stream(&mut conn.stream, &mut conn.wbuf);
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
            self.close(conn);
        }
    }

    fn close(&mut self, mut conn: Conn) {
        if conn.preauth {
            self.preauth.release(conn.peer.ip(), conn.frames.buffered());
        }
        let _ = self.poll.registry().deregister(&mut conn.stream);
    }

    /// Reads what is there and handles complete frames; false to close.
    /// A pre-auth connection reads no more than its budget has room for.
    fn read_conn(&mut self, conn: &mut Conn, policy: &Policy, now: Now) -> bool {
        let ip = conn.peer.ip();
        loop {
            let (limit, room) = if conn.preauth {
                (MAX_PREAUTH_FRAME, self.preauth.room(ip))
            } else {
                (MAX_FRAME, self.buf.len())
            };
            let want = conn.frames.wants().min(room).min(self.buf.len());
            if want == 0 {
                log::debug!("gossip: pre-auth memory cap reached, closing {}", conn.peer);
                self.proto.count_oversized();
                return false;
            }
            let Some(chunk) = self.buf.get_mut(..want) else {
                return false;
            };
            match conn.stream.read(chunk) {
                Ok(0) => return false,
                Ok(n) => {
                    conn.last_active = now.mono;
                    let before = conn.frames.buffered();
                    let mut frames = Vec::new();
                    let fed =
                        conn.frames
                            .feed(self.buf.get(..n).unwrap_or_default(), limit, &mut frames);
                    if conn.preauth {
                        self.preauth.rebuffer(ip, before, conn.frames.buffered());
                    }
                    if let Err(e) = fed {
                        log::debug!("gossip: {} from {}", e, conn.peer);
                        self.proto.count_oversized();
                        return false;
                    }
                    for f in frames {
                        let out = self.proto.on_packet(&f, conn.peer, now, policy);
                        if out.authentic && conn.preauth {
                            conn.preauth = false;
                            self.preauth.release(ip, conn.frames.buffered());
                        }
                        for reply in &out.replies {
                            frame(reply, &mut conn.wbuf);
                        }
                        self.emit(out.events);
                    }
                    if conn.wbuf.len() > 2 * MAX_FRAME {
                        return false;
                    }
                }
                Err(e) if would_block(&e) => return true,
                Err(e) if interrupted(&e) => continue,
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
            if let Some(c) = self.conns.remove(&t) {
                self.close(c);
            }
        }
    }
}

/// Offers one heartbeat to the registry channel without blocking.
fn heartbeat_to(tx: &Sender<OverwatchEvent>, agent_id: &str, at: Now) -> Sent {
    let e = OverwatchEvent::Heartbeat {
        agent_id: agent_id.to_string(),
        at,
    };
    match tx.try_send(e) {
        Ok(()) => Sent::Taken,
        Err(TrySendError::Full(_)) => Sent::Full,
        Err(TrySendError::Disconnected(_)) => Sent::Closed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::Keyring;
    use std::io::Write;
    use std::net::TcpStream as StdTcp;
    use std::time::Instant;

    /// Polls a condition the loop thread makes true, for up to 10 s.
    fn eventually(mut f: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        f()
    }

    /// The server closed the connection (EOF or reset), as seen by a read.
    fn closed(c: &mut StdTcp) -> bool {
        c.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let mut b = [0u8; 1];
        match std::io::Read::read(c, &mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
        }
    }

    /// Regression: a peer without the key could make the listener buffer
    /// about 1024 connections × 4 MiB. Now pre-auth connections are
    /// capped per source, their frames at 1 MiB, their bytes at 1 MiB per
    /// source (and 4 MiB in total).
    #[test]
    fn peers_without_the_key_cannot_make_the_listener_hold_much() {
        let policy = Policy {
            keyring: Keyring::from_raw(&[[5; 32]]),
            ..Policy::default()
        };
        let (tx, _rx) = crossbeam_channel::unbounded();
        let cell = Arc::new(SnapshotCell::new(policy));
        let mut srv = start("127.0.0.1:0".parse().expect("addr"), cell, tx).expect("start");
        let addr = srv.local_addr();
        let limits = PreAuthLimits::default();
        let mut conns: Vec<StdTcp> = (0..limits.conns_per_source)
            .map(|_| StdTcp::connect(addr).expect("connect"))
            .collect();
        assert!(eventually(|| srv.preauth_in_use().0 == 8));
        let mut ninth = StdTcp::connect(addr).expect("connect");
        assert!(eventually(|| srv.counters().oversized == 1));
        assert!(
            closed(&mut ninth),
            "the ninth connection of a source is refused"
        );

        // 256 KiB bodies of announced 1 MiB frames: three fit the 1 MiB
        // per-source budget, the fourth runs it out and is closed.
        let chunk = vec![0u8; 256 << 10];
        let held = |k: usize| k * (chunk.len() + 4);
        for (k, c) in conns.iter_mut().take(3).enumerate() {
            c.write_all(&(MAX_PREAUTH_FRAME as u32).to_be_bytes())
                .expect("head");
            c.write_all(&chunk).expect("body");
            assert!(eventually(|| srv.preauth_in_use().1 == held(k + 1)));
        }
        let c = &mut conns[3];
        c.write_all(&(MAX_PREAUTH_FRAME as u32).to_be_bytes())
            .expect("head");
        let _ = c.write_all(&chunk); // the server may close mid-write
        assert!(eventually(|| srv.counters().oversized == 2));
        assert!(closed(&mut conns[3]));
        assert_eq!(srv.preauth_in_use(), (7, held(3)));
        assert!(held(3) <= limits.bytes_per_source);

        // a frame announced over the pre-auth limit closes at once,
        // before any of its body is kept
        let c = &mut conns[4];
        c.write_all(&((MAX_PREAUTH_FRAME + 1) as u32).to_be_bytes())
            .expect("head");
        assert!(eventually(|| srv.counters().oversized == 3));
        assert!(closed(&mut conns[4]));
        assert_eq!(srv.preauth_in_use(), (6, held(3)));
        assert!(srv.alive());
        srv.stop();
    }
}
