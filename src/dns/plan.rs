//! Deciding what an answer holds: the lookup of the query name in the
//! table, the routing of a domain (regional.rs for client-dependent
//! algorithms), and the plan `Responder` then composes (responder.rs),
//! with its rcode, rate-limiting class and counters. No I/O.

use super::edns::{Ecs, Ede};
use super::keystore::ZoneKey;
use super::learned::LearnedLookup;
use super::query::Q;
use super::regional::{Want, client_address};
use super::routing::Pick;
use super::rrl::Class as RrlClass;
use super::stats::RcodeLabel;
use super::table::{DnsTable, DomainEntry, HostEntry, Lookup, Node, Serving, WireName, Zone};
use domain::base::iana::{Class, OptRcode, Rcode, Rtype};
use std::net::IpAddr;
use std::sync::atomic::Ordering;

/// What goes into the answer.
pub(super) enum Plan<'t> {
    /// With the Extended DNS Error saying why (RFC 8914).
    Refused(Ede),
    ServFail,
    NxDomain(&'t Zone),
    NoData(&'t Zone),
    Soa(&'t Zone),
    Ns(&'t Zone),
    Addrs(&'t DomainEntry, Pick<'t>),
    /// RFC 8482 §4.2: ANY answered with the A and AAAA the routing chose.
    Any(&'t DomainEntry, Pick<'t>, Pick<'t>),
    /// An in-zone NS name: its addresses of the asked family (all for ANY).
    Host(&'t HostEntry, Rtype),
    BadVers,
    /// FORMERR or NOTIMP.
    Error(Rcode),
    /// RFC 7873 §5.4 cookie probe: NOERROR, no question, no records.
    Probe,
    /// RFC 7873 §5.2.3: a client that sent a cookie, answered with only a
    /// fresh server cookie (rate limited, or a probe with a bad cookie).
    BadCookie,
    /// DNSSEC: the apex DNSKEY, CDS or CDNSKEY of a signed zone.
    ApexKeys(&'t Zone, &'t ZoneKey, Rtype),
}

impl Plan<'_> {
    pub(super) fn rcode(&self) -> Rcode {
        match self {
            Plan::Refused(_) => Rcode::REFUSED,
            Plan::ServFail => Rcode::SERVFAIL,
            Plan::NxDomain(_) => Rcode::NXDOMAIN,
            Plan::Error(r) => *r,
            Plan::BadCookie => OptRcode::BADCOOKIE.rcode(),
            _ => Rcode::NOERROR,
        }
    }

    /// The rate-limiting class (rrl.rs).
    pub(super) fn class(&self) -> RrlClass {
        match self {
            Plan::Soa(_)
            | Plan::Ns(_)
            | Plan::Addrs(..)
            | Plan::Any(..)
            | Plan::Host(..)
            | Plan::ApexKeys(..) => RrlClass::Answer,
            Plan::NoData(_) => RrlClass::NoData,
            Plan::NxDomain(_) => RrlClass::NxDomain,
            _ => RrlClass::Error,
        }
    }

    pub(super) fn authoritative(&self) -> bool {
        !matches!(
            self,
            Plan::Refused(_)
                | Plan::ServFail
                | Plan::BadVers
                | Plan::Error(_)
                | Plan::Probe
                | Plan::BadCookie
        )
    }

    pub(super) fn label(&self) -> RcodeLabel {
        match self {
            Plan::Refused(_) => RcodeLabel::Refused,
            Plan::ServFail => RcodeLabel::ServFail,
            Plan::NxDomain(_) => RcodeLabel::NxDomain,
            Plan::BadVers => RcodeLabel::BadVers,
            Plan::BadCookie => RcodeLabel::BadCookie,
            Plan::Error(r) if *r == Rcode::NOTIMP => RcodeLabel::NotImp,
            Plan::Error(_) => RcodeLabel::FormErr,
            _ => RcodeLabel::NoError,
        }
    }
}

/// Who asked, for client-dependent routing (regional.rs).
pub(super) struct Client<'a> {
    pub source: IpAddr,
    pub ecs: Option<Ecs>,
    pub learned: Option<&'a dyn LearnedLookup>,
}

/// Decides the answer from the table; `scope` receives the ECS scope
/// prefix length of a client-dependent answer (left 0 otherwise).
pub(super) fn plan<'t>(
    question: &Q<'_>,
    wire: Option<&WireName>,
    table: &'t DnsTable,
    client: &Client<'_>,
    scope: &mut u8,
) -> Plan<'t> {
    let qtype = question.qtype();
    if question.qclass() != Class::IN || qtype == Rtype::AXFR || qtype == Rtype::IXFR {
        return Plan::Refused(Ede::NOT_SUPPORTED);
    }
    let Some(wire) = wire else {
        return Plan::Refused(Ede::NOT_AUTHORITATIVE);
    };
    let Lookup::Found {
        zone,
        at_apex,
        node,
    } = table.lookup(wire.as_slice())
    else {
        return Plan::Refused(Ede::NOT_AUTHORITATIVE);
    };
    if at_apex && qtype == Rtype::SOA {
        return Plan::Soa(zone);
    }
    if at_apex && qtype == Rtype::NS {
        return Plan::Ns(zone);
    }
    match node {
        Some(Node::Domain(d))
            if qtype == Rtype::A || qtype == Rtype::AAAA || qtype == Rtype::ANY =>
        {
            if d.serving == Serving::ServFail {
                d.counters.servfail.fetch_add(1, Ordering::Relaxed);
                return Plan::ServFail;
            }
            let any = qtype == Rtype::ANY;
            let empty = match qtype {
                Rtype::A => d.v4.is_empty(),
                Rtype::AAAA => d.v6.is_empty(),
                _ => d.v4.is_empty() && d.v6.is_empty(),
            };
            if empty {
                return Plan::NoData(zone);
            }
            if d.serving == Serving::LastHealthy {
                d.counters.last_healthy.fetch_add(1, Ordering::Relaxed);
            }
            let (mut v4, mut v6) = (&*d.v4, &*d.v6);
            if let Some(regional) = &d.regional {
                let want = match (any, qtype == Rtype::A) {
                    (true, _) => Want::Any,
                    (false, true) => Want::V4,
                    (false, false) => Want::V6,
                };
                let geo = table.geo.as_deref();
                let ecs_enabled = geo.is_none_or(|g| g.ecs_enabled);
                let address = client_address(client.source, client.ecs.as_ref(), ecs_enabled);
                let route = regional.route(address, want, geo, client.learned);
                if let Some(r) = route.pools {
                    (v4, v6) = (&r.v4, &r.v6);
                    *scope = route.scope;
                }
                if let Some(c) = d.counters.routed.get(regional.counter(route.matched)) {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
            match (any, qtype == Rtype::A) {
                (true, _) => Plan::Any(d, v4.pick(), v6.pick()),
                (false, true) => Plan::Addrs(d, v4.pick()),
                (false, false) => Plan::Addrs(d, v6.pick()),
            }
        }
        Some(Node::Host(h)) if qtype == Rtype::A || qtype == Rtype::AAAA || qtype == Rtype::ANY => {
            if h.addrs.iter().any(|a| family_matches(*a, qtype)) {
                Plan::Host(h, qtype)
            } else {
                Plan::NoData(zone)
            }
        }
        // RFC 8482 §4.2: ANY at an apex without addresses gets its SOA.
        None if at_apex && qtype == Rtype::ANY => Plan::Soa(zone),
        Some(_) => Plan::NoData(zone),
        None if at_apex => Plan::NoData(zone),
        None => Plan::NxDomain(zone),
    }
}

pub(super) fn family_matches(a: IpAddr, qtype: Rtype) -> bool {
    match qtype {
        Rtype::A => a.is_ipv4(),
        Rtype::AAAA => a.is_ipv6(),
        _ => true,
    }
}
