//! The fast path: plain queries answered from data precomputed per snapshot.
//!
//! Most queries an authoritative GSLB sees are the same shape: one
//! question, class IN, type A or AAAA, no EDNS or EDNS whose only option
//! is a Client Subnet (ECS, echoed with the answer's scope).
//! For those the answer is the query's header and question followed by
//! bytes the table could have built beforehand, so `FastIndex` (built with
//! each `DnsTable`) holds, per name, its answer records already encoded
//! (owner compressed to the question, TTL, rdata; round-robin rotation is
//! then an offset into that array), and per zone its negative-answer SOA
//! record with the three compression pointers left to patch. A query is
//! lowercased and hashed in one pass over its name, with one hash per
//! suffix so the enclosing zone of an NXDOMAIN needs no second pass.
//! Geolocation names keep such records per region (fastpath_geo.rs).
//!
//! The rule: the fast path answers only what it can answer byte for byte
//! as `Responder`'s full path would (a test compares both over a query
//! mix), with the same counters; anything else — other types, options
//! other than ECS (cookies), BADVERS, truncation, SERVFAIL, SOA/NS at an apex,
//! REFUSED, malformed input, a compression case it does not model —
//! returns false and takes the full path. Response rate limiting (rrl.rs)
//! is checked here, once the response class is known, with the same key
//! as the full path (query name; zone apex for NXDOMAIN): a response over
//! the limit takes the full path, which limits it again (the bucket is
//! empty) and drops or slips it with its counters.

use super::fastpath_geo::GeoTemplates;
use super::fastpath_parse::{MAX_LABELS, Query, parse};
use super::routing::Pool;
use super::rrl::{Class, RateLimit};
use super::stats::{DnsStats, DomainCounters, QtypeLabel, RcodeLabel};
use super::table::{Node, Serving, Zone};
use crate::geo::GeoResolver;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

const NONE: u32 = u32::MAX;
const PLAIN_UDP_MAX: usize = 512;
const TCP_MAX: usize = 65535;
const A_LEN: usize = 16;
const AAAA_LEN: usize = 28;

#[derive(Clone, Copy, Debug)]
struct Slot {
    hash: u64,
    /// Key bytes in `names`; len 0 marks a free slot.
    off: u32,
    len: u32,
    domain: u32,
    zone: u32,
    /// An empty non-terminal (NODATA).
    empty: bool,
    /// A name-server host (nameservers.rs): the full path answers it.
    host: bool,
}

const FREE: Slot = Slot {
    hash: 0,
    off: 0,
    len: 0,
    domain: NONE,
    zone: NONE,
    empty: false,
    host: false,
};

#[derive(Debug)]
struct FastDomain {
    serving: Serving,
    counters: Arc<DomainCounters>,
    v4: Arc<Pool>,
    v6: Arc<Pool>,
    /// One encoded A record per address of `v4`, in pool order.
    rec4: Box<[u8]>,
    rec6: Box<[u8]>,
    /// A geolocation domain: its per-region records.
    geo: Option<GeoTemplates>,
}

/// The SOA record of a negative answer; None when its names would
/// compress in a way this file does not reproduce.
#[derive(Debug)]
struct SoaTemplate {
    bytes: Box<[u8]>,
    /// Offsets in `bytes` of the pointers to the apex (owner first).
    ptrs: [usize; 3],
    /// The last label before the apex in mname / rname, lowercase.
    m_last: Option<Box<[u8]>>,
    r_last: Option<Box<[u8]>>,
}

/// Per-snapshot lookup and answer data; see the file comment.
#[derive(Debug, Default)]
pub(crate) struct FastIndex {
    slots: Vec<Slot>,
    names: Vec<u8>,
    domains: Vec<FastDomain>,
    zones: Vec<Option<SoaTemplate>>,
    /// DNSSEC on: DO=1 queries take the full path, which signs.
    pub(crate) signed: bool,
    /// The table's geolocation resolver (geolocation domains).
    geo: Option<Arc<GeoResolver>>,
    /// Nonzero for a signed table: numbers it for fastpath_signed.rs.
    pub(crate) snapshot: u64,
}

fn hash_step(h: u64, b: u8) -> u64 {
    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
}

const SEED: u64 = 0xcbf2_9ce4_8422_2325;

