//! What each command does: which request it sends and how the answer is
//! shown. Every command returns its output as a string (the API's JSON with
//! `--json`, a table otherwise), so `run` alone touches stdout and stderr.

use super::args::Invocation;
use super::client::{CliError, Client, encode_segment, query};
use super::render::{cell, key_values, rows, table};
use crate::api::routes::parse_host_port;
use crate::config::duration::parse_duration;
use serde_json::{Value, json};
use std::time::Duration;

pub const DEFAULT_API: &str = "http://localhost:9090";
pub const DEFAULT_AGENT_API: &str = "http://127.0.0.1:9100";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn timeout(inv: &Invocation) -> Result<Duration, CliError> {
    match inv.flag("timeout") {
        None => Ok(DEFAULT_TIMEOUT),
        Some(t) => parse_duration(t)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "--timeout: invalid value {t:?} (seconds, or e.g. 500ms, 10s)"
                ))
            }),
    }
}

fn api(inv: &Invocation) -> Result<Client, CliError> {
    let base = inv
        .flag("api")
        .map(str::to_string)
        .or_else(|| std::env::var("OPENGSLB_API").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| DEFAULT_API.to_string());
    let token = inv.flag("token").map(str::to_string).or_else(|| {
        std::env::var("OPENGSLB_TOKEN")
            .ok()
            .filter(|s| !s.is_empty())
    });
    Client::new(&base, token, timeout(inv)?)
}

fn agent_api(inv: &Invocation) -> Result<Client, CliError> {
    Client::new(
        inv.flag("agent").unwrap_or(DEFAULT_AGENT_API),
        None,
        timeout(inv)?,
    )
}

