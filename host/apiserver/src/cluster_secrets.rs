//! The credentials every server of one cluster shares through its store — k3s's "bootstrap
//! data": the cluster CA and its key, the client CA and its key, the ServiceAccount signing key
//! (and the retired ones still trusted), the admin token and the node join token.
//!
//! With a shared store (etcd) and a cluster token (`keelson server --token`), the first server
//! writes its files into one store key, `/bootstrap/<sha256(token) prefix>`, sealed with
//! AES-256-GCM under a key derived from the token (PBKDF2-HMAC-SHA256, as k3s derives its key
//! from the token); every later server with the same token writes them into its data dir
//! before loading credentials, so one kubeconfig, one ServiceAccount token and one node token
//! work against any server. The serving certificate stays per server (signed by the shared
//! CA). A data dir that already holds other credentials is refused rather than overwritten,
//! and a wrong token cannot open the data, so it fails the start with a clear message.

use std::path::Path;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use serde::{Deserialize, Serialize};
use sha2::Digest;

/// The files shared, relative to the data dir. Optional ones (retired signing keys) may be
/// absent.
const SHARED: &[&str] = &[
    "tls/ca.crt",
    "tls/ca.key",
    "tls/client-ca.crt",
    "tls/client-ca.key",
    "tls/service-account.key",
    "tls/service-account-old",
    "token",
    "node-token",
];

/// PBKDF2 rounds for the sealing key.
const ROUNDS: u32 = 100_000;

/// Why the shared credentials could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// Reading or writing the store failed.
    #[error("the store: {0}")]
    Store(#[from] keelson_store::Error),
    /// Reading or writing the data dir failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The stored data does not open with this token.
    #[error("the cluster's bootstrap data in the store does not open with this --token (another cluster's token, or a damaged record)")]
    WrongToken,
    /// The data dir already has credentials of another cluster.
    #[error("{0} in the data dir differs from the cluster's (this data dir belongs to another cluster: start with an empty --data-dir to join)")]
    Conflict(String),
}

/// The sealed record in the store.
#[derive(Serialize, Deserialize)]
struct Sealed {
    /// PBKDF2 salt (base64).
    salt: String,
    /// AES-GCM nonce (base64).
    nonce: String,
    /// Ciphertext of the JSON map path → contents (base64).
    data: String,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The store key of a token's bootstrap data (like k3s, named by a hash of the token so
/// several clusters' records never collide and the key reveals nothing of the token).
fn key(token: &str) -> String {
    let digest = sha2::Sha256::digest(format!("keelson-bootstrap:{token}").as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("/bootstrap/{hex}")
}

fn sealing_key(token: &str, salt: &[u8]) -> LessSafeKey {
    let mut bytes = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(ROUNDS).expect("non-zero"),
        salt,
        token.as_bytes(),
        &mut bytes,
    );
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &bytes).expect("32-byte key"))
}

fn seal(token: &str, files: &std::collections::BTreeMap<String, String>) -> Vec<u8> {
    use base64::Engine;
    let salt: [u8; 16] = rand::random();
    let nonce: [u8; NONCE_LEN] = rand::random();
    let mut data = serde_json::to_vec(files).expect("a map of strings serializes");
    sealing_key(token, &salt)
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
        .expect("sealing in memory");
    serde_json::to_vec(&Sealed {
        salt: b64().encode(salt),
        nonce: b64().encode(nonce),
        data: b64().encode(data),
    })
    .expect("serializes")
}

fn open(
    token: &str,
    record: &[u8],
) -> Result<std::collections::BTreeMap<String, String>, SecretsError> {
    use base64::Engine;
    let sealed: Sealed = serde_json::from_slice(record).map_err(|_| SecretsError::WrongToken)?;
    let decode = |s: &str| b64().decode(s).map_err(|_| SecretsError::WrongToken);
    let (salt, nonce, mut data) = (
        decode(&sealed.salt)?,
        decode(&sealed.nonce)?,
        decode(&sealed.data)?,
    );
    let nonce = Nonce::try_assume_unique_for_key(&nonce).map_err(|_| SecretsError::WrongToken)?;
    let plain = sealing_key(token, &salt)
        .open_in_place(nonce, Aad::empty(), &mut data)
        .map_err(|_| SecretsError::WrongToken)?;
    serde_json::from_slice(plain).map_err(|_| SecretsError::WrongToken)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SecretsError + '_ {
    move |source| SecretsError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The shared files present in the data dir.
fn read_local(data_dir: &Path) -> Result<std::collections::BTreeMap<String, String>, SecretsError> {
    let mut files = std::collections::BTreeMap::new();
    for name in SHARED {
        let path = data_dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                files.insert(name.to_string(), text);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
        }
    }
    Ok(files)
}

