//! Failover timing harness for `scripts/bench/failover.sh` (SPEC §10):
//! drain file → address gone from the DNS answers of every Overwatch, and
//! agent SIGKILL → its backend out of DNS.
//!
//! Ignored, so `cargo test` skips it; the script starts the Overwatch
//! nodes and the HTTP backends, then runs it with `--ignored` and these
//! variables:
//!   BENCH_DNS          Overwatch DNS addresses, comma separated
//!   BENCH_NAME         the name to query (A)
//!   BENCH_IP           the agent backend's address
//!   BENCH_AGENT_CONFIG the agent's config file (the harness starts the
//!                      agent, so it can SIGKILL and restart it)
//!   BENCH_DRAIN_FILE   the agent's `drain_file`
//!   BENCH_LOG          where the agent's log goes
//!   BENCH_DRAINS (100), BENCH_KILLS (5)
//! Every Overwatch is asked over UDP once per millisecond; a time is taken
//! when the answer that no longer (or again) holds the address arrives,
//! and the figure for one event is the latest over all Overwatch nodes.
//! After each drain the nodes are polled for 100 ms more, and any answer
//! that holds the drained address again is counted.

#[path = "../util/mod.rs"]
mod util;

use crate::util::dnsclient::{self, A, Query};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(1);
/// How long a drained address is watched to make sure it stays out.
const HOLD: Duration = Duration::from_millis(100);

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set (run scripts/bench/failover.sh)"))
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A connected UDP socket to one Overwatch's DNS.
struct Prober {
    addr: SocketAddr,
    sock: UdpSocket,
    id: u16,
    query: Query,
    buf: Vec<u8>,
}

impl Prober {
    fn new(addr: SocketAddr, name: &str) -> Prober {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind prober");
        sock.connect(addr).expect("connect prober");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        Prober {
            addr,
            sock,
            id: 0,
            query: Query::new(name, A),
            buf: vec![0; 65535],
        }
    }

    /// Whether the answer holds `ip`; None when no answer came.
    fn has(&mut self, ip: &str) -> Option<bool> {
        self.id = self.id.wrapping_add(1);
        self.sock.send(&self.query.encode(self.id)).ok()?;
        loop {
            let n = self.sock.recv(&mut self.buf).ok()?;
            let reply = dnsclient::parse(&self.buf[..n])?;
            if reply.id == self.id {
                return Some(reply.addr_strings().iter().any(|a| a == ip));
            }
        }
    }
}

