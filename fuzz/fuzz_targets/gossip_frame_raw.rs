//! Fuzz target: bytes off the network before decryption, to the Overwatch side (on_packet), the agent side (on_datagram) and the TCP frame splitter.
//! The logic lives in `fuzz/harness.rs`, shared with tests/fuzz_corpus.rs.
#![no_main]

#[path = "../harness.rs"]
mod harness;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = harness::gossip_frame_raw(data);
});
