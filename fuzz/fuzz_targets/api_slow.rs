//! Fuzz target: clients that send arbitrary bytes to the API in arbitrary chunks and pause anywhere; the API must keep answering.
//! The logic lives in `fuzz/slow_api.rs` (through `fuzz/harness.rs`), shared with tests/it/fuzz_corpus.rs.
#![no_main]

#[path = "../harness.rs"]
mod harness;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = harness::api_slow(data);
});
