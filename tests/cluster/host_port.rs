//! `hostPort` on the containerd runtime (see [`crate::containerd`] for what the suite needs):
//! a container port published on the node's address through the CNI `portmap` plugin answers
//! there while the pod runs, and is gone once the pod is deleted.

use std::time::Duration;

use crate::containerd::http_get;
use crate::harness::eventually;
use crate::kubelet::{apply, jsonpath, kubectl, wait_for};
use crate::local_containerd::containerd_cluster;

/// The host port the test publishes (outside the NodePort range and the ephemeral ports).
const HOST_PORT: u16 = 28_080;

#[test]
#[ignore = "needs containerd, runc, CNI plugins, iptables and root (tools/test.sh installs them)"]
fn host_port_answers_on_the_node_address_until_the_pod_is_deleted() {
    let (_containerd, server) = containerd_cluster(7);
    apply(
        &server,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: published}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: busybox:test
    imagePullPolicy: Never
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports: [{{containerPort: 8080, hostPort: {HOST_PORT}}}]
"#
        ),
    );
    wait_for(
        &server,
        "published",
        "{.status.phase}",
        "Running",
        Duration::from_secs(60),
    );
    let node_ip = kubectl(
        &server,
        &[
            "get",
            "nodes",
            "-o",
            r#"jsonpath={.items[0].status.addresses[?(@.type=="InternalIP")].address}"#,
        ],
    );
    let node_ip = node_ip.trim().to_string();
    assert!(
        !node_ip.is_empty() && node_ip != "127.0.0.1",
        "node IP {node_ip:?}"
    );
    let pod_ip = jsonpath(&server, "published", "{.status.podIP}");
    assert_ne!(pod_ip, node_ip, "the pod has its own network");

    let get = || std::panic::catch_unwind(|| http_get(&node_ip, HOST_PORT)).unwrap_or_default();
    let mut page = String::new();
    let reached = eventually(Duration::from_secs(20), || {
        page = get();
        page.contains("hello over the pod network")
    });
    assert!(reached, "GET http://{node_ip}:{HOST_PORT}/ gave {page:?}");

    kubectl(&server, &["delete", "pod", "published", "--wait=true"]);
    let closed = eventually(Duration::from_secs(20), || {
        std::net::TcpStream::connect_timeout(
            &format!("{node_ip}:{HOST_PORT}").parse().unwrap(),
            Duration::from_secs(2),
        )
        .is_err()
    });
    assert!(
        closed,
        "{node_ip}:{HOST_PORT} still answers after the pod was deleted"
    );
}