/// Label start offsets of a wire name (the root not included); None if
/// the name has more than MAX_LABELS labels or is malformed.
fn label_starts(wire: &[u8], starts: &mut [usize; MAX_LABELS]) -> Option<usize> {
    let mut n = 0;
    let mut p = 0;
    loop {
        let len = usize::from(*wire.get(p)?);
        if len == 0 {
            return Some(n);
        }
        *starts.get_mut(n)? = p;
        n += 1;
        p += 1 + len;
    }
}

/// Hash of each suffix `wire[starts[i]..]`, computed right to left.
fn suffix_hashes(wire: &[u8], starts: &[usize], out: &mut [u64; MAX_LABELS]) {
    let mut h = SEED;
    let mut end = wire.len().saturating_sub(1);
    for (i, &s) in starts.iter().enumerate().rev() {
        for &b in wire.get(s..end).unwrap_or(&[]) {
            h = hash_step(h, b);
        }
        if let Some(o) = out.get_mut(i) {
            *o = h;
        }
        end = s;
    }
}

fn encode_records(pool: &Pool, ttl: u32) -> Box<[u8]> {
    let mut out = Vec::new();
    for ip in pool.addrs() {
        out.extend_from_slice(&[0xc0, 0x0c]);
        match ip {
            IpAddr::V4(v4) => {
                out.extend_from_slice(&[0, 1, 0, 1]);
                out.extend_from_slice(&ttl.to_be_bytes());
                out.extend_from_slice(&[0, 4]);
                out.extend_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                out.extend_from_slice(&[0, 28, 0, 1]);
                out.extend_from_slice(&ttl.to_be_bytes());
                out.extend_from_slice(&[0, 16]);
                out.extend_from_slice(&v6.octets());
            }
        }
    }
    out.into_boxed_slice()
}

/// Splits a lowercase wire name under `apex` into its labels before the
/// apex (wire form) and the last of them; None if not under the apex.
fn prefix_of<'a>(name: &'a [u8], apex: &[u8]) -> Option<(&'a [u8], Option<&'a [u8]>)> {
    let mut p = 0;
    let mut last = None;
    loop {
        if name.get(p..) == Some(apex) {
            return Some((name.get(..p)?, last));
        }
        let len = usize::from(*name.get(p)?);
        if len == 0 {
            return None;
        }
        last = name.get(p + 1..p + 1 + len);
        p += 1 + len;
    }
}

fn soa_template(zone: &Zone) -> Option<SoaTemplate> {
    let apex = zone.apex.as_slice().to_ascii_lowercase();
    let mname = zone.soa.mname().as_slice().to_ascii_lowercase();
    let rname = zone.soa.rname().as_slice().to_ascii_lowercase();
    let (m, m_last) = prefix_of(&mname, &apex)?;
    let (r, r_last) = prefix_of(&rname, &apex)?;
    // rname would point into mname instead of the question.
    if m_last.is_some() && m_last == r_last {
        return None;
    }
    let rdlen = u16::try_from(m.len() + 2 + r.len() + 2 + 20).ok()?;
    let mut b = vec![0xc0, 0, 0, 6, 0, 1];
    b.extend_from_slice(&zone.negative_ttl.to_be_bytes());
    b.extend_from_slice(&rdlen.to_be_bytes());
    b.extend_from_slice(m);
    let mp = b.len();
    b.extend_from_slice(&[0xc0, 0]);
    b.extend_from_slice(r);
    let rp = b.len();
    b.extend_from_slice(&[0xc0, 0]);
    let soa = &zone.soa;
    for v in [
        soa.serial().into_int(),
        soa.refresh().as_secs(),
        soa.retry().as_secs(),
        soa.expire().as_secs(),
        soa.minimum().as_secs(),
    ] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    Some(SoaTemplate {
        bytes: b.into_boxed_slice(),
        ptrs: [0, mp, rp],
        m_last: m_last.map(Box::from),
        r_last: r_last.map(Box::from),
    })
}

