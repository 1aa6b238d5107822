//! The built-in admission plugins against the real server, driven by kubectl 1.33: LimitRange
//! defaults and limits (LimitRanger), `serviceAccountName: default` and a refused unknown
//! account, even in a namespace created a moment before (ServiceAccount), the not-ready /
//! unreachable tolerations (DefaultTolerationSeconds), PriorityClasses (Priority), the default
//! StorageClass (DefaultStorageClass), and, on a server started with
//! `--enable-admission-plugins` / `--disable-admission-plugins`, the opt-in AlwaysPullImages,
//! PodNodeSelector and PodTolerationRestriction.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{eventually, fails, ok, Server, KUBECTL_133};

const K: &str = KUBECTL_133;

fn pod_yaml(name: &str, ns: &str, spec_extra: &str, resources: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{spec_extra}  containers:\n  - name: c1\n    image: busybox:1.36\n    resources: {resources}\n"
    )
}

fn namespace_with_account(server: &Server, ns: &str) {
    ok(server.kubectl(K, &["create", "namespace", ns]));
    assert!(eventually(Duration::from_secs(10), || server
        .kubectl(K, &["get", "serviceaccount", "default", "-n", ns])
        .status
        .success()));
}

fn get_json(server: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&ok(server.kubectl(K, &all))).unwrap()
}

fn create(server: &Server, yaml: &str) -> std::process::Output {
    server.kubectl_stdin(K, &["create", "-f", "-"], yaml)
}

#[test]
fn default_admission_plugins_with_kubectl() {
    let server = Server::start();
    namespace_with_account(&server, "adm");

    // LimitRanger: defaults, then max.
    ok(create(
        &server,
        "apiVersion: v1\nkind: LimitRange\nmetadata: {name: lr, namespace: adm}\nspec:\n  limits:\n  - type: Container\n    default: {cpu: 500m, memory: 256Mi}\n    defaultRequest: {cpu: 100m, memory: 128Mi}\n    max: {cpu: \"1\"}\n",
    ));
    ok(create(&server, &pod_yaml("plain", "adm", "", "{}")));
    let pod = get_json(&server, &["get", "pod", "plain", "-n", "adm"]);
    assert_eq!(
        pod["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}}),
        "{pod:#}"
    );
    assert_eq!(
        pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container c1; cpu, memory limit for container c1"
    );
    // ServiceAccount and DefaultTolerationSeconds on the same pod; Priority's default of 0.
    assert_eq!(pod["spec"]["serviceAccountName"], "default");
    let tolerations = pod["spec"]["tolerations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        assert!(
            tolerations.contains(&json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})),
            "{key} toleration missing: {tolerations:?}"
        );
    }
    assert_eq!(pod["spec"]["priority"], 0);
    assert_eq!(pod["spec"]["preemptionPolicy"], "PreemptLowerPriority");

    let err = fails(create(
        &server,
        &pod_yaml(
            "big",
            "adm",
            "",
            "{limits: {cpu: \"2\"}, requests: {cpu: \"1\"}}",
        ),
    ));
    assert!(
        err.contains("Error from server (Forbidden): error when creating \"STDIN\": pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"),
        "{err}"
    );
    assert!(!server
        .kubectl(K, &["get", "pod", "big", "-n", "adm"])
        .status
        .success());

    // ServiceAccount: an unknown account is refused.
    let err = fails(create(
        &server,
        &pod_yaml("ghost", "adm", "  serviceAccountName: ghost\n", "{}"),
    ));
    assert!(
        err.contains("pods \"ghost\" is forbidden: error looking up service account adm/ghost: serviceaccount \"ghost\" not found"),
        "{err}"
    );
    // … and a pod created together with its namespace waits for the controller's `default`.
    ok(create(
        &server,
        &format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: fresh}}\n---\n{}",
            pod_yaml("early", "fresh", "", "{}")
        ),
    ));
    assert_eq!(
        get_json(&server, &["get", "pod", "early", "-n", "fresh"])["spec"]["serviceAccountName"],
        "default"
    );

    // Priority.
    ok(create(&server, "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: high}\nvalue: 1000\npreemptionPolicy: Never\n"));
    ok(create(
        &server,
        &pod_yaml("important", "adm", "  priorityClassName: high\n", "{}"),
    ));
    let pod = get_json(&server, &["get", "pod", "important", "-n", "adm"]);
    assert_eq!(
        (
            pod["spec"]["priority"].clone(),
            pod["spec"]["preemptionPolicy"].clone()
        ),
        (json!(1000), json!("Never"))
    );
    ok(create(
        &server,
        &pod_yaml(
            "critical",
            "adm",
            "  priorityClassName: system-node-critical\n",
            "{}",
        ),
    ));
    assert_eq!(
        get_json(&server, &["get", "pod", "critical", "-n", "adm"])["spec"]["priority"],
        2_000_001_000
    );
    let err = fails(create(
        &server,
        &pod_yaml("lost", "adm", "  priorityClassName: nope\n", "{}"),
    ));
    assert!(
        err.contains("Error from server (Forbidden): error when creating \"STDIN\": pods \"lost\" is forbidden: no PriorityClass with name nope was found"),
        "{err}"
    );
    ok(create(&server, "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: everyone}\nvalue: 7\nglobalDefault: true\n"));
    ok(create(&server, &pod_yaml("defaulted", "adm", "", "{}")));
    let pod = get_json(&server, &["get", "pod", "defaulted", "-n", "adm"]);
    assert_eq!(
        (
            pod["spec"]["priorityClassName"].clone(),
            pod["spec"]["priority"].clone()
        ),
        (json!("everyone"), json!(7))
    );
    let err = fails(create(&server, "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: second}\nvalue: 8\nglobalDefault: true\n"));
    assert!(
        err.contains(
            "PriorityClass everyone is already marked as default. Only one default can exist"
        ),
        "{err}"
    );

    // DefaultStorageClass.
    ok(create(&server, "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: slow}\nprovisioner: example.com/slow\n"));
    ok(create(
        &server,
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: standard\n  annotations: {storageclass.kubernetes.io/is-default-class: \"true\"}\nprovisioner: example.com/std\n",
    ));
    let pvc = |name: &str, class: &str| {
        format!("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}, namespace: adm}}\nspec:\n{class}  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n")
    };
    ok(create(&server, &pvc("data", "")));
    ok(create(
        &server,
        &pvc("explicit", "  storageClassName: slow\n"),
    ));
    let class = |name: &str| {
        ok(server.kubectl(
            K,
            &[
                "get",
                "pvc",
                name,
                "-n",
                "adm",
                "-o",
                "jsonpath={.spec.storageClassName}",
            ],
        ))
    };
    assert_eq!(class("data"), "standard");
    assert_eq!(class("explicit"), "slow");
}

