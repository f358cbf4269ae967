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
//! in place through the thread's signature cache. Anything else — NODATA,
//! NXDOMAIN, names of unsigned zones, answers that would not fit — returns
//! false and the full path answers it, as before.

use super::{FastIndex, MAX_LABELS, PLAIN_UDP_MAX, TCP_MAX, begin, finish, parse, suffix_hashes};
use crate::dns::dnssec::Signer;
use crate::dns::dnssec::cache::WINDOW_SECS;
use crate::dns::signing::{RRSIG_RDATA_MAX, SignState, signed_rrsig_rdata};
use crate::dns::stats::{DnsStats, QtypeLabel, RcodeLabel};
use crate::dns::table::{DnsTable, Lookup, Node, Serving};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Records of one RRset signed here at most (the full path handles more).
const MAX_RECORDS: usize = 64;
/// RRSIG record header: owner pointer to the question, type, class, TTL,
/// RDATA length.
const RR_HEADER: usize = 12;

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
    arena: Vec<u8>,
}

impl SignedAnswers {
    fn use_snapshot(&mut self, idx: &FastIndex) {
        if self.snapshot != idx.snapshot {
            self.snapshot = idx.snapshot;
            self.entries.clear();
            self.entries.resize(idx.domains.len() * 2, UNSET);
            self.arena.clear();
        }
    }

    fn record(&self, e: Entry) -> &[u8] {
        self.arena
            .get(e.off as usize..(e.off + e.len) as usize)
            .unwrap_or(&[])
    }
}

/// Answers a DO=1 A/AAAA query for a name of a signed zone with
/// addresses of the asked family, like `fastpath::answer`; false sends it
/// to the full path. `state` is made on the first answer signed here.
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
    q.advertise = max_udp_size.max(PLAIN_UDP_MAX as u16);
    let name = wire.get(..wlen).unwrap_or(&[]);
    let mut hashes = [0u64; MAX_LABELS];
    suffix_hashes(name, starts.get(..nlabels).unwrap_or(&[]), &mut hashes);
    let Some(slot) = idx.find(hashes[0], name).filter(|s| !s.host) else {
        return false;
    };
    let Some(d) = idx.domains.get(slot.domain as usize) else {
        return false;
    };
    let v4 = q.qtype == 1;
    let (pool, rec, family) = if v4 {
        (&d.v4, &d.rec4, 0)
    } else {
        (&d.v6, &d.rec6, 1)
    };
    if d.serving == Serving::ServFail || pool.is_empty() {
        return false;
    }
    let count = pool.answer_len();
    let n = pool.addrs().len();
    let rlen = rec.len() / n.max(1);
    let state = state.get_or_insert_with(|| Box::new(SignState::new(&stats.dnssec)));
    let SignState { signer, fast, .. } = &mut **state;
    fast.use_snapshot(idx);
    let ei = slot.domain as usize * 2 + family;
    let window = (unix_now / WINDOW_SECS) as u32;
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
        let mut rdata = [0u8; RRSIG_RDATA_MAX];
        let rtype = if v4 { 1 } else { 28 };
        let len = signed_rrsig_rdata(
            signer,
            key,
            (unix_now, &stats.dnssec),
            name,
            rtype,
            ttl,
            refs.get_mut(..k)?,
            &mut rdata,
        )
        .ok()?;
        let bytes = RR_HEADER + len;
        let old = *fast.entries.get(ei)?;
        let off = if old.len as usize == bytes {
            old.off as usize
        } else {
            let off = fast.arena.len();
            fast.arena.resize(off + bytes, 0);
            off
        };
        let dst = fast.arena.get_mut(off..off + bytes)?;
        dst[..6].copy_from_slice(&[0xc0, 0x0c, 0, 46, 0, 1]);
        dst[6..10].copy_from_slice(&ttl.to_be_bytes());
        dst[10..12].copy_from_slice(&(len as u16).to_be_bytes());
        dst[12..].copy_from_slice(rdata.get(..len)?);
        let e = Entry {
            window,
            start: start as u32,
            off: off as u32,
            len: bytes as u32,
        };
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
    let limit = if udp {
        usize::from(size.clamp(PLAIN_UDP_MAX as u16, q.advertise))
    } else {
        TCP_MAX
    };
    if q.question.len() + count * rlen + e.len as usize + 11 > limit {
        return false;
    }
    let pick = pool.pick();
    let start = pick.start();
    let stale = e.window != window || (count < n && e.start as usize != start);
    if stale {
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
    begin(out, &q, 0, count as u16 + 1, 0);
    let first = (start + count).min(n);
    out.extend_from_slice(rec.get(start * rlen..first * rlen).unwrap_or(&[]));
    let wrapped = start + count - first;
    out.extend_from_slice(rec.get(..wrapped * rlen).unwrap_or(&[]));
    out.extend_from_slice(fast.record(e));
    finish(out, &q);
    d.counters.answers.fetch_add(1, Ordering::Relaxed);
    let label = if v4 { QtypeLabel::A } else { QtypeLabel::Aaaa };
    stats.count_query(label, RcodeLabel::NoError);
    true
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
