//! The Overwatch: the registry of agents and backends, the health
//! precedence, and the thread that owns them and publishes snapshots for
//! DNS, the API and gossip.
//!
//! `registry/` holds the state and the rules that change it, `ingest/`
//! turns arriving events into registry calls, `publish/` turns registry
//! changes into the DNS table spec, the API view and the gossip policy,
//! and `runtime.rs` is the loop that ties them together.

pub mod drain_guard;
pub mod geo_watch;
mod ingest;
pub mod learned;
pub mod managed;
pub mod metrics;
pub mod model;
pub mod peers;
pub mod persisted;
pub mod precedence;
pub mod publish;
pub mod registry;
pub mod runtime;
pub mod targets;
