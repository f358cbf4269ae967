//! The fast path for DO=1 queries in signed zones (SPEC §13).
//!
//! A signed positive answer is the unsigned fast answer (fastpath.rs) plus
//! one RRSIG record over the address RRset. That RRSIG does not depend on
//! the order of the records (the signature covers the canonical, sorted
//! RRset), so the rotation of a round-robin answer keeps one signature per
//! RRset; only a pool that answers fewer addresses than it holds has one
//! RRset per rotation start.
//!
//! Each DNS thread keeps, for the table snapshot it last answered from,
//! the encoded RRSIG record of every (name, family) it has answered,
//! stamped with its validity window (`dnssec::cache`). A warm answer
//! copies the precomputed bytes: no hashing, no canonical form, no heap.
//! A new snapshot (`DnsTable::with_dnssec` numbers each one) starts the
//! thread's material afresh; a new validity window (daily, so signatures
//! are replaced at least six days before they expire) re-signs the entry
//! in place through the thread's signature cache. NODATA at a name the
//! table holds is kept the same way (the records after the SOA: its
//! RRSIG, the name's compact-denial NSEC and that NSEC's RRSIG). Anything
//! else — NXDOMAIN (a signature per query name), names of unsigned zones,
//! answers that would not fit — returns false and the full path answers
//! it, as before.

use super::{
    FastIndex, MAX_LABELS, PLAIN_UDP_MAX, Slot, TCP_MAX, begin, finish, parse, suffix_hashes,
};
use crate::dns::dnssec::cache::WINDOW_SECS;
use crate::dns::dnssec::{Signer, nsec};
use crate::dns::keystore::ZoneKey;
use crate::dns::signing::{self, RRSIG_RDATA_MAX, SignState, signed_rrsig_rdata};
use crate::dns::stats::{DnsStats, QtypeLabel, RcodeLabel};
use crate::dns::table::{DnsTable, Lookup, Node, Serving};
use domain::base::rdata::ComposeRecordData;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Records of one RRset signed here at most (the full path handles more).
const MAX_RECORDS: usize = 64;

static SNAPSHOTS: AtomicU64 = AtomicU64::new(1);

/// A number no other signed table snapshot of this process has.
pub(crate) fn next_snapshot() -> u64 {
    SNAPSHOTS.fetch_add(1, Ordering::Relaxed)
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Validity window of the signature; u32::MAX before the first.
    window: u32,
    /// First address of the signed RRset in the pool.
    start: u32,
    /// The RRSIG record in `arena`.
    off: u32,
    len: u32,
}

const UNSET: Entry = Entry {
    window: u32::MAX,
    start: 0,
    off: 0,
    len: 0,
};

/// One thread's signed answer material for one table snapshot.
#[derive(Default)]
pub(crate) struct SignedAnswers {
    snapshot: u64,
    /// Two per fast domain (A, AAAA).
    entries: Vec<Entry>,
    /// One per slot of the snapshot's name index (NODATA), made on the
    /// first NODATA answer.
    nodata: Vec<Entry>,
    arena: Vec<u8>,
    /// One RRSIG record being made.
    scratch: Vec<u8>,
}

impl SignedAnswers {
    fn use_snapshot(&mut self, idx: &FastIndex) {
        if self.snapshot != idx.snapshot {
            self.snapshot = idx.snapshot;
            self.entries.clear();
            self.entries.resize(idx.domains.len() * 2, UNSET);
            self.nodata.clear();
            self.arena.clear();
        }
    }

    /// Stores `bytes` for the entry `old` (in place when the length is
    /// the same, as it is for a re-signed set) and returns the new entry.
    fn store(&mut self, old: Entry, window: u32, start: u32, bytes: &[u8]) -> Option<Entry> {
        let off = if old.len as usize == bytes.len() {
            old.off as usize
        } else {
            let off = self.arena.len();
            self.arena.resize(off + bytes.len(), 0);
            off
        };
        self.arena
            .get_mut(off..off + bytes.len())?
            .copy_from_slice(bytes);
        Some(Entry {
            window,
            start,
            off: u32::try_from(off).ok()?,
            len: u32::try_from(bytes.len()).ok()?,
        })
    }

    fn record(&self, e: Entry) -> &[u8] {
        self.arena
            .get(e.off as usize..(e.off + e.len) as usize)
            .unwrap_or(&[])
    }
}

