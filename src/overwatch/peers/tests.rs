//! Unit tests of the pure peer logic: LWW merge, tombstones, digest,
//! bounded skew and the message codec's refusals.

use super::lww::*;
use super::msg::{self, PeerMsg, PeerRefusal};

fn node(name: &str) -> Replica {
    Replica::new(name)
}

fn all(r: &Replica) -> Vec<Entry> {
    r.entries().cloned().collect()
}

#[test]
fn merge_is_commutative_and_idempotent() {
    let mut a = node("a");
    let mut b = node("b");
    let e1 = a.write(
        Kind::Override,
        "www/10.0.0.1/80",
        Some("{\"x\":1}".into()),
        "alice",
        1000,
    );
    let e2 = b.write(
        Kind::Override,
        "www/10.0.0.1/80",
        Some("{\"x\":2}".into()),
        "bob",
        1000,
    );
    let e3 = b.write(Kind::Revocation, "agent-1", Some("{}".into()), "bob", 1001);
    let mut x = node("x");
    let mut y = node("y");
    for e in [&e1, &e2, &e3, &e1] {
        x.merge(e, 2000).unwrap();
    }
    for e in [&e3, &e2, &e1, &e2, &e3] {
        y.merge(e, 2000).unwrap();
    }
    assert_eq!(x.digest(), y.digest());
    assert_eq!(all(&x), all(&y));
    // Same wall time, same logical: the node id decides, the same everywhere.
    assert_eq!(
        x.get(Kind::Override, "www/10.0.0.1/80").unwrap().operator,
        "bob"
    );
}

#[test]
fn concurrent_writes_on_two_nodes_end_identical_after_exchange() {
    let mut a = node("a");
    let mut b = node("b");
    a.write(Kind::Override, "k", Some("1".into()), "alice", 5000);
    b.write(Kind::Override, "k", Some("2".into()), "bob", 4000);
    b.write(Kind::Override, "k2", None, "bob", 4001);
    for e in all(&a) {
        b.merge(&e, 6000).unwrap();
    }
    for e in all(&b) {
        a.merge(&e, 6000).unwrap();
    }
    assert_eq!(a.digest(), b.digest());
    assert_eq!(
        a.get(Kind::Override, "k").unwrap().value.as_deref(),
        Some("1")
    );
}

#[test]
fn an_older_write_never_replaces_a_newer_one() {
    let mut a = node("a");
    let newer = a.write(Kind::Override, "k", None, "alice", 2000);
    let mut b = node("b");
    let older = b.write(Kind::Override, "k", Some("1".into()), "bob", 1000);
    assert_eq!(a.merge(&older, 3000), Ok(Merged::Ignored));
    assert_eq!(a.get(Kind::Override, "k"), Some(&newer));
}

#[test]
fn tombstones_expire_after_the_ttl_and_values_stay() {
    let mut a = node("a");
    a.write(Kind::Override, "gone", None, "op", 1000);
    a.write(Kind::Override, "kept", Some("1".into()), "op", 1000);
    assert!(!a.expire_tombstones(1500, 1000));
    assert_eq!(a.len(), 2);
    assert!(a.expire_tombstones(2001, 1000));
    assert!(a.get(Kind::Override, "gone").is_none());
    assert!(a.get(Kind::Override, "kept").is_some());
}

#[test]
fn a_stamp_far_in_the_future_is_refused_and_state_untouched() {
    let mut a = node("a");
    let mut evil = node("evil");
    let e = evil.write(Kind::Override, "k", Some("1".into()), "x", 10_000_000);
    let before = a.digest();
    assert_eq!(a.merge(&e, 1000), Err(Refusal::ClockSkew));
    assert_eq!(a.digest(), before);
    // Within the bound it is taken.
    let near = node("b").write(
        Kind::Override,
        "j",
        Some("1".into()),
        "x",
        1000 + DEFAULT_MAX_SKEW_MS,
    );
    assert_eq!(a.merge(&near, 1000), Ok(Merged::Applied));
}

