//! Pulling images into containerd. containerd 1.6 has no Transfer service, so the agent is the
//! registry client (`oci-client`: the distribution API with `WWW-Authenticate` Bearer tokens,
//! basic credentials from `imagePullSecrets`). A pull resolves the reference (an index to this
//! machine's platform manifest), streams the config and the layers the content store lacks
//! into it (the Content service's `Write`, with expected digest and size), writes the manifest
//! and index with the `containerd.io/gc.ref.content.*` labels that keep their children from
//! containerd's garbage collector (as `ctr pull` does; the config also names its unpacked top
//! snapshot), all under a lease, then creates or updates the image record under the name the
//! CRI uses. Unpacking stays [`super::image`]'s. Registries are reached over HTTPS, except
//! `localhost`, loopback addresses and the configured insecure registries (plain HTTP). A
//! registry that does not answer within [`CONNECT_TIMEOUT`], or a transfer that stalls for
//! [`STALL_TIMEOUT`], fails the pull. Concurrent pulls of one image share one fetch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use containerd_client::services::v1::{
    AbortRequest, CreateImageRequest, Image as ImageRecord, Info, InfoRequest, UpdateImageRequest,
    UpdateRequest, WriteAction, WriteContentRequest,
};
use containerd_client::types::Descriptor;
use futures::future::{BoxFuture, Shared};
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use keelson_apimachinery::status::error_chain as chain;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

use super::image::{chain_ids, normalize, platform_manifest, uuid_like};
use super::Containerd;
use crate::runtime::RegistryCredential;
use crate::Error;

/// How long a registry may take to accept a connection.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a registry response may go without sending anything.
pub(crate) const STALL_TIMEOUT: Duration = Duration::from_secs(60);

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const ACCEPTED: [&str; 4] = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];

/// Pulls in flight, by image name; each resolves to the image's size or an error message.
pub(crate) type Pulls =
    Arc<Mutex<HashMap<String, Shared<BoxFuture<'static, Result<u64, String>>>>>>;

/// The registry clients: one for HTTPS, one for plain HTTP.
pub(crate) struct Registry {
    https: Client,
    http: Client,
    insecure: Vec<String>,
}

impl Registry {
    pub(crate) fn new(insecure: Vec<String>) -> Self {
        // The HTTP client's TLS uses the process' rustls provider: ring, as everywhere here.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = |protocol| ClientConfig {
            protocol,
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(STALL_TIMEOUT),
            ..Default::default()
        };
        Registry {
            https: Client::new(config(ClientProtocol::Https)),
            http: Client::new(config(ClientProtocol::Http)),
            insecure,
        }
    }

    fn client_for(&self, registry: &str) -> &Client {
        match plain_http(registry, &self.insecure) {
            true => &self.http,
            false => &self.https,
        }
    }
}

/// Whether `registry` (`host[:port]`) is reached over plain HTTP.
pub(crate) fn plain_http(registry: &str, insecure: &[String]) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => registry.split(':').next().unwrap_or_default(),
    };
    let loopback = host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback());
    loopback || host == "localhost" || insecure.iter().any(|i| i == registry || i == host)
}

/// The credential for `reference`'s registry, else anonymous access.
pub(crate) fn auth_for(reference: &Reference, credentials: &[RegistryCredential]) -> RegistryAuth {
    let names = [reference.registry(), reference.resolve_registry()];
    credentials
        .iter()
        .find(|c| names.contains(&c.registry.as_str()))
        .map(|c| RegistryAuth::Basic(c.username.clone(), c.password.clone()))
        .unwrap_or(RegistryAuth::Anonymous)
}

/// The media type a manifest names, else what its shape says.
pub(crate) fn media_type_of(manifest: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(manifest).unwrap_or_default();
    match v.get("mediaType").and_then(|m| m.as_str()) {
        Some(m) => m.to_string(),
        None if v.get("manifests").is_some() => OCI_INDEX.into(),
        None => OCI_MANIFEST.into(),
    }
}

fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// The labels of a manifest that keep its config and layers.
pub(crate) fn manifest_labels(manifest: &ImageManifest) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    labels.insert(
        "containerd.io/gc.ref.content.config".to_string(),
        manifest.config().digest().to_string(),
    );
    for (i, l) in manifest.layers().iter().enumerate() {
        labels.insert(
            format!("containerd.io/gc.ref.content.l.{i}"),
            l.digest().to_string(),
        );
    }
    labels
}

/// The messages of one content write: the data at its offsets, then the commit.
pub(crate) fn write_messages(
    r#ref: String,
    digest: String,
    size: i64,
    labels: HashMap<String, String>,
    data: BoxStream<'static, Result<Bytes, std::io::Error>>,
    failed: Arc<Mutex<Option<String>>>,
) -> impl futures::Stream<Item = WriteContentRequest> + Send + 'static {
    let message = move |action: WriteAction, offset: i64, data: Vec<u8>| WriteContentRequest {
        action: action as i32,
        r#ref: r#ref.clone(),
        total: size,
        expected: digest.clone(),
        offset,
        data,
        labels: Default::default(),
    };
    let commit = WriteContentRequest {
        labels,
        ..message(WriteAction::Commit, size, Vec::new())
    };
    // Data messages name their offset; the commit's is the whole size (an offset of 0 would
    // truncate), so a short stream fails the commit rather than storing a partial blob.
    let data = data.scan(0i64, move |offset, chunk| {
        let out = match chunk {
            Ok(bytes) => {
                let m = message(WriteAction::Write, *offset, bytes.to_vec());
                *offset += bytes.len() as i64;
                Some(m)
            }
            Err(e) => {
                *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                None
            }
        };
        futures::future::ready(out)
    });
    data.chain(futures::stream::once(futures::future::ready(commit)))
}

impl Containerd {
    /// Pulls `reference` into containerd (one fetch for concurrent callers); its size.
    pub(crate) async fn pull_image(
        &self,
        reference: &str,
        credentials: &[RegistryCredential],
    ) -> Result<u64, Error> {
        let name = normalize(reference);
        let shared = {
            let mut pulls = self.pulls.lock().unwrap_or_else(|e| e.into_inner());
            pulls
                .entry(name.clone())
                .or_insert_with(|| {
                    let (this, name, credentials) =
                        (self.clone(), name.clone(), credentials.to_vec());
                    // Its own task: a pull goes on when the pod that asked goes away.
                    let task = tokio::spawn(async move {
                        let result = this.fetch(&name, &credentials).await;
                        let mut pulls = this.pulls.lock().unwrap_or_else(|e| e.into_inner());
                        pulls.remove(&name);
                        result
                    });
                    async move {
                        task.await
                            .unwrap_or_else(|e| Err(format!("pull task: {e}")))
                    }
                    .boxed()
                    .shared()
                })
                .clone()
        };
        shared.await.map_err(Error::ImagePull)
    }

    async fn fetch(&self, name: &str, credentials: &[RegistryCredential]) -> Result<u64, String> {
        let failed = |e: String| format!("failed to pull and unpack image \"{name}\": {e}");
        let reference: Reference = name
            .parse()
            .map_err(|e: oci_client::ParseError| failed(chain(&e)))?;
        let auth = auth_for(&reference, credentials);
        let lease = self
            .create_lease("pull")
            .await
            .map_err(|e| failed(e.to_string()))?;
        let result = self.fetch_leased(&reference, &auth, name, &lease).await;
        self.delete_lease(&lease).await;
        tracing::info!(image = %name, ok = result.is_ok(), "image pull");
        result.map_err(failed)
    }

