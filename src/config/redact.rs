//! The effective configuration as JSON with every secret replaced, for
//! `GET /api/v1/config` (v1.1 served it): defaults filled in, host names
//! resolved, implicit zones added — what the daemon runs on.
//!
//! Redacted: gossip keys (`encryption_key`, `encryption_keys`), agent
//! tokens (`overwatch.agent_tokens`, `agent.identity.service_token`) and
//! API tokens (`api.tokens`). Map keys (service and token names) stay, so
//! an operator can see which services have a token; `*_file` paths stay.

use super::schema::Config;
use serde_json::Value;

pub const REDACTED: &str = "<redacted>";

/// `cfg` as JSON, secrets replaced by [`REDACTED`].
pub fn redacted_json(cfg: &Config) -> Value {
    let mut v = serde_json::to_value(cfg).unwrap_or(Value::Null);
    redact(&mut v, "");
    v
}

fn redact(v: &mut Value, key: &str) {
    match key {
        "encryption_key" | "service_token" => {
            if !v.is_null() {
                *v = Value::String(REDACTED.into());
            }
            return;
        }
        "encryption_keys" => {
            if let Value::Array(items) = v {
                for item in items {
                    *item = Value::String(REDACTED.into());
                }
            }
            return;
        }
        "agent_tokens" | "tokens" => {
            if let Value::Object(map) = v {
                for value in map.values_mut() {
                    *value = Value::String(REDACTED.into());
                }
            }
            return;
        }
        _ => {}
    }
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                redact(child, k);
            }
        }
        Value::Array(items) => {
            for item in items {
                redact(item, "");
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_replaced_and_the_rest_kept() {
        let text = "overwatch:\n  agent_tokens: {www.example.com: t0k3n}\n  gossip:\n    encryption_key: S3CR3T\n    encryption_keys: [OLD]\napi:\n  tokens: {ops: ap1}\nregions:\n  - name: a\n    servers:\n      - address: 10.0.0.1\n        health_check: {}\ndomains:\n  - name: www.example.com\n    regions: [a]\n";
        let text = text.replace("        health_check: {}\n", "");
        let cfg: Config = serde_norway::from_str(&text).expect("config");
        let v = redacted_json(&cfg);
        let s = v.to_string();
        for secret in ["t0k3n", "S3CR3T", "OLD", "ap1"] {
            assert!(!s.contains(secret), "{secret} leaked: {s}");
        }
        assert_eq!(v["overwatch"]["agent_tokens"]["www.example.com"], REDACTED);
        assert_eq!(v["api"]["tokens"]["ops"], REDACTED);
        assert_eq!(v["regions"][0]["servers"][0]["port"], 80);
        assert_eq!(v["dns"]["tcp_idle_timeout"], "10s");
        assert!(v["overwatch"]["gossip"]["encryption_key_file"].is_null());
    }
}
