//! ResourceQuota accounting against the in-memory API: charging, refusing with Kubernetes'
//! message, the container constraints, conflicts, concurrency, dry-run, unknown usage, and
//! deletes that leave the release to the quota controller.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::{json, Value};

use super::ResourceQuota;
use crate::plugins::fake_api::FakeApi;
use crate::{Attributes, Operation, Plugin, UserInfo};

const QUOTAS: &str = "/api/v1/namespaces/ns/resourcequotas";

fn attrs(
    op: Operation,
    resource: &str,
    kind: &str,
    name: &str,
    object: Option<Value>,
    old: Option<Value>,
) -> Attributes {
    Attributes {
        encoded: Default::default(),
        operation: op,
        group: String::new(),
        version: "v1".into(),
        kind: kind.into(),
        resource: resource.into(),
        subresource: String::new(),
        namespace: "ns".into(),
        name: name.into(),
        object,
        old_object: old,
        user: UserInfo::default(),
        dry_run: false,
    }
}

fn pod(name: &str, resources: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "ns"},
           "spec": {"containers": [{"name": "c1", "image": "x", "resources": resources}]}})
}

fn create_pod(name: &str, resources: Value) -> Attributes {
    attrs(
        Operation::Create,
        "pods",
        "Pod",
        name,
        Some(pod(name, resources)),
        None,
    )
}

/// A quota whose usage the controller has computed as zero.
fn quota(api: &FakeApi, name: &str, hard: Value) {
    let zero: serde_json::Map<String, Value> = hard
        .as_object()
        .unwrap()
        .keys()
        .map(|k| (k.clone(), json!("0")))
        .collect();
    api.put(
        &format!("{QUOTAS}/{name}"),
        json!({"metadata": {"name": name, "namespace": "ns"}, "spec": {"hard": hard},
               "status": {"hard": hard, "used": zero}}),
    );
}

fn used(api: &FakeApi, name: &str) -> Value {
    api.object(&format!("{QUOTAS}/{name}")).unwrap()["status"]["used"].clone()
}

#[tokio::test]
async fn counts_pods_and_refuses_the_third() {
    let api = FakeApi::new();
    quota(&api, "q", json!({"pods": "2"}));
    let p = ResourceQuota;
    p.validate(&create_pod("a", json!({})), &api).await.unwrap();
    assert_eq!(used(&api, "q"), json!({"pods": "1"}));
    p.validate(&create_pod("b", json!({})), &api).await.unwrap();
    assert_eq!(used(&api, "q"), json!({"pods": "2"}));
    let q = api.object(&format!("{QUOTAS}/q")).unwrap();
    assert_eq!(q["status"]["hard"], json!({"pods": "2"}));
    let err = p
        .validate(&create_pod("c", json!({})), &api)
        .await
        .unwrap_err();
    assert_eq!(err.code, 403);
    assert_eq!(err.message, "pods \"c\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2");
    assert_eq!(used(&api, "q"), json!({"pods": "2"}));
}

