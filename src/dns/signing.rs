//! DNSSEC records in an answer (SPEC §13): the responder calls these to
//! push an RRset's RRSIG after the RRset, the compact-denial NSEC, and
//! the apex key RRsets (DNSKEY, CDS, CDNSKEY). No I/O; `dnssec::Signer`
//! does the cryptography and caching. Canonical RDATA is written into a
//! scratch buffer kept between queries and record lists live on the
//! stack, so a warm-cache answer allocates nothing.

use super::dnssec::key::SIGNATURE_LEN;
use super::dnssec::rrsig::RrsigFields;
use super::dnssec::{SignatureCache, Signer, SigningKey, nsec};
use super::fastpath::SignedAnswers;
use super::keystore::ZoneKey;
use super::table::{DnsTable, Lookup, Node, Zone};
use crate::metrics::{Kind, TextWriter};
use domain::base::iana::Rtype;
use domain::base::message_builder::{PushError, RecordSectionBuilder};
use domain::base::name::ToName;
use domain::base::rdata::ComposeRecordData;
use domain::base::rdata::UnknownRecordData;
use domain::base::wire::Composer;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Signature cache slots per DNS thread (about 100 bytes each).
pub const CACHE_SLOTS: usize = 32_768;
/// Records of one signed RRset at most (larger sets are answered TC).
const MAX_RECORDS: usize = 64;

/// Signature cache figures of every DNS thread (SPEC §13, docs/metrics.md).
#[derive(Default, Debug)]
pub struct DnssecStats {
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    /// Entries held by all threads' caches (each cache is bounded).
    pub cache_entries: AtomicU64,
    /// Bytes reserved by all threads' caches.
    pub cache_bytes: AtomicU64,
}

impl DnssecStats {
    pub fn write_metrics(&self, w: &mut TextWriter) {
        const C: &str = "opengslb_dnssec_signature_cache_total";
        w.family(
            C,
            "RRSIGs put in answers, by whether the signature came from the cache (hit) or was computed (miss).",
            Kind::Counter,
        );
        w.sample(
            C,
            &[("result", "hit")],
            self.cache_hits.load(Ordering::Relaxed) as f64,
        );
        w.sample(
            C,
            &[("result", "miss")],
            self.cache_misses.load(Ordering::Relaxed) as f64,
        );
        w.single(
            "opengslb_dnssec_signature_cache_entries",
            "Signatures held in the DNS threads' signature caches.",
            Kind::Gauge,
            self.cache_entries.load(Ordering::Relaxed) as f64,
        );
        w.single(
            "opengslb_dnssec_signature_cache_bytes",
            "Memory reserved by the DNS threads' signature caches (their bound).",
            Kind::Gauge,
            self.cache_bytes.load(Ordering::Relaxed) as f64,
        );
    }
}

/// Per-thread signing state, made on the first signed answer.
pub(crate) struct SignState {
    pub signer: Signer,
    scratch: Vec<u8>,
    /// Signed fast-path answer material of the current table snapshot.
    pub fast: SignedAnswers,
}

impl SignState {
    pub fn new(stats: &DnssecStats) -> SignState {
        let mut secret = [0u8; 16];
        // A keyed hash keeps cache placement unpredictable; a failed RNG
        // only makes it predictable, never wrong.
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret);
        let cache = SignatureCache::new(CACHE_SLOTS, secret);
        stats
            .cache_bytes
            .fetch_add(cache.memory_bytes() as u64, Ordering::Relaxed);
        SignState {
            signer: Signer::new(cache),
            scratch: Vec::with_capacity(4096),
            fast: SignedAnswers::default(),
        }
    }
}

/// What one answer is signed with.
pub(crate) struct SignCtx<'a> {
    pub key: &'a ZoneKey,
    pub state: &'a mut SignState,
    pub unix_now: u64,
    pub stats: &'a DnssecStats,
}

fn rr_type(t: Rtype) -> u16 {
    t.to_int()
}

