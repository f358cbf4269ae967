//! The kernel side of learned latency: one netlink sock_diag dump of the
//! established TCP sockets (`inet_diag_req_v2` with `INET_DIAG_INFO`), and
//! the pure parser that turns the reply bytes into (local port, peer
//! address, smoothed round trip, socket cookie) samples.
//!
//! Only `libc` is used: a `NETLINK_SOCK_DIAG` datagram socket, one request
//! per address family, replies read until `NLMSG_DONE`. The parser is a
//! plain function over bytes so that it is unit-tested (and fuzzed) without
//! a kernel; any malformed length ends the parse instead of panicking.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
/// `struct inet_diag_msg`: family, state, timer, retrans, the 48-byte
/// socket id, then expires, rqueue, wqueue, uid, inode.
const DIAG_MSG_LEN: usize = 72;
const INET_DIAG_INFO: u16 = 2;
/// `tcpi_rtt` (microseconds) in `struct tcp_info`.
const TCPI_RTT_OFFSET: usize = 68;
const TCP_ESTABLISHED: u32 = 1;

/// One established connection as the kernel reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnSample {
    pub local_port: u16,
    pub local: IpAddr,
    pub peer: IpAddr,
    /// Smoothed round trip, microseconds.
    pub rtt_us: u32,
    /// The kernel's socket cookie: stable for the connection's life.
    pub cookie: u64,
}

/// What a dump reply said after its samples.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More messages follow in the next read.
    More,
    /// `NLMSG_DONE`: the dump is complete.
    Done,
    /// `NLMSG_ERROR` with this errno (positive).
    Error(i32),
}

/// The request for one family (`AF_INET` or `AF_INET6`): established TCP
/// sockets with `INET_DIAG_INFO`.
pub fn request(family: u8, seq: u32) -> [u8; NLMSG_HDRLEN + 56] {
    let mut b = [0u8; NLMSG_HDRLEN + 56];
    b[0..4].copy_from_slice(&((NLMSG_HDRLEN + 56) as u32).to_ne_bytes());
    b[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    b[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    let r = NLMSG_HDRLEN;
    b[r] = family;
    b[r + 1] = libc::IPPROTO_TCP as u8;
    b[r + 2] = 1 << (INET_DIAG_INFO - 1);
    b[r + 4..r + 8].copy_from_slice(&(1u32 << TCP_ESTABLISHED).to_ne_bytes());
    b
}

fn u16_ne(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_ne(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Parses one read of netlink replies, calling `out` for each established
/// TCP socket that carried `INET_DIAG_INFO`. Truncated or inconsistent
/// messages end the parse (`More`): nothing here can panic.
pub fn parse(buf: &[u8], out: &mut dyn FnMut(ConnSample)) -> Parsed {
    let mut at = 0;
    while at + NLMSG_HDRLEN <= buf.len() {
        let (Some(len), Some(kind)) = (u32_ne(buf, at), u16_ne(buf, at + 4)) else {
            break;
        };
        let len = len as usize;
        if len < NLMSG_HDRLEN || at + len > buf.len() {
            break;
        }
        let body = &buf[at + NLMSG_HDRLEN..at + len];
        match kind {
            NLMSG_DONE => return Parsed::Done,
            NLMSG_ERROR => {
                let errno = u32_ne(body, 0).map_or(0, |e| e as i32);
                return if errno == 0 {
                    Parsed::Done
                } else {
                    Parsed::Error(-errno)
                };
            }
            SOCK_DIAG_BY_FAMILY => {
                if let Some(s) = parse_diag_msg(body) {
                    out(s);
                }
            }
            _ => {}
        }
        at += align4(len);
    }
    Parsed::More
}

fn parse_diag_msg(b: &[u8]) -> Option<ConnSample> {
    if b.len() < DIAG_MSG_LEN || b[1] as u32 != TCP_ESTABLISHED {
        return None;
    }
    let family = b[0] as i32;
    let id = &b[4..52];
    let local_port = u16::from_be_bytes([id[0], id[1]]);
    let addr = |raw: &[u8]| -> Option<IpAddr> {
        if family == libc::AF_INET {
            let v4: [u8; 4] = raw[0..4].try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(v4)))
        } else if family == libc::AF_INET6 {
            let v6: [u8; 16] = raw.try_into().ok()?;
            let a = Ipv6Addr::from(v6);
            Some(a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4))
        } else {
            None
        }
    };
    let local = addr(&id[4..20])?;
    let peer = addr(&id[20..36])?;
    let cookie = u32_ne(id, 40)? as u64 | (u32_ne(id, 44)? as u64) << 32;
    // Attributes follow the fixed part, each 4-aligned.
    let mut at = DIAG_MSG_LEN;
    while at + 4 <= b.len() {
        let len = u16_ne(b, at)? as usize;
        let kind = u16_ne(b, at + 2)?;
        if len < 4 || at + len > b.len() {
            return None;
        }
        if kind == INET_DIAG_INFO {
            let rtt_us = u32_ne(&b[at + 4..at + len], TCPI_RTT_OFFSET)?;
            return Some(ConnSample {
                local_port,
                local,
                peer,
                rtt_us,
                cookie,
            });
        }
        at += align4(len);
    }
    None
}

/// True when this process may read other sockets' TCP_INFO: root, or
/// `CAP_NET_ADMIN` in the effective set.
pub fn capable() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| cap_net_admin(&s))
}

/// `CAP_NET_ADMIN` (bit 12) in the `CapEff:` line of `/proc/self/status`.
pub fn cap_net_admin(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 12) != 0)
}

/// A netlink sock_diag socket, kept open across polls.
pub struct DiagSocket {
    fd: libc::c_int,
    seq: u32,
    buf: Vec<u8>,
}

