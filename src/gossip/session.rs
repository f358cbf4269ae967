//! Per-session keys, agreed at registration, that bind every later agent
//! message (state, heartbeat, leave) and every ack to the agent that
//! proved its certificate key.
//!
//! The shared AES key only proves membership: every agent holds it. So the
//! agent puts an ephemeral X25519 public key in its signed Register, the
//! Overwatch answers with its own, and both derive an HMAC-SHA256 key with
//! HKDF (salt: the challenge nonce). Tagged messages carry the first 16
//! bytes of HMAC(key, sender session ‖ counter ‖ payload) after the body;
//! another key holder can neither forge nor alter them.

use super::ct_eq;
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{hkdf, hmac};
use std::fmt;

pub const SESSION_TAG_LEN: usize = 16;

/// One side's ephemeral key pair (single use).
pub struct DhOffer {
    private: EphemeralPrivateKey,
    pub public: [u8; 32],
}

impl fmt::Debug for DhOffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DhOffer({})", super::hex(&self.public))
    }
}

/// A fresh ephemeral X25519 key; `None` only without an entropy source.
pub fn offer() -> Option<DhOffer> {
    offer_with(&SystemRandom::new())
}

/// `offer` with the caller's RNG (see `gossip::entropy`).
pub fn offer_with(rng: &dyn SecureRandom) -> Option<DhOffer> {
    let private = EphemeralPrivateKey::generate(&X25519, rng).ok()?;
    let public = private
        .compute_public_key()
        .ok()?
        .as_ref()
        .try_into()
        .ok()?;
    Some(DhOffer { private, public })
}

/// The session key from our offer and the peer's public key; `None` when
/// the peer's key is invalid.
pub fn derive(
    mine: DhOffer,
    peer: &[u8; 32],
    challenge: &[u8; 32],
    agent_session: u64,
) -> Option<SessionKey> {
    let peer = UnparsedPublicKey::new(&X25519, peer);
    agreement::agree_ephemeral(mine.private, &peer, |secret| {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, challenge).extract(secret);
        let session = agent_session.to_be_bytes();
        let info = [&b"opengslb-session-v1"[..], &session[..]];
        let okm = prk.expand(&info, hmac::HMAC_SHA256).ok()?;
        Some(SessionKey(hmac::Key::from(okm)))
    })
    .ok()
    .flatten()
}

#[derive(Clone)]
pub struct SessionKey(hmac::Key);

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    pub fn tag(&self, session: u64, counter: u64, body: &[u8]) -> [u8; SESSION_TAG_LEN] {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(&session.to_be_bytes());
        ctx.update(&counter.to_be_bytes());
        ctx.update(body);
        let full = ctx.sign();
        let mut tag = [0u8; SESSION_TAG_LEN];
        tag.copy_from_slice(&full.as_ref()[..SESSION_TAG_LEN]);
        tag
    }

    pub fn verify(
        &self,
        session: u64,
        counter: u64,
        body: &[u8],
        tag: &[u8; SESSION_TAG_LEN],
    ) -> bool {
        ct_eq(&self.tag(session, counter, body), tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_derive_the_same_key() {
        let (a, b) = (offer().expect("a"), offer().expect("b"));
        let (pa, pb) = (a.public, b.public);
        let ka = derive(a, &pb, &[1; 32], 9).expect("ka");
        let kb = derive(b, &pa, &[1; 32], 9).expect("kb");
        let t = ka.tag(1, 2, b"body");
        assert!(kb.verify(1, 2, b"body", &t));
        assert!(!kb.verify(1, 3, b"body", &t));
        assert!(!kb.verify(1, 2, b"bodz", &t));
        let c = offer().expect("c");
        let pc = c.public;
        let other = derive(c, &pa, &[1; 32], 9).expect("kc");
        assert!(!other.verify(1, 2, b"body", &t));
        let _ = pc;
    }
}
