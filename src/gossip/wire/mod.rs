//! The gossip wire format: the clear header, the message bodies inside the
//! encrypted payload, and the TCP frame length prefix.
//!
//! Everything is big-endian, strings are UTF-8 with a u16 length, byte
//! strings a u32 length. Parsing works on a bounds-checked reader: every
//! read returns `None` past the end, so no input can panic, and lists never
//! preallocate from a count that came off the wire. See `docs/gossip.md`.

use crate::gossip::session::SESSION_TAG_LEN;
use crate::gossip::{BackendKey, BackendReport, RejectReason};

pub const MAGIC: [u8; 2] = *b"OG";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 36;
/// Largest packet sent as one UDP datagram; anything bigger goes over TCP.
pub const MAX_DATAGRAM: usize = 1400;
/// Largest datagram accepted (a little slack over what we send).
pub const MAX_RECV_DATAGRAM: usize = 1500;
/// Largest TCP frame accepted.
pub const MAX_FRAME: usize = 4 << 20;

/// The clear header; authenticated as AAD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub key_id: [u8; 4],
    pub session_id: u64,
    pub counter: u64,
    pub nonce: [u8; 12],
}

impl Header {
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(0); // flags, reserved
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&self.session_id.to_be_bytes());
        out.extend_from_slice(&self.counter.to_be_bytes());
        out.extend_from_slice(&self.nonce);
    }

    pub fn parse(packet: &[u8]) -> Option<Header> {
        let h = packet.get(..HEADER_LEN)?;
        if h[0..2] != MAGIC || h[2] != VERSION {
            return None;
        }
        let mut r = Reader::new(&h[4..]);
        Some(Header {
            key_id: r.array()?,
            session_id: r.u64()?,
            counter: r.u64()?,
            nonce: r.array()?,
        })
    }
}

/// A message in the encrypted payload, after the type byte and timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Hello {
        agent_id: String,
    },
    Challenge {
        agent_session: u64,
        nonce: [u8; 32],
    },
    Register(Box<Register>),
    Registered {
        state_seq: u64,
        echo_ts: u64,
        /// The agent's ephemeral key this answers, and ours.
        agent_dh: [u8; 32],
        ow_dh: [u8; 32],
    },
    Rejected {
        reason: RejectReason,
        detail: String,
    },
    State(StateMsg),
    Heartbeat {
        agent_id: String,
        state_seq: u64,
    },
    Ack {
        acked_seq: u64,
        echo_ts: u64,
        need_full: bool,
    },
    Leave {
        agent_id: String,
    },
    /// The Overwatch does not know this session (it restarted, or forgot
    /// the agent): register again.
    Reregister,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Register {
    pub agent_id: String,
    pub region: String,
    pub token: String,
    pub cert_der: Vec<u8>,
    pub heartbeat_interval_ms: u32,
    pub missed_threshold: u32,
    pub challenge: [u8; 32],
    /// Ephemeral X25519 public key for the session key (signed).
    pub agent_dh: [u8; 32],
    pub signature: Vec<u8>,
    /// (old certificate DER, signature by the old key over the new
    /// fingerprint)
    pub rotation: Option<(Vec<u8>, Vec<u8>)>,
    pub state_seq: u64,
    pub backends: Vec<BackendReport>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateMsg {
    pub agent_id: String,
    pub seq: u64,
    pub full: bool,
    pub upserts: Vec<BackendReport>,
    pub removals: Vec<BackendKey>,
}

/// A decoded payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    /// Sender's wall clock, unix milliseconds.
    pub timestamp_ms: u64,
    pub message: Message,
}

