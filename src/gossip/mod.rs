//! The gossip subsystem.
