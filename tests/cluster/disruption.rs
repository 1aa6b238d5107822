//! The disruption controller with the eviction subresource, driven by kubectl 1.33 on
//! simulated nodes: a PodDisruptionBudget over a Deployment gets Kubernetes' status, one
//! eviction is granted, the next refused with 429 until the replacement pod is Ready.

use std::time::Duration;

use crate::harness::{eventually, ok, Component, Server, KUBECTL_133};

const WAIT: Duration = Duration::from_secs(60);

const BUDGET: &str = r#"
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: web}}
"#;

fn get(server: &Server, args: &[&str]) -> String {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    String::from_utf8_lossy(&server.kubectl(KUBECTL_133, &all).stdout).into_owned()
}

fn budget(server: &Server) -> String {
    get(
        server,
        &[
            "pdb",
            "web",
            "-o",
            r#"jsonpath={.status.currentHealthy} {.status.desiredHealthy} {.status.expectedPods} {.status.disruptionsAllowed} {.status.conditions[?(@.type=="DisruptionAllowed")].reason}"#,
        ],
    )
}

fn evict(server: &Server, pod: &str) -> std::process::Output {
    let body = format!(
        r#"{{"apiVersion":"policy/v1","kind":"Eviction","metadata":{{"name":"{pod}","namespace":"default"}}}}"#
    );
    let path = format!("/api/v1/namespaces/default/pods/{pod}/eviction");
    server.kubectl_stdin(KUBECTL_133, &["create", "--raw", &path, "-f", "-"], &body)
}

#[test]
fn budget_status_and_eviction() {
    let server = Server::start_with_scheduler(&[]);
    let mut nodes = Component::sim_nodes(&server, &["2"]);
    ok(server.kubectl(
        KUBECTL_133,
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--replicas=3",
        ],
    ));
    ok(server.kubectl_stdin(KUBECTL_133, &["apply", "-f", "-"], BUDGET));
    let mut seen = String::new();
    assert!(
        eventually(WAIT, || {
            seen = budget(&server);
            seen == "3 2 3 1 SufficientPods"
        }),
        "budget status: {seen}"
    );

    let pods: Vec<String> = get(
        &server,
        &[
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
    )
    .split_whitespace()
    .map(str::to_string)
    .collect();
    // Without nodes the evicted pod stays Terminating and its replacement Pending.
    nodes.kill();
    ok(evict(&server, &pods[0]));
    let refused = evict(&server, &pods[1]);
    assert!(!refused.status.success(), "the second eviction is refused");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("Cannot evict pod as it would violate the pod's disruption budget")
            || stderr.contains("TooManyRequests")
            || stderr.contains("429"),
        "{stderr}"
    );
    // Kubernetes counts every selected pod for an integer minAvailable: the Terminating one
    // and its replacement too.
    assert!(
        eventually(WAIT, || {
            seen = budget(&server);
            seen == "2 2 4 0 InsufficientPods"
        }),
        "budget status after one eviction: {seen}"
    );
    // Once the replacement runs, the budget allows one disruption again.
    let _nodes = Component::sim_nodes(&server, &["2"]);
    assert!(
        eventually(WAIT, || {
            seen = budget(&server);
            seen == "3 2 3 1 SufficientPods"
        }),
        "budget status after the replacement: {seen}"
    );
    ok(evict(&server, &pods[1]));
}
