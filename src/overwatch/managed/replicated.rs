//! Managed entries as replicated objects (SPEC §12): every API server,
//! region and domain is one entry of the peers' last-writer-wins map,
//! keyed by kind (`ManagedRegion`, `ManagedServer`, `ManagedDomain`) and
//! id (region name, server `address:port`, domain name), its value the
//! entry as the JSON body the API takes. A receiving node checks that
//! body again (`managed::body`, the same rules an API write meets) and
//! the references against its own configuration before taking it; what
//! fails is left out and reported, never half applied. Pure: the
//! runtime (`ingest/peers.rs`) saves, overlays and publishes.

use super::{Managed, body};
use crate::api::command::{Entity, ManageOp};
use crate::config::Config;
use crate::overwatch::peers::Kind;
use serde_json::Value;

pub fn kind_of(entity: Entity) -> Kind {
    match entity {
        Entity::Region => Kind::ManagedRegion,
        Entity::Server => Kind::ManagedServer,
        Entity::Domain => Kind::ManagedDomain,
    }
}

/// The replicated key of a successful local write: `(kind, id)`.
pub fn key_of(entity: Entity, op: ManageOp, id: Option<&str>, b: &Value) -> Option<(Kind, String)> {
    let id = match (entity, id) {
        (Entity::Domain, Some(id)) => crate::backend::normalize_name(id),
        (_, Some(id)) if op != ManageOp::Create => id.to_string(),
        (Entity::Server, _) => body::server(b, None).ok()?.id(),
        (Entity::Region, _) => body::region(b, None).ok()?.name,
        (Entity::Domain, _) => body::domain(b, None).ok()?.name,
    };
    Some((kind_of(entity), id))
}

/// The entry's value as this node holds it (`None`: deleted).
pub fn value_of(m: &Managed, kind: Kind, id: &str) -> Option<String> {
    let v = match kind {
        Kind::ManagedServer => serde_json::to_value(m.servers.iter().find(|s| s.id() == id)?),
        Kind::ManagedRegion => serde_json::to_value(m.regions.iter().find(|r| r.name == id)?),
        Kind::ManagedDomain => serde_json::to_value(m.domains.iter().find(|d| d.name == id)?),
        _ => return None,
    };
    let mut v = v.ok()?;
    // Absent, not null: the API body takes no nulls.
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, x| !x.is_null());
    }
    serde_json::to_string(&v).ok()
}

/// Every `(kind, id)` this node holds, for the first publication of
/// entries made before replication (or before peers were listed).
pub fn keys(m: &Managed) -> Vec<(Kind, String)> {
    let mut out: Vec<(Kind, String)> = Vec::new();
    out.extend(
        m.regions
            .iter()
            .map(|r| (Kind::ManagedRegion, r.name.clone())),
    );
    out.extend(m.servers.iter().map(|s| (Kind::ManagedServer, s.id())));
    out.extend(
        m.domains
            .iter()
            .map(|d| (Kind::ManagedDomain, d.name.clone())),
    );
    out
}

/// Takes one replicated entry into `m`: the body is checked like an API
/// body, its id must match, its references must exist here. Returns the
/// audit action; on error `m` is unchanged.
pub fn apply(
    base: &Config,
    m: &mut Managed,
    kind: Kind,
    id: &str,
    value: Option<&str>,
) -> Result<&'static str, String> {
    let parsed: Option<Value> = match value {
        Some(v) => Some(serde_json::from_str(v).map_err(|e| format!("bad value: {e}"))?),
        None => None,
    };
    let region_known = |m: &Managed, r: &str| {
        super::config_has_region(base, r) || m.regions.iter().any(|x| x.name == r)
    };
    match (kind, parsed) {
        (Kind::ManagedServer, Some(v)) => {
            let s = body::server(&v, None)?;
            if s.id() != id {
                return Err(format!("id {id:?} does not match the body's {}", s.id()));
            }
            if !region_known(m, &s.region) {
                return Err(format!(
                    "region: {:?} is not a region on this node",
                    s.region
                ));
            }
            match m.servers.iter_mut().find(|x| x.id() == id) {
                Some(x) => *x = s,
                None => m.servers.push(s),
            }
            Ok("set_server")
        }
        (Kind::ManagedServer, None) => {
            m.servers.retain(|x| x.id() != id);
            Ok("delete_server")
        }
        (Kind::ManagedRegion, Some(v)) => {
            let r = body::region(&v, None)?;
            if r.name != id {
                return Err(format!("id {id:?} does not match the body's {:?}", r.name));
            }
            match m.regions.iter_mut().find(|x| x.name == id) {
                Some(x) => *x = r,
                None => m.regions.push(r),
            }
            Ok("set_region")
        }
        (Kind::ManagedRegion, None) => {
            let users: Vec<String> = m
                .servers
                .iter()
                .filter(|s| s.region == id)
                .map(|s| s.id())
                .collect();
            if !users.is_empty() && !super::config_has_region(base, id) {
                return Err(format!(
                    "region {id:?} still has API servers here ({})",
                    users.join(", ")
                ));
            }
            m.regions.retain(|x| x.name != id);
            Ok("delete_region")
        }
        (Kind::ManagedDomain, Some(v)) => {
            let d = body::domain(&v, None)?;
            if d.name != id {
                return Err(format!("id {id:?} does not match the body's {:?}", d.name));
            }
            for (i, r) in d.regions.iter().enumerate() {
                if !region_known(m, r) {
                    return Err(format!("regions[{i}]: {r:?} is not a region on this node"));
                }
            }
            match m.domains.iter_mut().find(|x| x.name == id) {
                Some(x) => *x = d,
                None => m.domains.push(d),
            }
            Ok("set_domain")
        }
        (Kind::ManagedDomain, None) => {
            m.domains.retain(|x| x.name != id);
            Ok("delete_domain")
        }
        (other, _) => Err(format!("{} is not a managed kind", other.as_str())),
    }
}
