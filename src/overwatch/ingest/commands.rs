//! Operator commands from the API, applied by the registry thread: set
//! and clear overrides, forget and revoke agents, run validation now.
//! Every write is appended to the audit log with who, from where, what and
//! the result, and the new state is published before the reply so a read
//! after the write sees it.

use super::super::model::{BackendKey, Override, Revocation};
use super::super::runtime::{AUDIT_TAIL, Runtime};
use crate::api::command::{ApiError, Command, CommandRequest};
use crate::api::view::AuditEntry;
use crate::clock::Now;
use log::error;
use serde_json::json;

impl Runtime {
    pub(in crate::overwatch) fn on_api(&mut self, req: CommandRequest, now: Now) {
        let at = now.wall_secs();
        let detail = detail(&req.command);
        let result = self.apply(&req.command, &req.by, now);
        if result.is_ok() {
            self.replicate(&req.command, &req.by, now);
        }
        let entry = AuditEntry {
            at,
            by: req.by.clone(),
            from: req.from.clone(),
            action: req.command.action().to_string(),
            target: req.command.target(),
            detail,
            result: match &result {
                Ok(_) => "ok".into(),
                Err(e) => e.message.clone(),
            },
        };
        if let Err(e) = self.audit.append(&entry) {
            error!("could not append to the audit log: {e}");
        }
        self.audit_tail.push(entry);
        if self.audit_tail.len() > AUDIT_TAIL {
            let cut = self.audit_tail.len() - AUDIT_TAIL;
            self.audit_tail.drain(..cut);
        }
        // Saved, then published, then answered: a read after the write
        // sees it, and nothing visible is lost to a crash.
        self.reg.recompute(now);
        self.persist();
        self.publish(now);
        let _ = req.reply.send(result);
    }

    fn apply(&mut self, cmd: &Command, by: &str, now: Now) -> Result<serde_json::Value, ApiError> {
        let at = now.wall_secs();
        match cmd {
            Command::SetOverride {
                service,
                address,
                port,
                healthy,
                reason,
                expires_in,
            } => {
                let key = self.backend_key(service, address, *port)?;
                let expires_at = expires_in.map(|d| at.saturating_add(d.as_secs().max(1)));
                self.reg.set_override(
                    Override {
                        key,
                        healthy: *healthy,
                        reason: reason.clone(),
                        by: by.to_string(),
                        at,
                        expires_at,
                    },
                    now,
                );
                Ok(
                    json!({"status": "ok", "service": service, "address": address, "port": port,
                          "healthy": healthy, "expires_at": expires_at.map(crate::timefmt::rfc3339)}),
                )
            }
            Command::ClearOverride {
                service,
                address,
                port,
            } => {
                let key = self.backend_key(service, address, *port)?;
                if self.reg.clear_override(&key) {
                    Ok(json!({"status": "ok", "cleared": true}))
                } else {
                    Err(ApiError::not_found(format!(
                        "no override on {service} {address}:{port}"
                    )))
                }
            }
            Command::ForgetAgent { id } => {
                if self.forget_now(id) {
                    Ok(json!({"status": "ok", "forgotten": id}))
                } else {
                    Err(ApiError::not_found(format!(
                        "no pin or lost entry for agent {id}"
                    )))
                }
            }
            Command::RevokeAgent { id, reason } => {
                self.reg.revoke_agent(Revocation {
                    agent_id: id.clone(),
                    reason: reason.clone(),
                    by: by.to_string(),
                    at,
                });
                self.publish_policy_now();
                Ok(json!({"status": "ok", "revoked": id}))
            }
            Command::Validate => {
                self.checker.check_now();
                Ok(json!({"status": "ok", "targets": self.plans.len()}))
            }
            Command::SetGeoMapping {
                cidr,
                region,
                comment,
            } => {
                if !self
                    .reg
                    .cfg()
                    .config
                    .regions
                    .iter()
                    .any(|r| &r.name == region)
                {
                    return Err(ApiError::bad_request(format!(
                        "region: unknown region {region:?}"
                    )));
                }
                self.reg.set_geo_mapping(crate::config::GeoMapping {
                    cidr: cidr.clone(),
                    region: region.clone(),
                    comment: comment.clone(),
                });
                Ok(json!({"status": "ok", "cidr": cidr, "region": region, "comment": comment}))
            }
            Command::DeleteGeoMapping { cidr } => {
                if self.reg.delete_geo_mapping(cidr) {
                    Ok(json!({"status": "ok", "deleted": cidr}))
                } else {
                    Err(ApiError::not_found(format!(
                        "no API geo mapping for {cidr}"
                    )))
                }
            }
            Command::Manage {
                entity,
                op,
                id,
                body,
            } => self.manage(*entity, *op, id.as_deref(), body, now),
        }
    }

    /// Forgets an agent's pin and drops its gossip session; false when
    /// there was nothing to forget.
    pub(in crate::overwatch) fn forget_now(&mut self, id: &str) -> bool {
        if !self.reg.forget_agent(id) {
            return false;
        }
        self.publish_policy_now();
        // Gossip drops the agent's session through the policy snapshot
        // alone: a new number for the id is a forget.
        let mut policy = (*self.out.policy.load()).clone();
        *policy.forgotten.entry(id.to_string()).or_insert(0) += 1;
        self.out.policy.publish(policy);
        true
    }

    /// Overrides may name a backend that is configured or reported; a key
    /// for an unknown service is refused so typos do not pile up.
    fn backend_key(&self, service: &str, address: &str, port: u16) -> Result<BackendKey, ApiError> {
        let ip = address
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid address {address:?}")))?;
        let key = BackendKey::new(service, ip, port);
        if !self.reg.cfg().services.contains(&key.service) {
            return Err(ApiError::not_found(format!("unknown service {service:?}")));
        }
        Ok(key)
    }
}

fn detail(cmd: &Command) -> Option<String> {
    match cmd {
        Command::SetOverride {
            healthy,
            reason,
            expires_in,
            ..
        } => Some(format!(
            "healthy={healthy} reason={reason:?}{}",
            expires_in
                .map(|d| format!(" expires_in={}s", d.as_secs()))
                .unwrap_or_default()
        )),
        Command::RevokeAgent { reason, .. } => Some(format!("reason={reason:?}")),
        Command::SetGeoMapping {
            region, comment, ..
        } => Some(format!("region={region:?} comment={comment:?}")),
        _ => None,
    }
}
