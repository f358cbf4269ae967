//! DNS counters, shared by every responder thread and rendered for `/metrics`.
//!
//! Query counters are a fixed array of atomics indexed by a bounded qtype
//! set and rcode set, so the hot path does one relaxed `fetch_add` and never
//! allocates. Per-domain counters live in a map keyed by the configured
//! name; each table build takes `Arc` handles from it, so the counts survive
//! table rebuilds and config reloads keep them as long as the name stays
//! configured. Label values therefore never come from the wire.

use super::cookies::CookieJar;
use super::rrl::RrlState;
use crate::metrics::{Kind, TextWriter};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The bounded qtype label set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QtypeLabel {
    A,
    Aaaa,
    Soa,
    Ns,
    Any,
    Other,
}

impl QtypeLabel {
    const ALL: [QtypeLabel; 6] = [
        QtypeLabel::A,
        QtypeLabel::Aaaa,
        QtypeLabel::Soa,
        QtypeLabel::Ns,
        QtypeLabel::Any,
        QtypeLabel::Other,
    ];

    pub fn from_code(code: u16) -> Self {
        match code {
            1 => QtypeLabel::A,
            28 => QtypeLabel::Aaaa,
            6 => QtypeLabel::Soa,
            2 => QtypeLabel::Ns,
            255 => QtypeLabel::Any,
            _ => QtypeLabel::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            QtypeLabel::A => "A",
            QtypeLabel::Aaaa => "AAAA",
            QtypeLabel::Soa => "SOA",
            QtypeLabel::Ns => "NS",
            QtypeLabel::Any => "ANY",
            QtypeLabel::Other => "OTHER",
        }
    }
}

/// The response codes we send (BADVERS is the extended code 16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RcodeLabel {
    NoError,
    FormErr,
    ServFail,
    NxDomain,
    NotImp,
    Refused,
    BadVers,
    BadCookie,
}

impl RcodeLabel {
    const ALL: [RcodeLabel; 8] = [
        RcodeLabel::NoError,
        RcodeLabel::FormErr,
        RcodeLabel::ServFail,
        RcodeLabel::NxDomain,
        RcodeLabel::NotImp,
        RcodeLabel::Refused,
        RcodeLabel::BadVers,
        RcodeLabel::BadCookie,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RcodeLabel::NoError => "NOERROR",
            RcodeLabel::FormErr => "FORMERR",
            RcodeLabel::ServFail => "SERVFAIL",
            RcodeLabel::NxDomain => "NXDOMAIN",
            RcodeLabel::NotImp => "NOTIMP",
            RcodeLabel::Refused => "REFUSED",
            RcodeLabel::BadVers => "BADVERS",
            RcodeLabel::BadCookie => "BADCOOKIE",
        }
    }
}

/// Counters of one configured domain name.
#[derive(Debug, Default)]
pub struct DomainCounters {
    /// Answers that carried at least one address of this name.
    pub answers: AtomicU64,
    /// Nothing healthy: the last healthy set was served.
    pub last_healthy: AtomicU64,
    /// Nothing healthy and no fallback: SERVFAIL.
    pub servfail: AtomicU64,
}

#[derive(Debug, Default)]
pub struct DnsStats {
    queries: [[AtomicU64; 8]; 6],
    dropped: AtomicU64,
    truncated: AtomicU64,
    domains: Mutex<BTreeMap<String, Arc<DomainCounters>>>,
    /// Shared by every responder thread like the counters: the DNS cookie
    /// secret and the rate-limiting table (cookies.rs, rrl.rs).
    pub(crate) cookies: CookieJar,
    pub rrl: RrlState,
}

impl DnsStats {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn count_query(&self, qtype: QtypeLabel, rcode: RcodeLabel) {
        let q = QtypeLabel::ALL.iter().position(|x| *x == qtype);
        let r = RcodeLabel::ALL.iter().position(|x| *x == rcode);
        if let (Some(q), Some(r)) = (q, r)
            && let Some(c) = self.queries.get(q).and_then(|row| row.get(r))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_truncated(&self) {
        self.truncated.fetch_add(1, Ordering::Relaxed);
    }

