//! NodeRestriction's table-driven tests.

use serde_json::{json, Value};

use super::*;
use crate::plugins::fake_api::FakeApi;
use crate::plugins::testing::attrs;
use crate::UserInfo;

fn as_node(mut a: Attributes, node: &str) -> Attributes {
    a.user = UserInfo {
        name: format!("system:node:{node}"),
        groups: vec!["system:nodes".into(), "system:authenticated".into()],
    };
    a
}

fn node(name: &str, labels: Value, taints: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "uid": format!("uid-{name}"), "labels": labels}, "spec": {"taints": taints}})
}

fn api() -> FakeApi {
    let api = FakeApi::new();
    api.put("/api/v1/nodes/n1", node("n1", json!({}), json!([])));
    api.put("/api/v1/namespaces/ns/pods/mine", json!({"metadata": {"name": "mine", "namespace": "ns", "uid": "pod-uid"}, "spec": {"nodeName": "n1"}}));
    api.put(
        "/api/v1/namespaces/ns/pods/theirs",
        json!({"metadata": {"name": "theirs", "namespace": "ns"}, "spec": {"nodeName": "n2"}}),
    );
    api
}

fn mirror(spec: Value) -> Value {
    let mut s = json!({"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]});
    for (k, v) in spec.as_object().unwrap() {
        s[k] = v.clone();
    }
    json!({
        "metadata": {
            "name": "static-n1", "namespace": "ns",
            "annotations": {MIRROR_POD_ANNOTATION: "hash"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "uid-n1", "controller": true}],
        },
        "spec": s,
    })
}

async fn check(a: Attributes, want: Option<&str>, name: &str) {
    let got = NodeRestriction.validate(&a, &api()).await;
    match want {
        None => assert_eq!(got, Ok(()), "{name}"),
        Some(msg) => assert_eq!(got.expect_err(name).message, msg, "{name}"),
    }
}

#[tokio::test]
async fn non_nodes_pass() {
    let a = attrs(
        Operation::Update,
        "Node",
        "",
        Some(node(
            "n2",
            json!({"node-restriction.kubernetes.io/x": "y"}),
            json!([]),
        )),
        Some(node("n2", json!({}), json!([]))),
    );
    check(a.clone(), None, "admin").await;
    let mut a = a;
    a.user = UserInfo {
        name: "system:node:n1".into(),
        groups: vec![],
    };
    check(a.clone(), None, "node name without the group").await;
    a.user = UserInfo {
        name: "bob".into(),
        groups: vec!["system:nodes".into()],
    };
    check(
        a,
        Some("nodes \"n2\" is forbidden: could not determine node from user \"bob\""),
        "group without a node name",
    )
    .await;
}

#[allow(clippy::type_complexity)] // a test table
#[tokio::test]
async fn nodes_table() {
    let n1 = |labels: Value, taints: Value| node("n1", labels, taints);
    let cases: Vec<(&str, Operation, Value, Option<Value>, Option<&str>)> = vec![
        ("own node create", Operation::Create, n1(json!({"kubernetes.io/hostname": "n1", "node.kubernetes.io/instance-type": "m"}), json!([])), None, None),
        ("other node", Operation::Update, node("n2", json!({}), json!([])), Some(node("n2", json!({}), json!([]))), Some("nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\"")),
        (
            "restricted label on create",
            Operation::Create,
            n1(json!({"node-restriction.kubernetes.io/trusted": "yes", "foo.k8s.io/bar": "x", "example.com/ok": "y"}), json!([])),
            None,
            Some("nodes \"n1\" is forbidden: node \"n1\" is not allowed to set the following labels: foo.k8s.io/bar, node-restriction.kubernetes.io/trusted"),
        ),
        (
            "restricted label on update",
            Operation::Update,
            n1(json!({"node-restriction.kubernetes.io/trusted": "yes"}), json!([])),
            Some(n1(json!({}), json!([]))),
            Some("nodes \"n1\" is forbidden: is not allowed to modify labels: node-restriction.kubernetes.io/trusted"),
        ),
        (
            "removing a restricted label",
            Operation::Update,
            n1(json!({}), json!([])),
            Some(n1(json!({"node-restriction.kubernetes.io/trusted": "yes"}), json!([]))),
            Some("nodes \"n1\" is forbidden: is not allowed to modify labels: node-restriction.kubernetes.io/trusted"),
        ),
        ("unchanged restricted label", Operation::Update, n1(json!({"node-restriction.kubernetes.io/trusted": "yes", "a": "b"}), json!([])), Some(n1(json!({"node-restriction.kubernetes.io/trusted": "yes"}), json!([]))), None),
        ("kubelet labels", Operation::Update, n1(json!({"kubernetes.io/os": "linux", "x.kubelet.kubernetes.io/y": "z"}), json!([])), Some(n1(json!({}), json!([]))), None),
        (
            "taints",
            Operation::Update,
            n1(json!({}), json!([])),
            Some(n1(json!({}), json!([{"key": "k", "effect": "NoSchedule"}]))),
            Some("nodes \"n1\" is forbidden: node \"n1\" is not allowed to modify taints"),
        ),
        ("delete own", Operation::Delete, Value::Null, Some(n1(json!({}), json!([]))), None),
    ];
    for (name, op, obj, old, want) in cases {
        let obj = (!obj.is_null()).then_some(obj);
        check(as_node(attrs(op, "Node", "", obj, old), "n1"), want, name).await;
    }
}

#[tokio::test]
async fn pods_table() {
    let mut plain = mirror(json!({}));
    plain["metadata"]["annotations"] = json!({});
    let mut two_owners = mirror(json!({}));
    two_owners["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "uid-n1", "controller": true}, {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "x"}]);
    let mut wrong_uid = mirror(json!({}));
    wrong_uid["metadata"]["ownerReferences"][0]["uid"] = json!("bad");
    let mut not_controller = mirror(json!({}));
    not_controller["metadata"]["ownerReferences"][0]["controller"] = json!(false);
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        ("mirror pod", mirror(json!({})), None),
        ("not a mirror pod", plain, Some("pods \"static-n1\" is forbidden: pod does not have \"kubernetes.io/config.mirror\" annotation, node \"n1\" can only create mirror pods")),
        ("bound elsewhere", mirror(json!({"nodeName": "n2"})), Some("pods \"static-n1\" is forbidden: node \"n1\" can only create pods with spec.nodeName set to itself")),
        ("two owners", two_owners, Some("pods \"static-n1\" is forbidden: node \"n1\" can only create pods with a single owner reference set to itself")),
        ("not controller", not_controller, Some("pods \"static-n1\" is forbidden: node \"n1\" can only create pods with a controller owner reference set to itself")),
        ("uid mismatch", wrong_uid, Some("pods \"static-n1\" is forbidden: node n1 UID mismatch: expected uid-n1 got bad")),
        ("service account", mirror(json!({"serviceAccountName": "default"})), Some("pods \"static-n1\" is forbidden: node \"n1\" can not create pods that reference a service account")),
        ("secret", mirror(json!({"volumes": [{"name": "v", "secret": {"secretName": "s"}}]})), Some("pods \"static-n1\" is forbidden: node \"n1\" can not create pods that reference secrets")),
        ("configmap", mirror(json!({"volumes": [{"name": "v", "configMap": {"name": "c"}}]})), Some("pods \"static-n1\" is forbidden: node \"n1\" can not create pods that reference configmaps")),
        ("pvc", mirror(json!({"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "c"}}]})), Some("pods \"static-n1\" is forbidden: node \"n1\" can not create pods that reference persistentvolumeclaims")),
    ];
    for (name, obj, want) in cases {
        check(
            as_node(attrs(Operation::Create, "Pod", "ns", Some(obj), None), "n1"),
            want,
            name,
        )
        .await;
    }
}

#[tokio::test]
async fn pod_operations() {
    let stored = |n: &str| json!({"metadata": {"name": n, "namespace": "ns"}, "spec": {"nodeName": if n == "mine" { "n1" } else { "n2" }}});
    // Delete.
    check(
        as_node(
            attrs(Operation::Delete, "Pod", "ns", None, Some(stored("mine"))),
            "n1",
        ),
        None,
        "delete own",
    )
    .await;
    check(
        as_node(attrs(Operation::Delete, "Pod", "ns", None, Some(stored("theirs"))), "n1"),
        Some("pods \"theirs\" is forbidden: node \"n1\" can only delete pods with spec.nodeName set to itself"),
        "delete other",
    )
    .await;
    // Update of the main resource.
    check(
        as_node(attrs(Operation::Update, "Pod", "ns", Some(stored("mine")), Some(stored("mine"))), "n1"),
        Some("pods \"mine\" is forbidden: unexpected operation \"UPDATE\", node \"n1\" can only create and delete mirror pods"),
        "update",
    )
    .await;
    // Status.
    let mut status = as_node(
        attrs(
            Operation::Update,
            "Pod",
            "ns",
            Some(stored("mine")),
            Some(stored("mine")),
        ),
        "n1",
    );
    status.subresource = "status".into();
    check(status.clone(), None, "own status").await;
    let mut relabel = stored("mine");
    relabel["metadata"]["labels"] = json!({"a": "b"});
    status.object = Some(relabel);
    check(
        status,
        Some("pods \"mine\" is forbidden: node \"n1\" cannot update labels through pod status"),
        "labels via status",
    )
    .await;
    let mut other = as_node(
        attrs(
            Operation::Update,
            "Pod",
            "ns",
            Some(stored("theirs")),
            Some(stored("theirs")),
        ),
        "n1",
    );
    other.subresource = "status".into();
    check(other, Some("pods \"theirs\" is forbidden: node \"n1\" can only update pod status for pods with spec.nodeName set to itself"), "other status").await;
    // Eviction.
    let mut evict = as_node(
        attrs(
            Operation::Create,
            "Eviction",
            "ns",
            Some(json!({"metadata": {"name": "theirs", "namespace": "ns"}})),
            None,
        ),
        "n1",
    );
    evict.subresource = "eviction".into();
    check(evict.clone(), Some("pods \"theirs\" is forbidden: node n1 can only evict pods with spec.nodeName set to itself"), "evict other").await;
    evict.name = "mine".into();
    check(evict, None, "evict own").await;
    // Other subresources.
    let mut exec = as_node(
        attrs(Operation::Create, "Pod", "ns", Some(stored("mine")), None),
        "n1",
    );
    exec.subresource = "binding".into();
    check(exec, Some("pods \"mine\" is forbidden: unexpected pod subresource \"binding\", only 'status' and 'eviction' are allowed"), "binding").await;
}

#[tokio::test]
async fn leases_csinodes_pvcs_tokens() {
    let lease = |name: &str| json!({"metadata": {"name": name}});
    check(
        as_node(
            attrs(
                Operation::Create,
                "Lease",
                "kube-node-lease",
                Some(lease("n1")),
                None,
            ),
            "n1",
        ),
        None,
        "own lease",
    )
    .await;
    check(
        as_node(attrs(Operation::Create, "Lease", "kube-node-lease", Some(lease("n2")), None), "n1"),
        Some("leases.coordination.k8s.io \"n2\" is forbidden: can only access node lease with the same name as the requesting node"),
        "other lease",
    )
    .await;
    check(
        as_node(attrs(Operation::Create, "Lease", "default", Some(lease("n1")), None), "n1"),
        Some("leases.coordination.k8s.io \"n1\" is forbidden: can only access leases in the \"kube-node-lease\" system namespace"),
        "lease namespace",
    )
    .await;
    check(
        as_node(attrs(Operation::Update, "CSINode", "", Some(lease("n2")), Some(lease("n2"))), "n1"),
        Some("csinodes.storage.k8s.io \"n2\" is forbidden: can only access CSINode with the same name as the requesting node"),
        "other csinode",
    )
    .await;
    let pvc = |cap: &str, label: &str| json!({"metadata": {"name": "c", "labels": {"l": label}, "resourceVersion": "1"}, "spec": {}, "status": {"capacity": {"storage": cap}}});
    let mut a = as_node(
        attrs(
            Operation::Update,
            "PersistentVolumeClaim",
            "ns",
            Some(pvc("2Gi", "a")),
            Some(pvc("1Gi", "a")),
        ),
        "n1",
    );
    check(
        a.clone(),
        Some("persistentvolumeclaims \"c\" is forbidden: may only update PVC status"),
        "pvc main",
    )
    .await;
    a.subresource = "status".into();
    check(a.clone(), None, "pvc capacity").await;
    a.object = Some(pvc("2Gi", "b"));
    check(a, Some("persistentvolumeclaims \"c\" is forbidden: node \"n1\" is not allowed to update fields other than status.capacity and status.conditions"), "pvc labels").await;
    let token = |r: Value| json!({"metadata": {"name": "default"}, "spec": {"boundObjectRef": r}});
    let mut t = as_node(
        attrs(
            Operation::Create,
            "ServiceAccount",
            "ns",
            Some(token(
                json!({"apiVersion": "v1", "kind": "Pod", "name": "mine", "uid": "pod-uid"}),
            )),
            None,
        ),
        "n1",
    );
    t.subresource = "token".into();
    check(t.clone(), None, "token for own pod").await;
    t.object = Some(token(Value::Null));
    check(
        t.clone(),
        Some("serviceaccounts \"default\" is forbidden: node requested token not bound to a pod"),
        "unbound token",
    )
    .await;
    t.object = Some(token(
        json!({"apiVersion": "v1", "kind": "Pod", "name": "theirs", "uid": ""}),
    ));
    check(t, Some("serviceaccounts \"default\" is forbidden: node requested token with a pod binding without a uid"), "token without uid").await;
}