impl SignCtx<'_> {
    /// Signs and pushes the RRSIG of the RRset `owner`/`rtype`. `ttl` is
    /// the TTL the records were sent with, `original_ttl` the zone's.
    #[allow(clippy::too_many_arguments)]
    fn push_rrsig<T: Composer, S: RecordSectionBuilder<T>, N: ToName>(
        signer: &mut Signer,
        key: (&SigningKey, &[u8]),
        (unix_now, stats): (u64, &DnssecStats),
        section: &mut S,
        owner: &N,
        owner_wire: &[u8],
        rtype: Rtype,
        ttl: u32,
        original_ttl: u32,
        rdata: &mut [&[u8]],
    ) -> Result<(), PushError> {
        let mut buf = [0u8; RRSIG_RDATA_MAX];
        let n = signed_rrsig_rdata(
            signer,
            key,
            (unix_now, stats),
            owner_wire,
            rr_type(rtype),
            original_ttl,
            rdata,
            &mut buf,
        )
        .map_err(|_| PushError::ShortBuf)?;
        let data = UnknownRecordData::from_octets(Rtype::RRSIG, &buf[..n])
            .map_err(|_| PushError::ShortBuf)?;
        section.push((owner, ttl, data))
    }

    /// RRSIGs of the address records of `addrs` (one per family present).
    pub fn sign_addrs<T: Composer, S: RecordSectionBuilder<T>, N: ToName>(
        &mut self,
        section: &mut S,
        owner: &N,
        owner_wire: &[u8],
        ttl: u32,
        addrs: impl Iterator<Item = IpAddr> + Clone,
    ) -> Result<(), PushError> {
        for v4 in [true, false] {
            let mut raw = [[0u8; 16]; MAX_RECORDS];
            let mut lens = [0usize; MAX_RECORDS];
            let mut n = 0;
            for ip in addrs.clone().filter(|a| a.is_ipv4() == v4) {
                if n == MAX_RECORDS {
                    return Err(PushError::ShortBuf);
                }
                match ip {
                    IpAddr::V4(a) => raw[n][..4].copy_from_slice(&a.octets()),
                    IpAddr::V6(a) => raw[n].copy_from_slice(&a.octets()),
                }
                lens[n] = if v4 { 4 } else { 16 };
                n += 1;
            }
            if n == 0 {
                continue;
            }
            let mut refs: [&[u8]; MAX_RECORDS] = [&[]; MAX_RECORDS];
            for i in 0..n {
                refs[i] = &raw[i][..lens[i]];
            }
            let rtype = if v4 { Rtype::A } else { Rtype::AAAA };
            Self::push_rrsig(
                &mut self.state.signer,
                (&self.key.key, &self.key.apex_wire),
                (self.unix_now, self.stats),
                section,
                owner,
                owner_wire,
                rtype,
                ttl,
                ttl,
                &mut refs[..n],
            )?;
        }
        Ok(())
    }

    /// The SOA's RRSIG (sent with `ttl`: the SOA TTL, or the negative TTL
    /// in a denial).
    pub fn sign_soa<T: Composer, S: RecordSectionBuilder<T>>(
        &mut self,
        section: &mut S,
        zone: &Zone,
        ttl: u32,
    ) -> Result<(), PushError> {
        let st = &mut *self.state;
        st.scratch.clear();
        zone.soa
            .compose_canonical_rdata(&mut st.scratch)
            .map_err(|_| PushError::ShortBuf)?;
        let mut refs: [&[u8]; 1] = [&st.scratch];
        Self::push_rrsig(
            &mut st.signer,
            (&self.key.key, &self.key.apex_wire),
            (self.unix_now, self.stats),
            section,
            &zone.apex,
            &self.key.apex_wire,
            Rtype::SOA,
            ttl,
            zone.soa_ttl,
            &mut refs,
        )
    }

    pub fn sign_ns<T: Composer, S: RecordSectionBuilder<T>>(
        &mut self,
        section: &mut S,
        zone: &Zone,
    ) -> Result<(), PushError> {
        let st = &mut *self.state;
        st.scratch.clear();
        let mut ends = [0usize; MAX_RECORDS];
        let n = zone.nameservers.len().min(MAX_RECORDS);
        for (i, ns) in zone.nameservers.iter().take(n).enumerate() {
            ns.compose_canonical(&mut st.scratch)
                .map_err(|_| PushError::ShortBuf)?;
            ends[i] = st.scratch.len();
        }
        let mut refs: [&[u8]; MAX_RECORDS] = [&[]; MAX_RECORDS];
        let mut start = 0;
        for i in 0..n {
            refs[i] = &st.scratch[start..ends[i]];
            start = ends[i];
        }
        Self::push_rrsig(
            &mut st.signer,
            (&self.key.key, &self.key.apex_wire),
            (self.unix_now, self.stats),
            section,
            &zone.apex,
            &self.key.apex_wire,
            Rtype::NS,
            zone.soa_ttl,
            zone.soa_ttl,
            &mut refs[..n],
        )
    }

    /// The RRSIGs of the apex DNSKEY RRset (one per key that signs it:
    /// two during a rollover), or of the CDNSKEY or CDS RRset.
    pub fn sign_apex_keys<T: Composer, S: RecordSectionBuilder<T>>(
        &mut self,
        section: &mut S,
        zone: &Zone,
        rtype: Rtype,
    ) -> Result<(), PushError> {
        let key = self.key;
        let mut refs: [&[u8]; 4] = [&[]; 4];
        let n = apex_key_rdatas(key, rtype, &mut refs);
        let signers: &[Arc<SigningKey>] = if rtype == Rtype::DNSKEY {
            &key.dnskey_signers
        } else {
            std::slice::from_ref(&key.key)
        };
        for signing in signers {
            Self::push_rrsig(
                &mut self.state.signer,
                (signing, &key.apex_wire),
                (self.unix_now, self.stats),
                section,
                &zone.apex,
                &key.apex_wire,
                rtype,
                zone.soa_ttl,
                zone.soa_ttl,
                &mut refs[..n],
            )?;
        }
        Ok(())
    }

    /// RRSIGs of the glue of an NS answer (`zone.glue`, grouped by name)
    /// for the names in this zone whose records are all among the first
    /// `pushed`; what does not fit is left out, like the glue itself.
    pub fn sign_glue<T: Composer, S: RecordSectionBuilder<T>>(
        &mut self,
        section: &mut S,
        zone: &Zone,
        pushed: usize,
    ) {
        let glue = zone.glue.get(..pushed).unwrap_or(&[]);
        let mut rest = glue;
        while let Some((name, _)) = rest.first() {
            let n = rest.iter().take_while(|(g, _)| g == name).count();
            let (group, after) = rest.split_at(n);
            rest = after;
            if after.is_empty() && zone.glue.get(pushed).is_some_and(|(g, _)| g == name) {
                break; // some of its records were left out
            }
            let mut wire = [0u8; 255];
            let raw = name.as_slice();
            let Some(w) = wire.get_mut(..raw.len()) else {
                break;
            };
            w.copy_from_slice(raw);
            w.make_ascii_lowercase();
            if !in_zone(w, &self.key.apex_wire) {
                continue; // another zone's name: not ours to sign here
            }
            let addrs = group.iter().map(|(_, ip)| *ip);
            if self
                .sign_addrs(section, name, w, zone.soa_ttl, addrs)
                .is_err()
            {
                break;
            }
        }
    }

    /// The compact-denial NSEC at `owner` (RFC 9824) with its RRSIG;
    /// `types` None for a name that does not exist (NXNAME).
    pub fn push_nsec<T: Composer, S: RecordSectionBuilder<T>, N: ToName>(
        &mut self,
        section: &mut S,
        owner: &N,
        owner_wire: &[u8],
        types: Option<&[u16]>,
        ttl: u32,
    ) -> Result<(), PushError> {
        let st = &mut *self.state;
        st.scratch.clear();
        match types {
            None => nsec::write_nxname_nsec(owner_wire, &mut st.scratch),
            Some(t) => nsec::write_compact_nsec(owner_wire, t, &mut st.scratch),
        }
        let data = UnknownRecordData::from_octets(Rtype::NSEC, &st.scratch[..])
            .map_err(|_| PushError::ShortBuf)?;
        section.push((owner, ttl, data))?;
        let mut refs: [&[u8]; 1] = [&st.scratch];
        Self::push_rrsig(
            &mut st.signer,
            (&self.key.key, &self.key.apex_wire),
            (self.unix_now, self.stats),
            section,
            owner,
            owner_wire,
            Rtype::NSEC,
            ttl,
            ttl,
            &mut refs,
        )
    }
}

