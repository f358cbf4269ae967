//! Ingest: turns what arrives at the registry thread — health-check
//! results, gossip events, API commands (`commands.rs`) and reloads — into
//! calls on the registry's rules. Nothing here publishes except API
//! commands, which answer only after their change is visible; the runtime
//! publishes once per batch from what the registry marked.

mod commands;

use super::metrics::OverwatchCounters;
use super::model::*;
use super::publish;
use super::registry::RegistryConfig;
use super::runtime::{Runtime, node_id};
use crate::clock::Now;
use crate::config::Config;
use crate::gossip::{self, overwatch_side::OverwatchEvent};
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
                let reports = backends.into_iter().filter_map(report).collect();
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
                let removed: Vec<BackendKey> = removed
                    .into_iter()
                    .filter_map(|k| {
                        Some(BackendKey::new(&k.service, k.address.parse().ok()?, k.port))
                    })
                    .collect();
                self.reg.agent_removed(&agent_id, &removed);
                let reports = backends.into_iter().filter_map(report).collect();
                self.reg.agent_state(&agent_id, reports, full, now);
            }
            OverwatchEvent::Heartbeat { agent_id, .. } => {
                OverwatchCounters::add(&self.out.counters.heartbeats_received);
                self.reg.agent_heartbeat(&agent_id, now);
            }
            OverwatchEvent::Leave { agent_id } => {
                self.reg.agent_left(&agent_id, now);
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

    pub(in crate::overwatch) fn on_reload(&mut self, config: Config, now: Now) {
        self.node_id = node_id(&config);
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
        info!("configuration reloaded");
    }
}

/// The gossip wire report as the shared backend model: the service name
/// normalised and the address parsed once, here.
fn report(b: gossip::BackendReport) -> Option<BackendReport> {
    let address = b
        .address
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    Some(BackendReport {
        key: BackendKey::new(&b.service, address, b.port),
        weight: b.weight,
        healthy: b.healthy,
        draining: b.draining,
        drain_reason: b.drain_reason,
        last_error: b.last_error,
    })
}
