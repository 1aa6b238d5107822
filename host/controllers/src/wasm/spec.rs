//! The controller part of a WasmPlugin's spec (`spec.controller`): the kinds it watches, the
//! ServiceAccount its actions are made as, and its resync period. The component and limits
//! are read by [`keelson_plugin_host::spec`], like every world's.

use std::time::Duration;

use keelson_plugin_host::controller::GroupVersionKind;
use serde_json::Value;

/// Resync period when `resyncSeconds` is absent (client-go's informers use minutes too).
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(300);

/// One watched kind, optionally limited to one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    /// The kind.
    pub kind: GroupVersionKind,
    /// Only this namespace; `None` for all.
    pub namespace: Option<String>,
}

/// `spec.controller`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerSpec {
    /// Kinds watched (at least one).
    pub watches: Vec<Watch>,
    /// Namespace of the ServiceAccount (default `default`).
    pub service_account_namespace: String,
    /// Name of the ServiceAccount.
    pub service_account_name: String,
    /// Every object is reconciled again this often; `None` never.
    pub resync: Option<Duration>,
}

impl ControllerSpec {
    /// Reads `spec.controller` of a WasmPlugin's `spec`; the error names the bad field.
    pub fn parse(spec: &Value) -> Result<Self, String> {
        let c = spec
            .get("controller")
            .ok_or("spec.controller is required for type controller")?;
        let watches = c
            .get("watches")
            .and_then(Value::as_array)
            .filter(|w| !w.is_empty())
            .ok_or("spec.controller.watches needs at least one kind")?
            .iter()
            .enumerate()
            .map(|(i, w)| watch(w).map_err(|e| format!("spec.controller.watches[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let str_of = |k: &str| c.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        let service_account_name = str_of("serviceAccountName")
            .ok_or("spec.controller.serviceAccountName is required")?
            .to_string();
        let service_account_namespace = str_of("serviceAccountNamespace")
            .unwrap_or("default")
            .to_string();
        let resync = match c.get("resyncSeconds").map(Value::as_u64) {
            None => Some(DEFAULT_RESYNC),
            Some(Some(0)) => None,
            Some(Some(s)) => Some(Duration::from_secs(s)),
            Some(None) => {
                return Err("spec.controller.resyncSeconds must be a whole number ≥ 0".into())
            }
        };
        Ok(ControllerSpec {
            watches,
            service_account_namespace,
            service_account_name,
            resync,
        })
    }
}

fn watch(w: &Value) -> Result<Watch, String> {
    let api_version = w
        .get("apiVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("apiVersion is required")?;
    let kind = w
        .get("kind")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("kind is required")?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    if version.is_empty() || version.contains('/') {
        return Err(format!(
            "apiVersion {api_version:?} is not group/version or v1"
        ));
    }
    Ok(Watch {
        kind: GroupVersionKind {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        },
        namespace: w
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_refuses() {
        let spec = json!({"controller": {
            "watches": [{"apiVersion": "v1", "kind": "Namespace"}, {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "web"}],
            "serviceAccountName": "ns-defaults", "resyncSeconds": 0}});
        let c = ControllerSpec::parse(&spec).unwrap();
        assert_eq!(c.watches[1].kind.group, "apps");
        assert_eq!(c.watches[1].namespace.as_deref(), Some("web"));
        assert_eq!(c.service_account_namespace, "default");
        assert_eq!(c.resync, None);
        let bad = [
            json!({}),
            json!({"controller": {"watches": [], "serviceAccountName": "a"}}),
            json!({"controller": {"watches": [{"kind": "Pod"}], "serviceAccountName": "a"}}),
            json!({"controller": {"watches": [{"apiVersion": "v1", "kind": "Pod"}]}}),
            json!({"controller": {"watches": [{"apiVersion": "a/b/c", "kind": "Pod"}], "serviceAccountName": "a"}}),
        ];
        for b in bad {
            assert!(ControllerSpec::parse(&b).is_err(), "{b}");
        }
    }
}