impl FastIndex {
    /// Built by `DnsTable::build` from its zones and nodes (keys are the
    /// lowercase wire names).
    pub(crate) fn build<'a>(
        zones: impl Iterator<Item = (&'a [u8], &'a Zone)>,
        nodes: impl Iterator<Item = (&'a [u8], &'a Node)>,
        geo: Option<&Arc<GeoResolver>>,
    ) -> FastIndex {
        let mut idx = FastIndex {
            geo: geo.cloned(),
            ..FastIndex::default()
        };
        let mut entries: Vec<(&[u8], Slot)> = Vec::new();
        let mut seen: HashMap<&[u8], usize> = HashMap::new();
        let mut entry = |key: &'a [u8], entries: &mut Vec<(&'a [u8], Slot)>| -> usize {
            *seen.entry(key).or_insert_with(|| {
                entries.push((key, FREE));
                entries.len() - 1
            })
        };
        for (key, zone) in zones {
            let i = entry(key, &mut entries);
            entries[i].1.zone = idx.zones.len() as u32;
            idx.zones.push(soa_template(zone));
        }
        for (key, node) in nodes {
            let i = entry(key, &mut entries);
            match node {
                Node::Empty => entries[i].1.empty = true,
                Node::Host(_) => entries[i].1.host = true,
                Node::Domain(d) => {
                    let geo = match &d.regional {
                        None => None,
                        Some(r) => match GeoTemplates::build(r, |p| encode_records(p, d.ttl)) {
                            Some(t) => Some(t),
                            // Other client-dependent answers take the full
                            // path, like hosts.
                            None => {
                                entries[i].1.host = true;
                                continue;
                            }
                        },
                    };
                    entries[i].1.domain = idx.domains.len() as u32;
                    idx.domains.push(FastDomain {
                        serving: d.serving,
                        counters: Arc::clone(&d.counters),
                        v4: Arc::clone(&d.v4),
                        v6: Arc::clone(&d.v6),
                        rec4: encode_records(&d.v4, d.ttl),
                        rec6: encode_records(&d.v6, d.ttl),
                        geo,
                    });
                }
            }
        }
        let size = (entries.len() * 2).next_power_of_two().max(8);
        idx.slots = vec![FREE; size];
        for (key, mut slot) in entries {
            let mut starts = [0usize; MAX_LABELS];
            let Some(n) = label_starts(key, &mut starts) else {
                continue; // too many labels: never looked up here
            };
            let mut hashes = [0u64; MAX_LABELS];
            suffix_hashes(key, starts.get(..n).unwrap_or(&[]), &mut hashes);
            slot.hash = hashes[0];
            slot.off = idx.names.len() as u32;
            slot.len = key.len() as u32;
            idx.names.extend_from_slice(key);
            let mut i = slot.hash as usize & (size - 1);
            while idx.slots[i].len != 0 {
                i = (i + 1) & (size - 1);
            }
            idx.slots[i] = slot;
        }
        idx
    }

    fn find(&self, hash: u64, key: &[u8]) -> Option<&Slot> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut i = hash as usize & mask;
        loop {
            let s = self.slots.get(i)?;
            if s.len == 0 {
                return None;
            }
            if s.hash == hash
                && self.names.get(s.off as usize..(s.off + s.len) as usize) == Some(key)
            {
                return Some(s);
            }
            i = (i + 1) & mask;
        }
    }
}

/// Rate limiting of a UDP query: the configuration, the client and the
/// monotonic time in ms (None: not limited, e.g. TCP or RRL off).
pub(crate) type RrlCheck<'a> = Option<(&'a RateLimit, IpAddr, u64)>;

fn over_limit(rrl: RrlCheck<'_>, stats: &DnsStats, class: Class, name: &[u8]) -> bool {
    rrl.is_some_and(|(cfg, client, now)| stats.rrl.limited(cfg, class, name, client, now))
}

