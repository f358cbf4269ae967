//! One query in, one answer out: the protocol logic of the DNS server.
//!
//! No I/O and no clock. `Responder` owns one reusable output buffer per
//! thread; parsing borrows the query bytes (domain's `Parser` and
//! `ParsedName`), names are matched on a lowercased copy in a stack buffer,
//! and the answer is composed with domain's `MessageBuilder` over that
//! buffer (with a `StaticCompressor`), so an answered query does not touch
//! the heap once the buffer has grown. What the answer holds is decided
//! in plan.rs; DO=1 answers of signed zones get their RRSIGs from
//! signing.rs, or whole from fastpath_signed.rs.
//!
//! Choices worth knowing (docs/dns.md has the full list, by RFC):
//! - packets shorter than a header, and responses (QR=1), are dropped;
//! - FORMERR and NOTIMP answers echo the question when it was readable and
//!   carry an OPT when the query had one (RFC 6891 §7), and are counted
//!   with qtype `OTHER`;
//! - trailing bytes after the last record counted in the header are
//!   malformed (FORMERR);
//! - EDNS Client Subnet is echoed with the scope prefix length the answer
//!   depends on: that of the mapping or database network that placed the
//!   client (regional.rs), else 0 (the answer holds for every client);
//! - AXFR/IXFR and classes other than IN are REFUSED; ANY gets the A and
//!   AAAA the routing chose (RFC 8482 §4.2), or the SOA at a bare apex;
//!   every other qtype at a name we serve is NODATA.

use super::cookies::Verdict;
use super::edns::{Ede, Edns, OptOut};
use super::learned::LearnedLookup;
use super::plan::{Client, Plan, family_matches, plan};
use super::query::{self, Parsed, Q};
use super::routing::Pick;
use super::signing::{self, SignCtx, SignState, Signing};
use super::stats::{DnsStats, QtypeLabel};
use super::table::{DnsTable, WireName};
use crate::clock::Now;
use domain::base::iana::{OptRcode, Rcode, Rtype};
use domain::base::message_builder::{AnswerBuilder, PushError, StaticCompressor};
use domain::base::name::ParsedName;
use domain::base::rdata::UnknownRecordData;
use domain::base::wire::Composer;
use domain::base::{Header, MessageBuilder};
use domain::rdata::{A, Aaaa, Ns};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Largest answer over TCP (the 2-byte length prefix limit).
const TCP_MAX: usize = 65535;
/// Largest UDP answer to a query without EDNS (RFC 1035).
const PLAIN_UDP_MAX: usize = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What rate limiting decided for one response.
enum Limit {
    Pass,
    Drop,
    /// Send it truncated (or as BADCOOKIE), every `slip`-th limited one.
    Slip,
}

pub struct Responder {
    buf: Vec<u8>,
    max_udp_size: u16,
    /// Set by the I/O loop once per turn: cookie timestamps and RRL.
    now: Now,
    /// Rate-limited responses so far, to slip every `slip`-th.
    limited: u32,
    /// Learned round trips for `learned_latency` (None = not wired).
    learned: Option<Arc<dyn LearnedLookup>>,
    /// DNSSEC signature cache and scratch, made on the first signed answer.
    signing: Option<Box<SignState>>,
}

impl Responder {
    /// `max_udp_size` caps the size EDNS clients advertise (`dns.max_udp_size`).
    pub fn new(max_udp_size: u16) -> Responder {
        Responder {
            buf: Vec::with_capacity(TCP_MAX + 1),
            max_udp_size: max_udp_size.max(PLAIN_UDP_MAX as u16),
            now: Now::at(0, 0),
            limited: 0,
            learned: None,
            signing: None,
        }
    }

    /// Hands the learned-latency table to this responder (server start).
    pub fn set_learned(&mut self, learned: Option<Arc<dyn LearnedLookup>>) {
        self.learned = learned;
    }

    /// The time of the current loop turn (protocol code reads no clock).
    pub fn set_now(&mut self, now: Now) {
        self.now = now;
    }

