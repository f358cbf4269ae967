//! Authoritative DNS for the GSLB names (SPEC §6).
//!
//! `table` holds the immutable answers published by the registry thread,
//! `routing` picks addresses per algorithm, `responder` turns one query
//! into one answer without I/O or allocation, `server` runs the UDP and TCP
//! poll loops, `stats` keeps the counters.

mod fastpath;
pub mod responder;
pub mod routing;
pub mod server;
pub mod stats;
pub mod table;
mod tcp;
mod udp;
mod udp_batch;

pub use responder::{Responder, Transport};
pub use server::{DnsServer, ServerConfig, parse_listen, start};
pub use stats::DnsStats;
pub use table::{DnsTable, DomainSpec, TableSpec, Target, ZoneSpec};
