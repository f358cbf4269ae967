//! Reading one query: header, question, and the OPT record, even when the
//! query is an error.
//!
//! An error answer to a query that carried OPT must carry OPT too (RFC 6891
//! §6.1.1, §7), or resolvers conclude the server has no EDNS. So the parser
//! does not stop at the first problem: it walks every section it can,
//! remembers the OPT record if it found a well-formed one, and reports the
//! first problem beside it. Only a message too broken to walk (or one whose
//! OPT record is itself unreadable) is answered with a bare header. Nothing
//! here can panic on any input, and nothing allocates.

use super::edns::{self, Edns};
use domain::base::iana::{Opcode, Rcode, Rtype};
use domain::base::name::ParsedName;
use domain::base::{Header, Message, Question, RecordHeader};
use domain::dep::octseq::Parser;

pub(crate) type Q<'a> = Question<ParsedName<&'a [u8]>>;

pub(crate) enum Parsed<'a> {
    /// Not a query (responses, short headers): no answer at all.
    Drop,
    /// FORMERR or NOTIMP, with the question and OPT when they were readable.
    Error {
        header: Header,
        rcode: Rcode,
        question: Option<Q<'a>>,
        edns: Option<Edns>,
    },
    /// RFC 7873 §5.4: no question, an OPT with a COOKIE: answer with a
    /// server cookie.
    CookieProbe {
        header: Header,
        edns: Edns,
    },
    Query(Header, Q<'a>, Option<Edns>),
}

/// What the walk found, problems included.
struct Walk<'a> {
    question: Option<Q<'a>>,
    edns: Option<Edns>,
    formerr: bool,
}

fn walk(query: &[u8], qdcount: u16, other: u16, arcount: u16) -> Walk<'_> {
    let mut w = Walk {
        question: None,
        edns: None,
        formerr: false,
    };
    let mut parser = Parser::from_ref(query);
    if parser.advance(12).is_err() {
        w.formerr = true;
        return w;
    }
    for i in 0..qdcount {
        let Ok(q) = Question::parse(&mut parser) else {
            w.formerr = true;
            return w;
        };
        if i == 0 && qdcount == 1 {
            w.question = Some(q);
        }
    }
    for _ in 0..other {
        let Ok(rh) = RecordHeader::<ParsedName<&[u8]>>::parse_ref(&mut parser) else {
            w.formerr = true;
            return w;
        };
        if parser.advance(usize::from(rh.rdlen())).is_err() {
            w.formerr = true;
            return w;
        }
    }
    for _ in 0..arcount {
        let Ok(rh) = RecordHeader::<ParsedName<&[u8]>>::parse_ref(&mut parser) else {
            w.formerr = true;
            return w;
        };
        let Ok(rdata) = parser.parse_octets(usize::from(rh.rdlen())) else {
            w.formerr = true;
            return w;
        };
        if rh.rtype() != Rtype::OPT {
            continue;
        }
        // RFC 6891 §6.1.1: one OPT, owned by the root. A second one is
        // FORMERR, answered with the first.
        if w.edns.is_some() || !rh.owner().is_root() {
            w.formerr = true;
            continue;
        }
        let ttl = rh.ttl().as_secs();
        let mut e = Edns {
            udp_size: rh.class().to_int(),
            version: (ttl >> 16) as u8,
            dnssec_ok: ttl & 0x8000 != 0,
            ecs: None,
            cookie: None,
        };
        match edns::parse_options(rdata) {
            Ok(o) => {
                e.ecs = o.ecs;
                e.cookie = o.cookie;
            }
            // A malformed option: FORMERR with an OPT that echoes none.
            Err(()) => w.formerr = true,
        }
        w.edns = Some(e);
    }
    if parser.remaining() != 0 {
        w.formerr = true;
    }
    w
}

/// Parses the query.
pub(crate) fn parse(query: &[u8]) -> Parsed<'_> {
    let Ok(msg) = Message::from_octets(query) else {
        return Parsed::Drop;
    };
    let header = msg.header();
    if header.qr() {
        return Parsed::Drop;
    }
    let counts = msg.header_counts();
    let qdcount = counts.qdcount();
    let other = counts.ancount().saturating_add(counts.nscount());
    let w = walk(query, qdcount, other, counts.arcount());
    // Other opcodes share the section layout, so their OPT is found too.
    if header.opcode() != Opcode::QUERY {
        return Parsed::Error {
            header,
            rcode: Rcode::NOTIMP,
            question: w.question,
            edns: w.edns,
        };
    }
    fn formerr(header: Header, w: Walk<'_>) -> Parsed<'_> {
        Parsed::Error {
            header,
            rcode: Rcode::FORMERR,
            question: w.question,
            edns: w.edns,
        }
    }
    if w.formerr {
        return formerr(header, w);
    }
    match (qdcount, w.edns) {
        (0, Some(e)) if e.cookie.is_some() => Parsed::CookieProbe { header, edns: e },
        (1, e) => match w.question {
            Some(q) => Parsed::Query(header, q, e),
            None => formerr(header, w),
        },
        _ => formerr(header, w),
    }
}
