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
