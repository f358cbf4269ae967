//! The write side of the API contract: commands the API sends to the
//! registry thread, which is the only writer of state.
//!
//! Each request carries who asked (`by`: the `X-User` header or the name of
//! the `api.tokens` entry used) and from where (`from`: the client address),
//! so the registry can append the audit entry when it applies the write. The
//! registry answers on the reply channel with the JSON to return, or an
//! `ApiError`; the API gives up after `REPLY_TIMEOUT` and answers 503.

use super::view::AuditEntry;
use crossbeam_channel::Sender;
use serde_json::{Value, json};
use std::fmt;
use std::time::Duration;

/// How long the API waits for the registry to answer a command.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A write the registry applies.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    SetOverride {
        service: String,
        address: String,
        port: u16,
        healthy: bool,
        reason: String,
        /// `None`: until cleared.
        expires_in: Option<Duration>,
    },
    ClearOverride {
        service: String,
        address: String,
        port: u16,
    },
    /// Forget the certificate pin (and the lost entry) of an agent.
    ForgetAgent {
        id: String,
    },
    RevokeAgent {
        id: String,
        reason: String,
    },
    /// Run validation of every backend now.
    Validate,
    /// Create, update or delete a server, region or domain managed
    /// through the API (`overwatch::managed`). `id` names the entry for
    /// update and delete; `body` is the JSON the client sent (checked by
    /// the registry thread, which knows the regions).
    Manage {
        entity: Entity,
        op: ManageOp,
        id: Option<String>,
        body: Value,
    },
    /// Add or replace a geolocation mapping (cidr canonical, checked by
    /// the API; the region is checked by the registry thread).
    SetGeoMapping {
        cidr: String,
        region: String,
        comment: String,
    },
    DeleteGeoMapping {
        cidr: String,
    },
}

/// What a `Command::Manage` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entity {
    Server,
    Region,
    Domain,
}

impl Entity {
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Server => "server",
            Entity::Region => "region",
            Entity::Domain => "domain",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManageOp {
    Create,
    Update,
    Delete,
}

impl Command {
    /// The audit `action` name.
    pub fn action(&self) -> &'static str {
        match self {
            Command::SetOverride { .. } => "set_override",
            Command::ClearOverride { .. } => "clear_override",
            Command::ForgetAgent { .. } => "forget_agent",
            Command::RevokeAgent { .. } => "revoke_agent",
            Command::Validate => "validate",
            Command::SetGeoMapping { .. } => "set_geo_mapping",
            Command::DeleteGeoMapping { .. } => "delete_geo_mapping",
            Command::Manage { entity, op, .. } => match (op, entity) {
                (ManageOp::Create, Entity::Server) => "create_server",
                (ManageOp::Update, Entity::Server) => "update_server",
                (ManageOp::Delete, Entity::Server) => "delete_server",
                (ManageOp::Create, Entity::Region) => "create_region",
                (ManageOp::Update, Entity::Region) => "update_region",
                (ManageOp::Delete, Entity::Region) => "delete_region",
                (ManageOp::Create, Entity::Domain) => "create_domain",
                (ManageOp::Update, Entity::Domain) => "update_domain",
                (ManageOp::Delete, Entity::Domain) => "delete_domain",
            },
        }
    }

    /// The audit `target`.
    pub fn target(&self) -> String {
        match self {
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
            } => format!("{service}/{}", host_port(address, *port)),
            Command::ForgetAgent { id } | Command::RevokeAgent { id, .. } => id.clone(),
            Command::Validate => "all".into(),
            Command::SetGeoMapping { cidr, .. } | Command::DeleteGeoMapping { cidr } => {
                cidr.clone()
            }
            Command::Manage { id: Some(id), .. } => id.clone(),
            Command::Manage { body, .. } => {
                let field = |f: &str| body.get(f).and_then(Value::as_str).map(str::to_string);
                match (field("address"), body.get("port").and_then(Value::as_u64)) {
                    (Some(a), Some(p)) => host_port(&a, p as u16),
                    _ => field("name").unwrap_or_default(),
                }
            }
        }
    }
}

/// `1.2.3.4:80`, `[::1]:80`
pub fn host_port(address: &str, port: u16) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

/// An error the API returns as `{"error": "...", "code": N}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(code: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, message)
    }
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(409, message)
    }
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(503, message)
    }

    pub fn to_json(&self) -> Value {
        json!({"error": self.message, "code": self.code})
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for ApiError {}

/// The registry's answer to one command.
pub type Reply = Result<Value, ApiError>;

/// One command with its author and reply channel.
#[derive(Debug)]
pub struct CommandRequest {
    pub command: Command,
    /// `X-User`, else the token name, else `anonymous`.
    pub by: String,
    /// The client address (after `X-Forwarded-For` when trusted).
    pub from: String,
    pub reply: Sender<Reply>,
}

impl CommandRequest {
    /// The audit entry for this write, once the registry has applied it
    /// (or refused it): who, from where, what, when, and the outcome.
    pub fn audit_entry(&self, at: u64, result: &Reply) -> AuditEntry {
        let detail = match &self.command {
            Command::SetOverride {
                healthy,
                reason,
                expires_in,
                ..
            } => {
                let state = if *healthy { "healthy" } else { "unhealthy" };
                let until = expires_in
                    .map(|d| format!(", expires in {}", crate::config::Dur(d)))
                    .unwrap_or_default();
                Some(format!("{state}: {reason}{until}"))
            }
            Command::RevokeAgent { reason, .. } => Some(reason.clone()),
            _ => None,
        };
        AuditEntry {
            at,
            by: self.by.clone(),
            from: self.from.clone(),
            action: self.command.action().into(),
            target: self.command.target(),
            detail,
            result: match result {
                Ok(_) => "ok".into(),
                Err(e) => e.to_string(),
            },
        }
    }
}

/// What the API holds to reach the registry.
pub type CommandSender = Sender<CommandRequest>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_entries_say_who_what_when() {
        let (reply, _rx) = crossbeam_channel::bounded(1);
        let req = CommandRequest {
            command: Command::SetOverride {
                service: "app".into(),
                address: "2001:db8::1".into(),
                port: 443,
                healthy: false,
                reason: "maint".into(),
                expires_in: Some(Duration::from_secs(3600)),
            },
            by: "alice".into(),
            from: "127.0.0.1".into(),
            reply,
        };
        let e = req.audit_entry(10, &Ok(Value::Null));
        assert_eq!(e.action, "set_override");
        assert_eq!(e.target, "app/[2001:db8::1]:443");
        assert_eq!(e.detail.as_deref(), Some("unhealthy: maint, expires in 1h"));
        assert_eq!(
            (e.by.as_str(), e.from.as_str(), e.at, e.result.as_str()),
            ("alice", "127.0.0.1", 10, "ok")
        );
        let refused = req.audit_entry(11, &Err(ApiError::not_found("no backend")));
        assert_eq!(refused.result, "no backend (404)");
    }
}
