//! A WasmPlugin object's `spec` as every world reads it: the component's bytes (inline
//! `component.base64` or a `component.path` on the reading process's machine) and the call
//! limits (`memoryLimitBytes`, `timeoutMillis`, else the host's defaults).

use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use crate::Limits;

/// The component bytes; the error says which field is wrong.
pub async fn component_bytes(spec: &Value) -> Result<Vec<u8>, String> {
    match (
        spec.pointer("/component/base64").and_then(Value::as_str),
        spec.pointer("/component/path").and_then(Value::as_str),
    ) {
        (Some(b64), _) => base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| format!("spec.component.base64 is not base64: {e}")),
        (None, Some(path)) => tokio::fs::read(path)
            .await
            .map_err(|e| format!("reading {path}: {e}")),
        (None, None) => Err("spec.component needs base64 or path".into()),
    }
}

/// `memoryLimitBytes` and `timeoutMillis`, else the host's defaults.
pub fn limits(spec: &Value) -> Limits {
    let defaults = Limits::default();
    Limits {
        memory_bytes: spec
            .get("memoryLimitBytes")
            .and_then(Value::as_u64)
            .map_or(defaults.memory_bytes, |b| b as usize),
        timeout: spec
            .get("timeoutMillis")
            .and_then(Value::as_u64)
            .map_or(defaults.timeout, Duration::from_millis),
        fuel: None,
    }
}
