//! The managed-entity writes (`Command::Manage`), applied by the registry
//! thread: the body is checked (`managed::body`, every error names the
//! field), references are checked against the merged configuration, the
//! new set is saved to `managed.json` before anything changes, and the
//! file's configuration is laid over again (`managed::overlay`) and taken
//! through the same path as a reload, so DNS serves the change before the
//! API answers. An entry of the file with the same key wins; the answer
//! then carries `shadowed_by_config: true` and a `warning`.

use super::super::managed::{self, Managed, body};
use super::super::runtime::Runtime;
use crate::api::command::{ApiError, Entity, ManageOp};
use crate::clock::Now;
use log::warn;
use serde_json::{Value, json};
use std::sync::Arc;

impl Runtime {
    pub(super) fn manage(
        &mut self,
        entity: Entity,
        op: ManageOp,
        id: Option<&str>,
        body: &Value,
        now: Now,
    ) -> Result<Value, ApiError> {
        let mut next = self.managed.clone();
        let answer = edit(&self.base, &mut next, entity, op, id, body)?;
        let (merged, _) = managed::overlay(&self.base, &next);
        if let Err(e) = crate::config::revalidate(&merged) {
            return Err(ApiError::bad_request(e));
        }
        self.check_replicable(entity, op, id, body, &next)?;
        self.store
            .save(managed::STORE_FILE, &next)
            .map_err(|e| ApiError::new(500, format!("could not save the change: {e}")))?;
        self.managed = next;
        self.apply_overlay(now);
        Ok(answer)
    }

    /// Lays the API's entries over the file's configuration and takes the
    /// result through the reload path.
    pub(in crate::overwatch) fn apply_overlay(&mut self, now: Now) {
        let (merged, skipped) = managed::overlay(&self.base, &self.managed);
        for s in skipped {
            warn!("{s}");
        }
        self.listing = Arc::new(managed::listing(&self.base, &self.managed));
        self.reconfigure(merged, now);
    }
}

fn not_found(entity: Entity, id: &str) -> ApiError {
    ApiError::not_found(format!(
        "no {} {id:?} managed through the API",
        entity.as_str()
    ))
}

fn from_file(entity: Entity, id: &str) -> ApiError {
    ApiError::conflict(format!(
        "{} {id:?} is defined in the configuration file, which wins over the API; edit the file and reload",
        entity.as_str()
    ))
}

fn shadow_note(mut v: Value) -> Value {
    if v["shadowed_by_config"] == true {
        v["warning"] = json!(
            "the configuration file has an entry with the same key; it wins until it is removed from the file"
        );
    }
    v
}

