//! The daemon subsystem.
