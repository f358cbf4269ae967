//! The DNS listeners: UDP responder threads and one TCP thread (I/O only).
//!
//! Each UDP thread (`udp`) owns its own socket bound to the same address
//! with SO_REUSEPORT, its own `Responder`, receive buffers and
//! `SnapshotReader` of the table, so threads share nothing on the hot path
//! but their own counter shard. The TCP thread is a mio loop (`tcp`).
//! Everything is bound before `start` returns, so the daemon may report
//! readiness right after. Each loop beats its `Liveness` at least once a
//! second; `alive()` (or `liveness()`) checks them for the systemd
//! watchdog.

use super::learned::LearnedLookup;
use super::stats::DnsStats;
use super::table::DnsTable;
use super::tcp::TcpLoop;
use super::udp::{self, UdpLoop};
use crate::clock::{Liveness, Now};
use crate::snapshot::SnapshotCell;
use mio::Waker;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Longest a loop sleeps without stamping its heartbeat.
pub(crate) const TICK: Duration = Duration::from_secs(1);
/// A loop whose heartbeat is older than this is considered stuck.
const ALIVE_WINDOW: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// UDP responder threads (at least one).
    pub threads: usize,
    pub tcp_idle_timeout: Duration,
    pub tcp_max_connections: usize,
    pub max_udp_size: u16,
    /// The agents' learned round trips for `learned_latency` (None = the
    /// algorithm falls back to geolocation, else round-robin).
    pub learned: Option<Arc<dyn LearnedLookup>>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("threads", &self.threads)
            .field("max_udp_size", &self.max_udp_size)
            .field("learned", &self.learned.is_some())
            .finish()
    }
}

/// Shared between a loop and the handle: stop flag and heartbeat.
pub(crate) struct LoopCtl {
    pub stop: AtomicBool,
    pub live: Arc<Liveness>,
}

impl LoopCtl {
    fn new() -> Arc<LoopCtl> {
        Arc::new(LoopCtl {
            stop: AtomicBool::new(false),
            live: Arc::new(Liveness::new()),
        })
    }

    /// Reads the clock once for this turn, beats the heartbeat with it and
    /// hands the reading on (the responder takes it for cookies and RRL).
    pub fn tick(&self) -> Now {
        let now = Now::read();
        self.live.beat(now.mono);
        now
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// How `stop` wakes a loop.
enum Wake {
    /// A mio loop (TCP).
    Waker(Arc<Waker>),
    /// A UDP thread blocked in its receive: shut the socket down.
    Shutdown(Arc<UdpSocket>),
}

struct LoopHandle {
    ctl: Arc<LoopCtl>,
    wake: Wake,
    thread: JoinHandle<()>,
}

pub struct DnsServer {
    local_addr: SocketAddr,
    loops: Vec<LoopHandle>,
}

impl DnsServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The heartbeats of every loop (UDP threads, then TCP), for a
    /// supervisor that checks them with `Liveness::fresh`.
    pub fn liveness(&self) -> Vec<Arc<Liveness>> {
        self.loops.iter().map(|l| Arc::clone(&l.ctl.live)).collect()
    }

    /// True when every loop is running and beat its heartbeat recently.
    pub fn alive(&self) -> bool {
        let now = Now::read().mono;
        self.loops
            .iter()
            .all(|l| !l.thread.is_finished() && l.ctl.live.fresh(now, ALIVE_WINDOW))
    }

    /// Wakes every loop, asks it to stop and joins it.
    pub fn stop(self) {
        for l in &self.loops {
            l.ctl.stop.store(true, Ordering::Release);
            match &l.wake {
                Wake::Waker(w) => {
                    let _ = w.wake();
                }
                Wake::Shutdown(sock) => udp::wake(sock),
            }
        }
        for l in self.loops {
            if l.thread.join().is_err() {
                log::error!("dns: a listener thread panicked");
            }
        }
    }
}

fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn set_int(
    fd: &OwnedFd,
    level: libc::c_int,
    opt: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    crate::netio::set_int_option(fd, level, opt, value)
}

/// A non-blocking socket with SO_REUSEPORT (and SO_REUSEADDR), bound to
/// `addr`; listening when `stream`.
pub(crate) fn bind_socket(addr: &SocketAddr, stream: bool) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let kind = if stream {
        libc::SOCK_STREAM
    } else {
        libc::SOCK_DGRAM
    };
    // SAFETY: plain socket(2) call; the fd is owned right away.
    let fd =
        check(unsafe { libc::socket(family, kind | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    set_int(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    set_int(&fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 0)?;
    }
    if !stream {
        // Best effort: a deeper queue absorbs bursts.
        let _ = set_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, 4 << 20);
        // Answers go out without DF and ignore path-MTU updates (as gdnsd
        // and Knot do): a spoofed ICMP "fragmentation needed" cannot shrink
        // our answers, and the send path skips the PMTU bookkeeping.
        let _ = if addr.is_ipv4() {
            set_int(
                &fd,
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                libc::IP_PMTUDISC_OMIT,
            )
        } else {
            set_int(
                &fd,
                libc::IPPROTO_IPV6,
                libc::IPV6_MTU_DISCOVER,
                libc::IPV6_PMTUDISC_OMIT,
            )
        };
    }
    let (sa, len) = sockaddr(addr);
    // SAFETY: sa holds a valid sockaddr of length len.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sa as *const _ as *const libc::sockaddr,
            len,
        )
    })
    .map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: {e}")))?;
    if stream {
        // SAFETY: fd is a bound stream socket.
        check(unsafe { libc::listen(fd.as_raw_fd(), 1024) })?;
    }
    Ok(fd)
}