    /// The answer to `query`, or None when it must be dropped. `client` is
    /// the source address (cookies, rate limiting).
    pub fn respond(
        &mut self,
        query: &[u8],
        client: IpAddr,
        transport: Transport,
        table: &DnsTable,
        stats: &DnsStats,
    ) -> Option<&[u8]> {
        // Plain A/AAAA queries: answered from per-snapshot data (fastpath.rs,
        // which also applies rate limiting to UDP; DO=1 in a signed table
        // without rate limiting: fastpath_signed.rs, with precomputed RRSIGs).
        let udp = transport == Transport::Udp;
        let rrl = udp
            .then_some(table.rate_limit.as_ref())
            .flatten()
            .map(|rl| (rl, client, self.now.mono.ms()));
        let answered = if table.rate_limit.is_none()
            && table.fast().snapshot != 0
            && super::fastpath::ends_in_do(query)
        {
            super::fastpath::answer_signed(
                query,
                udp,
                self.max_udp_size,
                table,
                stats,
                &mut self.buf,
                &mut self.signing,
                self.now.wall_secs(),
            )
        } else {
            super::fastpath::answer(
                query,
                client,
                udp,
                self.max_udp_size,
                table.fast(),
                stats,
                &mut self.buf,
                rrl,
            )
        };
        if answered {
            return Some(&self.buf);
        }
        // The lowercased query name, read once for the lookup and RRL.
        let mut wire = None;
        let mut scope = 0u8;
        let (header, question, edns, plan) = match query::parse(query) {
            Parsed::Drop => {
                stats.count_dropped();
                return None;
            }
            Parsed::Error {
                header,
                rcode,
                question,
                edns,
            } => (header, question, edns, Plan::Error(rcode)),
            Parsed::CookieProbe { header, edns } => (header, None, Some(edns), Plan::Probe),
            Parsed::Query(h, q, e) => {
                let plan = match e {
                    Some(e) if e.version > 0 => Plan::BadVers,
                    _ => {
                        wire = WireName::from_labels(q.qname().iter());
                        let who = Client {
                            source: client,
                            ecs: e.and_then(|e| e.ecs),
                            learned: self.learned.as_deref(),
                        };
                        plan(&q, wire.as_ref(), table, &who, &mut scope)
                    }
                };
                (h, Some(q), e, plan)
            }
        };
        let (mut plan, mut slip) = (plan, false);
        // DNSSEC (signing.rs): the zone's key, and whether to sign.
        let zone_key = wire.as_ref().and_then(|w| table.zone_key(w.as_slice()));
        if let (Plan::NoData(z), Some((_, key)), Some(q)) = (&plan, zone_key, &question)
            && matches!(q.qtype(), Rtype::DNSKEY | Rtype::CDS | Rtype::CDNSKEY)
            && wire
                .as_ref()
                .is_some_and(|w| w.as_slice().eq_ignore_ascii_case(&key.apex_wire))
        {
            plan = Plan::ApexKeys(z, key, q.qtype());
        }
        let sign_key = zone_key
            .filter(|_| edns.is_some_and(|e| e.dnssec_ok))
            .map(|(_, k)| k);
        // RFC 7873: check the client's cookie and make ours.
        let wall = u32::try_from(self.now.wall_secs()).unwrap_or(u32::MAX);
        let cookie = edns
            .and_then(|e| e.cookie)
            .map(|c| (c.server_len > 0, stats.cookies.answer(&c, client, wall)));
        if let (Plan::Probe, Some((true, (Verdict::Unproven, _)))) = (&plan, cookie) {
            plan = Plan::BadCookie;
        }
        let proven = matches!(cookie, Some((_, (Verdict::Valid, _))));
        if transport == Transport::Udp && !proven {
            match self.rate_limit(&plan, wire.as_ref(), client, table, stats) {
                Limit::Pass => {}
                Limit::Drop => return None,
                // A cookie client learns the cookie that exempts it.
                Limit::Slip if cookie.is_some() => plan = Plan::BadCookie,
                Limit::Slip => slip = true,
            }
        }
        let limit = match (transport, edns) {
            (Transport::Tcp, _) => TCP_MAX,
            (Transport::Udp, None) => PLAIN_UDP_MAX,
            (Transport::Udp, Some(e)) => {
                usize::from(e.udp_size.clamp(PLAIN_UDP_MAX as u16, self.max_udp_size))
            }
        };
        let mut opt = edns.map(|e| self.opt_out(&e, &plan));
        if let Some(o) = opt.as_mut() {
            // RFC 7871 §7.1.2: a source prefix of 0 is answered with scope 0.
            o.ecs_scope = if o.ecs.is_some_and(|e| e.source > 0) {
                scope
            } else {
                0
            };
        }
        // RFC 9824: a signed NXDOMAIN is NOERROR with an NXNAME NSEC.
        let compact = sign_key.is_some() && matches!(plan, Plan::NxDomain(_));
        if let (Some(o), true) = (opt.as_mut(), compact) {
            o.rcode = OptRcode::NOERROR;
        }
        if let (Some(o), Some((_, (_, c)))) = (opt.as_mut(), cookie) {
            o.cookie = Some(c);
        }
        let buf = std::mem::take(&mut self.buf);
        let sign = match (sign_key, &wire) {
            (Some(key), Some(w)) => Some(Signing {
                ctx: SignCtx {
                    key,
                    state: self
                        .signing
                        .get_or_insert_with(|| Box::new(SignState::new(&stats.dnssec))),
                    unix_now: self.now.wall_secs(),
                    stats: &stats.dnssec,
                },
                owner: w.as_slice(),
                types: signing::types_at(table, w.as_slice()),
            }),
            _ => None,
        };
        let (buf, outcome) = compose(
            buf,
            header,
            question.as_ref(),
            opt.as_ref(),
            &plan,
            limit,
            slip,
            sign,
        );
        self.buf = buf;
        if slip {
            // Counted as slipped above, not as "did not fit".
        } else if outcome.truncated {
            stats.count_truncated();
        } else if let Plan::Addrs(d, _) | Plan::Any(d, _, _) = &plan {
            d.counters.answers.fetch_add(1, Ordering::Relaxed);
        }
        let qtype = match (&plan, &question) {
            (Plan::Error(_), _) | (_, None) => QtypeLabel::Other,
            (_, Some(q)) => QtypeLabel::from_code(q.qtype().to_int()),
        };
        stats.count_query(qtype, plan.label());
        Some(&self.buf)
    }

