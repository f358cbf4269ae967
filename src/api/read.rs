//! The read endpoints: pure functions from the published view (and the
//! query string) to a status code and a JSON body.

use super::command::ApiError;
use super::routes::{Route, query_pairs};
use super::view::{BackendStatus, BackendView, OverwatchView};
use crate::timefmt;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Default and largest number of entries `/api/v1/audit-logs` returns.
pub const AUDIT_DEFAULT: usize = 100;
/// The registry keeps this many recent entries in the view (`AUDIT_TAIL`);
/// older ones stay in `audit.jsonl` in the data directory.
pub const AUDIT_MAX: usize = 200;

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    // The view types serialize infallibly (no maps with non-string keys).
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Answers a read route; `Metrics` and writes are not handled here.
pub fn answer(route: &Route, query: &str, view: &OverwatchView) -> Result<(u16, Value), ApiError> {
    let generated_at = timefmt::rfc3339(view.generated_at);
    let ok = |body: Value| Ok((200, body));
    match route {
        Route::Backends => {
            let filter = BackendFilter::from_query(query)?;
            let backends: Vec<Value> = view
                .backends
                .iter()
                .filter(|b| filter.matches(b))
                .map(to_value)
                .collect();
            ok(json!({"backends": backends, "generated_at": generated_at}))
        }
        Route::Stats => ok(stats(view)),
        Route::Agents => {
            ok(json!({"agents": to_value(&view.agents), "generated_at": generated_at}))
        }
        Route::Agent(id) => view
            .agents
            .iter()
            .find(|a| &a.id == id)
            .map(|a| (200, to_value(a)))
            .ok_or_else(|| ApiError::not_found(format!("no agent {id:?}"))),
        Route::Overrides => {
            ok(json!({"overrides": to_value(&view.overrides), "generated_at": generated_at}))
        }
        Route::HealthServers => {
            let servers: Vec<Value> = view.backends.iter().map(|b| server_entry(b)).collect();
            ok(json!({"servers": servers, "generated_at": generated_at}))
        }
        Route::Healthz => ok(healthz(view)),
        Route::Domains => {
            let domains: Vec<Value> = view
                .domains
                .iter()
                .map(|d| super::managed_read::domain(view, d))
                .collect();
            ok(json!({"domains": domains, "generated_at": generated_at}))
        }
        Route::ManagedList(entity) => ok(super::managed_read::list(view, *entity, &generated_at)),
        Route::ManagedOne(entity, id) => {
            super::managed_read::one(view, *entity, id).map(|v| (200, v))
        }
        Route::Domain(name) => {
            let want = name.trim_end_matches('.');
            view.domains
                .iter()
                .find(|d| d.name.trim_end_matches('.').eq_ignore_ascii_case(want))
                .map(|d| (200, super::managed_read::domain(view, d)))
                .ok_or_else(|| ApiError::not_found(format!("no configured domain {name:?}")))
        }
        Route::Ready => {
            if view.ready {
                ok(json!({"status": "ready", "ready": true}))
            } else {
                Err(ApiError::unavailable(
                    "not ready: state is loading or DNS is not serving yet",
                ))
            }
        }
        Route::Live => ok(json!({"status": "alive"})),
        Route::Version => ok(json!({
            "name": "opengslb",
            "version": crate::VERSION,
            "mode": "overwatch",
            "node_id": view.node_id,
        })),
        Route::AuditLogs => {
            let limit = audit_limit(query)?;
            let skip = view.audit.len().saturating_sub(limit);
            let entries: Vec<Value> = view
                .audit
                .iter()
                .skip(skip)
                .map(|e| {
                    json!({
                        "at": timefmt::rfc3339(e.at),
                        "by": e.by,
                        "from": e.from,
                        "action": e.action,
                        "target": e.target,
                        "detail": e.detail,
                        "result": e.result,
                    })
                })
                .collect();
            ok(json!({"entries": entries, "generated_at": generated_at}))
        }
        Route::OpenApi => super::openapi::document().map(|doc| (200, doc.clone())),
        Route::GeoMappings => ok(json!({
            "mappings": view.geo_mappings,
            "enabled": view.geo.is_some(),
            "generated_at": generated_at,
        })),
        Route::GeoTest => geo_test(query, view).map(|v| (200, v)),
        _ => Err(ApiError::new(500, "route is not a read")),
    }
}

