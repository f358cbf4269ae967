//! The API cannot be starved by slow clients (issue 12, hardening): 200
//! connections that trickle a header byte every 300 ms or sit idle, from
//! two other loopback addresses, and `GET /api/v1/ready` from 127.0.0.1
//! still answers 200; then every slow connection is cut by the server
//! (`crate::httpguard`: the per-client cap at once, then the idle and age
//! limits), counted as closed sockets. The latency of `/ready` under this
//! load is measured by scripts/bench/timing.sh (`api_ready_slow_clients`),
//! not asserted here.

use crate::util::api::http;
use crate::util::ops::*;
use crate::util::slow;
use crate::util::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[test]
fn ready_answers_while_200_slow_clients_are_connected_and_they_are_cut() {
    let dir = TempDir::new("starve");
    let ow = Overwatch::start(&dir, "ow-starve", &OwOptions::default());
    let api: SocketAddr = ow.api.trim_start_matches("http://").parse().unwrap();
    let Ok(mut clients) = slow::open(200, api) else {
        return skip(
            "api_starvation",
            "cannot connect from 127.0.0.2/127.0.0.3 on this host",
        );
    };
    for _ in 0..3 {
        // `http` waits up to 10 s for the answer.
        let ready = http(api, "GET", "/api/v1/ready", &[], b"");
        assert_eq!(ready.status, 200, "{}", ready.body);
    }
    // The guard's age limit is 30 s; this only bounds a broken run.
    let give_up = Instant::now() + Duration::from_secs(90);
    let mut next_byte = Instant::now();
    while slow::closed(&clients) != (100, 100) && Instant::now() < give_up {
        let write = Instant::now() >= next_byte;
        if write {
            next_byte = Instant::now() + Duration::from_millis(300);
        }
        slow::tick(&mut clients, write);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(slow::closed(&clients), (100, 100));
    // And the API still answers once they are gone.
    assert_eq!(http(api, "GET", "/api/v1/ready", &[], b"").status, 200);
}
