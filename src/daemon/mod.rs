//! The `opengslb` daemon: flags, signals, systemd notification, logging,
//! and the start-up of either mode.

pub mod args;
pub mod logging;
pub mod notify;
pub mod signals;
