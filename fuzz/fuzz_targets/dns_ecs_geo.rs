//! Fuzz target: arbitrary ECS option bodies (RFC 7871) to geolocation and learned-latency names; malformed ones are FORMERR with OPT, answers echo ECS with a scope within the address.
//! The logic lives in `fuzz/harness.rs`, shared with tests/fuzz_corpus.rs.
#![no_main]

#[path = "../harness.rs"]
mod harness;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = harness::dns_ecs_geo(data);
});
