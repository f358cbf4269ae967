//! One query in, one answer out: the protocol logic of the DNS server.
//!
//! No I/O and no clock. `Responder` owns one reusable output buffer per
//! thread; parsing borrows the query bytes (domain's `Parser` and
//! `ParsedName`), names are matched on a lowercased copy in a stack buffer,
//! and the answer is composed with domain's `MessageBuilder` over that
//! buffer (with a `StaticCompressor`), so an answered query does not touch
//! the heap once the buffer has grown.
//!
//! Choices worth knowing:
//! - packets shorter than a header, and responses (QR=1), are dropped;
//! - FORMERR and NOTIMP answers carry only the header (no question, no OPT)
//!   and are counted with qtype `OTHER`;
//! - trailing bytes after the last record counted in the header are
//!   malformed (FORMERR);
//! - EDNS Client Subnet is echoed with scope prefix 0: answers do not
//!   depend on the client subnet yet, and scope 0 tells resolvers they may
//!   cache the answer for every client;
//! - AXFR/IXFR and classes other than IN are REFUSED; ANY and every other
//!   qtype at a name we serve is NODATA.

use super::routing::Pick;
use super::stats::{DnsStats, QtypeLabel, RcodeLabel};
use super::table::{DnsTable, DomainEntry, Lookup, Node, Serving, WireName, Zone};
use domain::base::iana::{Class, Opcode, OptRcode, OptionCode, Rcode, Rtype};
use domain::base::message_builder::{AnswerBuilder, PushError, StaticCompressor};
use domain::base::name::ParsedName;
use domain::base::wire::Composer;
use domain::base::{Header, Message, MessageBuilder, Question, RecordHeader};
use domain::dep::octseq::{OctetsBuilder, Parser};
use domain::rdata::{A, Aaaa, Ns};
use std::net::IpAddr;
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

#[derive(Clone, Copy, Debug)]
struct Ecs {
    family: u16,
    source: u8,
    addr: [u8; 16],
    addr_len: usize,
}

#[derive(Clone, Copy, Debug)]
struct Edns {
    udp_size: u16,
    version: u8,
    dnssec_ok: bool,
    ecs: Option<Ecs>,
}

enum Parsed<'a> {
    Drop,
    /// Header-only error answer.
    Error(Header, Rcode),
    Query(Header, Question<ParsedName<&'a [u8]>>, Option<Edns>),
}