pub(super) fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// Runs a parsed command and returns what to print.
pub fn execute(inv: &Invocation) -> Result<String, CliError> {
    let json_out = inv.switch("json");
    // `servers` and `agents` with plain --json print the list alone, as
    // v1.1 scripts parse it; --json=object keeps the API's object.
    let list_out = |v: Value, key: &str| -> Value {
        if inv.flag("json") == Some("object") {
            v
        } else {
            v.get(key).cloned().unwrap_or(Value::Array(Vec::new()))
        }
    };
    let out =
        |v: Value, human: &dyn Fn(&Value) -> String| if json_out { pretty(&v) } else { human(&v) };
    let arg = |i: usize| inv.arg(i).unwrap_or("");
    match inv.command.name {
        "servers list" => {
            if let Some(st) = inv.flag("status")
                && crate::api::BackendStatus::parse(st).is_none()
            {
                return Err(CliError::Usage(format!(
                    "--status: invalid value {st:?} (healthy, unhealthy, draining, stale)"
                )));
            }
            let q = query(&[
                ("service", inv.flag("service")),
                ("region", inv.flag("region")),
                ("status", inv.flag("status")),
            ]);
            if inv.switch("cluster") {
                return super::cluster::servers(inv, &api(inv)?, &q, timeout(inv)?);
            }
            let v = api(inv)?.call("GET", &format!("/api/v1/overwatch/backends{q}"), None)?;
            if json_out {
                return Ok(pretty(&list_out(v, "backends")));
            }
            Ok(out(v, &|v| {
                let keys = [
                    "service",
                    "address",
                    "port",
                    "region",
                    "weight",
                    "effective_status",
                    "status_reason",
                    "agent_id",
                ];
                table(
                    &[
                        "SERVICE", "ADDRESS", "PORT", "REGION", "WEIGHT", "STATUS", "REASON",
                        "AGENT",
                    ],
                    &rows(v.get("backends"), &keys),
                )
            }))
        }
        "geo mappings list" | "geo mappings set" | "geo mappings delete" | "geo test" => {
            super::geo::run(inv, &api(inv)?, json_out)
        }
        "servers create" | "servers update" | "servers delete" => {
            super::servers::run(inv, &api(inv)?, json_out)
        }
        "cluster status" => {
            let v = api(inv)?.call("GET", "/api/v1/cluster/status", None)?;
            Ok(out(v, &super::cluster::status_table))
        }
        "status" => Ok(out(
            api(inv)?.call("GET", "/api/v1/overwatch/stats", None)?,
            &key_values,
        )),
        "latency" => {
            let v = api(inv)?.call("GET", "/api/v1/overwatch/latency?limit=1000", None)?;
            Ok(out(v, &|v| {
                let mut r = Vec::new();
                for p in v["prefixes"].as_array().into_iter().flatten() {
                    let regions: Vec<String> = p["regions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|x| {
                            format!("{}={}ms", x["region"].as_str().unwrap_or("-"), x["rtt_ms"])
                        })
                        .collect();
                    r.push(vec![
                        p["prefix"].as_str().unwrap_or("-").to_string(),
                        regions.join(" "),
                    ]);
                }
                table(&["PREFIX", "REGIONS (FASTEST FIRST)"], &r)
            }))
        }
        "agents list" => {
            let v = api(inv)?.call("GET", "/api/v1/overwatch/agents", None)?;
            if json_out {
                return Ok(pretty(&list_out(v, "agents")));
            }
            Ok(out(v, &|v| {
                let mut r = rows(
                    v.get("agents"),
                    &[
                        "id",
                        "region",
                        "status",
                        "address",
                        "backend_count",
                        "last_seen",
                        "cert_not_after",
                        "reject_reason",
                        "last_error",
                    ],
                );
                // One ERROR column: the reject reason, else the last error.
                for row in &mut r {
                    let last = row.pop().unwrap_or_default();
                    if let Some(reject) = row.last_mut()
                        && reject == "-"
                    {
                        *reject = last;
                    }
                }
                table(
                    &[
                        "ID",
                        "REGION",
                        "STATUS",
                        "ADDRESS",
                        "BACKENDS",
                        "LAST_SEEN",
                        "CERT_NOT_AFTER",
                        "ERROR",
                    ],
                    &r,
                )
            }))
        }
        "agents show" => {
            let v = api(inv)?.call(
                "GET",
                &format!("/api/v1/overwatch/agents/{}", encode_segment(arg(0))),
                None,
            )?;
            Ok(out(v, &key_values))
        }
        "agents forget" => {
            let v = api(inv)?.call(
                "DELETE",
                &format!("/api/v1/overwatch/agents/{}", encode_segment(arg(0))),
                None,
            )?;
            Ok(out(v, &|_| {
                format!("forgot the certificate pin of agent {}\n", arg(0))
            }))
        }
        "agents revoke" => {
            let body = json!({"reason": inv.flag("reason").unwrap_or("")});
            let path = format!("/api/v1/overwatch/agents/{}/revoke", encode_segment(arg(0)));
            let v = api(inv)?.call("POST", &path, Some(&body))?;
            Ok(out(v, &|_| format!("revoked agent {}\n", arg(0))))
        }
        "overrides list" => {
            let v = api(inv)?.call("GET", "/api/v1/overrides", None)?;
            Ok(out(v, &|v| {
                let keys = [
                    "service",
                    "address",
                    "port",
                    "healthy",
                    "reason",
                    "by",
                    "at",
                    "expires_at",
                ];
                table(
                    &[
                        "SERVICE", "ADDRESS", "PORT", "HEALTHY", "REASON", "BY", "AT", "EXPIRES",
                    ],
                    &rows(v.get("overrides"), &keys),
                )
            }))
        }
        "overrides set" => {
            let target = override_path(arg(0), arg(1))?;
            let healthy = match inv.flag("healthy") {
                Some("true") => true,
                Some("false") => false,
                other => {
                    return Err(CliError::Usage(format!(
                        "--healthy: expected true or false, got {:?}",
                        other.unwrap_or("")
                    )));
                }
            };
            let mut body = json!({"healthy": healthy, "reason": inv.flag("reason").unwrap_or("")});
            if let Some(e) = inv.flag("expires") {
                parse_duration(e).map_err(|why| CliError::Usage(format!("--expires: {why}")))?;
                body["expires_in"] = json!(e);
            }
            let v = api(inv)?.call("PUT", &target, Some(&body))?;
            let state = if healthy { "healthy" } else { "unhealthy" };
            Ok(out(v, &|_| {
                let until = inv
                    .flag("expires")
                    .map(|e| format!(" for {e}"))
                    .unwrap_or_default();
                format!(
                    "override set: {} {} forced {state}{until}\n",
                    arg(0),
                    arg(1)
                )
            }))
        }
        "overrides clear" => {
            let target = override_path(arg(0), arg(1))?;
            let v = api(inv)?.call("DELETE", &target, None)?;
            Ok(out(v, &|_| {
                format!("override cleared: {} {}\n", arg(0), arg(1))
            }))
        }
        "domains" => {
            let client = api(inv)?;
            if let Some(name) = inv.arg(0) {
                let v = client.call(
                    "GET",
                    &format!("/api/v1/domains/{}", encode_segment(name)),
                    None,
                )?;
                return Ok(out(v, &key_values));
            }
            let v = client.call("GET", "/api/v1/domains", None)?;
            Ok(out(v, &|v| {
                let keys = ["name", "routing_algorithm", "ttl", "answers"];
                table(
                    &["NAME", "ALGORITHM", "TTL", "ANSWERS"],
                    &rows(v.get("domains"), &keys),
                )
            }))
        }
        "healthz" => {
            let v = api(inv)?.call("GET", "/api/v1/healthz", None)?;
            Ok(out(v, &|v| {
                let mut s = format!("status: {}\n", cell(v.get("status")));
                let lost = rows(
                    v.get("lost_agents"),
                    &["agent_id", "env", "ip", "service", "last_heartbeat"],
                );
                if !lost.is_empty() {
                    s.push_str("lost agents:\n");
                    s.push_str(&table(
                        &["AGENT_ID", "ENV", "IP", "SERVICE", "LAST_HEARTBEAT"],
                        &lost,
                    ));
                }
                s
            }))
        }
        "validate" => {
            let v = api(inv)?.call("POST", "/api/v1/overwatch/validate", Some(&json!({})))?;
            Ok(out(v, &|_| "validation requested\n".to_string()))
        }
        "drain" => {
            let client = agent_api(inv)?;
            let v = match arg(0) {
                "on" => {
                    let reason = inv
                        .flag("reason")
                        .unwrap_or("drain requested with opengslb-cli");
                    client.call(
                        "POST",
                        "/api/v1/agent/drain",
                        Some(&json!({"reason": reason})),
                    )?
                }
                "off" => client.call("DELETE", "/api/v1/agent/drain", None)?,
                other => {
                    return Err(CliError::Usage(format!(
                        "drain: expected on or off, got {other:?}"
                    )));
                }
            };
            Ok(out(v, &|_| {
                format!("drain {} on {}\n", arg(0), client.base())
            }))
        }
        "agent status" => Ok(out(
            agent_api(inv)?.call("GET", "/api/v1/agent/status", None)?,
            &key_values,
        )),
        "config validate" => config_validate(inv.flag("config").unwrap_or(""), json_out),
        "config migrate" => config_migrate(arg(0), json_out),
        "gen-key" => {
            let key = gen_key()?;
            Ok(if json_out {
                pretty(&json!({"key": key}))
            } else {
                format!("{key}\n")
            })
        }
        "dnssec keygen" => super::dnssec::keygen(inv, json_out),
        "dnssec ds" => super::dnssec::ds(inv, json_out),
        "dnssec rollover" => super::dnssec_rollover::rollover(inv, json_out),
        "dnssec status" => Ok(out(
            api(inv)?.call("GET", "/api/v1/dnssec", None)?,
            &super::dnssec::render_status,
        )),
        "completion" => super::completion::script(arg(0)).ok_or_else(|| {
            CliError::Usage(format!(
                "completion: unknown shell {:?} (bash, zsh or fish)",
                arg(0)
            ))
        }),
        other => Err(CliError::Failure(format!(
            "command {other} has no implementation"
        ))),
    }
}

