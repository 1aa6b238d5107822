//! Images for the containerd runtime: a pod's image reference normalised as the CRI does
//! (`busybox` → `docker.io/library/busybox:latest`), looked up in containerd's image store (put
//! there by a pull, [`super::pull`], or imported, e.g. `ctr -n k8s.io images import`), its manifest and
//! configuration read from the content store (an index picks this machine's platform), and its
//! layers unpacked into the snapshotter when they are not yet (chain ids as containerd names
//! them).

use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::{ApplyRequest, GetImageRequest, ReadContentRequest};
use containerd_client::types::Descriptor;
use futures::StreamExt;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use sha2::{Digest as _, Sha256};

use super::Containerd;
use crate::Error;

/// What a container needs from its image.
#[derive(Debug, Clone)]
pub(crate) struct Image {
    /// `name@sha256:<manifest digest>`, the container status' `imageID`.
    pub(crate) id: String,
    /// The top snapshot of the unpacked layers.
    pub(crate) chain_id: String,
    pub(crate) entrypoint: Vec<String>,
    pub(crate) cmd: Vec<String>,
    pub(crate) env: Vec<String>,
    pub(crate) working_dir: Option<String>,
}

/// The fully qualified reference, as the CRI plugin names images.
pub(crate) fn normalize(reference: &str) -> String {
    let (name, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let mut parts = name.splitn(2, '/');
    let first = parts.next().unwrap_or_default();
    let qualified = match parts.next() {
        None => format!("docker.io/library/{name}"),
        Some(_) if first.contains('.') || first.contains(':') || first == "localhost" => {
            name.to_string()
        }
        Some(_) => format!("docker.io/{name}"),
    };
    let last = qualified.rsplit('/').next().unwrap_or_default();
    match digest {
        Some(d) => format!("{qualified}@{d}"),
        None if last.contains(':') => qualified,
        None => format!("{qualified}:latest"),
    }
}

/// containerd's chain ids of a layer stack (`chain[i] = sha256(chain[i-1] + " " + diff[i])`).
pub(crate) fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff in diff_ids {
        let next = match out.last() {
            None => diff.clone(),
            Some(prev) => format!(
                "sha256:{:x}",
                Sha256::digest(format!("{prev} {diff}").as_bytes())
            ),
        };
        out.push(next);
    }
    out
}

/// The entry of an image index for this machine's platform (or one without a platform).
pub(crate) fn platform_manifest(index: &ImageIndex) -> Option<&oci_spec::image::Descriptor> {
    index.manifests().iter().find(|m| {
        m.platform()
            .as_ref()
            .is_none_or(|p| p.architecture().to_string() == arch() && p.os().to_string() == "linux")
    })
}

pub(crate) fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn bad(image: &str, message: impl std::fmt::Display) -> Error {
    Error::BadImage {
        image: image.into(),
        message: message.to_string(),
    }
}

