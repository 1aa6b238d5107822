//! More of the node agent with kubectl 1.33: sidecar init containers (`restartPolicy:
//! Always`) start before the containers, keep running beside them and are stopped once the
//! containers are done; volumes (emptyDir shared with an init container, configMap,
//! downwardAPI) preopened for Wasm containers; a hundred Wasm pods run on one node; and
//! `kubectl top pod` reports a Wasm guest's linear memory.

use std::time::Duration;

use crate::harness::eventually;
use crate::kubelet::{apply, cluster, jsonpath, kubectl, wait_for};

#[test]
fn sidecar_runs_beside_the_containers_and_stops_after_them() {
    let server = cluster();
    apply(
        &server,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: with-sidecar}
spec:
  runtimeClassName: wasm
  restartPolicy: Never
  initContainers:
  - {name: proxy, image: "demo:1", restartPolicy: Always, args: ["--print", "proxy up", "--sleep-ms", "600000"]}
  - {name: setup, image: "demo:1", args: ["--print", "setup done"]}
  containers:
  - {name: main, image: "demo:1", args: ["--print", "working", "--sleep-ms", "1500"]}
"#,
    );
    // While the main container works, the sidecar runs and the pod is Ready.
    let running = eventually(Duration::from_secs(30), || {
        jsonpath(&server, "with-sidecar", "{.status.initContainerStatuses[0].state.running.startedAt} {.status.containerStatuses[0].state.running.startedAt}")
            .split(' ')
            .filter(|s| !s.is_empty())
            .count()
            == 2
    });
    assert!(
        running,
        "{}",
        kubectl(&server, &["get", "pod", "with-sidecar", "-o", "yaml"])
    );
    assert_eq!(
        jsonpath(
            &server,
            "with-sidecar",
            "{.status.conditions[?(@.type==\"Ready\")].status}"
        ),
        "True"
    );
    // Then the pod succeeds and the sidecar is stopped.
    wait_for(
        &server,
        "with-sidecar",
        "{.status.phase}",
        "Succeeded",
        Duration::from_secs(60),
    );
    wait_for(
        &server,
        "with-sidecar",
        "{.status.initContainerStatuses[0].state.terminated.exitCode}",
        "143",
        Duration::from_secs(30),
    );
    assert_eq!(
        jsonpath(
            &server,
            "with-sidecar",
            "{.status.initContainerStatuses[1].state.terminated.exitCode}"
        ),
        "0"
    );
    assert!(kubectl(&server, &["logs", "with-sidecar", "-c", "proxy"]).contains("proxy up\n"));
}

#[test]
fn a_hundred_wasm_pods_run_on_one_node() {
    let server = cluster();
    apply(
        &server,
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: many}
spec:
  replicas: 100
  selector: {matchLabels: {app: many}}
  template:
    metadata: {labels: {app: many}}
    spec:
      runtimeClassName: wasm
      containers:
      - {name: main, image: "demo:1", args: ["--print", "up", "--sleep-ms", "600000"], resources: {limits: {memory: 8Mi}}}
"#,
    );
    kubectl(
        &server,
        &["rollout", "status", "deployment/many", "--timeout=120s"],
    );
    let phases = kubectl(
        &server,
        &[
            "get",
            "pods",
            "-l",
            "app=many",
            "-o",
            "jsonpath={.items[*].status.phase}",
        ],
    );
    let running = phases.split(' ').filter(|p| *p == "Running").count();
    assert_eq!(running, 100, "{phases}");
    // Scaling down stops them all and deletes the objects.
    kubectl(&server, &["scale", "deployment/many", "--replicas=0"]);
    let gone = eventually(Duration::from_secs(60), || {
        kubectl(&server, &["get", "pods", "-l", "app=many", "-o", "name"]).is_empty()
    });
    assert!(gone);
}

#[test]
fn volumes_are_preopened_for_wasm_containers() {
    let server = cluster();
    apply(
        &server,
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: "hello from a configmap"}
---
apiVersion: v1
kind: Pod
metadata: {name: vols, labels: {tier: demo}}
spec:
  runtimeClassName: wasm
  restartPolicy: Never
  volumes:
  - {name: scratch, emptyDir: {}}
  - {name: cfg, configMap: {name: settings}}
  - name: meta
    downwardAPI: {items: [{path: labels-tier, fieldRef: {fieldPath: "metadata.labels['tier']"}}]}
  initContainers:
  - name: producer
    image: "demo:1"
    args: ["--write", "/work/shared.txt", "made by init"]
    volumeMounts: [{name: scratch, mountPath: /work}]
  containers:
  - name: consumer
    image: "demo:1"
    args: ["--cat", "/in/shared.txt", "--cat", "/cfg/greeting", "--print", "", "--cat", "/meta/labels-tier", "--print", "", "--write", "/cfg/nope", "x"]
    volumeMounts:
    - {name: scratch, mountPath: /in}
    - {name: cfg, mountPath: /cfg}
    - {name: meta, mountPath: /meta}
"#,
    );
    wait_for(
        &server,
        "vols",
        "{.status.phase}",
        "Succeeded",
        Duration::from_secs(60),
    );
    let logs = kubectl(&server, &["logs", "vols"]);
    assert!(logs.contains("made by init\n"), "{logs}");
    assert!(logs.contains("hello from a configmap\n"), "{logs}");
    assert!(logs.contains("demo\n"), "{logs}");
    // configMap volumes are read-only.
    assert!(logs.contains("write /cfg/nope:"), "{logs}");
}

#[test]
fn kubectl_top_reports_a_wasm_guests_memory() {
    let server = cluster();
    apply(
        &server,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: holder}
spec:
  runtimeClassName: wasm
  terminationGracePeriodSeconds: 0
  containers:
  - {name: main, image: "demo:1", args: ["--alloc-mb", "24", "--sleep-ms", "120000"],
     resources: {limits: {memory: 64Mi}}}
"#,
    );
    wait_for(
        &server,
        "holder",
        "{.status.phase}",
        "Running",
        Duration::from_secs(60),
    );
    let mut top = String::new();
    let shown = eventually(Duration::from_secs(30), || {
        let out = server.kubectl(crate::harness::KUBECTL_133, &["top", "pod", "holder"]);
        top = String::from_utf8_lossy(&out.stdout).into_owned();
        let mem = top
            .lines()
            .find(|l| l.starts_with("holder"))
            .and_then(|l| l.split_whitespace().nth(2))
            .and_then(|m| m.trim_end_matches("Mi").parse::<u64>().ok());
        mem.is_some_and(|m| (24..64).contains(&m))
    });
    assert!(shown, "kubectl top pod holder: {top}");
}
