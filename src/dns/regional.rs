//! Client-dependent routing: which region answers a query (SPEC §11).
//!
//! A `geolocation` or `learned_latency` domain keeps, beside its flat
//! pools, one pair of pools (A, AAAA) per region holding that region's
//! healthy backends, in the domain's `regions` order (backends of unlisted
//! regions last). `route` places the client (learned round trips first
//! for `learned_latency`, then the geolocation resolver), takes the first
//! region from there on that has addresses of the asked family, and says
//! which ECS scope the answer carries. Nothing here allocates; when no
//! rule applies the caller answers from the flat pools with scope 0
//! (round-robin over every healthy backend).

use super::learned::LearnedLookup;
use super::routing::Pool;
use super::table::Target;
use crate::config::RoutingAlgorithm;
use crate::geo::{GeoResolver, MatchType};
use std::net::IpAddr;

/// One region's healthy targets of a domain (built by the publisher).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegionTargets {
    pub region: String,
    pub targets: Vec<Target>,
}

#[derive(Debug)]
pub(crate) struct RegionPools {
    /// Index in the resolver's regions; u16::MAX when unknown to it.
    pub index: u16,
    pub name: Box<str>,
    pub v4: Pool,
    pub v6: Pool,
}

/// Which address families the question needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    V4,
    V6,
    Any,
}

impl RegionPools {
    fn serves(&self, want: Want) -> bool {
        match want {
            Want::V4 => !self.v4.is_empty(),
            Want::V6 => !self.v6.is_empty(),
            Want::Any => !self.v4.is_empty() || !self.v6.is_empty(),
        }
    }
}

/// What decided an answer, for the routing-decisions metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteMatch {
    Geo(MatchType),
    Learned,
    /// No rule applied: round-robin over every healthy backend.
    Fallback,
}

impl RouteMatch {
    pub const ALL: [RouteMatch; 5] = [
        RouteMatch::Geo(MatchType::CustomMapping),
        RouteMatch::Geo(MatchType::Geoip),
        RouteMatch::Geo(MatchType::Default),
        RouteMatch::Learned,
        RouteMatch::Fallback,
    ];

    pub fn index(self) -> usize {
        match self {
            RouteMatch::Geo(MatchType::CustomMapping) => 0,
            RouteMatch::Geo(MatchType::Geoip) => 1,
            RouteMatch::Geo(MatchType::Default) => 2,
            RouteMatch::Learned => 3,
            RouteMatch::Fallback => 4,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RouteMatch::Geo(m) => m.as_str(),
            RouteMatch::Learned => "learned",
            RouteMatch::Fallback => "round_robin",
        }
    }
}

/// `algorithm` label values of the routing-decisions metric, by index.
pub const ROUTE_ALGORITHMS: [&str; 2] = ["geolocation", "learned_latency"];

#[derive(Debug)]
pub(crate) struct Regional {
    pub algorithm: RoutingAlgorithm,
    pub regions: Vec<RegionPools>,
}

/// The region chosen for one query.
pub(crate) struct Route<'t> {
    pub pools: Option<&'t RegionPools>,
    pub scope: u8,
    pub matched: RouteMatch,
}

impl Regional {
    /// Index of this domain's decision counter for `matched`.
    pub fn counter(&self, matched: RouteMatch) -> usize {
        let alg = usize::from(self.algorithm == RoutingAlgorithm::LearnedLatency);
        alg * 5 + matched.index()
    }

    /// None for algorithms whose answer does not depend on the client.
    pub fn build(
        algorithm: RoutingAlgorithm,
        by_region: &[RegionTargets],
        max_records: Option<usize>,
        geo: Option<&GeoResolver>,
    ) -> Option<Regional> {
        if !matches!(
            algorithm,
            RoutingAlgorithm::Geolocation | RoutingAlgorithm::LearnedLatency
        ) {
            return None;
        }
        let regions = by_region
            .iter()
            .map(|r| {
                let pairs: Vec<(IpAddr, u32)> =
                    r.targets.iter().map(|t| (t.ip, t.weight)).collect();
                let (v4, v6): (Vec<_>, Vec<_>) = pairs.iter().partition(|(ip, _)| ip.is_ipv4());
                RegionPools {
                    index: geo
                        .and_then(|g| g.region_index(&r.region))
                        .unwrap_or(u16::MAX),
                    name: r.region.as_str().into(),
                    v4: Pool::new(&v4, RoutingAlgorithm::RoundRobin, max_records),
                    v6: Pool::new(&v6, RoutingAlgorithm::RoundRobin, max_records),
                }
            })
            .collect();
        Some(Regional { algorithm, regions })
    }

    /// The first region serving `want` from the one with resolver index
    /// `index` on, in the domain's order (wrapping); from the first when
    /// the domain does not list that region.
    fn starting_at(&self, index: u16, want: Want) -> Option<&RegionPools> {
        let start = self
            .regions
            .iter()
            .position(|r| r.index == index)
            .unwrap_or(0);
        let n = self.regions.len();
        (0..n)
            .filter_map(|i| self.regions.get((start + i) % n))
            .find(|r| r.serves(want))
    }

    fn by_name(&self, name: &str) -> Option<&RegionPools> {
        self.regions.iter().find(|r| &*r.name == name)
    }

    /// Places `client` and picks its region for `want`.
    pub fn route(
        &self,
        client: IpAddr,
        want: Want,
        geo: Option<&GeoResolver>,
        learned: Option<&dyn LearnedLookup>,
    ) -> Route<'_> {
        if self.algorithm == RoutingAlgorithm::LearnedLatency
            && let Some(l) = learned
        {
            let mut found: Option<(&RegionPools, u8)> = None;
            l.visit_fastest(client, &mut |region, len| match self
                .by_name(region)
                .filter(|r| r.serves(want))
            {
                Some(r) => {
                    found = Some((r, len));
                    true
                }
                None => false,
            });
            if let Some((r, scope)) = found {
                return Route {
                    pools: Some(r),
                    scope,
                    matched: RouteMatch::Learned,
                };
            }
        }
        match geo {
            Some(g) => {
                let d = g.resolve(client);
                Route {
                    pools: self.starting_at(d.region, want),
                    scope: d.scope,
                    matched: RouteMatch::Geo(d.match_type),
                }
            }
            None => Route {
                pools: None,
                scope: 0,
                matched: RouteMatch::Fallback,
            },
        }
    }
}

/// The client address routing uses: the ECS address when the query has
/// one with a non-zero source prefix and ECS is enabled, else the source.
pub(crate) fn client_address(
    source: IpAddr,
    ecs: Option<&super::edns::Ecs>,
    ecs_enabled: bool,
) -> IpAddr {
    let Some(e) = ecs.filter(|e| ecs_enabled && e.source > 0) else {
        return source;
    };
    match e.family {
        1 => {
            let mut a = [0u8; 4];
            for (d, s) in a.iter_mut().zip(e.addr_bytes()) {
                *d = *s;
            }
            IpAddr::from(a)
        }
        2 => {
            let mut a = [0u8; 16];
            for (d, s) in a.iter_mut().zip(e.addr_bytes()) {
                *d = *s;
            }
            IpAddr::from(a)
        }
        _ => source,
    }
}

#[cfg(test)]
#[path = "regional_tests.rs"]
mod tests;
