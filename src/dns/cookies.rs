//! DNS cookies, server side (RFC 7873), with the interoperable server
//! cookie of RFC 9018.
//!
//! Server cookie = version 1, three reserved bytes, a 32-bit timestamp
//! (unix seconds) and SipHash-2-4 over client cookie | version | reserved |
//! timestamp | client IP, keyed with the server secret. A cookie is valid
//! when its hash matches and its timestamp is at most an hour old and at
//! most five minutes ahead (RFC 9018 §4.3); one older than half an hour is
//! replaced by a fresh one, a younger one is echoed.
//!
//! Secret rotation: the secret of each hour is derived from a master with
//! SipHash (a PRF), and a cookie is checked with the secret of the hour
//! its timestamp names, so the previous hour's secret is still accepted
//! for as long as its cookies are fresh, and no thread has to coordinate a
//! switch.
//!
//! Shared across peers: a client that talks to several Overwatches of one
//! cluster must see its cookie accepted by all of them. A node with
//! `overwatch.peers` derives its master from the cluster's shared gossip
//! key with HKDF-SHA256 (`ring`; salt and info name this use, so the
//! master says nothing about the key), so every node holding the same key
//! computes the same master, hence the same secret each hour, with no new
//! protocol. Cookies are minted with the primary key's master and
//! accepted under the master of any key in the ring, so a key rotation
//! (new key accepted everywhere, then made primary) keeps them valid. A
//! standalone node keeps a random master of its own. The masters live in
//! atomics, so a reload can change them while responder threads read
//! (a query that reads half an old and half a new master fails its
//! check and gets a fresh cookie, as any first contact).
//!
//! Client addresses are canonical: an IPv4 client seen through a dual-stack
//! socket (`::ffff:a.b.c.d`) hashes as IPv4, as another server would see it.

use super::edns::Cookie;
use super::siphash::siphash24;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// How long a server cookie is accepted after it was minted (RFC 9018 §4.3).
const VALID_PAST: u32 = 3600;
/// How far a timestamp may run ahead of our clock (RFC 9018 §4.3).
const VALID_FUTURE: u32 = 300;
/// A cookie older than this is replaced by a fresh one (RFC 9018 §4.3).
const REFRESH_AFTER: u32 = 1800;
/// Secret lifetime; must be at least `VALID_PAST` so that one previous
/// secret covers every fresh cookie.
const ROTATE: u32 = 3600;

/// What the client's COOKIE proved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A server cookie of ours, fresh: the source address is real.
    Valid,
    /// Only a client cookie, or a server cookie we cannot accept (another
    /// server's, stale, forged): treated as a first contact (RFC 7873
    /// §5.2.3, §5.2.4).
    Unproven,
}

/// Masters kept at once: one per key of the gossip keyring (at most).
const MAX_MASTERS: usize = 4;

pub struct CookieJar {
    /// `masters[0]` mints; the first `count` verify. Each is two halves.
    masters: [[AtomicU64; 2]; MAX_MASTERS],
    count: AtomicUsize,
    /// This process's own master, for a standalone node.
    random: [u8; 16],
}

impl std::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieJar { .. }")
    }
}

impl Default for CookieJar {
    fn default() -> Self {
        CookieJar::random()
    }
}

impl CookieJar {
    /// A jar with a master secret from the system's random source.
    pub fn random() -> CookieJar {
        CookieJar::with_master(random_key())
    }

    /// A jar with a given master secret.
    pub(crate) fn with_master(master: [u8; 16]) -> CookieJar {
        let jar = CookieJar {
            masters: Default::default(),
            count: AtomicUsize::new(1),
            random: master,
        };
        jar.store(0, &master);
        jar
    }

    /// Cookies shared with the peers holding the same gossip keys
    /// (primary first); with no key, this node's own random master.
    pub(crate) fn share(&self, keys: &[[u8; 32]]) {
        let masters: Vec<[u8; 16]> = keys
            .iter()
            .take(MAX_MASTERS)
            .filter_map(master_from_peer_key)
            .collect();
        if masters.is_empty() {
            return self.standalone();
        }
        for (i, m) in masters.iter().enumerate() {
            self.store(i, m);
        }
        self.count.store(masters.len(), Ordering::Release);
    }

