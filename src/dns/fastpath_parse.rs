//! Parsing for the fast path (fastpath.rs): accepts only the query shape
//! it answers — QR=0, opcode QUERY, one question (no compression, at most
//! `MAX_LABELS` labels) of type A or AAAA, class IN, and either no
//! additional record or one OPT of version 0 whose options are at most an
//! ECS (RFC 7871, validated by edns.rs) and options the full path ignores
//! too — and lowercases the name on the way. Anything else is None: the
//! full path answers it.

use super::edns::{self, Ecs};

/// Question names with more labels take the full path (the full path's
/// compressor remembers 24 names; staying well under keeps both equal).
pub(super) const MAX_LABELS: usize = 20;

/// What a fast answer needs from the query.
pub(super) struct Query<'q> {
    pub(super) header: &'q [u8],
    /// Header and question, copied into the answer as they came.
    pub(super) question: &'q [u8],
    pub(super) qtype: u16,
    /// (udp payload size, DO) of an OPT without options other than ECS.
    pub(super) edns: Option<(u16, bool)>,
    /// Its Client Subnet option.
    pub(super) ecs: Option<Ecs>,
    /// The payload size our OPT advertises (`dns.max_udp_size`).
    pub(super) advertise: u16,
}

/// Parses a query of the fast shape; lowercases its name into `wire`.
/// Returns the query view, the wire length (with the root) and the label
/// count.
pub(super) fn parse<'q>(
    query: &'q [u8],
    wire: &mut [u8; 256],
    starts: &mut [usize; MAX_LABELS],
) -> Option<(Query<'q>, usize, usize)> {
    let header = query.get(..12)?;
    // QR=0, opcode QUERY; one question, no answer or authority records.
    if header[2] & 0xf8 != 0 || header[4..10] != [0, 1, 0, 0, 0, 0] || header[10] != 0 {
        return None;
    }
    let arcount = header[11];
    let mut pos = 12;
    let mut wlen = 0;
    let mut n = 0;
    loop {
        let len = usize::from(*query.get(pos)?);
        if len == 0 {
            break;
        }
        // Pointers and extended label types take the full path.
        if len > 63 || n == MAX_LABELS || wlen + len + 2 > 255 {
            return None;
        }
        let label = query.get(pos + 1..pos + 1 + len)?;
        *starts.get_mut(n)? = wlen;
        n += 1;
        *wire.get_mut(wlen)? = len as u8;
        for (d, s) in wire
            .get_mut(wlen + 1..wlen + 1 + len)?
            .iter_mut()
            .zip(label)
        {
            *d = s.to_ascii_lowercase();
        }
        wlen += 1 + len;
        pos += 1 + len;
    }
    *wire.get_mut(wlen)? = 0;
    wlen += 1;
    pos += 1;
    let tail = query.get(pos..pos + 4)?;
    let qtype = u16::from_be_bytes([tail[0], tail[1]]);
    if (qtype != 1 && qtype != 28) || tail[2..4] != [0, 1] || n == 0 {
        return None;
    }
    pos += 4;
    let question = query.get(..pos)?;
    let rest = query.get(pos..)?;
    let (edns, ecs) = match (arcount, rest.len()) {
        (0, 0) => (None, None),
        // An OPT: root owner, type 41, version 0, the options filling the
        // rest; of those we act on, at most ECS (cookies: full path).
        (1, 11..) if rest[..3] == [0, 0, 41] && rest[6] == 0 => {
            let rdlen = usize::from(u16::from_be_bytes([rest[9], rest[10]]));
            if rest.len() != 11 + rdlen {
                return None;
            }
            let options = edns::parse_options(rest.get(11..)?).ok()?;
            if options.cookie.is_some() {
                return None;
            }
            let edns = (u16::from_be_bytes([rest[3], rest[4]]), rest[7] & 0x80 != 0);
            (Some(edns), options.ecs)
        }
        _ => return None,
    };
    Some((
        Query {
            header,
            question,
            qtype,
            edns,
            ecs,
            advertise: 0,
        },
        wlen,
        n,
    ))
}
