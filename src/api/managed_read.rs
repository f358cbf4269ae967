//! Reads of the managed entities: `GET /api/v1/servers`, `/api/v1/regions`
//! (each entry from the file or the API, with `source` and
//! `shadowed_by_config`) and the `source` of `GET /api/v1/domains`
//! entries. Pure, from the published view.

use super::command::{ApiError, Entity};
use super::view::{DomainView, OverwatchView};
use serde_json::{Value, json};

fn entries(view: &OverwatchView, entity: Entity) -> (&'static str, &[Value]) {
    match entity {
        Entity::Server => ("servers", &view.managed.servers),
        Entity::Region => ("regions", &view.managed.regions),
        Entity::Domain => ("domains", &[]),
    }
}

/// `{"servers": [...], "total": N, "generated_at": ...}` (v1.1's shape).
pub fn list(view: &OverwatchView, entity: Entity, generated_at: &str) -> Value {
    let (key, list) = entries(view, entity);
    json!({key: list, "total": list.len(), "generated_at": generated_at})
}

/// One entry by id (`address:port`) or name; the file's entry first,
/// since it is the one in force.
pub fn one(view: &OverwatchView, entity: Entity, id: &str) -> Result<Value, ApiError> {
    let (_, list) = entries(view, entity);
    let field = if entity == Entity::Server {
        "id"
    } else {
        "name"
    };
    list.iter()
        .find(|e| e[field] == id)
        .map(|e| json!({entity.as_str(): e}))
        .ok_or_else(|| ApiError::not_found(format!("no {} {id:?}", entity.as_str())))
}

/// A domain entry with `source` (config or api) and `shadowed_by_config`
/// (an API entry of that name exists and the file's wins).
pub fn domain(view: &OverwatchView, d: &DomainView) -> Value {
    let mut v = serde_json::to_value(d).unwrap_or(Value::Null);
    let api = view.managed.api_domains.iter().find(|(n, _)| *n == d.name);
    let (source, shadowed) = match api {
        Some((_, true)) => ("config", true),
        Some((_, false)) => ("api", false),
        None => ("config", false),
    };
    v["source"] = json!(source);
    v["shadowed_by_config"] = json!(shadowed);
    v
}
