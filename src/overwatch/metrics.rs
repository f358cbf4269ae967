//! The Overwatch's metrics (SPEC §9): counters kept here as atomics and
//! moved by the registry thread and the reload path; gauges computed from
//! the published view at scrape time, so they can never disagree with the
//! API. DNS and gossip render their own counters.

use crate::api::view::{AgentStatus, BackendStatus, OverwatchView};
use crate::gossip::RejectReason;
use crate::gossip::overwatch::Counters as GossipCounters;
use crate::metrics::{Kind, TextWriter};
use std::sync::atomic::{AtomicU64, Ordering};

/// Sources listed in the per-source decrypt-failure series (the worst
/// offenders), so label values stay bounded.
const MAX_SOURCES: usize = 20;

#[derive(Default)]
pub struct OverwatchCounters {
    pub heartbeats_received: AtomicU64,
    pub validation_success: AtomicU64,
    pub validation_failure: AtomicU64,
    pub reload_success: AtomicU64,
    pub reload_failure: AtomicU64,
    /// GeoIP database replacements taken / refused between SIGHUPs.
    pub geo_database_success: AtomicU64,
    pub geo_database_failure: AtomicU64,
}

impl OverwatchCounters {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn write(&self, view: &OverwatchView, gossip: &GossipCounters, w: &mut TextWriter) {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
        w.family(
            "opengslb_build_info",
            "Build information; the value is always 1.",
            Kind::Gauge,
        );
        w.sample("opengslb_build_info", &[("version", crate::VERSION)], 1.0);
        let registered = view
            .agents
            .iter()
            .filter(|a| {
                matches!(
                    a.status,
                    AgentStatus::Active | AgentStatus::Stale | AgentStatus::Left
                )
            })
            .count();
        let stale = view
            .agents
            .iter()
            .filter(|a| a.status == AgentStatus::Stale)
            .count();
        w.single(
            "opengslb_overwatch_agents_registered",
            "Known agents (active, stale or left) until removed or forgotten.",
            Kind::Gauge,
            registered as f64,
        );
        w.single(
            "opengslb_overwatch_stale_agents",
            "Agents currently stale.",
            Kind::Gauge,
            stale as f64,
        );
        w.family(
            "opengslb_overwatch_agent_cert_not_after_seconds",
            "Expiry of each agent's certificate, Unix seconds.",
            Kind::Gauge,
        );
        for a in &view.agents {
            if let Some(t) = a.cert_not_after {
                w.sample(
                    "opengslb_overwatch_agent_cert_not_after_seconds",
                    &[("agent_id", &a.id)],
                    t as f64,
                );
            }
        }
        w.family(
            "opengslb_overwatch_backends",
            "Backends by effective status.",
            Kind::Gauge,
        );
        for s in BackendStatus::ALL {
            let n = view
                .backends
                .iter()
                .filter(|b| b.effective_status == s)
                .count();
            w.sample(
                "opengslb_overwatch_backends",
                &[("status", s.as_str())],
                n as f64,
            );
        }
        w.single(
            "opengslb_overwatch_heartbeats_received_total",
            "Authenticated heartbeats received from agents.",
            Kind::Counter,
            load(&self.heartbeats_received),
        );
        w.family(
            "opengslb_overwatch_agent_auth_failures_total",
            "Agent messages refused, by reason.",
            Kind::Counter,
        );
        for reason in RejectReason::ALL {
            let n = gossip.auth_failures.get(&reason).copied().unwrap_or(0);
            w.sample(
                "opengslb_overwatch_agent_auth_failures_total",
                &[("reason", reason.as_str())],
                n as f64,
            );
        }
        w.single(
            "opengslb_overwatch_latency_entries_refused_total",
            "Learned-latency report entries refused: a service the agent's token is not valid for, or not a configured domain.",
            Kind::Counter,
            gossip.latency_refused as f64,
        );
        w.single(
            "opengslb_gossip_decrypt_failures_total",
            "Gossip datagrams and frames that failed decryption.",
            Kind::Counter,
            gossip.decrypt_failures as f64,
        );
        w.family(
            "opengslb_gossip_decrypt_failures_by_source_total",
            "Decryption failures of the worst sources (at most 20), by source address.",
            Kind::Counter,
        );
        let mut sources: Vec<_> = gossip.decrypt_failures_by_source.iter().collect();
        sources.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (ip, n) in sources.into_iter().take(MAX_SOURCES) {
            w.sample(
                "opengslb_gossip_decrypt_failures_by_source_total",
                &[("source", &ip.to_string())],
                *n as f64,
            );
        }
        w.family(
            "opengslb_gossip_dropped_total",
            "Gossip input dropped before authentication, by cause.",
            Kind::Counter,
        );
        w.sample(
            "opengslb_gossip_dropped_total",
            &[("cause", "malformed")],
            gossip.malformed as f64,
        );
        w.sample(
            "opengslb_gossip_dropped_total",
            &[("cause", "oversized")],
            gossip.oversized as f64,
        );
        w.sample(
            "opengslb_gossip_dropped_total",
            &[("cause", "replay")],
            gossip.replays as f64,
        );
        w.sample(
            "opengslb_gossip_dropped_total",
            &[("cause", "unknown_session")],
            gossip.unknown_session as f64,
        );
        // A session message whose session tag does not verify: a forgery,
        // or an agent's message from before it registered again (issue 9).
        w.sample(
            "opengslb_gossip_dropped_total",
            &[("cause", "session_auth")],
            gossip.session_auth_failures as f64,
        );
        w.family(
            "opengslb_overwatch_validation_checks_total",
            "Health checks run by this Overwatch, by result.",
            Kind::Counter,
        );
        w.sample(
            "opengslb_overwatch_validation_checks_total",
            &[("result", "success")],
            load(&self.validation_success),
        );
        w.sample(
            "opengslb_overwatch_validation_checks_total",
            &[("result", "failure")],
            load(&self.validation_failure),
        );
        w.single(
            "opengslb_overwatch_overrides_active",
            "Operator overrides in force.",
            Kind::Gauge,
            view.overrides.len() as f64,
        );
        w.family(
            "opengslb_config_reloads_total",
            "Configuration reloads (SIGHUP), by result.",
            Kind::Counter,
        );
        w.sample(
            "opengslb_config_reloads_total",
            &[("result", "success")],
            load(&self.reload_success),
        );
        w.sample(
            "opengslb_config_reloads_total",
            &[("result", "failure")],
            load(&self.reload_failure),
        );
        w.family(
            "opengslb_overwatch_geo_database_reloads_total",
            "GeoIP database files found replaced between reloads, by result (a failure keeps the previous database serving).",
            Kind::Counter,
        );
        for (result, c) in [
            ("success", &self.geo_database_success),
            ("failure", &self.geo_database_failure),
        ] {
            w.sample(
                "opengslb_overwatch_geo_database_reloads_total",
                &[("result", result)],
                load(c),
            );
        }
        drain_guard(view, w);
    }
}

