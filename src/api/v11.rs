//! Read endpoints OpenGSLB v1.1 served that scripts still call, answered
//! from the same published view as ours (pure, unit-tested here):
//!
//! - `GET /api/v1/overwatch/agents/expiring?within=DURATION` (or v1.1's
//!   `?threshold_days=N`; default 30 days): agents whose certificate
//!   expires within that time, expired ones included, soonest first.
//! - `GET /api/v1/health/regions`: per region, total, healthy and
//!   unhealthy backends and the healthy percentage (v1.1's shape).
//! - `GET /api/v1/config` is answered by the server from the effective
//!   configuration with secrets redacted (`config::redact`).

use super::command::ApiError;
use super::routes::query_pairs;
use super::view::{BackendStatus, OverwatchView};
use crate::timefmt;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const DAY: u64 = 86_400;

/// The look-ahead of `expiring`, in seconds.
fn within(query: &str) -> Result<u64, ApiError> {
    let pairs = query_pairs(query);
    // Both are checked when given; `within` wins when both are valid.
    let days = match pairs.iter().find(|(k, _)| k == "threshold_days") {
        Some((_, v)) => Some(
            v.parse::<u64>()
                .ok()
                .filter(|d| (1..=36_500).contains(d))
                .map(|d| d.saturating_mul(DAY))
                .ok_or_else(|| ApiError::bad_request(format!("threshold_days: invalid {v:?}")))?,
        ),
        None => None,
    };
    if let Some((_, v)) = pairs.iter().find(|(k, _)| k == "within") {
        // Days are what certificates are counted in; Go durations stop at h.
        if let Some(days) = v.strip_suffix('d').and_then(|d| d.parse::<u64>().ok()) {
            return Ok(days.saturating_mul(DAY));
        }
        return crate::config::duration::parse_duration(v)
            .map(|d| d.as_secs())
            .map_err(|e| ApiError::bad_request(format!("within: {e} (or a number of days: 30d)")));
    }
    Ok(days.unwrap_or(30 * DAY))
}

/// `GET /api/v1/overwatch/agents/expiring`.
pub fn expiring(query: &str, view: &OverwatchView) -> Result<Value, ApiError> {
    let window = within(query)?;
    let now = view.generated_at;
    let mut agents: Vec<(u64, Value)> = view
        .agents
        .iter()
        .filter_map(|a| {
            let t = a.cert_not_after?;
            (t <= now.saturating_add(window)).then(|| {
                let hours = (t as i64 - now as i64) / 3600;
                (
                    t,
                    json!({
                        "agent_id": a.id,
                        "region": a.region,
                        "status": a.status,
                        "fingerprint": a.fingerprint,
                        "not_after": timefmt::rfc3339(t),
                        "expires_in_hours": hours,
                        "revoked": a.reject_reason.as_deref() == Some("revoked"),
                    }),
                )
            })
        })
        .collect();
    agents.sort_by_key(|(t, _)| *t);
    let list: Vec<Value> = agents.into_iter().map(|(_, v)| v).collect();
    Ok(json!({
        "count": list.len(),
        "expiring": list,
        "within_seconds": window,
        "threshold_days": window / DAY,
        "generated_at": timefmt::rfc3339(now),
    }))
}

/// `GET /api/v1/health/regions`.
pub fn health_regions(view: &OverwatchView) -> Value {
    // region → (total, healthy)
    let mut by_region: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for b in &view.backends {
        let name = if b.region.is_empty() {
            "unknown"
        } else {
            &b.region
        };
        let e = by_region.entry(name).or_default();
        e.0 += 1;
        if b.effective_status == BackendStatus::Healthy {
            e.1 += 1;
        }
    }
    let regions: Vec<Value> = by_region
        .into_iter()
        .map(|(name, (total, healthy))| {
            json!({
                "name": name,
                "total_servers": total,
                "healthy_count": healthy,
                "unhealthy_count": total - healthy,
                "health_percent": if total == 0 { 0.0 } else { healthy as f64 * 100.0 / total as f64 },
            })
        })
        .collect();
    json!({"regions": regions, "generated_at": timefmt::rfc3339(view.generated_at)})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::view::{AgentView, BackendView};

    fn view() -> OverwatchView {
        let now = 1_700_000_000;
        let agent = |id: &str, t: Option<u64>| AgentView {
            id: id.into(),
            region: "east".into(),
            cert_not_after: t,
            ..Default::default()
        };
        let b = |region: &str, status| BackendView {
            region: region.into(),
            effective_status: status,
            ..Default::default()
        };
        OverwatchView {
            generated_at: now,
            agents: vec![
                agent("soon", Some(now + 2 * DAY)).into(),
                agent("later", Some(now + 60 * DAY)).into(),
                agent("expired", Some(now - DAY)).into(),
                agent("unknown", None).into(),
            ],
            backends: vec![
                b("east", BackendStatus::Healthy).into(),
                b("east", BackendStatus::Stale).into(),
                b("west", BackendStatus::Healthy).into(),
                b("", BackendStatus::Draining).into(),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn expiring_windows() {
        let v = view();
        let ids = |q: &str| -> Vec<String> {
            expiring(q, &v).expect("ok")["expiring"]
                .as_array()
                .expect("array")
                .iter()
                .map(|a| a["agent_id"].as_str().unwrap_or("").to_string())
                .collect()
        };
        assert_eq!(ids(""), ["expired", "soon"]);
        assert_eq!(ids("within=90d"), ["expired", "soon", "later"]);
        assert_eq!(ids("within=24h"), ["expired"]);
        assert_eq!(ids("threshold_days=3"), ["expired", "soon"]);
        let soon = &expiring("", &v).expect("ok")["expiring"][1];
        assert_eq!(soon["expires_in_hours"], 48);
        assert_eq!(expiring("within=soon", &v).unwrap_err().code, 400);
        assert_eq!(expiring("threshold_days=0", &v).unwrap_err().code, 400);
    }

    #[test]
    fn regions_summary() {
        let r = health_regions(&view());
        let regions = r["regions"].as_array().expect("array");
        let names: Vec<&str> = regions.iter().filter_map(|x| x["name"].as_str()).collect();
        assert_eq!(names, ["east", "unknown", "west"]);
        assert_eq!(regions[0]["total_servers"], 2);
        assert_eq!(regions[0]["healthy_count"], 1);
        assert_eq!(regions[0]["unhealthy_count"], 1);
        assert_eq!(regions[0]["health_percent"], 50.0);
    }
}
