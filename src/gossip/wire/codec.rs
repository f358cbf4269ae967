//! Encoding and decoding of the message bodies (`Payload`): one type
//! byte, the sender's wall-clock stamp, then the fields of the message in
//! the order `docs/gossip.md` lists them.

use super::reader::{DecodeError, Reader, Writer};
use super::{Message, Payload, Register, StateMsg, WireBackend, WireKey, type_code};
use crate::gossip::RejectReason;

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
                write_backends(&mut w, &r.backends);
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
                write_backends(&mut w, &s.upserts);
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
            Message::LatencyReport(l) => super::latency::write(&mut w, l),
        }
        w.0
    }

    pub fn decode(buf: &[u8]) -> Result<Payload, DecodeError> {
        let mut r = Reader::new(buf);
        let code = r.u8("message type")?;
        let timestamp_ms = r.u64("timestamp")?;
        let message = match code {
            1 => Message::Hello {
                agent_id: r.str("agent id")?,
            },
            2 => Message::Challenge {
                agent_session: r.u64("agent session")?,
                nonce: r.array("challenge nonce")?,
            },
            3 => Message::Register(Box::new(Register {
                agent_id: r.str("agent id")?,
                region: r.str("region")?,
                token: r.str("token")?,
                cert_der: r.bytes("certificate")?,
                heartbeat_interval_ms: r.u32("heartbeat interval")?,
                missed_threshold: r.u32("missed threshold")?,
                challenge: r.array("challenge")?,
                agent_dh: r.array("agent key share")?,
                signature: r.bytes("signature")?,
                rotation: if r.bool("rotation flag")? {
                    Some((r.bytes("old certificate")?, r.bytes("rotation signature")?))
                } else {
                    None
                },
                state_seq: r.u64("state seq")?,
                backends: read_backends(&mut r)?,
            })),
            4 => Message::Registered {
                state_seq: r.u64("state seq")?,
                echo_ts: r.u64("echo timestamp")?,
                agent_dh: r.array("agent key share")?,
                ow_dh: r.array("overwatch key share")?,
            },
            5 => {
                let code = r.u8("reason")?;
                Message::Rejected {
                    reason: RejectReason::from_code(code)
                        .ok_or(DecodeError::UnknownReason(code))?,
                    detail: r.str("detail")?,
                }
            }
            6 => {
                let agent_id = r.str("agent id")?;
                let seq = r.u64("state seq")?;
                let full = r.bool("full flag")?;
                let upserts = read_backends(&mut r)?;
                let n = r.u32("removal count")?;
                let mut removals = Vec::new();
                for _ in 0..n {
                    removals.push(WireKey {
                        service: r.str("service")?,
                        address: r.str("address")?,
                        port: r.u16("port")?,
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
                agent_id: r.str("agent id")?,
                state_seq: r.u64("state seq")?,
            },
            8 => Message::Ack {
                acked_seq: r.u64("acked seq")?,
                echo_ts: r.u64("echo timestamp")?,
                need_full: r.bool("need-full flag")?,
            },
            9 => Message::Leave {
                agent_id: r.str("agent id")?,
            },
            10 => Message::Reregister,
            32 => Message::LatencyReport(super::latency::read(&mut r)?),
            other => return Err(DecodeError::UnknownType(other)),
        };
        r.finish()?;
        Ok(Payload {
            timestamp_ms,
            message,
        })
    }
}

fn write_backends(w: &mut Writer, list: &[WireBackend]) {
    w.u32(list.len() as u32);
    for b in list {
        w.str(&b.key.service);
        w.str(&b.key.address);
        w.u16(b.key.port);
        w.u32(b.weight);
        w.u8(b.healthy as u8 | (b.draining as u8) << 1);
        w.opt_str(&b.drain_reason);
        w.opt_str(&b.last_error);
    }
}

fn read_backends(r: &mut Reader<'_>) -> Result<Vec<WireBackend>, DecodeError> {
    let n = r.u32("backend count")?;
    let mut out = Vec::new();
    for _ in 0..n {
        let service = r.str("service")?;
        let address = r.str("address")?;
        let port = r.u16("port")?;
        let weight = r.u32("weight")?;
        let at = r.pos();
        let flags = r.u8("backend flags")?;
        if flags > 3 {
            return Err(DecodeError::BadValue {
                field: "backend flags",
                at,
                value: flags,
            });
        }
        out.push(WireBackend {
            key: WireKey {
                service,
                address,
                port,
            },
            weight,
            healthy: flags & 1 != 0,
            draining: flags & 2 != 0,
            drain_reason: r.opt_str("drain reason")?,
            last_error: r.opt_str("last error")?,
        });
    }
    Ok(out)
}
