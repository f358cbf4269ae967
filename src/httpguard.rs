//! Starvation protection shared by every tiny_http listener (the Overwatch
//! API, the agent API, the metrics listener): `bind` is the one way they
//! open their socket.
//!
//! tiny_http accepts connections on its own thread and never shows us the
//! socket, so the protection works around it in two layers:
//!
//! - A write deadline: `SO_SNDTIMEO` is set on the listening socket and
//!   Linux copies it into every socket `accept` returns (checked by a test
//!   below), so a client that stops reading its answer fails the write
//!   after `Limits::idle`. `SO_RCVTIMEO` cannot be used the same way: on a
//!   listening socket it also bounds `accept`, and tiny_http's accept
//!   thread gives up for good on the first error (a regression test pins
//!   this).
//! - A guard thread per listener that every `Limits::scan` lists the
//!   process's sockets accepted on that listener (`/proc/self/fd`, matched
//!   by local address, one per inode: tiny_http holds two descriptors per
//!   connection) and shuts down the ones
//!   beyond the limits: no data either way for `idle` (from the kernel's
//!   `TCP_INFO`: an idle keep-alive, a head or body that stalled), older
//!   than `max_age` (a client that trickles a byte now and then is never
//!   idle, but grows old), more than `per_source` from one client address
//!   (the newest go), more than `total` (the newest go). `shutdown(2)`
//!   does not close the descriptor, so whoever owns it sees end-of-file or
//!   an error and cleans up as for any client that went away. The decision
//!   is the pure [`decide`].
//!
//! Limits act after the fact (within one scan) rather than at `accept`,
//! which tiny_http does not let us hook; between scans a flood can hold a
//! few more sockets than the caps say.

use crossbeam_channel::{Receiver, Sender, bounded};
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The limits of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest a connection may go without data either way, and longest a
    /// write may block.
    pub idle: Duration,
    /// Longest a connection may stay open, however busy.
    pub max_age: Duration,
    /// Open connections from one client address.
    pub per_source: usize,
    /// Open connections in all.
    pub total: usize,
    /// How often the guard looks at the connections.
    pub scan: Duration,
}

/// The limits every daemon listener uses.
pub const LIMITS: Limits = Limits {
    idle: Duration::from_secs(10),
    max_age: Duration::from_secs(30),
    per_source: 32,
    total: 512,
    scan: Duration::from_secs(1),
};

/// Why a connection was shut down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    Idle,
    Age,
    Source,
    Total,
}

/// Connections shut down by the guard, by reason.
#[derive(Debug, Default)]
pub struct GuardStats {
    pub idle: AtomicU64,
    pub age: AtomicU64,
    pub source: AtomicU64,
    pub total: AtomicU64,
}

