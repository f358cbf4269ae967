//! Learned latency on the Overwatch: the table of round trips agents
//! reported per (client prefix, region) (`table.rs`), shared between the
//! registry thread that records reports, the API that lists it and the
//! DNS threads that rank regions per query through `dns::learned::
//! LearnedLookup`. An `RwLock`: writes are one lock per report batch,
//! reads take the read lock and do not allocate.

pub mod table;

use crate::dns::learned::LearnedLookup;
use crate::gossip::wire::LatencyEntry;
use crate::netprefix::ClientPrefix;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
pub use table::{LearnedTable, Settings};

/// Default and largest page of `GET /api/v1/overwatch/latency`.
pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 1000;

/// The table as the threads share it.
#[derive(Clone)]
pub struct Learned(Arc<RwLock<LearnedTable>>);

impl Default for Learned {
    fn default() -> Self {
        Learned::new(Settings::default())
    }
}

impl Learned {
    pub fn new(settings: Settings) -> Self {
        Learned(Arc::new(RwLock::new(LearnedTable::new(settings))))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, LearnedTable> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, LearnedTable> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an admitted report from an agent of `region` (and expires
    /// old entries, at most once a minute).
    pub fn record(&self, region: &str, entries: &[LatencyEntry], now_s: u32) {
        let mut t = self.write();
        t.expire_every(60, now_s);
        for e in entries {
            t.record(e.prefix, region, e.rtt_us, e.samples, now_s);
        }
    }

    pub fn expire(&self, now_s: u32) {
        self.write().expire(now_s);
    }

    /// `opengslb_overwatch_learned_prefixes`.
    pub fn prefixes(&self) -> usize {
        self.read().len()
    }

    /// `GET /api/v1/overwatch/latency?limit=&after=`.
    pub fn page_json(&self, query: &str, now_s: u32) -> Result<Value, String> {
        let mut limit = DEFAULT_PAGE;
        let mut after = None;
        for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
            match k {
                "limit" => {
                    limit = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE).contains(n))
                        .ok_or(format!("limit must be from 1 to {MAX_PAGE}"))?;
                }
                "after" => {
                    let v = v
                        .replace("%2F", "/")
                        .replace("%2f", "/")
                        .replace("%3A", ":");
                    after = Some(
                        ClientPrefix::parse(&v)
                            .ok_or(format!("after: {v:?} is not a prefix (ADDR/LEN)"))?,
                    );
                }
                _ => {}
            }
        }
        let t = self.read();
        let rows = t.page(after, limit, now_s);
        let next = (rows.len() == limit).then(|| rows[rows.len() - 1].prefix.to_string());
        let prefixes: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "prefix": r.prefix.to_string(),
                    "regions": r.regions.iter().map(|(region, rtt, samples, age)| json!({
                        "region": region,
                        "rtt_ms": *rtt as f64 / 1000.0,
                        "samples": samples,
                        "age_seconds": age,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        Ok(json!({
            "total": t.len(),
            "prefixes": prefixes,
            "next_after": next,
        }))
    }
}

impl LearnedLookup for Learned {
    fn visit_fastest(&self, client: IpAddr, visit: &mut dyn FnMut(&str, u8) -> bool) {
        self.read().visit_fastest(client, visit);
    }
}

/// THE MERGE SEAM: what the Overwatch hands the DNS server
/// (`dns::server::ServerConfig::learned`) at start. Connect it in
/// `daemon::overwatch::run` with
/// `learned: Some(overwatch::learned::lookup_for_dns(&learned)),`.
pub fn lookup_for_dns(table: &Learned) -> Arc<dyn LearnedLookup> {
    Arc::new(table.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_with_limit_and_after() {
        let l = Learned::default();
        let entry = |s: &str| LatencyEntry {
            service: "app".into(),
            prefix: ClientPrefix::parse(s).unwrap(),
            rtt_us: 2500,
            samples: 4,
        };
        l.record("eu", &[entry("10.0.0.0/24"), entry("10.0.1.0/24")], 0);
        let v = l.page_json("limit=1", 2).unwrap();
        assert_eq!(v["total"], 2);
        assert_eq!(v["prefixes"][0]["prefix"], "10.0.0.0/24");
        assert_eq!(v["prefixes"][0]["regions"][0]["rtt_ms"], 2.5);
        assert_eq!(v["next_after"], "10.0.0.0/24");
        let v = l.page_json("limit=5&after=10.0.0.0%2F24", 2).unwrap();
        assert_eq!(v["prefixes"][0]["prefix"], "10.0.1.0/24");
        assert!(v["next_after"].is_null());
        assert!(l.page_json("limit=0", 0).is_err());
        assert!(l.page_json("after=banana", 0).is_err());
        let dns = lookup_for_dns(&l);
        let mut hit = None;
        dns.visit_fastest("10.0.1.7".parse().unwrap(), &mut |r, s| {
            hit = Some((r.to_string(), s));
            true
        });
        assert_eq!(hit, Some(("eu".into(), 24)));
    }
}