/// Writes the answer to `query` from `client` (the source address) into
/// `out` and returns true, or returns false (nothing counted, `out`
/// unspecified) for the full path to answer.
#[allow(clippy::too_many_arguments)] // the query, its source and transport, the snapshot, the outputs
pub(crate) fn answer(
    query: &[u8],
    client: IpAddr,
    udp: bool,
    max_udp_size: u16,
    idx: &FastIndex,
    stats: &DnsStats,
    out: &mut Vec<u8>,
    rrl: RrlCheck<'_>,
) -> bool {
    let mut wire = [0u8; 256];
    let mut starts = [0usize; MAX_LABELS];
    let Some((mut q, wlen, nlabels)) = parse(query, &mut wire, &mut starts) else {
        return false;
    };
    if idx.signed && matches!(q.edns, Some((_, true))) {
        return false;
    }
    q.advertise = max_udp_size.max(PLAIN_UDP_MAX as u16);
    let name = wire.get(..wlen).unwrap_or(&[]);
    let starts = starts.get(..nlabels).unwrap_or(&[]);
    let mut hashes = [0u64; MAX_LABELS];
    suffix_hashes(name, starts, &mut hashes);
    let limit = match (udp, q.edns) {
        (false, _) => TCP_MAX,
        (true, None) => PLAIN_UDP_MAX,
        (true, Some((size, _))) => usize::from(size.clamp(PLAIN_UDP_MAX as u16, q.advertise)),
    };
    let exact = idx.find(hashes[0], name);
    if exact.is_some_and(|s| s.host) {
        return false;
    }
    let want_v4 = q.qtype == 1;
    let (label, rcode) = if want_v4 {
        (QtypeLabel::A, 0)
    } else {
        (QtypeLabel::Aaaa, 0)
    };
    if let Some(s) = exact
        && let Some(d) = idx.domains.get(s.domain as usize)
    {
        if d.serving == Serving::ServFail {
            return false;
        }
        let (flat, flat_rec, rlen) = if want_v4 {
            (&*d.v4, &*d.rec4, A_LEN)
        } else {
            (&*d.v6, &*d.rec6, AAAA_LEN)
        };
        if !flat.is_empty() {
            // A geolocation name: the client's region (or the flat pools).
            let (mut pool, mut rec, mut scope, mut routed) = (flat, flat_rec, 0, None);
            if let Some(g) = &d.geo {
                let c = g.choose(client, q.ecs.as_ref(), want_v4, idx.geo.as_deref());
                if let Some((p, r)) = c.pool {
                    (pool, rec) = (p, r);
                }
                (scope, routed) = (c.scope, Some(c.counter));
            }
            let count = pool.answer_len();
            let size = q.question.len() + count * rlen + opt_len(&q);
            if size > limit || over_limit(rrl, stats, Class::Answer, name) {
                return false;
            }
            if d.serving == Serving::LastHealthy {
                d.counters.last_healthy.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(c) = routed.and_then(|i| d.counters.routed.get(i)) {
                c.fetch_add(1, Ordering::Relaxed);
            }
            let start = pool.pick().start();
            let n = pool.addrs().len();
            begin(out, &q, rcode, count as u16, 0);
            let first = (start + count).min(n);
            out.extend_from_slice(rec.get(start * rlen..first * rlen).unwrap_or(&[]));
            let wrapped = start + count - first;
            out.extend_from_slice(rec.get(..wrapped * rlen).unwrap_or(&[]));
            finish(out, &q, scope);
            d.counters.answers.fetch_add(1, Ordering::Relaxed);
            stats.count_query(label, RcodeLabel::NoError);
            return true;
        }
    }
    // Negative: NODATA for a name that exists (domain without addresses of
    // this family, empty non-terminal, zone apex), else NXDOMAIN.
    let exists = exact.is_some();
    let Some((i, t)) = zone_template(idx, name, starts, &hashes, exact) else {
        return false;
    };
    let size = q.question.len() + t.bytes.len() + opt_len(&q);
    if size > limit {
        return false;
    }
    let (class, key) = if exists {
        (Class::NoData, name)
    } else {
        let apex = starts.get(i).and_then(|&s| name.get(s..));
        (Class::NxDomain, apex.unwrap_or(&[]))
    };
    if over_limit(rrl, stats, class, key) {
        return false;
    }
    let rcode = if exists { 0 } else { 3 };
    begin(out, &q, rcode, 0, 1);
    let base = out.len();
    out.extend_from_slice(&t.bytes);
    let ptr = (0xc000 | (12 + starts.get(i).copied().unwrap_or(0)) as u16).to_be_bytes();
    for p in t.ptrs {
        if let Some(slot) = out.get_mut(base + p..base + p + 2) {
            slot.copy_from_slice(&ptr);
        }
    }
    finish(out, &q, 0);
    let rl = if exists {
        RcodeLabel::NoError
    } else {
        RcodeLabel::NxDomain
    };
    stats.count_query(label, rl);
    true
}

/// Header (id, QR, opcode 0, AA, RD and CD copied, rcode, counts) and the
/// question as asked.
fn begin(out: &mut Vec<u8>, q: &Query<'_>, rcode: u8, an: u16, ns: u16) {
    let h = q.header;
    let (b2, b3) = (
        h.get(2).copied().unwrap_or(0),
        h.get(3).copied().unwrap_or(0),
    );
    let an = an.to_be_bytes();
    let ns = ns.to_be_bytes();
    out.clear();
    out.extend_from_slice(&[
        h.first().copied().unwrap_or(0),
        h.get(1).copied().unwrap_or(0),
        0x84 | (b2 & 0x01),
        (b3 & 0x10) | rcode,
        0,
        1,
        an[0],
        an[1],
        ns[0],
        ns[1],
        0,
        u8::from(q.edns.is_some()),
    ]);
    out.extend_from_slice(q.question.get(12..).unwrap_or(&[]));
}

/// Bytes of the answer's OPT record (0 without EDNS).
fn opt_len(q: &Query<'_>) -> usize {
    match (q.edns, &q.ecs) {
        (None, _) => 0,
        (Some(_), None) => 11,
        (Some(_), Some(e)) => 11 + 8 + usize::from(e.addr_len),
    }
}

/// The zone of a negative answer: the suffix index of its apex and its
/// SOA template, found by the longest suffix that has one (`exact` is the
/// slot of the whole name, already looked up). None when the zone has no
/// template or the query's last label before the apex equals that of
/// the SOA's mname or rname: domain would compress those names against
/// the query name, which the templates do not model.
fn zone_template<'i>(
    idx: &'i FastIndex,
    name: &[u8],
    starts: &[usize],
    hashes: &[u64],
    exact: Option<&'i Slot>,
) -> Option<(usize, &'i SoaTemplate)> {
    let mut zone = None;
    for (i, (&h, &s)) in hashes.iter().zip(starts).enumerate() {
        let slot = if i == 0 {
            exact
        } else {
            idx.find(h, name.get(s..).unwrap_or(&[]))
        };
        if let Some(z) = slot.and_then(|sl| idx.zones.get(sl.zone as usize)) {
            zone = Some((i, z));
            break;
        }
    }
    let (i, Some(t)) = zone? else {
        return None;
    };
    if let Some(&before) = i.checked_sub(1).and_then(|b| starts.get(b)) {
        let len = usize::from(name.get(before).copied().unwrap_or(0));
        let q_last = name.get(before + 1..before + 1 + len);
        if q_last == t.m_last.as_deref() || q_last == t.r_last.as_deref() {
            return None;
        }
    }
    Some((i, t))
}

