//! The CLI's HTTP client (ureq) and its error type, which decides the exit
//! code: the API could not be reached, or it answered with an error.

use crate::exit;
use serde_json::Value;
use std::fmt;
use std::time::Duration;

/// Why a command failed; each maps to one exit code.
#[derive(Debug)]
pub enum CliError {
    Usage(String),
    Unreachable(String),
    Refused(String),
    Config(String),
    Failure(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => exit::USAGE,
            CliError::Unreachable(_) => exit::UNREACHABLE,
            CliError::Refused(_) | CliError::Failure(_) => exit::FAILURE,
            CliError::Config(_) => exit::CONFIG,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m)
            | CliError::Unreachable(m)
            | CliError::Refused(m)
            | CliError::Config(m)
            | CliError::Failure(m) => f.write_str(m),
        }
    }
}

/// A base URL plus the shared agent, token and timeout.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

/// Percent-encodes one path segment (keeps unreserved characters and `:`).
pub fn encode_segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Builds `?k=v&…` from the pairs whose value is present.
pub fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", encode_segment(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

impl Client {
    pub fn new(base: &str, token: Option<String>, timeout: Duration) -> Result<Client, CliError> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError::Usage(format!(
                "invalid URL {base:?}: expected http://HOST:PORT or https://HOST:PORT"
            )));
        }
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            // The API is an internal endpoint; never route it via a proxy.
            .proxy(None)
            .user_agent(format!("opengslb-cli/{}", crate::VERSION))
            .build();
        Ok(Client {
            agent: config.into(),
            base,
            token,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request and returns the JSON answer of a 2xx response.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, CliError> {
        let url = format!("{}{path}", self.base);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let user = std::env::var("USER").ok().filter(|u| !u.is_empty());
        let text = body.map(Value::to_string).unwrap_or_default();
        macro_rules! with_headers {
            ($req:expr) => {{
                let mut req = $req.header("Accept", "application/json");
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                if let Some(u) = &user {
                    req = req.header("X-User", u);
                }
                req
            }};
        }
        let result = match method {
            "GET" => with_headers!(self.agent.get(&url)).call(),
            "DELETE" => with_headers!(self.agent.delete(&url)).call(),
            "POST" => with_headers!(self.agent.post(&url))
                .header("Content-Type", "application/json")
                .send(text.as_bytes()),
            "PUT" => with_headers!(self.agent.put(&url))
                .header("Content-Type", "application/json")
                .send(text.as_bytes()),
            other => return Err(CliError::Failure(format!("unsupported method {other}"))),
        };
        let mut response = result
            .map_err(|e| CliError::Unreachable(format!("cannot reach {}: {e}", self.base)))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| CliError::Unreachable(format!("reading the answer of {url}: {e}")))?;
        let json: Option<Value> = serde_json::from_str(&text).ok();
        if (200..300).contains(&status) {
            return Ok(json.unwrap_or(Value::String(text)));
        }
        let message = json
            .as_ref()
            .and_then(|j| j.get("error"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| text.lines().next().unwrap_or("").to_string());
        Err(CliError::Refused(format!(
            "{method} {path}: {message} (HTTP {status})"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_queries() {
        assert_eq!(encode_segment("[::1]:80"), "%5B::1%5D:80");
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
        assert_eq!(
            query(&[("status", Some("stale")), ("service", None)]),
            "?status=stale"
        );
        assert_eq!(query(&[("service", None)]), "");
    }

    #[test]
    fn urls_must_be_http() {
        assert!(matches!(
            Client::new("localhost:9090", None, Duration::from_secs(1)),
            Err(CliError::Usage(_))
        ));
        assert!(Client::new("http://localhost:9090/", None, Duration::from_secs(1)).is_ok());
    }
}