/// Whether `query` ends in an option-less OPT with DO set: the only DO=1
/// queries `answer_signed` takes (the unsigned fast path declines them in
/// a signed table), so the responder parses each query once.
pub(crate) fn ends_in_do(query: &[u8]) -> bool {
    let Some(opt) = query.len().checked_sub(11).and_then(|s| query.get(s..)) else {
        return false;
    };
    opt[..3] == [0, 0, 41] && opt[7] & 0x80 != 0 && opt[9..] == [0, 0]
}

/// What both kinds of signed fast answer need.
struct Ask<'a, 'q> {
    q: super::Query<'q>,
    /// The query name, lower case wire form.
    name: &'a [u8],
    starts: &'a [usize],
    hashes: &'a [u64; MAX_LABELS],
    limit: usize,
    window: u32,
    unix_now: u64,
}

/// Answers a DO=1 A/AAAA query for a name of a signed zone that exists
/// (addresses, or NODATA), like `fastpath::answer`; false sends it to the
/// full path. `state` is made on the first answer signed here.
#[allow(clippy::too_many_arguments)]
pub(crate) fn answer_signed(
    query: &[u8],
    udp: bool,
    max_udp_size: u16,
    table: &DnsTable,
    stats: &DnsStats,
    out: &mut Vec<u8>,
    state: &mut Option<Box<SignState>>,
    unix_now: u64,
) -> bool {
    let idx = table.fast();
    if idx.snapshot == 0 {
        return false;
    }
    let mut wire = [0u8; 256];
    let mut starts = [0usize; MAX_LABELS];
    let Some((mut q, wlen, nlabels)) = parse(query, &mut wire, &mut starts) else {
        return false;
    };
    let Some((size, true)) = q.edns else {
        return false;
    };
    // The sizes below count an option-less OPT; ECS takes the full path.
    if q.ecs.is_some() {
        return false;
    }
    q.advertise = max_udp_size.max(PLAIN_UDP_MAX as u16);
    let name = wire.get(..wlen).unwrap_or(&[]);
    let starts = starts.get(..nlabels).unwrap_or(&[]);
    let mut hashes = [0u64; MAX_LABELS];
    suffix_hashes(name, starts, &mut hashes);
    // NXDOMAIN needs a signature per query name: the full path's cache.
    let Some(slot) = idx.find(hashes[0], name).filter(|s| !s.host) else {
        return false;
    };
    let limit = if udp {
        usize::from(size.clamp(PLAIN_UDP_MAX as u16, q.advertise))
    } else {
        TCP_MAX
    };
    let ask = Ask {
        q,
        name,
        starts,
        hashes: &hashes,
        limit,
        window: (unix_now / WINDOW_SECS) as u32,
        unix_now,
    };
    let v4 = ask.q.qtype == 1;
    match idx.domains.get(slot.domain as usize) {
        Some(d) if d.serving == Serving::ServFail => false,
        // Geolocation answers depend on the client: the full path signs them.
        Some(d) if d.geo.is_some() => false,
        Some(d) if !(if v4 { &d.v4 } else { &d.v6 }).is_empty() => {
            let ei = slot.domain as usize * 2 + usize::from(!v4);
            positive(&ask, d, ei, table, stats, out, state)
        }
        _ => {
            // Slots are in one array: its index numbers the name.
            let si = (slot as *const Slot as usize).wrapping_sub(idx.slots.as_ptr() as usize)
                / std::mem::size_of::<Slot>();
            nodata(&ask, si, table, stats, out, state)
        }
    }
}

/// The state of this thread, made on first use, for the current snapshot.
fn thread_state<'s>(
    state: &'s mut Option<Box<SignState>>,
    idx: &FastIndex,
    stats: &DnsStats,
) -> &'s mut SignState {
    let st = state.get_or_insert_with(|| Box::new(SignState::new(&stats.dnssec)));
    st.fast.use_snapshot(idx);
    st
}

