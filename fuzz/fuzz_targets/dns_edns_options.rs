//! Fuzz target: arbitrary EDNS option lists (ECS, COOKIE, unknown, malformed) in a query's OPT record, with and without rate limiting; every answer carries OPT.
//! The logic lives in `fuzz/harness.rs`, shared with tests/fuzz_corpus.rs.
#![no_main]

#[path = "../harness.rs"]
mod harness;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = harness::dns_edns_options(data);
});