/// Polls every node each millisecond until all show `present` for `ip`;
/// returns the time until the last node did, or None after `timeout`.
fn until_all(
    probers: &mut [Prober],
    ip: &str,
    present: bool,
    timeout: Duration,
) -> Option<Duration> {
    let t0 = Instant::now();
    let mut done = vec![None; probers.len()];
    let mut tick = 0u32;
    loop {
        for (p, d) in probers.iter_mut().zip(done.iter_mut()) {
            if d.is_none() && p.has(ip) == Some(present) {
                *d = Some(t0.elapsed());
            }
        }
        if done.iter().all(Option::is_some) {
            return done.into_iter().flatten().max();
        }
        if t0.elapsed() > timeout {
            let missing: Vec<String> = probers
                .iter()
                .zip(&done)
                .filter(|(_, d)| d.is_none())
                .map(|(p, _)| p.addr.to_string())
                .collect();
            eprintln!("timed out: {ip} present={present} never seen on {missing:?}");
            return None;
        }
        tick += 1;
        let next = t0 + POLL * tick;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

/// Polls every node each millisecond for `hold`; counts the answers that
/// hold `ip` (a drained address must stay out).
fn reappearances(probers: &mut [Prober], ip: &str, hold: Duration) -> usize {
    let t0 = Instant::now();
    let mut seen = 0;
    let mut tick = 0u32;
    while t0.elapsed() < hold {
        for p in probers.iter_mut() {
            if p.has(ip) == Some(true) {
                seen += 1;
            }
        }
        tick += 1;
        let next = t0 + POLL * tick;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    seen
}

/// The agent process; killed when dropped.
struct Agent {
    child: Option<Child>,
    config: String,
    log: PathBuf,
}

impl Agent {
    fn start(config: &str, log: PathBuf) -> Agent {
        let mut a = Agent {
            child: None,
            config: config.to_string(),
            log,
        };
        a.spawn();
        a
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("agent log");
        let child = Command::new(env!("CARGO_BIN_EXE_opengslb"))
            .args(["--config", &self.config, "--mode", "agent"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start agent");
        self.child = Some(child);
    }

    /// SIGKILL (what `Child::kill` sends) and reap.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// xorshift64: jitter so events do not line up with heartbeats.
struct Jitter(u64);

impl Jitter {
    fn ms(&mut self, max: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_millis(self.0 % max)
    }
}

/// Nearest-rank percentile of sorted samples.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn summary(label: &str, samples: &[Duration]) {
    let mut s = samples.to_vec();
    s.sort();
    println!(
        "RESULT {label}: n={} p50={} ms p99={} ms max={} ms min={} ms",
        s.len(),
        ms(pct(&s, 50.0)),
        ms(pct(&s, 99.0)),
        ms(pct(&s, 100.0)),
        ms(pct(&s, 0.0)),
    );
}

#[test]
#[ignore = "benchmark; run by scripts/bench/failover.sh"]
fn drain_and_kill_failover() {
    let dns: Vec<SocketAddr> = env("BENCH_DNS")
        .split(',')
        .map(|a| a.trim().parse().expect("BENCH_DNS address"))
        .collect();
    let name = env("BENCH_NAME");
    let ip = env("BENCH_IP");
    let drain_file = PathBuf::from(env("BENCH_DRAIN_FILE"));
    let drains = env_num("BENCH_DRAINS", 100);
    let kills = env_num("BENCH_KILLS", 5);
    let mut probers: Vec<Prober> = dns.iter().map(|a| Prober::new(*a, &name)).collect();
    let mut jitter = Jitter(0x9E37_79B9_7F4A_7C15 ^ std::process::id() as u64);
    let _ = std::fs::remove_file(&drain_file);

    let mut agent = Agent::start(&env("BENCH_AGENT_CONFIG"), PathBuf::from(env("BENCH_LOG")));
    let up = until_all(&mut probers, &ip, true, Duration::from_secs(30))
        .expect("agent backend never appeared in DNS");
    println!(
        "agent backend in DNS of {} nodes after {} ms",
        dns.len(),
        ms(up)
    );
    std::thread::sleep(Duration::from_secs(2));

    // Drains.
    let mut gone = Vec::new();
    let mut back = Vec::new();
    let mut failures = 0;
    let mut reappeared = 0;
    for i in 0..drains {
        std::thread::sleep(Duration::from_millis(50) + jitter.ms(200));
        std::fs::write(&drain_file, format!("bench drain {i}\n")).expect("write drain file");
        match until_all(&mut probers, &ip, false, Duration::from_secs(10)) {
            Some(d) => gone.push(d),
            None => failures += 1,
        }
        reappeared += reappearances(&mut probers, &ip, HOLD);
        std::fs::remove_file(&drain_file).expect("remove drain file");
        match until_all(&mut probers, &ip, true, Duration::from_secs(10)) {
            Some(d) => back.push(d),
            None => failures += 1,
        }
    }
    println!("drain gone (ms): {}", list(&gone));
    summary("drain_file_to_gone_from_all", &gone);
    println!("drain back (ms): {}", list(&back));
    summary("drain_removed_to_back_in_all", &back);
    println!(
        "RESULT drained address seen again while the file existed: {reappeared} answers \
         (polled every 1 ms for {} ms after each drain)",
        HOLD.as_millis()
    );
    if failures > 0 {
        println!("RESULT drain timeouts: {failures}");
    }

    // SIGKILLs.
    let mut killed = Vec::new();
    for k in 0..kills {
        std::thread::sleep(Duration::from_secs(2) + jitter.ms(1000));
        agent.kill();
        match until_all(&mut probers, &ip, false, Duration::from_secs(15)) {
            Some(d) => killed.push(d),
            None => failures += 1,
        }
        if k + 1 < kills {
            agent.spawn();
            if until_all(&mut probers, &ip, true, Duration::from_secs(30)).is_none() {
                failures += 1;
                break;
            }
        }
    }
    println!("sigkill gone (ms): {}", list(&killed));
    summary("sigkill_to_gone_from_all", &killed);
    println!("RESULT timeouts: {failures}");
    assert_eq!(failures, 0, "some events never completed");
    assert_eq!(gone.len(), drains);
    assert_eq!(killed.len(), kills);
}

fn list(samples: &[Duration]) -> String {
    samples.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(" ")
}
