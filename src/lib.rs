//! OpenGSLB: a global server load balancer.
//!
//! Agents beside the applications push health and drains over encrypted
//! gossip to Overwatch nodes, which serve authoritative DNS with only the
//! healthy backends. This library holds every subsystem so that the two
//! binaries (`opengslb`, `opengslb-cli`), the tests and the fuzz targets
//! reach the same code. Each subsystem lives in its own folder with its
//! pure logic apart from the thread that does the I/O.

pub mod agent;
pub mod api;
pub mod backend;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod dns;
pub mod exit;
pub mod geo;
pub mod gossip;
pub mod health;
pub mod httpbody;
pub mod httpguard;
pub mod httpserve;
pub mod metrics;
pub mod netio;
pub mod netprefix;
pub mod overwatch;
pub mod persist;
pub mod snapshot;
pub mod timefmt;

/// The version printed by `--version` and exported as `opengslb_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
