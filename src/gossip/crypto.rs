//! AES-256-GCM sealing and opening of gossip packets with a keyring.
//!
//! The first key of the ring encrypts; every key is tried to decrypt, the
//! one whose 4-byte id is in the header first, so keys rotate without a
//! flag day: add the new key as an accepted key everywhere, then make it
//! the first key, then drop the old one. The whole 36-byte header is the
//! additional authenticated data, so no header field can be altered.

use super::wire::{HEADER_LEN, Header, MAGIC, VERSION};
use base64::Engine;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use std::fmt;
use std::sync::Arc;

pub const TAG_LEN: usize = 16;

struct Key {
    id: [u8; 4],
    aead: LessSafeKey,
}

/// The keys of one node; cheap to clone.
#[derive(Clone, Default)]
pub struct Keyring {
    keys: Arc<Vec<Key>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self.keys.iter().map(|k| super::hex(&k.id)).collect();
        write!(f, "Keyring{{ids: {ids:?}}}")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    Empty,
    /// (position in the list, what is wrong)
    Invalid(usize, String),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Empty => write!(f, "no gossip encryption key configured"),
            KeyError::Invalid(i, why) => write!(f, "gossip encryption key #{}: {why}", i + 1),
        }
    }
}

impl std::error::Error for KeyError {}

/// The short id of a key written in the header: SHA-256 of a label and the
/// key, truncated. It reveals nothing useful about the key.
fn key_id(raw: &[u8; 32]) -> [u8; 4] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"opengslb-gossip-key-id");
    ctx.update(raw);
    let d = ctx.finish();
    let mut id = [0u8; 4];
    id.copy_from_slice(&d.as_ref()[..4]);
    id
}

impl Keyring {
    /// Keys written in base64 (standard alphabet, 32 bytes each); the first
    /// encrypts.
    pub fn from_base64<S: AsRef<str>>(keys: &[S]) -> Result<Keyring, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        let mut raw = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(k.as_ref().trim())
                .map_err(|e| KeyError::Invalid(i, format!("not base64: {e}")))?;
            let arr: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| KeyError::Invalid(i, format!("{} bytes, want 32", bytes.len())))?;
            raw.push(arr);
        }
        Ok(Keyring::from_raw(&raw))
    }

    pub fn from_raw(keys: &[[u8; 32]]) -> Keyring {
        let keys = keys
            .iter()
            .filter_map(|raw| {
                let unbound = UnboundKey::new(&AES_256_GCM, raw).ok()?;
                Some(Key {
                    id: key_id(raw),
                    aead: LessSafeKey::new(unbound),
                })
            })
            .collect();
        Keyring {
            keys: Arc::new(keys),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Seals `plaintext` under the first key. `None` only for an empty ring.
    pub fn seal(&self, session_id: u64, counter: u64, plaintext: &[u8]) -> Option<Vec<u8>> {
        self.seal_with(0, session_id, counter, plaintext)
    }

    /// Seals under key `index` (a reply goes out under the key that opened
    /// the request, so two nodes with overlapping rings always agree).
    pub fn seal_with(
        &self,
        index: usize,
        session_id: u64,
        counter: u64,
        plaintext: &[u8],
    ) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).ok()?;
        self.seal_with_nonce(index, session_id, counter, nonce, plaintext)
    }

    /// Seals with a nonce the caller drew (the protocol objects draw it
    /// from their `Entropy`, so a simulation replays byte for byte). The
    /// nonce must never repeat under a key.
    pub fn seal_with_nonce(
        &self,
        index: usize,
        session_id: u64,
        counter: u64,
        nonce: [u8; NONCE_LEN],
        plaintext: &[u8],
    ) -> Option<Vec<u8>> {
        let key = self.keys.get(index).or(self.keys.first())?;
        let header = Header {
            key_id: key.id,
            session_id,
            counter,
            nonce,
        };
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        header.emit(&mut out);
        out.extend_from_slice(plaintext);
        let (head, body) = out.split_at_mut(HEADER_LEN);
        let tag = key
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&*head),
                body,
            )
            .ok()?;
        out.extend_from_slice(tag.as_ref());
        Some(out)
    }

    /// Authenticates and decrypts a packet.
    pub fn open(&self, packet: &[u8]) -> Result<(Header, Vec<u8>), OpenError> {
        self.open_indexed(packet).map(|(h, b, _)| (h, b))
    }

    /// Like `open`, also returning the index of the key that opened it.
    pub fn open_indexed(&self, packet: &[u8]) -> Result<(Header, Vec<u8>, usize), OpenError> {
        let header = Header::parse(packet).map_err(|_| OpenError::Malformed)?;
        let (aad, sealed) = packet.split_at(HEADER_LEN);
        if sealed.len() < TAG_LEN {
            return Err(OpenError::Malformed);
        }
        let keys = self.keys.iter().enumerate();
        let preferred = keys.clone().filter(|(_, k)| k.id == header.key_id);
        let others = keys.filter(|(_, k)| k.id != header.key_id);
        for (index, key) in preferred.chain(others) {
            let mut buf = sealed.to_vec();
            let nonce = Nonce::assume_unique_for_key(header.nonce);
            if let Ok(plain) = key.aead.open_in_place(nonce, Aad::from(aad), &mut buf) {
                let n = plain.len();
                buf.truncate(n);
                return Ok((header, buf, index));
            }
        }
        Err(OpenError::Decrypt)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Not our magic, not our version, or too short to hold a tag.
    Malformed,
    /// No key of the ring authenticates it.
    Decrypt,
}

// The header parser rejects anything else; keep the constants referenced
// here so a format change is seen in both places.
const _: () = assert!(MAGIC.len() == 2 && VERSION == 1);

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(b: u8) -> Keyring {
        Keyring::from_raw(&[[b; 32]])
    }

    #[test]
    fn seal_open_roundtrip_and_tamper() {
        let k = ring(1);
        let p = k.seal(7, 9, b"hello").expect("seal");
        let (h, body) = k.open(&p).expect("open");
        assert_eq!(
            (h.session_id, h.counter, body.as_slice()),
            (7, 9, &b"hello"[..])
        );
        for i in 0..p.len() {
            let mut t = p.clone();
            t[i] ^= 1;
            assert!(k.open(&t).is_err(), "flip at {i} accepted");
        }
        assert_eq!(ring(2).open(&p), Err(OpenError::Decrypt));
    }

    #[test]
    fn rotation_old_key_still_opens() {
        let old = ring(1);
        let both = Keyring::from_raw(&[[2; 32], [1; 32]]);
        let p = old.seal(1, 1, b"x").expect("seal");
        assert!(both.open(&p).is_ok());
        let q = both.seal(1, 2, b"y").expect("seal");
        assert_eq!(old.open(&q), Err(OpenError::Decrypt));
    }

    #[test]
    fn base64_keys_checked() {
        assert_eq!(
            Keyring::from_base64::<&str>(&[]).err(),
            Some(KeyError::Empty)
        );
        assert!(matches!(
            Keyring::from_base64(&["abc"]),
            Err(KeyError::Invalid(0, _))
        ));
        let good = base64::engine::general_purpose::STANDARD.encode([5u8; 32]);
        assert!(Keyring::from_base64(&[good]).is_ok());
    }
}
