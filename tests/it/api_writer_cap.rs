//! Slow writers from one source cannot stall the API (issue 12,
//! hardening). A client at 127.0.0.2 opens as many write requests whose
//! bodies never finish as the per-source writer cap allows (each holds a
//! writer thread), then as many more that are refused for want of a
//! writer (each answered 503, its unread body left on the connection).
//! While every one of those is still held open, `GET /api/v1/ready` and a
//! write from 127.0.0.1 are answered. Order and counts only: the slow
//! connections are shown still open after the fast requests completed
//! (the server cuts them itself later, `crate::httpguard`).

use crate::util::api::http;
use crate::util::ops::*;
use crate::util::slow::connect_from;
use crate::util::*;
use opengslb::api::server::MAX_WRITERS_PER_SOURCE;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// A write whose declared 2 KiB body never arrives in full: tiny_http
/// does not buffer it, so it needs a writer thread that waits for the body.
fn trickling_write(from: Ipv4Addr, api: SocketAddr) -> TcpStream {
    let mut s = connect_from(from, api).expect("connect");
    let head = format!(
        "PUT /api/v1/overrides/{SERVICE}/10.0.0.1:80 HTTP/1.1\r\nHost: x\r\n\
         Content-Type: application/json\r\nContent-Length: 2048\r\n\r\n{{"
    );
    s.write_all(head.as_bytes()).expect("head");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s
}

/// The status line the server sent on `s` so far (reads up to the end of
/// the head).
fn status_line(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    text.lines().next().unwrap_or("").to_string()
}

/// Whether the server has closed `s` (end-of-file or reset); data that is
/// waiting is read and ignored.
fn closed(mut s: &TcpStream) -> bool {
    s.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 4096];
    let gone = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    s.set_nonblocking(false).expect("blocking");
    gone
}

/// Whether the server has sent anything on `s` (or closed it).
fn answered(s: &TcpStream) -> bool {
    s.set_nonblocking(true).expect("nonblocking");
    let got = match s.peek(&mut [0u8; 1]) {
        Ok(_) => true,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    };
    s.set_nonblocking(false).expect("blocking");
    got
}

/// One more body byte on each held connection, so none goes idle.
fn keep_alive(held: &mut [TcpStream]) {
    for s in held {
        let _ = s.write_all(b" ");
    }
}

#[test]
fn slow_writers_from_one_source_do_not_stall_other_requests() {
    let dir = TempDir::new("writer-cap");
    let ow = Overwatch::start(
        &dir,
        "ow-writers",
        &OwOptions {
            // Writes from 127.0.0.2 must pass the ACL.
            tail: "  allowed_networks: [127.0.0.0/8]\n",
            ..OwOptions::default()
        },
    );
    let api: SocketAddr = ow.api.trim_start_matches("http://").parse().unwrap();
    let from = Ipv4Addr::new(127, 0, 0, 2);
    if connect_from(from, api).is_err() {
        return skip(
            "api_writer_cap",
            "cannot connect from 127.0.0.2 on this host",
        );
    }
    // Each held write must reach its own writer thread. A held write can
    // lose the race for a slot to a probe (then it is answered 503): such
    // a one is replaced, until the source is full of held writes only.
    let mut held: Vec<TcpStream> = Vec::new();
    wait_for("the source's writers full", Duration::from_secs(20), || {
        held.retain(|s| !answered(s));
        while held.len() < MAX_WRITERS_PER_SOURCE {
            held.push(trickling_write(from, api));
        }
        keep_alive(&mut held);
        let mut probe = connect_from(from, api).ok()?;
        probe
            .write_all(
                b"POST /api/v1/overwatch/validate HTTP/1.1\r\nHost: x\r\n\
                  Content-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .ok()?;
        probe.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
        let status = status_line(&mut probe);
        eprintln!("writer-cap probe: {status}");
        (status.starts_with("HTTP/1.1 503") && !held.iter().any(answered)).then_some(())
    });
    // Now the source's next writes are refused at once, their bodies
    // unread.
    let mut refused = 0;
    while refused < 4 {
        let mut s = trickling_write(from, api);
        let status = status_line(&mut s);
        assert!(status.starts_with("HTTP/1.1 503"), "{status}");
        held.push(s);
        refused += 1;
    }
    keep_alive(&mut held);
    // Everything the slow source holds is still open...
    let open_before = held.iter().filter(|s| !closed(s)).count();
    assert_eq!(open_before, MAX_WRITERS_PER_SOURCE + refused);
    // ...when another source reads and writes.
    let ready = http(api, "GET", "/api/v1/ready", &[], b"");
    assert_eq!(ready.status, 200, "{}", ready.body);
    let ok = http(api, "POST", "/api/v1/overwatch/validate", &[], b"");
    assert_eq!(ok.status, 200, "another source still writes: {}", ok.body);
    let ready = http(api, "GET", "/api/v1/ready", &[], b"");
    assert_eq!(ready.status, 200, "{}", ready.body);
    // And the slow ones were still held all along: the fast requests did
    // not wait for the server to cut them.
    let open_after = held.iter().filter(|s| !closed(s)).count();
    assert_eq!(open_after, MAX_WRITERS_PER_SOURCE + refused);
}
