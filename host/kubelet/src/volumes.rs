//! Pod volumes on the node, under `<data-dir>/pods/<ns>_<pod>_<uid>/volumes/<name>` (removed
//! with the pod): `emptyDir` (kept across container restarts), `configMap` and `secret` (the
//! keys, or the listed `items`, written as files when a container starts), `downwardAPI`
//! (fieldRef items), `hostPath` (the host directory itself), and `persistentVolumeClaim` (the
//! claim's bound PersistentVolume, which must be a `hostPath` or `local` volume: its directory,
//! created when missing; `readOnly` on the volume is honoured; while the claim is missing or
//! unbound the container waits in ContainerCreating with a FailedMount event, as in Kubernetes).
//! A container's `volumeMounts`
//! become [`Mount`]s: the Wasm runtime preopens them at `mountPath` (`subPath` selects a
//! directory inside the volume); configMap, secret and downwardAPI volumes are read-only.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod, Secret,
};
use kube::{Api, Client};

use crate::runtime::Mount;
use crate::Error;

/// A prepared volume: its directory and whether mounts of it are forced read-only.
struct Prepared {
    dir: PathBuf,
    read_only: bool,
}

fn write_files(
    dir: &Path,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
) -> Result<(), Error> {
    std::fs::create_dir_all(dir)?;
    let files: Vec<(String, &Vec<u8>)> = match items {
        Some(items) => items
            .iter()
            .filter_map(|i| data.get(&i.key).map(|v| (i.path.clone(), v)))
            .collect(),
        None => data.iter().map(|(k, v)| (k.clone(), v)).collect(),
    };
    for (path, bytes) in files {
        if path.split('/').any(|p| p == "..") || path.starts_with('/') {
            return Err(Error::Config(format!(
                "volume item path {path:?} leaves the volume"
            )));
        }
        let file = dir.join(&path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(file, bytes)?;
    }
    Ok(())
}

/// The host directory of the PersistentVolume bound to claim `name` in `ns`.
async fn claim_dir(client: &Client, ns: &str, name: &str) -> Result<PathBuf, Error> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let Some(pvc) = claims.get_opt(name).await? else {
        return Err(Error::VolumeNotReady(format!(
            "persistentvolumeclaim \"{name}\" not found"
        )));
    };
    let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let Some(volume) = pvc.spec.and_then(|s| s.volume_name).filter(|_| bound) else {
        return Err(Error::VolumeNotReady(format!(
            "persistentvolumeclaim \"{name}\" is not bound"
        )));
    };
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let Some(pv) = volumes.get_opt(&volume).await? else {
        return Err(Error::VolumeNotReady(format!(
            "persistentvolume \"{volume}\" not found"
        )));
    };
    let spec = pv.spec.unwrap_or_default();
    let path = match (spec.host_path, spec.local) {
        (Some(h), _) => h.path,
        (None, Some(l)) => l.path,
        _ => {
            return Err(Error::Config(format!(
                "persistentvolume \"{volume}\": only hostPath and local volumes are supported by this agent"
            )))
        }
    };
    let dir = PathBuf::from(path);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn prepare(
    client: &Client,
    pod: &Pod,
    root: &Path,
) -> Result<HashMap<String, Prepared>, Error> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let mut out = HashMap::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let dir = root.join(&v.name);
        let missing =
            |what: &str, name: &str| Error::Config(format!("{what} \"{name}\" not found"));
        let read_only = if v.empty_dir.is_some() {
            std::fs::create_dir_all(&dir)?;
            false
        } else if let Some(h) = &v.host_path {
            out.insert(
                v.name.clone(),
                Prepared {
                    dir: PathBuf::from(&h.path),
                    read_only: false,
                },
            );
            continue;
        } else if let Some(c) = &v.persistent_volume_claim {
            out.insert(
                v.name.clone(),
                Prepared {
                    dir: claim_dir(client, &ns, &c.claim_name).await?,
                    read_only: c.read_only == Some(true),
                },
            );
            continue;
        } else if let Some(c) = &v.config_map {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
            match api.get_opt(&c.name).await? {
                Some(cm) => {
                    let mut data: BTreeMap<String, Vec<u8>> = cm
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.into_bytes()))
                        .collect();
                    data.extend(
                        cm.binary_data
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (k, v.0)),
                    );
                    write_files(&dir, &data, c.items.as_ref())?;
                }
                None if c.optional == Some(true) => std::fs::create_dir_all(&dir)?,
                None => return Err(missing("configmap", &c.name)),
            }
            true
        } else if let Some(s) = &v.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
            match api.get_opt(&name).await? {
                Some(secret) => {
                    let mut data: BTreeMap<String, Vec<u8>> = secret
                        .string_data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.into_bytes()))
                        .collect();
                    data.extend(
                        secret
                            .data
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (k, v.0)),
                    );
                    write_files(&dir, &data, s.items.as_ref())?;
                }
                None if s.optional == Some(true) => std::fs::create_dir_all(&dir)?,
                None => return Err(missing("secret", &name)),
            }
            true
        } else if let Some(d) = &v.downward_api {
            let mut data = BTreeMap::new();
            for item in d.items.iter().flatten() {
                if let Some(f) = &item.field_ref {
                    data.insert(
                        item.path.clone(),
                        crate::env::field(pod, &f.field_path)?.into_bytes(),
                    );
                }
            }
            write_files(&dir, &data, None)?;
            true
        } else {
            return Err(Error::Config(format!(
                "volume \"{}\": only emptyDir, configMap, secret, downwardAPI, hostPath and persistentVolumeClaim volumes are supported by this agent",
                v.name
            )));
        };
        out.insert(v.name.clone(), Prepared { dir, read_only });
    }
    Ok(out)
}