#[tokio::test]
async fn other_kinds_and_namespaces_are_untouched() {
    let api = FakeApi::new();
    quota(&api, "q", json!({"pods": "1"}));
    let cm = json!({"metadata": {"name": "cm", "namespace": "ns"}});
    ResourceQuota
        .validate(
            &attrs(
                Operation::Create,
                "configmaps",
                "ConfigMap",
                "cm",
                Some(cm),
                None,
            ),
            &api,
        )
        .await
        .unwrap();
    assert_eq!(api.updates.load(Ordering::SeqCst), 0);
    let mut other = create_pod("a", json!({}));
    other.namespace = "elsewhere".into();
    ResourceQuota.validate(&other, &api).await.unwrap();
    assert_eq!(api.updates.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn usage_not_yet_computed_is_refused() {
    let api = FakeApi::new();
    api.put(
        &format!("{QUOTAS}/q"),
        json!({"metadata": {"name": "q", "namespace": "ns"}, "spec": {"hard": {"pods": "3", "configmaps": "2"}}}),
    );
    let err = ResourceQuota
        .validate(&create_pod("a", json!({})), &api)
        .await
        .unwrap_err();
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        "pods \"a\" is forbidden: status unknown for quota: q, resources: pods"
    );
    assert_eq!(api.updates.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn compute_resources_and_container_constraints() {
    let api = FakeApi::new();
    quota(
        &api,
        "compute",
        json!({"limits.cpu": "1", "requests.memory": "1Gi"}),
    );
    let p = ResourceQuota;
    let err = p
        .validate(&create_pod("bare", json!({})), &api)
        .await
        .unwrap_err();
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        "pods \"bare\" is forbidden: failed quota: compute: must specify limits.cpu for: c1; must specify requests.memory for: c1"
    );
    let big = json!({"limits": {"cpu": "2", "memory": "128Mi"}});
    let err = p.validate(&create_pod("big", big), &api).await.unwrap_err();
    assert!(err.message.ends_with("exceeded quota: compute, requested: limits.cpu=2, used: limits.cpu=0, limited: limits.cpu=1"), "{}", err.message);
    let ok = json!({"limits": {"cpu": "600m", "memory": "512Mi"}});
    p.validate(&create_pod("ok", ok.clone()), &api)
        .await
        .unwrap();
    assert_eq!(
        used(&api, "compute"),
        json!({"limits.cpu": "600m", "requests.memory": "512Mi"})
    );
    let err = p.validate(&create_pod("ok2", ok), &api).await.unwrap_err();
    assert!(
        err.message
            .ends_with("requested: limits.cpu=600m, used: limits.cpu=600m, limited: limits.cpu=1"),
        "only the exceeded resource is listed: {}",
        err.message
    );
    p.validate(
        &create_pod(
            "small",
            json!({"limits": {"cpu": "0.4", "memory": "512Mi"}}),
        ),
        &api,
    )
    .await
    .unwrap();
    assert_eq!(
        used(&api, "compute"),
        json!({"limits.cpu": "1", "requests.memory": "1Gi"})
    );
}

#[tokio::test]
async fn conflicts_are_retried_and_dry_run_writes_nothing() {
    let api = FakeApi::new();
    quota(&api, "q", json!({"pods": "5"}));
    api.conflicts.store(3, Ordering::SeqCst);
    ResourceQuota
        .validate(&create_pod("a", json!({})), &api)
        .await
        .unwrap();
    assert_eq!(used(&api, "q"), json!({"pods": "1"}));
    let mut dry = create_pod("b", json!({}));
    dry.dry_run = true;
    ResourceQuota.validate(&dry, &api).await.unwrap();
    assert_eq!(used(&api, "q"), json!({"pods": "1"}));
    api.conflicts.store(100, Ordering::SeqCst);
    let err = ResourceQuota
        .validate(&create_pod("c", json!({})), &api)
        .await
        .unwrap_err();
    assert_eq!(err.code, 500);
    api.conflicts.store(0, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_never_exceed_the_quota() {
    let api = Arc::new(FakeApi::new());
    quota(&api, "q", json!({"pods": "5"}));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            ResourceQuota
                .validate(&create_pod(&format!("p{i}"), json!({})), api.as_ref())
                .await
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => allowed += 1,
            Err(e) => assert!(e.code == 403 || e.code == 500, "{e:?}"),
        }
    }
    // Every admitted create is counted, none beyond the limit (a task that loses every retry
    // gets a 500, never an over-count).
    assert!((1..=5).contains(&allowed), "{allowed}");
    assert_eq!(used(&api, "q"), json!({"pods": allowed.to_string()}));
}

#[tokio::test]
async fn deletes_release_nothing() {
    let api = FakeApi::new();
    quota(&api, "q", json!({"pods": "2"}));
    ResourceQuota
        .validate(&create_pod("a", json!({})), &api)
        .await
        .unwrap();
    let before = api.updates.load(Ordering::SeqCst);
    let del = attrs(
        Operation::Delete,
        "pods",
        "Pod",
        "a",
        None,
        Some(pod("a", json!({}))),
    );
    ResourceQuota.validate(&del, &api).await.unwrap();
    assert_eq!(api.updates.load(Ordering::SeqCst), before);
    assert_eq!(used(&api, "q")["pods"], "1", "the controller recalculates");
}

#[tokio::test]
async fn updates_charge_increases_only() {
    let api = FakeApi::new();
    quota(
        &api,
        "q",
        json!({"services.nodeports": "2", "services": "5"}),
    );
    let svc = |t: &str, ports: usize| {
        let ports: Vec<Value> = (0..ports).map(|i| json!({"port": 80 + i})).collect();
        json!({"metadata": {"name": "s"}, "spec": {"type": t, "ports": ports}})
    };
    let create = attrs(
        Operation::Create,
        "services",
        "Service",
        "s",
        Some(svc("ClusterIP", 3)),
        None,
    );
    ResourceQuota.validate(&create, &api).await.unwrap();
    assert_eq!(
        used(&api, "q"),
        json!({"services": "1", "services.nodeports": "0"})
    );
    let up = attrs(
        Operation::Update,
        "services",
        "Service",
        "s",
        Some(svc("NodePort", 3)),
        Some(svc("ClusterIP", 3)),
    );
    let err = ResourceQuota.validate(&up, &api).await.unwrap_err();
    assert!(err.message.contains("requested: services.nodeports=3, used: services.nodeports=0, limited: services.nodeports=2"), "{}", err.message);
    let up = attrs(
        Operation::Update,
        "services",
        "Service",
        "s",
        Some(svc("NodePort", 2)),
        Some(svc("ClusterIP", 2)),
    );
    ResourceQuota.validate(&up, &api).await.unwrap();
    assert_eq!(
        used(&api, "q"),
        json!({"services": "1", "services.nodeports": "2"})
    );
    let same = attrs(
        Operation::Update,
        "services",
        "Service",
        "s",
        Some(svc("NodePort", 2)),
        Some(svc("NodePort", 2)),
    );
    let before = api.updates.load(Ordering::SeqCst);
    ResourceQuota.validate(&same, &api).await.unwrap();
    assert_eq!(
        api.updates.load(Ordering::SeqCst),
        before,
        "no change, no write"
    );
}
