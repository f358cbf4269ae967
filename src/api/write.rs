//! The write endpoints' bodies: JSON in, a `Command` out, with 400 errors
//! that quote serde's description of what is wrong.

use super::command::{ApiError, Command};
use super::routes::{BackendKey, Route};
use super::view::OverwatchView;
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
    /// v1.1 scripts send a free-form `source` ("cli", a tool's name).
    /// Accepted so they keep working; who set an override is recorded
    /// from the token name and `X-User` (docs/migrating-from-v1.md).
    #[serde(default, rename = "source")]
    _source: Option<String>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GeoMappingBody {
    cidr: String,
    region: String,
    #[serde(default)]
    comment: String,
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

/// Fills in the port of an override addressed by IP alone (port 0, the
/// v1.1 form) when the service has exactly one backend at that address;
/// otherwise 404 (none) or 400 naming the ports to choose from.
pub fn resolve_port(route: &Route, view: &OverwatchView) -> Result<Route, ApiError> {
    let (key, set) = match route {
        Route::SetOverride(k) if k.port == 0 => (k, true),
        Route::ClearOverride(k) if k.port == 0 => (k, false),
        other => return Ok(other.clone()),
    };
    let service = crate::backend::normalize_name(&key.service);
    let mut ports: Vec<u16> = view
        .backends
        .iter()
        .filter(|b| b.service == service && b.address == key.address)
        .map(|b| b.port)
        .collect();
    if !set {
        // Clearing also finds an override whose backend is gone.
        ports.extend(
            view.overrides
                .iter()
                .filter(|o| o.service == service && o.address == key.address)
                .map(|o| o.port),
        );
    }
    ports.sort_unstable();
    ports.dedup();
    let port = match ports.as_slice() {
        [one] => *one,
        [] => {
            return Err(ApiError::not_found(format!(
                "no backend of {} at {}",
                key.service, key.address
            )));
        }
        many => {
            let list: Vec<String> = many.iter().map(u16::to_string).collect();
            return Err(ApiError::bad_request(format!(
                "{} has several ports for {} ({}); give ADDRESS:PORT",
                key.address,
                key.service,
                list.join(", ")
            )));
        }
    };
    let key = BackendKey {
        port,
        ..key.clone()
    };
    Ok(if set {
        Route::SetOverride(key)
    } else {
        Route::ClearOverride(key)
    })
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
        Route::SetGeoMapping => {
            let b: GeoMappingBody = parse_json(body)?;
            let cidr =
                super::routes::canonical_cidr(b.cidr.trim()).map_err(ApiError::bad_request)?;
            Ok(Command::SetGeoMapping {
                cidr,
                region: required("region", b.region)?,
                comment: b.comment,
            })
        }
        Route::DeleteGeoMapping(cidr) => Ok(Command::DeleteGeoMapping { cidr: cidr.clone() }),
        Route::Manage(entity, op, id) => {
            let body = if *op == super::command::ManageOp::Delete {
                serde_json::Value::Null
            } else {
                parse_json(body)?
            };
            Ok(Command::Manage {
                entity: *entity,
                op: *op,
                id: id.clone(),
                body,
            })
        }
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
    fn geo_mapping_bodies() {
        let ok = br#"{"cidr": "198.51.100.7/24", "region": "eu"}"#;
        assert_eq!(
            command(&Route::SetGeoMapping, ok).unwrap(),
            Command::SetGeoMapping {
                cidr: "198.51.100.0/24".into(),
                region: "eu".into(),
                comment: String::new(),
            }
        );
        for (bad, field) in [
            (&br#"{"cidr": "nope", "region": "eu"}"#[..], "cidr"),
            (br#"{"cidr": "10.0.0.0/8", "region": " "}"#, "region"),
            (br#"{"cidr": "10.0.0.0/8"}"#, "region"),
            (br#"{"cidr": "10.0.0.0/8", "region": "eu", "x": 1}"#, "x"),
        ] {
            let e = command(&Route::SetGeoMapping, bad).unwrap_err();
            assert_eq!(e.code, 400);
            assert!(e.message.contains(field), "{}", e.message);
        }
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

    #[test]
    fn v11_source_field_is_accepted() {
        let c = command(
            &key(),
            br#"{"healthy": false, "reason": "maint", "source": "cli"}"#,
        );
        assert!(c.is_ok(), "{c:?}");
        assert!(command(&key(), br#"{"healthy": false, "reason": "m", "sauce": 1}"#).is_err());
    }

    #[test]
    fn bare_address_resolves_when_unambiguous() {
        use crate::api::view::{BackendView, OverrideView};
        let b = |service: &str, port| BackendView {
            service: service.into(),
            address: "10.0.0.1".into(),
            port,
            ..Default::default()
        };
        let view = OverwatchView {
            backends: vec![
                b("app", 80).into(),
                b("web", 80).into(),
                b("web", 8080).into(),
            ],
            overrides: vec![OverrideView {
                service: "gone".into(),
                address: "10.0.0.1".into(),
                port: 81,
                ..Default::default()
            }],
            ..Default::default()
        };
        let bare = |service: &str, set: bool| {
            let k = BackendKey {
                service: service.into(),
                address: "10.0.0.1".into(),
                port: 0,
            };
            if set {
                Route::SetOverride(k)
            } else {
                Route::ClearOverride(k)
            }
        };
        match resolve_port(&bare("APP.", true), &view) {
            Ok(Route::SetOverride(k)) => assert_eq!(k.port, 80),
            other => panic!("{other:?}"),
        }
        let e = resolve_port(&bare("web", true), &view).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(e.message.contains("80, 8080"), "{}", e.message);
        assert_eq!(
            resolve_port(&bare("nope", true), &view).unwrap_err().code,
            404
        );
        // Clearing finds the override of a backend that left.
        match resolve_port(&bare("gone", false), &view) {
            Ok(Route::ClearOverride(k)) => assert_eq!(k.port, 81),
            other => panic!("{other:?}"),
        }
        // A route with a port is left alone.
        assert_eq!(resolve_port(&key(), &view), Ok(key()));
    }
}