    async fn fetch_leased(
        &self,
        reference: &Reference,
        auth: &RegistryAuth,
        name: &str,
        lease: &str,
    ) -> Result<u64, String> {
        let client = self.registry.client_for(reference.registry());
        let resolve = |e: oci_client::errors::OciDistributionError| {
            format!("failed to resolve reference \"{name}\": {}", chain(&e))
        };
        let (top, top_digest) = client
            .pull_manifest_raw(reference, auth, &ACCEPTED)
            .await
            .map_err(resolve)?;
        let top_type = media_type_of(&top);
        let mut index_labels = None;
        let (manifest_bytes, manifest_digest) = if is_index(&top_type) {
            let index = ImageIndex::from_reader(&top[..]).map_err(|e| e.to_string())?;
            let entry = platform_manifest(&index)
                .ok_or_else(|| format!("no manifest for linux/{}", super::image::arch()))?;
            let position = index.manifests().iter().position(|m| m == entry);
            let by_digest = Reference::with_digest(
                reference.registry().into(),
                reference.repository().into(),
                entry.digest().to_string(),
            );
            let (bytes, digest) = client
                .pull_manifest_raw(&by_digest, auth, &ACCEPTED)
                .await
                .map_err(resolve)?;
            let key = format!("containerd.io/gc.ref.content.m.{}", position.unwrap_or(0));
            index_labels = Some(HashMap::from([(key, digest.clone())]));
            (bytes, digest)
        } else {
            (top.clone(), top_digest.clone())
        };
        let manifest =
            ImageManifest::from_reader(&manifest_bytes[..]).map_err(|e| e.to_string())?;
        let descriptor = |d: &oci_spec::image::Descriptor| OciDescriptor {
            media_type: d.media_type().to_string(),
            digest: d.digest().to_string(),
            size: d.size() as i64,
            urls: None,
            annotations: None,
            artifact_type: None,
        };
        let fetch_failed = |digest: &str, e: oci_client::errors::OciDistributionError| {
            format!("failed to fetch {digest}: {}", chain(&e))
        };
        let config_desc = descriptor(manifest.config());
        let mut config = Vec::new();
        client
            .pull_blob(reference, &config_desc, &mut config)
            .await
            .map_err(|e| fetch_failed(&config_desc.digest, e))?;
        let parsed = ImageConfiguration::from_reader(&config[..]).map_err(|e| e.to_string())?;
        let mut config_labels = HashMap::new();
        if let Some(top) = chain_ids(parsed.rootfs().diff_ids()).last() {
            let key = format!("containerd.io/gc.ref.snapshot.{}", self.config.snapshotter);
            config_labels.insert(key, top.clone());
        }
        self.put(lease, &config_desc, config.into(), config_labels)
            .await?;
        let mut size = config_desc.size.max(0) as u64;
        for layer in manifest.layers() {
            let layer = descriptor(layer);
            size += layer.size.max(0) as u64;
            if self.content_exists(&layer.digest).await? {
                continue;
            }
            let stream = client
                .pull_blob_stream(reference, &layer)
                .await
                .map_err(|e| fetch_failed(&layer.digest, e))?;
            self.write_content(lease, &layer, stream.stream, HashMap::new())
                .await?;
        }
        let manifest_desc = OciDescriptor {
            digest: manifest_digest,
            size: manifest_bytes.len() as i64,
            ..config_desc.clone()
        };
        self.put(
            lease,
            &manifest_desc,
            manifest_bytes,
            manifest_labels(&manifest),
        )
        .await?;
        let top_desc = OciDescriptor {
            digest: top_digest,
            size: top.len() as i64,
            ..config_desc
        };
        if let Some(labels) = index_labels {
            self.put(lease, &top_desc, top, labels).await?;
        }
        let target = Descriptor {
            media_type: top_type,
            digest: top_desc.digest,
            size: top_desc.size,
            annotations: Default::default(),
        };
        self.set_image(name, target).await?;
        Ok(size)
    }