fn override_path(service: &str, host_port: &str) -> Result<String, CliError> {
    // A bare IP (v1.1's form) is sent as is: the Overwatch picks the one
    // port that address has for the service, or says which to choose.
    if crate::api::routes::bare_ip(host_port).is_none() {
        parse_host_port(host_port).map_err(|e| {
            CliError::Usage(format!(
                "{e}; a bare IPv4 or [IPv6] address also works when it has one port"
            ))
        })?;
    }
    if service.is_empty() {
        return Err(CliError::Usage("SERVICE must not be empty".into()));
    }
    Ok(format!(
        "/api/v1/overrides/{}/{}",
        encode_segment(service),
        encode_segment(host_port)
    ))
}

/// 32 random bytes from the OS, in base64: a gossip `encryption_key`.
pub fn gen_key() -> Result<String, CliError> {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut key = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| CliError::Failure("the system random generator failed".into()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(key))
}

/// `config migrate FILE` (see `migrate.rs`): the migrated text, or with
/// `--json` `{file, valid, changes, tokens, warnings, errors, text}`. A
/// result that still does not load is printed and exits with the config
/// code.
fn config_migrate(path: &str, json_out: bool) -> Result<String, CliError> {
    let m = super::migrate::migrate(std::path::Path::new(path), &mut || {
        // Agent tokens: 32 random bytes, like a gossip key.
        gen_key()
    })?;
    let printed = if json_out {
        pretty(&json!({
            "file": path,
            "valid": m.errors.is_empty(),
            "changes": m.changes,
            "tokens": m.tokens,
            "warnings": m.warnings,
            "errors": m.errors,
            "text": m.text,
        }))
    } else {
        m.text.clone()
    };
    if m.errors.is_empty() {
        return Ok(printed);
    }
    print!("{printed}");
    Err(CliError::Config(format!(
        "{path}: the migrated file still has {} error(s), listed at its top",
        m.errors.len()
    )))
}