/// The OPT record of an EDNS query: our payload size, version 0, DO
/// echoed, and the query's ECS with `scope` (RFC 7871 §7.1.2: 0 when the
/// source prefix was 0), as edns.rs writes them.
fn finish(out: &mut Vec<u8>, q: &Query<'_>, scope: u8) {
    let Some((_, dnssec_ok)) = q.edns else {
        return;
    };
    let adv = q.advertise.to_be_bytes();
    let flags = if dnssec_ok { 0x80 } else { 0 };
    let rdlen = (opt_len(q) - 11) as u16;
    let [r0, r1] = rdlen.to_be_bytes();
    out.extend_from_slice(&[0, 0, 41, adv[0], adv[1], 0, 0, flags, 0, r0, r1]);
    if let Some(e) = &q.ecs {
        let [l0, l1] = (4 + u16::from(e.addr_len)).to_be_bytes();
        let [f0, f1] = e.family.to_be_bytes();
        let scope = if e.source > 0 { scope } else { 0 };
        out.extend_from_slice(&[0, 8, l0, l1, f0, f1, e.source, scope]);
        out.extend_from_slice(e.addr_bytes());
    }
}

#[path = "fastpath_signed.rs"]
mod signed;
pub(crate) use signed::{SignedAnswers, answer_signed, ends_in_do, next_snapshot};

#[cfg(test)]
#[path = "fastpath_tests.rs"]
mod tests;