/// Applies one write to `m`; the answer is v1.1's `{"server": {...}}`
/// (or region, domain) shape.
fn edit(
    base: &crate::config::Config,
    m: &mut Managed,
    entity: Entity,
    op: ManageOp,
    id: Option<&str>,
    b: &Value,
) -> Result<Value, ApiError> {
    let bad = |m: String| ApiError::bad_request(m);
    let id = id.unwrap_or("");
    let region_known = |m: &Managed, r: &str| {
        managed::config_has_region(base, r) || m.regions.iter().any(|x| x.name == r)
    };
    match (entity, op) {
        (Entity::Server, ManageOp::Create) => {
            let s = body::server(b, None).map_err(bad)?;
            if !region_known(m, &s.region) {
                return Err(bad(format!("region: {:?} is not a region", s.region)));
            }
            if m.servers.iter().any(|x| x.id() == s.id()) {
                return Err(ApiError::conflict(format!(
                    "server {} exists; use PUT",
                    s.id()
                )));
            }
            let v = managed::server_json(base, &s);
            m.servers.push(s);
            Ok(json!({"server": shadow_note(v)}))
        }
        (Entity::Server, ManageOp::Update) => {
            let Some(i) = m.servers.iter().position(|x| x.id() == id) else {
                return Err(if server_in_file(base, id) {
                    from_file(entity, id)
                } else {
                    not_found(entity, id)
                });
            };
            let s = body::server(b, Some(&m.servers[i])).map_err(bad)?;
            if s.id() != id {
                return Err(bad(
                    "address, port: the id cannot change; delete and create".into(),
                ));
            }
            if !region_known(m, &s.region) {
                return Err(bad(format!("region: {:?} is not a region", s.region)));
            }
            let v = managed::server_json(base, &s);
            m.servers[i] = s;
            Ok(json!({"server": shadow_note(v)}))
        }
        (Entity::Server, ManageOp::Delete) => {
            let before = m.servers.len();
            m.servers.retain(|x| x.id() != id);
            if m.servers.len() == before {
                return Err(if server_in_file(base, id) {
                    from_file(entity, id)
                } else {
                    not_found(entity, id)
                });
            }
            Ok(Value::Null)
        }
        (Entity::Region, ManageOp::Create) => {
            let r = body::region(b, None).map_err(bad)?;
            if m.regions.iter().any(|x| x.name == r.name) {
                return Err(ApiError::conflict(format!(
                    "region {} exists; use PUT",
                    r.name
                )));
            }
            let v = managed::region_json(base, &r);
            m.regions.push(r);
            Ok(json!({"region": shadow_note(v)}))
        }
        (Entity::Region, ManageOp::Update) => {
            let Some(i) = m.regions.iter().position(|x| x.name == id) else {
                return Err(if managed::config_has_region(base, id) {
                    from_file(entity, id)
                } else {
                    not_found(entity, id)
                });
            };
            let r = body::region(b, Some(&m.regions[i])).map_err(bad)?;
            let v = managed::region_json(base, &r);
            m.regions[i] = r;
            Ok(json!({"region": shadow_note(v)}))
        }
        (Entity::Region, ManageOp::Delete) => {
            if !m.regions.iter().any(|x| x.name == id) {
                return Err(if managed::config_has_region(base, id) {
                    from_file(entity, id)
                } else {
                    not_found(entity, id)
                });
            }
            let users: Vec<String> = m
                .servers
                .iter()
                .filter(|s| s.region == id)
                .map(|s| s.id())
                .collect();
            if !users.is_empty() && !managed::config_has_region(base, id) {
                return Err(ApiError::conflict(format!(
                    "region {id:?} still has API servers ({}); delete them first",
                    users.join(", ")
                )));
            }
            m.regions.retain(|x| x.name != id);
            Ok(Value::Null)
        }
        (Entity::Domain, ManageOp::Create) => {
            let d = body::domain(b, None).map_err(bad)?;
            check_regions(m, &d.regions, &region_known)?;
            if m.domains.iter().any(|x| x.name == d.name) {
                return Err(ApiError::conflict(format!(
                    "domain {} exists; use PUT",
                    d.name
                )));
            }
            let v = managed::domain_json(base, &d);
            m.domains.push(d);
            Ok(json!({"domain": shadow_note(v)}))
        }
        (Entity::Domain, ManageOp::Update) => {
            let name = crate::backend::normalize_name(id);
            let Some(i) = m.domains.iter().position(|x| x.name == name) else {
                return Err(if managed::config_has_domain(base, &name) {
                    from_file(entity, &name)
                } else {
                    not_found(entity, &name)
                });
            };
            let d = body::domain(b, Some(&m.domains[i])).map_err(bad)?;
            check_regions(m, &d.regions, &region_known)?;
            let v = managed::domain_json(base, &d);
            m.domains[i] = d;
            Ok(json!({"domain": shadow_note(v)}))
        }
        (Entity::Domain, ManageOp::Delete) => {
            let name = crate::backend::normalize_name(id);
            if !m.domains.iter().any(|x| x.name == name) {
                return Err(if managed::config_has_domain(base, &name) {
                    from_file(entity, &name)
                } else {
                    not_found(entity, &name)
                });
            }
            m.domains.retain(|x| x.name != name);
            Ok(Value::Null)
        }
    }
}

fn check_regions(
    m: &Managed,
    regions: &[String],
    known: &dyn Fn(&Managed, &str) -> bool,
) -> Result<(), ApiError> {
    for (i, r) in regions.iter().enumerate() {
        if !known(m, r) {
            return Err(ApiError::bad_request(format!(
                "regions[{i}]: {r:?} is not a region"
            )));
        }
    }
    Ok(())
}

fn server_in_file(base: &crate::config::Config, id: &str) -> bool {
    crate::api::routes::parse_host_port(id)
        .is_ok_and(|(a, p)| managed::config_has_server(base, &a, p))
}
