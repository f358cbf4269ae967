//! The learned-latency report (type 32): an agent's round trips per
//! (service, client prefix), sent to every Overwatch every
//! `report_interval` inside its registered session (session-tagged like
//! state). Reports travel in batches of at most `MAX_LATENCY_ENTRIES`; a
//! longer list, a prefix with host bits or a length too long for its
//! family fails to decode with a typed error, so nothing off the wire can
//! make the receiver allocate past that bound.
//!
//! Body: agent id (str), entry count (u16), then per entry: service (str),
//! family (u8, 4 or 6), address (4 or 16 bytes), prefix length (u8),
//! round trip in microseconds (u32), samples (u32).

use super::reader::{DecodeError, Reader, Writer};
use crate::netprefix::ClientPrefix;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Most entries one report carries (the decoder refuses more).
pub const MAX_LATENCY_ENTRIES: usize = 64;
/// Entries the agent puts in one report, so that one fits a datagram.
pub const LATENCY_BATCH: usize = 16;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyReport {
    pub agent_id: String,
    pub entries: Vec<LatencyEntry>,
}

/// The smoothed round trip of a service's clients in one prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyEntry {
    pub service: String,
    pub prefix: ClientPrefix,
    pub rtt_us: u32,
    pub samples: u32,
}

pub(super) fn write(w: &mut Writer, r: &LatencyReport) {
    w.str(&r.agent_id);
    let n = r.entries.len().min(MAX_LATENCY_ENTRIES);
    w.u16(n as u16);
    for e in &r.entries[..n] {
        w.str(&e.service);
        match e.prefix.addr() {
            IpAddr::V4(a) => {
                w.u8(4);
                w.0.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                w.u8(6);
                w.0.extend_from_slice(&a.octets());
            }
        }
        w.u8(e.prefix.len);
        w.u32(e.rtt_us);
        w.u32(e.samples);
    }
}

pub(super) fn read(r: &mut Reader<'_>) -> Result<LatencyReport, DecodeError> {
    let agent_id = r.str("agent id")?;
    let at = r.pos();
    let n = r.u16("latency entry count")? as usize;
    if n > MAX_LATENCY_ENTRIES {
        return Err(DecodeError::TooMany {
            field: "latency entry count",
            at,
            count: n as u32,
        });
    }
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let service = r.str("service")?;
        let at = r.pos();
        let addr = match r.u8("address family")? {
            4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>("prefix address")?)),
            6 => IpAddr::V6(Ipv6Addr::from(r.array::<16>("prefix address")?)),
            value => {
                return Err(DecodeError::BadValue {
                    field: "address family",
                    at,
                    value,
                });
            }
        };
        let at = r.pos();
        let len = r.u8("prefix length")?;
        let prefix = ClientPrefix::new(addr, len).ok_or(DecodeError::BadValue {
            field: "prefix length",
            at,
            value: len,
        })?;
        entries.push(LatencyEntry {
            service,
            prefix,
            rtt_us: r.u32("round trip")?,
            samples: r.u32("samples")?,
        });
    }
    Ok(LatencyReport { agent_id, entries })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::wire::{Message, Payload};

    fn report(n: usize) -> LatencyReport {
        LatencyReport {
            agent_id: "web-1".into(),
            entries: (0..n)
                .map(|i| LatencyEntry {
                    service: "app.gslb.example.com".into(),
                    prefix: if i % 2 == 0 {
                        ClientPrefix::parse(&format!("10.{}.0.0/24", i % 250)).unwrap()
                    } else {
                        ClientPrefix::parse("2001:db8:7::/48").unwrap()
                    },
                    rtt_us: 1000 + i as u32,
                    samples: 3,
                })
                .collect(),
        }
    }

    fn payload(r: LatencyReport) -> Payload {
        Payload {
            timestamp_ms: 42,
            message: Message::LatencyReport(r),
        }
    }

    #[test]
    fn round_trips_and_is_session_tagged() {
        let p = payload(report(LATENCY_BATCH));
        assert!(crate::gossip::wire::is_tagged(&p.message));
        assert_eq!(Payload::decode(&p.encode()), Ok(p.clone()));
        // A full batch fits one datagram with header, tag and AEAD tag.
        assert!(p.encode().len() + 36 + 32 + 16 < crate::gossip::wire::MAX_DATAGRAM);
    }

    #[test]
    fn oversize_and_malformed_reports_are_typed_errors() {
        let mut w = Writer(vec![32]);
        w.u64(1);
        w.str("a");
        w.u16(MAX_LATENCY_ENTRIES as u16 + 1);
        assert!(matches!(
            Payload::decode(&w.0),
            Err(DecodeError::TooMany { count: 65, .. })
        ));
        let good = payload(report(2)).encode();
        for cut in 0..good.len() {
            assert!(Payload::decode(&good[..cut]).is_err());
        }
        // Host bits set past the prefix length: refused.
        let mut bad = good.clone();
        let family_at = 1 + 8 + 2 + 5 + 2 + 2 + 20;
        assert_eq!(bad[family_at], 4);
        bad[family_at + 4] = 1;
        assert!(matches!(
            Payload::decode(&bad),
            Err(DecodeError::BadValue {
                field: "prefix length",
                ..
            })
        ));
        bad[family_at] = 5;
        assert!(matches!(
            Payload::decode(&bad),
            Err(DecodeError::BadValue {
                field: "address family",
                ..
            })
        ));
    }
}
