//! The api subsystem.
