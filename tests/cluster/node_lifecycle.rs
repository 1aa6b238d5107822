//! The node lifecycle controller with a short grace period
//! (`--node-monitor-grace-period=4`): a simulated node whose process stops renewing its Lease
//! turns Ready=Unknown, gets the unreachable NoSchedule and NoExecute taints, its pods turn
//! unready, and those tolerating the taint for 2 s are evicted while those with the default
//! 300 s (DefaultTolerationSeconds admission) stay.

use std::time::Duration;

use crate::harness::{eventually, ok, Component, Server, KUBECTL_133};

const WAIT: Duration = Duration::from_secs(30);

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: quick, labels: {app: x}}
spec:
  containers: [{name: c, image: busybox}]
  tolerations:
  - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
---
apiVersion: v1
kind: Pod
metadata: {name: patient, labels: {app: x}}
spec:
  containers: [{name: c, image: busybox}]
"#;

fn get(server: &Server, args: &[&str]) -> String {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    String::from_utf8_lossy(&server.kubectl(KUBECTL_133, &all).stdout).into_owned()
}

fn ready(server: &Server) -> String {
    get(
        server,
        &[
            "node",
            "sim-0",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}/{.status.conditions[?(@.type=="Ready")].reason}"#,
        ],
    )
}

#[test]
fn silent_node_is_tainted_and_its_pods_evicted() {
    let server =
        Server::start_with_scheduler(&["--node-monitor-grace-period=4", "--node-monitor-period=1"]);
    let mut nodes = Component::sim_nodes(&server, &["1", "--lease-renew-seconds=1"]);
    ok(server.kubectl_stdin(KUBECTL_133, &["apply", "-f", "-"], PODS));
    assert!(eventually(WAIT, || get(
        &server,
        &["pods", "-o", "jsonpath={.items[*].status.phase}"]
    ) == "Running Running"));
    // A node renewing its Lease stays Ready past the grace period.
    std::thread::sleep(Duration::from_secs(6));
    assert!(ready(&server).starts_with("True/"), "{}", ready(&server));

    nodes.kill();
    assert!(
        eventually(WAIT, || ready(&server) == "Unknown/NodeStatusUnknown"),
        "Ready is {}",
        ready(&server)
    );
    let taints = get(
        &server,
        &[
            "node",
            "sim-0",
            "-o",
            r#"jsonpath={range .spec.taints[*]}{.key}:{.effect} {end}"#,
        ],
    );
    assert!(
        taints.contains("node.kubernetes.io/unreachable:NoSchedule")
            && taints.contains("node.kubernetes.io/unreachable:NoExecute"),
        "{taints}"
    );
    let pod_ready = get(
        &server,
        &[
            "pod",
            "patient",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#,
        ],
    );
    assert!(
        eventually(WAIT, || get(
            &server,
            &[
                "pod",
                "patient",
                "-o",
                r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#,
            ],
        ) == "False"),
        "the pods of an unreachable node are not Ready: {pod_ready}"
    );

    // quick tolerates the taint for 2 s, then is deleted (it stays Terminating: no kubelet).
    assert!(eventually(WAIT, || !get(
        &server,
        &[
            "pod",
            "quick",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}"
        ]
    )
    .is_empty()));
    let reason = get(
        &server,
        &[
            "pod",
            "quick",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="DisruptionTarget")].reason}"#,
        ],
    );
    assert_eq!(reason, "DeletionByTaintManager");
    let events = get(
        &server,
        &[
            "events",
            "--field-selector",
            "reason=TaintManagerEviction",
            "-o",
            "jsonpath={.items[*].message}",
        ],
    );
    assert!(
        events.contains("Marking for deletion Pod default/quick"),
        "{events}"
    );
    // patient has the default 300 s toleration and stays.
    let patient = get(
        &server,
        &[
            "pod",
            "patient",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}|{.spec.tolerations[*].tolerationSeconds}",
        ],
    );
    assert!(
        patient.starts_with('|') && patient.contains("300"),
        "{patient}"
    );
}
