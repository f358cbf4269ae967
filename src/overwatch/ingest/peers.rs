//! Replicated operator state on the registry thread (SPEC §12).
//!
//! A local operator write that succeeded is stamped into the shared
//! `Replica` and handed to the `peers` thread to push (`replicate`). A
//! change that won on a peer arrives back here (`on_peer`) and goes
//! through the same registry rules an operator command uses; the audit
//! log records it with the origin node (`from: peer:<node>`) and the
//! operator who made it. Both mark the replica for `state.json`.
//!
//! Managed servers, regions and domains replicate too: a peer's entry is
//! checked like an API write against this node's configuration; one that
//! fails (a domain naming a region this node lacks, ...) leaves this node
//! as it was, is logged, counted and listed in the cluster status
//! (`rejected`), and is tried again whenever the configuration or the
//! managed entries change.

use super::super::managed::{self, Managed, replicated};
use super::super::model::{BackendKey, Override, Revocation};
use super::super::peers::{Entry, Kind, Rejected, Stamp, msg};
use super::super::runtime::{AUDIT_TAIL, Runtime};
use crate::api::command::{ApiError, Command, Entity, ManageOp};
use crate::api::view::AuditEntry;
use crate::clock::Now;
use log::{error, info, warn};

/// The replicated id of an override: `service/address/port`.
pub fn override_id(key: &BackendKey) -> String {
    format!("{}/{}/{}", key.service, key.address, key.port)
}

