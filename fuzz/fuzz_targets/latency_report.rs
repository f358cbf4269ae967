//! Fuzz target: arbitrary latency report bodies (gossip type 32) and
//! netlink sock_diag replies (the agent's kernel reader).
//! The logic lives in `fuzz/harness.rs`, shared with tests/it/fuzz_corpus.rs.
#![no_main]

#[path = "../harness.rs"]
mod harness;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = harness::latency_report(data);
});
