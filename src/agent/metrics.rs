//! The agent's metrics (SPEC §9), rendered from its published status and
//! the gossip client's counters at scrape time.

use super::api::AgentStatusView;
use crate::metrics::{Kind, TextWriter};

pub struct AgentCounters {
    pub heartbeats_sent: u64,
    pub heartbeat_failures: u64,
    pub latency_subnets: u64,
    pub latency_reports_sent: u64,
}

pub fn render(
    view: &AgentStatusView,
    counters: &AgentCounters,
    cert_not_after: Option<u64>,
) -> String {
    let mut w = TextWriter::new();
    w.family(
        "opengslb_build_info",
        "Build information; the value is always 1.",
        Kind::Gauge,
    );
    w.sample("opengslb_build_info", &[("version", crate::VERSION)], 1.0);
    w.single(
        "opengslb_agent_heartbeats_sent_total",
        "Heartbeats sent to Overwatch nodes.",
        Kind::Counter,
        counters.heartbeats_sent as f64,
    );
    w.single(
        "opengslb_agent_heartbeat_failures_total",
        "Heartbeats not acknowledged before the next was due.",
        Kind::Counter,
        counters.heartbeat_failures as f64,
    );
    w.single(
        "opengslb_agent_latency_subnets",
        "Client prefixes in the agent's learned-latency table.",
        Kind::Gauge,
        counters.latency_subnets as f64,
    );
    w.single(
        "opengslb_agent_latency_reports_sent_total",
        "Learned-latency report batches sent (to every Overwatch).",
        Kind::Counter,
        counters.latency_reports_sent as f64,
    );
    w.family(
        "opengslb_agent_overwatch_connected",
        "1 when registered with the Overwatch node and hearing acks.",
        Kind::Gauge,
    );
    for o in &view.overwatches {
        w.sample(
            "opengslb_agent_overwatch_connected",
            &[("overwatch", &o.address)],
            if o.connected { 1.0 } else { 0.0 },
        );
    }
    w.family(
        "opengslb_agent_backend_healthy",
        "1 when the agent's own check passes.",
        Kind::Gauge,
    );
    for b in &view.backends {
        let address = crate::api::command::host_port(&b.address, b.port);
        w.sample(
            "opengslb_agent_backend_healthy",
            &[("service", &b.service), ("address", &address)],
            if b.healthy { 1.0 } else { 0.0 },
        );
    }
    w.single(
        "opengslb_agent_draining",
        "1 while the agent drains its backends.",
        Kind::Gauge,
        if view.draining { 1.0 } else { 0.0 },
    );
    if let Some(t) = cert_not_after {
        w.single(
            "opengslb_agent_cert_not_after_seconds",
            "Expiry of the agent's certificate, Unix seconds.",
            Kind::Gauge,
            t as f64,
        );
    }
    // What every exporter serves, and v1.1's name for the build info.
    crate::metrics::process::write(&crate::metrics::process::read(), &mut w);
    crate::metrics::v11::write_common(&mut w);
    w.finish()
}
