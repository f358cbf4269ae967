//! The Overwatch: the registry of agents and backends, the health
//! precedence, and the thread that owns them and publishes snapshots for
//! DNS, the API and gossip.

mod commands;
pub mod dns_spec;
pub mod metrics;
pub mod model;
pub mod persisted;
pub mod precedence;
pub mod registry;
pub mod runtime;
pub mod targets;
pub mod view;

#[cfg(test)]
mod registry_tests;
