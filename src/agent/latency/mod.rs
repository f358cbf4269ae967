//! Learned latency on the agent (SPEC §11): the kernel's round trips of
//! clients' established TCP connections to the backend ports
//! (`sockdiag.rs`), aggregated per client prefix (`subnets.rs`) and sent to
//! every Overwatch in bounded batches (`poller.rs`).

pub mod poller;
pub mod sockdiag;
pub mod subnets;
