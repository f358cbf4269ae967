//! Fuzz target: a method, a URL for the API router and a body for every write endpoint's JSON parser.
//! The logic lives in `fuzz/harness.rs`, shared with tests/it/fuzz_corpus.rs.
#![no_main]

#[path = "../harness.rs"]
mod harness;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = harness::api_body(data);
});