    pub fn queries(&self, qtype: QtypeLabel, rcode: RcodeLabel) -> u64 {
        let q = QtypeLabel::ALL.iter().position(|x| *x == qtype);
        let r = RcodeLabel::ALL.iter().position(|x| *x == rcode);
        match (q, r) {
            (Some(q), Some(r)) => self
                .queries
                .get(q)
                .and_then(|row| row.get(r))
                .map_or(0, |c| c.load(Ordering::Relaxed)),
            _ => 0,
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The counters of `domain`, created on first use.
    pub fn domain(&self, domain: &str) -> Arc<DomainCounters> {
        let mut map = self.domains.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(map.entry(domain.to_string()).or_default())
    }

    /// Forgets names that are no longer configured (called on table build).
    pub fn retain_domains(&self, keep: &dyn Fn(&str) -> bool) {
        let mut map = self.domains.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|name, _| keep(name));
    }

    pub fn write_metrics(&self, w: &mut TextWriter) {
        const Q: &str = "opengslb_dns_queries_total";
        w.family(
            Q,
            "DNS queries answered, by query type and response code.",
            Kind::Counter,
        );
        for (qi, qtype) in QtypeLabel::ALL.iter().enumerate() {
            for (ri, rcode) in RcodeLabel::ALL.iter().enumerate() {
                let v = self
                    .queries
                    .get(qi)
                    .and_then(|row| row.get(ri))
                    .map_or(0, |c| c.load(Ordering::Relaxed));
                w.sample(
                    Q,
                    &[("qtype", qtype.as_str()), ("rcode", rcode.as_str())],
                    v as f64,
                );
            }
        }
        w.single(
            "opengslb_dns_dropped_total",
            "DNS packets dropped without an answer (responses, short headers).",
            Kind::Counter,
            self.dropped() as f64,
        );
        w.single(
            "opengslb_dns_truncated_total",
            "UDP answers sent with TC set because they did not fit.",
            Kind::Counter,
            self.truncated.load(Ordering::Relaxed) as f64,
        );
        self.rrl.write_metrics(w);
        let map = self.domains.lock().unwrap_or_else(|e| e.into_inner());
        const A: &str = "opengslb_dns_answers_total";
        w.family(
            A,
            "DNS answers that carried addresses, by configured name.",
            Kind::Counter,
        );
        for (name, c) in map.iter() {
            w.sample(
                A,
                &[("domain", name)],
                c.answers.load(Ordering::Relaxed) as f64,
            );
        }
        const N: &str = "opengslb_dns_no_healthy_total";
        w.family(
            N,
            "Queries for a name with no healthy backend, by the action taken.",
            Kind::Counter,
        );
        for (name, c) in map.iter() {
            let lh = c.last_healthy.load(Ordering::Relaxed) as f64;
            let sf = c.servfail.load(Ordering::Relaxed) as f64;
            w.sample(N, &[("domain", name), ("action", "last_healthy")], lh);
            w.sample(N, &[("domain", name), ("action", "servfail")], sf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_with_bounded_labels() {
        let s = DnsStats::new();
        s.count_query(QtypeLabel::Aaaa, RcodeLabel::NxDomain);
        s.count_query(QtypeLabel::Aaaa, RcodeLabel::NxDomain);
        s.domain("app.example.com")
            .answers
            .fetch_add(3, Ordering::Relaxed);
        s.domain("app.example.com")
            .servfail
            .fetch_add(1, Ordering::Relaxed);
        let mut w = TextWriter::new();
        s.write_metrics(&mut w);
        let text = w.finish();
        assert!(text.contains("opengslb_dns_queries_total{qtype=\"AAAA\",rcode=\"NXDOMAIN\"} 2\n"));
        assert!(text.contains("opengslb_dns_answers_total{domain=\"app.example.com\"} 3\n"));
        assert!(text.contains(
            "opengslb_dns_no_healthy_total{domain=\"app.example.com\",action=\"servfail\"} 1\n"
        ));
        assert_eq!(s.queries(QtypeLabel::Aaaa, RcodeLabel::NxDomain), 2);
    }

    #[test]
    fn domain_counters_survive_and_retain_prunes() {
        let s = DnsStats::new();
        s.domain("a.example")
            .answers
            .fetch_add(1, Ordering::Relaxed);
        assert_eq!(s.domain("a.example").answers.load(Ordering::Relaxed), 1);
        s.retain_domains(&|n| n != "a.example");
        assert_eq!(s.domain("a.example").answers.load(Ordering::Relaxed), 0);
    }
}
