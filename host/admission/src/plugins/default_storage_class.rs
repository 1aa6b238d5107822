//! DefaultStorageClass: a new PersistentVolumeClaim that names no storage class (neither
//! `spec.storageClassName` nor the beta `volume.beta.kubernetes.io/storage-class` annotation) gets
//! the class annotated `storageclass.kubernetes.io/is-default-class: "true"`; with several
//! defaults the newest wins (then the first by name), as in Kubernetes 1.33. An explicit
//! `storageClassName: ""` asks for no class and is left alone; without a default class nothing
//! changes.

use serde_json::{json, Value};

use crate::{Api, Attributes, Denied, Operation, Plugin};

/// The annotation marking the default class.
const IS_DEFAULT: &str = "storageclass.kubernetes.io/is-default-class";
/// Its deprecated beta spelling, still honoured.
const IS_DEFAULT_BETA: &str = "storageclass.beta.kubernetes.io/is-default-class";
/// The deprecated way for a claim to name its class.
const BETA_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

/// The DefaultStorageClass plugin.
pub(crate) struct DefaultStorageClass;

fn is_default(class: &Value) -> bool {
    let ann = |k: &str| {
        class
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(k))
            .and_then(Value::as_str)
            == Some("true")
    };
    ann(IS_DEFAULT) || ann(IS_DEFAULT_BETA)
}

/// The default class: the newest of those marked default, ties broken by name.
pub(crate) fn default_class(classes: &[Value]) -> Option<&Value> {
    let meta = |c: &Value, f: &str| {
        c.pointer(&format!("/metadata/{f}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    classes.iter().filter(|c| is_default(c)).min_by(|a, b| {
        // RFC 3339 timestamps in UTC compare as strings; newest first.
        meta(b, "creationTimestamp")
            .cmp(&meta(a, "creationTimestamp"))
            .then_with(|| meta(a, "name").cmp(&meta(b, "name")))
    })
}

#[async_trait::async_trait]
impl Plugin for DefaultStorageClass {
    fn name(&self) -> &str {
        "DefaultStorageClass"
    }

    async fn admit(&self, a: &mut Attributes, api: &dyn Api) -> Result<(), Denied> {
        if a.operation != Operation::Create || !a.is("", "PersistentVolumeClaim") {
            return Ok(());
        }
        let Some(pvc) = a.object.as_ref() else {
            return Ok(());
        };
        let has_class = pvc
            .pointer("/spec/storageClassName")
            .is_some_and(|v| !v.is_null())
            || pvc
                .pointer("/metadata/annotations")
                .and_then(|m| m.get(BETA_CLASS_ANNOTATION))
                .is_some();
        if has_class {
            return Ok(());
        }
        let classes = api
            .list("/apis/storage.k8s.io/v1/storageclasses")
            .await
            .map_err(|e| Denied {
                code: 500,
                reason: crate::Reason::InternalError,
                message: e.to_string(),
            })?;
        let Some(name) = default_class(&classes)
            .and_then(|c| c.pointer("/metadata/name"))
            .and_then(Value::as_str)
        else {
            return Ok(());
        };
        let name = name.to_string();
        if let Some(spec) = a
            .object
            .as_mut()
            .and_then(|p| p.get_mut("spec"))
            .and_then(Value::as_object_mut)
        {
            spec.insert("storageClassName".into(), json!(name));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::fake_api::FakeApi;
    use crate::plugins::testing::attrs;

    fn class(name: &str, default: Option<&str>, created: &str) -> Value {
        let mut c = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name, "creationTimestamp": created}, "provisioner": "p"});
        if let Some(v) = default {
            c["metadata"]["annotations"] = json!({IS_DEFAULT: v});
        }
        c
    }

    fn pvc(spec: Value, annotations: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c", "namespace": "ns", "annotations": annotations}, "spec": spec})
    }

    #[tokio::test]
    async fn table() {
        let one_default = vec![
            class("fast", None, "2024-01-01T00:00:00Z"),
            class("standard", Some("true"), "2024-01-01T00:00:00Z"),
        ];
        let two_defaults = vec![
            class("old", Some("true"), "2024-01-01T00:00:00Z"),
            class("new", Some("true"), "2024-06-01T00:00:00Z"),
            class("same-b", None, "2024-06-01T00:00:00Z"),
        ];
        let tie = vec![
            class("b", Some("true"), "2024-01-01T00:00:00Z"),
            class("a", Some("true"), "2024-01-01T00:00:00Z"),
        ];
        let not_default = vec![class("x", Some("false"), "2024-01-01T00:00:00Z")];
        let base = json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}});
        let with = |k: &str, v: Value| {
            let mut s = base.clone();
            s[k] = v;
            s
        };
        let cases: Vec<(&str, &Vec<Value>, Value, Value, Value)> = vec![
            (
                "gets the default",
                &one_default,
                base.clone(),
                json!({}),
                json!("standard"),
            ),
            (
                "keeps its class",
                &one_default,
                with("storageClassName", json!("fast")),
                json!({}),
                json!("fast"),
            ),
            (
                "empty class means none",
                &one_default,
                with("storageClassName", json!("")),
                json!({}),
                json!(""),
            ),
            (
                "beta annotation counts",
                &one_default,
                base.clone(),
                json!({BETA_CLASS_ANNOTATION: "fast"}),
                Value::Null,
            ),
            (
                "newest default wins",
                &two_defaults,
                base.clone(),
                json!({}),
                json!("new"),
            ),
            (
                "same age: first by name",
                &tie,
                base.clone(),
                json!({}),
                json!("a"),
            ),
            (
                "no default class",
                &not_default,
                base.clone(),
                json!({}),
                Value::Null,
            ),
        ];
        for (name, classes, spec, ann, want) in cases {
            let api = FakeApi::new();
            for c in classes {
                api.put(
                    &format!(
                        "/apis/storage.k8s.io/v1/storageclasses/{}",
                        c["metadata"]["name"].as_str().unwrap()
                    ),
                    c.clone(),
                );
            }
            let mut a = attrs(
                Operation::Create,
                "PersistentVolumeClaim",
                "ns",
                Some(pvc(spec, ann)),
                None,
            );
            DefaultStorageClass.admit(&mut a, &api).await.unwrap();
            assert_eq!(
                a.object.unwrap()["spec"]["storageClassName"],
                want,
                "{name}"
            );
        }
    }

    #[tokio::test]
    async fn updates_are_left_alone() {
        let api = FakeApi::new();
        api.put(
            "/apis/storage.k8s.io/v1/storageclasses/s",
            class("s", Some("true"), "2024-01-01T00:00:00Z"),
        );
        let obj = pvc(json!({}), json!({}));
        let mut a = attrs(
            Operation::Update,
            "PersistentVolumeClaim",
            "ns",
            Some(obj.clone()),
            Some(obj),
        );
        DefaultStorageClass.admit(&mut a, &api).await.unwrap();
        assert_eq!(a.object.unwrap()["spec"].get("storageClassName"), None);
    }
}
