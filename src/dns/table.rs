//! The immutable answer table the responder threads read.
//!
//! The registry thread builds a `DnsTable` from a plain `TableSpec` (config
//! plus current health) and publishes it through a `SnapshotCell`; a query
//! then costs hash lookups on the lowercased wire form of the name, copied
//! into a stack buffer, so the hot path never allocates.
//!
//! Zones: every `dns.zones` entry is an apex with SOA and NS. A configured
//! domain name that is under no zone is still served authoritatively: the
//! name itself acts as an implicit zone apex with the default SOA
//! (`ns1.<name>`, `hostmaster.<name>`) and NS, so NXDOMAIN/NODATA below it
//! carry a SOA. Names between a zone apex and a domain (empty
//! non-terminals) answer NODATA, not NXDOMAIN (RFC 8020). NS names inside
//! a zone are hosts with addresses (`nameservers.rs`), and each zone keeps
//! their addresses as glue for NS answers.

use super::fastpath::FastIndex;
use super::keystore::{KeyRing, ZoneKey};
use super::nameservers::NameServerSpec;
use super::regional::{RegionTargets, Regional};
use super::routing::{Pool, fastest};
use super::rrl::RateLimit;
use super::stats::{DnsStats, DomainCounters};
use crate::config::{RoutingAlgorithm, SoaConfig};
use crate::geo::GeoResolver;
use domain::base::{Name, Serial, Ttl};
use domain::rdata::Soa;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

/// What the integrator fills from config and health state.
#[derive(Clone, Debug, Default)]
pub struct TableSpec {
    pub zones: Vec<ZoneSpec>,
    pub domains: Vec<DomainSpec>,
    /// SOA serial for every zone (e.g. the unix time of the build, or a
    /// counter bumped on each rebuild).
    pub serial: u32,
    /// Addresses of the in-zone NS names.
    pub nameservers: NameServerSpec,
    /// `dns.rate_limit`; None = off.
    pub rate_limit: Option<RateLimit>,
    /// `overwatch.geolocation`, with the API's mappings; None = off.
    pub geo: Option<Arc<GeoResolver>>,
}

#[derive(Clone, Debug)]
pub struct ZoneSpec {
    pub apex: String,
    /// `mname`/`rname` None => `ns1.<apex>` / `hostmaster.<apex>`.
    pub soa: SoaConfig,
    /// Empty => `[mname]`; the first one is the default `mname`.
    pub nameservers: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct DomainSpec {
    pub name: String,
    pub ttl: u32,
    pub algorithm: RoutingAlgorithm,
    pub max_records: Option<usize>,
    /// Healthy targets in priority (config) order.
    pub targets: Vec<Target>,
    /// Some => serve these when `targets` is empty (return_last_healthy);
    /// None => SERVFAIL.
    pub last_healthy: Option<Vec<Target>>,
    /// `targets` per region, in the domain's region order; used by the
    /// client-dependent algorithms (regional.rs), empty for the others.
    pub by_region: Vec<RegionTargets>,
    /// `latency` only: the smoothed check round trip (µs) of each target
    /// that has a usable one (SPEC §11); empty for the other algorithms.
    pub round_trips: Vec<(IpAddr, u32)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub ip: IpAddr,
    pub weight: u32,
}

pub(crate) type DName = Name<Vec<u8>>;

#[derive(Debug)]
pub(crate) struct Zone {
    pub apex: DName,
    pub soa: Soa<DName>,
    pub soa_ttl: u32,
    /// RFC 2308: min(SOA TTL, MINIMUM).
    pub negative_ttl: u32,
    pub nameservers: Vec<DName>,
    /// A/AAAA of in-zone NS names, for the additional section.
    pub glue: Vec<(DName, IpAddr)>,
}

/// Which set a name is answering from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Serving {
    Healthy,
    LastHealthy,
    ServFail,
}

#[derive(Debug)]
pub(crate) struct DomainEntry {
    pub ttl: u32,
    pub serving: Serving,
    /// Shared with the fast path's copy of this entry (one rotation).
    pub v4: Arc<Pool>,
    pub v6: Arc<Pool>,
    pub counters: Arc<DomainCounters>,
    /// Per-region pools of a client-dependent algorithm (regional.rs),
    /// shared with the fast path's copy (one rotation).
    pub regional: Option<Arc<Regional>>,
}

