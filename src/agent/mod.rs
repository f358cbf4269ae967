//! The agent subsystem.
