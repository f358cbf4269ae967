//! The listener's pre-auth caps over real loopback sockets.

use super::server::*;
use crate::gossip::io::{MAX_PREAUTH_FRAME, PreAuthLimits};
use crate::gossip::{Keyring, Policy};
use crate::snapshot::SnapshotCell;
use std::io;
use std::io::Write;
use std::net::TcpStream as StdTcp;
use std::sync::Arc;
use std::time::Duration;
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

/// The daemon supervises and stops the listener without a lock on it: a
/// liveness stamp beaten every turn and a stop handle for any thread.
#[test]
fn liveness_and_stop_need_no_lock_on_the_server() {
    let (tx, _rx) = crossbeam_channel::unbounded();
    let cell = Arc::new(SnapshotCell::new(Policy::default()));
    let mut srv = start("127.0.0.1:0".parse().expect("addr"), cell, tx).expect("start");
    let live = srv.liveness();
    let before = live.last();
    assert!(eventually(|| live.last() > before), "the loop beats");
    assert!(live.fresh(crate::clock::Now::read().mono, ALIVE_WITHIN));
    let stop = srv.stop_handle();
    std::thread::spawn(move || stop.stop())
        .join()
        .expect("stopper");
    assert!(eventually(|| !srv.alive()), "stopped from another thread");
    srv.stop(); // joins; a second stop is harmless
}

/// Regression (25,000 agents, SIGTERM): an event that must not be
/// dropped waited for room in the full registry channel with a plain
/// blocking send, so the loop never saw the stop request and the old
/// Overwatch did not exit. Now the wait ends at a stop request.
#[test]
fn a_stop_request_ends_the_wait_for_room_in_a_full_registry_channel() {
    use super::server_loop::{Waited, send_or_stop};
    use crate::gossip::RejectReason;
    use crate::gossip::overwatch::OverwatchEvent;
    let event = || OverwatchEvent::Rejected {
        agent_id: None,
        addr: "127.0.0.1:1".parse().expect("addr"),
        reason: RejectReason::TokenInvalid,
    };
    let (tx, rx) = crossbeam_channel::bounded(1);
    tx.send(event()).expect("fill");
    let (ctx, crx) = crossbeam_channel::unbounded();
    ctx.send(Command::Forget("a".into())).expect("forget");
    ctx.send(Command::Stop).expect("stop");
    let mut forgotten = Vec::new();
    let got = send_or_stop(&tx, &crx, event(), &mut |id| forgotten.push(id));
    assert_eq!(got, Waited::Stop);
    assert_eq!(forgotten, ["a"], "a forget met while waiting is applied");
    assert_eq!(rx.len(), 1, "the waiting event was not sent");

    // With room it is sent; with the registry gone it is dropped.
    assert_eq!(rx.recv().ok(), Some(event()));
    let mut none = |_: String| {};
    assert_eq!(send_or_stop(&tx, &crx, event(), &mut none), Waited::Sent);
    drop(rx);
    assert_eq!(send_or_stop(&tx, &crx, event(), &mut none), Waited::Closed);
}

/// The same through the running listener: an agent's registration is
/// rejected (a wrong token), the rejection event finds
/// the registry channel full, and `stop` still returns.
#[test]
fn the_listener_stops_while_the_registry_channel_is_full() {
    use crate::clock::Now;
    use crate::gossip::agent::AgentSession;
    use crate::gossip::sim;
    let (tx, rx) = crossbeam_channel::bounded(1);
    tx.send(crate::gossip::overwatch::OverwatchEvent::Leave {
        agent_id: "filler".into(),
    })
    .expect("fill");
    let cell = Arc::new(SnapshotCell::new(sim::policy()));
    let mut srv = start("127.0.0.1:0".parse().expect("addr"), cell, tx).expect("start");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let now_s = Now::read().wall_ms / 1000;
    let identity = crate::gossip::identity::Identity::generate("eu-a", now_s, 86_400);
    let mut cfg = sim::config("a1", Arc::new(identity.expect("identity")));
    cfg.token = "wrong".into();
    let mut agent = AgentSession::new(cfg, Now::read());
    let mut buf = vec![0u8; 65_536];
    let rejected = eventually(|| {
        for out in agent.tick(Now::read()) {
            sock.send_to(&out.bytes, srv.local_addr()).expect("send");
        }
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => agent
                .on_datagram(&buf[..n], Now::read())
                .iter()
                .any(|e| matches!(e, crate::gossip::agent::SessionEvent::Rejected { .. })),
            Err(_) => false,
        }
    });
    assert!(rejected, "the registration was rejected");
    // The reply went out before the event: the loop now waits for room.
    assert_eq!(rx.len(), 1);
    let (done_tx, done) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        srv.stop();
        let _ = done_tx.send(());
    });
    // Not a timing bound: without the fix `stop` never returns.
    assert!(
        done.recv_timeout(Duration::from_secs(60)).is_ok(),
        "stop returned while the registry channel was full"
    );
    drop(rx);
}
