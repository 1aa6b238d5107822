//! Image pulls by the containerd runtime from a real registry: Debian's `docker-registry`
//! (distribution 2.8) on a free loopback port with storage in a temp dir, the locally built
//! busybox image pushed to it over the registry's HTTP API (as a manifest under tag `1`, and
//! behind an image index as `latest`). Pods then pull it with Kubernetes' `imagePullPolicy`
//! semantics: `IfNotPresent` pulls once (Pulling/Pulled events, the pod's log), the untagged
//! image defaults to `Always` and goes through the index, a missing tag waits in
//! `ErrImagePull` then `ImagePullBackOff`, `Never` on an absent image in `ErrImageNeverPull`,
//! and a registry that is not there fails the pull saying so.
//! Needs root, containerd, runc, CNI plugins, busybox-static and docker-registry
//! (tools/test.sh installs them).

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::harness::{eventually, free_port, Server};
use crate::kubelet::{apply, jsonpath, kubectl};
use crate::local_containerd::{busybox_image, containerd_cluster, delete_all_pods};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A `docker-registry` of the test's own, killed on drop.
struct LocalRegistry {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl LocalRegistry {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry is not installed (tools/test.sh installs it)");
        let r = LocalRegistry { dir, child, port };
        let up = eventually(Duration::from_secs(20), || {
            reqwest::blocking::get(r.url("/v2/")).is_ok_and(|resp| resp.status().is_success())
        });
        assert!(up, "docker-registry did not start: {}", r.log());
        r
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Uploads a blob to `repo` (a monolithic upload: POST, then PUT with the digest).
    fn push_blob(&self, http: &reqwest::blocking::Client, repo: &str, bytes: Vec<u8>) {
        let digest = format!("sha256:{:x}", Sha256::digest(&bytes));
        let started = http
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/")))
            .send()
            .unwrap();
        assert_eq!(started.status().as_u16(), 202, "{:?}", started.text());
        let location = started.headers()["location"].to_str().unwrap().to_string();
        let location = match location.starts_with("http") {
            true => location,
            false => self.url(&location),
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = http
            .put(format!("{location}{sep}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .unwrap();
        assert_eq!(put.status().as_u16(), 201, "{:?}", put.text());
    }

    fn push_manifest(
        &self,
        http: &reqwest::blocking::Client,
        repo: &str,
        tag: &str,
        media_type: &str,
        body: Vec<u8>,
    ) {
        let put = http
            .put(self.url(&format!("/v2/{repo}/manifests/{tag}")))
            .header("content-type", media_type)
            .body(body)
            .send()
            .unwrap();
        assert_eq!(put.status().as_u16(), 201, "{:?}", put.text());
    }

    /// Pushes the OCI layout `oci` (one manifest) to `repo` as `tag`, and behind an index
    /// for linux/amd64 as `index_tag`.
    fn push_layout(&self, oci: &Path, repo: &str, tag: &str, index_tag: &str) {
        let http = reqwest::blocking::Client::new();
        let read = |digest: &str| {
            let hex = digest.trim_start_matches("sha256:");
            std::fs::read(oci.join("blobs/sha256").join(hex)).unwrap()
        };
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(oci.join("index.json")).unwrap()).unwrap();
        let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap();
        let manifest_bytes = read(manifest_digest);
        let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
        let config = manifest["config"]["digest"].as_str().unwrap();
        self.push_blob(&http, repo, read(config));
        for layer in manifest["layers"].as_array().unwrap() {
            self.push_blob(&http, repo, read(layer["digest"].as_str().unwrap()));
        }
        self.push_manifest(&http, repo, tag, OCI_MANIFEST, manifest_bytes.clone());
        let index = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": manifest_digest,
                           "size": manifest_bytes.len(),
                           "platform": {"architecture": "amd64", "os": "linux"}}],
        });
        let index = index.to_string().into_bytes();
        self.push_manifest(&http, repo, index_tag, OCI_INDEX, index);
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn events(server: &Server, pod: &str) -> String {
    kubectl(
        server,
        &[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={pod}"),
            "-o",
            "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
        ],
    )
}

/// Waits until the events of `pod` contain `want`.
fn wait_event(server: &Server, pod: &str, want: &str) -> String {
    let mut last = String::new();
    let seen = eventually(Duration::from_secs(60), || {
        last = events(server, pod);
        last.contains(want)
    });
    assert!(seen, "no event {want:?} for {pod}: {last}");
    last
}

/// Waits until `pod` is in `phase`; on failure, says what its status and events were.
fn wait_phase(server: &Server, pod: &str, phase: &str) {
    let seen = eventually(Duration::from_secs(120), || {
        jsonpath(server, pod, "{.status.phase}") == phase
    });
    let status = jsonpath(server, pod, "{.status.containerStatuses}");
    assert!(
        seen,
        "pod {pod} is not {phase}: {status}\n{}",
        events(server, pod)
    );
}

/// Waits until the container of `pod` waits for `reason`; its message.
fn wait_reason(server: &Server, pod: &str, reason: &str) -> String {
    let path = "{.status.containerStatuses[0].state.waiting.reason}";
    let mut last = String::new();
    let seen = eventually(Duration::from_secs(60), || {
        last = jsonpath(server, pod, path);
        last == reason
    });
    assert!(seen, "pod {pod} waits for {last:?}, not {reason}");
    jsonpath(
        server,
        pod,
        "{.status.containerStatuses[0].state.waiting.message}",
    )
}

#[test]
#[ignore = "needs containerd, runc, CNI plugins, docker-registry and root (tools/test.sh installs them)"]
fn images_are_pulled_from_a_registry_per_pull_policy() {
    let registry = LocalRegistry::start();
    let build = tempfile::tempdir().unwrap();
    busybox_image(build.path(), "busybox:pushed");
    registry.push_layout(&build.path().join("oci"), "test/busybox", "1", "latest");
    let (containerd, server) = containerd_cluster(8);
    let repo = format!("127.0.0.1:{}/test/busybox", registry.port);
    // Nothing listens there.
    let unreachable = format!("127.0.0.1:{}/test/busybox:1", free_port());
    apply(
        &server,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: pulled}}
spec:
  restartPolicy: Never
  containers:
  - {{name: main, image: "{repo}:1", imagePullPolicy: IfNotPresent,
     command: ["sh", "-c", "echo pulled and running"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: untagged}}
spec:
  restartPolicy: Never
  containers:
  - {{name: main, image: "{repo}", command: ["sh", "-c", "echo via the index"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: missing}}
spec:
  containers:
  - {{name: main, image: "{repo}:nope", imagePullPolicy: IfNotPresent}}
---
apiVersion: v1
kind: Pod
metadata: {{name: never}}
spec:
  containers:
  - {{name: main, image: "{repo}:absent", imagePullPolicy: Never}}
---
apiVersion: v1
kind: Pod
metadata: {{name: unreachable}}
spec:
  containers:
  - {{name: main, image: "{unreachable}"}}
"#
        ),
    );

