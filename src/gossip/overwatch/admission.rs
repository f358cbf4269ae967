//! Admission: the checks a registration (and every later state message)
//! must pass before anything reaches the registry, each failing with the
//! reason the agent is told and the registry lists.
//!
//! This is also where a reported backend becomes the process's one model,
//! `crate::backend::BackendReport`: the service name is normalised and the
//! address parsed here, once; a report whose address does not parse is
//! refused (`invalid_backend`) with the offending text in the detail, not
//! acknowledged and then dropped.

use crate::backend::{BackendKey, BackendReport};
use crate::gossip::cert;
use crate::gossip::identity::{register_message, rotation_message, verify};
use crate::gossip::wire::{Register, WireBackend, WireKey};
use crate::gossip::{Policy, RejectReason, ct_eq, fingerprint};
use std::net::IpAddr;

/// Why admission refused: the reason code and the detail the agent is told.
pub(super) type Refusal = (RejectReason, String);

pub(super) struct RegisterOk {
    pub fingerprint: String,
    pub not_after: u64,
    pub pinned_new: bool,
    pub rotated: bool,
    /// The registration's backends, admitted.
    pub backends: Vec<BackendReport>,
}

/// Every check of a registration, in the documented order: the proof of
/// possession first, so that apart from `cert_invalid` no rejection (and
/// no registry event) can be provoked without the certificate's key. `cached_pin`
/// is a pin learned since the policy was published.
pub(super) fn check_register(
    r: &Register,
    session: u64,
    now_wall_ms: u64,
    policy: &Policy,
    cached_pin: Option<&String>,
) -> Result<RegisterOk, Refusal> {
    let info = cert::parse(&r.cert_der).map_err(|e| (RejectReason::CertInvalid, e.to_string()))?;
    let fp = fingerprint(&r.cert_der);
    let msg = register_message(
        &r.challenge,
        &r.agent_id,
        session,
        &r.region,
        &fp,
        &r.agent_dh,
    );
    if !verify(&info.public_key, &msg, &r.signature) {
        return Err((
            RejectReason::CertInvalid,
            "proof of possession does not verify".into(),
        ));
    }
    // Everything below is said to someone who holds the certificate's key.
    // Certificate validity is wall-clock time by nature.
    if info.not_after <= now_wall_ms / 1000 {
        let when = crate::timefmt::rfc3339(info.not_after);
        return Err((
            RejectReason::CertExpired,
            format!("certificate expired at {when}"),
        ));
    }
    if policy.revoked.contains(&r.agent_id) {
        return Err((
            RejectReason::Revoked,
            format!("agent id {} is revoked", r.agent_id),
        ));
    }
    let backends = check_backends(policy, &r.token, &r.backends)?;
    let pinned = cached_pin.or_else(|| policy.pins.get(&r.agent_id));
    let (pinned_new, rotated) = match pinned {
        None => (true, false),
        Some(p) if *p == fp => (false, false),
        Some(p) => {
            if !rotation_ok(r, p, &fp) {
                return Err((
                    RejectReason::PinMismatch,
                    format!("agent id {} is pinned to another certificate", r.agent_id),
                ));
            }
            (false, true)
        }
    };
    Ok(RegisterOk {
        fingerprint: fp,
        not_after: info.not_after,
        pinned_new,
        rotated,
        backends,
    })
}

/// The old (pinned) certificate signed the new fingerprint.
fn rotation_ok(r: &Register, pinned: &str, new_fp: &str) -> bool {
    let Some((old_der, sig)) = &r.rotation else {
        return false;
    };
    if fingerprint(old_der) != pinned {
        return false;
    }
    match cert::parse(old_der) {
        Ok(old) => verify(&old.public_key, &rotation_message(&r.agent_id, new_fp), sig),
        Err(_) => false,
    }
}

