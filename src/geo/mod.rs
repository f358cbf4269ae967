//! Where a client is: custom CIDR mappings, then a MaxMind database, then
//! the default region (SPEC §11).
//!
//! `GeoResolver` is built once per configuration (and per change of the
//! API's mappings) and shared by the DNS threads; `resolve` costs a few
//! hash probes plus, without a mapping, one walk of the memory-mapped
//! database's search tree, and allocates nothing. Regions are numbered by
//! their position in `regions` so the DNS table can index them. The
//! answer's ECS scope is the prefix length of what decided: the mapping's,
//! the database network's, or 0 for the default (it did not depend on the
//! client).

mod decoded;
pub mod prefixes;
pub mod watch;

use crate::config::{Config, GeoMapping};
use decoded::DecodedRegions;
use ipnet::IpNet;
use maxminddb::{PathElement, Reader};
use prefixes::PrefixTable;
use std::collections::HashMap;
use std::net::IpAddr;

/// Marks a filled entry of `GeoResolver::v4_sixteens`.
const WHOLE: u32 = 1 << 31;

/// The memory-mapped database.
pub type Database = Reader<maxminddb::Mmap>;

/// What placed a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchType {
    CustomMapping,
    Geoip,
    Default,
}

impl MatchType {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchType::CustomMapping => "custom_mapping",
            MatchType::Geoip => "geoip",
            MatchType::Default => "default",
        }
    }
}

/// The region for one client address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Index into `regions`.
    pub region: u16,
    pub match_type: MatchType,
    /// ECS scope prefix length of the answer.
    pub scope: u8,
}

/// A decision explained (API `geo/test`); allocates, not for queries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    pub region: String,
    pub match_type: MatchType,
    pub matched_cidr: Option<String>,
    pub country: Option<String>,
    pub continent: Option<String>,
    pub scope: u8,
}

/// A mapping of the running set, with where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveMapping {
    pub mapping: GeoMapping,
    /// From the configuration file (wins over an API one for the same cidr).
    pub from_config: bool,
}

pub struct GeoResolver {
    regions: Vec<String>,
    mappings: PrefixTable<u16>,
    active: Vec<ActiveMapping>,
    db: Option<std::sync::Arc<Database>>,
    /// Region decided per database record (decoded.rs).
    decoded: DecodedRegions,
    /// Per IPv4 /16 covered by one database network (`whole_sixteens`).
    v4_sixteens: Vec<u32>,
    /// Two-letter code, uppercase → region.
    countries: HashMap<[u8; 2], u16>,
    continents: HashMap<[u8; 2], u16>,
    default_region: u16,
    pub ecs_enabled: bool,
}

impl std::fmt::Debug for GeoResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoResolver")
            .field("regions", &self.regions)
            .field("mappings", &self.active.len())
            .field("database", &self.db.is_some())
            .finish()
    }
}

/// Opens (memory-maps) a MaxMind database, with a message naming the file.
pub fn open_database(path: &str) -> Result<Database, String> {
    // SAFETY: the file is only read; a file replaced in place (rather than
    // renamed over) would change under the map, which is why the SPEC asks
    // operators to replace it and we reopen on SIGHUP and on replacement.
    let reader = unsafe { Reader::open_mmap(path) }
        .map_err(|e| format!("cannot open GeoIP database {path}: {e}"))?;
    Ok(reader)
}

fn code(s: &str) -> Option<[u8; 2]> {
    match s.as_bytes() {
        [a, b] => Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()]),
        _ => None,
    }
}

impl GeoResolver {
    /// From the configuration, the already opened database and the
    /// mappings set through the API (config ones win on the same cidr).
    /// None when `overwatch.geolocation` is not configured. Invalid entries
    /// were refused by the loader; here they are skipped.
    pub fn new(
        cfg: &Config,
        db: Option<std::sync::Arc<Database>>,
        api_mappings: &[GeoMapping],
    ) -> Option<GeoResolver> {
        let geo = cfg.overwatch.geolocation.as_ref()?;
        let regions: Vec<String> = cfg.regions.iter().map(|r| r.name.clone()).collect();
        let index = |name: &str| {
            regions
                .iter()
                .position(|r| r == name)
                .and_then(|i| u16::try_from(i).ok())
        };
        let mut countries = HashMap::new();
        let mut continents = HashMap::new();
        for (i, r) in cfg.regions.iter().enumerate() {
            let Ok(i) = u16::try_from(i) else { break };
            for c in r.countries.iter().filter_map(|c| code(c)) {
                countries.entry(c).or_insert(i);
            }
            for c in r.continents.iter().filter_map(|c| code(c)) {
                continents.entry(c).or_insert(i);
            }
        }
        let mut mappings = PrefixTable::default();
        let mut active = Vec::new();
        let sources = geo
            .custom_mappings
            .iter()
            .map(|m| (m, true))
            .chain(api_mappings.iter().map(|m| (m, false)));
        for (m, from_config) in sources {
            let (Ok(net), Some(region)) = (m.cidr.parse::<IpNet>(), index(&m.region)) else {
                continue;
            };
            if mappings.insert(net.trunc(), region) {
                active.push(ActiveMapping {
                    mapping: m.clone(),
                    from_config,
                });
            }
        }
        let mut resolver = GeoResolver {
            default_region: index(&geo.default_region).unwrap_or(0),
            regions,
            mappings,
            active,
            db,
            decoded: DecodedRegions::default(),
            v4_sixteens: Vec::new(),
            countries,
            continents,
            ecs_enabled: geo.ecs_enabled,
        };
        resolver.v4_sixteens = resolver.whole_sixteens();
        Some(resolver)
    }

