//! Cleanup controllers on simulated nodes with kubectl 1.33: a finished Job with
//! `ttlSecondsAfterFinished` is deleted with its pods once the TTL passes (one without it
//! stays); the pod garbage collector deletes the oldest finished pods beyond
//! `--terminated-pod-gc-threshold` and a pod bound to a Node that does not exist.

use std::time::Duration;

use crate::harness::{eventually, ok, Component, Server, KUBECTL_133};

fn job(name: &str, ttl: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n{ttl}  template:\n    metadata:\n      annotations: {{keelson.dev/sim-duration-seconds: '1'}}\n    spec:\n      restartPolicy: Never\n      containers: [{{name: c, image: busybox}}]\n"
    )
}

fn names(server: &Server, args: &[&str]) -> Vec<String> {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "jsonpath={.items[*].metadata.name}"]);
    let out = String::from_utf8_lossy(&server.kubectl(KUBECTL_133, &all).stdout).into_owned();
    out.split_whitespace().map(String::from).collect()
}

#[test]
fn finished_jobs_and_pods_are_cleaned_up() {
    let server = Server::start_with_scheduler(&["--terminated-pod-gc-threshold", "3"]);
    let _nodes = Component::sim_nodes(&server, &["2"]);
    ok(server.kubectl_stdin(
        KUBECTL_133,
        &["apply", "-f", "-"],
        &job("short-lived", "  ttlSecondsAfterFinished: 3\n"),
    ));
    ok(server.kubectl_stdin(KUBECTL_133, &["apply", "-f", "-"], &job("kept", "")));
    // Both complete; the one with a TTL goes, with its pod, a few seconds later.
    assert!(
        eventually(Duration::from_secs(60), || {
            !names(&server, &["jobs"]).contains(&"short-lived".to_string())
        }),
        "jobs: {:?}",
        names(&server, &["jobs"])
    );
    assert!(eventually(Duration::from_secs(30), || {
        names(&server, &["pods", "-l", "job-name=short-lived"]).is_empty()
    }));
    let kept = ok(server.kubectl(
        KUBECTL_133,
        &["get", "job", "kept", "-o", "jsonpath={.status.succeeded}"],
    ));
    assert_eq!(kept, "1", "the Job without a TTL completed and stays");

    // Six finished pods (the kept Job's and five more): the three oldest are collected.
    for i in 0..5 {
        let pod = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: done-{i}\n  annotations: {{keelson.dev/sim-duration-seconds: '1'}}\nspec:\n  restartPolicy: Never\n  containers: [{{name: c, image: busybox}}]\n"
        );
        ok(server.kubectl_stdin(KUBECTL_133, &["apply", "-f", "-"], &pod));
        std::thread::sleep(Duration::from_millis(1100)); // distinct creation times
    }
    assert!(
        eventually(Duration::from_secs(90), || {
            let left = names(&server, &["pods"]);
            left.len() == 3
                && ["done-2", "done-3", "done-4"]
                    .iter()
                    .all(|n| left.contains(&n.to_string()))
        }),
        "pods: {:?}",
        names(&server, &["pods"])
    );

    // A pod bound to a Node that does not exist is collected after the quarantine.
    let ghost = "apiVersion: v1\nkind: Pod\nmetadata: {name: on-ghost}\nspec:\n  nodeName: ghost-node\n  containers: [{name: c, image: busybox}]\n";
    ok(server.kubectl_stdin(KUBECTL_133, &["apply", "-f", "-"], ghost));
    assert!(
        eventually(Duration::from_secs(120), || {
            !names(&server, &["pods"]).contains(&"on-ghost".to_string())
        }),
        "the orphaned pod was not collected"
    );
}
