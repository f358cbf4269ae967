//! The agent gossip client's mio loop (thread `gossip-client`): one
//! connected UDP socket per Overwatch node, a TCP connection opened on
//! demand for packets that do not fit a datagram (framed by
//! `gossip::io`), name lookups posted to `gossip-resolve`. It reads `Now`
//! once per turn, beats the liveness, and moves bytes between the sockets
//! and the `AgentSession`s; the sessions decide what to send.

use super::client::{
    AgentEvent, Command, LEAVE_WAIT_MS, RESOLVE_REFRESH_MS, RESOLVE_RETRY_MS, Shared, WAKER,
};
use super::resolve::{Answer, Resolver};
use super::{AgentSession, Outgoing, SessionEvent};
use crate::clock::{Mono, Now};
use crate::gossip::io::{FrameReader, MAX_FRAME, flush_stream, frame};
use crate::netio::{interrupted, would_block};
use crossbeam_channel::{Receiver, Sender};
use mio::net::{TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub(super) struct Tcp {
    pub(super) stream: TcpStream,
    pub(super) frames: FrameReader,
    pub(super) wbuf: Vec<u8>,
}

pub(super) struct Node {
    pub(super) name: String,
    pub(super) addr: Option<SocketAddr>,
    pub(super) resolved_at: Mono,
    /// A lookup is on the resolver thread; no second one is asked for.
    pub(super) resolving: bool,
    pub(super) udp: Option<UdpSocket>,
    pub(super) tcp: Option<Tcp>,
    pub(super) session: AgentSession,
    pub(super) io_error: Option<String>,
    pub(super) was_connected: bool,
}

pub(super) struct Loop {
    pub(super) poll: Poll,
    pub(super) resolver: Resolver,
    pub(super) nodes: Vec<Node>,
    pub(super) commands: Receiver<Command>,
    pub(super) events: Sender<AgentEvent>,
    pub(super) shared: Arc<Shared>,
    pub(super) buf: Vec<u8>,
    pub(super) leave_deadline: Option<Mono>,
}

pub(super) fn udp_token(i: usize) -> Token {
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
    pub(super) fn run(&mut self) -> io::Result<()> {
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
                    Command::SetIdentity(id) => {
                        for node in &mut self.nodes {
                            node.session.set_identity(Arc::clone(&id), now);
                        }
                    }
                    Command::SetBackends(b) => {
                        for i in 0..self.nodes.len() {
                            let outs = self.nodes[i].session.set_state(&b, now);
                            self.send(i, outs, now);
                        }
                    }
                    Command::LatencyReport(entries) => {
                        for i in 0..self.nodes.len() {
                            let outs = self.nodes[i].session.latency_report(&entries, now);
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
    pub(super) fn request_address(&mut self, i: usize, now: Now) {
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
