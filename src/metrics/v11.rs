//! OpenGSLB v1.1 metric names that v1.1 actually moved, served alongside
//! ours so existing dashboards and alert rules keep working. Each is
//! computed at scrape time from the same published view as our own
//! metrics, so the two can never disagree. docs/metrics.md lists them,
//! and the v1.1 names we do not serve, with the reason.
//!
//! v1.1 names that equal ours (`opengslb_overwatch_agents_registered`,
//! `opengslb_overwatch_overrides_active`, `opengslb_config_reloads_total`)
//! need nothing here. Two v1.1 gauges named `_total`
//! (`opengslb_overwatch_backends_total`, `opengslb_overwatch_stale_agents_total`)
//! are not served: `promtool check metrics` rejects a gauge with that
//! suffix; docs/metrics.md gives the query that replaces each.

use super::{Kind, TextWriter};
use crate::api::view::{BackendStatus, OverwatchView};
use std::collections::BTreeSet;

/// `opengslb_app_info{version}` (v1.1's `opengslb_build_info`), both modes.
pub fn write_common(w: &mut TextWriter) {
    w.family(
        "opengslb_app_info",
        "v1.1 name of opengslb_build_info: build information, always 1.",
        Kind::Gauge,
    );
    w.sample("opengslb_app_info", &[("version", crate::VERSION)], 1.0);
}

/// The Overwatch's v1.1 gauges.
pub fn write_overwatch(view: &OverwatchView, w: &mut TextWriter) {
    let backends = &view.backends;
    let count = |f: &dyn Fn(&crate::api::view::BackendView) -> bool| {
        backends.iter().filter(|b| f(b)).count() as f64
    };
    w.single(
        "opengslb_overwatch_backends_healthy",
        "v1.1: backends whose effective status is healthy.",
        Kind::Gauge,
        count(&|b| b.effective_status == BackendStatus::Healthy),
    );
    // v1.1: "override" = an operator override is in force, "stale" = the
    // reporting agent went quiet, "agent" = everything else.
    let overridden = count(&|b| b.override_status.is_some());
    let stale =
        count(&|b| b.override_status.is_none() && b.effective_status == BackendStatus::Stale);
    w.family(
        "opengslb_overwatch_backends_by_authority",
        "v1.1: backends by what decides their health: agent, override or stale.",
        Kind::Gauge,
    );
    for (authority, n) in [
        ("agent", backends.len() as f64 - overridden - stale),
        ("override", overridden),
        ("stale", stale),
    ] {
        w.sample(
            "opengslb_overwatch_backends_by_authority",
            &[("authority", authority)],
            n,
        );
    }
    w.single(
        "opengslb_configured_domains",
        "v1.1: domains in the configuration.",
        Kind::Gauge,
        view.domains.len() as f64,
    );
    let servers: BTreeSet<(&str, u16)> = backends
        .iter()
        .filter(|b| b.agent_id.is_none())
        .map(|b| (b.address.as_str(), b.port))
        .collect();
    w.single(
        "opengslb_configured_servers",
        "v1.1: static servers (address and port) in the configuration.",
        Kind::Gauge,
        servers.len() as f64,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::view::BackendView;

    #[test]
    fn gauges_follow_the_view() {
        let b = |status, over: Option<&str>, agent: Option<&str>, port| BackendView {
            address: "10.0.0.1".into(),
            port,
            effective_status: status,
            override_status: over.map(str::to_string),
            agent_id: agent.map(str::to_string),
            ..Default::default()
        };
        let view = OverwatchView {
            backends: vec![
                b(BackendStatus::Healthy, None, None, 80).into(),
                b(BackendStatus::Healthy, None, None, 80).into(),
                b(BackendStatus::Unhealthy, Some("unhealthy"), Some("a1"), 81).into(),
                b(BackendStatus::Stale, None, Some("a2"), 82).into(),
            ],
            ..Default::default()
        };
        let mut w = TextWriter::new();
        write_overwatch(&view, &mut w);
        let text = w.finish();
        for line in [
            "opengslb_overwatch_backends_healthy 2",
            "opengslb_overwatch_backends_by_authority{authority=\"agent\"} 2",
            "opengslb_overwatch_backends_by_authority{authority=\"override\"} 1",
            "opengslb_overwatch_backends_by_authority{authority=\"stale\"} 1",
            "opengslb_configured_servers 1",
            "opengslb_configured_domains 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
