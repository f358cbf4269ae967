//! The cli subsystem.
