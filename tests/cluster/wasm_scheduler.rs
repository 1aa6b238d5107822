//! A Wasm scheduler plugin (WasmPlugin `spec.type: scheduler`) in a running server with
//! simulated nodes, driven by kubectl 1.33: the `prefer-nodes` example's filter keeps pods off
//! the node labelled `keelson.dev/no-wasm` (its reason in the FailedScheduling event) and its
//! score steers them to the node labelled `disk=ssd`; a looping plugin makes a pod
//! unschedulable with the plugin's error while the scheduler keeps going, and once it is
//! removed the pod is placed.

use std::time::Duration;

use crate::harness::{eventually, ok, Component, Server, KUBECTL_133};
use crate::plugins::{base64_file, component};

const WAIT: Duration = Duration::from_secs(40);

fn apply(server: &Server, yaml: &str) {
    ok(server.kubectl_stdin(KUBECTL_133, &["apply", "-f", "-"], yaml));
}

fn pod(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - name: c\n    image: busybox:1.36\n    resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}\n{extra_spec}"
    )
}

fn node_of(server: &Server, name: &str) -> String {
    let out = server.kubectl(
        KUBECTL_133,
        &["get", "pod", name, "-o", "jsonpath={.spec.nodeName}"],
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_bound(server: &Server, name: &str) -> String {
    let mut node = String::new();
    let bound = eventually(WAIT, || {
        node = node_of(server, name);
        !node.is_empty()
    });
    assert!(bound, "pod {name} was not scheduled\n{}", server.log_text());
    node
}

fn wait_event(server: &Server, pod: &str, text: &str) -> String {
    let mut events = String::new();
    let seen = eventually(WAIT, || {
        events = ok(server.kubectl(
            KUBECTL_133,
            &[
                "get",
                "events",
                "--field-selector",
                &format!("involvedObject.name={pod}"),
                "-o",
                "wide",
            ],
        ));
        events.contains(text)
    });
    assert!(seen, "no event with {text:?} for {pod}:\n{events}");
    events
}

fn plugin_yaml(name: &str, wasm_dir: &str, extra: &str) -> String {
    let b64 = base64_file(&component(wasm_dir));
    format!(
        "apiVersion: keelson.dev/v1alpha1\nkind: WasmPlugin\nmetadata: {{name: {name}}}\nspec:\n  type: scheduler\n  component: {{base64: \"{b64}\"}}\n  timeoutMillis: 300\n{extra}"
    )
}

fn wait_running(server: &Server, name: &str, generations: usize) {
    let needle = format!("plugin.name={name}");
    let loaded = eventually(WAIT, || {
        server
            .log_text()
            .lines()
            .filter(|l| l.contains("wasm scheduler plugin running") && l.contains(&needle))
            .count()
            >= generations
    });
    assert!(
        loaded,
        "scheduler did not load {name}:\n{}",
        server.log_text()
    );
}

#[test]
fn wasm_plugin_filters_and_steers_and_a_looping_one_is_contained() {
    let server = Server::start_with_scheduler(&[]);
    let _nodes = [
        Component::sim_nodes(
            &server,
            &[
                "1",
                "--name-prefix",
                "nowasm-",
                "--memory",
                "64Gi",
                "--label",
                "keelson.dev/no-wasm=true",
            ],
        ),
        Component::sim_nodes(&server, &["1", "--name-prefix", "big-", "--memory", "32Gi"]),
        Component::sim_nodes(
            &server,
            &[
                "1",
                "--name-prefix",
                "ssd-",
                "--memory",
                "8Gi",
                "--label",
                "disk=ssd",
            ],
        ),
    ];
    let ready = eventually(WAIT, || {
        let out = server.kubectl(KUBECTL_133, &["get", "nodes", "--no-headers"]);
        String::from_utf8_lossy(&out.stdout)
            .matches(" Ready")
            .count()
            == 3
    });
    assert!(ready, "3 nodes did not register");

    apply(
        &server,
        &plugin_yaml(
            "prefer-ssd",
            "examples/prefer-nodes",
            "  config: {preferLabel: {key: disk, value: ssd}}\n  scheduler: {weight: 100}\n",
        ),
    );
    wait_running(&server, "prefer-ssd", 1);
    for i in 0..4 {
        apply(&server, &pod(&format!("steered-{i}"), ""));
    }
    for i in 0..4 {
        let node = wait_bound(&server, &format!("steered-{i}"));
        assert!(node.starts_with("ssd-"), "steered-{i} went to {node}");
    }
    // The filter: a pod that may only go to the no-wasm node stays Pending with the reason.
    apply(
        &server,
        &pod(
            "kept-off",
            "  nodeSelector: {keelson.dev/no-wasm: \"true\"}\n",
        ),
    );
    wait_event(&server, "kept-off", "node(s) had label keelson.dev/no-wasm");
    assert_eq!(node_of(&server, "kept-off"), "");

    // Without the ssd preference the score follows free memory: big- beats ssd-, and no-wasm
    // (the most free memory) stays filtered out.
    apply(
        &server,
        &plugin_yaml(
            "prefer-ssd",
            "examples/prefer-nodes",
            "  config: {otherMax: 100}\n  scheduler: {weight: 100}\n",
        ),
    );
    wait_running(&server, "prefer-ssd", 2);
    apply(&server, &pod("by-memory", ""));
    let node = wait_bound(&server, "by-memory");
    assert!(node.starts_with("big-"), "by-memory went to {node}");

    // A looping plugin: the pod fails with the plugin's error, the scheduler keeps going.
    apply(
        &server,
        &plugin_yaml(
            "looping",
            "fixtures/scheduler-hostile",
            "  config: {mode: loop}\n  failurePolicy: Fail\n",
        ),
    );
    wait_running(&server, "looping", 1);
    apply(&server, &pod("victim", ""));
    let events = wait_event(&server, "victim", "running Filter plugin \"looping\"");
    assert!(events.contains("deadline"), "{events}");
    assert_eq!(node_of(&server, "victim"), "");
    ok(server.kubectl(KUBECTL_133, &["delete", "wasmplugin", "looping"]));
    let node = wait_bound(&server, "victim");
    assert!(!node.starts_with("nowasm-"), "victim went to {node}");
    assert!(
        server.log_text().contains("wasm scheduler plugin failed"),
        "errors are logged"
    );
}
