//! DNS over TCP: one poll loop with the listener and every connection.
//!
//! Messages are framed by a 2-byte length (RFC 1035 §4.2.2, RFC 7766);
//! pipelined queries on one connection are answered in order. Reads go
//! until `WouldBlock`, partial writes are kept and finished when the socket
//! is writable again, and a connection is closed after `tcp_idle_timeout`
//! without traffic. Beyond `tcp_max_connections`, new connections are
//! accepted and closed at once so they do not sit in the backlog.

use super::responder::{Responder, Transport};
use super::server::{LoopCtl, ServerConfig, TICK};
use super::stats::DnsStats;
use super::table::DnsTable;
use crate::snapshot::SnapshotCell;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LISTENER: Token = Token(0);
const WAKE: Token = Token(1);
const FIRST_CONN: usize = 2;
/// Stop answering (and reading) while this much output is unsent.
const WRITE_BACKLOG: usize = 64 * 1024;

struct Conn {
    stream: TcpStream,
    peer: IpAddr,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
    eof: bool,
    deadline: Instant,
}

enum State {
    Open,
    Close,
}

pub(crate) struct TcpLoop {
    poll: Poll,
    waker: Arc<Waker>,
    listener: TcpListener,
    ctl: Arc<LoopCtl>,
    table: Arc<SnapshotCell<DnsTable>>,
    stats: Arc<DnsStats>,
    idle: Duration,
    max_conns: usize,
    max_udp_size: u16,
    learned: Option<Arc<dyn super::learned::LearnedLookup>>,
}

impl TcpLoop {
    pub fn new(
        mut listener: TcpListener,
        cfg: &ServerConfig,
        table: Arc<SnapshotCell<DnsTable>>,
        stats: Arc<DnsStats>,
        ctl: Arc<LoopCtl>,
    ) -> io::Result<TcpLoop> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(TcpLoop {
            poll,
            waker,
            listener,
            ctl,
            table,
            stats,
            idle: cfg.tcp_idle_timeout,
            max_conns: cfg.tcp_max_connections,
            max_udp_size: cfg.max_udp_size,
            learned: cfg.learned.clone(),
        })
    }

    pub fn ctl(&self) -> Arc<LoopCtl> {
        Arc::clone(&self.ctl)
    }

    pub fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut conns: Vec<Option<Conn>> = Vec::new();
        let mut open = 0usize;
        let mut reader = self.table.reader();
        let mut responder = Responder::new(self.max_udp_size);
        responder.set_learned(self.learned.clone());
        let mut scratch = vec![0u8; 16 * 1024];
        let _ = self.ctl.tick();
        loop {
            let now = Instant::now();
            let next = conns
                .iter()
                .flatten()
                .map(|c| c.deadline)
                .min()
                .map_or(TICK, |d| d.saturating_duration_since(now).min(TICK));
            if let Err(e) = self.poll.poll(&mut events, Some(next))
                && e.kind() != io::ErrorKind::Interrupted
            {
                log::error!("dns: tcp poll failed: {e}");
                return;
            }
            let clock = self.ctl.tick();
            if self.ctl.stopping() {
                return;
            }
            let now = Instant::now();
            responder.set_now(clock);
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(&mut conns, &mut open, now),
                    WAKE => {}
                    Token(t) => {
                        let idx = t.wrapping_sub(FIRST_CONN);
                        let Some(slot) = conns.get_mut(idx) else {
                            continue;
                        };
                        let Some(conn) = slot.as_mut() else { continue };
                        let table = reader.get();
                        let mut io = Io {
                            responder: &mut responder,
                            table,
                            stats: &self.stats,
                            scratch: &mut scratch,
                        };
                        if let State::Close = conn.drive(&mut io) {
                            self.close(slot, &mut open);
                        } else {
                            conn.deadline = now + self.idle;
                        }
                    }
                }
            }
            for slot in conns.iter_mut() {
                if slot.as_ref().is_some_and(|c| c.deadline <= now) {
                    self.close(slot, &mut open);
                }
            }
        }
    }

    fn close(&self, slot: &mut Option<Conn>, open: &mut usize) {
        if let Some(mut c) = slot.take() {
            let _ = self.poll.registry().deregister(&mut c.stream);
            *open = open.saturating_sub(1);
        }
    }

    fn accept(&self, conns: &mut Vec<Option<Conn>>, open: &mut usize, now: Instant) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, peer)) => {
                    if *open >= self.max_conns {
                        log::debug!("dns: tcp connection from {peer} refused: at the cap");
                        drop(stream);
                        continue;
                    }
                    let idx = match conns.iter().position(Option::is_none) {
                        Some(i) => i,
                        None => {
                            conns.push(None);
                            conns.len() - 1
                        }
                    };
                    let token = Token(idx + FIRST_CONN);
                    if let Err(e) = self.poll.registry().register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        log::warn!("dns: cannot register tcp connection: {e}");
                        continue;
                    }
                    if let Some(slot) = conns.get_mut(idx) {
                        *slot = Some(Conn {
                            stream,
                            peer: peer.ip(),
                            rbuf: Vec::with_capacity(512),
                            wbuf: Vec::new(),
                            wpos: 0,
                            eof: false,
                            deadline: now + self.idle,
                        });
                        *open += 1;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: try again on the next event.
                    log::warn!("dns: tcp accept: {e}");
                    return;
                }
            }
        }
    }
}