/// `GET /api/v1/geo/test?ip=`: where geolocation sends this client, and why.
fn geo_test(query: &str, view: &OverwatchView) -> Result<Value, ApiError> {
    let text = query_pairs(query)
        .into_iter()
        .find(|(k, _)| k == "ip")
        .map(|(_, v)| v)
        .unwrap_or_default();
    let ip: std::net::IpAddr = text.trim().parse().map_err(|_| {
        ApiError::bad_request(format!(
            "ip: {text:?} is not an IP address (like 198.51.100.7)"
        ))
    })?;
    let geo = view.geo.as_ref().ok_or_else(|| {
        ApiError::not_found("geolocation is not configured (overwatch.geolocation)")
    })?;
    let e = geo.0.explain(ip);
    Ok(json!({
        "ip": ip.to_string(),
        "region": e.region,
        "match_type": e.match_type.as_str(),
        "matched_cidr": e.matched_cidr,
        "country": e.country,
        "continent": e.continent,
        "scope": e.scope,
    }))
}

fn audit_limit(query: &str) -> Result<usize, ApiError> {
    match query_pairs(query).into_iter().find(|(k, _)| k == "limit") {
        None => Ok(AUDIT_DEFAULT),
        // Any whole number is clamped, even one beyond usize.
        Some((_, v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(v.parse::<usize>().map_or(AUDIT_MAX, |n| n.min(AUDIT_MAX)))
        }
        Some((_, v)) => Err(ApiError::bad_request(format!(
            "invalid limit {v:?}: expected a number"
        ))),
    }
}

/// `?status=&service=&region=` of the backends list.
#[derive(Debug, Default, PartialEq)]
pub struct BackendFilter {
    pub status: Option<BackendStatus>,
    pub service: Option<String>,
    pub region: Option<String>,
}

impl BackendFilter {
    pub fn from_query(query: &str) -> Result<BackendFilter, ApiError> {
        let mut f = BackendFilter::default();
        for (k, v) in query_pairs(query) {
            if v.is_empty() {
                continue;
            }
            match k.as_str() {
                "status" => {
                    f.status = Some(BackendStatus::parse(&v).ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "invalid status {v:?}: expected healthy, unhealthy, draining or stale"
                        ))
                    })?)
                }
                "service" => f.service = Some(v),
                "region" => f.region = Some(v),
                _ => {}
            }
        }
        Ok(f)
    }

    pub fn matches(&self, b: &BackendView) -> bool {
        self.status.is_none_or(|s| b.effective_status == s)
            && self.service.as_ref().is_none_or(|s| &b.service == s)
            && self.region.as_ref().is_none_or(|r| &b.region == r)
    }
}

fn server_entry(b: &BackendView) -> Value {
    let last_check = b.validation_last_check.max(b.agent_last_seen.get());
    json!({
        "address": b.address,
        "port": b.port,
        "service": b.service,
        "region": b.region,
        "healthy": b.effective_status == BackendStatus::Healthy,
        "status": b.effective_status,
        "last_check": last_check.map(timefmt::rfc3339),
    })
}

/// `GET /api/v1/overwatch/stats`, computed from the view.
pub fn stats(view: &OverwatchView) -> Value {
    use super::view::AgentStatus;
    let count_agents = |s: AgentStatus| view.agents.iter().filter(|a| a.status == s).count();
    let count_backends = |s: BackendStatus| {
        view.backends
            .iter()
            .filter(|b| b.effective_status == s)
            .count()
    };
    let mut by_service: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_region: BTreeMap<&str, usize> = BTreeMap::new();
    for b in &view.backends {
        *by_service.entry(&b.service).or_default() += 1;
        *by_region.entry(&b.region).or_default() += 1;
    }
    let services: BTreeSet<&str> = by_service.keys().copied().collect();
    let active = count_agents(AgentStatus::Active);
    let stale = count_agents(AgentStatus::Stale);
    json!({
        "active_agents": active,
        "stale_agents": stale,
        "registered_agents": active + stale,
        "total_backends": view.backends.len(),
        "healthy_backends": count_backends(BackendStatus::Healthy),
        "unhealthy_backends": count_backends(BackendStatus::Unhealthy),
        "draining_backends": count_backends(BackendStatus::Draining),
        "stale_backends": count_backends(BackendStatus::Stale),
        "active_overrides": view.overrides.len(),
        "validation_enabled": view.validation_enabled,
        "validated_backends": view.backends.iter().filter(|b| b.validation_healthy.is_some()).count(),
        "disagreement_count": view.disagreement_count,
        "unique_services": services.len(),
        "backends_by_service": to_value(&by_service),
        "backends_by_region": to_value(&by_region),
        "generated_at": timefmt::rfc3339(view.generated_at),
    })
}

