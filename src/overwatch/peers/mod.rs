//! Overwatch peers (SPEC §12): several Overwatches act as one for what
//! operators write. Overrides, revocations, forgotten pins, geo mappings
//! and the API's servers, regions and domains live in a last-writer-wins map
//! (`lww.rs`) stamped by a hybrid logical clock (`hlc.rs`); `msg.rs` is
//! the peer message codec; `link.rs` is the I/O thread (`peers`) that
//! pushes changes at once, retransmits until acknowledged and exchanges
//! digests on contact and every `overwatch.peer_sync.interval`. DNS never
//! waits for it: remote changes reach the registry thread over a channel
//! and are applied like operator commands.

pub mod hlc;
pub mod link;
pub mod lww;
pub mod msg;
pub mod status;

#[cfg(test)]
mod tests;

pub use hlc::{Hlc, Stamp};
pub use lww::{Entry, Kind, Merged, Refusal, Rejected, Replica};
