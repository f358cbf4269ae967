//! The dns subsystem.