    /// Response rate limiting (rrl.rs) for a UDP response without a
    /// valid cookie.
    fn rate_limit(
        &mut self,
        plan: &Plan<'_>,
        wire: Option<&WireName>,
        client: IpAddr,
        table: &DnsTable,
        stats: &DnsStats,
    ) -> Limit {
        let Some(rl) = &table.rate_limit else {
            return Limit::Pass;
        };
        // Errors are keyed without a name, so `wire` is only needed (and
        // only set) for answers from the table.
        let name = match (plan, wire) {
            (Plan::NxDomain(z), _) => z.apex.as_slice(),
            (_, Some(w)) => w.as_slice(),
            (_, None) => &[],
        };
        let now = self.now.mono.ms();
        if !stats.rrl.limited(rl, plan.class(), name, client, now) {
            return Limit::Pass;
        }
        self.limited = self.limited.wrapping_add(1);
        if rl.slip == 0 || !self.limited.is_multiple_of(rl.slip) {
            stats.rrl.count_dropped();
            return Limit::Drop;
        }
        stats.rrl.count_slipped();
        Limit::Slip
    }

    /// The OPT record answering the query's `edns`.
    fn opt_out(&self, edns: &Edns, plan: &Plan<'_>) -> OptOut {
        let rcode = match plan {
            Plan::BadVers => OptRcode::BADVERS,
            Plan::BadCookie => OptRcode::BADCOOKIE,
            p => OptRcode::from_rcode(p.rcode()),
        };
        OptOut {
            udp_size: self.max_udp_size,
            dnssec_ok: edns.dnssec_ok,
            rcode,
            ecs: edns.ecs,
            ecs_scope: 0,
            cookie: None,
            // RFC 8914: say why, so an operator sees it in `dig`.
            ede: match plan {
                Plan::Refused(e) => Some(*e),
                Plan::ServFail => Some(Ede::NO_HEALTHY),
                _ => None,
            },
        }
    }
}

