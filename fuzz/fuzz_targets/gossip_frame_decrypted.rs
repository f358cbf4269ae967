//! Fuzz target: arbitrary plaintexts sealed with a known key, so the fuzzer reaches the gossip message parsers and both protocol state machines.
//! The logic lives in `fuzz/harness.rs`, shared with tests/fuzz_corpus.rs.
#![no_main]

#[path = "../harness.rs"]
mod harness;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = harness::gossip_frame_decrypted(data);
});
