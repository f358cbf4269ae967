//! The Overwatch's operations surface (SPEC §7): an HTTP API on tiny_http
//! that reads an immutable `OverwatchView` published by the registry and
//! sends writes to the registry as `Command`s. The registry stays the only
//! writer of state; this module never mutates anything but its sockets.
//!
//! `view` and `command` are the contract with the registry; `routes`,
//! `access`, `read` and `write` are pure and unit-tested; `server` does the
//! I/O.

pub mod access;
pub mod command;
pub mod managed_read;
pub mod openapi;
pub mod read;
pub mod routes;
pub mod server;
pub mod v11;
pub mod view;
pub mod write;
pub mod writers;

pub use command::{ApiError, Command, CommandRequest, CommandSender, Reply};
pub use server::{ApiServer, MetricsFn, start};
pub use view::{
    AgentStatus, AgentView, AuditEntry, BackendStatus, BackendView, DomainView, LostAgentView,
    OverrideView, OverwatchView,
};
