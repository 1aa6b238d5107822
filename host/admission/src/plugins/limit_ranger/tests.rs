//! LimitRanger's table-driven tests.

use serde_json::{json, Value};

use super::*;
use crate::plugins::fake_api::FakeApi;
use crate::plugins::testing::attrs;

fn api(ranges: &[Value]) -> FakeApi {
    let api = FakeApi::new();
    for (i, spec) in ranges.iter().enumerate() {
        api.put(
            &format!("/api/v1/namespaces/ns/limitranges/lr{i}"),
            json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": format!("lr{i}"), "namespace": "ns"}, "spec": spec}),
        );
    }
    api
}

fn pod(containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": containers}})
}

fn container(name: &str, resources: Value) -> Value {
    json!({"name": name, "image": "nginx", "resources": resources})
}

#[tokio::test]
async fn defaults_table() {
    let defaults = json!({"limits": [{"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"}, "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}]});
    let max_only = json!({"limits": [{"type": "Container", "max": {"cpu": "2"}}]});
    let min_only = json!({"limits": [{"type": "Container", "min": {"memory": "64Mi"}}]});
    // (name, limit range, container resources, expected resources, expected annotation)
    let cases: Vec<(&str, Value, Value, Value, Option<&str>)> = vec![
        (
            "all defaults",
            defaults.clone(),
            json!({}),
            json!({"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}}),
            Some("LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c"),
        ),
        (
            "own values kept",
            defaults.clone(),
            json!({"limits": {"cpu": "1"}, "requests": {"memory": "200Mi"}}),
            json!({"limits": {"cpu": "1", "memory": "256Mi"}, "requests": {"memory": "200Mi", "cpu": "100m"}}),
            Some("LimitRanger plugin set: cpu request for container c; memory limit for container c"),
        ),
        (
            "nothing to set",
            defaults.clone(),
            json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}),
            json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}),
            None,
        ),
        (
            "max defaults the limit and the request",
            max_only,
            json!({}),
            json!({"limits": {"cpu": "2"}, "requests": {"cpu": "2"}}),
            Some("LimitRanger plugin set: cpu request for container c; cpu limit for container c"),
        ),
        (
            "min defaults the request",
            min_only,
            json!({}),
            json!({"requests": {"memory": "64Mi"}}),
            Some("LimitRanger plugin set: memory request for container c"),
        ),
        ("pod-type items give no defaults", json!({"limits": [{"type": "Pod", "max": {"cpu": "2"}}]}), json!({}), json!({}), None),
    ];
    for (name, range, resources, want, annotation) in cases {
        let api = api(&[range]);
        let mut a = attrs(
            Operation::Create,
            "Pod",
            "ns",
            Some(pod(json!([container("c", resources)]))),
            None,
        );
        LimitRanger.admit(&mut a, &api).await.unwrap();
        let obj = a.object.unwrap();
        let got = &obj["spec"]["containers"][0]["resources"];
        assert_eq!(got, &want, "{name}");
        assert_eq!(
            obj.pointer("/metadata/annotations/kubernetes.io~1limit-ranger")
                .and_then(Value::as_str),
            annotation,
            "{name}"
        );
    }
}

#[tokio::test]
async fn init_containers_and_annotation() {
    let api = api(&[
        json!({"limits": [{"type": "Container", "default": {"cpu": "1"}, "defaultRequest": {"cpu": "1"}}]}),
    ]);
    let mut p = pod(json!([container("a", json!({}))]));
    p["spec"]["initContainers"] = json!([container("i", json!({"requests": {"cpu": "1"}}))]);
    let mut a = attrs(Operation::Create, "Pod", "ns", Some(p), None);
    LimitRanger.admit(&mut a, &api).await.unwrap();
    let obj = a.object.unwrap();
    assert_eq!(
        obj["metadata"]["annotations"][ANNOTATION],
        "LimitRanger plugin set: cpu request for container a; cpu limit for container a; cpu limit for init container i"
    );
    assert_eq!(
        obj["spec"]["initContainers"][0]["resources"],
        json!({"requests": {"cpu": "1"}, "limits": {"cpu": "1"}})
    );
}

#[tokio::test]
async fn validate_table() {
    let c_range = json!({"limits": [{"type": "Container", "max": {"cpu": "1", "memory": "1Gi"}, "min": {"cpu": "100m"}}]});
    let ratio = json!({"limits": [{"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}]});
    let pod_range = json!({"limits": [{"type": "Pod", "max": {"cpu": "1"}}]});
    let ok = |cpu_req: &str, cpu_lim: &str| json!({"requests": {"cpu": cpu_req, "memory": "1Gi"}, "limits": {"cpu": cpu_lim, "memory": "1Gi"}});
    let cases: Vec<(&str, Value, Vec<Value>, Option<&str>)> = vec![
        ("within", c_range.clone(), vec![container("c", ok("500m", "1"))], None),
        ("over max limit", c_range.clone(), vec![container("c", ok("500m", "2"))], Some("maximum cpu usage per Container is 1, but limit is 2")),
        ("over max request", c_range.clone(), vec![container("c", json!({"requests": {"cpu": "1500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}))], Some("maximum cpu usage per Container is 1, but request is 1500m")),
        ("no limit", c_range.clone(), vec![container("c", json!({"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}}))], Some("maximum cpu usage per Container is 1.  No limit is specified")),
        ("under min", c_range.clone(), vec![container("c", ok("50m", "1"))], Some("minimum cpu usage per Container is 100m, but request is 50m")),
        (
            "several errors aggregate",
            c_range.clone(),
            vec![container("c", json!({"requests": {"cpu": "50m"}, "limits": {"cpu": "1", "memory": "2Gi"}}))],
            Some("[minimum cpu usage per Container is 100m, but request is 50m, maximum memory usage per Container is 1Gi, but limit is 2Gi]"),
        ),
        ("ratio fine", ratio.clone(), vec![container("c", json!({"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}}))], None),
        ("ratio exceeded", ratio.clone(), vec![container("c", json!({"requests": {"cpu": "250m"}, "limits": {"cpu": "1"}}))], Some("cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000")),
        ("ratio without request", ratio.clone(), vec![container("c", json!({"limits": {"cpu": "1"}}))], Some("cpu max limit to request ratio per Container is 2, but no request is specified or request is 0")),
        (
            "pod total over max",
            pod_range.clone(),
            vec![container("a", json!({"requests": {"cpu": "600m"}, "limits": {"cpu": "600m"}})), container("b", json!({"requests": {"cpu": "600m"}, "limits": {"cpu": "600m"}}))],
            Some("maximum cpu usage per Pod is 1, but limit is 1200m"),
        ),
        ("pod total within", pod_range.clone(), vec![container("a", json!({"requests": {"cpu": "500m"}, "limits": {"cpu": "500m"}}))], None),
    ];
    for (name, range, containers, want) in cases {
        let api = api(&[range]);
        let a = attrs(
            Operation::Create,
            "Pod",
            "ns",
            Some(pod(Value::Array(containers))),
            None,
        );
        match want {
            None => assert_eq!(LimitRanger.validate(&a, &api).await, Ok(()), "{name}"),
            Some(why) => {
                let d = LimitRanger.validate(&a, &api).await.expect_err(name);
                assert_eq!(
                    (d.code, d.message),
                    (403, format!("pods \"p\" is forbidden: {why}")),
                    "{name}"
                );
            }
        }
    }
}

#[tokio::test]
async fn pod_totals_count_init_and_sidecar_containers() {
    let mut p = pod(json!([container("a", json!({"limits": {"cpu": "1"}}))]));
    p["spec"]["initContainers"] = json!([
        {"name": "sidecar", "restartPolicy": "Always", "resources": {"limits": {"cpu": "500m"}}},
        {"name": "setup", "resources": {"limits": {"cpu": "3"}}},
    ]);
    // Containers + sidecar = 1.5; the setup init container with the sidecar = 3.5.
    assert_eq!(
        pod_total(&p, "limits").get("cpu").map(|q| q.milli),
        Some(3500)
    );
}

#[tokio::test]
async fn pvc_table() {
    let range = json!({"limits": [{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}}]});
    let pvc = |size: &str| json!({"metadata": {"name": "c", "namespace": "ns"}, "spec": {"resources": {"requests": {"storage": size}}}});
    let cases = [
        ("within", pvc("5Gi"), None),
        (
            "too big",
            pvc("20Gi"),
            Some("maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"),
        ),
        (
            "too small",
            pvc("500Mi"),
            Some("minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"),
        ),
    ];
    for (name, obj, want) in cases {
        let api = api(std::slice::from_ref(&range));
        for op in [Operation::Create, Operation::Update] {
            let old = (op == Operation::Update).then(|| pvc("5Gi"));
            let a = attrs(op, "PersistentVolumeClaim", "ns", Some(obj.clone()), old);
            match want {
                None => assert_eq!(LimitRanger.validate(&a, &api).await, Ok(()), "{name}"),
                Some(why) => assert_eq!(
                    LimitRanger
                        .validate(&a, &api)
                        .await
                        .expect_err(name)
                        .message,
                    format!("persistentvolumeclaims \"c\" is forbidden: {why}"),
                    "{name}"
                ),
            }
        }
    }
}

#[tokio::test]
async fn ignored_requests() {
    let api = api(&[
        json!({"limits": [{"type": "Container", "max": {"cpu": "1"}, "default": {"cpu": "1"}}]}),
    ]);
    let big = pod(json!([container("c", json!({"limits": {"cpu": "4"}}))]));
    // Pod updates, subresources, other kinds and namespaces without LimitRanges pass.
    let a = attrs(
        Operation::Update,
        "Pod",
        "ns",
        Some(big.clone()),
        Some(big.clone()),
    );
    assert_eq!(LimitRanger.validate(&a, &api).await, Ok(()));
    let mut a = attrs(Operation::Create, "Pod", "ns", Some(big.clone()), None);
    a.subresource = "status".into();
    assert_eq!(LimitRanger.validate(&a, &api).await, Ok(()));
    let a = attrs(Operation::Create, "Pod", "other", Some(big.clone()), None);
    assert_eq!(LimitRanger.validate(&a, &api).await, Ok(()));
    let mut a = attrs(
        Operation::Create,
        "ConfigMap",
        "ns",
        Some(json!({"metadata": {"name": "x"}})),
        None,
    );
    LimitRanger.admit(&mut a, &api).await.unwrap();
    assert_eq!(a.object, Some(json!({"metadata": {"name": "x"}})));
}