    // IfNotPresent on an absent image: pulled, then run.
    wait_phase(&server, "pulled", "Succeeded");
    let logs = kubectl(&server, &["logs", "pulled"]);
    assert_eq!(logs.trim(), "pulled and running");
    let seen = wait_event(&server, "pulled", "Pulled: Successfully pulled image");
    assert!(
        seen.contains(&format!("Pulling: Pulling image \"{repo}:1\"")),
        "{seen}"
    );
    let pulled = format!("Pulled: Successfully pulled image \"{repo}:1\" in ");
    let line = seen
        .lines()
        .find(|l| l.starts_with(&pulled))
        .unwrap_or_default();
    assert!(
        line.contains(" including waiting). Image size: ") && line.ends_with(" bytes."),
        "{seen}"
    );
    // The first start after the pull works (its snapshots are safe from containerd's GC).
    assert!(!seen.contains("Error: "), "{seen}");
    let size: u64 = line
        .rsplit("Image size: ")
        .next()
        .and_then(|s| s.trim_end_matches(" bytes.").parse().ok())
        .unwrap_or(0);
    assert!(size > 500_000, "busybox-static is in the layer: {line}");
    let image_id = jsonpath(&server, "pulled", "{.status.containerStatuses[0].imageID}");
    assert!(
        image_id.starts_with(&format!("{repo}@sha256:")),
        "{image_id}"
    );
    // The image record under its CRI name, its manifest labelled to keep config and layer.
    let ctr = |args: &[&str]| {
        let out = Command::new("ctr")
            .arg("-a")
            .arg(containerd.socket())
            .args(["-n", "k8s.io"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let images = ctr(&["images", "ls", "-q"]);
    assert!(images.lines().any(|l| l == format!("{repo}:1")), "{images}");
    let content = ctr(&["content", "ls"]);
    for label in [
        "containerd.io/gc.ref.content.config=sha256:",
        "containerd.io/gc.ref.content.l.0=sha256:",
        "containerd.io/gc.ref.snapshot.overlayfs=sha256:",
    ] {
        assert!(content.contains(label), "no {label} in {content}");
    }

    // No tag: the API server defaults the policy to Always; the index leads to the manifest.
    let policy = jsonpath(&server, "untagged", "{.spec.containers[0].imagePullPolicy}");
    assert_eq!(policy, "Always");
    wait_phase(&server, "untagged", "Succeeded");
    assert_eq!(
        kubectl(&server, &["logs", "untagged"]).trim(),
        "via the index"
    );
    let content = ctr(&["content", "ls"]);
    assert!(
        content.contains("containerd.io/gc.ref.content.m.0=sha256:"),
        "{content}"
    );
    let seen = wait_event(
        &server,
        "untagged",
        &format!("Pulling: Pulling image \"{repo}\""),
    );
    assert!(!seen.contains("Error: "), "{seen}");

    // A second pod with the image present and IfNotPresent does not pull again.
    apply(
        &server,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: again}}
spec:
  restartPolicy: Never
  containers:
  - {{name: main, image: "{repo}:1", imagePullPolicy: IfNotPresent, command: ["true"]}}
"#
        ),
    );
    wait_phase(&server, "again", "Succeeded");
    let seen = wait_event(&server, "again", "Pulled: Container image");
    assert!(
        seen.contains(&format!(
            "Pulled: Container image \"{repo}:1\" already present on machine"
        )),
        "{seen}"
    );
    assert!(!seen.contains("Pulling:"), "{seen}");

