//! The ResourceQuota controller on simulated nodes with kubectl 1.33: a new quota's usage is
//! computed from what its namespace already holds; creating and deleting pods and ConfigMaps
//! moves `status.used` both ways; a pod that turns Succeeded gives back its `pods` and compute
//! usage; `kubectl describe quota` shows the recalculated Used column.

use std::time::Duration;

use crate::harness::{eventually, ok, Component, Server, KUBECTL_133};

const K: &str = KUBECTL_133;

fn pod(name: &str, annotations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: rq, annotations: {{{annotations}}}}}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: busybox\n    resources: {{requests: {{cpu: 100m}}}}\n"
    )
}

/// `status.used.<resource>` of quota `q` in `rq`.
fn used(server: &Server, resource: &str) -> String {
    let path = format!("jsonpath={{.status.used.{}}}", resource.replace('.', "\\."));
    let out = server.kubectl(K, &["get", "quota", "q", "-n", "rq", "-o", &path]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_used(server: &Server, resource: &str, want: &str) {
    let mut last = String::new();
    let reached = eventually(Duration::from_secs(30), || {
        last = used(server, resource);
        last == want
    });
    assert!(
        reached,
        "used {resource}: {last:?}, want {want:?}\n{}",
        server.log_text()
    );
}

#[test]
fn quota_usage_is_recalculated() {
    let server = Server::start_with_scheduler(&[]);
    let _nodes = Component::sim_nodes(&server, &["1"]);
    let run = |args: &[&str]| ok(server.kubectl(K, args));
    run(&["create", "namespace", "rq"]);
    assert!(eventually(Duration::from_secs(10), || server
        .kubectl(K, &["get", "serviceaccount", "default", "-n", "rq"])
        .status
        .success()));
    run(&["create", "configmap", "before", "-n", "rq"]);
    let configmaps = || {
        run(&["get", "configmaps", "-n", "rq", "-o", "name"])
            .lines()
            .count()
            .to_string()
    };
    let existing = configmaps();
    run(&[
        "create",
        "quota",
        "q",
        "--hard=pods=3,configmaps=10,requests.cpu=1,count/deployments.apps=2",
        "-n",
        "rq",
    ]);
    // Computed from what the namespace already holds.
    wait_used(&server, "configmaps", &existing);
    wait_used(&server, "pods", "0");
    wait_used(&server, "requests.cpu", "0");
    wait_used(&server, "count/deployments.apps", "0");

    // Pods: one ends after a second (Succeeded), one keeps running.
    let apply = |yaml: String| ok(server.kubectl_stdin(K, &["apply", "-f", "-"], &yaml));
    apply(pod("runs", ""));
    apply(pod("done", "keelson.dev/sim-duration-seconds: '1'"));
    let phase = || {
        run(&[
            "get",
            "pod",
            "done",
            "-n",
            "rq",
            "-o",
            "jsonpath={.status.phase}",
        ])
    };
    assert!(
        eventually(Duration::from_secs(30), || phase() == "Succeeded"),
        "{}",
        phase()
    );
    // The finished pod no longer counts as a pod nor for its cpu request.
    wait_used(&server, "pods", "1");
    wait_used(&server, "requests.cpu", "100m");
    let described = run(&["describe", "quota", "q", "-n", "rq"]);
    for row in [
        ["pods", "1", "3"],
        ["requests.cpu", "100m", "1"],
        ["count/deployments.apps", "0", "2"],
    ] {
        assert!(
            described
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == row),
            "{row:?} in:\n{described}"
        );
    }

    // Deletes give usage back.
    run(&["delete", "pod", "runs", "-n", "rq", "--wait=false"]);
    wait_used(&server, "pods", "0");
    wait_used(&server, "requests.cpu", "0");
    run(&["delete", "configmap", "before", "-n", "rq"]);
    let fewer = (existing.parse::<usize>().unwrap() - 1).to_string();
    wait_used(&server, "configmaps", &fewer);
    // Other kinds named by count/<resource>.<group> are counted too.
    run(&[
        "create",
        "deployment",
        "d",
        "--image=busybox",
        "--replicas=0",
        "-n",
        "rq",
    ]);
    wait_used(&server, "count/deployments.apps", "1");
}