impl GuardStats {
    fn count(&self, cut: Cut) -> u64 {
        let counter = match cut {
            Cut::Idle => &self.idle,
            Cut::Age => &self.age,
            Cut::Source => &self.source,
            Cut::Total => &self.total,
        };
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// One open connection as the guard sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conn<K> {
    pub key: K,
    pub peer: IpAddr,
    pub age: Duration,
    /// Time since data last went either way.
    pub idle: Duration,
}

/// Which connections to shut down: every one idle for `idle` or older
/// than `max_age`; of the
/// rest, the newest beyond `per_source` per client; then the newest beyond
/// `total`. The oldest keep their place, as if the newest had been
/// refused at `accept`.
pub fn decide<K: Copy>(conns: &[Conn<K>], limits: &Limits) -> Vec<(K, Cut)> {
    let mut cuts = Vec::new();
    let mut live: Vec<&Conn<K>> = Vec::new();
    for c in conns {
        if c.idle >= limits.idle {
            cuts.push((c.key, Cut::Idle));
        } else if c.age >= limits.max_age {
            cuts.push((c.key, Cut::Age));
        } else {
            live.push(c);
        }
    }
    // Oldest first.
    live.sort_by_key(|c| std::cmp::Reverse(c.age));
    let mut per_source: HashMap<IpAddr, usize> = HashMap::new();
    let mut kept = 0usize;
    for c in live {
        let n = per_source.entry(c.peer).or_default();
        if *n >= limits.per_source {
            cuts.push((c.key, Cut::Source));
        } else if kept >= limits.total {
            cuts.push((c.key, Cut::Total));
        } else {
            *n += 1;
            kept += 1;
        }
    }
    cuts
}

/// A running guard; dropping it stops its thread.
pub struct Guard {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<GuardStats>,
}

impl Guard {
    pub fn stats(&self) -> &GuardStats {
        &self.stats
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds `address` with the write deadline of `limits` inherited by every
/// accepted socket.
pub fn listener(address: SocketAddr, limits: &Limits) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(address)?;
    set_timeout(&listener, libc::SO_SNDTIMEO, limits.idle)?;
    Ok(listener)
}

/// A tiny_http server on `address` under `limits`, with its guard thread
/// (named `<name>-guard`).
pub fn bind(
    name: &str,
    address: SocketAddr,
    limits: Limits,
) -> io::Result<(tiny_http::Server, Guard)> {
    let listener = listener(address, &limits)?;
    let local = listener.local_addr()?;
    let server = tiny_http::Server::from_listener(listener, None)
        .map_err(|e| io::Error::other(format!("{address}: {e}")))?;
    let guard = start(name, local, limits)?;
    Ok((server, guard))
}

/// Starts the guard of the listener bound at `local`.
pub fn start(name: &str, local: SocketAddr, limits: Limits) -> io::Result<Guard> {
    let (stop, stopped) = bounded::<()>(0);
    let stats = Arc::new(GuardStats::default());
    let counts = Arc::clone(&stats);
    let thread = std::thread::Builder::new()
        .name(format!("{name}-guard"))
        .spawn(move || run(local, limits, &stopped, &counts))?;
    Ok(Guard {
        stop: Some(stop),
        thread: Some(thread),
        stats,
    })
}

fn run(local: SocketAddr, limits: Limits, stopped: &Receiver<()>, stats: &GuardStats) {
    // By inode: tiny_http holds two descriptors per connection.
    let mut first_seen: HashMap<u64, Instant> = HashMap::new();
    // Sockets already shut down, until their owner closes them.
    let mut done: HashSet<u64> = HashSet::new();
    let mut known = HashMap::new();
    let mut next = Instant::now();
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        // Nothing is ever sent: only the `Guard`'s drop ends the wait early.
        if !matches!(
            stopped.recv_timeout(wait),
            Err(crossbeam_channel::RecvTimeoutError::Timeout)
        ) {
            return;
        }
        next = Instant::now() + limits.scan;
        let now = Instant::now();
        let open = match accepted(local, &mut known) {
            Ok(open) => open,
            Err(e) => {
                log::warn!("{local}: cannot list connections, only deadlines apply: {e}");
                return;
            }
        };
        let inodes: HashSet<u64> = open.iter().map(|((_, ino), _)| *ino).collect();
        first_seen.retain(|ino, _| inodes.contains(ino));
        done.retain(|ino| inodes.contains(ino));
        let conns: Vec<Conn<(i32, u64)>> = open
            .iter()
            // Bug: a connection already shut down but not yet closed by
            // its owner was cut (and counted) again every scan.
            .filter(|((_, ino), _)| !done.contains(ino))
            .map(|&(key, peer)| Conn {
                key,
                peer,
                age: now.duration_since(*first_seen.entry(key.1).or_insert(now)),
                idle: idle_for(key.0),
            })
            .collect();
        for ((fd, ino), cut) in decide(&conns, &limits) {
            if !same_socket(fd, ino, local) {
                continue;
            }
            // Counted before the shutdown, so whoever sees the end of the
            // connection also sees it counted.
            let n = stats.count(cut);
            shut_down(fd);
            done.insert(ino);
            if n == 1 || n.is_power_of_two() {
                log::warn!("{local}: shut down a connection ({cut:?} limit; {n} so far)");
            }
        }
    }
}

fn set_timeout(listener: &TcpListener, option: libc::c_int, d: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: d.as_secs() as libc::time_t,
        tv_usec: d.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: setsockopt on our own open socket with a valid timeval.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A socket address from a `getsockname`/`getpeername` of `fd`.
fn sockaddr(fd: i32, peer: bool) -> Option<SocketAddr> {
    // SAFETY: a zeroed sockaddr_storage is valid; the calls write at most
    // `len` bytes into it and the family says which view to read.
    unsafe {
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let p = (&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr>();
        let rc = if peer {
            libc::getpeername(fd, p, &mut len)
        } else {
            libc::getsockname(fd, p, &mut len)
        };
        if rc != 0 {
            return None;
        }
        match ss.ss_family as libc::c_int {
            libc::AF_INET => {
                let a = &*(p as *const libc::sockaddr_in);
                let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                Some(SocketAddr::new(ip.into(), u16::from_be(a.sin_port)))
            }
            libc::AF_INET6 => {
                let a = &*(p as *const libc::sockaddr_in6);
                let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
                Some(SocketAddr::new(ip.into(), u16::from_be(a.sin6_port)))
            }
            _ => None,
        }
    }
}

/// Time since data last went either way on `fd` (zero when unknown, so
/// an unreadable socket is never cut for idleness).
fn idle_for(fd: i32) -> Duration {
    // SAFETY: getsockopt(TCP_INFO) writes at most `len` bytes into a
    // zeroed tcp_info.
    let info = unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let rc = libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        if rc != 0 {
            return Duration::ZERO;
        }
        info
    };
    let ms = info.tcpi_last_data_recv.min(info.tcpi_last_data_sent);
    Duration::from_millis(u64::from(ms))
}

/// The inode of `fd` when it is a socket.
fn socket_inode(fd: i32) -> Option<u64> {
    // SAFETY: fstat into a zeroed stat buffer.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        (libc::fstat(fd, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFSOCK)
            .then_some(st.st_ino)
    }
}

fn inode(fd: i32) -> Option<u64> {
    // SAFETY: fstat into a zeroed stat buffer.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        (libc::fstat(fd, &mut st) == 0).then_some(st.st_ino)
    }
}

