//! Fault injection and load: network namespaces with cut links and loss
//! (needs root, iproute2, iptables, python3), a dnsperf flood, and the
//! register/retransmit regression on the pure protocol objects. One
//! binary (`cargo test --test faults netns::`); helpers in tests/util.

#[path = "../util/mod.rs"]
mod util;

mod load;
mod netns;
mod register_retransmit;