/// An in-zone name server name and its addresses.
#[derive(Debug)]
pub(crate) struct HostEntry {
    pub ttl: u32,
    pub addrs: Vec<IpAddr>,
}

#[derive(Debug)]
pub(crate) enum Node {
    Domain(DomainEntry),
    Host(HostEntry),
    /// Exists only as an ancestor of a domain: NODATA.
    Empty,
}

/// Where a query name lands.
pub(crate) enum Lookup<'t> {
    /// Under no zone of ours.
    Refused,
    Found {
        zone: &'t Zone,
        at_apex: bool,
        /// None => NXDOMAIN (unless `at_apex`).
        node: Option<&'t Node>,
    },
}

/// FNV-1a: names are short and the keys are ours, so a fast non-keyed hash
/// is enough (query names only ever look up, never insert).
#[derive(Default)]
pub(crate) struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FnvMap<V> = HashMap<Box<[u8]>, V, BuildHasherDefault<Fnv>>;

#[derive(Debug, Default)]
pub struct DnsTable {
    zones: FnvMap<Zone>,
    nodes: FnvMap<Node>,
    pub(crate) rate_limit: Option<RateLimit>,
    pub(crate) geo: Option<Arc<GeoResolver>>,
    /// Precomputed answers for plain queries (fastpath.rs).
    fast: FastIndex,
    /// `overwatch.dnssec`: the keys of the signed zones.
    pub(crate) dnssec: Option<Arc<KeyRing>>,
}

/// The lowercased, uncompressed wire form of a name in a stack buffer.
pub(crate) struct WireName {
    buf: [u8; 255],
    len: usize,
}

