//! The seam between learned-latency routing (DNS side) and the table of
//! round trips agents learned from real clients (Overwatch side).
//!
//! The responder asks, per query and without allocating, which regions are
//! fastest for the client's address; the Overwatch's learned-latency table
//! implements the trait and is handed to the DNS server once at start. Only
//! warm prefixes (enough samples) are visited; a cold or unknown prefix
//! visits nothing and the routing falls back (geolocation when configured,
//! else round-robin).

use std::net::IpAddr;

/// Per-client-prefix region ranking learned from agents' TCP round trips.
pub trait LearnedLookup: Send + Sync {
    /// Calls `visit(region, scope_prefix_len)` for the regions learned for
    /// the prefix containing `client`, fastest first, until `visit` returns
    /// `true` (the caller found a region with healthy backends).
    /// `scope_prefix_len` is the prefix length the round trip was learned
    /// for (the ECS scope of the answer). Must not allocate.
    fn visit_fastest(&self, client: IpAddr, visit: &mut dyn FnMut(&str, u8) -> bool);
}
