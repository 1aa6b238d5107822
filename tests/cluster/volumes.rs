//! PersistentVolumes with the in-process agent and kubectl 1.33: a pod whose claim does not
//! exist stays unscheduled with a FailedScheduling event naming the claim; a claim binds to the smallest
//! matching hostPath volume (both sides Bound, `pv.kubernetes.io/bind-completed`, claimRef);
//! a Wasm pod writes a file through the claim's mount and a second pod reads it back; deleting
//! the claim releases the volume, which its `Delete` reclaim policy then removes. The default
//! `local-path` class provisions a volume on the node of the claim's first pod.

use std::time::Duration;

use crate::harness::{eventually, Server, KUBECTL_133};
use crate::kubelet::{apply, cluster, kubectl, wait_for};

fn volume(name: &str, size: &str, path: &std::path::Path) -> String {
    format!(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: {name}}}\nspec:\n  capacity: {{storage: {size}}}\n  accessModes: [ReadWriteOnce]\n  persistentVolumeReclaimPolicy: Delete\n  storageClassName: \"\"\n  hostPath: {{path: {}}}\n",
        path.display()
    )
}

fn pod(name: &str, claim: &str, args: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  runtimeClassName: wasm\n  restartPolicy: Never\n  volumes: [{{name: data, persistentVolumeClaim: {{claimName: {claim}}}}}]\n  containers:\n  - name: main\n    image: \"demo:1\"\n    args: {args}\n    volumeMounts: [{{name: data, mountPath: /data}}]\n"
    )
}

fn get(server: &Server, what: &[&str], path: &str) -> String {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    let path = format!("jsonpath={path}");
    args.extend(["-o", path.as_str()]);
    String::from_utf8_lossy(&server.kubectl(KUBECTL_133, &args).stdout).into_owned()
}

#[test]
fn claims_bind_mount_and_reclaim() {
    let server = cluster();
    let t = Duration::from_secs(60);
    // No claim yet: the scheduler leaves the pod Pending, saying why.
    apply(&server, &pod("early", "absent", "[\"--print\", \"x\"]"));
    assert!(eventually(t, || kubectl(
        &server,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=early"
        ]
    )
    .contains("persistentvolumeclaim \"absent\" not found")));
    assert_eq!(get(&server, &["pod", "early"], "{.spec.nodeName}"), "");

    let small = server.dir.path().join("vol-small");
    let big = server.dir.path().join("vol-big");
    apply(&server, &volume("big", "10Gi", &big));
    apply(&server, &volume("small", "1Gi", &small));
    apply(
        &server,
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\nspec:\n  storageClassName: \"\"\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 100Mi}}\n",
    );
    assert!(
        eventually(t, || get(&server, &["pvc", "data"], "{.status.phase}")
            == "Bound"),
        "{}",
        server.log_text()
    );
    assert_eq!(
        get(&server, &["pvc", "data"], "{.spec.volumeName}"),
        "small"
    );
    assert_eq!(
        get(
            &server,
            &["pvc", "data"],
            "{.metadata.annotations.pv\\.kubernetes\\.io/bind-completed}"
        ),
        "yes"
    );
    assert_eq!(
        get(&server, &["pvc", "data"], "{.status.capacity.storage}"),
        "1Gi"
    );
    assert!(eventually(t, || get(
        &server,
        &["pv", "small"],
        "{.status.phase}"
    ) == "Bound"));
    assert_eq!(
        get(&server, &["pv", "small"], "{.spec.claimRef.name}"),
        "data"
    );
    assert_eq!(get(&server, &["pv", "big"], "{.status.phase}"), "Available");

    // Write through the claim, read it back from a second pod.
    apply(
        &server,
        &pod(
            "writer",
            "data",
            "[\"--write\", \"/data/hello.txt\", \"kept on a volume\"]",
        ),
    );
    wait_for(&server, "writer", "{.status.phase}", "Succeeded", t);
    let on_host = std::fs::read_to_string(small.join("hello.txt")).unwrap_or_default();
    assert!(on_host.contains("kept on a volume"), "{on_host:?}");
    apply(
        &server,
        &pod("reader", "data", "[\"--cat\", \"/data/hello.txt\"]"),
    );
    wait_for(&server, "reader", "{.status.phase}", "Succeeded", t);
    assert!(kubectl(&server, &["logs", "reader"]).contains("kept on a volume"));

    // Deleting the claim releases the volume; reclaim policy Delete removes it.
    kubectl(
        &server,
        &["delete", "pod", "writer", "reader", "early", "--wait=false"],
    );
    kubectl(&server, &["delete", "pvc", "data", "--wait=false"]);
    assert!(
        eventually(t, || get(&server, &["pv"], "{.items[*].metadata.name}")
            == "big"),
        "volumes left: {}",
        get(&server, &["pv"], "{.items[*].metadata.name}")
    );
}

#[test]
fn default_local_path_class_provisions_on_the_pods_node() {
    let server = cluster();
    let t = Duration::from_secs(60);
    assert_eq!(
        get(
            &server,
            &["storageclass", "local-path"],
            "{.provisioner} {.volumeBindingMode} {.metadata.annotations.storageclass\\.kubernetes\\.io/is-default-class}"
        ),
        "rancher.io/local-path WaitForFirstConsumer true"
    );
    // No class named: the default's. It waits for its first consumer.
    apply(
        &server,
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: scratch}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 50Mi}}\n",
    );
    assert_eq!(
        get(&server, &["pvc", "scratch"], "{.spec.storageClassName}"),
        "local-path"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        get(&server, &["pvc", "scratch"], "{.status.phase}"),
        "Pending"
    );
    apply(
        &server,
        &pod(
            "first",
            "scratch",
            "[\"--write\", \"/data/note.txt\", \"provisioned\"]",
        ),
    );
    wait_for(&server, "first", "{.status.phase}", "Succeeded", t);
    let node = get(&server, &["pod", "first"], "{.spec.nodeName}");
    assert_eq!(
        get(
            &server,
            &["pvc", "scratch"],
            "{.metadata.annotations.volume\\.kubernetes\\.io/selected-node}"
        ),
        node
    );
    let volume = get(&server, &["pvc", "scratch"], "{.spec.volumeName}");
    assert!(volume.starts_with("pvc-"), "{volume}");
    assert_eq!(
        get(
            &server,
            &["pv", &volume],
            "{.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}"
        ),
        node
    );
    let path = get(&server, &["pv", &volume], "{.spec.hostPath.path}");
    let written = std::fs::read_to_string(std::path::Path::new(&path).join("note.txt"));
    assert!(
        written
            .as_deref()
            .unwrap_or_default()
            .contains("provisioned"),
        "{path}: {written:?}"
    );
    // A second pod of the claim goes to the volume's node and reads the file.
    apply(
        &server,
        &pod("second", "scratch", "[\"--cat\", \"/data/note.txt\"]"),
    );
    wait_for(&server, "second", "{.status.phase}", "Succeeded", t);
    assert!(kubectl(&server, &["logs", "second"]).contains("provisioned"));
    kubectl(&server, &["delete", "pod", "first", "second"]);
    kubectl(&server, &["delete", "pvc", "scratch"]);
    assert!(
        eventually(t, || get(&server, &["pv"], "{.items[*].metadata.name}")
            .is_empty()),
        "the Delete reclaim policy removes the provisioned volume"
    );
}
