//! Gossip load generator for `scripts/bench/scale.sh` (SPEC §10): one
//! process simulating many agents, each with several backends, that
//! register with one real Overwatch and heartbeat at the default rate.
//!
//! Ignored, so `cargo test` skips it; the script runs it with `--ignored`
//! and these variables:
//!   BENCH_GOSSIP    the Overwatch's gossip address (UDP)
//!   BENCH_KEY       the gossip encryption key (base64)
//!   BENCH_TOKEN     the agent token (the same for every service)
//!   BENCH_STOP_FILE the generator stops when this file appears
//!   BENCH_AGENTS (10000), BENCH_BACKENDS (5), BENCH_RAMP (agents started
//!   per second, 1000), BENCH_MAX_SECS (900), BENCH_FIRST (0: the number of
//!   the first agent, so several generators can share one fleet when one
//!   process may not open enough sockets)
//! Every simulated agent is a real `AgentSession` (the protocol code the
//! agent daemon runs) with its own connected UDP socket, so replies find
//! their session by the socket they arrive on: the Overwatch answers from
//! its own session id, not the agent's. All sessions share one identity
//! (pins are per agent id) and run on one mio loop; a heap of deadlines
//! decides which session `tick` is due.

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use opengslb::backend::{BackendKey, BackendReport};
use opengslb::clock::Now;
use opengslb::gossip::Keyring;
use opengslb::gossip::agent::{AgentSession, Outgoing, SessionConfig, SessionEvent};
use opengslb::gossip::identity::Identity;

/// The bench schedules on the monotonic clock; the sessions also get the
/// wall clock for their message stamps.
fn now_ms() -> u64 {
    Now::read().mono.0
}
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set (run scripts/bench/scale.sh)"))
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Raises the open-file limit to its hard maximum: one socket per agent.
fn raise_nofile(need: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    assert!(
        lim.rlim_cur >= need,
        "open-file limit {} is below the {need} sockets needed",
        lim.rlim_cur
    );
}

struct Sim {
    session: AgentSession,
    sock: UdpSocket,
    /// The deadline queued in the heap for this session.
    scheduled: u64,
}

#[derive(Default, Debug)]
struct Totals {
    registered_events: u64,
    rejected: u64,
    acks: u64,
    sent: u64,
    send_would_block: u64,
    send_errors: u64,
    too_big: u64,
    received: u64,
}

fn backends_of(i: u64, per_agent: u64) -> Vec<BackendReport> {
    // One host per agent (10.a.b.c, unique), one backend per service.
    let n = i + 1;
    let address = std::net::Ipv4Addr::new(10, (n >> 16) as u8, (n >> 8) as u8, n as u8).into();
    (0..per_agent)
        .map(|k| BackendReport {
            key: BackendKey::new(&format!("svc{k}.bench.test"), address, 8080),
            weight: 1,
            healthy: true,
            draining: false,
            drain_reason: None,
            last_error: None,
        })
        .collect()
}

fn send(sim: &Sim, out: Vec<Outgoing>, t: &mut Totals) {
    for o in out {
        if o.tcp {
            t.too_big += 1;
            continue;
        }
        match sim.sock.send(&o.bytes) {
            Ok(_) => t.sent += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => t.send_would_block += 1,
            Err(_) => t.send_errors += 1,
        }
    }
}

fn reschedule(sim: &mut Sim, i: usize, heap: &mut BinaryHeap<Reverse<(u64, usize)>>) {
    let d = sim.session.next_deadline().0;
    if d != sim.scheduled {
        sim.scheduled = d;
        if d != u64::MAX {
            heap.push(Reverse((d, i)));
        }
    }
}