    /// Per IPv4 /16, the database's answer when one network (or one gap)
    /// covers the whole /16: `WHOLE | (region + 1) << 8 | prefix`, region
    /// 0 meaning "no region" (see `in_database`); 0 when the /16 holds
    /// longer networks and each address must walk the tree. 65,536
    /// lookups once per resolver (a few milliseconds).
    fn whole_sixteens(&self) -> Vec<u32> {
        let Some(db) = &self.db else {
            return Vec::new();
        };
        (0..=u16::MAX)
            .map(|top| {
                let ip = IpAddr::from(std::net::Ipv4Addr::from(u32::from(top) << 16));
                let Ok(found) = db.lookup(ip) else { return 0 };
                match found.network() {
                    Ok(n) if n.is_ipv4() && n.prefix() <= 16 => {
                        let region = self.walk(ip).map_or(0, |(r, _)| u32::from(r) + 1);
                        WHOLE | region << 8 | u32::from(n.prefix())
                    }
                    _ => 0,
                }
            })
            .collect()
    }

    pub fn region_name(&self, region: u16) -> &str {
        self.regions
            .get(usize::from(region))
            .map_or("", String::as_str)
    }

    pub fn region_index(&self, name: &str) -> Option<u16> {
        self.regions
            .iter()
            .position(|r| r == name)
            .and_then(|i| u16::try_from(i).ok())
    }

    /// The open database, to keep serving it when a reload fails.
    pub fn database(&self) -> Option<std::sync::Arc<Database>> {
        self.db.clone()
    }

    /// The mappings in force (config first, then API), for the API.
    pub fn mappings(&self) -> &[ActiveMapping] {
        &self.active
    }

    /// The region for `ip`. Allocates nothing.
    pub fn resolve(&self, ip: IpAddr) -> Decision {
        let ip = canonical(ip);
        if let Some((&region, len)) = self.mappings.longest(ip) {
            return Decision {
                region,
                match_type: MatchType::CustomMapping,
                scope: len,
            };
        }
        if let Some((region, scope)) = self.in_database(ip) {
            return Decision {
                region,
                match_type: MatchType::Geoip,
                scope,
            };
        }
        self.default_decision()
    }

    fn default_decision(&self) -> Decision {
        Decision {
            region: self.default_region,
            match_type: MatchType::Default,
            scope: 0,
        }
    }

    /// Database lookup: (region, network prefix) when the client's country
    /// or continent belongs to a region. An IPv4 address whose whole /16
    /// is one database network (or one gap) is answered from
    /// `v4_sixteens` without walking the tree.
    fn in_database(&self, ip: IpAddr) -> Option<(u16, u8)> {
        if let IpAddr::V4(a) = ip
            && let Some(&e) = self.v4_sixteens.get((u32::from(a) >> 16) as usize)
            && e & WHOLE != 0
        {
            let region = (e >> 8) & 0x1_ffff;
            return (region > 0).then(|| ((region - 1) as u16, e as u8));
        }
        self.walk(ip)
    }

    /// `in_database` by walking the database tree. The continent is
    /// decoded only when the country decides nothing (country beats
    /// continent).
    fn walk(&self, ip: IpAddr) -> Option<(u16, u8)> {
        let db = self.db.as_ref()?;
        let found = db.lookup(ip).ok()?;
        if !found.has_data() {
            return None;
        }
        let code_at = |a: &'static str, b: &'static str| -> Option<[u8; 2]> {
            found
                .decode_path::<&str>(&[PathElement::Key(a), PathElement::Key(b)])
                .ok()
                .flatten()
                .and_then(code)
        };
        let decide = || {
            code_at("country", "iso_code")
                .and_then(|c| self.countries.get(&c).copied())
                .or_else(|| {
                    code_at("continent", "code").and_then(|c| self.continents.get(&c).copied())
                })
        };
        let region = match found.offset() {
            Some(off) => match self.decoded.get(off) {
                Some(known) => known,
                None => {
                    let r = decide();
                    self.decoded.put(off, r);
                    r
                }
            },
            None => decide(),
        }?;
        let scope = found.network().map_or(0, |n| n.prefix());
        Some((region, scope))
    }

    /// Why `ip` goes where it goes (the API's `geo/test`).
    pub fn explain(&self, ip: IpAddr) -> Explanation {
        let ip = canonical(ip);
        let d = self.resolve(ip);
        let matched_cidr = match d.match_type {
            MatchType::CustomMapping => IpNet::new(ip, d.scope).ok().map(|n| n.trunc().to_string()),
            _ => None,
        };
        let (country, continent) = self.location(ip);
        Explanation {
            region: self.region_name(d.region).to_string(),
            match_type: d.match_type,
            matched_cidr,
            country,
            continent,
            scope: d.scope,
        }
    }

    fn location(&self, ip: IpAddr) -> (Option<String>, Option<String>) {
        let Some(found) = self.db.as_ref().and_then(|db| db.lookup(ip).ok()) else {
            return (None, None);
        };
        let get = |a: &'static str, b: &'static str| -> Option<String> {
            found
                .decode_path::<&str>(&[PathElement::Key(a), PathElement::Key(b)])
                .ok()
                .flatten()
                .map(str::to_string)
        };
        (get("country", "iso_code"), get("continent", "code"))
    }
}

/// IPv4-mapped IPv6 addresses are looked up as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests;
