//! DNSSEC online signing (SPEC §13), pure logic only.
//!
//! `key` holds one combined signing key (CSK) and computes its DNSKEY,
//! key tag and DS; `keyfile` reads and writes the documented key file
//! format (no file I/O: callers pass text); `wire` writes names and RRsets
//! in the canonical form of RFC 4034 §6; `rrsig` builds the RRSIG record
//! over one RRset; `nsec` builds the compact denial NSEC of RFC 9824;
//! `cache` remembers signatures per (RRset content, validity window) so a
//! warm answer is signed without computing or allocating; `rollover`
//! holds the steps of a key rollover. The responder
//! and the daemon do the I/O around these.

pub mod cache;
pub mod key;
pub mod keyfile;
pub mod nsec;
pub mod rollover;
pub mod rrsig;
pub mod wire;

pub use cache::{SignatureCache, Validity};
pub use key::{Algorithm, SigningKey};
pub use keyfile::KeyFile;
pub mod signer;
pub use signer::Signer;