impl Payload {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(128));
        let m = &self.message;
        w.u8(type_code(m));
        w.u64(self.timestamp_ms);
        match m {
            Message::Hello { agent_id } | Message::Leave { agent_id } => w.str(agent_id),
            Message::Challenge {
                agent_session,
                nonce,
            } => {
                w.u64(*agent_session);
                w.0.extend_from_slice(nonce);
            }
            Message::Register(r) => {
                w.str(&r.agent_id);
                w.str(&r.region);
                w.str(&r.token);
                w.bytes(&r.cert_der);
                w.u32(r.heartbeat_interval_ms);
                w.u32(r.missed_threshold);
                w.0.extend_from_slice(&r.challenge);
                w.0.extend_from_slice(&r.agent_dh);
                w.bytes(&r.signature);
                match &r.rotation {
                    None => w.u8(0),
                    Some((old, sig)) => {
                        w.u8(1);
                        w.bytes(old);
                        w.bytes(sig);
                    }
                }
                w.u64(r.state_seq);
                w.backends(&r.backends);
            }
            Message::Registered {
                state_seq,
                echo_ts,
                agent_dh,
                ow_dh,
            } => {
                w.u64(*state_seq);
                w.u64(*echo_ts);
                w.0.extend_from_slice(agent_dh);
                w.0.extend_from_slice(ow_dh);
            }
            Message::Rejected { reason, detail } => {
                w.u8(reason.code());
                w.str(detail);
            }
            Message::State(s) => {
                w.str(&s.agent_id);
                w.u64(s.seq);
                w.u8(s.full as u8);
                w.backends(&s.upserts);
                w.u32(s.removals.len() as u32);
                for k in &s.removals {
                    w.str(&k.service);
                    w.str(&k.address);
                    w.u16(k.port);
                }
            }
            Message::Heartbeat {
                agent_id,
                state_seq,
            } => {
                w.str(agent_id);
                w.u64(*state_seq);
            }
            Message::Ack {
                acked_seq,
                echo_ts,
                need_full,
            } => {
                w.u64(*acked_seq);
                w.u64(*echo_ts);
                w.u8(*need_full as u8);
            }
            Message::Reregister => {}
        }
        w.0
    }

    pub fn decode(buf: &[u8]) -> Option<Payload> {
        let mut r = Reader::new(buf);
        let code = r.u8()?;
        let timestamp_ms = r.u64()?;
        let message = match code {
            1 => Message::Hello { agent_id: r.str()? },
            2 => Message::Challenge {
                agent_session: r.u64()?,
                nonce: r.array()?,
            },
            3 => Message::Register(Box::new(Register {
                agent_id: r.str()?,
                region: r.str()?,
                token: r.str()?,
                cert_der: r.bytes()?,
                heartbeat_interval_ms: r.u32()?,
                missed_threshold: r.u32()?,
                challenge: r.array()?,
                agent_dh: r.array()?,
                signature: r.bytes()?,
                rotation: match r.u8()? {
                    0 => None,
                    1 => Some((r.bytes()?, r.bytes()?)),
                    _ => return None,
                },
                state_seq: r.u64()?,
                backends: r.backends()?,
            })),
            4 => Message::Registered {
                state_seq: r.u64()?,
                echo_ts: r.u64()?,
                agent_dh: r.array()?,
                ow_dh: r.array()?,
            },
            5 => Message::Rejected {
                reason: RejectReason::from_code(r.u8()?)?,
                detail: r.str()?,
            },
            6 => {
                let agent_id = r.str()?;
                let seq = r.u64()?;
                let full = r.bool()?;
                let upserts = r.backends()?;
                let n = r.u32()?;
                let mut removals = Vec::new();
                for _ in 0..n {
                    removals.push(BackendKey {
                        service: r.str()?,
                        address: r.str()?,
                        port: r.u16()?,
                    });
                }
                Message::State(StateMsg {
                    agent_id,
                    seq,
                    full,
                    upserts,
                    removals,
                })
            }
            7 => Message::Heartbeat {
                agent_id: r.str()?,
                state_seq: r.u64()?,
            },
            8 => Message::Ack {
                acked_seq: r.u64()?,
                echo_ts: r.u64()?,
                need_full: r.bool()?,
            },
            9 => Message::Leave { agent_id: r.str()? },
            10 => Message::Reregister,
            _ => return None,
        };
        if !r.is_empty() {
            return None;
        }
        Some(Payload {
            timestamp_ms,
            message,
        })
    }
}

/// Messages that exist only inside a registered session carry a session
/// tag (see `session.rs`) after the body.
pub fn is_tagged(m: &Message) -> bool {
    tagged_code(type_code(m))
}

fn tagged_code(code: u8) -> bool {
    matches!(code, 6..=9)
}

/// Splits a decrypted payload into the part the session tag covers and the
/// tag, for the message types that carry one.
pub fn split_tag(plain: &[u8]) -> Option<(&[u8], Option<[u8; SESSION_TAG_LEN]>)> {
    if !tagged_code(*plain.first()?) {
        return Some((plain, None));
    }
    let cut = plain.len().checked_sub(SESSION_TAG_LEN)?;
    let (body, tag) = plain.split_at(cut);
    Some((body, Some(tag.try_into().ok()?)))
}