#[test]
fn opt_in_admission_plugins_with_kubectl() {
    let server = Server::start_with_args(&[
        "--enable-admission-plugins=AlwaysPullImages,PodNodeSelector,PodTolerationRestriction",
        "--disable-admission-plugins=DefaultTolerationSeconds",
    ]);
    ok(create(
        &server,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: prod\n  annotations:\n    scheduler.alpha.kubernetes.io/node-selector: env=prod\n    scheduler.alpha.kubernetes.io/defaultTolerations: '[{\"key\": \"dedicated\", \"operator\": \"Equal\", \"value\": \"prod\", \"effect\": \"NoSchedule\"}]'\n    scheduler.alpha.kubernetes.io/tolerationsWhitelist: '[{\"key\": \"dedicated\", \"operator\": \"Exists\"}]'\n",
    ));
    assert!(eventually(Duration::from_secs(10), || server
        .kubectl(K, &["get", "serviceaccount", "default", "-n", "prod"])
        .status
        .success()));

    ok(create(
        &server,
        &pod_yaml("web", "prod", "  nodeSelector: {disk: ssd}\n", "{}"),
    ));
    let pod = get_json(&server, &["get", "pod", "web", "-n", "prod"]);
    assert_eq!(
        pod["spec"]["nodeSelector"],
        json!({"disk": "ssd", "env": "prod"})
    );
    assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
    // Only the namespace's default toleration: DefaultTolerationSeconds is disabled.
    assert_eq!(
        pod["spec"]["tolerations"],
        json!([{"key": "dedicated", "operator": "Equal", "value": "prod", "effect": "NoSchedule"}])
    );

    let err = fails(create(
        &server,
        &pod_yaml("dev", "prod", "  nodeSelector: {env: dev}\n", "{}"),
    ));
    assert!(
        err.contains("pods \"dev\" is forbidden: pod node label selector conflicts with its namespace node label selector"),
        "{err}"
    );
    let err = fails(create(
        &server,
        &pod_yaml(
            "gpu",
            "prod",
            "  tolerations: [{key: gpu, operator: Exists}]\n",
            "{}",
        ),
    ));
    assert!(
        err.contains("pods \"gpu\" is forbidden: pod tolerations (possibly merged with namespace default tolerations) conflict with its namespace whitelist"),
        "{err}"
    );
}