#[test]
fn oversize_values_are_refused() {
    let mut a = node("a");
    let mut b = node("b");
    let e = b.write(
        Kind::Override,
        "k",
        Some("x".repeat(MAX_VALUE_LEN + 1)),
        "op",
        1,
    );
    assert_eq!(a.merge(&e, 1), Err(Refusal::Oversize));
    assert!(a.is_empty());
}

#[test]
fn digest_differs_when_anything_differs() {
    let mut a = node("a");
    let mut b = node("a");
    assert_eq!(a.digest(), b.digest());
    a.write(Kind::Override, "k", Some("1".into()), "op", 1);
    b.write(Kind::Override, "k", None, "op", 1);
    assert_ne!(a.digest(), b.digest());
}

#[test]
fn codec_round_trips_and_refuses_unknown_kinds_and_oversize() {
    let mut a = node("a");
    let e = a.write(Kind::ForgottenPin, "agent-7", Some("{}".into()), "op", 1);
    let m = PeerMsg::Push {
        from: "a".into(),
        gossip_port: 7946,
        seq: 3,
        entries: vec![e],
    };
    let bytes = msg::encode(&m);
    assert_eq!(msg::decode(&bytes), Ok(m));
    let unknown = String::from_utf8(bytes)
        .unwrap()
        .replace("\"kind\":3", "\"kind\":99");
    assert_eq!(
        msg::decode(unknown.as_bytes()),
        Err(PeerRefusal::UnknownKind)
    );
    assert_eq!(
        msg::decode(&vec![b' '; msg::MAX_PLAIN + 1]),
        Err(PeerRefusal::Oversize)
    );
    let digest = format!(
        "{{\"t\":\"digest\",\"from\":\"a\",\"gossip_port\":1,\"digest\":\"{}\",\"count\":1,\"reply\":false}}",
        "f".repeat(65)
    );
    assert_eq!(msg::decode(digest.as_bytes()), Err(PeerRefusal::Oversize));
    assert_eq!(
        msg::decode(b"{\"t\":\"nope\"}"),
        Err(PeerRefusal::Malformed)
    );
    assert_eq!(msg::decode(b"\xff\x00"), Err(PeerRefusal::Malformed));
}

#[test]
fn chunks_fit_one_datagram_each() {
    let mut a = node("a");
    let entries: Vec<Entry> = (0..300)
        .map(|i| {
            a.write(
                Kind::Override,
                &format!("svc/10.0.0.{i}/80"),
                Some("x".repeat(200)),
                "op",
                1,
            )
        })
        .collect();
    let chunks = msg::chunk(&entries, "node-a");
    assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 300);
    for c in chunks {
        let m = PeerMsg::Push {
            from: "node-a".into(),
            gossip_port: 65535,
            seq: u64::MAX,
            entries: c,
        };
        assert!(msg::encode(&m).len() <= msg::MAX_PLAIN);
    }
}

#[test]
fn managed_entries_never_share_a_push_with_the_older_kinds() {
    let mut r = node("a");
    r.write(
        Kind::Override,
        "app/10.0.0.1/80",
        Some("{}".into()),
        "op",
        1,
    );
    r.write(Kind::GeoMapping, "10.0.0.0/8", Some("{}".into()), "op", 2);
    r.write(Kind::ManagedRegion, "west", Some("{}".into()), "op", 3);
    r.write(Kind::ManagedDomain, "shop.test", None, "op", 4);
    let chunks = msg::chunk(&all(&r), "a");
    assert_eq!(chunks.len(), 2);
    assert!(chunks[0].iter().all(|e| !e.kind.is_managed()));
    assert!(chunks[1].iter().all(|e| e.kind.is_managed()));
    // The new kinds decode; a too-large one does not fit a push.
    let m = PeerMsg::Push {
        from: "a".into(),
        gossip_port: 1,
        seq: 1,
        entries: chunks[1].clone(),
    };
    assert_eq!(msg::decode(&msg::encode(&m)).unwrap(), m);
    let mut big = chunks[1][0].clone();
    big.value = Some("\"".repeat(800));
    assert!(!msg::fits(&big, "a"));
    assert!(msg::fits(&chunks[1][0], "a"));
}