fn start_header(header: Header, rcode: Rcode) -> Header {
    let mut h = Header::new();
    h.set_id(header.id());
    h.set_qr(true);
    h.set_opcode(header.opcode());
    h.set_rd(header.rd());
    h.set_cd(header.cd());
    h.set_rcode(rcode);
    h
}

struct Outcome {
    truncated: bool,
}

#[allow(clippy::too_many_arguments)]
fn compose(
    buf: Vec<u8>,
    query_header: Header,
    question: Option<&Q<'_>>,
    opt: Option<&OptOut>,
    plan: &Plan<'_>,
    limit: usize,
    slip: bool,
    mut sign: Option<Signing<'_>>,
) -> (Vec<u8>, Outcome) {
    let mut builder = match MessageBuilder::from_target(StaticCompressor::new(buf)) {
        Ok(b) => b,
        Err(never) => match never {},
    };
    let rcode = match (plan, &sign) {
        (Plan::NxDomain(_), Some(_)) => Rcode::NOERROR,
        _ => plan.rcode(),
    };
    let mut h = start_header(query_header, rcode);
    h.set_aa(plan.authoritative());
    *builder.header_mut() = h;
    let opt_len = opt.map_or(0, OptOut::wire_len);
    // domain refuses a push that reaches the limit, hence the +1.
    builder.set_push_limit(limit.saturating_sub(opt_len) + 1);
    // A rate-limit slip: the question and TC=1, so the client asks by TCP.
    let mut truncated = slip;
    let mut q = builder.question();
    if let Some(question) = question
        && q.push(question).is_err()
    {
        // Only a 255-octet name with a big OPT at 512 octets gets here.
        truncated = true;
    }
    let mut answer = q.answer();
    if let Some(question) = question
        && !truncated
        && push_answer(&mut answer, question.qname(), plan)
            .and_then(|()| match sign.as_mut() {
                Some(s) => sign_answer(&mut answer, question.qname(), plan, s),
                None => Ok(()),
            })
            .is_err()
    {
        truncated = true;
        answer.rewind();
    }
    let mut authority = answer.authority();
    if !truncated {
        let pushed = match plan {
            Plan::NxDomain(z) | Plan::NoData(z) => authority
                .push((&z.apex, z.negative_ttl, &z.soa))
                .and_then(|()| match (sign.as_mut(), question) {
                    (Some(s), Some(q)) => {
                        let types = s.types.as_ref().map(|(t, n)| &t[..*n]);
                        s.ctx.sign_soa(&mut authority, z, z.negative_ttl)?;
                        s.ctx
                            .push_nsec(&mut authority, q.qname(), s.owner, types, z.negative_ttl)
                    }
                    _ => Ok(()),
                }),
            _ => Ok(()),
        };
        if pushed.is_err() {
            truncated = true;
            authority.rewind();
        }
    }
    let mut additional = authority.additional();
    if let (Plan::Ns(z), false) = (plan, truncated) {
        // Glue for in-zone NS names; optional data, so what does not fit
        // is left out rather than truncating the answer.
        let mut pushed = 0;
        for (name, ip) in &z.glue {
            let done = match ip {
                IpAddr::V4(v4) => additional.push((name, z.soa_ttl, A::new(*v4))),
                IpAddr::V6(v6) => additional.push((name, z.soa_ttl, Aaaa::new(*v6))),
            };
            if done.is_err() {
                break;
            }
            pushed += 1;
        }
        // DO=1: their RRSIGs, for the names all of whose records fit.
        if let Some(s) = sign.as_mut() {
            s.ctx.sign_glue(&mut additional, z, pushed);
        }
    }
    additional.set_push_limit(limit + 1);
    if let Some(o) = opt {
        let _ = o.push(&mut additional);
    }
    if truncated {
        additional.header_mut().set_tc(true);
    }
    let buf = additional.finish().into_target();
    (buf, Outcome { truncated })
}