/// Addresses with the RRSIG of their RRset.
#[allow(clippy::too_many_arguments)]
fn positive(
    ask: &Ask<'_, '_>,
    d: &super::FastDomain,
    ei: usize,
    table: &DnsTable,
    stats: &DnsStats,
    out: &mut Vec<u8>,
    state: &mut Option<Box<SignState>>,
) -> bool {
    let (q, name) = (&ask.q, ask.name);
    let v4 = q.qtype == 1;
    let (pool, rec) = if v4 {
        (&d.v4, &d.rec4)
    } else {
        (&d.v6, &d.rec6)
    };
    let count = pool.answer_len();
    let n = pool.addrs().len();
    let rlen = rec.len() / n.max(1);
    let SignState { signer, fast, .. } = thread_state(state, table.fast(), stats);
    let window = ask.window;
    // Signs the RRset of `count` addresses from `start` into the entry.
    let sign = |fast: &mut SignedAnswers, signer: &mut Signer, start: usize| {
        let key = table.zone_key(name).map(|(_, k)| k)?;
        let ttl = domain_ttl(table, name)?;
        let mut raw = [[0u8; 16]; MAX_RECORDS];
        let mut refs: [&[u8]; MAX_RECORDS] = [&[]; MAX_RECORDS];
        let addrs = pool.addrs();
        let mut k = 0;
        for i in 0..count {
            let ip = *addrs.get((start + i) % n)?;
            let slot = raw.get_mut(k)?;
            k += 1;
            match ip {
                IpAddr::V4(a) => slot[..4].copy_from_slice(&a.octets()),
                IpAddr::V6(a) => slot.copy_from_slice(&a.octets()),
            }
        }
        for (r, raw) in refs.iter_mut().zip(&raw).take(k) {
            *r = raw.get(..if v4 { 4 } else { 16 }).unwrap_or(&[]);
        }
        let rtype = if v4 { 1 } else { 28 };
        // Kept between calls: a pool answering fewer addresses than it
        // holds re-signs (from the cache) on every rotation, allocation-free.
        let mut rec = std::mem::take(&mut fast.scratch);
        rec.clear();
        let sig = (signer, key, ask.unix_now, stats);
        let made = push_rrsig(
            sig,
            name,
            rtype,
            ttl,
            refs.get_mut(..k)?,
            [0xc0, 0x0c],
            ttl,
            &mut rec,
        )
        .and_then(|()| fast.store(fast.entries.get(ei).copied()?, window, start as u32, &rec));
        fast.scratch = rec;
        let e = made?;
        *fast.entries.get_mut(ei)? = e;
        Some(e)
    };
    let Some(mut e) = fast.entries.get(ei).copied() else {
        return false;
    };
    // The RRSIG's length is that of any rotation: known once one is made.
    if e.len == 0 {
        let Some(made) = sign(fast, signer, 0) else {
            return false;
        };
        e = made;
    }
    if q.question.len() + count * rlen + e.len as usize + 11 > ask.limit {
        return false;
    }
    let pick = pool.pick();
    let start = pick.start();
    if e.window != window || (count < n && e.start as usize != start) {
        match sign(fast, signer, start) {
            Some(made) => e = made,
            // Cannot happen once an entry was made (same key, same set);
            // the pick is spent, the full path picks again.
            None => return false,
        }
    } else {
        stats.dnssec.cache_hits.fetch_add(1, Ordering::Relaxed);
    }
    if d.serving == Serving::LastHealthy {
        d.counters.last_healthy.fetch_add(1, Ordering::Relaxed);
    }
    begin(out, q, 0, count as u16 + 1, 0);
    let first = (start + count).min(n);
    out.extend_from_slice(rec.get(start * rlen..first * rlen).unwrap_or(&[]));
    let wrapped = start + count - first;
    out.extend_from_slice(rec.get(..wrapped * rlen).unwrap_or(&[]));
    out.extend_from_slice(fast.record(e));
    finish(out, q, 0);
    d.counters.answers.fetch_add(1, Ordering::Relaxed);
    let label = if v4 { QtypeLabel::A } else { QtypeLabel::Aaaa };
    stats.count_query(label, RcodeLabel::NoError);
    true
}

