//! EDNS(0): the OPT record of a query in, the OPT record of the answer out.
//!
//! Parsing is strict where the RFCs ask for FORMERR and lenient where they
//! ask to ignore: unknown options are skipped (RFC 6891 §6.1.2), while a
//! malformed option list, a malformed Client Subnet (RFC 7871 §6, §7.1.1)
//! or a malformed COOKIE (RFC 7873 §5.2.2) makes the whole query FORMERR,
//! and such an option is never echoed. The answer's OPT carries, besides
//! payload size, version 0, DO and the extended rcode, the echoed ECS with
//! scope 0, the server cookie, and an Extended DNS Error (RFC 8914) when
//! the answer is an error worth explaining. Everything is built on the
//! stack: no allocation per query.

use domain::base::iana::{OptRcode, OptionCode};
use domain::base::message_builder::{AdditionalBuilder, PushError};
use domain::base::wire::Composer;

const OPT_CLIENT_SUBNET: u16 = 8;
const OPT_COOKIE: u16 = 10;
const OPT_EDE: u16 = 15;

/// A well-formed EDNS Client Subnet option (RFC 7871 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ecs {
    pub family: u16,
    pub source: u8,
    pub addr: [u8; 16],
    pub addr_len: u8,
}

impl Ecs {
    pub fn addr_bytes(&self) -> &[u8] {
        self.addr.get(..usize::from(self.addr_len)).unwrap_or(&[])
    }
}

/// The COOKIE option of a query (RFC 7873 §4): an 8-byte client cookie
/// and an optional server cookie of 8 to 32 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cookie {
    pub client: [u8; 8],
    pub server: [u8; 32],
    pub server_len: u8,
}

impl Cookie {
    pub fn server_bytes(&self) -> &[u8] {
        self.server
            .get(..usize::from(self.server_len))
            .unwrap_or(&[])
    }
}

/// What the query's OPT record said.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Edns {
    pub udp_size: u16,
    pub version: u8,
    pub dnssec_ok: bool,
    pub ecs: Option<Ecs>,
    pub cookie: Option<Cookie>,
}

/// The options we act on. Err(()) means malformed: FORMERR.
pub(crate) struct Options {
    pub ecs: Option<Ecs>,
    pub cookie: Option<Cookie>,
}

/// Walks the option list of an OPT record's RDATA.
pub(crate) fn parse_options(mut data: &[u8]) -> Result<Options, ()> {
    let mut out = Options {
        ecs: None,
        cookie: None,
    };
    while !data.is_empty() {
        let (head, rest) = data.split_at_checked(4).ok_or(())?;
        let code = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let (body, rest) = rest.split_at_checked(len).ok_or(())?;
        match code {
            OPT_CLIENT_SUBNET if out.ecs.is_none() => out.ecs = Some(parse_ecs(body)?),
            OPT_COOKIE if out.cookie.is_none() => out.cookie = Some(parse_cookie(body)?),
            // A second ECS or COOKIE is ambiguous: which would we echo?
            OPT_CLIENT_SUBNET | OPT_COOKIE => return Err(()),
            _ => {}
        }
        data = rest;
    }
    Ok(out)
}

/// RFC 7871 §6: FAMILY, SOURCE PREFIX-LENGTH, SCOPE PREFIX-LENGTH, then
/// exactly ceil(source / 8) address bytes whose bits beyond the source
/// prefix are zero. FAMILY 0 with prefix 0 and no address (what `dig
/// +subnet=0` sends to opt out) is accepted, as BIND and Knot do.
pub(crate) fn parse_ecs(body: &[u8]) -> Result<Ecs, ()> {
    let (head, addr) = body.split_at_checked(4).ok_or(())?;
    let family = u16::from_be_bytes([head[0], head[1]]);
    let source = head[2];
    let max_bits = match family {
        0 if source == 0 => 0,
        1 => 32,
        2 => 128,
        _ => return Err(()),
    };
    if source > max_bits || addr.len() != usize::from(source).div_ceil(8) {
        return Err(());
    }
    if let Some(&last) = addr.last() {
        let used = source % 8;
        if used != 0 && last & (0xff >> used) != 0 {
            return Err(());
        }
    }
    let mut out = [0u8; 16];
    out.get_mut(..addr.len()).ok_or(())?.copy_from_slice(addr);
    Ok(Ecs {
        family,
        source,
        addr: out,
        addr_len: addr.len() as u8,
    })
}

/// RFC 7873 §5.2.2: 8 bytes (client cookie only) or 16 to 40 bytes.
pub(crate) fn parse_cookie(body: &[u8]) -> Result<Cookie, ()> {
    let (client, server) = body.split_at_checked(8).ok_or(())?;
    if !(server.is_empty() || (8..=32).contains(&server.len())) {
        return Err(());
    }
    let mut c = Cookie {
        client: [0; 8],
        server: [0; 32],
        server_len: server.len() as u8,
    };
    c.client.copy_from_slice(client);
    c.server
        .get_mut(..server.len())
        .ok_or(())?
        .copy_from_slice(server);
    Ok(c)
}

/// An Extended DNS Error (RFC 8914 §2): INFO-CODE and EXTRA-TEXT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ede {
    pub code: u16,
    pub text: &'static str,
}