/// Loads the file exactly as the daemon would (`config::load`) and reports
/// every error at once.
fn config_validate(path: &str, json_out: bool) -> Result<String, CliError> {
    let result = crate::config::load(std::path::Path::new(path), None);
    match (result, json_out) {
        (Ok(_), false) => Ok(format!("{path}: configuration is valid\n")),
        (Ok(l), true) => Ok(pretty(
            &json!({"file": path, "valid": true, "errors": [], "warnings": l.warnings}),
        )),
        (Err(e), false) => Err(CliError::Config(e.to_string())),
        (Err(e), true) => {
            let errors: Vec<String> = e.to_string().lines().map(str::to_string).collect();
            // Print the JSON report, and still exit with the config code.
            print!(
                "{}",
                pretty(&json!({"file": path, "valid": false, "errors": errors}))
            );
            Err(CliError::Config(format!(
                "{path}: {} error(s)",
                errors.len()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_32_random_bytes() {
        use base64::Engine;
        let a = gen_key().expect("key");
        let b = gen_key().expect("key");
        assert_ne!(a, b);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&a)
            .expect("base64");
        assert_eq!(raw.len(), 32);
    }

    #[test]
    fn override_paths_encode_ipv6() {
        assert_eq!(
            override_path("app", "[::1]:80").expect("ok"),
            "/api/v1/overrides/app/%5B::1%5D:80"
        );
        assert_eq!(
            override_path("app", "10.0.0.1").expect("v1.1 form"),
            "/api/v1/overrides/app/10.0.0.1"
        );
        assert!(matches!(
            override_path("app", "10.0.0.300"),
            Err(CliError::Usage(_))
        ));
        assert!(matches!(
            override_path("app", "::1:80"),
            Err(CliError::Usage(_))
        ));
    }
}
