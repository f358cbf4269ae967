//! Secrets after `*_file` variants are read: the gossip keyring (primary
//! key first, then the older keys still accepted) and the agent's service
//! token. Secret files are refused when every user can read them, like the
//! configuration itself, and their content is trimmed.

use super::load::check_permissions;
use super::schema::{Config, Mode};
use super::values::decode_key;
use std::path::Path;

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// Primary key first (used to encrypt), then accepted older keys.
    /// Empty only for an overwatch without a gossip key.
    pub gossip_keys: Vec<[u8; 32]>,
    /// Agent mode: the service token presented at registration.
    pub service_token: Option<String>,
    /// Overwatch with `overwatch.dnssec.enabled`: the zones' signing keys.
    pub dnssec: Option<std::sync::Arc<crate::dns::keystore::KeyRing>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field(
                "gossip_keys",
                &format_args!("[{} keys]", self.gossip_keys.len()),
            )
            .field(
                "service_token",
                &self.service_token.as_ref().map(|_| "<set>"),
            )
            .finish()
    }
}

impl Config {
    /// Reads the secret files again and decodes the keys; the loader has
    /// already checked all of this, so an error here means a file changed.
    pub fn resolved_secrets(&self, mode: Mode) -> Result<Secrets, String> {
        let (secrets, errors) = resolve(self, mode);
        match errors.into_iter().next() {
            None => Ok(secrets),
            Some((key, msg)) => Err(format!("{key}: {msg}")),
        }
    }
}

fn read_secret(path: &str) -> Result<String, String> {
    let p = Path::new(path);
    check_permissions(p).map_err(|e| format!("{path}: {e}"))?;
    let text = std::fs::read_to_string(p).map_err(|e| format!("cannot read {path}: {e}"))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("{path} is empty"));
    }
    Ok(text.to_string())
}

/// Returns the secrets and (key path, message) for each problem.
pub fn resolve(cfg: &Config, mode: Mode) -> (Secrets, Vec<(String, String)>) {
    let mut errors = Vec::new();
    let mut secrets = Secrets::default();
    let (prefix, key, key_file, keys) = match (mode, &cfg.agent) {
        (Mode::Agent, Some(agent)) => (
            "agent.gossip",
            &agent.gossip.encryption_key,
            &agent.gossip.encryption_key_file,
            &agent.gossip.encryption_keys,
        ),
        (Mode::Agent, None) => return (secrets, errors),
        (Mode::Overwatch, _) => (
            "overwatch.gossip",
            &cfg.overwatch.gossip.encryption_key,
            &cfg.overwatch.gossip.encryption_key_file,
            &cfg.overwatch.gossip.encryption_keys,
        ),
    };
    let primary = match (key, key_file) {
        (Some(k), _) => Some(decode_key(k).map_err(|e| (format!("{prefix}.encryption_key"), e))),
        (None, Some(file)) => Some(
            read_secret(file)
                .and_then(|k| decode_key(&k).map_err(|e| format!("{file}: {e}")))
                .map_err(|e| (format!("{prefix}.encryption_key_file"), e)),
        ),
        (None, None) => None,
    };
    match primary {
        Some(Ok(k)) => secrets.gossip_keys.push(k),
        Some(Err(e)) => errors.push(e),
        None => {}
    }
    for (i, k) in keys.iter().enumerate() {
        match decode_key(k) {
            Ok(k) => secrets.gossip_keys.push(k),
            Err(e) => errors.push((format!("{prefix}.encryption_keys[{i}]"), e)),
        }
    }
    if mode == Mode::Overwatch {
        match crate::dns::keystore::load(cfg) {
            Ok(ring) => secrets.dnssec = ring.map(std::sync::Arc::new),
            Err(e) => errors.extend(e),
        }
    }
    if let (Mode::Agent, Some(agent)) = (mode, &cfg.agent) {
        let id = &agent.identity;
        secrets.service_token = match (&id.service_token, &id.service_token_file) {
            (Some(t), _) => Some(t.trim().to_string()),
            (None, Some(file)) => match read_secret(file) {
                Ok(t) => Some(t),
                Err(e) => {
                    errors.push(("agent.identity.service_token_file".into(), e));
                    None
                }
            },
            (None, None) => None,
        };
    }
    (secrets, errors)
}
