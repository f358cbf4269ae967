//! The API's own contract: docs/openapi.yaml, compiled into the binary and
//! served as JSON at `GET /api/v1/openapi.json`. The YAML is converted once,
//! on first request; a unit test proves it converts, so the error arm is
//! only reachable from a broken build.

use super::command::ApiError;
use serde_json::Value;
use std::sync::OnceLock;

/// docs/openapi.yaml as written.
pub const YAML: &str = include_str!("../../docs/openapi.yaml");

/// The document as JSON, converted on first use.
pub fn document() -> Result<&'static Value, ApiError> {
    static DOC: OnceLock<Result<Value, String>> = OnceLock::new();
    DOC.get_or_init(|| parse(YAML))
        .as_ref()
        .map_err(|e| ApiError::new(500, format!("docs/openapi.yaml: {e}")))
}

/// YAML text to a JSON value (every mapping key must be a string).
pub fn parse(yaml: &str) -> Result<Value, String> {
    serde_norway::from_str::<Value>(yaml).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_document_converts() {
        let doc = document().expect("docs/openapi.yaml converts to JSON");
        assert!(
            doc["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1"))
        );
        assert!(doc["paths"]["/api/v1/openapi.json"].is_object());
    }
}