    /// Back to this node's own random master.
    pub(crate) fn standalone(&self) {
        self.store(0, &self.random);
        self.count.store(1, Ordering::Release);
    }

    fn store(&self, i: usize, master: &[u8; 16]) {
        let (a, b) = master.split_at(8);
        let half = |h: &[u8]| u64::from_le_bytes(h.try_into().unwrap_or([0; 8]));
        self.masters[i][0].store(half(a), Ordering::Relaxed);
        self.masters[i][1].store(half(b), Ordering::Relaxed);
    }

    fn master(&self, i: usize) -> [u8; 16] {
        let mut m = [0u8; 16];
        m[..8].copy_from_slice(&self.masters[i][0].load(Ordering::Relaxed).to_le_bytes());
        m[8..].copy_from_slice(&self.masters[i][1].load(Ordering::Relaxed).to_le_bytes());
        m
    }

    /// The secret of rotation period `epoch` under `master`.
    fn secret(master: &[u8; 16], epoch: u32) -> [u8; 16] {
        let e = epoch.to_be_bytes();
        let a = siphash24(master, &[b"opengslb cookie secret", &e, &[0]]);
        let b = siphash24(master, &[b"opengslb cookie secret", &e, &[1]]);
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&a.to_le_bytes());
        k[8..].copy_from_slice(&b.to_le_bytes());
        k
    }

    fn mint_with(master: &[u8; 16], client: &[u8; 8], ip: IpAddr, ts: u32) -> [u8; 16] {
        server_cookie(&Self::secret(master, ts / ROTATE), client, ip, ts)
    }

    /// The 16-byte server cookie for `client` at `ip`, minted at `ts`.
    fn mint(&self, client: &[u8; 8], ip: IpAddr, ts: u32) -> [u8; 16] {
        Self::mint_with(&self.master(0), client, ip, ts)
    }

    /// Whether `received` is a server cookie minted under one of our
    /// masters.
    fn ours(&self, received: &[u8], client: &[u8; 8], ip: IpAddr, ts: u32) -> bool {
        let n = self.count.load(Ordering::Acquire).clamp(1, MAX_MASTERS);
        (0..n).any(|i| Self::mint_with(&self.master(i), client, ip, ts).as_slice() == received)
    }

    /// Checks the query's cookie and builds the answer's COOKIE option
    /// (client cookie followed by our server cookie). `now` is unix seconds.
    pub(crate) fn answer(&self, c: &Cookie, ip: IpAddr, now: u32) -> (Verdict, [u8; 24]) {
        let mut out = [0u8; 24];
        out[..8].copy_from_slice(&c.client);
        let received = c.server_bytes();
        let verdict = match parse_ts(received) {
            Some(ts)
                if now.wrapping_sub(ts) <= VALID_PAST || ts.wrapping_sub(now) <= VALID_FUTURE =>
            {
                if self.ours(received, &c.client, ip, ts) {
                    Verdict::Valid
                } else {
                    Verdict::Unproven
                }
            }
            _ => Verdict::Unproven,
        };
        let reuse = verdict == Verdict::Valid
            && parse_ts(received).is_some_and(|ts| now.wrapping_sub(ts) < REFRESH_AFTER);
        if reuse {
            out[8..].copy_from_slice(received);
        } else {
            out[8..].copy_from_slice(&self.mint(&c.client, ip, now));
        }
        (verdict, out)
    }
}

/// The cookie master of a cluster whose nodes share gossip `key`:
/// HKDF-SHA256 with a salt and info of its own, so it reveals nothing
/// about the key and no other use of the key derives the same bytes.
fn master_from_peer_key(key: &[u8; 32]) -> Option<[u8; 16]> {
    use ring::hkdf;
    struct Len16;
    impl hkdf::KeyType for Len16 {
        fn len(&self) -> usize {
            16
        }
    }
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"opengslb dns cookies v1").extract(key);
    let mut out = [0u8; 16];
    prk.expand(&[b"rfc9018 server cookie master"], Len16)
        .and_then(|okm| okm.fill(&mut out))
        .ok()?;
    Some(out)
}