/// Whether `fd` is a connection accepted on the listener at `local`.
fn accepted_on(fd: i32, local: SocketAddr) -> Option<IpAddr> {
    let mine = sockaddr(fd, false)?;
    let same = mine.port() == local.port()
        && (local.ip().is_unspecified() || canonical(mine.ip()) == canonical(local.ip()));
    if !same {
        return None;
    }
    // The listener itself has no peer.
    sockaddr(fd, true).map(|p| canonical(p.ip()))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The connections accepted on `local`, as ((fd, inode), client address),
/// one per socket however many descriptors refer to it. `known` caches
/// each socket's verdict by inode (sockets do not move), so a steady scan
/// costs one `fstat` per descriptor; it is pruned to what is open.
fn accepted(
    local: SocketAddr,
    known: &mut HashMap<u64, Option<IpAddr>>,
) -> io::Result<Vec<((i32, u64), IpAddr)>> {
    let mut out = Vec::new();
    let mut present = HashSet::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let Some(fd) = entry?.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Some(ino) = socket_inode(fd) else {
            continue;
        };
        if !present.insert(ino) {
            continue;
        }
        let verdict = *known.entry(ino).or_insert_with(|| accepted_on(fd, local));
        if let Some(peer) = verdict {
            out.push(((fd, ino), peer));
        }
    }
    known.retain(|ino, _| present.contains(ino));
    Ok(out)
}

/// Whether `fd` is still the socket the scan saw (same inode, still on
/// `local`): the descriptor may have been closed and reused since.
fn same_socket(fd: i32, ino: u64, local: SocketAddr) -> bool {
    inode(fd) == Some(ino) && accepted_on(fd, local).is_some()
}

