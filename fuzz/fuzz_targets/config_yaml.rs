//! Fuzz target: bytes as the text of a configuration file through config::load_str, in each mode.
//! The logic lives in `fuzz/harness.rs`, shared with tests/it/fuzz_corpus.rs.
#![no_main]

#[path = "../harness.rs"]
mod harness;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = harness::config_yaml(data);
});