impl WireName {
    /// Lowercases the labels of `labels` (as yielded by domain's iterators).
    /// None if the result would exceed 255 octets.
    pub fn from_labels<'a>(
        labels: impl Iterator<Item = &'a domain::base::name::Label>,
    ) -> Option<Self> {
        let mut w = WireName {
            buf: [0; 255],
            len: 0,
        };
        for label in labels {
            let bytes = label.as_slice();
            let end = w.len.checked_add(1 + bytes.len())?;
            let slot = w.buf.get_mut(w.len..end)?;
            let (head, rest) = slot.split_first_mut()?;
            *head = u8::try_from(bytes.len()).ok()?;
            for (d, s) in rest.iter_mut().zip(bytes) {
                *d = s.to_ascii_lowercase();
            }
            w.len = end;
        }
        Some(w)
    }

    pub fn as_slice(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

/// Offsets where each suffix of a wire name starts (including the root).
fn suffix_starts(wire: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut pos = Some(0usize);
    std::iter::from_fn(move || {
        let p = pos?;
        pos = match wire.get(p) {
            Some(&0) | None => None,
            Some(&len) => Some(p + 1 + len as usize),
        };
        Some(p)
    })
}

fn parse_name(text: &str) -> Option<DName> {
    let t = text.trim().trim_end_matches('.').to_ascii_lowercase();
    if t.is_empty() {
        return None;
    }
    Name::from_str(&format!("{t}.")).ok()
}

fn key(name: &DName) -> Box<[u8]> {
    name.as_slice().to_ascii_lowercase().into_boxed_slice()
}

fn make_zone(apex: &DName, soa: &SoaConfig, nameservers: &[String], serial: u32) -> Option<Zone> {
    let apex_text = apex.to_string();
    let apex_text = apex_text.trim_end_matches('.');
    let mname = match (&soa.mname, nameservers.first()) {
        (Some(m), _) => parse_name(m)?,
        (None, Some(first)) => parse_name(first)?,
        (None, None) => parse_name(&format!("ns1.{apex_text}"))?,
    };
    let rname = match &soa.rname {
        Some(r) => parse_name(r)?,
        None => parse_name(&format!("hostmaster.{apex_text}"))?,
    };
    let mut ns: Vec<DName> = nameservers.iter().filter_map(|n| parse_name(n)).collect();
    if ns.is_empty() {
        ns.push(mname.clone());
    }
    Some(Zone {
        apex: apex.clone(),
        soa: Soa::new(
            mname,
            rname,
            Serial(serial),
            Ttl::from_secs(soa.refresh),
            Ttl::from_secs(soa.retry),
            Ttl::from_secs(soa.expire),
            Ttl::from_secs(soa.minimum),
        ),
        soa_ttl: soa.ttl,
        negative_ttl: soa.ttl.min(soa.minimum),
        nameservers: ns,
        glue: Vec::new(),
    })
}

type Weighted = Vec<(IpAddr, u32)>;

fn split_family(targets: &[Target]) -> (Weighted, Weighted) {
    let v4 = targets
        .iter()
        .filter(|t| t.ip.is_ipv4())
        .map(|t| (t.ip, t.weight))
        .collect();
    let v6 = targets
        .iter()
        .filter(|t| t.ip.is_ipv6())
        .map(|t| (t.ip, t.weight))
        .collect();
    (v4, v6)
}

impl DnsTable {
    /// A table that refuses everything (before the first build).
    pub fn empty() -> DnsTable {
        DnsTable::default()
    }

    /// Builds the table. Names that are not valid domain names are skipped
    /// with a warning (the config loader rejects them first). Per-domain
    /// counters are taken from `stats`; counters of names no longer
    /// configured are dropped there.
    /// Signs the zones `ring` has keys for (answers to DO=1 queries).
    pub fn with_dnssec(mut self, ring: Option<Arc<KeyRing>>) -> DnsTable {
        self.fast.signed = ring.is_some();
        self.fast.snapshot = if ring.is_some() {
            super::fastpath::next_snapshot()
        } else {
            0
        };
        self.dnssec = ring;
        self
    }

    /// The key of the zone `wire` is in, when that zone is signed.
    pub(crate) fn zone_key(&self, wire: &[u8]) -> Option<(&Zone, &ZoneKey)> {
        let ring = self.dnssec.as_ref()?;
        match self.lookup(wire) {
            Lookup::Found { zone, .. } => Some((zone, ring.find(zone.apex.as_slice())?)),
            Lookup::Refused => None,
        }
    }

    pub fn build(spec: &TableSpec, stats: &DnsStats) -> DnsTable {
        let mut table = DnsTable::default();
        for z in &spec.zones {
            let Some(apex) = parse_name(&z.apex) else {
                log::warn!("dns: zone {:?} is not a valid name, skipped", z.apex);
                continue;
            };
            if let Some(zone) = make_zone(&apex, &z.soa, &z.nameservers, spec.serial) {
                table.zones.insert(key(&apex), zone);
            } else {
                log::warn!(
                    "dns: zone {:?} has an invalid SOA or NS name, skipped",
                    z.apex
                );
            }
        }
        let mut names: HashSet<String> = HashSet::new();
        for d in &spec.domains {
            let Some(name) = parse_name(&d.name) else {
                log::warn!("dns: domain {:?} is not a valid name, skipped", d.name);
                continue;
            };
            let k = key(&name);
            let label = name.to_string().trim_end_matches('.').to_string();
            // Implicit zone apex for a name under no zone.
            let enclosing = suffix_starts(&k)
                .find(|&p| k.get(p..).is_some_and(|s| table.zones.contains_key(s)));
            let zone_start = match enclosing {
                Some(p) => p,
                None => {
                    let soa = SoaConfig::default();
                    match make_zone(&name, &soa, &[], spec.serial) {
                        Some(zone) => {
                            table.zones.insert(k.clone(), zone);
                        }
                        None => continue,
                    }
                    0
                }
            };
            table.add_empty_non_terminals(&k, zone_start);
            let (serving, set): (Serving, &[Target]) = if !d.targets.is_empty() {
                (Serving::Healthy, &d.targets)
            } else {
                match &d.last_healthy {
                    Some(last) if !last.is_empty() => (Serving::LastHealthy, last),
                    _ => (Serving::ServFail, &[]),
                }
            };
            let (mut v4, mut v6) = split_family(set);
            if d.algorithm == RoutingAlgorithm::Latency && serving == Serving::Healthy {
                v4 = fastest(&v4, &d.round_trips);
                v6 = fastest(&v6, &d.round_trips);
            }
            let entry = DomainEntry {
                ttl: d.ttl,
                serving,
                v4: Arc::new(Pool::new(&v4, d.algorithm, d.max_records)),
                v6: Arc::new(Pool::new(&v6, d.algorithm, d.max_records)),
                counters: stats.domain(&label),
                regional: if serving == Serving::Healthy {
                    Regional::build(
                        d.algorithm,
                        &d.by_region,
                        d.max_records,
                        spec.geo.as_deref(),
                    )
                    .map(Arc::new)
                } else {
                    None
                },
            };
            names.insert(label);
            table.nodes.insert(k, Node::Domain(entry));
        }
        stats.retain_domains(&|n| names.contains(n));
        table.add_name_servers(&spec.nameservers);
        if spec.rate_limit.is_some() {
            stats.rrl.prepare();
        }
        table.rate_limit = spec.rate_limit.clone();
        table.geo = spec.geo.clone();
        table.fast = FastIndex::build(
            table.zones.iter().map(|(k, z)| (&k[..], z)),
            table.nodes.iter().map(|(k, n)| (&k[..], n)),
            table.geo.as_ref(),
        );
        table
    }

    pub(crate) fn fast(&self) -> &FastIndex {
        &self.fast
    }

    /// The same table without its fast path (tests compare both paths).
    #[cfg(test)]
    pub(crate) fn without_fast_path(mut self) -> DnsTable {
        self.fast = FastIndex::default();
        self
    }

    /// Empty non-terminals between a name and its zone apex at `zone_start`.
    fn add_empty_non_terminals(&mut self, k: &[u8], zone_start: usize) {
        for p in suffix_starts(k).skip(1).take_while(|&p| p < zone_start) {
            if let Some(s) = k.get(p..) {
                self.nodes.entry(s.into()).or_insert(Node::Empty);
            }
        }
    }

    /// Hosts for the NS names that lie inside a zone of ours, and glue.
    fn add_name_servers(&mut self, spec: &NameServerSpec) {
        let mut wanted: Vec<(Box<[u8]>, DName)> = Vec::new();
        for zone in self.zones.values() {
            for ns in &zone.nameservers {
                wanted.push((key(ns), ns.clone()));
            }
        }
        for (k, name) in &wanted {
            let enclosing =
                suffix_starts(k).find(|&p| k.get(p..).is_some_and(|s| self.zones.contains_key(s)));
            let (Some(zone_start), false) = (enclosing, self.nodes.contains_key(k)) else {
                // Outside our zones, already a host, or a domain name
                // (which answers with its backends).
                continue;
            };
            let text = name.to_string();
            let addrs = spec.addresses_of(text.trim_end_matches('.')).to_vec();
            let ttl = k
                .get(zone_start..)
                .and_then(|s| self.zones.get(s))
                .map_or(0, |z| z.soa_ttl);
            self.add_empty_non_terminals(k, zone_start);
            self.nodes
                .insert(k.clone(), Node::Host(HostEntry { ttl, addrs }));
        }
        let hosts = &self.nodes;
        for zone in self.zones.values_mut() {
            zone.glue = zone
                .nameservers
                .iter()
                .filter_map(|ns| match hosts.get(&key(ns)) {
                    Some(Node::Host(h)) => Some((ns, &h.addrs)),
                    _ => None,
                })
                .flat_map(|(ns, addrs)| addrs.iter().map(|a| (ns.clone(), *a)))
                .collect();
        }
    }

    /// Finds the zone and node of a lowercased wire name.
    pub(crate) fn lookup(&self, wire: &[u8]) -> Lookup<'_> {
        let zone = suffix_starts(wire).find_map(|p| {
            let s = wire.get(p..)?;
            self.zones.get(s).map(|z| (p, z))
        });
        match zone {
            None => Lookup::Refused,
            Some((p, zone)) => Lookup::Found {
                zone,
                at_apex: p == 0,
                node: self.nodes.get(wire),
            },
        }
    }

    pub fn zone_count(&self) -> usize {
        self.zones.len()
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
