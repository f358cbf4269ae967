//! The API cannot be starved by slow clients (issue 12, hardening): 200
//! connections that trickle a header byte every 300 ms or sit idle, from
//! two other loopback addresses, and `GET /api/v1/ready` from 127.0.0.1
//! still answers 200; then every slow connection is cut by the server
//! (the per-client cap at once, the idle deadline, the age limit), counted
//! as closed sockets. The latency under this load is measured by
//! scripts/bench/api_slow.sh, not asserted here.

use crate::util::api::http;
use crate::util::ops::*;
use crate::util::*;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

/// A TCP connection from `source` (any 127/8 address works on loopback).
fn connect_from(source: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (source, to.ip()) else {
        return Err(std::io::Error::other("IPv4 only"));
    };
    let sin = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a fresh socket, bound and connected with valid sockaddr_in
    // values, then owned by the TcpStream (closed on error).
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let (from, dest) = (sin(src, 0), sin(dst, to.port()));
        if libc::bind(fd, (&from as *const libc::sockaddr_in).cast(), len) != 0
            || libc::connect(fd, (&dest as *const libc::sockaddr_in).cast(), len) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

struct Slow {
    stream: TcpStream,
    trickle: bool,
    closed: bool,
}

#[test]
fn ready_answers_while_200_slow_clients_are_connected_and_they_are_cut() {
    let dir = TempDir::new("starve");
    let ow = Overwatch::start(&dir, "ow-starve", &OwOptions::default());
    let api: SocketAddr = ow.api.trim_start_matches("http://").parse().unwrap();
    let trickler: IpAddr = [127, 0, 0, 2].into();
    let idler: IpAddr = [127, 0, 0, 3].into();
    let mut slow = Vec::new();
    for i in 0..200 {
        let trickle = i % 2 == 0;
        let Ok(mut stream) = connect_from(if trickle { trickler } else { idler }, api) else {
            return skip(
                "api_starvation",
                "cannot bind a client to 127.0.0.2/127.0.0.3 on this host",
            );
        };
        // Both start a request; the idle ones then send nothing more.
        stream
            .write_all(b"GET /api/v1/ready HTTP/1.1\r\nHost: x\r\n")
            .expect("head start");
        stream.set_nonblocking(true).expect("nonblocking");
        slow.push(Slow {
            stream,
            trickle,
            closed: false,
        });
    }

    for _ in 0..3 {
        // `http` waits up to 10 s for the answer.
        let ready = http(api, "GET", "/api/v1/ready", &[], b"");
        assert_eq!(ready.status, 200, "{}", ready.body);
    }

    let give_up = Instant::now() + Duration::from_secs(90);
    let mut next_byte = Instant::now();
    while slow.iter().any(|s| !s.closed) && Instant::now() < give_up {
        let write_now = Instant::now() >= next_byte;
        if write_now {
            next_byte = Instant::now() + Duration::from_millis(300);
        }
        for s in slow.iter_mut().filter(|s| !s.closed) {
            if s.trickle && write_now && s.stream.write(b"a").is_err() {
                s.closed = true;
                continue;
            }
            let mut buf = [0u8; 512];
            loop {
                match s.stream.read(&mut buf) {
                    Ok(0) => s.closed = true,
                    // An error answer (408/400) before the close.
                    Ok(_) => continue,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => s.closed = true,
                }
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let closed = |trickle: bool| {
        slow.iter()
            .filter(|s| s.trickle == trickle && s.closed)
            .count()
    };
    assert_eq!((closed(true), closed(false)), (100, 100));
    // And the API still answers once they are gone.
    assert_eq!(http(api, "GET", "/api/v1/ready", &[], b"").status, 200);
}
