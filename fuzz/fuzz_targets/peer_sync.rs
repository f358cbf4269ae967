//! Fuzz target: peer sync message plaintexts (SPEC §12), decoded and merged into a replica.
//! The logic lives in `fuzz/harness.rs`, shared with tests/fuzz_corpus.rs.
#![no_main]

#[path = "../harness.rs"]
mod harness;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = harness::peer_sync(data);
});
