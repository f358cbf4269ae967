//! The Overwatch gossip listener's mio loop (thread `gossip-server`): the
//! UDP socket and the TCP listener on one port. It reads `Now` once per
//! turn, beats the liveness, feeds every datagram and frame to
//! `OverwatchProtocol`, sends the replies back the way the request came,
//! hands events to the registry channel (heartbeats through the
//! `Coalescer`), and keeps pre-auth TCP connections within the
//! `PreAuthBudget`. The protocol decides; this loop only moves bytes.

use super::coalesce::{Coalescer, Sent};
use super::server::{
    CONN_IDLE_MS, Command, FIRST_CONN, HOUSEKEEPING_MS, LISTENER, MAX_CONNS, Shared, UDP, WAKER,
};
use super::{OverwatchEvent, OverwatchProtocol};
use crate::clock::{Mono, Now};
use crate::gossip::Policy;
use crate::gossip::io::{
    FrameReader, MAX_FRAME, MAX_PREAUTH_FRAME, PreAuthBudget, flush_stream, frame,
};
use crate::gossip::wire::{Header, MAX_RECV_DATAGRAM, PEER_SESSION};
use crate::netio::{interrupted, would_block};
use crate::snapshot::SnapshotCell;
use crossbeam_channel::{Receiver, Select, Sender, TrySendError};
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub(super) struct Conn {
    pub(super) stream: TcpStream,
    pub(super) peer: SocketAddr,
    pub(super) frames: FrameReader,
    pub(super) wbuf: Vec<u8>,
    pub(super) last_active: Mono,
    pub(super) writable: bool,
    /// Nothing on it decrypted yet: it counts against the budget.
    pub(super) preauth: bool,
}

pub(super) struct Loop {
    pub(super) poll: Poll,
    pub(super) udp: UdpSocket,
    pub(super) listener: TcpListener,
    pub(super) conns: HashMap<Token, Conn>,
    pub(super) next_token: usize,
    pub(super) proto: OverwatchProtocol,
    pub(super) policy: Arc<SnapshotCell<Policy>>,
    pub(super) events: Sender<OverwatchEvent>,
    pub(super) commands: Receiver<Command>,
    pub(super) shared: Arc<Shared>,
    pub(super) buf: Vec<u8>,
    /// Heartbeats the registry had no room for, newest per agent.
    pub(super) heartbeats: Coalescer,
    pub(super) preauth: PreAuthBudget,
    /// Packets of Overwatch peers (header session `PEER_SESSION`), handed
    /// unopened to the `peers` thread; `None` without `overwatch.peers`.
    pub(super) peer_packets: Option<Sender<(Vec<u8>, SocketAddr)>>,
    /// A stop request arrived while an event waited for room: the loop
    /// returns at the next check and drops what it would still emit.
    pub(super) stopping: bool,
}

impl Loop {
    pub(super) fn run(&mut self) -> io::Result<()> {
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
                    _ if self.stopping => return Ok(()),
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
            if self.stopping {
                return Ok(());
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
        if self.stopping {
            return;
        }
        let tx = &self.events;
        let mut sink = |agent_id: &str, at: Now| heartbeat_to(tx, agent_id, at);
        for e in events {
            match e {
                OverwatchEvent::Heartbeat { agent_id, at } => {
                    self.heartbeats.offer(agent_id, at, &mut sink)
                }
                // State, registrations, leaves and rejections are never
                // dropped: they wait for room, but not past a stop.
                other => {
                    let proto = &mut self.proto;
                    let mut forget = |id: String| proto.forget(&id);
                    match send_or_stop(tx, &self.commands, other, &mut forget) {
                        Waited::Sent => {}
                        Waited::Closed => {
                            log::debug!("gossip: registry channel closed, event dropped")
                        }
                        Waited::Stop => {
                            self.stopping = true;
                            return;
                        }
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
        while !self.stopping {
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
            if let Some(tx) = &self.peer_packets
                && Header::parse(packet).is_ok_and(|h| h.session_id == PEER_SESSION)
            {
                // Never blocks: a full queue drops (anti-entropy repairs).
                let _ = tx.try_send((packet.to_vec(), src));
                continue;
            }
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
        while !self.stopping {
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
        false
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

/// How `send_or_stop` ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Waited {
    Sent,
    /// The registry is gone; the event is dropped.
    Closed,
    /// A stop request came first (or the handle is gone); the event is
    /// dropped and the loop must return.
    Stop,
}

/// Sends an event that must not be dropped, waiting for room in the
/// bounded registry channel, but never past a stop request: at 25,000
/// agents a plain blocking send kept the loop from seeing `Command::Stop`
/// and SIGTERM hung. Forget requests met while waiting are applied.
pub(super) fn send_or_stop(
    tx: &Sender<OverwatchEvent>,
    commands: &Receiver<Command>,
    event: OverwatchEvent,
    forget: &mut dyn FnMut(String),
) -> Waited {
    loop {
        let mut sel = Select::new();
        let send = sel.send(tx);
        sel.recv(commands);
        let op = sel.select();
        if op.index() == send {
            return match op.send(tx, event) {
                Ok(()) => Waited::Sent,
                Err(_) => Waited::Closed,
            };
        }
        match op.recv(commands) {
            Ok(Command::Forget(id)) => forget(id),
            Ok(Command::Stop) | Err(_) => return Waited::Stop,
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