#[test]
#[ignore = "benchmark; run by scripts/bench/scale.sh"]
fn gossip_load() {
    let target: SocketAddr = env("BENCH_GOSSIP").parse().expect("BENCH_GOSSIP");
    let keyring = Keyring::from_base64(&[env("BENCH_KEY")]).expect("BENCH_KEY");
    let token = env("BENCH_TOKEN");
    let stop_file = PathBuf::from(env("BENCH_STOP_FILE"));
    let agents = env_num("BENCH_AGENTS", 10_000);
    let per_agent = env_num("BENCH_BACKENDS", 5);
    let ramp = env_num("BENCH_RAMP", 1000).max(1);
    let max_ms = env_num("BENCH_MAX_SECS", 900) * 1000;
    let first = env_num("BENCH_FIRST", 0);
    raise_nofile(agents + 64);

    let start = now_ms();
    let identity = Arc::new(
        Identity::generate("bench-load", Now::read().wall_secs(), 30 * 86_400).expect("identity"),
    );
    let mut poll = Poll::new().expect("poll");
    let mut events = Events::with_capacity(1024);
    let mut sims: Vec<Sim> = Vec::with_capacity(agents as usize);
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut t = Totals::default();
    let mut buf = vec![0u8; 2048];
    let mut next_report = start + 5_000;
    let mut all_registered_at: Option<u64> = None;
    println!(
        "simulating {agents} agents x {per_agent} backends against {target}, {ramp} new agents/s"
    );

    loop {
        let now = now_ms();
        // Ramp: agent i starts at start + i / ramp seconds.
        while (sims.len() as u64) < agents && start + sims.len() as u64 * 1000 / ramp <= now {
            let i = sims.len();
            let n = first + i as u64;
            let cfg = SessionConfig {
                agent_id: format!("bench-{n:05}"),
                region: "bench".into(),
                token: token.clone(),
                identity: Arc::clone(&identity),
                keyring: keyring.clone(),
                heartbeat_interval: Duration::from_secs(1),
                missed_threshold: 3,
                time_window_ms: 60_000,
            };
            let mut sock = UdpSocket::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
            sock.connect(target).expect("connect");
            poll.registry()
                .register(&mut sock, Token(i), Interest::READABLE)
                .expect("register socket");
            let mut sim = Sim {
                session: AgentSession::new(cfg, Now::read()),
                sock,
                scheduled: u64::MAX,
            };
            let out = sim
                .session
                .set_state(&backends_of(n, per_agent), Now::read());
            send(&sim, out, &mut t);
            reschedule(&mut sim, i, &mut heap);
            sims.push(sim);
        }
        // Timers.
        while let Some(&Reverse((due, i))) = heap.peek() {
            if due > now {
                break;
            }
            heap.pop();
            let Some(sim) = sims.get_mut(i) else { continue };
            if sim.scheduled != due {
                continue;
            }
            sim.scheduled = u64::MAX;
            let out = sim.session.tick(Now::read());
            send(sim, out, &mut t);
            reschedule(sim, i, &mut heap);
        }
        if now >= next_report {
            next_report += 5_000;
            let registered = sims.iter().filter(|s| s.session.is_registered()).count() as u64;
            let (hb, hb_fail) = sims.iter().fold((0, 0), |(a, b), s| {
                let c = s.session.counters();
                (a + c.heartbeats_sent, b + c.heartbeat_failures)
            });
            println!(
                "STATUS t={}s started={} registered={registered} heartbeats_sent={hb} heartbeat_failures={hb_fail} {t:?}",
                (now - start) / 1000,
                sims.len()
            );
            if registered == agents && all_registered_at.is_none() {
                all_registered_at = Some(now);
                println!(
                    "ALL_REGISTERED after {:.1} s",
                    (now - start) as f64 / 1000.0
                );
            }
            if stop_file.exists() || now - start > max_ms {
                break;
            }
        }
        // Sleep until the next timer, agent start or report.
        let mut wake = next_report;
        if let Some(&Reverse((due, _))) = heap.peek() {
            wake = wake.min(due);
        }
        if (sims.len() as u64) < agents {
            wake = wake.min(start + sims.len() as u64 * 1000 / ramp);
        }
        let timeout = Duration::from_millis(wake.saturating_sub(now_ms()));
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            assert_eq!(e.kind(), ErrorKind::Interrupted, "poll: {e}");
            continue;
        }
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(sim) = sims.get_mut(i) else { continue };
            loop {
                match sim.sock.recv(&mut buf) {
                    Ok(n) => {
                        t.received += 1;
                        for e in sim.session.on_datagram(&buf[..n], Now::read()) {
                            match e {
                                SessionEvent::Registered => t.registered_events += 1,
                                SessionEvent::Rejected { reason, detail } => {
                                    t.rejected += 1;
                                    if t.rejected <= 5 {
                                        println!("rejected agent {i}: {reason}: {detail}");
                                    }
                                }
                                SessionEvent::Acked { .. } => t.acks += 1,
                            }
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    // ECONNREFUSED while the Overwatch is down: try later.
                    Err(_) => break,
                }
            }
            let out = sim.session.tick(Now::read());
            send(sim, out, &mut t);
            reschedule(sim, i, &mut heap);
        }
    }
    let (hb, hb_fail) = sims.iter().fold((0, 0), |(a, b), s| {
        let c = s.session.counters();
        (a + c.heartbeats_sent, b + c.heartbeat_failures)
    });
    let registered = sims.iter().filter(|s| s.session.is_registered()).count();
    println!(
        "FINAL registered={registered} heartbeats_sent={hb} heartbeat_failures={hb_fail} re_registrations={} {t:?}",
        t.registered_events.saturating_sub(agents)
    );
    assert!(
        all_registered_at.is_some(),
        "not every simulated agent registered"
    );
    assert_eq!(t.too_big, 0, "a registration did not fit one datagram");
}
