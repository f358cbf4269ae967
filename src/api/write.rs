//! The write endpoints' bodies: JSON in, a `Command` out, with 400 errors
//! that quote serde's description of what is wrong.

use super::command::{ApiError, Command};
use super::routes::{BackendKey, Route};
use crate::config::duration::parse_duration;
use serde::Deserialize;
use std::time::Duration;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideBody {
    healthy: bool,
    reason: String,
    #[serde(default)]
    expires_in: Option<Expiry>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Expiry {
    Seconds(u64),
    /// JSON Schema counts `90.0` as an integer, so generated clients send it.
    Whole(f64),
    Text(String),
}

impl Expiry {
    /// The expiry; `None` for never (absent or 0). Huge values saturate:
    /// the override then never expires in practice.
    fn duration(self) -> Result<Option<Duration>, ApiError> {
        let d = match self {
            Expiry::Seconds(s) => Duration::from_secs(s),
            // `as` saturates, so 1e300 is u64::MAX seconds.
            Expiry::Whole(f) if f >= 0.0 && f.fract() == 0.0 => Duration::from_secs(f as u64),
            Expiry::Whole(f) => {
                return Err(ApiError::bad_request(format!(
                    "expires_in: {f} is not a whole number of seconds"
                )));
            }
            Expiry::Text(t) => {
                parse_duration(&t).map_err(|e| ApiError::bad_request(format!("expires_in: {e}")))?
            }
        };
        Ok(Some(d).filter(|d| !d.is_zero()))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    reason: String,
}

fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("a JSON body is required"));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn required(field: &str, value: String) -> Result<String, ApiError> {
    let value = value.trim().to_string();
    if value.is_empty() {
        return Err(ApiError::bad_request(format!("{field} must not be empty")));
    }
    Ok(value)
}

/// Builds the command of a write route from its body.
pub fn command(route: &Route, body: &[u8]) -> Result<Command, ApiError> {
    match route {
        Route::SetOverride(BackendKey {
            service,
            address,
            port,
        }) => {
            let b: OverrideBody = parse_json(body)?;
            let expires_in = match b.expires_in {
                None => None,
                Some(e) => e.duration()?,
            };
            Ok(Command::SetOverride {
                service: service.clone(),
                address: address.clone(),
                port: *port,
                healthy: b.healthy,
                reason: required("reason", b.reason)?,
                expires_in,
            })
        }
        Route::ClearOverride(BackendKey {
            service,
            address,
            port,
        }) => Ok(Command::ClearOverride {
            service: service.clone(),
            address: address.clone(),
            port: *port,
        }),
        Route::ForgetAgent(id) => Ok(Command::ForgetAgent { id: id.clone() }),
        Route::RevokeAgent(id) => {
            let b: RevokeBody = parse_json(body)?;
            Ok(Command::RevokeAgent {
                id: id.clone(),
                reason: required("reason", b.reason)?,
            })
        }
        Route::Validate => Ok(Command::Validate),
        _ => Err(ApiError::new(500, "route is not a write")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Route {
        Route::SetOverride(BackendKey {
            service: "app".into(),
            address: "::1".into(),
            port: 80,
        })
    }

    #[test]
    fn override_bodies() {
        let c = command(
            &key(),
            br#"{"healthy": false, "reason": "maint", "expires_in": "1h"}"#,
        )
        .expect("ok");
        assert_eq!(
            c,
            Command::SetOverride {
                service: "app".into(),
                address: "::1".into(),
                port: 80,
                healthy: false,
                reason: "maint".into(),
                expires_in: Some(Duration::from_secs(3600)),
            }
        );
        let c = command(
            &key(),
            br#"{"healthy": true, "reason": "x", "expires_in": 90}"#,
        )
        .expect("ok");
        assert!(matches!(c, Command::SetOverride { expires_in: Some(d), .. } if d.as_secs() == 90));
        let c = command(
            &key(),
            br#"{"healthy": true, "reason": "x", "expires_in": 90.0}"#,
        )
        .expect("ok");
        assert!(matches!(c, Command::SetOverride { expires_in: Some(d), .. } if d.as_secs() == 90));
        let c = command(
            &key(),
            br#"{"healthy": true, "reason": "x", "expires_in": 1e300}"#,
        )
        .expect("huge is accepted");
        assert!(
            matches!(c, Command::SetOverride { expires_in: Some(d), .. } if d.as_secs() == u64::MAX)
        );
        for bad in ["90.5", "-1", "\"1y\""] {
            let body = format!(r#"{{"healthy": true, "reason": "x", "expires_in": {bad}}}"#);
            let err = command(&key(), body.as_bytes()).expect_err(bad);
            assert!(err.message.contains("expires_in"), "{bad}: {}", err.message);
        }
        let c = command(&key(), br#"{"healthy": true, "reason": "x"}"#).expect("ok");
        assert!(matches!(
            c,
            Command::SetOverride {
                expires_in: None,
                ..
            }
        ));
    }

    #[test]
    fn bad_bodies_name_the_problem() {
        let cases: [(&[u8], &str); 6] = [
            (b"", "required"),
            (b"{", "invalid JSON"),
            (br#"{"healthy": "yes", "reason": "x"}"#, "invalid type"),
            (br#"{"reason": "x"}"#, "healthy"),
            (br#"{"healthy": true, "reason": "x", "extra": 1}"#, "extra"),
            (
                br#"{"healthy": true, "reason": "x", "expires_in": "1y"}"#,
                "expires_in",
            ),
        ];
        for (body, want) in cases {
            let err = command(&key(), body).expect_err("must fail");
            assert_eq!(err.code, 400);
            assert!(err.message.contains(want), "{} lacks {want}", err.message);
        }
        let err =
            command(&key(), br#"{"healthy": true, "reason": "  "}"#).expect_err("empty reason");
        assert!(err.message.contains("reason"));
    }

    #[test]
    fn revoke_needs_reason() {
        let r = Route::RevokeAgent("a".into());
        assert_eq!(
            command(&r, br#"{"reason": "stolen"}"#),
            Ok(Command::RevokeAgent {
                id: "a".into(),
                reason: "stolen".into()
            })
        );
        assert!(command(&r, b"{}").is_err());
    }
}