fn type_code(m: &Message) -> u8 {
    match m {
        Message::Hello { .. } => 1,
        Message::Challenge { .. } => 2,
        Message::Register(_) => 3,
        Message::Registered { .. } => 4,
        Message::Rejected { .. } => 5,
        Message::State(_) => 6,
        Message::Heartbeat { .. } => 7,
        Message::Ack { .. } => 8,
        Message::Leave { .. } => 9,
        Message::Reregister => 10,
    }
}

/// Appends big-endian fields.
pub struct Writer(pub Vec<u8>);

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    /// Strings longer than 65535 bytes are cut at a char boundary; no
    /// field we send comes close.
    pub fn str(&mut self, s: &str) {
        let mut end = s.len().min(u16::MAX as usize);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.u16(end as u16);
        self.0.extend_from_slice(&s.as_bytes()[..end]);
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn opt_str(&mut self, s: &Option<String>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }
    fn backends(&mut self, list: &[BackendReport]) {
        self.u32(list.len() as u32);
        for b in list {
            self.str(&b.service);
            self.str(&b.address);
            self.u16(b.port);
            self.u32(b.weight);
            self.u8(b.healthy as u8 | (b.draining as u8) << 1);
            self.opt_str(&b.drain_reason);
            self.opt_str(&b.last_error);
        }
    }
}

/// A bounds-checked cursor: every read is `None` past the end.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Some(head)
    }
    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    pub fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }
    pub fn bool(&mut self) -> Option<bool> {
        match self.u8()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.array()?))
    }
    pub fn str(&mut self) -> Option<String> {
        let n = self.u16()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    pub fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = self.u32()? as usize;
        Some(self.take(n)?.to_vec())
    }
    fn opt_str(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.str()?)),
            _ => None,
        }
    }
    fn backends(&mut self) -> Option<Vec<BackendReport>> {
        let n = self.u32()?;
        let mut out = Vec::new();
        for _ in 0..n {
            let service = self.str()?;
            let address = self.str()?;
            let port = self.u16()?;
            let weight = self.u32()?;
            let flags = self.u8()?;
            if flags > 3 {
                return None;
            }
            out.push(BackendReport {
                service,
                address,
                port,
                weight,
                healthy: flags & 1 != 0,
                draining: flags & 2 != 0,
                drain_reason: self.opt_str()?,
                last_error: self.opt_str()?,
            });
        }
        Some(out)
    }
}

/// Prefixes a sealed packet with its u32 length for the TCP stream.
pub fn frame(packet: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(packet.len() as u32).to_be_bytes());
    out.extend_from_slice(packet);
}

/// A TCP frame announced a length over `MAX_FRAME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameTooLarge(pub usize);

