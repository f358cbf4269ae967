//! The health subsystem.