/// Equal JSON texts (field order aside); both absent is equal.
fn same_json(a: Option<&str>, b: Option<&str>) -> bool {
    let parse = |s: Option<&str>| s.map(|s| serde_json::from_str::<serde_json::Value>(s).ok());
    parse(a) == parse(b)
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
            Command::Manage {
                entity,
                op,
                id,
                body,
            } => {
                let Some((kind, id)) = replicated::key_of(*entity, *op, id.as_deref(), body) else {
                    return;
                };
                let value = replicated::value_of(&self.managed, kind, &id);
                (kind, id, value)
            }
            Command::Validate => return,
        };
        let entry = {
            let mut r = self.lock_replica();
            // A local write supersedes a peer's entry this node refused.
            r.rejected.remove(&(kind, id.clone()));
            r.write(kind, &id, value, by, now.wall_ms)
        };
        self.replica_dirty = true;
        if out.try_send(entry).is_err() {
            warn!("peers: push queue full; the next digest exchange repairs it");
        }
        // A new region may be what a refused domain or server lacked.
        if kind.is_managed() && self.retry_rejected() {
            self.apply_overlay(now);
        }
    }

    fn lock_replica(&self) -> std::sync::MutexGuard<'_, super::super::peers::Replica> {
        self.replica.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses (400) a managed write whose replicated entry would not fit
    /// one peer datagram, before anything changes: it could never reach
    /// the peers.
    pub(in crate::overwatch) fn check_replicable(
        &self,
        entity: Entity,
        op: ManageOp,
        id: Option<&str>,
        body: &serde_json::Value,
        next: &Managed,
    ) -> Result<(), ApiError> {
        if self.peer_out.is_none() {
            return Ok(());
        }
        let Some((kind, id)) = replicated::key_of(entity, op, id, body) else {
            return Ok(());
        };
        let value = replicated::value_of(next, kind, &id);
        let probe = Entry {
            kind,
            id,
            stamp: Stamp {
                wall_ms: u64::MAX,
                logical: u32::MAX,
                node: self.node_id.clone(),
            },
            // Room for a long X-User.
            operator: "o".repeat(64),
            value,
        };
        if msg::fits(&probe, &self.node_id) {
            Ok(())
        } else {
            Err(ApiError::bad_request(format!(
                "{} {:?} is too large to replicate to the peers (at most {} bytes of JSON)",
                entity.as_str(),
                probe.id,
                super::super::peers::lww::MAX_VALUE_LEN
            )))
        }
    }

    /// At start (peers attached): a managed entry of the replica that
    /// managed.json does not match is taken (or refused and listed); an
    /// API entry the replica has never seen (made before replication, or
    /// before peers were listed) is published as a local write.
    pub(in crate::overwatch) fn reconcile_managed(&mut self, now: Now) {
        let held: Vec<Entry> = self
            .lock_replica()
            .entries()
            .filter(|e| e.kind.is_managed())
            .cloned()
            .collect();
        let mut changed = false;
        for e in held {
            let mine = replicated::value_of(&self.managed, e.kind, &e.id);
            if same_json(mine.as_deref(), e.value.as_deref()) {
                continue;
            }
            match self.take_managed(&e) {
                Ok(_) => changed = true,
                Err(reason) => self.reject(&e, &reason, now),
            }
        }
        let unseen: Vec<(Kind, String)> = replicated::keys(&self.managed)
            .into_iter()
            .filter(|(k, id)| self.lock_replica().get(*k, id).is_none())
            .collect();
        for (kind, id) in unseen {
            let value = replicated::value_of(&self.managed, kind, &id);
            let entry = self
                .lock_replica()
                .write(kind, &id, value, "managed.json", now.wall_ms);
            info!("peers: API {} {id} published to the peers", kind.as_str());
            self.replica_dirty = true;
            if let Some(out) = &self.peer_out {
                let _ = out.try_send(entry);
            }
        }
        if changed | self.retry_rejected() {
            self.apply_overlay(now);
        }
        self.persist();
    }

    /// Takes a replicated managed entry into managed.json, or leaves
    /// everything as it was and says why.
    fn take_managed(&mut self, e: &Entry) -> Result<&'static str, String> {
        let mut next = self.managed.clone();
        let action = replicated::apply(&self.base, &mut next, e.kind, &e.id, e.value.as_deref())?;
        let (merged, _) = managed::overlay(&self.base, &next);
        crate::config::revalidate(&merged)?;
        self.store
            .save(managed::STORE_FILE, &next)
            .map_err(|err| format!("could not save managed.json: {err}"))?;
        self.managed = next;
        self.lock_replica().rejected.remove(&(e.kind, e.id.clone()));
        Ok(action)
    }

    /// Tries every refused entry again (after a change that may have
    /// brought what it lacked); true when any was taken.
    pub(in crate::overwatch) fn retry_rejected(&mut self) -> bool {
        let mut any = false;
        loop {
            let pending: Vec<Entry> = {
                let mut r = self.lock_replica();
                // An expired tombstone is nothing to take any more.
                let gone: Vec<(Kind, String)> = r
                    .rejected
                    .keys()
                    .filter(|(k, id)| r.get(*k, id).is_none())
                    .cloned()
                    .collect();
                for key in gone {
                    r.rejected.remove(&key);
                }
                r.rejected
                    .keys()
                    .filter_map(|(k, id)| r.get(*k, id).cloned())
                    .collect()
            };
            let mut progress = false;
            for e in pending {
                if let Ok(action) = self.take_managed(&e) {
                    let now = Now::read();
                    let result = "ok (taken now; it was not applied before)".to_string();
                    self.audit_replicated(&e, action, e.id.clone(), result, now);
                    progress = true;
                }
            }
            any |= progress;
            if !progress {
                return any;
            }
        }
    }

    fn reject(&mut self, e: &Entry, reason: &str, now: Now) {
        warn!(
            "peers: replicated {} {:?} from node {} by {} not applied on this node, which keeps what it had: {reason}",
            e.kind.as_str(),
            e.id,
            e.stamp.node,
            e.operator
        );
        let mut r = self.lock_replica();
        r.rejected_total += 1;
        r.rejected.insert(
            (e.kind, e.id.clone()),
            Rejected {
                kind: e.kind.as_str(),
                id: e.id.clone(),
                origin: e.stamp.node.clone(),
                operator: e.operator.clone(),
                reason: reason.to_string(),
                at: crate::timefmt::rfc3339(now.wall_secs()),
            },
        );
    }

    fn apply_managed(&mut self, e: &Entry, now: Now) -> (&'static str, String, String) {
        match self.take_managed(e) {
            Ok(action) => {
                self.retry_rejected();
                self.apply_overlay(now);
                (action, e.id.clone(), "ok".into())
            }
            Err(reason) => {
                self.reject(e, &reason, now);
                let action = match (e.kind, e.value.is_some()) {
                    (Kind::ManagedServer, true) => "set_server",
                    (Kind::ManagedServer, false) => "delete_server",
                    (Kind::ManagedRegion, true) => "set_region",
                    (Kind::ManagedRegion, false) => "delete_region",
                    (_, true) => "set_domain",
                    (_, false) => "delete_domain",
                };
                (action, e.id.clone(), format!("not applied here: {reason}"))
            }
        }
    }

    /// A change that won the merge on the peers thread: applied like an
    /// operator command, audited with its origin, saved, published.
    pub(in crate::overwatch) fn on_peer(&mut self, e: Entry, now: Now) {
        let (action, target, result) = self.apply_replicated(&e, now);
        self.audit_replicated(&e, action, target, result, now);
        self.replica_dirty = true;
        self.reg.recompute(now);
        self.persist();
        self.publish(now);
    }

    /// Logs and audits a replicated change with its origin and operator.
    fn audit_replicated(
        &mut self,
        e: &Entry,
        action: &str,
        target: String,
        result: String,
        now: Now,
    ) {
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
            (Kind::ManagedRegion | Kind::ManagedServer | Kind::ManagedDomain, _) => {
                self.apply_managed(e, now)
            }
        }
    }
}
