//! Geolocation names on the fast path (fastpath.rs).
//!
//! A `geolocation` domain's answer depends on where the client is, so
//! beside the flat pools it keeps one pair of pools per region
//! (regional.rs). `GeoTemplates` holds, built once per snapshot, the
//! encoded answer records of each region's pools, in pool order like the
//! flat ones (rotation is an offset into them). Per query the region is
//! decided by the very `Regional::route` the full path calls (the geo
//! resolver: custom mappings, then the database, then the default region;
//! no allocation), so both paths pick the same region, the same ECS scope
//! and the same decision counter. Only the choice is made here; writing
//! the answer and counting stay in fastpath.rs.
//!
//! Other client-dependent algorithms (`learned_latency`, whose table
//! changes between snapshots, and any added later) are not built here and
//! take the full path.

use super::edns::Ecs;
use super::regional::{Regional, Want, client_address};
use super::routing::Pool;
use crate::config::RoutingAlgorithm;
use crate::geo::GeoResolver;
use std::net::IpAddr;
use std::sync::Arc;

/// Encoded answer records of one geolocation domain, per region.
#[derive(Debug)]
pub(super) struct GeoTemplates {
    regional: Arc<Regional>,
    /// Index i: the records of `regional.regions[i]`'s A / AAAA pool.
    rec4: Box<[Box<[u8]>]>,
    rec6: Box<[Box<[u8]>]>,
}

/// The region chosen for one query.
pub(super) struct GeoChoice<'a> {
    /// The region's pool and its encoded records; None when no region
    /// serves the family (the flat pools answer, scope 0).
    pub pool: Option<(&'a Pool, &'a [u8])>,
    /// ECS scope prefix length of the answer.
    pub scope: u8,
    /// Index of the domain's routing-decision counter to bump.
    pub counter: usize,
}

impl GeoTemplates {
    /// None unless the domain routes by geolocation.
    pub(super) fn build(
        regional: &Arc<Regional>,
        encode: impl Fn(&Pool) -> Box<[u8]>,
    ) -> Option<GeoTemplates> {
        if regional.algorithm != RoutingAlgorithm::Geolocation {
            return None;
        }
        Some(GeoTemplates {
            rec4: regional.regions.iter().map(|r| encode(&r.v4)).collect(),
            rec6: regional.regions.iter().map(|r| encode(&r.v6)).collect(),
            regional: Arc::clone(regional),
        })
    }

    /// Places the client (ECS address when present and enabled, else the
    /// source) and picks its region for A (`v4`) or AAAA. Counts nothing
    /// and picks no rotation: the caller does once the answer fits.
    pub(super) fn choose(
        &self,
        source: IpAddr,
        ecs: Option<&Ecs>,
        v4: bool,
        geo: Option<&GeoResolver>,
    ) -> GeoChoice<'_> {
        let ecs_enabled = geo.is_none_or(|g| g.ecs_enabled);
        let address = client_address(source, ecs, ecs_enabled);
        let want = if v4 { Want::V4 } else { Want::V6 };
        let route = self.regional.route(address, want, geo, None);
        let counter = self.regional.counter(route.matched);
        let pool = route.pools.and_then(|r| {
            let i = self
                .regional
                .regions
                .iter()
                .position(|x| std::ptr::eq(x, r))?;
            let (pool, recs) = if v4 {
                (&r.v4, &self.rec4)
            } else {
                (&r.v6, &self.rec6)
            };
            Some((pool, recs.get(i)?.as_ref()))
        });
        GeoChoice {
            scope: if pool.is_some() { route.scope } else { 0 },
            pool,
            counter,
        }
    }
}