/// Splits complete frames off the front of `buf`. An oversized length is
/// an error (the connection is then closed).
pub fn take_frames(buf: &mut Vec<u8>) -> Result<Vec<Vec<u8>>, FrameTooLarge> {
    let mut frames = Vec::new();
    let mut pos = 0;
    while let Some(len) = buf.get(pos..pos + 4) {
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if len > MAX_FRAME {
            return Err(FrameTooLarge(len));
        }
        let Some(body) = buf.get(pos + 4..pos + 4 + len) else {
            break;
        };
        frames.push(body.to_vec());
        pos += 4 + len;
    }
    buf.drain(..pos);
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn backend(i: u16) -> BackendReport {
        BackendReport {
            service: "app.example.com".into(),
            address: format!("10.0.{}.{}", i / 256, i % 256),
            port: 8080,
            weight: 100,
            healthy: i.is_multiple_of(2),
            draining: i.is_multiple_of(3),
            drain_reason: i.is_multiple_of(3).then(|| "drain file".to_string()),
            last_error: None,
        }
    }

    #[test]
    fn every_message_roundtrips() {
        let msgs = vec![
            Message::Hello {
                agent_id: "eu-a".into(),
            },
            Message::Challenge {
                agent_session: 5,
                nonce: [9; 32],
            },
            Message::Register(Box::new(Register {
                agent_id: "a".into(),
                region: "eu".into(),
                token: "t".into(),
                cert_der: vec![1, 2, 3],
                heartbeat_interval_ms: 1000,
                missed_threshold: 3,
                challenge: [7; 32],
                agent_dh: [8; 32],
                signature: vec![4; 70],
                rotation: Some((vec![5], vec![6])),
                state_seq: 3,
                backends: vec![backend(1), backend(2)],
            })),
            Message::Registered {
                state_seq: 1,
                echo_ts: 2,
                agent_dh: [3; 32],
                ow_dh: [4; 32],
            },
            Message::Rejected {
                reason: RejectReason::PinMismatch,
                detail: "x".into(),
            },
            Message::State(StateMsg {
                agent_id: "a".into(),
                seq: 4,
                full: false,
                upserts: vec![backend(3)],
                removals: vec![backend(4).key()],
            }),
            Message::Heartbeat {
                agent_id: "a".into(),
                state_seq: 9,
            },
            Message::Ack {
                acked_seq: 1,
                echo_ts: 2,
                need_full: true,
            },
            Message::Leave {
                agent_id: "a".into(),
            },
            Message::Reregister,
        ];
        for m in msgs {
            let p = Payload {
                timestamp_ms: 123,
                message: m,
            };
            let bytes = p.encode();
            assert_eq!(Payload::decode(&bytes), Some(p.clone()));
            for cut in 0..bytes.len() {
                assert_eq!(
                    Payload::decode(&bytes[..cut]),
                    None,
                    "{:?} cut {cut}",
                    p.message
                );
            }
        }
    }

    #[test]
    fn session_messages_carry_a_tag() {
        let hb = Payload {
            timestamp_ms: 1,
            message: Message::Heartbeat {
                agent_id: "a".into(),
                state_seq: 2,
            },
        };
        let mut bytes = hb.encode();
        assert!(split_tag(&bytes).is_some_and(|(_, t)| t.is_some()));
        bytes.extend_from_slice(&[9; SESSION_TAG_LEN]);
        let (body, tag) = split_tag(&bytes).expect("split");
        assert_eq!(tag, Some([9; SESSION_TAG_LEN]));
        assert_eq!(Payload::decode(body), Some(hb));
        let hello = Payload {
            timestamp_ms: 1,
            message: Message::Hello {
                agent_id: "a".into(),
            },
        }
        .encode();
        assert_eq!(split_tag(&hello), Some((&hello[..], None)));
        assert_eq!(split_tag(&[]), None);
        assert_eq!(split_tag(&[6, 0, 0]), None);
    }

    #[test]
    fn random_and_mutated_payloads_never_panic() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let valid = Payload {
            timestamp_ms: 5,
            message: Message::State(StateMsg {
                agent_id: "a".into(),
                seq: 4,
                full: false,
                upserts: vec![backend(3), backend(4)],
                removals: vec![backend(5).key()],
            }),
        }
        .encode();
        for i in 0..50_000 {
            let bytes: Vec<u8> = if i % 2 == 0 {
                let len = (next() % 120) as usize;
                let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                if let Some(first) = b.first_mut() {
                    *first = (*first % 11) + 1;
                }
                b
            } else {
                let mut b = valid.clone();
                for _ in 0..1 + next() % 4 {
                    let at = (next() as usize) % b.len();
                    b[at] = next() as u8;
                }
                b
            };
            if let Some(p) = Payload::decode(&bytes) {
                // whatever parses must encode back to the same bytes
                assert_eq!(p.encode(), bytes);
            }
            let _ = split_tag(&bytes);
        }
    }

    #[test]
    fn frames_split_and_limit() {
        let mut buf = Vec::new();
        frame(b"abc", &mut buf);
        frame(b"de", &mut buf);
        buf.extend_from_slice(&[0, 0]);
        assert_eq!(
            take_frames(&mut buf),
            Ok(vec![b"abc".to_vec(), b"de".to_vec()])
        );
        assert_eq!(buf, vec![0, 0]);
        let mut big = ((MAX_FRAME + 1) as u32).to_be_bytes().to_vec();
        assert_eq!(take_frames(&mut big), Err(FrameTooLarge(MAX_FRAME + 1)));
    }

    #[test]
    fn header_layout_is_36_bytes() {
        let h = Header {
            key_id: [1, 2, 3, 4],
            session_id: 5,
            counter: 6,
            nonce: [7; 12],
        };
        let mut out = Vec::new();
        h.emit(&mut out);
        assert_eq!(out.len(), HEADER_LEN);
        assert_eq!(&out[..4], b"OG\x01\x00");
        assert_eq!(Header::parse(&out), Some(h));
        out[2] = 2;
        assert_eq!(Header::parse(&out), None);
    }
}