fn shut_down(fd: i32) {
    // SAFETY: shutdown does not close or free the descriptor; its owner
    // sees end-of-file and closes it as usual.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpStream;

    fn conn(key: u32, last: u8, age_s: u64) -> Conn<u32> {
        Conn {
            key,
            peer: IpAddr::from([127, 0, 0, last]),
            age: Duration::from_secs(age_s),
            idle: Duration::ZERO,
        }
    }

    fn limits(per_source: usize, total: usize) -> Limits {
        Limits {
            per_source,
            total,
            ..LIMITS
        }
    }

    #[test]
    fn decide_cuts_idle_and_old_then_newest_per_source_then_newest_overall() {
        let idle = Conn {
            idle: LIMITS.idle,
            ..conn(7, 5, 1)
        };
        let conns = [
            idle,
            conn(1, 2, 40), // too old
            conn(2, 2, 5),
            conn(3, 2, 3),
            conn(4, 2, 1), // third from .2: over per_source
            conn(5, 3, 4),
            conn(6, 4, 0), // fourth kept overall: over total
        ];
        let cuts = decide(&conns, &limits(2, 3));
        assert_eq!(
            cuts,
            [
                (7, Cut::Idle),
                (1, Cut::Age),
                (4, Cut::Source),
                (6, Cut::Total)
            ]
        );
        assert!(decide(&conns[2..4], &limits(2, 3)).is_empty());
    }

    #[test]
    fn accepted_sockets_inherit_the_write_deadline() {
        let l = listener("127.0.0.1:0".parse().unwrap(), &LIMITS).unwrap();
        let _client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (accepted, _) = l.accept().unwrap();
        assert_eq!(accepted.write_timeout().unwrap(), Some(LIMITS.idle));
    }

    /// Bug: the first version set SO_RCVTIMEO on the listener too, which
    /// also bounds `accept`; after ten quiet seconds tiny_http's accept
    /// thread got EAGAIN and stopped for good, and the API with it.
    #[test]
    fn regression_accept_waits_longer_than_the_deadline() {
        let lim = Limits {
            idle: Duration::from_millis(50),
            ..LIMITS
        };
        let l = listener("127.0.0.1:0".parse().unwrap(), &lim).unwrap();
        let addr = l.local_addr().unwrap();
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            TcpStream::connect(addr).unwrap()
        });
        assert!(l.accept().is_ok());
        late.join().unwrap();
    }

    #[test]
    fn guard_shuts_down_idle_connections() {
        let lim = Limits {
            idle: Duration::from_millis(200),
            scan: Duration::from_millis(20),
            ..LIMITS
        };
        let l = listener("127.0.0.1:0".parse().unwrap(), &lim).unwrap();
        let local = l.local_addr().unwrap();
        let guard = start("test-idle", local, lim).unwrap();
        let mut client = TcpStream::connect(local).unwrap();
        let _held = l.accept().unwrap().0;
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(client.read(&mut [0u8; 1]).unwrap(), 0);
        assert_eq!(guard.stats().idle.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn guard_shuts_down_connections_over_the_per_source_cap() {
        let lim = Limits {
            per_source: 2,
            scan: Duration::from_millis(20),
            ..LIMITS
        };
        let l = listener("127.0.0.1:0".parse().unwrap(), &lim).unwrap();
        let local = l.local_addr().unwrap();
        let guard = start("test", local, lim).unwrap();
        let mut clients = Vec::new();
        let mut held = Vec::new();
        for _ in 0..5 {
            clients.push(TcpStream::connect(local).unwrap());
            let accepted = l.accept().unwrap().0;
            // Bug: a second descriptor (tiny_http keeps one to read, one
            // to write) made each connection count twice.
            held.push(accepted.try_clone().unwrap());
            held.push(accepted);
        }
        // A client whose server side was shut down reads end-of-file; the
        // others have nothing to read yet.
        for c in &clients {
            c.set_nonblocking(true).unwrap();
        }
        let closed = |clients: &[TcpStream]| {
            clients
                .iter()
                .filter(|c| {
                    let mut s: &TcpStream = c;
                    matches!(s.read(&mut [0u8; 1]), Ok(0))
                })
                .count()
        };
        let give_up = Instant::now() + Duration::from_secs(10);
        while closed(&clients) < 3 && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Several more scans: the cut ones are not cut (or counted) again.
        std::thread::sleep(lim.scan * 5);
        assert_eq!(closed(&clients), 3);
        assert_eq!(guard.stats().source.load(Ordering::Relaxed), 3);
        drop(held);
    }
}

/// The cost of one scan with many descriptors open (docs/benchmarks.md):
/// `cargo test --release --lib httpguard::scan_cost -- --ignored --nocapture`
/// (needs `ulimit -n` above 6100).
#[cfg(test)]
mod scan_cost {
    use super::*;

    #[test]
    #[ignore = "benchmark; see docs/benchmarks.md"]
    fn scan_with_6000_unrelated_sockets() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut keep = Vec::new();
        for _ in 0..3000 {
            keep.push(std::net::TcpStream::connect(other.local_addr().unwrap()).unwrap());
            keep.push(other.accept().unwrap().0);
        }
        let mut known = HashMap::new();
        let local = l.local_addr().unwrap();
        for i in 0..3 {
            let t = Instant::now();
            let found = accepted(local, &mut known).unwrap();
            println!("scan {i}: {:?} for {} sockets", t.elapsed(), keep.len());
            assert!(found.is_empty(), "{found:?}");
        }
        // The other listener's connections are found, once each.
        assert_eq!(
            accepted(other.local_addr().unwrap(), &mut HashMap::new())
                .unwrap()
                .len(),
            3000
        );
    }
}
