//! Raw DNS and gossip packets for the bad-input tables, and how the
//! server answered them (no reply, an RCODE, a closed connection).

use crate::util::site::KEY;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

#[derive(Debug, PartialEq)]
pub enum Out {
    /// No datagram came back within the timeout.
    Silent,
    /// A reply with this RCODE (FORMERR = 1, NOTIMP = 4, ...).
    Rcode(u8),
}

pub fn udp_outcome(server: SocketAddr, bytes: &[u8]) -> Out {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    sock.send_to(bytes, server).unwrap();
    let mut buf = [0u8; 65535];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => {
            Out::Rcode(
                buf.get(3)
                    .map_or(255, |b| b & 0x0f)
                    .max(if n < 12 { 255 } else { 0 }),
            )
        }
        Err(_) => Out::Silent,
    }
}

pub fn header(id: u16, flags: u16, qd: u16, an: u16) -> Vec<u8> {
    let mut h = Vec::new();
    for v in [id, flags, qd, an, 0, 0] {
        h.extend_from_slice(&v.to_be_bytes());
    }
    h
}

#[derive(Debug, PartialEq)]
pub enum TcpOut {
    Closed,
    Rcode(u8),
    Hung,
}

pub fn tcp_outcome(server: SocketAddr, bytes: &[u8]) -> TcpOut {
    let mut t = TcpStream::connect(server).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    if t.write_all(bytes).is_err() {
        return TcpOut::Closed;
    }
    let mut len = [0u8; 2];
    match t.read_exact(&mut len) {
        Ok(()) => {
            let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
            match t.read_exact(&mut msg) {
                Ok(()) => TcpOut::Rcode(msg.get(3).map_or(255, |b| b & 0x0f)),
                Err(_) => TcpOut::Closed,
            }
        }
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut =>
        {
            TcpOut::Hung
        }
        Err(_) => TcpOut::Closed,
    }
}

/// The short key id the header carries (see src/gossip/crypto.rs).
pub fn key_id() -> [u8; 4] {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(KEY)
        .unwrap();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"opengslb-gossip-key-id");
    ctx.update(&raw);
    let d = ctx.finish();
    [d.as_ref()[0], d.as_ref()[1], d.as_ref()[2], d.as_ref()[3]]
}

pub fn gossip_header(key_id: [u8; 4], magic: &[u8; 2]) -> Vec<u8> {
    let mut h = magic.to_vec();
    h.extend_from_slice(&[1, 0]);
    h.extend_from_slice(&key_id);
    h.extend_from_slice(&0x1122_3344_5566_7788u64.to_be_bytes());
    h.extend_from_slice(&1u64.to_be_bytes());
    h.extend_from_slice(&[7u8; 12]);
    h
}