/// Prepares the pod's volumes under `root` and returns `container`'s mounts.
pub(crate) async fn mounts(
    client: &Client,
    pod: &Pod,
    container: &Container,
    root: &Path,
) -> Result<Vec<Mount>, Error> {
    if container
        .volume_mounts
        .as_ref()
        .is_none_or(|m| m.is_empty())
    {
        return Ok(Vec::new());
    }
    let volumes = prepare(client, pod, root).await?;
    let mut mounts = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let v = volumes
            .get(&m.name)
            .ok_or_else(|| Error::Config(format!("volume mount {:?} names no volume", m.name)))?;
        let mut host = v.dir.clone();
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            if sub.split('/').any(|p| p == "..") || sub.starts_with('/') {
                return Err(Error::Config(format!("subPath {sub:?} leaves the volume")));
            }
            host = host.join(sub);
            std::fs::create_dir_all(&host)?;
        }
        mounts.push(Mount {
            host,
            guest: m.mount_path.clone(),
            read_only: v.read_only || m.read_only == Some(true),
        });
    }
    Ok(mounts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_from_keys_or_items_stay_inside_the_volume() {
        let dir = tempfile::tempdir().unwrap();
        let data: BTreeMap<String, Vec<u8>> = [
            ("a".to_string(), b"1".to_vec()),
            ("b".to_string(), b"2".to_vec()),
        ]
        .into();
        write_files(&dir.path().join("all"), &data, None).unwrap();
        assert_eq!(std::fs::read(dir.path().join("all/b")).unwrap(), b"2");
        let items = vec![KeyToPath {
            key: "a".into(),
            path: "sub/renamed".into(),
            mode: None,
        }];
        write_files(&dir.path().join("some"), &data, Some(&items)).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("some/sub/renamed")).unwrap(),
            b"1"
        );
        assert!(!dir.path().join("some/b").exists());
        let escape = vec![KeyToPath {
            key: "a".into(),
            path: "../x".into(),
            mode: None,
        }];
        assert!(write_files(&dir.path().join("bad"), &data, Some(&escape)).is_err());
    }
}