/// Whether the wire name `name` is `apex` or under it (both lower case).
fn in_zone(name: &[u8], apex: &[u8]) -> bool {
    let mut p = 0;
    while let Some(&len) = name.get(p) {
        if name.get(p..) == Some(apex) {
            return true;
        }
        if len == 0 {
            return false;
        }
        p += 1 + usize::from(len);
    }
    false
}

/// RDATA of the apex DNSKEY RRset (every published key), or of CDNSKEY
/// (the signing key) or CDS (its DS), into `out`; returns the count.
pub(crate) fn apex_key_rdatas<'k>(
    key: &'k ZoneKey,
    rtype: Rtype,
    out: &mut [&'k [u8]; 4],
) -> usize {
    match rtype {
        Rtype::CDS => out[0] = &key.ds_rdata,
        Rtype::DNSKEY => {
            for (o, k) in out.iter_mut().zip(&key.dnskeys) {
                *o = k.dnskey_rdata();
            }
            return key.dnskeys.len().min(out.len());
        }
        _ => out[0] = key.key.dnskey_rdata(),
    }
    1
}

/// Longest RRSIG RDATA: fixed fields, signer name, signature.
pub(crate) const RRSIG_RDATA_MAX: usize = 18 + 255 + SIGNATURE_LEN;

