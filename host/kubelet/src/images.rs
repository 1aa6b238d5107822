//! The local image store of Wasm images: an OCI image layout directory (`oci-layout`,
//! `index.json`, `blobs/sha256/…`) holding, per image, a manifest with one `application/wasm`
//! layer and a `application/vnd.wasm.config.v0+json` config (the CNCF Wasm OCI artifact
//! layout). `keelson image import FILE.wasm NAME:TAG` writes one ([`ImageStore::import`]); the
//! `wasm` runtime resolves a container's `image` to its component ([`ImageStore::resolve`]).
//! References without a tag mean `:latest`; `NAME@sha256:…` selects by manifest digest.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::Error;

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.wasm.config.v0+json";
const LAYER_TYPE: &str = "application/wasm";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A resolved image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// Path of the component's blob.
    pub wasm: PathBuf,
    /// `NAME@sha256:<manifest digest>`, what container statuses show as `imageID`.
    pub image_id: String,
}

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

/// `name` with `:latest` added when it has neither tag nor digest.
pub fn normalize(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if last.contains(':') || reference.contains('@') {
        reference.to_string()
    } else {
        format!("{reference}:latest")
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

impl ImageStore {
    /// The layout at `root` (created on the first import).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ImageStore { root: root.into() }
    }

    fn blob(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.root.join("blobs/sha256").join(hex)
    }

    fn put_blob(&self, bytes: &[u8]) -> std::io::Result<String> {
        let digest = format!("sha256:{}", sha256_hex(bytes));
        let path = self.blob(&digest);
        if !path.exists() {
            std::fs::create_dir_all(path.parent().unwrap_or(&self.root))?;
            write_atomically(&path, bytes)?;
        }
        Ok(digest)
    }

    fn index(&self) -> Result<Value, Error> {
        match std::fs::read(self.root.join("index.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::BadImage {
                image: "index.json".into(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(json!({"schemaVersion": 2, "manifests": []}))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Stores `wasm` as image `reference`, replacing an older image of that name; returns the
    /// image id.
    pub fn import(&self, wasm: &[u8], reference: &str) -> Result<String, Error> {
        if !wasm.starts_with(b"\0asm") {
            return Err(Error::BadImage {
                image: reference.into(),
                message: "not a WebAssembly binary".into(),
            });
        }
        let reference = normalize(reference);
        std::fs::create_dir_all(&self.root)?;
        write_atomically(
            &self.root.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        let layer = self.put_blob(wasm)?;
        let config = serde_json::to_vec(
            &json!({"created": null, "architecture": "wasm", "os": "wasip2",
            "layerDigests": [layer], "component": {}}),
        )
        .unwrap_or_default();
        let config_digest = self.put_blob(&config)?;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "artifactType": CONFIG_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": LAYER_TYPE, "digest": layer, "size": wasm.len()}],
        }))
        .unwrap_or_default();
        let manifest_digest = self.put_blob(&manifest)?;
        let mut index = self.index()?;
        let entries = index["manifests"].as_array_mut();
        let mut manifests: Vec<Value> = entries.map(std::mem::take).unwrap_or_default();
        manifests.retain(|m| m["annotations"][REF_NAME] != reference.as_str());
        manifests.push(
            json!({"mediaType": MANIFEST_TYPE, "digest": manifest_digest,
            "size": manifest.len(), "annotations": {REF_NAME: reference}}),
        );
        index["manifests"] = Value::Array(manifests);
        write_atomically(
            &self.root.join("index.json"),
            &serde_json::to_vec_pretty(&index).unwrap_or_default(),
        )?;
        Ok(image_id(&reference, &manifest_digest))
    }

    /// The component of image `reference`.
    pub fn resolve(&self, reference: &str) -> Result<ResolvedImage, Error> {
        let wanted = normalize(reference);
        let (name, digest) = match wanted.split_once('@') {
            Some((n, d)) => (n.to_string(), Some(d.to_string())),
            None => (wanted.clone(), None),
        };
        let index = self.index()?;
        let entry = index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| match &digest {
                Some(d) => m["digest"] == d.as_str(),
                None => m["annotations"][REF_NAME] == name.as_str(),
            })
            .ok_or_else(|| Error::ImageNotFound(reference.into()))?;
        let manifest_digest = entry["digest"].as_str().unwrap_or_default().to_string();
        let bad = |message: String| Error::BadImage {
            image: reference.into(),
            message,
        };
        let manifest: Value = serde_json::from_slice(&std::fs::read(self.blob(&manifest_digest))?)
            .map_err(|e| bad(e.to_string()))?;
        let layer = manifest["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["mediaType"] == LAYER_TYPE)
            .and_then(|l| l["digest"].as_str())
            .ok_or_else(|| bad(format!("no {LAYER_TYPE} layer")))?;
        let wasm = self.blob(layer);
        if !wasm.exists() {
            return Err(bad(format!("layer {layer} is missing")));
        }
        let name = name.rsplit_once(':').map(|(n, _)| n).unwrap_or(&name);
        Ok(ResolvedImage {
            wasm,
            image_id: image_id(name, &manifest_digest),
        })
    }
}

fn image_id(reference: &str, digest: &str) -> String {
    let name = match reference.rsplit_once(':') {
        Some((n, tag)) if !tag.contains('/') => n,
        _ => reference,
    };
    format!("{name}@{digest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_then_resolve_by_tag_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path());
        let id = store.import(b"\0asm\x0d\0\x01\0", "demo").unwrap();
        assert!(id.starts_with("demo@sha256:"), "{id}");
        let by_tag = store.resolve("demo:latest").unwrap();
        assert_eq!(by_tag.image_id, id);
        assert_eq!(std::fs::read(&by_tag.wasm).unwrap(), b"\0asm\x0d\0\x01\0");
        let digest = id.split_once('@').unwrap().1;
        assert_eq!(store.resolve(&format!("demo@{digest}")).unwrap(), by_tag);
        // A new import under the same name replaces the old one.
        let id2 = store.import(b"\0asm\x0d\0\x01\0\0", "demo:latest").unwrap();
        assert_ne!(id, id2);
        assert_eq!(store.resolve("demo").unwrap().image_id, id2);
        assert!(matches!(
            store.resolve("other:1"),
            Err(Error::ImageNotFound(_))
        ));
        assert!(store.import(b"not wasm", "x:1").is_err());
        assert!(dir.path().join("oci-layout").exists());
    }
}