    async fn content_exists(&self, digest: &str) -> Result<bool, String> {
        let req = InfoRequest {
            digest: digest.into(),
        };
        match self.content().info(self.request(req)).await {
            Ok(_) => Ok(true),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(false),
            Err(s) => Err(format!("containerd content info: {}", s.message())),
        }
    }

    /// Stores a small blob with `labels`, or sets the labels on the stored one.
    async fn put(
        &self,
        lease: &str,
        desc: &OciDescriptor,
        data: Bytes,
        labels: HashMap<String, String>,
    ) -> Result<(), String> {
        if !self.content_exists(&desc.digest).await? {
            let stream = futures::stream::once(futures::future::ready(Ok(data))).boxed();
            return self.write_content(lease, desc, stream, labels).await;
        }
        self.set_labels(&desc.digest, labels).await
    }

    /// Sets `labels` on the stored blob `digest`.
    pub(super) async fn set_labels(
        &self,
        digest: &str,
        labels: HashMap<String, String>,
    ) -> Result<(), String> {
        if labels.is_empty() {
            return Ok(());
        }
        let paths = labels.keys().map(|k| format!("labels.{k}")).collect();
        let req = UpdateRequest {
            info: Some(Info {
                digest: digest.into(),
                labels,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths }),
        };
        self.content()
            .update(self.request(req))
            .await
            .map(|_| ())
            .map_err(|s| format!("containerd content update: {}", s.message()))
    }