/// NODATA at an existing name: the SOA (fastpath.rs's template), its
/// RRSIG, and the compact-denial NSEC of the name with its RRSIG. The
/// three records after the SOA are the same for A and AAAA, so one entry
/// per name holds them.
fn nodata(
    ask: &Ask<'_, '_>,
    si: usize,
    table: &DnsTable,
    stats: &DnsStats,
    out: &mut Vec<u8>,
    state: &mut Option<Box<SignState>>,
) -> bool {
    let (q, name, starts) = (&ask.q, ask.name, ask.starts);
    let idx = table.fast();
    // The zone: the longest suffix with a SOA template (fastpath.rs); the
    // name's own slot, looked up by the caller, is slot `si`.
    let exact = idx.slots.get(si);
    let Some((i, t)) = super::zone_template(idx, name, starts, ask.hashes, exact) else {
        return false;
    };
    let apex_ptr = (0xc000 | (12 + starts.get(i).copied().unwrap_or(0)) as u16).to_be_bytes();
    let SignState { signer, fast, .. } = thread_state(state, idx, stats);
    if fast.nodata.is_empty() {
        fast.nodata.resize(idx.slots.len(), UNSET);
    }
    let Some(mut e) = fast.nodata.get(si).copied() else {
        return false;
    };
    if e.window != ask.window {
        let made = (|| {
            let (zone, key) = table.zone_key(name)?;
            let (types, nt) = signing::types_at(table, name)?;
            let ttl = zone.negative_ttl;
            let mut rec = Vec::new();
            let mut soa = Vec::new();
            zone.soa.compose_canonical_rdata(&mut soa).ok()?;
            let sig = (&mut *signer, key, ask.unix_now, stats);
            let apex = key.apex_wire.as_slice();
            push_rrsig(
                sig,
                apex,
                6,
                zone.soa_ttl,
                &mut [&soa],
                apex_ptr,
                ttl,
                &mut rec,
            )?;
            let mut nsec = Vec::new();
            nsec::write_compact_nsec(name, types.get(..nt)?, &mut nsec);
            rec.extend_from_slice(&[0xc0, 0x0c, 0, 47, 0, 1]);
            rec.extend_from_slice(&ttl.to_be_bytes());
            rec.extend_from_slice(&u16::try_from(nsec.len()).ok()?.to_be_bytes());
            rec.extend_from_slice(&nsec);
            let sig = (&mut *signer, key, ask.unix_now, stats);
            push_rrsig(
                sig,
                name,
                47,
                ttl,
                &mut [&nsec],
                [0xc0, 0x0c],
                ttl,
                &mut rec,
            )?;
            fast.store(e, ask.window, 0, &rec)
        })();
        let Some(made) = made else {
            return false;
        };
        e = made;
        if let Some(slot) = fast.nodata.get_mut(si) {
            *slot = e;
        }
    } else {
        stats.dnssec.cache_hits.fetch_add(2, Ordering::Relaxed);
    }
    if q.question.len() + t.bytes.len() + e.len as usize + 11 > ask.limit {
        return false;
    }
    begin(out, q, 0, 0, 4);
    let base = out.len();
    out.extend_from_slice(&t.bytes);
    for p in t.ptrs {
        if let Some(slot) = out.get_mut(base + p..base + p + 2) {
            slot.copy_from_slice(&apex_ptr);
        }
    }
    out.extend_from_slice(fast.record(e));
    finish(out, q, 0);
    let label = if q.qtype == 1 {
        QtypeLabel::A
    } else {
        QtypeLabel::Aaaa
    };
    stats.count_query(label, RcodeLabel::NoError);
    true
}

/// Appends an RRSIG record (owner `ptr`, `ttl`) over the RRset
/// `owner`/`rtype` with `rdata` and original TTL `original_ttl`.
#[allow(clippy::too_many_arguments)]
fn push_rrsig(
    (signer, key, unix_now, stats): (&mut Signer, &ZoneKey, u64, &DnsStats),
    owner: &[u8],
    rtype: u16,
    original_ttl: u32,
    rdata: &mut [&[u8]],
    ptr: [u8; 2],
    ttl: u32,
    out: &mut Vec<u8>,
) -> Option<()> {
    let mut buf = [0u8; RRSIG_RDATA_MAX];
    let sig = (unix_now, &stats.dnssec);
    let len = signed_rrsig_rdata(
        signer,
        (&key.key, &key.apex_wire),
        sig,
        owner,
        rtype,
        original_ttl,
        rdata,
        &mut buf,
    )
    .ok()?;
    out.extend_from_slice(&ptr);
    out.extend_from_slice(&[0, 46, 0, 1]);
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&u16::try_from(len).ok()?.to_be_bytes());
    out.extend_from_slice(buf.get(..len)?);
    Some(())
}

/// The TTL of the address records of the domain `name` (lower case wire).
fn domain_ttl(table: &DnsTable, name: &[u8]) -> Option<u32> {
    match table.lookup(name) {
        Lookup::Found {
            node: Some(Node::Domain(d)),
            ..
        } => Some(d.ttl),
        _ => None,
    }
}

#[cfg(test)]
#[path = "fastpath_signed_tests.rs"]
mod tests;