/// What goes into the answer.
enum Plan<'t> {
    Refused,
    ServFail,
    NxDomain(&'t Zone),
    NoData(&'t Zone),
    Soa(&'t Zone),
    Ns(&'t Zone),
    Addrs(&'t DomainEntry, Pick<'t>),
    BadVers,
}

pub struct Responder {
    buf: Vec<u8>,
    max_udp_size: u16,
}

impl Responder {
    /// `max_udp_size` caps the size EDNS clients advertise (`dns.max_udp_size`).
    pub fn new(max_udp_size: u16) -> Responder {
        Responder {
            buf: Vec::with_capacity(TCP_MAX + 1),
            max_udp_size: max_udp_size.max(PLAIN_UDP_MAX as u16),
        }
    }

    /// The answer to `query`, or None when it must be dropped. `client` is
    /// the source address (kept for routing policies that use it).
    pub fn respond(
        &mut self,
        query: &[u8],
        _client: IpAddr,
        transport: Transport,
        table: &DnsTable,
        stats: &DnsStats,
    ) -> Option<&[u8]> {
        // Plain A/AAAA queries: answered from per-snapshot data (fastpath.rs).
        let udp = transport == Transport::Udp;
        if super::fastpath::answer(
            query,
            udp,
            self.max_udp_size,
            table.fast(),
            stats,
            &mut self.buf,
        ) {
            return Some(&self.buf);
        }
        let (header, question, edns) = match parse(query) {
            Parsed::Drop => {
                stats.count_dropped();
                return None;
            }
            Parsed::Error(header, rcode) => {
                let buf = std::mem::take(&mut self.buf);
                self.buf = compose_error(buf, header, rcode);
                let label = if rcode == Rcode::NOTIMP {
                    RcodeLabel::NotImp
                } else {
                    RcodeLabel::FormErr
                };
                stats.count_query(QtypeLabel::Other, label);
                return Some(&self.buf);
            }
            Parsed::Query(h, q, e) => (h, q, e),
        };
        let plan = match edns {
            Some(e) if e.version > 0 => Plan::BadVers,
            _ => plan(&question, table),
        };
        let limit = match (transport, edns) {
            (Transport::Tcp, _) => TCP_MAX,
            (Transport::Udp, None) => PLAIN_UDP_MAX,
            (Transport::Udp, Some(e)) => {
                usize::from(e.udp_size.clamp(PLAIN_UDP_MAX as u16, self.max_udp_size))
            }
        };
        let buf = std::mem::take(&mut self.buf);
        let (buf, outcome) = compose(
            buf,
            header,
            &question,
            edns.as_ref(),
            &plan,
            limit,
            self.max_udp_size,
        );
        self.buf = buf;
        let (rcode, counters) = match &plan {
            Plan::Refused => (RcodeLabel::Refused, None),
            Plan::ServFail => (RcodeLabel::ServFail, None),
            Plan::NxDomain(_) => (RcodeLabel::NxDomain, None),
            Plan::BadVers => (RcodeLabel::BadVers, None),
            Plan::Addrs(d, _) => (RcodeLabel::NoError, Some(d)),
            _ => (RcodeLabel::NoError, None),
        };
        if outcome.truncated {
            stats.count_truncated();
        } else if let Some(d) = counters {
            d.counters.answers.fetch_add(1, Ordering::Relaxed);
        }
        stats.count_query(QtypeLabel::from_code(question.qtype().to_int()), rcode);
        Some(&self.buf)
    }
}

/// Parses the query; nothing here can panic on any input.
fn parse(query: &[u8]) -> Parsed<'_> {
    let Ok(msg) = Message::from_octets(query) else {
        return Parsed::Drop;
    };
    let header = msg.header();
    if header.qr() {
        return Parsed::Drop;
    }
    if header.opcode() != Opcode::QUERY {
        return Parsed::Error(header, Rcode::NOTIMP);
    }
    let formerr = Parsed::Error(header, Rcode::FORMERR);
    let counts = msg.header_counts();
    if counts.qdcount() != 1 {
        return formerr;
    }
    let mut parser = Parser::from_ref(query);
    if parser.advance(12).is_err() {
        return formerr;
    }
    let Ok(question) = Question::parse(&mut parser) else {
        return formerr;
    };
    let skip = u32::from(counts.ancount()) + u32::from(counts.nscount());
    for _ in 0..skip {
        let Ok(rh) = RecordHeader::<ParsedName<&[u8]>>::parse_ref(&mut parser) else {
            return formerr;
        };
        if parser.advance(usize::from(rh.rdlen())).is_err() {
            return formerr;
        }
    }
    let mut edns = None;
    for _ in 0..counts.arcount() {
        let Ok(rh) = RecordHeader::<ParsedName<&[u8]>>::parse_ref(&mut parser) else {
            return formerr;
        };
        let Ok(rdata) = parser.parse_octets(usize::from(rh.rdlen())) else {
            return formerr;
        };
        if rh.rtype() != Rtype::OPT {
            continue;
        }
        if edns.is_some() || !rh.owner().is_root() {
            return formerr;
        }
        let ttl = rh.ttl().as_secs();
        let Some(ecs) = parse_options(rdata) else {
            return formerr;
        };
        edns = Some(Edns {
            udp_size: rh.class().to_int(),
            version: (ttl >> 16) as u8,
            dnssec_ok: ttl & 0x8000 != 0,
            ecs,
        });
    }
    if parser.remaining() != 0 {
        return formerr;
    }
    Parsed::Query(header, question, edns)
}

/// Walks the EDNS options: Some(ecs) when well formed (unknown options
/// ignored), None when malformed.
fn parse_options(mut data: &[u8]) -> Option<Option<Ecs>> {
    let mut ecs = None;
    while !data.is_empty() {
        let (head, rest) = data.split_at_checked(4)?;
        let code = u16::from_be_bytes([*head.first()?, *head.get(1)?]);
        let len = usize::from(u16::from_be_bytes([*head.get(2)?, *head.get(3)?]));
        let (body, rest) = rest.split_at_checked(len)?;
        if code == OptionCode::CLIENT_SUBNET.to_int() {
            if ecs.is_some() {
                return None;
            }
            ecs = Some(parse_ecs(body)?);
        }
        data = rest;
    }
    Some(ecs)
}

/// RFC 7871 §6: family, source prefix, scope prefix, truncated address.
fn parse_ecs(body: &[u8]) -> Option<Ecs> {
    let (head, addr) = body.split_at_checked(4)?;
    let family = u16::from_be_bytes([*head.first()?, *head.get(1)?]);
    let source = *head.get(2)?;
    let max_bits = match family {
        1 => 32,
        2 => 128,
        _ => return None,
    };
    if source > max_bits || addr.len() != usize::from(source).div_ceil(8) {
        return None;
    }
    let mut out = [0u8; 16];
    out.get_mut(..addr.len())?.copy_from_slice(addr);
    Some(Ecs {
        family,
        source,
        addr: out,
        addr_len: addr.len(),
    })
}

/// Decides the answer from the table.
fn plan<'t>(question: &Question<ParsedName<&[u8]>>, table: &'t DnsTable) -> Plan<'t> {
    let qtype = question.qtype();
    if question.qclass() != Class::IN || qtype == Rtype::AXFR || qtype == Rtype::IXFR {
        return Plan::Refused;
    }
    let Some(wire) = WireName::from_labels(question.qname().iter()) else {
        return Plan::Refused;
    };
    let Lookup::Found {
        zone,
        at_apex,
        node,
    } = table.lookup(wire.as_slice())
    else {
        return Plan::Refused;
    };
    if at_apex && qtype == Rtype::SOA {
        return Plan::Soa(zone);
    }
    if at_apex && qtype == Rtype::NS {
        return Plan::Ns(zone);
    }
    match node {
        Some(Node::Domain(d)) if qtype == Rtype::A || qtype == Rtype::AAAA => {
            if d.serving == Serving::ServFail {
                d.counters.servfail.fetch_add(1, Ordering::Relaxed);
                return Plan::ServFail;
            }
            let pool = if qtype == Rtype::A { &d.v4 } else { &d.v6 };
            if pool.is_empty() {
                return Plan::NoData(zone);
            }
            if d.serving == Serving::LastHealthy {
                d.counters.last_healthy.fetch_add(1, Ordering::Relaxed);
            }
            Plan::Addrs(d, pool.pick())
        }
        Some(_) => Plan::NoData(zone),
        None if at_apex => Plan::NoData(zone),
        None => Plan::NxDomain(zone),
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

fn compose_error(buf: Vec<u8>, header: Header, rcode: Rcode) -> Vec<u8> {
    let mut buf = buf;
    buf.clear();
    let _ = buf.append_slice(start_header(header, rcode).as_slice());
    let _ = buf.append_slice(&[0u8; 8]);
    buf
}

struct Outcome {
    truncated: bool,
}

fn compose(
    buf: Vec<u8>,
    query_header: Header,
    question: &Question<ParsedName<&[u8]>>,
    edns: Option<&Edns>,
    plan: &Plan<'_>,
    limit: usize,
    advertise: u16,
) -> (Vec<u8>, Outcome) {
    let mut builder = match MessageBuilder::from_target(StaticCompressor::new(buf)) {
        Ok(b) => b,
        Err(never) => match never {},
    };
    let (rcode, aa) = match plan {
        Plan::Refused => (Rcode::REFUSED, false),
        Plan::ServFail => (Rcode::SERVFAIL, false),
        Plan::NxDomain(_) => (Rcode::NXDOMAIN, true),
        Plan::BadVers => (Rcode::NOERROR, false),
        _ => (Rcode::NOERROR, true),
    };
    let mut h = start_header(query_header, rcode);
    h.set_aa(aa);
    *builder.header_mut() = h;
    let opt_len = edns.map_or(0, |e| 11 + e.ecs.map_or(0, |c| 8 + c.addr_len));
    // domain refuses a push that reaches the limit, hence the +1.
    builder.set_push_limit(limit.saturating_sub(opt_len) + 1);
    let mut truncated = false;
    let mut q = builder.question();
    if q.push(question).is_err() {
        // Only a 255-octet name with a big OPT at 512 octets gets here.
        truncated = true;
    }
    let mut answer = q.answer();
    if !truncated && push_answer(&mut answer, question.qname(), plan).is_err() {
        truncated = true;
        answer.rewind();
    }
    let mut authority = answer.authority();
    if !truncated {
        let pushed = match plan {
            Plan::NxDomain(z) | Plan::NoData(z) => {
                authority.push((&z.apex, z.negative_ttl, &z.soa))
            }
            _ => Ok(()),
        };
        if pushed.is_err() {
            truncated = true;
            authority.rewind();
        }
    }
    let mut additional = authority.additional();
    additional.set_push_limit(limit + 1);
    if let Some(e) = edns {
        let ext = if matches!(plan, Plan::BadVers) {
            OptRcode::BADVERS
        } else {
            OptRcode::from_rcode(rcode)
        };
        let _ = additional.opt(|o| {
            o.set_udp_payload_size(advertise);
            o.set_version(0);
            o.set_dnssec_ok(e.dnssec_ok);
            o.set_rcode(ext);
            if let Some(c) = e.ecs {
                let body = c.addr.get(..c.addr_len).unwrap_or(&[]);
                o.push_raw_option(OptionCode::CLIENT_SUBNET, 4 + body.len() as u16, |t| {
                    t.append_slice(&c.family.to_be_bytes())?;
                    t.append_slice(&[c.source, 0])?;
                    t.append_slice(body)
                })?;
            }
            Ok(())
        });
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
        Plan::Addrs(d, pick) => {
            for ip in pick.clone() {
                match ip {
                    IpAddr::V4(v4) => answer.push((qname, d.ttl, A::new(v4)))?,
                    IpAddr::V6(v6) => answer.push((qname, d.ttl, Aaaa::new(v6)))?,
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
#[path = "responder_tests.rs"]
mod tests;
