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
