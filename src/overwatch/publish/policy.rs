//! From registry to gossip: the `Policy` the gossip listener admits agents
//! by (keys, tokens, known services, pins, revocations). The registry
//! reaches gossip only through this published value.

use super::super::model::normalize_name;
use super::super::registry::Registry;
use crate::config::{Config, Mode};
use crate::gossip::{Keyring, Policy};
use log::warn;
use std::collections::{HashMap, HashSet};

/// The policy after a (re)load: keys, tokens and services from the
/// configuration, pins and revocations from the registry, anything else
/// kept from the policy published before (`old`).
// Every field is set today; the update keeps fields gossip adds to the
// policy (and owns) when the configuration is reloaded.
#[allow(clippy::needless_update)]
pub fn build(config: &Config, reg: &Registry, old: &Policy) -> Policy {
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
        ..old.clone()
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