/// Signs the RRset `owner_wire`/`rtype` (from the cache when it can) and
/// writes its RRSIG RDATA into `buf`; returns the length. Counts the
/// cache hit or miss in `stats`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn signed_rrsig_rdata(
    signer: &mut Signer,
    (key, apex_wire): (&SigningKey, &[u8]),
    (unix_now, stats): (u64, &DnssecStats),
    owner_wire: &[u8],
    rtype: u16,
    original_ttl: u32,
    rdata: &mut [&[u8]],
    buf: &mut [u8; RRSIG_RDATA_MAX],
) -> Result<usize, String> {
    let (signed, entries) = (signer.signed, signer.cache.entries);
    let (fields, sig) = signer.sign_rrset(
        key,
        apex_wire,
        owner_wire,
        rtype,
        original_ttl,
        rdata,
        unix_now,
    )?;
    let counter = if signer.signed == signed {
        &stats.cache_hits
    } else {
        &stats.cache_misses
    };
    counter.fetch_add(1, Ordering::Relaxed);
    if signer.cache.entries != entries {
        stats.cache_entries.fetch_add(1, Ordering::Relaxed);
    }
    Ok(rrsig_rdata(&fields, apex_wire, &sig, buf))
}

/// RRSIG RDATA (fields, signer, signature) into `buf`; returns its length.
fn rrsig_rdata(f: &RrsigFields, signer: &[u8], sig: &[u8; SIGNATURE_LEN], buf: &mut [u8]) -> usize {
    let mut p = 0;
    let mut put = |b: &[u8]| {
        buf[p..p + b.len()].copy_from_slice(b);
        p += b.len();
    };
    put(&f.type_covered.to_be_bytes());
    put(&[f.algorithm, f.labels]);
    put(&f.original_ttl.to_be_bytes());
    put(&f.expiration.to_be_bytes());
    put(&f.inception.to_be_bytes());
    put(&f.key_tag.to_be_bytes());
    put(signer);
    put(sig);
    p
}

/// The apex types listed in NSEC bitmaps when the zone is signed.
pub(crate) const APEX_TYPES: [u16; 5] = [6, 2, 48, 59, 60];

/// DNSSEC for one answer: the signer and the query name's facts.
pub(crate) struct Signing<'a> {
    pub ctx: SignCtx<'a>,
    /// The query name, lower case.
    pub owner: &'a [u8],
    /// Types present at the name (for NODATA's NSEC); None: no such name.
    pub types: Option<([u16; 8], usize)>,
}

/// The types at `wire` for a compact-denial NSEC; None if no such name.
pub(crate) fn types_at(table: &DnsTable, wire: &[u8]) -> Option<([u16; 8], usize)> {
    let Lookup::Found { at_apex, node, .. } = table.lookup(wire) else {
        return None;
    };
    let mut types = [0u16; 8];
    let mut n = 0;
    let mut add = |t: u16| {
        if n < types.len() {
            types[n] = t;
            n += 1;
        }
    };
    match node {
        Some(Node::Domain(d)) => {
            if !d.v4.is_empty() {
                add(Rtype::A.to_int());
            }
            if !d.v6.is_empty() {
                add(Rtype::AAAA.to_int());
            }
        }
        Some(Node::Host(h)) => {
            if h.addrs.iter().any(IpAddr::is_ipv4) {
                add(Rtype::A.to_int());
            }
            if h.addrs.iter().any(IpAddr::is_ipv6) {
                add(Rtype::AAAA.to_int());
            }
        }
        Some(_) => {}
        None if at_apex => {}
        None => return None,
    }
    if at_apex {
        for t in APEX_TYPES {
            add(t);
        }
    }
    Some((types, n))
}