/// Every backend must name a configured service whose token the agent
/// holds and an address that parses; an agent with no backends must still
/// hold some valid token. Returns the backends in the one model.
pub(super) fn check_backends(
    policy: &Policy,
    token: &str,
    backends: &[WireBackend],
) -> Result<Vec<BackendReport>, Refusal> {
    if backends.is_empty() {
        if policy
            .agent_tokens
            .values()
            .any(|t| ct_eq(t.as_bytes(), token.as_bytes()))
        {
            return Ok(Vec::new());
        }
        return Err((
            RejectReason::TokenInvalid,
            "token matches no service".into(),
        ));
    }
    let mut out = Vec::with_capacity(backends.len());
    for b in backends {
        let key = parse_key(&b.key)?;
        if !policy.known_services.contains(&key.service) {
            return Err((
                RejectReason::UnknownService,
                format!("service {:?} is not a configured domain", b.key.service),
            ));
        }
        match policy.agent_tokens.get(&key.service) {
            Some(t) if ct_eq(t.as_bytes(), token.as_bytes()) => {}
            _ => {
                return Err((
                    RejectReason::TokenInvalid,
                    format!("token is not valid for service {:?}", b.key.service),
                ));
            }
        }
        out.push(BackendReport {
            key,
            weight: b.weight,
            healthy: b.healthy,
            draining: b.draining,
            drain_reason: b.drain_reason.clone(),
            last_error: b.last_error.clone(),
        });
    }
    Ok(out)
}

/// A key as it came off the wire, in the one model: the service name
/// normalised, the address parsed (an IPv6 address may come in brackets).
pub(super) fn parse_key(k: &WireKey) -> Result<BackendKey, Refusal> {
    let text = k.address.trim();
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    let address: IpAddr = bare.parse().map_err(|_| {
        (
            RejectReason::InvalidBackend,
            format!(
                "backend {:?} port {}: address {:?} is not an IP address",
                k.service, k.port, k.address
            ),
        )
    })?;
    Ok(BackendKey::new(&k.service, address, k.port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn b(service: &str) -> WireBackend {
        WireBackend {
            key: WireKey {
                service: service.into(),
                address: "10.0.0.1".into(),
                port: 80,
            },
            weight: 1,
            healthy: true,
            draining: false,
            drain_reason: None,
            last_error: None,
        }
    }

    #[test]
    fn tokens_are_checked_per_service() {
        let policy = Policy {
            agent_tokens: BTreeMap::from([
                ("a.example".to_string(), "ta".to_string()),
                ("b.example".to_string(), "tb".to_string()),
            ]),
            known_services: BTreeSet::from(["a.example".to_string(), "b.example".to_string()]),
            ..Policy::default()
        };
        let reason = |token: &str, list: &[WireBackend]| {
            check_backends(&policy, token, list).err().map(|e| e.0)
        };
        assert_eq!(reason("ta", &[b("a.example")]), None);
        assert_eq!(
            reason("ta", &[b("a.example"), b("b.example")]),
            Some(RejectReason::TokenInvalid)
        );
        assert_eq!(
            reason("tb", &[b("c.example")]),
            Some(RejectReason::UnknownService)
        );
        assert_eq!(reason("tb", &[]), None);
        assert_eq!(reason("tc", &[]), Some(RejectReason::TokenInvalid));
        assert_eq!(
            reason("", &[b("a.example")]),
            Some(RejectReason::TokenInvalid)
        );
    }

    #[test]
    fn addresses_are_parsed_and_names_normalised_at_admission() {
        let policy = Policy {
            agent_tokens: BTreeMap::from([("a.example".to_string(), "ta".to_string())]),
            known_services: BTreeSet::from(["a.example".to_string()]),
            ..Policy::default()
        };
        let mut v6 = b("A.Example.");
        v6.key.address = "[2001:db8::1]".into();
        let ok = check_backends(&policy, "ta", &[b("a.example"), v6]).expect("admitted");
        assert_eq!(ok[1].key.service, "a.example");
        assert_eq!(
            ok[1].key.address,
            "2001:db8::1".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(ok[0].key.to_string(), "a.example 10.0.0.1:80");
        let mut bad = b("a.example");
        bad.key.address = "app-1.internal".into();
        let (reason, detail) =
            check_backends(&policy, "ta", &[b("a.example"), bad]).expect_err("refused");
        assert_eq!(reason, RejectReason::InvalidBackend);
        assert!(detail.contains("\"app-1.internal\""), "{detail}");
    }
}
