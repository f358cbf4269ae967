//! From registry to gossip: the `Policy` the gossip listener admits agents
//! by (keys, tokens, known services, pins, revocations). The registry
//! reaches gossip only through this published value.

use super::super::model::normalize_name;
use super::super::registry::Registry;
use crate::config::{Config, Mode};
use crate::gossip::{Keyring, Policy};
use log::warn;
use std::collections::{HashMap, HashSet};

/// The whole policy after a (re)load; pins and revocations from the registry.
pub fn build(config: &Config, reg: &Registry) -> Policy {
    let keyring = match config.resolved_secrets(Mode::Overwatch) {
        Ok(secrets) => Keyring::from_raw(&secrets.gossip_keys),
        Err(e) => {
            warn!("gossip keys: {e}");
            Keyring::default()
        }
    };
    Policy {
        keyring,
        agent_tokens: config
            .overwatch
            .agent_tokens
            .iter()
            .map(|(k, v)| (normalize_name(k), v.clone()))
            .collect(),
        known_services: reg.cfg().services.iter().cloned().collect(),
        pins: pins(reg),
        revoked: revoked(reg),
    }
}

/// `old` with the registry's current pins and revocations, or `None` when
/// they are unchanged (nothing to publish).
pub fn with_trust(reg: &Registry, old: &Policy) -> Option<Policy> {
    let pins = pins(reg);
    let revoked = revoked(reg);
    if pins == old.pins && revoked == old.revoked {
        return None;
    }
    let mut policy = old.clone();
    policy.pins = pins;
    policy.revoked = revoked;
    Some(policy)
}

fn pins(reg: &Registry) -> HashMap<String, String> {
    reg.pins()
        .values()
        .map(|p| (p.agent_id.clone(), p.fingerprint.clone()))
        .collect()
}

fn revoked(reg: &Registry) -> HashSet<String> {
    reg.revocations().keys().cloned().collect()
}
