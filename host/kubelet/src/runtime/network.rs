//! Pod network sandboxes for the containerd runtime: a network namespace per pod, bind-mounted
//! at `/var/run/netns/keelson-<pod uid>` (so `ip netns` lists it), wired by the CNI `bridge`
//! plugin with `host-local` IPAM over the node's pod CIDR, and `lo` brought up by the CNI
//! `loopback` plugin. The bridge is the pods' default gateway, and traffic from a pod to
//! anything outside the pod CIDR is masqueraded to the node's address (the bridge plugin's
//! `ipMasq`, which needs `iptables` on the node; without it pods reach only the node and each
//! other, and the agent says so once). Pods with `hostNetwork: true` get no sandbox and share
//! the node's network. A pod whose containers publish `hostPort`s gets them from the CNI
//! `portmap` plugin, chained after `bridge` as a conflist would (DNAT on the node's addresses,
//! hairpin SNAT), and removed with the pod's sandbox.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{PodSandbox, PortMapping};
use crate::Error;

/// How pod networks are made.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Directory of the CNI plugin binaries (`bridge`, `host-local`, `loopback`).
    pub cni_bin_dir: PathBuf,
    /// The pod CIDR of this node, e.g. `10.42.0.0/24`.
    pub pod_cidr: String,
    /// Name of the Linux bridge the pods attach to.
    pub bridge: String,
    /// Where `host-local` keeps its address leases.
    pub ipam_dir: PathBuf,
}

/// Where a pod's network namespace is mounted.
pub(crate) fn netns_path(pod_uid: &str) -> PathBuf {
    PathBuf::from("/var/run/netns").join(format!("keelson-{pod_uid}"))
}

/// Makes a network namespace and bind-mounts it at `path`.
fn create_netns(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::File::create(path)?;
    let target = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // unshare(CLONE_NEWNET) moves only the calling thread; a short-lived thread does it, so no
    // runtime worker ever changes namespace.
    std::thread::spawn(move || -> std::io::Result<()> {
        // SAFETY: plain syscalls on a thread that ends right after; the strings outlive them.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let source = c"/proc/thread-self/ns/net";
            if libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    })
    .join()
    .map_err(|_| std::io::Error::other("netns thread panicked"))?
}

fn remove_netns(path: &Path) {
    if let Ok(target) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) {
        // SAFETY: unmounting a path we mounted; failure (not mounted) is harmless.
        unsafe {
            libc::umount2(target.as_ptr(), libc::MNT_DETACH);
        }
    }
    let _ = std::fs::remove_file(path);
}

/// Whether the bridge plugin can masquerade (it runs `iptables`); warns once when not.
fn can_masquerade() -> bool {
    static FOUND: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| {
        let found = ["/usr/sbin/iptables", "/sbin/iptables", "/usr/bin/iptables"]
            .iter()
            .any(|p| Path::new(p).exists());
        if !found {
            tracing::warn!("no iptables on this node: pods reach only the node and each other");
        }
        found
    })
}

impl NetworkConfig {
    fn bridge_conf(&self) -> Value {
        json!({
            "cniVersion": "1.0.0", "name": "keelson", "type": "bridge",
            "bridge": self.bridge, "isGateway": true, "isDefaultGateway": true,
            "ipMasq": can_masquerade(), "hairpinMode": true,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": self.pod_cidr}]],
                     "dataDir": self.ipam_dir},
        })
    }

    /// The `portmap` plugin's configuration for `mappings`, chained after the bridge's
    /// `result` (absent on DEL).
    fn portmap_conf(mappings: &[PortMapping], result: Option<&Value>) -> Value {
        let mut conf = json!({
            "cniVersion": "1.0.0", "name": "keelson", "type": "portmap",
            "capabilities": {"portMappings": true}, "snat": true,
            "runtimeConfig": {"portMappings": mappings},
        });
        if let Some(result) = result {
            conf["prevResult"] = result.clone();
        }
        conf
    }

    async fn cni(
        &self,
        command: &str,
        conf: &Value,
        pod_uid: &str,
        ifname: &str,
    ) -> Result<Value, Error> {
        let plugin = conf["type"].as_str().unwrap_or_default();
        let mut child = tokio::process::Command::new(self.cni_bin_dir.join(plugin))
            .env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", pod_uid)
            .env("CNI_NETNS", netns_path(pod_uid))
            .env("CNI_IFNAME", ifname)
            .env("CNI_PATH", &self.cni_bin_dir)
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| {
                Error::Runtime(format!(
                    "CNI plugin {}: {e}",
                    self.cni_bin_dir.join(plugin).display()
                ))
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            stdin.write_all(conf.to_string().as_bytes()).await?;
        }
        let out = child.wait_with_output().await?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            let msg = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["msg"].as_str().map(String::from))
                .unwrap_or_else(|| format!("{text}{}", String::from_utf8_lossy(&out.stderr)));
            return Err(Error::Runtime(format!(
                "CNI {plugin} {command} failed: {msg}"
            )));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Makes the pod's network namespace and its `eth0` on the bridge, and publishes its host
    /// ports; returns the pod IP.
    pub(crate) async fn setup(&self, pod: &PodSandbox) -> Result<String, Error> {
        let pod_uid = pod.uid.as_str();
        let path = netns_path(pod_uid);
        if path.exists() {
            // Left by an earlier agent (its containers are gone): start afresh.
            self.teardown(pod).await;
        }
        {
            let p = path.clone();
            tokio::task::spawn_blocking(move || create_netns(&p))
                .await
                .map_err(|e| Error::Runtime(e.to_string()))?
                .map_err(|e| Error::Runtime(format!("network namespace: {e}")))?;
        }
        let lo = json!({"cniVersion": "1.0.0", "name": "keelson-lo", "type": "loopback"});
        self.cni("ADD", &lo, pod_uid, "lo").await?;
        let result = self
            .cni("ADD", &self.bridge_conf(), pod_uid, "eth0")
            .await?;
        let ip = result["ips"][0]["address"]
            .as_str()
            .and_then(|a| a.split('/').next())
            .ok_or_else(|| Error::Runtime(format!("CNI bridge gave no address: {result}")))?
            .to_string();
        if !pod.port_mappings.is_empty() {
            let conf = Self::portmap_conf(&pod.port_mappings, Some(&result));
            self.cni("ADD", &conf, pod_uid, "eth0").await?;
        }
        Ok(ip)
    }

    /// Removes the pod's host ports, releases its address and removes its namespace.
    pub(crate) async fn teardown(&self, pod: &PodSandbox) {
        let pod_uid = pod.uid.as_str();
        if !pod.port_mappings.is_empty() {
            let conf = Self::portmap_conf(&pod.port_mappings, None);
            if let Err(e) = self.cni("DEL", &conf, pod_uid, "eth0").await {
                tracing::warn!(pod.uid = pod_uid, error = %e, "CNI portmap teardown");
            }
        }
        if let Err(e) = self.cni("DEL", &self.bridge_conf(), pod_uid, "eth0").await {
            tracing::warn!(pod.uid = pod_uid, error = %e, "CNI teardown");
        }
        let path = netns_path(pod_uid);
        let _ = tokio::task::spawn_blocking(move || remove_netns(&path)).await;
    }
}
