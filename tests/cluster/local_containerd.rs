//! A containerd of a test's own (own config, root, state and socket in a temp dir; CRI
//! plugin off), the busybox OCI image the containerd suites run (busybox-static and a
//! hand-written manifest, imported with `ctr`, since nothing can be pulled), and a server
//! whose agent uses both; dropping it removes what a failed test leaves behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::harness::{eventually, Server};
use crate::kubelet::kubectl;

/// A containerd of the test's own.
pub(crate) struct LocalContainerd {
    pub(crate) dir: tempfile::TempDir,
    child: Child,
    /// The CNI bridge of the agent using it, deleted at the end.
    bridge: Option<String>,
}

impl LocalContainerd {
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let config = format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{0}/containerd.sock\"\n\
             [ttrpc]\n  address = \"{0}/containerd.sock.ttrpc\"\n",
            root.display()
        );
        std::fs::write(root.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(root.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(root.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("containerd is not installed (tools/test.sh installs it)");
        let c = LocalContainerd {
            dir,
            child,
            bridge: None,
        };
        assert!(
            eventually(Duration::from_secs(20), || c.socket().exists()),
            "containerd did not start: {}",
            c.log()
        );
        c
    }

    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr -n k8s.io images import FILE`; with `unpack` false, `--no-unpack` (the agent then
    /// unpacks the layers itself).
    pub(crate) fn import(&self, tar: &Path, unpack: bool) {
        let out = Command::new("ctr")
            .arg("-a")
            .arg(self.socket())
            .args(["-n", "k8s.io", "images", "import"])
            .args((!unpack).then_some("--no-unpack"))
            .arg(tar)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ctr import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for LocalContainerd {
    fn drop(&mut self) {
        // What a failed test leaves: tasks (their shims outlive containerd unless the tasks are
        // deleted), pod network namespaces, overlay mounts, the bridge.
        let script = r#"
ctr="ctr -a $1 -n k8s.io"
for t in $($ctr tasks ls -q); do $ctr tasks kill -a -s SIGKILL $t; done
sleep 0.5
for t in $($ctr tasks ls -q); do $ctr tasks delete -f $t; done
for c in $($ctr containers ls -q); do
  uid=$($ctr containers info $c | grep -o '"keelson.dev/pod-uid": "[^"]*"' | cut -d'"' -f4)
  [ -n "$uid" ] && umount /var/run/netns/keelson-$uid 2>/dev/null; rm -f /var/run/netns/keelson-$uid
done
"#;
        let _ = Command::new("sh")
            .args(["-c", script, "sh"])
            .arg(self.socket())
            .output();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(bridge) = &self.bridge {
            let _ = Command::new("ip").args(["link", "del", bridge]).output();
        }
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "grep ' {}/' /proc/mounts | cut -d' ' -f2 | xargs -r umount -l",
                self.dir.path().display()
            ))
            .output();
    }
}

fn blob(dir: &Path, bytes: &[u8]) -> (String, usize) {
    let digest = format!("{:x}", Sha256::digest(bytes));
    std::fs::write(dir.join("blobs/sha256").join(&digest), bytes).unwrap();
    (format!("sha256:{digest}"), bytes.len())
}

/// An OCI image tarball named `name` with busybox-static as `/bin/busybox` and its applets.
pub(crate) fn busybox_image(dir: &Path, name: &str) -> PathBuf {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    for d in ["tmp", "etc", "proc", "sys", "dev", "www"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/usr/bin/busybox", rootfs.join("bin/busybox"))
        .expect("/usr/bin/busybox (apt busybox-static)");
    for applet in [
        "sh", "echo", "cat", "sleep", "ls", "hostname", "ip", "httpd", "true", "false", "env",
        "wc", "nc",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    std::fs::write(
        rootfs.join("www/index.html"),
        "hello over the pod network\n",
    )
    .unwrap();
    let layer = dir.join("layer.tar");
    let out = Command::new("tar")
        .args(["--sort=name", "--owner=0", "--group=0", "--mtime=@0", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&layer)
        .arg(".")
        .output()
        .unwrap();
    assert!(out.status.success(), "tar: {out:?}");
    let oci = dir.join("oci");
    std::fs::create_dir_all(oci.join("blobs/sha256")).unwrap();
    let (layer_digest, layer_size) = blob(&oci, &std::fs::read(&layer).unwrap());
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let (config_digest, config_size) = blob(&oci, config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer_size}],
    });
    let (manifest_digest, manifest_size) = blob(&oci, manifest.to_string().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": manifest_digest, "size": manifest_size,
                       "annotations": {"org.opencontainers.image.ref.name": name}}],
    });
    std::fs::write(oci.join("index.json"), index.to_string()).unwrap();
    std::fs::write(oci.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let tar = dir.join("image.tar");
    let out = Command::new("tar")
        .arg("-C")
        .arg(&oci)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .output()
        .unwrap();
    assert!(out.status.success(), "tar: {out:?}");
    tar
}

/// A containerd with `busybox:test` imported and a server whose agent uses it, with pod
/// CIDR `10.88.<n>.0/24` on its own bridge.
pub(crate) fn containerd_cluster(n: u8) -> (LocalContainerd, Server) {
    containerd_cluster_with(n, true)
}

/// [`containerd_cluster`], the image imported unpacked or not.
pub(crate) fn containerd_cluster_with(n: u8, unpack: bool) -> (LocalContainerd, Server) {
    let mut containerd = LocalContainerd::start();
    let image = busybox_image(containerd.dir.path(), "docker.io/library/busybox:test");
    containerd.import(&image, unpack);
    // The kubelet's flag and URL form, which `--containerd` also answers to.
    let socket = format!("unix://{}", containerd.socket().display());
    let cidr = format!("10.88.{n}.0/24");
    let bridge = format!("kt{n}-{}", std::process::id() % 10_000);
    containerd.bridge = Some(bridge.clone());
    let server = Server::start_with_agent(&[
        "--container-runtime-endpoint",
        &socket,
        "--pod-cidr",
        &cidr,
        "--cni-bridge",
        &bridge,
    ]);
    (containerd, server)
}

/// Deletes every pod and checks that their network namespaces are gone.
pub(crate) fn delete_all_pods(server: &Server) {
    let uids = kubectl(
        server,
        &["get", "pods", "-o", "jsonpath={.items[*].metadata.uid}"],
    );
    kubectl(server, &["delete", "pods", "--all", "--wait=true"]);
    for uid in uids.split_whitespace() {
        let netns = PathBuf::from(format!("/var/run/netns/keelson-{uid}"));
        assert!(
            eventually(Duration::from_secs(10), || !netns.exists()),
            "{} is left",
            netns.display()
        );
    }
}
