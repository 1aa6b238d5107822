//! Webhook plugin tests without a network peer: the AdmissionReview shape, response handling,
//! denial messages, patches, failure policies against a closed port, dry-run and the cache.

use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use super::client::{review, verdict, Verdict};
use super::{apply_patch, denied, Kind, Webhooks};
use crate::plugins::fake_api::FakeApi;
use crate::{Attributes, Operation, Plugin, UserInfo};

fn cm_create(labels: Value) -> Attributes {
    Attributes {
        encoded: Default::default(),
        operation: Operation::Create,
        group: String::new(),
        version: "v1".into(),
        kind: "ConfigMap".into(),
        resource: "configmaps".into(),
        subresource: String::new(),
        namespace: "default".into(),
        name: "cm".into(),
        object: Some(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "default", "labels": labels}}),
        ),
        old_object: None,
        user: UserInfo {
            name: "admin".into(),
            groups: vec!["system:masters".into()],
        },
        dry_run: false,
    }
}

fn hook(name: &str, url: &str, policy: &str) -> Value {
    json!({
        "name": name,
        "clientConfig": {"url": url},
        "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}],
        "failurePolicy": policy,
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": 2,
    })
}

fn register(api: &FakeApi, kind: Kind, config: &str, hooks: Value) {
    api.put(
        &format!(
            "/apis/admissionregistration.k8s.io/v1/{}/{config}",
            kind.resource()
        ),
        json!({"metadata": {"name": config}, "webhooks": hooks}),
    );
}

