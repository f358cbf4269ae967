//! Authoritative DNS for the GSLB names (SPEC §6).
//!
//! `table` holds the immutable answers published by the registry thread,
//! `routing` picks addresses per algorithm, `responder` turns one query
//! into one answer without I/O or allocation, `server` runs the UDP and TCP
//! poll loops, `stats` keeps the counters.

mod cookies;
pub mod dnssec;
mod edns;
mod fastpath;
pub mod keystore;
pub mod learned;
pub mod nameservers;
mod query;
pub mod regional;
pub mod responder;
pub mod routing;
pub mod rrl;
#[doc(hidden)]
pub mod sample;
pub mod server;
mod signing;
mod siphash;
pub mod stats;
pub mod table;
mod tcp;
mod udp;
mod udp_batch;

pub use nameservers::{HostSpec, NameServerSpec};
pub use regional::{RegionTargets, RouteMatch};
pub use responder::{Responder, Transport};
pub use server::{DnsServer, ServerConfig, start};
pub use stats::DnsStats;
pub use table::{DnsTable, DomainSpec, TableSpec, Target, ZoneSpec};
