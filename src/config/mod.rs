//! Configuration: the YAML schema, durations, and the loader that reports
//! every error at once with file, line and key.

pub mod duration;
pub mod schema;

pub use duration::Dur;
pub use schema::*;
