//! Every example plugin against fixture objects.

use keelson_plugin_host::Operation;
use serde_json::{json, Value};

use crate::support::{create, load, pod};

fn configmap(labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "default", "labels": labels},
        "data": {"a": "b"}
    })
}

#[test]
fn require_labels_refuses_missing_labels() {
    let plugin = load("require-labels");
    let config = json!({"labels": ["team", "tier"]});

    let v = plugin
        .validate(&create(configmap(json!({"team": "a"})), config.clone()))
        .unwrap();
    assert!(!v.allowed);
    assert_eq!(v.code, 403);
    assert!(
        v.message.contains("missing required label(s): tier"),
        "{}",
        v.message
    );

    let v = plugin
        .validate(&create(configmap(json!({})), config.clone()))
        .unwrap();
    assert!(v.message.ends_with("team, tier"), "{}", v.message);

    let ok = create(
        configmap(json!({"team": "a", "tier": "web"})),
        config.clone(),
    );
    assert!(plugin.validate(&ok).unwrap().allowed);

    let mut delete = create(configmap(json!({})), config);
    delete.operation = Operation::Delete;
    delete.old_object = std::mem::take(&mut delete.object);
    assert!(plugin.validate(&delete).unwrap().allowed);

    // No config: nothing is required. Mutate is the SDK's default: unchanged.
    let v = plugin
        .validate(&create(configmap(json!({})), json!(null)))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        v.code, 500,
        "a null config is refused as a config error: {v:?}"
    );
    let m = plugin
        .mutate(&create(configmap(json!({})), json!({})))
        .unwrap();
    assert!(m.verdict.allowed && m.patch.is_none());
    assert_eq!(plugin.metrics().calls, 6);
}

#[test]
fn deny_latest_tag_checks_every_image() {
    let plugin = load("deny-latest-tag");
    let cases: &[(&[&str], bool)] = &[
        (&["nginx:1.27"], true),
        (&["nginx"], false),
        (&["nginx:latest"], false),
        (&["registry.local:5000/team/app"], false),
        (&["registry.local:5000/team/app:v1"], true),
        (&["nginx@sha256:0123456789abcdef"], true),
        (&["nginx:1.27", "busybox"], false),
    ];
    for (images, allowed) in cases {
        let v = plugin.validate(&create(pod(images), json!({}))).unwrap();
        assert_eq!(v.allowed, *allowed, "{images:?}: {v:?}");
        if !allowed {
            assert!(v.message.contains("pin a version"), "{}", v.message);
        }
    }

    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"template": {"spec": {
            "initContainers": [{"name": "init", "image": "busybox:latest"}],
            "containers": [{"name": "app", "image": "nginx:1.27"}]
        }}}
    });
    let v = plugin.validate(&create(deployment, json!({}))).unwrap();
    assert!(!v.allowed && v.message.contains("\"init\""), "{v:?}");

    // The SDK's typed accessor follows each kind's pod spec path.
    let cronjob = json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "default", "managedFields": [{"manager": "x"}]},
        "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "job", "image": "busybox", "env": [{"name": "A", "value": "1"}]}]
        }}}}}
    });
    let v = plugin.validate(&create(cronjob, json!({}))).unwrap();
    assert!(!v.allowed && v.message.contains("\"job\""), "{v:?}");

    let other = plugin
        .validate(&create(configmap(json!({})), json!({})))
        .unwrap();
    assert!(other.allowed);
}

fn apply(object: &Value, patch: &json_patch::Patch) -> Value {
    let mut doc = object.clone();
    json_patch::patch(&mut doc, patch).expect("patch applies");
    doc
}

#[test]
fn default_resources_fills_only_what_is_missing() {
    let plugin = load("default-resources");
    let config = json!({
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "256Mi"}
    });

    let mut object = pod(&["nginx:1.27", "busybox:1.36"]);
    object["spec"]["containers"][1]["resources"] = json!({"requests": {"cpu": "2"}});
    let m = plugin
        .mutate(&create(object.clone(), config.clone()))
        .unwrap();
    assert!(m.verdict.allowed);
    let patched = apply(&object, m.patch.as_ref().expect("a patch"));
    assert_eq!(
        patched["spec"]["containers"][0]["resources"],
        json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}})
    );
    assert_eq!(
        patched["spec"]["containers"][1]["resources"],
        json!({"requests": {"cpu": "2", "memory": "128Mi"}, "limits": {"memory": "256Mi"}})
    );

    // Nothing missing: no patch at all.
    let m = plugin
        .mutate(&create(patched.clone(), config.clone()))
        .unwrap();
    assert!(m.patch.is_none(), "{m:?}");

    // A pod update is left alone (resources are immutable), a template is not.
    let mut update = create(object, config.clone());
    update.operation = Operation::Update;
    assert!(plugin.mutate(&update).unwrap().patch.is_none());

    let cronjob = json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "default"},
        "spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "job", "image": "busybox:1.36", "resources": {"limits": {"memory": "1Gi"}}}]
        }}}}}
    });
    let m = plugin.mutate(&create(cronjob.clone(), config)).unwrap();
    let patched = apply(&cronjob, m.patch.as_ref().unwrap());
    assert_eq!(
        patched
            .pointer("/spec/jobTemplate/spec/template/spec/containers/0/resources")
            .unwrap(),
        &json!({"limits": {"memory": "1Gi"}, "requests": {"cpu": "100m"}})
    );

    // Validate is the SDK default: allow.
    assert!(
        plugin
            .validate(&create(pod(&["x"]), json!({})))
            .unwrap()
            .allowed
    );
}
