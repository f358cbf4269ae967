//! placeholder-free temporary
