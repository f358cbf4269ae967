//! Fuzz target: arbitrary bytes as a DNS query against a fixed table, over UDP and TCP; any UDP answer fits 1232 bytes.
//! The logic lives in `fuzz/harness.rs`, shared with tests/it/fuzz_corpus.rs.
#![no_main]

#[path = "../harness.rs"]
mod harness;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = harness::dns_query(data);
});
