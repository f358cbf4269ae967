//! Ingest: turns what arrives at the registry thread — health-check
//! results, gossip events, API commands (`commands.rs`) and reloads — into
//! calls on the registry's rules. Nothing here publishes except API
//! commands, which answer only after their change is visible; the runtime
//! publishes once per batch from what the registry marked.

mod commands;
mod managed;
pub mod peers;

use super::metrics::OverwatchCounters;
use super::model::*;
use super::publish;
use super::registry::RegistryConfig;
use super::runtime::{Runtime, node_id};
use crate::clock::Now;
use crate::config::Config;
use crate::gossip::overwatch::OverwatchEvent;
use crate::health::CheckResult;
use log::info;
use std::collections::HashSet;

impl Runtime {
    pub(in crate::overwatch) fn on_check(&mut self, r: CheckResult, now: Now) {
        let counter = if r.probe_ok {
            &self.out.counters.validation_success
        } else {
            &self.out.counters.validation_failure
        };
        OverwatchCounters::add(counter);
        let Some(keys) = self.plans.get(&r.id) else {
            return;
        };
        let at =
            r.at.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(now.wall_ms);
        let verdict = Verdict {
            healthy: r.healthy,
            last_check_ms: at,
            error: r.error.clone(),
        };
        let keys = keys.clone();
        if let Some(rtt) = r.latency.filter(|_| r.probe_ok) {
            // `latency` routing smooths the round trips of its backends.
            self.reg.record_round_trip(&keys, rtt);
        }
        // The registry publishes a new verdict at once and a mere new
        // check time with the next refresh.
        self.reg.validation_result(&keys, verdict);
    }

    pub(in crate::overwatch) fn on_gossip(&mut self, e: OverwatchEvent, now: Now) {
        match e {
            OverwatchEvent::Registered {
                agent_id,
                region,
                addr,
                fingerprint,
                cert_not_after,
                heartbeat_interval,
                missed_threshold,
                backends,
                pinned_new,
                rotated,
            } => {
                if pinned_new {
                    info!("agent {agent_id}: certificate {fingerprint} pinned on first use");
                }
                if rotated {
                    info!(
                        "agent {agent_id}: certificate rotated to {fingerprint} (proof from the old key)"
                    );
                }
                let stale_after = (heartbeat_interval.as_millis().min(u64::MAX as u128) as u64)
                    .saturating_mul(missed_threshold.max(1) as u64);
                // v1.1 agents may leave their region empty: file them
                // under this Overwatch's own region.
                let region = if region.trim().is_empty() {
                    self.reg
                        .cfg()
                        .config
                        .overwatch
                        .identity
                        .region
                        .clone()
                        .unwrap_or_default()
                } else {
                    region
                };
                // Addresses and service names were parsed and normalised
                // at gossip admission (one backend model).
                let reports = backends;
                self.reg.agent_registered(
                    &agent_id,
                    &region,
                    addr,
                    &fingerprint,
                    cert_not_after,
                    stale_after,
                    reports,
                    now,
                );
                // Until its first heartbeat the agent gets one more stale
                // window: it learns its new session only when our answer
                // reaches it and heartbeats an interval later, and after an
                // Overwatch restart the whole fleet's handshakes (signatures,
                // key agreement on both sides) land at once; measured: 3,004
                // and, with one interval of grace, 4,001 ms from registration
                // to the first heartbeat for half the fleet (issue 9).
                self.reg.expect_first_heartbeat(&agent_id, stale_after);
                if pinned_new || rotated {
                    // Published once per loop turn, not per registration:
                    // rebuilding the pin map is O(agents), and the gossip
                    // server keeps pins it learned until they appear.
                    self.policy_dirty = true;
                }
            }
            OverwatchEvent::State {
                agent_id,
                backends,
                removed,
                full,
            } => {
                self.reg.agent_removed(&agent_id, &removed);
                self.reg.agent_state(&agent_id, backends, full, now);
            }
            OverwatchEvent::Heartbeat { agent_id, .. } => {
                OverwatchCounters::add(&self.out.counters.heartbeats_received);
                self.reg.agent_heartbeat(&agent_id, now);
            }
            OverwatchEvent::Leave { agent_id } => {
                self.reg.agent_left(&agent_id, now);
            }
            OverwatchEvent::Latency {
                region, entries, ..
            } => {
                let region = if region.trim().is_empty() {
                    let own = &self.reg.cfg().config.overwatch.identity.region;
                    own.clone().unwrap_or_default()
                } else {
                    region
                };
                let now_s = (now.mono.0 / 1000) as u32;
                self.out.learned.record(&region, &entries, now_s);
            }
            OverwatchEvent::Rejected {
                agent_id,
                addr,
                reason,
            } => {
                // Without an id (decrypt failures, replays) it is counted only.
                self.reg
                    .agent_rejected(agent_id.as_deref(), addr, reason.as_str(), now);
            }
        }
    }

    /// A reloaded file: the API's entries are laid over it again, so a
    /// reload never drops them.
    pub(in crate::overwatch) fn on_reload(&mut self, config: Config, now: Now) {
        self.base = config;
        // Peers' managed entries refused here may fit the new file.
        self.retry_rejected();
        self.apply_overlay(now);
        info!("configuration reloaded");
    }

    /// Takes a configuration (the file's with the API's entries) into the
    /// registry, the gossip policy and the DNS counters.
    pub(in crate::overwatch) fn reconfigure(&mut self, config: Config, now: Now) {
        self.node_id = node_id(&config);
        self.geo_watch = super::geo_watch::GeoWatch::for_config(&config, now.mono);
        match super::runtime::load_dnssec(&config) {
            Ok(keys) => self.dnssec = keys,
            Err(e) => {
                log::error!("SIGHUP: DNSSEC keys not reloaded, the old ones keep signing: {e}")
            }
        }
        self.reg
            .reconfigure(RegistryConfig::from_config(&config), now);
        self.out.policy.publish(publish::policy::build(
            &config,
            &self.reg,
            &self.out.policy.load(),
        ));
        let names: HashSet<String> = config
            .domains
            .iter()
            .map(|d| normalize_name(&d.name))
            .collect();
        self.out.dns_stats.retain_domains(&|d| names.contains(d));
    }
}