/// Writes the cluster's files into the data dir; a differing local file is a conflict.
fn adopt(
    data_dir: &Path,
    files: &std::collections::BTreeMap<String, String>,
) -> Result<(), SecretsError> {
    let local = read_local(data_dir)?;
    for (name, text) in files {
        match local.get(name) {
            Some(mine) if mine.trim() != text.trim() => {
                return Err(SecretsError::Conflict(name.clone()))
            }
            Some(_) => {}
            None => {
                let path = data_dir.join(name);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io(dir))?;
                }
                crate::pki::write_private(&path, text).map_err(io(&path))?;
            }
        }
    }
    Ok(())
}

/// Makes the data dir hold the cluster's shared credentials: adopts the stored ones, or —
/// the first server of the cluster — publishes its own (made by `create_local(dir)`: in the
/// data dir when it already has a CA, so a single server can grow into a cluster; else in a
/// scratch dir). Two first servers racing both publish; the loser adopts the winner's, and
/// the data dir only ever holds the cluster's credentials.
pub(crate) async fn sync(
    store: &keelson_store::Store,
    data_dir: &Path,
    token: &str,
    create_local: impl Fn(&Path) -> std::io::Result<()>,
) -> Result<(), SecretsError> {
    let key = key(token);
    if let Some(kv) = store.get(&key).await? {
        adopt(data_dir, &open(token, &kv.value)?)?;
        tracing::info!(%key, "joined the cluster: credentials from the store");
        return Ok(());
    }
    let has_ca = data_dir.join(SHARED[0]).exists();
    let scratch = data_dir.join(format!(".cluster-secrets.{}", std::process::id()));
    let source = if has_ca { data_dir } else { scratch.as_path() };
    std::fs::create_dir_all(source).map_err(io(source))?;
    let made = create_local(source)
        .map_err(io(source))
        .and_then(|()| read_local(source));
    if !has_ca {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    let mine = made?;
    match store.create(&key, seal(token, &mine)).await {
        Ok(_) => {
            tracing::info!(%key, "first server of the cluster: credentials published in the store");
            adopt(data_dir, &mine)
        }
        Err(keelson_store::Error::AlreadyExists(_)) => {
            let kv = store.get(&key).await?.ok_or(SecretsError::WrongToken)?;
            adopt(data_dir, &open(token, &kv.value)?)?;
            tracing::info!(%key, "joined the cluster: another server published first");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_its_token() {
        let files = [("token".to_string(), "abc".to_string())].into();
        let sealed = seal("s3cret", &files);
        assert_eq!(open("s3cret", &sealed).unwrap(), files);
        assert!(matches!(
            open("other", &sealed),
            Err(SecretsError::WrongToken)
        ));
        assert!(!String::from_utf8_lossy(&sealed).contains("abc"));
        assert_ne!(key("s3cret"), key("other"));
    }

    #[tokio::test]
    async fn second_server_adopts_the_first_servers_credentials() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = keelson_store::Store::open_embedded(store_dir.path())
            .await
            .unwrap();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let make = |dir: &Path| crate::pki::ensure(dir).map(|_| ());
        sync(&store, a.path(), "t", make).await.unwrap();
        sync(&store, b.path(), "t", make).await.unwrap();
        for name in [
            "tls/ca.crt",
            "tls/ca.key",
            "token",
            "node-token",
            "tls/client-ca.key",
        ] {
            let read = |d: &Path| std::fs::read_to_string(d.join(name)).unwrap();
            assert_eq!(read(a.path()), read(b.path()), "{name}");
        }
        // A data dir of another cluster is refused, not overwritten.
        let c = tempfile::tempdir().unwrap();
        crate::pki::ensure(c.path()).unwrap();
        let err = sync(&store, c.path(), "t", make).await.unwrap_err();
        assert!(matches!(err, SecretsError::Conflict(_)), "{err}");
        // A record that does not open with the token fails the start, loudly.
        let store_dir = tempfile::tempdir().unwrap();
        let store = keelson_store::Store::open_embedded(store_dir.path())
            .await
            .unwrap();
        store
            .create(&key("t"), seal("x", &[].into()))
            .await
            .unwrap();
        let d = tempfile::tempdir().unwrap();
        let err = sync(&store, d.path(), "t", |_| Ok(())).await.unwrap_err();
        assert!(matches!(err, SecretsError::WrongToken), "{err}");
    }
}
