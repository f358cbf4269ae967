//! Batched UDP receive and send with recvmmsg(2)/sendmmsg(2).
//!
//! One responder thread drains up to `BATCH` datagrams per system call and
//! sends the answers back in one call, which halves the syscalls per query
//! under load and costs nothing when idle (a batch of one). All buffers and
//! headers are allocated once per thread; the iovec and header pointers are
//! refreshed before each call, so the struct is free to move.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

pub(crate) const BATCH: usize = 32;
/// Largest query we accept over UDP; longer datagrams arrive truncated
/// (MSG_TRUNC) and are dropped.
const QUERY_MAX: usize = 4096;

pub(crate) struct Batch {
    queries: Vec<u8>,
    answers: Vec<u8>,
    answer_max: usize,
    answer_len: [usize; BATCH],
    addrs: [libc::sockaddr_storage; BATCH],
    iov: [libc::iovec; BATCH],
    hdrs: [libc::mmsghdr; BATCH],
    received: usize,
}

/// One received datagram.
pub(crate) struct Datagram<'a> {
    pub query: &'a [u8],
    pub peer: Option<SocketAddr>,
    pub truncated: bool,
}

fn zeroed<T>() -> T {
    // SAFETY: only used for libc structs that are plain old data, for which
    // all-zero bytes are a valid value.
    unsafe { std::mem::zeroed() }
}

pub(crate) fn to_socket_addr(sa: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(sa.ss_family) {
        libc::AF_INET => {
            // SAFETY: ss_family says this storage holds a sockaddr_in.
            let sin: &libc::sockaddr_in = unsafe { &*(sa as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: ss_family says this storage holds a sockaddr_in6.
            let sin6: &libc::sockaddr_in6 =
                unsafe { &*(sa as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

impl Batch {
    pub fn new(answer_max: usize) -> Batch {
        Batch {
            queries: vec![0; QUERY_MAX * BATCH],
            answers: vec![0; answer_max * BATCH],
            answer_max,
            answer_len: [0; BATCH],
            addrs: [zeroed(); BATCH],
            iov: [zeroed(); BATCH],
            hdrs: [zeroed(); BATCH],
            received: 0,
        }
    }

    /// Receives up to `BATCH` datagrams without blocking; Ok(0) when none.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.received = 0;
        let base = self.queries.as_mut_ptr();
        for i in 0..BATCH {
            self.iov[i] = libc::iovec {
                // SAFETY: i * QUERY_MAX + QUERY_MAX <= queries.len().
                iov_base: unsafe { base.add(i * QUERY_MAX) } as *mut libc::c_void,
                iov_len: QUERY_MAX,
            };
            let h = &mut self.hdrs[i];
            h.msg_hdr.msg_name = &mut self.addrs[i] as *mut _ as *mut libc::c_void;
            h.msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_iov = &mut self.iov[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = std::ptr::null_mut();
            h.msg_hdr.msg_controllen = 0;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        loop {
            // SAFETY: every header points at live buffers owned by self,
            // sized as declared; the call writes within those bounds.
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    self.hdrs.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n >= 0 {
                self.received = (n as usize).min(BATCH);
                for len in self.answer_len.iter_mut() {
                    *len = 0;
                }
                return Ok(self.received);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(0),
                _ => return Err(e),
            }
        }
    }

    pub fn datagram(&self, i: usize) -> Option<Datagram<'_>> {
        if i >= self.received {
            return None;
        }
        let h = self.hdrs.get(i)?;
        let len = (h.msg_len as usize).min(QUERY_MAX);
        let query = self.queries.get(i * QUERY_MAX..i * QUERY_MAX + len)?;
        Some(Datagram {
            query,
            peer: to_socket_addr(self.addrs.get(i)?),
            truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
        })
    }

    /// Stores the answer to datagram `i`; answers longer than the slot are
    /// not sent (the responder never produces them for UDP).
    pub fn set_answer(&mut self, i: usize, answer: &[u8]) -> bool {
        if i >= self.received || answer.len() > self.answer_max {
            return false;
        }
        let start = i * self.answer_max;
        match self.answers.get_mut(start..start + answer.len()) {
            Some(slot) => {
                slot.copy_from_slice(answer);
                self.answer_len[i] = answer.len();
                true
            }
            None => false,
        }
    }

    /// Sends every stored answer back to its sender. Returns how many could
    /// not be sent (full socket buffer, unreachable client).
    pub fn send(&mut self, fd: RawFd) -> usize {
        let base = self.answers.as_mut_ptr();
        let mut count = 0;
        for i in 0..self.received {
            if self.answer_len[i] == 0 {
                continue;
            }
            // Reuse the receive header slot `count` for the outgoing message;
            // the peer address stays in addrs[i] and namelen from recvmmsg.
            let namelen = self.hdrs[i].msg_hdr.msg_namelen;
            self.iov[count] = libc::iovec {
                // SAFETY: i * answer_max + answer_len[i] <= answers.len().
                iov_base: unsafe { base.add(i * self.answer_max) } as *mut libc::c_void,
                iov_len: self.answer_len[i],
            };
            let h = &mut self.hdrs[count];
            h.msg_hdr.msg_name = &mut self.addrs[i] as *mut _ as *mut libc::c_void;
            h.msg_hdr.msg_namelen = namelen;
            h.msg_hdr.msg_iov = &mut self.iov[count];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = std::ptr::null_mut();
            h.msg_hdr.msg_controllen = 0;
            h.msg_hdr.msg_flags = 0;
            count += 1;
        }
        self.received = 0;
        let mut sent = 0;
        let mut failed = 0;
        while sent < count {
            // SAFETY: headers [sent, count) point at live buffers of self.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    self.hdrs.as_mut_ptr().add(sent),
                    (count - sent) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n > 0 {
                sent += n as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The first message of the rest failed: skip it, send the rest.
            log::trace!("dns: udp send: {e}");
            failed += 1;
            sent += 1;
        }
        failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    #[test]
    fn receives_a_batch_and_answers_each_sender() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        for i in 0..3u8 {
            client.send_to(&[i; 20], addr).unwrap();
        }
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut batch = Batch::new(512);
        // Datagrams may trickle in; gather all three. recv does not block
        // (MSG_DONTWAIT), so the loop needs a deadline of its own: a lost
        // datagram fails the test instead of spinning forever.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = 0;
        while seen < 3 {
            assert!(
                Instant::now() < deadline,
                "only {seen} of 3 datagrams arrived within 10 s"
            );
            let n = batch.recv(server.as_raw_fd()).unwrap();
            if n == 0 {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            for i in 0..n {
                let d = batch.datagram(i).unwrap();
                assert_eq!(d.peer, Some(client.local_addr().unwrap()));
                assert!(!d.truncated);
                let reply = [d.query[0] + 100; 5];
                assert!(batch.set_answer(i, &reply));
            }
            assert_eq!(batch.send(server.as_raw_fd()), 0);
            seen += n;
        }
        let mut got = Vec::new();
        for _ in 0..3 {
            let mut buf = [0u8; 16];
            let (n, _) = client.recv_from(&mut buf).unwrap();
            assert_eq!(n, 5);
            got.push(buf[0]);
        }
        got.sort();
        assert_eq!(got, vec![100, 101, 102]);
        assert!(batch.datagram(0).is_none());
    }
}