impl DiagSocket {
    pub fn open() -> io::Result<DiagSocket> {
        // SAFETY: plain socket(2); the fd is owned by the returned value.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                libc::NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(DiagSocket {
            fd,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Dumps the established TCP sockets of both families.
    pub fn dump(&mut self, out: &mut dyn FnMut(ConnSample)) -> io::Result<()> {
        for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
            self.seq = self.seq.wrapping_add(1);
            let req = request(family, self.seq);
            // SAFETY: req is a valid buffer of the given length; the kernel
            // is the default destination of a netlink socket.
            let n = unsafe { libc::send(self.fd, req.as_ptr().cast(), req.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            loop {
                // SAFETY: buf is valid for its length.
                let n =
                    unsafe { libc::recv(self.fd, self.buf.as_mut_ptr().cast(), self.buf.len(), 0) };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(e);
                }
                match parse(&self.buf[..n as usize], out) {
                    Parsed::More if n > 0 => {}
                    Parsed::More | Parsed::Done => break,
                    Parsed::Error(errno) => return Err(io::Error::from_raw_os_error(errno)),
                }
            }
        }
        Ok(())
    }
}

impl Drop for DiagSocket {
    fn drop(&mut self) {
        // SAFETY: fd is ours and closed once.
        unsafe { libc::close(self.fd) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply message for one socket, as the kernel lays it out.
    pub(crate) fn diag_msg(family: u8, lport: u16, local: &[u8], peer: &[u8], rtt: u32) -> Vec<u8> {
        let mut m = vec![0u8; NLMSG_HDRLEN + DIAG_MSG_LEN];
        m[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        let b = NLMSG_HDRLEN;
        m[b] = family;
        m[b + 1] = TCP_ESTABLISHED as u8;
        m[b + 4..b + 6].copy_from_slice(&lport.to_be_bytes());
        m[b + 6..b + 8].copy_from_slice(&40000u16.to_be_bytes());
        m[b + 8..b + 8 + local.len()].copy_from_slice(local);
        m[b + 24..b + 24 + peer.len()].copy_from_slice(peer);
        m[b + 44..b + 48].copy_from_slice(&7u32.to_ne_bytes());
        let mut info = vec![0u8; 104];
        info[TCPI_RTT_OFFSET..TCPI_RTT_OFFSET + 4].copy_from_slice(&rtt.to_ne_bytes());
        m.extend_from_slice(&((4 + info.len()) as u16).to_ne_bytes());
        m.extend_from_slice(&INET_DIAG_INFO.to_ne_bytes());
        m.extend_from_slice(&info);
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        m
    }

    #[test]
    fn parses_v4_and_mapped_v6_sockets_then_done() {
        let mut buf = diag_msg(
            libc::AF_INET as u8,
            80,
            &[10, 0, 0, 1],
            &[192, 0, 2, 7],
            12_500,
        );
        let mut mapped = [0u8; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12..].copy_from_slice(&[198, 51, 100, 9]);
        buf.extend(diag_msg(libc::AF_INET6 as u8, 443, &[0; 16], &mapped, 800));
        let mut done = [0u8; 20];
        done[0..4].copy_from_slice(&20u32.to_ne_bytes());
        done[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        buf.extend_from_slice(&done);
        let mut got = Vec::new();
        assert_eq!(parse(&buf, &mut |s| got.push(s)), Parsed::Done);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].local_port, 80);
        assert_eq!(got[0].peer, "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_eq!(got[0].rtt_us, 12_500);
        assert_eq!(got[0].cookie, 7);
        assert_eq!(got[1].peer, "198.51.100.9".parse::<IpAddr>().unwrap());
        assert_eq!(got[1].local_port, 443);
    }

    #[test]
    fn errors_and_garbage_never_panic() {
        let mut err = vec![0u8; 20];
        err[0..4].copy_from_slice(&20u32.to_ne_bytes());
        err[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        err[16..20].copy_from_slice(&(-libc::EPERM).to_ne_bytes());
        assert_eq!(parse(&err, &mut |_| {}), Parsed::Error(libc::EPERM));
        let good = diag_msg(libc::AF_INET as u8, 80, &[10, 0, 0, 1], &[192, 0, 2, 7], 1);
        for cut in 0..good.len() {
            parse(&good[..cut], &mut |_| {
                panic!("a truncated message yields nothing")
            });
        }
        let mut bad = good.clone();
        bad[NLMSG_HDRLEN + DIAG_MSG_LEN..NLMSG_HDRLEN + DIAG_MSG_LEN + 2]
            .copy_from_slice(&2u16.to_ne_bytes());
        assert_eq!(parse(&bad, &mut |_| panic!("bad attribute")), Parsed::More);
    }

    #[test]
    fn the_kernel_reports_an_established_loopback_connection() {
        if !capable() {
            println!("SKIPPED: sockdiag_real_dump: not root and no CAP_NET_ADMIN");
            return;
        }
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let _c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_s, peer) = l.accept().unwrap();
        let mut sock = DiagSocket::open().unwrap();
        let mut seen = Vec::new();
        sock.dump(&mut |s| seen.push(s)).unwrap();
        let ours = seen
            .iter()
            .find(|s| s.local_port == port && s.peer == peer.ip())
            .expect("the accepted connection is dumped");
        assert!(ours.rtt_us > 0 && ours.cookie != 0, "{ours:?}");
    }

    #[test]
    fn cap_net_admin_bit() {
        assert!(cap_net_admin("Name:\tx\nCapEff:\t0000000000001000\n"));
        assert!(!cap_net_admin("CapEff:\t0000000000000000\n"));
        assert!(!cap_net_admin("nothing"));
    }
}
