//! DNS counters, shared by every responder thread and rendered for `/metrics`.
//!
//! Query counters are a fixed array of atomics indexed by a bounded qtype
//! set and rcode set, so the hot path does one relaxed `fetch_add` and never
//! allocates. There is one such array per UDP responder thread (a shard on
//! its own cache lines, chosen by a thread-local index the UDP loop sets
//! with `bind_thread`), so two threads answering at full speed never
//! bounce a counter's cache line between cores; TCP and every other caller
//! use shard 0. A scrape sums the shards. Per-domain counters live in a map keyed by the configured
//! name; each table build takes `Arc` handles from it, so the counts survive
//! table rebuilds and config reloads keep them as long as the name stays
//! configured. Label values therefore never come from the wire.

use super::cookies::CookieJar;
use super::rrl::RrlState;
use crate::metrics::{Kind, TextWriter};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
    /// Client-dependent decisions: `ROUTE_ALGORITHMS` index × 5 +
    /// `RouteMatch::index` (regional.rs).
    pub routed: [AtomicU64; 10],
}

/// Shards: 0 for TCP and other callers, 1.. for UDP threads (wrapping).
const SHARDS: usize = 16;
const QTYPES: usize = QtypeLabel::ALL.len();
const RCODES: usize = RcodeLabel::ALL.len();

/// One thread's counters, alone on its cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    queries: [[AtomicU64; RCODES]; QTYPES],
    dropped: AtomicU64,
    truncated: AtomicU64,
}