    // A missing tag: ErrImagePull with the registry's answer, then ImagePullBackOff.
    let message = wait_reason(&server, "missing", "ErrImagePull");
    assert!(
        message.starts_with(&format!("failed to pull and unpack image \"{repo}:nope\"")),
        "{message}"
    );
    let message = wait_reason(&server, "missing", "ImagePullBackOff");
    assert_eq!(message, format!("Back-off pulling image \"{repo}:nope\""));
    let seen = wait_event(&server, "missing", "BackOff: Back-off pulling image");
    for want in [
        format!("Pulling: Pulling image \"{repo}:nope\""),
        format!("Failed: Failed to pull image \"{repo}:nope\": failed to pull and unpack image"),
        "Failed: Error: ErrImagePull".to_string(),
        "Failed: Error: ImagePullBackOff".to_string(),
    ] {
        assert!(seen.contains(&want), "no {want:?} in {seen}");
    }

    // Never with the image absent.
    let message = wait_reason(&server, "never", "ErrImageNeverPull");
    assert_eq!(
        message,
        format!("Container image \"{repo}:absent\" is not present with pull policy of Never")
    );
    let seen = wait_event(&server, "never", "ErrImageNeverPull: Container image");
    assert!(!seen.contains("Pulling:"), "{seen}");
    assert!(registry.log().contains("/v2/test/busybox/manifests/nope"));

    // A registry that is not there: the pull fails saying why.
    let message = wait_reason(&server, "unreachable", "ErrImagePull");
    assert!(
        message.starts_with(&format!(
            "failed to pull and unpack image \"{unreachable}\": failed to resolve reference"
        )) && message.contains("onnection refused"),
        "{message}"
    );
    delete_all_pods(&server);
}
