//! Agent mode: checks the local backends, watches the drain file and the
//! predictive signals, and pushes the result to every Overwatch.

pub mod api;
pub mod drain_file;
pub mod latency;
pub mod metrics;
pub mod predictive;
pub mod renewal;
pub mod runtime;
pub mod state;