    /// Streams one blob into the content store; a blob stored meanwhile counts as written.
    async fn write_content(
        &self,
        lease: &str,
        desc: &OciDescriptor,
        data: BoxStream<'static, Result<Bytes, std::io::Error>>,
        labels: HashMap<String, String>,
    ) -> Result<(), String> {
        // A ref of its own: another image's pull may be writing the same blob.
        let r#ref = format!("keelson-{}-{}", desc.digest, uuid_like());
        let failed = Arc::new(Mutex::new(None));
        let messages = write_messages(
            r#ref.clone(),
            desc.digest.clone(),
            desc.size,
            labels.clone(),
            data,
            failed.clone(),
        );
        let mut status = None;
        match self.content().write(self.leased(messages, lease)).await {
            Ok(responses) => {
                let mut responses = responses.into_inner();
                loop {
                    match responses.message().await {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(s) => {
                            status = Some(s);
                            break;
                        }
                    }
                }
            }
            Err(s) => status = Some(s),
        }
        let fetch_error = failed.lock().unwrap_or_else(|e| e.into_inner()).take();
        match (status, fetch_error) {
            (None, None) => Ok(()),
            (Some(s), None) if s.code() == tonic::Code::AlreadyExists => {
                self.set_labels(&desc.digest, labels).await
            }
            (status, fetch_error) => {
                let _ = self
                    .content()
                    .abort(self.request(AbortRequest { r#ref }))
                    .await;
                Err(match fetch_error {
                    Some(e) => format!("failed to fetch {}: {e}", desc.digest),
                    None => format!(
                        "failed to store {}: {}",
                        desc.digest,
                        status.map(|s| s.message().to_string()).unwrap_or_default()
                    ),
                })
            }
        }
    }

    /// Creates the image record `name` → `target`, or points the existing one at it.
    async fn set_image(&self, name: &str, target: Descriptor) -> Result<(), String> {
        let image = ImageRecord {
            name: name.into(),
            target: Some(target),
            ..Default::default()
        };
        let create = CreateImageRequest {
            image: Some(image.clone()),
            source_date_epoch: None,
        };
        match self.images().create(self.request(create)).await {
            Ok(_) => return Ok(()),
            Err(s) if s.code() == tonic::Code::AlreadyExists => {}
            Err(s) => return Err(format!("containerd create image: {}", s.message())),
        }
        let update = UpdateImageRequest {
            image: Some(image),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["target".into()],
            }),
            source_date_epoch: None,
        };
        self.images()
            .update(self.request(update))
            .await
            .map(|_| ())
            .map_err(|s| format!("containerd update image: {}", s.message()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback_and_configured_registries() {
        let insecure = vec!["registry.lan:5000".to_string(), "mirror.lan".to_string()];
        for (registry, plain) in [
            ("localhost:5000", true),
            ("127.0.0.1:41234", true),
            ("[::1]:5000", true),
            ("registry.lan:5000", true),
            ("registry.lan:5001", false),
            ("mirror.lan:443", true),
            ("docker.io", false),
            ("10.0.0.1:5000", false),
        ] {
            assert_eq!(plain_http(registry, &insecure), plain, "{registry}");
        }
    }

    #[test]
    fn credentials_match_the_registry() {
        let creds = vec![
            RegistryCredential {
                registry: "ghcr.io".into(),
                username: "u1".into(),
                password: "p1".into(),
            },
            RegistryCredential {
                registry: "docker.io".into(),
                username: "u2".into(),
                password: "p2".into(),
            },
        ];
        let r: Reference = "docker.io/library/busybox:latest".parse().unwrap();
        assert!(matches!(auth_for(&r, &creds), RegistryAuth::Basic(u, _) if u == "u2"));
        let r: Reference = "quay.io/a/b:1".parse().unwrap();
        assert!(matches!(auth_for(&r, &creds), RegistryAuth::Anonymous));
    }

    #[test]
    fn media_types_and_gc_labels() {
        assert_eq!(media_type_of(br#"{"manifests":[]}"#), OCI_INDEX);
        assert_eq!(media_type_of(br#"{"layers":[]}"#), OCI_MANIFEST);
        assert_eq!(
            media_type_of(format!(r#"{{"mediaType":"{DOCKER_LIST}"}}"#).as_bytes()),
            DOCKER_LIST
        );
        let manifest = ImageManifest::from_reader(
            &br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
              "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc","size":2},
              "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":3},
                        {"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","size":4}]}"#[..],
        )
        .unwrap();
        let labels = manifest_labels(&manifest);
        assert_eq!(labels.len(), 3);
        assert!(labels["containerd.io/gc.ref.content.config"].starts_with("sha256:ccc"));
        assert!(labels["containerd.io/gc.ref.content.l.1"].starts_with("sha256:bbb"));
    }

    #[tokio::test]
    async fn content_writes_carry_offsets_and_end_in_a_commit() {
        let data = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Ok(Bytes::from_static(b"de")),
        ])
        .boxed();
        let labels = HashMap::from([("k".to_string(), "v".to_string())]);
        let failed = Arc::new(Mutex::new(None));
        let msgs: Vec<_> = write_messages(
            "r".into(),
            "sha256:x".into(),
            5,
            labels,
            data,
            failed.clone(),
        )
        .collect()
        .await;
        let summary: Vec<_> = msgs
            .iter()
            .map(|m| (m.action, m.offset, m.data.len(), m.labels.len()))
            .collect();
        let (w, c) = (WriteAction::Write as i32, WriteAction::Commit as i32);
        assert_eq!(summary, [(w, 0, 3, 0), (w, 3, 2, 0), (c, 5, 0, 1)]);
        assert!(msgs
            .iter()
            .all(|m| m.r#ref == "r" && m.expected == "sha256:x" && m.total == 5));
        assert!(failed.lock().unwrap().is_none());
        // A failing download stops the data; the commit at the full size then fails.
        let data = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Err(std::io::Error::other("reset")),
            Ok(Bytes::from_static(b"de")),
        ])
        .boxed();
        let msgs: Vec<_> = write_messages(
            "r".into(),
            "sha256:x".into(),
            5,
            HashMap::new(),
            data,
            failed.clone(),
        )
        .collect()
        .await;
        assert_eq!(msgs.len(), 2);
        assert_eq!(failed.lock().unwrap().as_deref(), Some("reset"));
    }
}
