//! Wire format tests: round trips, typed decode errors, session tags,
//! random and mutated input, header layout.

use super::*;

pub(crate) fn backend(i: u16) -> WireBackend {
    WireBackend {
        key: WireKey {
            service: "app.example.com".into(),
            address: format!("10.0.{}.{}", i / 256, i % 256),
            port: 8080,
        },
        weight: 100,
        healthy: i.is_multiple_of(2),
        draining: i.is_multiple_of(3),
        drain_reason: i.is_multiple_of(3).then(|| "drain file".to_string()),
        last_error: None,
    }
}

#[test]
fn decode_errors_say_what_is_wrong() {
    let mut bytes = Payload {
        timestamp_ms: 1,
        message: Message::Reregister,
    }
    .encode();
    bytes[0] = 42;
    assert_eq!(Payload::decode(&bytes), Err(DecodeError::UnknownType(42)));
    bytes[0] = 10;
    bytes.push(0);
    assert_eq!(Payload::decode(&bytes), Err(DecodeError::Trailing(1)));
    let mut rejected = Payload {
        timestamp_ms: 1,
        message: Message::Rejected {
            reason: RejectReason::Revoked,
            detail: String::new(),
        },
    }
    .encode();
    rejected[9] = 99;
    assert_eq!(
        Payload::decode(&rejected),
        Err(DecodeError::UnknownReason(99))
    );
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
            removals: vec![backend(4).key],
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
        assert_eq!(Payload::decode(&bytes), Ok(p.clone()));
        for cut in 0..bytes.len() {
            assert!(
                matches!(
                    Payload::decode(&bytes[..cut]),
                    Err(DecodeError::Truncated { .. })
                ),
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
    assert!(split_tag(&bytes).is_ok_and(|(_, t)| t.is_some()));
    bytes.extend_from_slice(&[9; SESSION_TAG_LEN]);
    let (body, tag) = split_tag(&bytes).expect("split");
    assert_eq!(tag, Some([9; SESSION_TAG_LEN]));
    assert_eq!(Payload::decode(body), Ok(hb));
    let hello = Payload {
        timestamp_ms: 1,
        message: Message::Hello {
            agent_id: "a".into(),
        },
    }
    .encode();
    assert_eq!(split_tag(&hello), Ok((&hello[..], None)));
    assert!(split_tag(&[]).is_err());
    assert_eq!(
        split_tag(&[6, 0, 0]),
        Err(DecodeError::Truncated {
            field: "session tag",
            at: 0
        })
    );
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
            removals: vec![backend(5).key],
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
        if let Ok(p) = Payload::decode(&bytes) {
            // whatever parses must encode back to the same bytes
            assert_eq!(p.encode(), bytes);
        }
        let _ = split_tag(&bytes);
    }
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
    assert_eq!(Header::parse(&out), Ok(h));
    assert!(matches!(
        Header::parse(&out[..20]),
        Err(DecodeError::Truncated { .. })
    ));
    out[2] = 2;
    assert_eq!(Header::parse(&out), Err(DecodeError::NotOurs));
}
