//! AlwaysPullImages (opt-in): every container of a new Pod, and of an updated Pod whose update
//! brings an image it did not use before, gets `imagePullPolicy: Always`, so a node pulls (and
//! so authenticates for) the image each time instead of reusing one another tenant pulled. The
//! validating phase refuses such pods with any other policy, in Kubernetes' words:
//! `spec.containers[0].imagePullPolicy: Unsupported value: "IfNotPresent": supported values:
//! "Always"`.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::{Api, Attributes, Denied, Operation, Plugin};

/// The AlwaysPullImages plugin.
pub(crate) struct AlwaysPullImages;

/// The container lists in the order Kubernetes visits them.
const LISTS: [&str; 3] = ["initContainers", "containers", "ephemeralContainers"];

fn images(pod: &Value) -> impl Iterator<Item = &str> {
    LISTS
        .iter()
        .flat_map(move |f| pod["spec"][*f].as_array().into_iter().flatten())
        .map(|c| c["image"].as_str().unwrap_or_default())
}

fn applies(a: &Attributes) -> bool {
    if !a.is("", "Pod") || !matches!(a.operation, Operation::Create | Operation::Update) {
        return false;
    }
    let Some(pod) = a.object.as_ref() else {
        return false;
    };
    if a.operation == Operation::Update {
        // An update that brings no new image is left alone.
        let old: HashSet<&str> = a
            .old_object
            .as_ref()
            .map(|o| images(o).collect())
            .unwrap_or_default();
        return images(pod).any(|i| !old.contains(i));
    }
    true
}

#[async_trait::async_trait]
impl Plugin for AlwaysPullImages {
    fn name(&self) -> &str {
        "AlwaysPullImages"
    }

    async fn admit(&self, a: &mut Attributes, _api: &dyn Api) -> Result<(), Denied> {
        if !applies(a) {
            return Ok(());
        }
        let Some(spec) = a.object.as_mut().and_then(|p| p.get_mut("spec")) else {
            return Ok(());
        };
        for field in LISTS {
            for c in spec
                .get_mut(field)
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(c) = c.as_object_mut() {
                    c.insert("imagePullPolicy".into(), json!("Always"));
                }
            }
        }
        Ok(())
    }

    async fn validate(&self, a: &Attributes, _api: &dyn Api) -> Result<(), Denied> {
        if !applies(a) {
            return Ok(());
        }
        let pod = a.object.as_ref().expect("checked");
        let mut errs = Vec::new();
        for field in LISTS {
            for (i, c) in pod["spec"][field]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let policy = c["imagePullPolicy"].as_str().unwrap_or_default();
                if policy != "Always" {
                    errs.push(
                        Denied::forbidden(a, format!("spec.{field}[{i}].imagePullPolicy: Unsupported value: \"{policy}\": supported values: \"Always\"")).message,
                    );
                }
            }
        }
        match errs.len() {
            0 => Ok(()),
            1 => Err(Denied {
                code: 403,
                reason: crate::Reason::Forbidden,
                message: errs.remove(0),
            }),
            // Kubernetes aggregates one Forbidden error per container.
            _ => Err(Denied {
                code: 403,
                reason: crate::Reason::Forbidden,
                message: format!("[{}]", errs.join(", ")),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::fake_api::FakeApi;
    use crate::plugins::testing::attrs;

    fn pod(containers: Value, init: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": containers, "initContainers": init}})
    }

    fn policies(pod: &Value) -> Vec<Value> {
        LISTS
            .iter()
            .flat_map(|f| pod["spec"][*f].as_array().cloned().unwrap_or_default())
            .map(|c| c["imagePullPolicy"].clone())
            .collect()
    }

    #[allow(clippy::type_complexity)] // a test table
    #[tokio::test]
    async fn table() {
        let api = FakeApi::new();
        let c = |image: &str, policy: Option<&str>| {
            let mut c = json!({"name": "c", "image": image});
            if let Some(p) = policy {
                c["imagePullPolicy"] = json!(p);
            }
            c
        };
        // (name, op, new pod, old pod, expected policies after admit)
        let cases: Vec<(&str, Operation, Value, Option<Value>, Vec<Value>)> = vec![
            (
                "create sets Always everywhere",
                Operation::Create,
                pod(
                    json!([c("nginx", Some("IfNotPresent")), c("redis", None)]),
                    json!([c("busybox", Some("Never"))]),
                ),
                None,
                vec![json!("Always"); 3],
            ),
            (
                "update with a new image",
                Operation::Update,
                pod(json!([c("nginx:2", Some("IfNotPresent"))]), json!([])),
                Some(pod(json!([c("nginx:1", Some("IfNotPresent"))]), json!([]))),
                vec![json!("Always")],
            ),
            (
                "update without new images is left alone",
                Operation::Update,
                pod(json!([c("nginx", Some("IfNotPresent"))]), json!([])),
                Some(pod(json!([c("nginx", Some("IfNotPresent"))]), json!([]))),
                vec![json!("IfNotPresent")],
            ),
        ];
        for (name, op, new, old, want) in cases {
            let mut a = attrs(op, "Pod", "ns", Some(new), old);
            AlwaysPullImages.admit(&mut a, &api).await.unwrap();
            assert_eq!(policies(a.object.as_ref().unwrap()), want, "{name}");
            assert_eq!(AlwaysPullImages.validate(&a, &api).await, Ok(()), "{name}");
        }
    }

    #[tokio::test]
    async fn validate_refuses_other_policies() {
        let api = FakeApi::new();
        let p = pod(
            json!([{"name": "a", "image": "x", "imagePullPolicy": "Always"}, {"name": "b", "image": "y", "imagePullPolicy": "IfNotPresent"}]),
            json!([]),
        );
        let a = attrs(Operation::Create, "Pod", "ns", Some(p), None);
        assert_eq!(
            AlwaysPullImages.validate(&a, &api).await.unwrap_err().message,
            "pods \"p\" is forbidden: spec.containers[1].imagePullPolicy: Unsupported value: \"IfNotPresent\": supported values: \"Always\""
        );
        let p = pod(
            json!([{"name": "b", "image": "y", "imagePullPolicy": "Never"}]),
            json!([{"name": "i", "image": "z"}]),
        );
        let a = attrs(Operation::Create, "Pod", "ns", Some(p), None);
        assert_eq!(
            AlwaysPullImages.validate(&a, &api).await.unwrap_err().message,
            "[pods \"p\" is forbidden: spec.initContainers[0].imagePullPolicy: Unsupported value: \"\": supported values: \"Always\", pods \"p\" is forbidden: spec.containers[0].imagePullPolicy: Unsupported value: \"Never\": supported values: \"Always\"]"
        );
    }
}
