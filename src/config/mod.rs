//! Configuration: the YAML schema, durations, and the loader that reports
//! every error at once with file, line and key.
//!
//! Entry point: [`load`]. Everything the daemon needs from a file (the
//! typed config, the mode, secrets read from `*_file` keys, warnings to log)
//! comes back in [`Loaded`]; every problem comes back in [`ConfigErrors`].

pub mod audit;
mod compat;
pub mod conflicts;
pub mod duration;
mod error;
mod geo_rules;
mod glob;
pub mod keys;
mod lines;
pub mod listen;
mod load;
mod merge;
pub mod min_healthy;
pub mod redact;
pub mod schema;
mod secrets;
mod validate;
pub mod values;
mod walk;

pub use duration::Dur;
pub use error::{ConfigError, ConfigErrors};
pub use keys::all_keys;
pub use listen::{ListenError, Listener};
pub use load::{Loaded, load, load_str};
pub use min_healthy::MinHealthy;
pub use schema::*;
pub use secrets::Secrets;
pub use validate::LOG_LEVELS;
pub use values::{decode_key, parse_host_port, parse_network};

/// Validates a configuration built in memory (the file's with the API's
/// entries laid over it): the first error, with its key, or Ok.
pub fn revalidate(cfg: &Config) -> Result<(), String> {
    let report = validate::validate(cfg, Mode::Overwatch);
    match report.errors.first() {
        Some((path, msg)) => Err(format!("{path}: {msg}")),
        None => Ok(()),
    }
}