struct Io<'a> {
    responder: &'a mut Responder,
    table: &'a DnsTable,
    stats: &'a DnsStats,
    scratch: &'a mut [u8],
}

impl Conn {
    /// Answers complete frames, flushes, reads; until nothing moves.
    fn drive(&mut self, io: &mut Io<'_>) -> State {
        loop {
            self.answer_frames(io);
            while self.wpos < self.wbuf.len() {
                match self.stream.write(self.wbuf.get(self.wpos..).unwrap_or(&[])) {
                    Ok(0) => return State::Close,
                    Ok(n) => self.wpos += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return State::Close,
                }
            }
            if self.wpos == self.wbuf.len() {
                self.wbuf.clear();
                self.wpos = 0;
            } else {
                // Wait for WRITABLE before answering or reading more.
                return State::Open;
            }
            if self.has_frame() {
                // Answering stopped at the write backlog; go on before
                // reading, or those frames would wait for an event that
                // never comes.
                continue;
            }
            if self.eof {
                return State::Close;
            }
            match self.stream.read(io.scratch) {
                Ok(0) => self.eof = true,
                Ok(n) => self
                    .rbuf
                    .extend_from_slice(io.scratch.get(..n).unwrap_or(&[])),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return State::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return State::Close,
            }
        }
    }

    fn has_frame(&self) -> bool {
        match self.rbuf.get(..2) {
            Some(&[a, b]) => self.rbuf.len() >= 2 + usize::from(u16::from_be_bytes([a, b])),
            _ => false,
        }
    }

    fn answer_frames(&mut self, io: &mut Io<'_>) {
        // Drop what was already sent so a slow reader cannot grow wbuf.
        if self.wpos > 0 {
            self.wbuf.drain(..self.wpos.min(self.wbuf.len()));
            self.wpos = 0;
        }
        let mut start = 0;
        while self.wbuf.len() - self.wpos < WRITE_BACKLOG {
            let Some(rest) = self.rbuf.get(start..) else {
                break;
            };
            let Some(len) = rest
                .get(..2)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            else {
                break;
            };
            let Some(query) = rest.get(2..2 + len) else {
                break;
            };
            if let Some(answer) =
                io.responder
                    .respond(query, self.peer, Transport::Tcp, io.table, io.stats)
            {
                let n = u16::try_from(answer.len()).unwrap_or(u16::MAX);
                self.wbuf.extend_from_slice(&n.to_be_bytes());
                self.wbuf
                    .extend_from_slice(answer.get(..usize::from(n)).unwrap_or(answer));
            }
            start += 2 + len;
        }
        if start > 0 {
            self.rbuf.drain(..start.min(self.rbuf.len()));
        }
    }
}