thread_local! {
    static SHARD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Makes the calling thread count into the shard of UDP thread `index`
/// (called once by each UDP responder thread).
pub(crate) fn bind_thread(index: usize) {
    SHARD.with(|s| s.set(1 + index % (SHARDS - 1)));
}

#[derive(Debug, Default)]
pub struct DnsStats {
    shards: [Shard; SHARDS],
    /// UDP responder threads of the running server (for the per-thread
    /// family; threads beyond `SHARDS - 1` share shards).
    udp_threads: AtomicUsize,
    domains: Mutex<BTreeMap<String, Arc<DomainCounters>>>,
    /// Shared by every responder thread like the counters: the DNS cookie
    /// secret and the rate-limiting table (cookies.rs, rrl.rs).
    pub(crate) cookies: CookieJar,
    pub rrl: RrlState,
    /// DNSSEC signature cache figures (signing.rs).
    pub dnssec: super::signing::DnssecStats,
}

fn qtype_index(q: QtypeLabel) -> usize {
    match q {
        QtypeLabel::A => 0,
        QtypeLabel::Aaaa => 1,
        QtypeLabel::Soa => 2,
        QtypeLabel::Ns => 3,
        QtypeLabel::Any => 4,
        QtypeLabel::Other => 5,
    }
}

fn rcode_index(r: RcodeLabel) -> usize {
    match r {
        RcodeLabel::NoError => 0,
        RcodeLabel::FormErr => 1,
        RcodeLabel::ServFail => 2,
        RcodeLabel::NxDomain => 3,
        RcodeLabel::NotImp => 4,
        RcodeLabel::Refused => 5,
        RcodeLabel::BadVers => 6,
        RcodeLabel::BadCookie => 7,
    }
}

impl DnsStats {
    pub fn new() -> Self {
        Self::default()
    }

    fn shard(&self) -> &Shard {
        let i = SHARD.with(std::cell::Cell::get);
        // The index is always below SHARDS; fall back to 0 all the same.
        self.shards.get(i).unwrap_or(&self.shards[0])
    }

    pub fn count_query(&self, qtype: QtypeLabel, rcode: RcodeLabel) {
        if let Some(c) = self
            .shard()
            .queries
            .get(qtype_index(qtype))
            .and_then(|row| row.get(rcode_index(rcode)))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn count_dropped(&self) {
        self.shard().dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_truncated(&self) {
        self.shard().truncated.fetch_add(1, Ordering::Relaxed);
    }

    pub fn queries(&self, qtype: QtypeLabel, rcode: RcodeLabel) -> u64 {
        let (q, r) = (qtype_index(qtype), rcode_index(rcode));
        self.shards
            .iter()
            .filter_map(|s| s.queries.get(q).and_then(|row| row.get(r)))
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Records how many UDP responder threads the server runs.
    pub(crate) fn set_udp_threads(&self, n: usize) {
        self.udp_threads.store(n, Ordering::Relaxed);
    }

    fn udp_threads(&self) -> usize {
        self.udp_threads.load(Ordering::Relaxed).min(SHARDS - 1)
    }

    /// Queries answered by UDP thread `index` (all qtypes and rcodes).
    pub fn udp_thread_queries(&self, index: usize) -> u64 {
        self.shards.get(1 + index % (SHARDS - 1)).map_or(0, |s| {
            s.queries
                .iter()
                .flatten()
                .map(|c| c.load(Ordering::Relaxed))
                .sum()
        })
    }

    pub fn dropped(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.dropped.load(Ordering::Relaxed))
            .sum()
    }

    fn truncated(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.truncated.load(Ordering::Relaxed))
            .sum()
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
        for qtype in QtypeLabel::ALL {
            for rcode in RcodeLabel::ALL {
                let v = self.queries(qtype, rcode);
                w.sample(
                    Q,
                    &[("qtype", qtype.as_str()), ("rcode", rcode.as_str())],
                    v as f64,
                );
            }
        }
        const T: &str = "opengslb_dns_udp_thread_queries_total";
        w.family(
            T,
            "DNS queries answered over UDP, by responder thread (dns.threads).",
            Kind::Counter,
        );
        for i in 0..self.udp_threads() {
            let label = i.to_string();
            w.sample(
                T,
                &[("thread", label.as_str())],
                self.udp_thread_queries(i) as f64,
            );
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
            self.truncated() as f64,
        );
        self.rrl.write_metrics(w);
        self.dnssec.write_metrics(w);
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
        const R: &str = "opengslb_dns_routing_decisions_total";
        w.family(
            R,
            "Client-dependent routing decisions, by name, algorithm and what placed the client.",
            Kind::Counter,
        );
        for (name, c) in map.iter() {
            for (i, n) in c.routed.iter().enumerate() {
                let n = n.load(Ordering::Relaxed);
                let (Some(alg), Some(m)) = (
                    super::regional::ROUTE_ALGORITHMS.get(i / 5),
                    super::regional::RouteMatch::ALL.get(i % 5),
                ) else {
                    continue;
                };
                if n > 0 {
                    let labels = [
                        ("domain", name.as_str()),
                        ("algorithm", alg),
                        ("match_type", m.as_str()),
                    ];
                    w.sample(R, &labels, n as f64);
                }
            }
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
    fn thread_shards_sum_on_scrape() {
        let s = Arc::new(DnsStats::new());
        s.set_udp_threads(2);
        s.count_query(QtypeLabel::A, RcodeLabel::NoError);
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    bind_thread(i);
                    for _ in 0..=i {
                        s.count_query(QtypeLabel::A, RcodeLabel::NoError);
                    }
                    s.count_dropped();
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(s.queries(QtypeLabel::A, RcodeLabel::NoError), 4);
        assert_eq!(s.udp_thread_queries(0), 1);
        assert_eq!(s.udp_thread_queries(1), 2);
        assert_eq!(s.dropped(), 2);
        let mut w = TextWriter::new();
        s.write_metrics(&mut w);
        let text = w.finish();
        assert!(text.contains("opengslb_dns_queries_total{qtype=\"A\",rcode=\"NOERROR\"} 4\n"));
        assert!(text.contains("opengslb_dns_udp_thread_queries_total{thread=\"1\"} 2\n"));
        assert!(text.contains("opengslb_dns_dropped_total 2\n"));
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
