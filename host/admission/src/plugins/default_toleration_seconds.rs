//! DefaultTolerationSeconds: every Pod tolerates the `node.kubernetes.io/not-ready` and
//! `node.kubernetes.io/unreachable` NoExecute taints for 300 seconds unless it already tolerates
//! them (a toleration with that key, or an empty key, and effect NoExecute or empty).

use serde_json::{json, Value};

use crate::{Api, Attributes, Denied, Operation, Plugin};

/// The taint a node gets when it is not ready.
const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint a node gets when the node controller cannot reach it.
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Kubernetes' default (`--default-not-ready-toleration-seconds`, `--default-unreachable-…`).
const SECONDS: i64 = 300;

/// The DefaultTolerationSeconds plugin.
pub(crate) struct DefaultTolerationSeconds;

fn tolerates(tolerations: &[Value], key: &str) -> bool {
    tolerations.iter().any(|t| {
        let k = t.get("key").and_then(Value::as_str).unwrap_or_default();
        let effect = t.get("effect").and_then(Value::as_str).unwrap_or_default();
        (k == key || k.is_empty()) && (effect == "NoExecute" || effect.is_empty())
    })
}

#[async_trait::async_trait]
impl Plugin for DefaultTolerationSeconds {
    fn name(&self) -> &str {
        "DefaultTolerationSeconds"
    }

    async fn admit(&self, a: &mut Attributes, _api: &dyn Api) -> Result<(), Denied> {
        if !matches!(a.operation, Operation::Create | Operation::Update) || !a.is("", "Pod") {
            return Ok(());
        }
        let Some(spec) = a
            .object
            .as_mut()
            .and_then(|p| p.get_mut("spec"))
            .and_then(Value::as_object_mut)
        else {
            return Ok(());
        };
        let existing = spec
            .get("tolerations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut add = Vec::new();
        for key in [NOT_READY, UNREACHABLE] {
            if !tolerates(&existing, key) {
                add.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": SECONDS}));
            }
        }
        if !add.is_empty() {
            let mut all = existing;
            all.extend(add);
            spec.insert("tolerations".into(), Value::Array(all));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::fake_api::FakeApi;
    use crate::plugins::testing::attrs;

    fn nr() -> Value {
        json!({"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
    }
    fn un() -> Value {
        json!({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
    }

    #[tokio::test]
    async fn table() {
        let own_nr = json!({"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60});
        let other =
            json!({"key": "foo", "operator": "Equal", "value": "bar", "effect": "NoSchedule"});
        let cases: Vec<(&str, Value, Value)> = vec![
            ("none", Value::Null, json!([nr(), un()])),
            (
                "unrelated kept",
                json!([other.clone()]),
                json!([other.clone(), nr(), un()]),
            ),
            (
                "own not-ready kept",
                json!([own_nr.clone()]),
                json!([own_nr.clone(), un()]),
            ),
            (
                "empty key tolerates all",
                json!([{"operator": "Exists"}]),
                json!([{"operator": "Exists"}]),
            ),
            (
                "empty key NoSchedule does not",
                json!([{"operator": "Exists", "effect": "NoSchedule"}]),
                json!([{"operator": "Exists", "effect": "NoSchedule"}, nr(), un()]),
            ),
            (
                "key with any effect",
                json!([{"key": UNREACHABLE, "operator": "Exists"}]),
                json!([{"key": UNREACHABLE, "operator": "Exists"}, nr()]),
            ),
            ("both present", json!([nr(), un()]), json!([nr(), un()])),
        ];
        for (name, tolerations, want) in cases {
            let mut spec = json!({"containers": []});
            if !tolerations.is_null() {
                spec["tolerations"] = tolerations;
            }
            let pod = json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec});
            let mut a = attrs(Operation::Create, "Pod", "ns", Some(pod), None);
            DefaultTolerationSeconds
                .admit(&mut a, &FakeApi::new())
                .await
                .unwrap();
            assert_eq!(a.object.unwrap()["spec"]["tolerations"], want, "{name}");
        }
    }

    #[tokio::test]
    async fn other_kinds_untouched() {
        let obj = json!({"metadata": {"name": "d", "namespace": "ns"}, "spec": {}});
        let mut a = attrs(
            Operation::Create,
            "Deployment",
            "ns",
            Some(obj.clone()),
            None,
        );
        DefaultTolerationSeconds
            .admit(&mut a, &FakeApi::new())
            .await
            .unwrap();
        assert_eq!(a.object, Some(obj));
    }
}
