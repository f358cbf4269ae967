//! The overwatch subsystem.
