//! `--encryption-provider-config`: Kubernetes' `EncryptionConfiguration`
//! (apiserver.config.k8s.io/v1) read into the store's encryption rules — which resources
//! (`secrets`, `deployments.apps`, `*.apps`, `*.*`) are sealed by which providers (aescbc,
//! aesgcm, secretbox, identity), mapped to the store prefixes of those resources.

use std::path::Path;

use base64::Engine;
use keelson_store::encryption::{Provider, Transformer};
use serde::Deserialize;

use crate::registry::Registry;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EncryptionConfiguration {
    kind: Option<String>,
    resources: Vec<ResourceConfig>,
}

#[derive(Debug, Deserialize)]
struct ResourceConfig {
    resources: Vec<String>,
    providers: Vec<ProviderConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
struct ProviderConfig {
    aescbc: Option<Keys>,
    aesgcm: Option<Keys>,
    secretbox: Option<Keys>,
    identity: Option<serde_json::Value>,
    kms: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Keys {
    keys: Vec<Key>,
}

#[derive(Debug, Deserialize)]
struct Key {
    name: String,
    secret: String,
}

/// Why an encryption configuration was refused.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {why}")]
pub struct EncryptionConfigError {
    path: String,
    why: String,
}

fn keys(k: &Keys, sizes: &[usize]) -> Result<Vec<(String, Vec<u8>)>, String> {
    if k.keys.is_empty() {
        return Err("a provider needs at least one key".into());
    }
    k.keys
        .iter()
        .map(|key| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(key.secret.trim())
                .map_err(|e| format!("key {:?}: secret is not base64: {e}", key.name))?;
            if !sizes.contains(&bytes.len()) {
                return Err(format!(
                    "key {:?}: {} bytes, want {}",
                    key.name,
                    bytes.len(),
                    sizes
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(" or ")
                ));
            }
            Ok((key.name.clone(), bytes))
        })
        .collect()
}

fn fixed(k: Vec<(String, Vec<u8>)>) -> Vec<(String, [u8; 32])> {
    k.into_iter()
        .filter_map(|(n, b)| Some((n, <[u8; 32]>::try_from(b.as_slice()).ok()?)))
        .collect()
}

fn provider(p: &ProviderConfig) -> Result<Provider, String> {
    let chosen = [
        p.aescbc.is_some(),
        p.aesgcm.is_some(),
        p.secretbox.is_some(),
        p.identity.is_some(),
        p.kms.is_some(),
    ];
    if chosen.iter().filter(|c| **c).count() != 1 {
        return Err(
            "each provider entry names exactly one of aescbc, aesgcm, secretbox, identity".into(),
        );
    }
    if p.kms.is_some() {
        return Err("the kms provider is not supported by Keelson".into());
    }
    Ok(match (&p.aescbc, &p.aesgcm, &p.secretbox) {
        (Some(k), _, _) => Provider::AesCbc(fixed(keys(k, &[32])?)),
        (_, Some(k), _) => Provider::AesGcm(keys(k, &[16, 32])?),
        (_, _, Some(k)) => Provider::SecretBox(fixed(keys(k, &[32])?)),
        _ => Provider::Identity,
    })
}

/// Store prefixes a resource name of the configuration covers.
fn prefixes(registry: &Registry, name: &str) -> Result<Vec<String>, String> {
    let (resource, group) = name.split_once('.').unwrap_or((name, ""));
    let group = if group == "core" { "" } else { group };
    match (resource, group) {
        ("*", "*") => Ok(vec!["/registry/".into()]),
        ("*", g) => Ok(vec![format!(
            "/registry/{}/",
            if g.is_empty() { "core" } else { g }
        )]),
        (r, g) => {
            let defs: Vec<_> = registry
                .all()
                .into_iter()
                .filter(|d| d.plural == r && d.group == g)
                .map(|d| d.prefix())
                .collect();
            match defs.is_empty() {
                true => Err(format!("unknown resource {name:?}")),
                false => Ok(defs),
            }
        }
    }
}

/// Reads the configuration at `path` into the store's rules (in the file's order).
pub(crate) fn load(
    path: &Path,
    registry: &Registry,
) -> Result<Vec<(String, Transformer)>, EncryptionConfigError> {
    let err = |why: String| EncryptionConfigError {
        path: path.display().to_string(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let config: EncryptionConfiguration =
        serde_saphyr::from_str(&text).map_err(|e| err(e.to_string()))?;
    if config
        .kind
        .as_deref()
        .is_some_and(|k| k != "EncryptionConfiguration")
    {
        return Err(err(format!(
            "kind {:?} is not EncryptionConfiguration",
            config.kind
        )));
    }
    let mut rules = Vec::new();
    for r in &config.resources {
        let providers = r
            .providers
            .iter()
            .map(provider)
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let transformer = Transformer::new(providers).map_err(|e| err(e.to_string()))?;
        for name in &r.resources {
            for prefix in prefixes(registry, name).map_err(err)? {
                rules.push((prefix, transformer.clone()));
            }
        }
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_configuration_maps_to_prefixes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enc.yaml");
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        std::fs::write(
            &path,
            format!("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets, configmaps]\n  providers:\n  - aescbc:\n      keys:\n      - name: key1\n        secret: {key}\n  - identity: {{}}\n"),
        )
        .unwrap();
        let rules = load(&path, &Registry::builtin()).unwrap();
        let prefixes: Vec<&str> = rules.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            prefixes,
            ["/registry/core/secrets/", "/registry/core/configmaps/"]
        );
        std::fs::write(&path, "resources:\n- resources: [secrets]\n  providers:\n  - aescbc:\n      keys:\n      - name: k\n        secret: c2hvcnQ=\n").unwrap();
        let e = load(&path, &Registry::builtin()).unwrap_err().to_string();
        assert!(e.contains("5 bytes, want 32"), "{e}");
        std::fs::write(
            &path,
            "resources:\n- resources: [nothings]\n  providers:\n  - identity: {}\n",
        )
        .unwrap();
        assert!(load(&path, &Registry::builtin())
            .unwrap_err()
            .to_string()
            .contains("unknown resource"));
    }
}