fn push_answer<T: Composer>(
    answer: &mut AnswerBuilder<T>,
    qname: &ParsedName<&[u8]>,
    plan: &Plan<'_>,
) -> Result<(), PushError> {
    match plan {
        Plan::Soa(z) => answer.push((qname, z.soa_ttl, &z.soa)),
        Plan::Ns(z) => {
            for ns in &z.nameservers {
                answer.push((qname, z.soa_ttl, Ns::new(ns)))?;
            }
            Ok(())
        }
        Plan::Addrs(d, pick) => push_addrs(answer, qname, d.ttl, pick.clone()),
        Plan::Any(d, v4, v6) => {
            push_addrs(answer, qname, d.ttl, v4.clone())?;
            push_addrs(answer, qname, d.ttl, v6.clone())
        }
        Plan::Host(h, qtype) => {
            for ip in h.addrs.iter().filter(|a| family_matches(**a, *qtype)) {
                match ip {
                    IpAddr::V4(v4) => answer.push((qname, h.ttl, A::new(*v4)))?,
                    IpAddr::V6(v6) => answer.push((qname, h.ttl, Aaaa::new(*v6)))?,
                }
            }
            Ok(())
        }
        Plan::ApexKeys(z, key, rtype) => {
            let mut rdatas: [&[u8]; 4] = [&[]; 4];
            let n = signing::apex_key_rdatas(key, *rtype, &mut rdatas);
            for rdata in &rdatas[..n] {
                let data = UnknownRecordData::from_octets(*rtype, *rdata)
                    .map_err(|_| PushError::ShortBuf)?;
                answer.push((qname, z.soa_ttl, data))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The RRSIGs of the answer section's RRsets (signing.rs).
fn sign_answer<T: Composer>(
    answer: &mut AnswerBuilder<T>,
    qname: &ParsedName<&[u8]>,
    plan: &Plan<'_>,
    s: &mut Signing<'_>,
) -> Result<(), PushError> {
    let owner = s.owner;
    match plan {
        Plan::Soa(z) => s.ctx.sign_soa(answer, z, z.soa_ttl),
        Plan::Ns(z) => s.ctx.sign_ns(answer, z),
        Plan::Addrs(d, pick) => s.ctx.sign_addrs(answer, qname, owner, d.ttl, pick.clone()),
        Plan::Any(d, v4, v6) => {
            s.ctx
                .sign_addrs(answer, qname, owner, d.ttl, v4.clone().chain(v6.clone()))
        }
        Plan::Host(h, qtype) => {
            let addrs = h
                .addrs
                .iter()
                .copied()
                .filter(|a| family_matches(*a, *qtype));
            s.ctx.sign_addrs(answer, qname, owner, h.ttl, addrs)
        }
        Plan::ApexKeys(z, _, rtype) => s.ctx.sign_apex_keys(answer, z, *rtype),
        _ => Ok(()),
    }
}

fn push_addrs<T: Composer>(
    answer: &mut AnswerBuilder<T>,
    qname: &ParsedName<&[u8]>,
    ttl: u32,
    pick: Pick<'_>,
) -> Result<(), PushError> {
    for ip in pick {
        match ip {
            IpAddr::V4(v4) => answer.push((qname, ttl, A::new(v4)))?,
            IpAddr::V6(v6) => answer.push((qname, ttl, Aaaa::new(v6)))?,
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "responder_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "rfc_tests.rs"]
mod rfc_tests;
