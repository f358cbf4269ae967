//! The Overwatch: the registry of agents and backends, the health
//! precedence, and the thread that owns them and publishes snapshots for
//! DNS, the API and gossip.

pub mod clock;
pub mod model;
pub mod precedence;
pub mod registry;
pub mod targets;
#[cfg(test)]
mod registry_tests;