impl Containerd {
    async fn read_blob(&self, digest: &str) -> Result<Vec<u8>, Error> {
        let req = ReadContentRequest {
            digest: digest.into(),
            offset: 0,
            size: 0,
        };
        let mut stream = self
            .content()
            .read(self.request(req))
            .await
            .map_err(rpc("read content"))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend(chunk.map_err(rpc("read content"))?.data);
        }
        Ok(out)
    }

    /// Whether the image store has an image named `reference` (normalised).
    pub(crate) async fn has(&self, reference: &str) -> Result<bool, Error> {
        let req = GetImageRequest {
            name: normalize(reference),
        };
        match self.images().get(self.request(req)).await {
            Ok(r) => Ok(r.into_inner().image.is_some_and(|i| i.target.is_some())),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(false),
            Err(s) => Err(rpc("get image")(s)),
        }
    }

    /// Resolves `reference` and makes sure its layers are unpacked.
    pub(crate) async fn image(&self, reference: &str) -> Result<Image, Error> {
        let name = normalize(reference);
        let got = self
            .images()
            .get(self.request(GetImageRequest { name: name.clone() }))
            .await;
        let target = match got {
            Ok(r) => r.into_inner().image.and_then(|i| i.target),
            Err(s) if s.code() == tonic::Code::NotFound => None,
            Err(s) => return Err(rpc("get image")(s)),
        };
        let Some(mut target) = target else {
            return Err(Error::ImageNotFound(name));
        };
        if target.media_type.contains("index") || target.media_type.contains("manifest.list") {
            let index = ImageIndex::from_reader(&self.read_blob(&target.digest).await?[..])
                .map_err(|e| bad(&name, e))?;
            let m = platform_manifest(&index)
                .ok_or_else(|| bad(&name, format!("no manifest for linux/{}", arch())))?;
            target = Descriptor {
                media_type: m.media_type().to_string(),
                digest: m.digest().to_string(),
                size: m.size() as i64,
                annotations: Default::default(),
            };
        }
        let manifest = ImageManifest::from_reader(&self.read_blob(&target.digest).await?[..])
            .map_err(|e| bad(&name, e))?;
        let config = self.read_blob(manifest.config().digest().as_ref()).await?;
        let config = ImageConfiguration::from_reader(&config[..]).map_err(|e| bad(&name, e))?;
        let diff_ids = config.rootfs().diff_ids();
        let chain = chain_ids(diff_ids);
        if diff_ids.len() != manifest.layers().len() || chain.is_empty() {
            return Err(bad(&name, "layers and diff ids do not match"));
        }
        let top = chain.last().cloned().unwrap_or_default();
        if !self.snapshot_exists(&top).await? {
            // Under a lease until the config names the top snapshot (as containerd's unpacker
            // labels it), which keeps the stack from the garbage collector.
            let lease = self.create_lease("unpack").await?;
            let unpacked = self.unpack_all(&manifest, &chain, &lease).await;
            let label = format!("containerd.io/gc.ref.snapshot.{}", self.config.snapshotter);
            let labelled = match unpacked {
                Ok(()) => {
                    let labels = [(label, top.clone())].into();
                    let digest = manifest.config().digest().to_string();
                    self.set_labels(&digest, labels)
                        .await
                        .map_err(|e| bad(&name, e))
                }
                Err(e) => Err(e),
            };
            self.delete_lease(&lease).await;
            labelled?;
        }
        let c = config.config().clone().unwrap_or_default();
        let base = name.split('@').next().unwrap_or_default();
        let repo = match base.rfind(':') {
            Some(i) if !base[i..].contains('/') => &base[..i],
            _ => base,
        };
        Ok(Image {
            id: format!("{repo}@{}", target.digest),
            chain_id: chain.last().cloned().unwrap_or_default(),
            entrypoint: c.entrypoint().clone().unwrap_or_default(),
            cmd: c.cmd().clone().unwrap_or_default(),
            env: c.env().clone().unwrap_or_default(),
            working_dir: c.working_dir().clone().filter(|w| !w.is_empty()),
        })
    }

    async fn unpack_all(
        &self,
        manifest: &ImageManifest,
        chain: &[String],
        lease: &str,
    ) -> Result<(), Error> {
        for (i, layer) in manifest.layers().iter().enumerate() {
            if self.snapshot_exists(&chain[i]).await? {
                continue;
            }
            let desc = Descriptor {
                media_type: layer.media_type().to_string(),
                digest: layer.digest().to_string(),
                size: layer.size() as i64,
                annotations: Default::default(),
            };
            let parent = if i == 0 { "" } else { &chain[i - 1] };
            self.unpack(desc, parent, &chain[i], lease).await?;
        }
        Ok(())
    }

    async fn snapshot_exists(&self, key: &str) -> Result<bool, Error> {
        let req = StatSnapshotRequest {
            snapshotter: self.config.snapshotter.clone(),
            key: key.into(),
        };
        match self.snapshots().stat(self.request(req)).await {
            Ok(_) => Ok(true),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(false),
            Err(s) => Err(rpc("stat snapshot")(s)),
        }
    }

    /// Applies one layer on `parent` and commits it as `chain_id`.
    async fn unpack(
        &self,
        layer: Descriptor,
        parent: &str,
        chain_id: &str,
        lease: &str,
    ) -> Result<(), Error> {
        let key = format!("keelson-extract-{}", uuid_like());
        let snapshotter = self.config.snapshotter.clone();
        let prepare = PrepareSnapshotRequest {
            snapshotter: snapshotter.clone(),
            key: key.clone(),
            parent: parent.into(),
            labels: Default::default(),
        };
        let mounts = self
            .snapshots()
            .prepare(self.leased(prepare, lease))
            .await
            .map_err(rpc("prepare snapshot"))?
            .into_inner()
            .mounts;
        let apply = ApplyRequest {
            diff: Some(layer),
            mounts,
            payloads: Default::default(),
            sync_fs: false,
        };
        let applied = self.diff().apply(self.leased(apply, lease)).await;
        let result = match applied {
            Ok(_) => {
                let commit = CommitSnapshotRequest {
                    snapshotter: snapshotter.clone(),
                    name: chain_id.into(),
                    key: key.clone(),
                    labels: Default::default(),
                };
                self.snapshots()
                    .commit(self.leased(commit, lease))
                    .await
                    .map(|_| ())
                    .or_else(|s| match s.code() {
                        tonic::Code::AlreadyExists => Ok(()),
                        _ => Err(rpc("commit snapshot")(s)),
                    })
            }
            Err(s) => Err(rpc("apply layer")(s)),
        };
        if result.is_err() {
            let remove = RemoveSnapshotRequest { snapshotter, key };
            let _ = self.snapshots().remove(self.request(remove)).await;
        }
        result
    }
}

pub(super) fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos:x}-{}", std::process::id())
}

/// Maps a failed containerd call to the agent's error, naming the call.
pub(crate) fn rpc(what: &'static str) -> impl Fn(tonic::Status) -> Error {
    move |s| Error::Runtime(format!("containerd {what}: {}", s.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_normalised_like_the_cri() {
        for (given, want) in [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("me/app", "docker.io/me/app:latest"),
            ("localhost:5000/app", "localhost:5000/app:latest"),
            ("ghcr.io/a/b:v1", "ghcr.io/a/b:v1"),
            ("busybox@sha256:abc", "docker.io/library/busybox@sha256:abc"),
        ] {
            assert_eq!(normalize(given), want, "{given}");
        }
    }

    #[test]
    fn chain_ids_follow_containerd() {
        let diffs = vec!["sha256:a".to_string(), "sha256:b".to_string()];
        let chain = chain_ids(&diffs);
        assert_eq!(chain[0], "sha256:a");
        assert_eq!(
            chain[1],
            format!("sha256:{:x}", Sha256::digest(b"sha256:a sha256:b"))
        );
    }
}