/// `GET /api/v1/healthz`: `degraded` when an agent is lost or no backend
/// is healthy.
pub fn healthz(view: &OverwatchView) -> Value {
    let any_healthy = view
        .backends
        .iter()
        .any(|b| b.effective_status == BackendStatus::Healthy);
    let degraded = !view.lost_agents.is_empty() || !any_healthy;
    let lost: Vec<Value> = view
        .lost_agents
        .iter()
        .map(|l| {
            let mut m = Map::new();
            m.insert("agent_id".into(), json!(l.agent_id));
            m.insert("env".into(), json!(l.region));
            m.insert("ip".into(), json!(l.ip));
            m.insert("service".into(), json!(l.service));
            m.insert(
                "last_heartbeat".into(),
                json!(timefmt::plain(l.last_heartbeat)),
            );
            Value::Object(m)
        })
        .collect();
    json!({
        "status": if degraded { "degraded" } else { "ok" },
        "lost_agents": lost,
        "generated_at": timefmt::rfc3339(view.generated_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::view::{AgentStatus, AgentView, LostAgentView};

    fn backend(service: &str, region: &str, status: BackendStatus) -> BackendView {
        BackendView {
            service: service.into(),
            region: region.into(),
            address: "10.0.0.1".into(),
            port: 80,
            effective_status: status,
            ..Default::default()
        }
    }

    fn view() -> OverwatchView {
        OverwatchView {
            backends: vec![
                backend("app", "eu", BackendStatus::Healthy),
                backend("app", "us", BackendStatus::Stale),
                backend("api", "eu", BackendStatus::Draining),
            ]
            .into_iter()
            .map(Into::into)
            .collect(),
            agents: vec![
                AgentView {
                    id: "a".into(),
                    status: AgentStatus::Active,
                    ..Default::default()
                },
                AgentView {
                    id: "b".into(),
                    status: AgentStatus::Stale,
                    ..Default::default()
                },
                AgentView {
                    id: "c".into(),
                    status: AgentStatus::Rejected,
                    ..Default::default()
                },
            ]
            .into_iter()
            .map(Into::into)
            .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn stats_counts() {
        let s = stats(&view());
        assert_eq!(s["active_agents"], 1);
        assert_eq!(s["stale_agents"], 1);
        assert_eq!(s["registered_agents"], 2);
        assert_eq!(s["total_backends"], 3);
        assert_eq!(s["healthy_backends"], 1);
        assert_eq!(s["draining_backends"], 1);
        assert_eq!(s["stale_backends"], 1);
        assert_eq!(s["unhealthy_backends"], 0);
        assert_eq!(s["unique_services"], 2);
        assert_eq!(s["backends_by_service"]["app"], 2);
        assert_eq!(s["backends_by_region"]["eu"], 2);
        assert_eq!(s.as_object().map(|o| o.len()), Some(16));
    }

    #[test]
    fn filters() {
        let v = view();
        let f = BackendFilter::from_query("status=stale").expect("valid");
        assert_eq!(v.backends.iter().filter(|b| f.matches(b)).count(), 1);
        let f = BackendFilter::from_query("service=app&region=eu").expect("valid");
        assert_eq!(v.backends.iter().filter(|b| f.matches(b)).count(), 1);
        assert!(BackendFilter::from_query("status=sick").is_err());
    }

    #[test]
    fn healthz_degrades() {
        let mut v = view();
        assert_eq!(healthz(&v)["status"], "ok");
        v.lost_agents.push(LostAgentView {
            agent_id: "x".into(),
            region: "eu".into(),
            ip: "10.0.0.9".into(),
            service: "app".into(),
            last_heartbeat: 1_795_302_658,
        });
        let h = healthz(&v);
        assert_eq!(h["status"], "degraded");
        assert_eq!(h["lost_agents"][0]["last_heartbeat"], "2026-11-21 23:10:58");
        assert_eq!(h["lost_agents"][0]["env"], "eu");
        v.lost_agents.clear();
        v.backends
            .retain(|b| b.effective_status != BackendStatus::Healthy);
        assert_eq!(healthz(&v)["status"], "degraded");
    }
}
