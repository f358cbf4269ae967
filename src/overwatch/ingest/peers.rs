//! Replicated operator state on the registry thread (SPEC §12).
//!
//! A local operator write that succeeded is stamped into the shared
//! `Replica` and handed to the `peers` thread to push (`replicate`). A
//! change that won on a peer arrives back here (`on_peer`) and goes
//! through the same registry rules an operator command uses; the audit
//! log records it with the origin node (`from: peer:<node>`) and the
//! operator who made it. Both mark the replica for `state.json`.

use super::super::model::{BackendKey, Override, Revocation};
use super::super::peers::{Entry, Kind};
use super::super::runtime::{AUDIT_TAIL, Runtime};
use crate::api::command::Command;
use crate::api::view::AuditEntry;
use crate::clock::Now;
use log::{error, info, warn};

/// The replicated id of an override: `service/address/port`.
pub fn override_id(key: &BackendKey) -> String {
    format!("{}/{}/{}", key.service, key.address, key.port)
}

fn parse_override_id(id: &str) -> Option<BackendKey> {
    let mut parts = id.rsplitn(3, '/');
    let port = parts.next()?.parse().ok()?;
    let address = parts.next()?.parse().ok()?;
    let service = parts.next()?;
    Some(BackendKey::new(service, address, port))
}

impl Runtime {
    /// Stamps a successful local write and hands it to the peers thread.
    pub(in crate::overwatch) fn replicate(&mut self, cmd: &Command, by: &str, now: Now) {
        let Some(out) = self.peer_out.clone() else {
            return;
        };
        let (kind, id, value) = match cmd {
            Command::SetOverride {
                service,
                address,
                port,
                ..
            }
            | Command::ClearOverride {
                service,
                address,
                port,
            } => {
                let Ok(ip) = address.trim_matches(['[', ']']).parse() else {
                    return;
                };
                let key = BackendKey::new(service, ip, *port);
                let value = self
                    .reg
                    .overrides()
                    .get(&key)
                    .and_then(|o| serde_json::to_string(o).ok());
                (Kind::Override, override_id(&key), value)
            }
            Command::ForgetAgent { id } => (
                Kind::ForgottenPin,
                id.clone(),
                Some(serde_json::json!({"at": now.wall_secs()}).to_string()),
            ),
            Command::RevokeAgent { id, .. } => (
                Kind::Revocation,
                id.clone(),
                self.reg
                    .revocations()
                    .get(id)
                    .and_then(|r| serde_json::to_string(r).ok()),
            ),
            Command::SetGeoMapping { cidr, .. } | Command::DeleteGeoMapping { cidr } => (
                Kind::GeoMapping,
                cidr.clone(),
                self.reg
                    .geo_mappings()
                    .into_iter()
                    .find(|m| &m.cidr == cidr)
                    .and_then(|m| serde_json::to_string(&m).ok()),
            ),
            // Managed servers/regions/domains live in managed.json on each
            // node and are not replicated (docs/migrating-from-v1.md).
            Command::Validate | Command::Manage { .. } => return,
        };
        let entry = self
            .replica
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write(kind, &id, value, by, now.wall_ms);
        self.replica_dirty = true;
        if out.try_send(entry).is_err() {
            warn!("peers: push queue full; the next digest exchange repairs it");
        }
    }

    /// A change that won the merge on the peers thread: applied like an
    /// operator command, audited with its origin, saved, published.
    pub(in crate::overwatch) fn on_peer(&mut self, e: Entry, now: Now) {
        let (action, target, result) = self.apply_replicated(&e, now);
        info!(
            "replicated {action} on {target} from node {} by {}: {result}",
            e.stamp.node, e.operator
        );
        let entry = AuditEntry {
            at: now.wall_secs(),
            by: e.operator.clone(),
            from: format!("peer:{}", e.stamp.node),
            action: action.to_string(),
            target,
            detail: Some(format!(
                "replicated from {} (stamp {}.{})",
                e.stamp.node, e.stamp.wall_ms, e.stamp.logical
            )),
            result,
        };
        if let Err(err) = self.audit.append(&entry) {
            error!("could not append to the audit log: {err}");
        }
        self.audit_tail.push(entry);
        if self.audit_tail.len() > AUDIT_TAIL {
            let cut = self.audit_tail.len() - AUDIT_TAIL;
            self.audit_tail.drain(..cut);
        }
        self.replica_dirty = true;
        self.reg.recompute(now);
        self.persist();
        self.publish(now);
    }

    fn apply_replicated(&mut self, e: &Entry, now: Now) -> (&'static str, String, String) {
        let ok = |a, t: String| (a, t, "ok".to_string());
        match (e.kind, &e.value) {
            (Kind::Override, value) => {
                let Some(key) = parse_override_id(&e.id) else {
                    return ("set_override", e.id.clone(), "bad object id".into());
                };
                let target = format!("{}/{}", key.service, key.socket());
                match value.as_deref().map(serde_json::from_str::<Override>) {
                    Some(Ok(mut o)) => {
                        o.key = key;
                        self.reg.set_override(o, now);
                        ok("set_override", target)
                    }
                    Some(Err(err)) => ("set_override", target, format!("bad value: {err}")),
                    None => {
                        self.reg.clear_override(&key);
                        ok("clear_override", target)
                    }
                }
            }
            (Kind::Revocation, Some(v)) => match serde_json::from_str::<Revocation>(v) {
                Ok(mut r) => {
                    r.agent_id = e.id.clone();
                    self.reg.revoke_agent(r);
                    self.publish_policy_now();
                    ok("revoke_agent", e.id.clone())
                }
                Err(err) => ("revoke_agent", e.id.clone(), format!("bad value: {err}")),
            },
            (Kind::Revocation, None) => ok("revoke_agent", e.id.clone()),
            (Kind::ForgottenPin, Some(_)) => {
                self.forget_now(&e.id);
                ok("forget_agent", e.id.clone())
            }
            (Kind::ForgottenPin, None) => ok("forget_agent", e.id.clone()),
            (Kind::GeoMapping, Some(v)) => {
                match serde_json::from_str::<crate::config::GeoMapping>(v) {
                    Ok(mut m) => {
                        m.cidr = e.id.clone();
                        self.reg.set_geo_mapping(m);
                        ok("set_geo_mapping", e.id.clone())
                    }
                    Err(err) => ("set_geo_mapping", e.id.clone(), format!("bad value: {err}")),
                }
            }
            (Kind::GeoMapping, None) => {
                self.reg.delete_geo_mapping(&e.id);
                ok("delete_geo_mapping", e.id.clone())
            }
        }
    }
}
