//! Batched UDP receive and send with recvmmsg(2)/sendmmsg(2).
//!
//! A responder thread takes up to `BATCH` datagrams per system call and
//! sends the answers of that call back in one sendmmsg, so a wake-up costs
//! two system calls however many queries it carries. The receive uses
//! MSG_WAITFORONE: on a blocking socket it sleeps until the first datagram
//! (or the socket's receive timeout) and then takes whatever else is queued
//! without waiting; a count below `BATCH` means the queue was empty.
//!
//! All buffers and headers are allocated once per thread, in one box, and
//! the receive headers point into that box once and for all (the box never
//! moves its contents); per call only the address lengths the kernel
//! overwrote are reset, and only for the datagrams that arrived. Answers go
//! out through a second header array so the receive headers stay intact.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

pub(crate) const BATCH: usize = 32;
/// Largest query we accept over UDP; longer datagrams arrive truncated
/// (MSG_TRUNC) and are dropped.
const QUERY_MAX: usize = 4096;
const NAME_LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;

pub(crate) struct Batch {
    queries: Vec<u8>,
    answers: Vec<u8>,
    answer_max: usize,
    answer_len: [usize; BATCH],
    addrs: [libc::sockaddr_storage; BATCH],
    iov: [libc::iovec; BATCH],
    hdrs: [libc::mmsghdr; BATCH],
    out_iov: [libc::iovec; BATCH],
    out_hdrs: [libc::mmsghdr; BATCH],
    /// Datagrams of the last receive not yet answered by `send`.
    received: usize,
    /// Headers the last successful receive filled (address lengths to reset).
    filled: usize,
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
    /// Boxed so the header pointers set here stay valid: callers move the
    /// box, never the batch.
    pub fn new(answer_max: usize) -> Box<Batch> {
        let mut b = Box::new(Batch {
            queries: vec![0; QUERY_MAX * BATCH],
            answers: vec![0; answer_max * BATCH],
            answer_max,
            answer_len: [0; BATCH],
            addrs: [zeroed(); BATCH],
            iov: [zeroed(); BATCH],
            hdrs: [zeroed(); BATCH],
            out_iov: [zeroed(); BATCH],
            out_hdrs: [zeroed(); BATCH],
            received: 0,
            filled: 0,
        });
        let base = b.queries.as_mut_ptr();
        for i in 0..BATCH {
            b.iov[i] = libc::iovec {
                // SAFETY: i * QUERY_MAX + QUERY_MAX <= queries.len().
                iov_base: unsafe { base.add(i * QUERY_MAX) } as *mut libc::c_void,
                iov_len: QUERY_MAX,
            };
            let name = &mut b.addrs[i] as *mut _ as *mut libc::c_void;
            let iov = &mut b.iov[i] as *mut libc::iovec;
            let h = &mut b.hdrs[i].msg_hdr;
            h.msg_name = name;
            h.msg_namelen = NAME_LEN;
            h.msg_iov = iov;
            h.msg_iovlen = 1;
            let oiov = &mut b.out_iov[i] as *mut libc::iovec;
            let o = &mut b.out_hdrs[i].msg_hdr;
            o.msg_iov = oiov;
            o.msg_iovlen = 1;
        }
        b
    }

    /// Receives up to `BATCH` datagrams: waits for the first as long as the
    /// socket blocks (its SO_RCVTIMEO), takes the rest without waiting.
    /// Ok(0) on a signal; once the socket was shut down for reading, Ok
    /// with at most one empty datagram; an error of kind `WouldBlock` on timeout (or on a non-blocking socket
    /// with nothing queued).
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        // The kernel wrote the real address length into the headers it
        // filled last time; give them the full storage size back.
        for h in self.hdrs.iter_mut().take(self.filled) {
            h.msg_hdr.msg_namelen = NAME_LEN;
        }
        self.received = 0;
        self.filled = 0;
        // SAFETY: every header points at live buffers owned by the boxed
        // batch, sized as declared; the call writes within those bounds.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n >= 0 {
            self.received = (n as usize).min(BATCH);
            self.filled = self.received;
            self.answer_len[..self.received].fill(0);
            return Ok(self.received);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => Ok(0),
            _ => Err(e),
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

    /// Sends every stored answer back to its sender in one sendmmsg (more
    /// only when the kernel takes part of the batch or a message fails).
    /// Returns how many could not be sent (full socket buffer, unreachable
    /// client).
    pub fn send(&mut self, fd: RawFd) -> usize {
        let base = self.answers.as_mut_ptr();
        let mut count = 0;
        for i in 0..self.received {
            let len = self.answer_len[i];
            if len == 0 {
                continue;
            }
            let namelen = self.hdrs[i].msg_hdr.msg_namelen;
            self.out_iov[count].iov_base =
                // SAFETY: i * answer_max + answer_len[i] <= answers.len().
                unsafe { base.add(i * self.answer_max) } as *mut libc::c_void;
            self.out_iov[count].iov_len = len;
            let name = &mut self.addrs[i] as *mut _ as *mut libc::c_void;
            let o = &mut self.out_hdrs[count].msg_hdr;
            o.msg_name = name;
            o.msg_namelen = namelen;
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
                    self.out_hdrs.as_mut_ptr().add(sent),
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

    #[test]
    fn blocking_receive_returns_on_timeout_and_on_shutdown() {
        let server = std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        server
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let mut batch = Batch::new(512);
        // Nothing queued: the receive timeout ends the wait with no datagram.
        let e = batch.recv(server.as_raw_fd()).unwrap_err();
        assert!(crate::netio::would_block(&e), "{e}");
        // A long timeout, then shutdown(SHUT_RD) from another thread: the
        // blocked receive returns with nothing and no error, not with the
        // timeout's WouldBlock (this is how `stop` wakes a UDP thread).
        server
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let s2 = std::sync::Arc::clone(&server);
        let t = std::thread::spawn(move || {
            let mut batch = Batch::new(512);
            let n = batch.recv(s2.as_raw_fd()).unwrap();
            (n, batch.datagram(0).map(|d| d.query.len()))
        });
        std::thread::sleep(Duration::from_millis(50));
        // SAFETY: the fd is open for the whole test.
        unsafe { libc::shutdown(server.as_raw_fd(), libc::SHUT_RD) };
        // Linux reports the shutdown as one empty "datagram".
        let (n, len) = t.join().unwrap();
        assert!(n <= 1);
        assert!(len.is_none_or(|l| l == 0));
    }
}
