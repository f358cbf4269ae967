//! The UDP responder threads: blocking batched receive, no poll.
//!
//! Each thread owns one socket of the SO_REUSEPORT group on the listen
//! address and does nothing but answer it, so it needs no readiness
//! polling: the socket blocks, with a receive timeout of `TICK`, and each
//! wake-up is one recvmmsg (MSG_WAITFORONE: wait for the first datagram,
//! take the rest that are queued) and one sendmmsg for all the answers —
//! two system calls per wake-up, however many queries it carries (gdnsd's
//! design; a mio loop costs an epoll_wait more and must probe for EAGAIN).
//! A short batch means the queue was empty, so the next call sleeps.
//!
//! Per wake-up, not per query: one heartbeat (`Liveness`, also beaten on
//! the receive timeout when idle), one stop-flag load and one snapshot
//! generation check. `stop` sets the flag and shuts the socket down for
//! reading, which wakes a blocked receive at once.
//!
//! With several threads, a classic BPF program on the reuseport group
//! picks the socket of each datagram at random, so every thread gets an
//! even share even when a few clients (few source ports) send everything;
//! the kernel's default 4-tuple hash would pin each client to one thread.

use super::responder::{Responder, Transport};
use super::server::{LoopCtl, TICK};
use super::stats::{self, DnsStats};
use super::table::DnsTable;
use super::udp_batch::Batch;
use crate::snapshot::SnapshotCell;
use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::Arc;

pub(crate) struct UdpLoop {
    pub sock: Arc<UdpSocket>,
    pub ctl: Arc<LoopCtl>,
    pub table: Arc<SnapshotCell<DnsTable>>,
    pub stats: Arc<DnsStats>,
    pub max_udp_size: u16,
    pub learned: Option<Arc<dyn super::learned::LearnedLookup>>,
    /// This thread's number, for its counter shard.
    pub index: usize,
}

/// Makes `sock` block with a receive timeout of `TICK`.
pub(crate) fn prepare(sock: &UdpSocket) -> io::Result<()> {
    sock.set_nonblocking(false)?;
    sock.set_read_timeout(Some(TICK))
}

/// Spreads the datagrams of a reuseport group of `n` sockets at random:
/// `return random % n` (SKF_AD_RANDOM). Attached to one socket, it applies
/// to the group. Best effort: without it the kernel hashes the 4-tuple.
pub(crate) fn spread_evenly(sock: &UdpSocket, n: usize) {
    if n < 2 {
        return;
    }
    let mut code = [
        libc::sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: (libc::SKF_AD_OFF + libc::SKF_AD_RANDOM) as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: n as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_A) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        },
    ];
    let prog = libc::sock_fprog {
        len: code.len() as u16,
        filter: code.as_mut_ptr(),
    };
    // SAFETY: prog points at a valid classic BPF program for the duration
    // of the call; the kernel copies it.
    let ret = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            &prog as *const libc::sock_fprog as *const libc::c_void,
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if ret != 0 {
        log::info!(
            "dns: cannot spread UDP evenly over {n} threads ({}); the kernel hashes clients instead",
            io::Error::last_os_error()
        );
    }
}

/// Wakes a thread blocked in the receive of `sock` (see `stop`).
pub(crate) fn wake(sock: &UdpSocket) {
    // SAFETY: the fd stays open while the Arc lives. On an unconnected UDP
    // socket Linux answers ENOTCONN but still marks it shut down for
    // reading and wakes the waiting receiver, which then returns 0.
    unsafe { libc::shutdown(sock.as_raw_fd(), libc::SHUT_RD) };
}

impl UdpLoop {
    pub fn run(self) {
        stats::bind_thread(self.index);
        let fd = self.sock.as_raw_fd();
        let mut reader = self.table.reader();
        let mut responder = Responder::new(self.max_udp_size);
        responder.set_learned(self.learned.clone());
        let mut batch = Batch::new(usize::from(self.max_udp_size.max(512)));
        let mut errors = 0u32;
        loop {
            let received = batch.recv(fd);
            let now = self.ctl.tick();
            if self.ctl.stopping() {
                return;
            }
            let n = match received {
                Ok(n) => {
                    errors = 0;
                    n
                }
                Err(e) if crate::netio::would_block(&e) => continue,
                Err(e) => {
                    // A queued socket error surfaces once; keep serving. A
                    // socket that only fails would spin: end the thread, so
                    // `alive()` reports it and the daemon is restarted.
                    log::debug!("dns: udp receive: {e}");
                    errors += 1;
                    if errors > 1000 {
                        log::error!("dns: udp receive keeps failing: {e}");
                        return;
                    }
                    continue;
                }
            };
            let table = reader.get();
            responder.set_now(now);
            for i in 0..n {
                let Some(d) = batch.datagram(i) else { continue };
                let (Some(peer), false) = (d.peer, d.truncated) else {
                    self.stats.count_dropped();
                    continue;
                };
                if let Some(answer) =
                    responder.respond(d.query, peer.ip(), Transport::Udp, table, &self.stats)
                    && !batch.set_answer(i, answer)
                {
                    self.stats.count_dropped();
                }
            }
            let failed = batch.send(fd);
            for _ in 0..failed {
                self.stats.count_dropped();
            }
        }
    }
}