fn bind_all(cfg: &ServerConfig) -> io::Result<(Vec<UdpSocket>, std::net::TcpListener)> {
    let threads = cfg.threads.max(1);
    let first = UdpSocket::from(bind_socket(&cfg.listen, false)?);
    let addr = first.local_addr()?;
    let mut udp = vec![first];
    for _ in 1..threads {
        udp.push(UdpSocket::from(bind_socket(&addr, false)?));
    }
    let tcp = std::net::TcpListener::from(bind_socket(&addr, true)?);
    Ok((udp, tcp))
}

/// Binds UDP and TCP on `cfg.listen` and starts the listener threads.
/// With port 0 the kernel picks one port, shared by UDP and TCP.
pub fn start(
    cfg: &ServerConfig,
    table: Arc<SnapshotCell<DnsTable>>,
    stats: Arc<DnsStats>,
) -> io::Result<DnsServer> {
    let mut attempt = 0;
    let (udp, tcp) = loop {
        match bind_all(cfg) {
            Ok(s) => break s,
            // Port 0: the UDP port the kernel chose may be taken for TCP.
            Err(e) if cfg.listen.port() == 0 && attempt < 8 => {
                log::debug!("dns: retrying bind after {e}");
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    };
    let local_addr = udp
        .first()
        .ok_or_else(|| io::Error::other("no UDP socket"))?
        .local_addr()?;
    if let Some(first) = udp.first() {
        udp::spread_evenly(first, udp.len());
    }
    stats.set_udp_threads(udp.len());
    let mut loops = Vec::new();
    for (index, sock) in udp.into_iter().enumerate() {
        udp::prepare(&sock)?;
        let sock = Arc::new(sock);
        let ctl = LoopCtl::new();
        let worker = UdpLoop {
            sock: Arc::clone(&sock),
            ctl: Arc::clone(&ctl),
            table: Arc::clone(&table),
            stats: Arc::clone(&stats),
            max_udp_size: cfg.max_udp_size,
            learned: cfg.learned.clone(),
            index,
        };
        let thread = std::thread::Builder::new()
            .name(format!("dns-udp-{index}"))
            .spawn(move || worker.run())?;
        loops.push(LoopHandle {
            ctl,
            wake: Wake::Shutdown(sock),
            thread,
        });
    }
    let tcp_loop = TcpLoop::new(
        mio::net::TcpListener::from_std(tcp),
        cfg,
        Arc::clone(&table),
        Arc::clone(&stats),
        LoopCtl::new(),
    )?;
    let (ctl, waker) = (tcp_loop.ctl(), tcp_loop.waker());
    let thread = std::thread::Builder::new()
        .name("dns-tcp".into())
        .spawn(move || tcp_loop.run())?;
    loops.push(LoopHandle {
        ctl,
        wake: Wake::Waker(waker),
        thread,
    });
    log::info!(
        "dns: listening on {local_addr} (udp x{}, tcp)",
        cfg.threads.max(1)
    );
    Ok(DnsServer { local_addr, loops })
}