impl Ede {
    /// Code 0 "Other" with text: 22/23 describe a resolver that cannot
    /// reach authorities, which would send operators looking at the
    /// network; the cause here is the name's backends.
    pub const NO_HEALTHY: Ede = Ede {
        code: 0,
        text: "no healthy backend for this name",
    };
    pub const NOT_AUTHORITATIVE: Ede = Ede {
        code: 20,
        text: "not authoritative for this name",
    };
    pub const NOT_SUPPORTED: Ede = Ede {
        code: 21,
        text: "zone transfers and classes other than IN are not served",
    };
}

/// The OPT record of an answer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OptOut {
    pub udp_size: u16,
    pub dnssec_ok: bool,
    pub rcode: OptRcode,
    pub ecs: Option<Ecs>,
    /// RFC 7871 §7.2.1: the prefix length the answer depends on.
    pub ecs_scope: u8,
    /// Client cookie (8) followed by our server cookie (16).
    pub cookie: Option<[u8; 24]>,
    pub ede: Option<Ede>,
}

impl OptOut {
    /// Bytes the record takes on the wire.
    pub fn wire_len(&self) -> usize {
        11 + self.ecs.map_or(0, |e| 8 + usize::from(e.addr_len))
            + self.cookie.map_or(0, |c| 4 + c.len())
            + self.ede.map_or(0, |e| 6 + e.text.len())
    }

    /// Appends the record to the additional section.
    pub fn push<T: Composer>(&self, add: &mut AdditionalBuilder<T>) -> Result<(), PushError> {
        add.opt(|o| {
            o.set_udp_payload_size(self.udp_size);
            o.set_version(0);
            o.set_dnssec_ok(self.dnssec_ok);
            o.set_rcode(self.rcode);
            if let Some(c) = &self.ecs {
                let body = c.addr_bytes();
                let len = 4 + body.len() as u16;
                o.push_raw_option(OptionCode::CLIENT_SUBNET, len, |t| {
                    t.append_slice(&c.family.to_be_bytes())?;
                    t.append_slice(&[c.source, self.ecs_scope])?;
                    t.append_slice(body)
                })?;
            }
            if let Some(c) = &self.cookie {
                o.push_raw_option(OptionCode::COOKIE, c.len() as u16, |t| t.append_slice(c))?;
            }
            if let Some(e) = &self.ede {
                let len = 2 + e.text.len() as u16;
                o.push_raw_option(OptionCode::from_int(OPT_EDE), len, |t| {
                    t.append_slice(&e.code.to_be_bytes())?;
                    t.append_slice(e.text.as_bytes())
                })?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ecs(family: u16, source: u8, addr: &[u8]) -> Vec<u8> {
        let mut v = family.to_be_bytes().to_vec();
        v.extend_from_slice(&[source, 0]);
        v.extend_from_slice(addr);
        v
    }

    /// RFC 7871 §6 and §7.1.1: each malformation is rejected.
    #[test]
    fn rfc7871_ecs_validation() {
        assert!(parse_ecs(&ecs(1, 24, &[198, 51, 100])).is_ok());
        assert!(parse_ecs(&ecs(1, 0, &[])).is_ok());
        assert!(parse_ecs(&ecs(2, 56, &[0x20, 1, 0xd, 0xb8, 0, 0, 0])).is_ok());
        assert!(parse_ecs(&ecs(0, 0, &[])).is_ok(), "dig +subnet=0");
        // Bits beyond the source prefix.
        assert!(parse_ecs(&ecs(1, 23, &[198, 51, 101])).is_err());
        assert!(parse_ecs(&ecs(1, 22, &[198, 51, 100])).is_ok());
        // Prefix longer than the family allows.
        assert!(parse_ecs(&ecs(1, 33, &[1, 2, 3, 4, 5])).is_err());
        assert!(parse_ecs(&ecs(2, 129, &[0; 17])).is_err());
        // Unknown family.
        assert!(parse_ecs(&ecs(3, 8, &[1])).is_err());
        assert!(parse_ecs(&ecs(0, 8, &[1])).is_err());
        // Wrong address length.
        assert!(parse_ecs(&ecs(1, 24, &[198, 51, 100, 0])).is_err());
        assert!(parse_ecs(&ecs(1, 24, &[198, 51])).is_err());
        assert!(parse_ecs(&[0, 1, 24]).is_err());
    }

    /// RFC 7873 §5.2.2: COOKIE lengths other than 8 or 16..=40 are malformed.
    #[test]
    fn rfc7873_cookie_lengths() {
        for len in 0..50 {
            let ok = parse_cookie(&vec![7u8; len]).is_ok();
            assert_eq!(ok, len == 8 || (16..=40).contains(&len), "{len}");
        }
        let c = parse_cookie(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 9, 9, 9, 9, 9]).unwrap();
        assert_eq!(c.client, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(c.server_bytes(), &[9; 8]);
    }

    #[test]
    fn option_walk_rejects_truncation_and_duplicates() {
        let mut opt = vec![0, 8, 0, 7];
        opt.extend_from_slice(&ecs(1, 24, &[10, 0, 0]));
        let unknown = [0, 99, 0, 1, 5];
        let mut list = unknown.to_vec();
        list.extend_from_slice(&opt);
        let parsed = parse_options(&list).unwrap();
        assert_eq!(parsed.ecs.unwrap().source, 24);
        assert!(parse_options(&list[..list.len() - 1]).is_err());
        let mut twice = opt.clone();
        twice.extend_from_slice(&opt);
        assert!(parse_options(&twice).is_err());
        assert!(parse_options(&[0, 10, 0, 3, 1, 2, 3]).is_err());
    }
}