/// 16 random bytes for a keyed hash (cookie master, RRL hash key).
pub(crate) fn random_key() -> [u8; 16] {
    use ring::rand::SecureRandom;
    let mut key = [0u8; 16];
    if ring::rand::SystemRandom::new().fill(&mut key).is_err() {
        // Practically unreachable; still never run with a known key.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let salt = [0x5a; 16];
        let a = siphash24(
            &salt,
            &[&t.to_le_bytes(), &std::process::id().to_le_bytes()],
        );
        let b = siphash24(&salt, &[&a.to_le_bytes(), &t.to_be_bytes()]);
        key[..8].copy_from_slice(&a.to_le_bytes());
        key[8..].copy_from_slice(&b.to_le_bytes());
        log::error!("dns: no system randomness for a secret; derived one from the clock");
    }
    key
}

/// The timestamp of an RFC 9018 server cookie (version 1, 16 bytes).
fn parse_ts(server: &[u8]) -> Option<u32> {
    match server {
        [1, 0, 0, 0, a, b, c, d, ..] if server.len() == 16 => {
            Some(u32::from_be_bytes([*a, *b, *c, *d]))
        }
        _ => None,
    }
}

/// RFC 9018 §4.2 server cookie with an explicit secret.
fn server_cookie(secret: &[u8; 16], client: &[u8; 8], ip: IpAddr, ts: u32) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[0] = 1;
    out[4..8].copy_from_slice(&ts.to_be_bytes());
    let hash = match ip.to_canonical() {
        IpAddr::V4(v4) => siphash24(secret, &[client, &out[..8], &v4.octets()]),
        IpAddr::V6(v6) => siphash24(secret, &[client, &out[..8], &v6.octets()]),
    };
    out[8..].copy_from_slice(&hash.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 9018 Appendix A.1: the IPv4 test vector.
    #[test]
    fn rfc9018_appendix_a_vector() {
        let secret: [u8; 16] = hex("e5e973e5a6b2a43f48e7dc849e37bfcf").try_into().unwrap();
        let client: [u8; 8] = hex("2464c4abcf10c957").try_into().unwrap();
        let out = server_cookie(
            &secret,
            &client,
            "198.51.100.100".parse().unwrap(),
            1559731985,
        );
        assert_eq!(out.to_vec(), hex("010000005cf79f111f8130c3eee29480"));
    }

    fn cookie(client: [u8; 8], server: &[u8]) -> Cookie {
        let mut c = Cookie {
            client,
            server: [0; 32],
            server_len: server.len() as u8,
        };
        c.server[..server.len()].copy_from_slice(server);
        c
    }

    /// RFC 7873 §5.2.3/§5.2.4 and RFC 9018 §4.3: first contact gets a
    /// cookie; ours is accepted while fresh, echoed while young, renewed
    /// after half an hour, refused after an hour, from another address or
    /// with a forged hash; the previous hour's secret still verifies.
    #[test]
    fn rfc7873_cookie_lifecycle_and_rotation() {
        let jar = CookieJar::with_master([7; 16]);
        let ip: IpAddr = "192.0.2.10".parse().unwrap();
        let client = [1, 2, 3, 4, 5, 6, 7, 8];
        let t0 = 1_700_000_000 - 100; // just before an hour boundary
        let (v, first) = jar.answer(&cookie(client, &[]), ip, t0);
        assert_eq!(v, Verdict::Unproven);
        assert_eq!(&first[..8], &client);
        let server = first[8..].to_vec();
        let (v, again) = jar.answer(&cookie(client, &server), ip, t0 + 60);
        assert_eq!(v, Verdict::Valid);
        assert_eq!(&again[8..], &server[..], "young cookie echoed");
        // Next hour: minted with the previous secret, still valid, renewed.
        let (v, renewed) = jar.answer(&cookie(client, &server), ip, t0 + 2000);
        assert_eq!(v, Verdict::Valid);
        assert_ne!(&renewed[8..], &server[..]);
        assert_eq!(
            jar.answer(&cookie(client, &server), ip, t0 + 3601).0,
            Verdict::Unproven
        );
        // IPv4 through a dual-stack socket is the same client.
        let mapped: IpAddr = "::ffff:192.0.2.10".parse().unwrap();
        assert_eq!(
            jar.answer(&cookie(client, &server), mapped, t0 + 1).0,
            Verdict::Valid
        );
        let other: IpAddr = "192.0.2.11".parse().unwrap();
        assert_eq!(
            jar.answer(&cookie(client, &server), other, t0 + 1).0,
            Verdict::Unproven
        );
        let mut forged = server.clone();
        forged[15] ^= 1;
        assert_eq!(
            jar.answer(&cookie(client, &forged), ip, t0 + 1).0,
            Verdict::Unproven
        );
        // Another master (another server) does not accept ours.
        let jar2 = CookieJar::with_master([8; 16]);
        assert_eq!(
            jar2.answer(&cookie(client, &server), ip, t0 + 1).0,
            Verdict::Unproven
        );
        // A timestamp from the future beyond five minutes is refused.
        let future = jar.mint(&client, ip, t0 + 600);
        assert_eq!(
            jar.answer(&cookie(client, &future), ip, t0).0,
            Verdict::Unproven
        );
    }

    /// RFC 9018 §1 (a cookie from one server of an anycast set or cluster
    /// accepted by the others): two nodes sharing the gossip key accept
    /// each other's cookies, also in the next hour and through a key
    /// rotation; a standalone node and a node of another cluster do not.
    #[test]
    fn rfc9018_cookie_from_node_a_validates_on_node_b() {
        let (k1, k2) = ([1u8; 32], [2u8; 32]);
        let (a, b) = (CookieJar::random(), CookieJar::random());
        a.share(&[k1]);
        b.share(&[k1]);
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        let client = [9, 8, 7, 6, 5, 4, 3, 2];
        let t0 = 1_700_000_000 - 100;
        let (_, first) = a.answer(&cookie(client, &[]), ip, t0);
        let from_a = first[8..].to_vec();
        let (v, echoed) = b.answer(&cookie(client, &from_a), ip, t0 + 30);
        assert_eq!(v, Verdict::Valid, "B accepts A's cookie");
        assert_eq!(&echoed[8..], &from_a[..], "and echoes it while young");
        // The previous hour's secret on the other node too.
        assert_eq!(
            b.answer(&cookie(client, &from_a), ip, t0 + 2000).0,
            Verdict::Valid
        );
        // Rotation: B already has the new key as primary, A not yet; each
        // still accepts the other's cookies while both keys are in the ring.
        b.share(&[k2, k1]);
        assert_eq!(
            b.answer(&cookie(client, &from_a), ip, t0 + 60).0,
            Verdict::Valid
        );
        let (_, fresh) = b.answer(&cookie(client, &[]), ip, t0 + 60);
        a.share(&[k1, k2]);
        assert_eq!(
            a.answer(&cookie(client, &fresh[8..]), ip, t0 + 90).0,
            Verdict::Valid
        );
        // Another cluster, and a standalone node, do not.
        let other = CookieJar::random();
        other.share(&[[3u8; 32]]);
        assert_eq!(
            other.answer(&cookie(client, &from_a), ip, t0 + 30).0,
            Verdict::Unproven
        );
        let alone = CookieJar::random();
        assert_eq!(
            alone.answer(&cookie(client, &from_a), ip, t0 + 30).0,
            Verdict::Unproven
        );
        // Leaving the cluster: back to its own secret.
        b.standalone();
        assert_eq!(
            b.answer(&cookie(client, &from_a), ip, t0 + 30).0,
            Verdict::Unproven
        );
        // The master is not the key, and differs per key.
        assert_ne!(master_from_peer_key(&k1), master_from_peer_key(&k2));
        assert!(master_from_peer_key(&k1).is_some_and(|m| m[..] != k1[..16]));
    }
}