/// The drain guard of every domain with `min_healthy`: on now, and how
/// often it turned on.
fn drain_guard(view: &OverwatchView, w: &mut TextWriter) {
    let guarded = || view.domains.iter().filter(|d| d.min_healthy.is_some());
    w.family(
        "opengslb_overwatch_drain_guard_active",
        "1 while the drain guard keeps predictively drained or agent-unhealthy backends of the domain in DNS.",
        Kind::Gauge,
    );
    for d in guarded() {
        let on = if d.drain_guard_active { 1.0 } else { 0.0 };
        w.sample(
            "opengslb_overwatch_drain_guard_active",
            &[("domain", &d.name)],
            on,
        );
    }
    w.family(
        "opengslb_overwatch_drain_guard_activations_total",
        "Times the drain guard of the domain turned on.",
        Kind::Counter,
    );
    for d in guarded() {
        w.sample(
            "opengslb_overwatch_drain_guard_activations_total",
            &[("domain", &d.name)],
            d.drain_guard_activations as f64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geo_database_reloads_and_refused_latency_entries_are_rendered() {
        let c = OverwatchCounters::default();
        OverwatchCounters::add(&c.geo_database_success);
        OverwatchCounters::add(&c.geo_database_failure);
        OverwatchCounters::add(&c.geo_database_failure);
        let gossip = GossipCounters {
            latency_refused: 7,
            ..Default::default()
        };
        let mut w = TextWriter::new();
        c.write(&OverwatchView::default(), &gossip, &mut w);
        let text = w.finish();
        for line in [
            "opengslb_overwatch_geo_database_reloads_total{result=\"success\"} 1",
            "opengslb_overwatch_geo_database_reloads_total{result=\"failure\"} 2",
            "opengslb_overwatch_latency_entries_refused_total 7",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    /// Issue 9: session-tag failures were counted but not exported.
    #[test]
    fn session_tag_failures_are_a_dropped_cause() {
        let gossip = GossipCounters {
            unknown_session: 3,
            session_auth_failures: 5,
            ..Default::default()
        };
        let mut w = TextWriter::new();
        OverwatchCounters::default().write(&OverwatchView::default(), &gossip, &mut w);
        let text = w.finish();
        for line in [
            "opengslb_gossip_dropped_total{cause=\"unknown_session\"} 3",
            "opengslb_gossip_dropped_total{cause=\"session_auth\"} 5",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
