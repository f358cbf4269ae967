//! The Overwatch's own check round trips of the backends of `latency`
//! domains (SPEC §11), smoothed per backend with the domain's
//! `latency_config` (`crate::health::round_trip`).
//!
//! A probe's round trip reaches every backend that probe checks; only
//! backends of a `latency` domain keep one. The domain is marked for DNS
//! only when a backend's average became usable or unusable or moved
//! enough to matter (`RoundTrip::republish`), so a steady backend
//! rebuilds nothing. Entries of backends that went are dropped.

use super::Registry;
use crate::backend::BackendKey;
use crate::config::{LatencyConfig, RoutingAlgorithm};
use crate::health::round_trip::RoundTrip;
use std::time::Duration;

impl Registry {
    /// One successful probe of `keys` took `sample`.
    pub fn record_round_trip(&mut self, keys: &[BackendKey], sample: Duration) {
        for key in keys {
            if !self.backends.contains_key(key) {
                continue;
            }
            let Some(cfg) = self.latency_config(&key.service) else {
                continue;
            };
            let entry = match self.round_trips.get_mut(key) {
                Some(e) => e,
                None => self.round_trips.entry(key.clone()).or_default(),
            };
            entry.observe(sample, cfg.smoothing_factor);
            let republish = entry.republish(&cfg);
            // Shown in the backend's API entry with its next refresh.
            self.dirty.checked(key);
            if republish {
                self.dirty.domain(&key.service);
            }
        }
        if self.round_trips.len() > self.backends.len() {
            let backends = &self.backends;
            self.round_trips.retain(|k, _| backends.contains_key(k));
        }
    }

    /// After a reload: round trips of backends no longer in a `latency`
    /// domain are dropped (a domain that becomes `latency` starts afresh).
    pub(super) fn prune_round_trips(&mut self) {
        let keep: Vec<bool> = self
            .round_trips
            .keys()
            .map(|k| self.backends.contains_key(k) && self.latency_config(&k.service).is_some())
            .collect();
        let mut keep = keep.into_iter();
        self.round_trips.retain(|_, _| keep.next().unwrap_or(false));
    }

    /// The smoothed round trip of a backend of a `latency` domain.
    pub fn round_trip(&self, key: &BackendKey) -> Option<&RoundTrip> {
        self.round_trips.get(key)
    }

    /// `latency_config` of the `latency` domain named `service`.
    pub fn latency_config(&self, service: &str) -> Option<LatencyConfig> {
        self.cfg
            .config
            .domains
            .iter()
            .find(|d| {
                d.routing_algorithm == RoutingAlgorithm::Latency
                    && d.name
                        .trim()
                        .trim_end_matches('.')
                        .eq_ignore_ascii_case(service)
            })
            .map(|d| d.latency_config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Now;
    use crate::config::Config;
    use crate::overwatch::publish::dns_spec;
    use crate::overwatch::registry::RegistryConfig;
    use std::collections::BTreeSet;

    const YAML: &str = r#"
dns: { zones: [gslb.test] }
regions:
  - name: east
    servers:
      - { address: 10.0.0.1, port: 80 }
      - { address: 10.0.0.2, port: 80 }
domains:
  - name: Fast.gslb.test.
    routing_algorithm: latency
    regions: [east]
    latency_config: { smoothing_factor: 1.0, max_latency_ms: 100, min_samples: 2 }
  - { name: rr.gslb.test, regions: [east] }
"#;

    fn key(service: &str, addr: &str) -> BackendKey {
        BackendKey::new(service, addr.parse().unwrap(), 80)
    }

    fn spec(r: &Registry) -> crate::dns::DomainSpec {
        let d = r.cfg().config.domains[0].clone();
        dns_spec::domain(r, &d, &BTreeSet::new())
    }

    #[test]
    fn latency_domains_keep_round_trips_and_mark_dns_only_on_real_moves() {
        let config: Config = serde_norway::from_str(YAML).unwrap();
        let mut r = Registry::new(RegistryConfig::from_config(&config));
        let now = Now::at(0, 1_700_000_000_000);
        let (a, b) = (
            key("fast.gslb.test", "10.0.0.1"),
            key("fast.gslb.test", "10.0.0.2"),
        );
        let ok = |healthy| crate::overwatch::model::Verdict {
            healthy,
            last_check_ms: 1,
            error: None,
        };
        r.validation_result(&[a.clone(), b.clone()], ok(true));
        r.recompute(now);
        r.take_changes();
        let ms = Duration::from_millis;
        // Another algorithm's backends keep nothing.
        r.record_round_trip(&[key("rr.gslb.test", "10.0.0.1")], ms(5));
        assert!(r.round_trip(&key("rr.gslb.test", "10.0.0.1")).is_none());
        // One sample: below min_samples, DNS is not told.
        r.record_round_trip(&[a.clone(), b.clone()], ms(5));
        assert!(r.take_changes().domains.is_empty());
        assert!(spec(&r).round_trips.is_empty());
        r.record_round_trip(std::slice::from_ref(&a), ms(5));
        r.record_round_trip(std::slice::from_ref(&b), ms(50));
        assert!(r.take_changes().domains.contains("fast.gslb.test"));
        let s = spec(&r);
        assert_eq!(
            s.round_trips,
            vec![
                ("10.0.0.1".parse().unwrap(), 5_000),
                ("10.0.0.2".parse().unwrap(), 50_000)
            ]
        );
        // The same again: nothing for DNS.
        r.record_round_trip(std::slice::from_ref(&a), ms(5));
        assert!(r.take_changes().domains.is_empty());
        // Above max_latency_ms: no longer usable, DNS is told.
        r.record_round_trip(std::slice::from_ref(&b), ms(500));
        assert!(r.take_changes().domains.contains("fast.gslb.test"));
        assert_eq!(spec(&r).round_trips.len(), 1);
        // An unhealthy backend is not in the spec, whatever its round trip.
        r.validation_result(std::slice::from_ref(&a), ok(false));
        r.recompute(now);
        assert!(spec(&r).round_trips.is_empty());
        // A reload that makes the domain round-robin drops its round trips.
        let mut config = r.cfg().config.clone();
        config.domains[0].routing_algorithm = RoutingAlgorithm::RoundRobin;
        r.reconfigure(RegistryConfig::from_config(&config), now);
        assert!(r.round_trip(&b).is_none());
    }
}
