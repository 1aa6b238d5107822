//! PodNodeSelector (opt-in): a namespace annotated `scheduler.alpha.kubernetes.io/node-selector:
//! "k=v,k2=v2"` gives every new Pod in it those node-selector labels (the pod's own values win
//! when they agree); a pod whose nodeSelector contradicts the namespace's is refused with
//! `pod node label selector conflicts with its namespace node label selector`. Kubernetes' plugin
//! configuration file (cluster default selector, per-namespace whitelists) is not supported: a
//! namespace without the annotation adds nothing.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::{Api, Attributes, Denied, Operation, Plugin};

/// The namespace annotation holding the selector.
pub(crate) const ANNOTATION: &str = "scheduler.alpha.kubernetes.io/node-selector";

/// The PodNodeSelector plugin.
pub(crate) struct PodNodeSelector;

/// Parses `k=v,k2=v2` as Kubernetes' `ConvertSelectorToLabelsMap` does.
pub(crate) fn parse_selector(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    if s.trim().is_empty() {
        return Ok(out);
    }
    for label in s.split(',') {
        let parts: Vec<&str> = label.split('=').collect();
        if parts.len() != 2 {
            return Err(format!("invalid selector: [{}]", parts.join(" ")));
        }
        let (k, v) = (parts[0].trim(), parts[1].trim());
        if k.is_empty() {
            return Err(format!("invalid selector: [{}]", parts.join(" ")));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

fn relevant(a: &Attributes) -> bool {
    a.operation == Operation::Create && a.is("", "Pod") && a.object.is_some()
}

/// The namespace's selector, `None` when it has no annotation (or does not exist).
async fn namespace_selector(
    a: &Attributes,
    api: &dyn Api,
) -> Result<Option<BTreeMap<String, String>>, Denied> {
    let internal = |message: String| Denied {
        code: 500,
        reason: crate::Reason::InternalError,
        message,
    };
    let ns = api
        .get(&format!("/api/v1/namespaces/{}", a.namespace))
        .await
        .map_err(|e| internal(e.0))?;
    let Some(sel) = ns
        .as_ref()
        .and_then(|ns| ns.pointer("/metadata/annotations"))
        .and_then(|m| m.get(ANNOTATION))
        .and_then(Value::as_str)
    else {
        return Ok(None);
    };
    parse_selector(sel).map(Some).map_err(internal)
}

fn pod_selector(pod: &Value) -> Map<String, Value> {
    pod.pointer("/spec/nodeSelector")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn conflicts(ns: &BTreeMap<String, String>, pod: &Map<String, Value>) -> bool {
    ns.iter()
        .any(|(k, v)| pod.get(k).and_then(Value::as_str).is_some_and(|pv| pv != v))
}

fn conflict(a: &Attributes) -> Denied {
    Denied::forbidden(
        a,
        "pod node label selector conflicts with its namespace node label selector",
    )
}

#[async_trait::async_trait]
impl Plugin for PodNodeSelector {
    fn name(&self) -> &str {
        "PodNodeSelector"
    }

    async fn admit(&self, a: &mut Attributes, api: &dyn Api) -> Result<(), Denied> {
        if !relevant(a) {
            return Ok(());
        }
        let Some(ns) = namespace_selector(a, api).await? else {
            return Ok(());
        };
        let pod = a.object.as_ref().expect("checked");
        let own = pod_selector(pod);
        if conflicts(&ns, &own) {
            return Err(conflict(a));
        }
        if ns.is_empty() {
            return Ok(());
        }
        // Keys sorted, as Kubernetes serializes the merged map.
        let mut merged: BTreeMap<String, Value> =
            ns.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
        merged.extend(own);
        let merged: Map<String, Value> = merged.into_iter().collect();
        if let Some(spec) = a
            .object
            .as_mut()
            .and_then(|p| p.get_mut("spec"))
            .and_then(Value::as_object_mut)
        {
            spec.insert("nodeSelector".into(), Value::Object(merged));
        }
        Ok(())
    }

    async fn validate(&self, a: &Attributes, api: &dyn Api) -> Result<(), Denied> {
        if !relevant(a) {
            return Ok(());
        }
        let Some(ns) = namespace_selector(a, api).await? else {
            return Ok(());
        };
        if conflicts(&ns, &pod_selector(a.object.as_ref().expect("checked"))) {
            return Err(conflict(a));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plugins::fake_api::FakeApi;
    use crate::plugins::testing::attrs;

    #[test]
    fn parses_selectors() {
        assert_eq!(parse_selector("").unwrap(), BTreeMap::new());
        let m = parse_selector("env=prod, tier = web").unwrap();
        assert_eq!(m.get("env").map(String::as_str), Some("prod"));
        assert_eq!(m.get("tier").map(String::as_str), Some("web"));
        assert!(parse_selector("a=b=c").is_err());
        assert!(parse_selector("novalue").is_err());
    }

    #[allow(clippy::type_complexity)] // a test table
    #[tokio::test]
    async fn table() {
        let cases: Vec<(&str, Option<&str>, Value, Result<Value, &str>)> = vec![
            ("no annotation", None, json!({"disk": "ssd"}), Ok(json!({"disk": "ssd"}))),
            ("merged", Some("env=prod"), json!({"disk": "ssd"}), Ok(json!({"env": "prod", "disk": "ssd"}))),
            ("pod without selector", Some("env=prod,zone=a"), Value::Null, Ok(json!({"env": "prod", "zone": "a"}))),
            ("same value", Some("env=prod"), json!({"env": "prod"}), Ok(json!({"env": "prod"}))),
            ("empty annotation", Some(""), json!({"disk": "ssd"}), Ok(json!({"disk": "ssd"}))),
            (
                "conflict",
                Some("env=prod"),
                json!({"env": "dev"}),
                Err("pods \"p\" is forbidden: pod node label selector conflicts with its namespace node label selector"),
            ),
        ];
        for (name, ann, selector, want) in cases {
            let api = FakeApi::new();
            let mut ns = json!({"metadata": {"name": "ns"}});
            if let Some(s) = ann {
                ns["metadata"]["annotations"] = json!({ANNOTATION: s});
            }
            api.put("/api/v1/namespaces/ns", ns);
            let mut spec = json!({"containers": []});
            if !selector.is_null() {
                spec["nodeSelector"] = selector;
            }
            let mut a = attrs(
                Operation::Create,
                "Pod",
                "ns",
                Some(json!({"metadata": {"name": "p"}, "spec": spec})),
                None,
            );
            let got = PodNodeSelector.admit(&mut a, &api).await;
            match want {
                Ok(sel) => {
                    assert_eq!(got, Ok(()), "{name}");
                    assert_eq!(PodNodeSelector.validate(&a, &api).await, Ok(()), "{name}");
                    let obj = a.object.unwrap();
                    assert_eq!(
                        obj["spec"]
                            .get("nodeSelector")
                            .cloned()
                            .unwrap_or(Value::Null),
                        sel,
                        "{name}"
                    );
                }
                Err(msg) => {
                    let d = got.expect_err(name);
                    assert_eq!((d.code, d.message.as_str()), (403, msg), "{name}");
                    assert_eq!(
                        PodNodeSelector
                            .validate(&a, &api)
                            .await
                            .expect_err(name)
                            .message,
                        msg,
                        "{name}"
                    );
                }
            }
        }
    }
}