#[test]
fn admission_review_request() {
    let mut a = cm_create(json!({"x": "1"}));
    a.subresource = "status".into();
    let r = review(
        &json!({"admissionReviewVersions": ["v1beta1", "v1"]}),
        &a,
        "u-1",
    )
    .unwrap();
    assert_eq!(r["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(r["kind"], "AdmissionReview");
    let req = &r["request"];
    assert_eq!(req["uid"], "u-1");
    assert_eq!(
        req["kind"],
        json!({"group": "", "version": "v1", "kind": "ConfigMap"})
    );
    assert_eq!(
        req["resource"],
        json!({"group": "", "version": "v1", "resource": "configmaps"})
    );
    assert_eq!(req["subResource"], "status");
    assert_eq!(req["operation"], "CREATE");
    assert_eq!(req["namespace"], "default");
    assert_eq!(
        req["userInfo"],
        json!({"username": "admin", "groups": ["system:masters"]})
    );
    assert_eq!(req["object"]["metadata"]["labels"]["x"], "1");
    assert_eq!(req["oldObject"], Value::Null);
    assert_eq!(req["dryRun"], false);
    assert_eq!(req["options"]["kind"], "CreateOptions");
    let old = review(&json!({"admissionReviewVersions": ["v1beta1"]}), &a, "u").unwrap();
    assert_eq!(old["apiVersion"], "admission.k8s.io/v1beta1");
    assert!(review(&json!({"admissionReviewVersions": ["v2"]}), &a, "u").is_err());
}

#[test]
fn responses_and_denials() {
    let ok = verdict(&json!({"response": {"uid": "u", "allowed": true}}), "u").unwrap();
    assert!(ok.allowed && ok.patch.is_none());
    assert!(
        verdict(&json!({"response": {"uid": "other", "allowed": true}}), "u")
            .unwrap_err()
            .contains("expected response.uid")
    );
    assert!(verdict(&json!({}), "u").is_err());
    let no = verdict(&json!({"response": {"uid": "u", "allowed": false, "status": {"code": 422, "message": "nope"}}}), "u").unwrap();
    let d = denied("v.example.com", no.status.as_ref());
    assert_eq!((d.code, d.reason), (422, crate::Reason::Invalid));
    assert_eq!(
        d.message,
        "admission webhook \"v.example.com\" denied the request: nope"
    );
    let d = denied("w", Some(&json!({"code": 200, "reason": "NoWay"})));
    assert_eq!(
        (d.code, d.reason, d.message.as_str()),
        (
            403,
            crate::Reason::Forbidden,
            "admission webhook \"w\" denied the request: NoWay"
        )
    );
    let d = denied("w", None);
    assert_eq!(
        d.message,
        "admission webhook \"w\" denied the request without explanation"
    );
}

#[test]
fn json_patches() {
    let mut a = cm_create(json!({}));
    let patch =
        br#"[{"op": "add", "path": "/metadata/labels/added", "value": "by-webhook"}]"#.to_vec();
    let v = Verdict {
        allowed: true,
        status: None,
        patch: Some(patch.clone()),
        patch_type: Some("JSONPatch".into()),
    };
    apply_patch("m", &mut a, &v).unwrap();
    assert_eq!(
        a.object.as_ref().unwrap()["metadata"]["labels"]["added"],
        "by-webhook"
    );
    let wrong_type = Verdict {
        patch_type: None,
        ..v
    };
    assert_eq!(apply_patch("m", &mut a, &wrong_type).unwrap_err().code, 500);
    let bad = Verdict {
        allowed: true,
        status: None,
        patch: Some(br#"[{"op": "remove", "path": "/nope"}]"#.to_vec()),
        patch_type: Some("JSONPatch".into()),
    };
    let before = a.object.clone();
    assert_eq!(apply_patch("m", &mut a, &bad).unwrap_err().code, 500);
    assert_eq!(a.object, before, "a failed patch leaves the object alone");
}

#[tokio::test]
async fn failure_policies_against_a_closed_port() {
    let api = FakeApi::new();
    let closed = "https://127.0.0.1:1/validate";
    register(
        &api,
        Kind::Validating,
        "a-ignore",
        json!([hook("ignore.example.com", closed, "Ignore")]),
    );
    let plugin = Webhooks::new(Kind::Validating);
    plugin.validate(&cm_create(json!({})), &api).await.unwrap();
    register(
        &api,
        Kind::Validating,
        "b-fail",
        json!([hook("fail.example.com", closed, "Fail")]),
    );
    plugin.observe(&Attributes {
        encoded: Default::default(),
        group: "admissionregistration.k8s.io".into(),
        resource: "validatingwebhookconfigurations".into(),
        ..cm_create(json!({}))
    });
    let err = plugin
        .validate(&cm_create(json!({})), &api)
        .await
        .unwrap_err();
    assert_eq!(err.code, 500);
    assert!(err.message.starts_with("Internal error occurred: failed calling webhook \"fail.example.com\": failed to call webhook: Post \"https://127.0.0.1:1/validate?timeout=2s\""), "{}", err.message);
    // Not matched by the rules: no call.
    let mut secret = cm_create(json!({}));
    secret.resource = "secrets".into();
    plugin.validate(&secret, &api).await.unwrap();
    // The configuration objects themselves are never sent to webhooks.
    let mut config = cm_create(json!({}));
    config.group = "admissionregistration.k8s.io".into();
    config.resource = "configmaps".into();
    plugin.validate(&config, &api).await.unwrap();
    // A mutating plugin ignores validating configurations.
    let mut a = cm_create(json!({}));
    Webhooks::new(Kind::Mutating)
        .admit(&mut a, &api)
        .await
        .unwrap();
}

#[tokio::test]
async fn dry_run_needs_side_effect_free_webhooks() {
    let api = FakeApi::new();
    let mut h = hook("se.example.com", "https://127.0.0.1:1/", "Ignore");
    h["sideEffects"] = json!("Some");
    register(&api, Kind::Mutating, "c", json!([h]));
    let plugin = Webhooks::new(Kind::Mutating);
    let mut a = cm_create(json!({}));
    plugin.admit(&mut a, &api).await.unwrap();
    a.dry_run = true;
    let err = plugin.admit(&mut a, &api).await.unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (
            400,
            "admission webhook \"se.example.com\" does not support dry run"
        )
    );
}

#[tokio::test]
async fn configurations_are_cached_until_one_is_written() {
    let api = FakeApi::new();
    let plugin = Webhooks::new(Kind::Validating);
    assert!(plugin.hooks(&api).await.unwrap().is_empty());
    register(
        &api,
        Kind::Validating,
        "late",
        json!([hook("late.example.com", "https://127.0.0.1:1/", "Fail")]),
    );
    assert!(plugin.hooks(&api).await.unwrap().is_empty(), "cached");
    let write = Attributes {
        encoded: Default::default(),
        group: "admissionregistration.k8s.io".into(),
        resource: "validatingwebhookconfigurations".into(),
        ..cm_create(json!({}))
    };
    plugin.validate(&write, &api).await.unwrap();
    assert_eq!(plugin.hooks(&api).await.unwrap().len(), 1);
    api.remove("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/late");
    assert!(
        plugin.hooks(&api).await.unwrap().is_empty(),
        "settling: every request re-reads"
    );
    assert_eq!(api.updates.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn service_references_without_a_reachable_cluster_ip_fail_per_policy() {
    let api = FakeApi::new();
    let mut h = hook("svc.example.com", "", "Fail");
    h["clientConfig"] =
        json!({"service": {"namespace": "default", "name": "hooks", "path": "/v", "port": 1}});
    register(&api, Kind::Validating, "svc", json!([h]));
    let plugin = Webhooks::new(Kind::Validating);
    let err = plugin
        .validate(&cm_create(json!({})), &api)
        .await
        .unwrap_err();
    assert!(
        err.message.contains("service \"default/hooks\" not found"),
        "{}",
        err.message
    );
    api.put(
        "/api/v1/namespaces/default/services/hooks",
        json!({"metadata": {"name": "hooks"}, "spec": {"clusterIP": "127.0.0.1"}}),
    );
    let err = plugin
        .validate(&cm_create(json!({})), &api)
        .await
        .unwrap_err();
    assert!(
        err.message
            .contains("Post \"https://hooks.default.svc:1/v?timeout=2s\""),
        "{}",
        err.message
    );
}
