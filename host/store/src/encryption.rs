//! Encryption at rest (Kubernetes' storage transformers): a [`Backend`] wrapper that seals
//! the values under chosen key prefixes before they reach the backend and opens them on every
//! read, list and watch event. Sealed values carry Kubernetes' envelope prefix
//! `k8s:enc:<provider>:v1:<key name>:`, so any configured key can read them; the first
//! provider seals new writes and `identity` reads plain values, so data stays readable across
//! a provider change or a key rotation.

use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};

use crate::{Backend, Error, Event, KeyValue, Result};

/// One encryption provider with its keys (the first key seals).
#[derive(Clone)]
pub enum Provider {
    /// No encryption: writes plain values; reads anything without an envelope.
    Identity,
    /// AES-CBC with PKCS#7 padding, random IV (32-byte keys).
    AesCbc(Vec<(String, [u8; 32])>),
    /// AES-GCM, random nonce, the storage key as associated data (16-, 24- or 32-byte keys).
    AesGcm(Vec<(String, Vec<u8>)>),
    /// XSalsa20-Poly1305 secretbox, random nonce (32-byte keys).
    SecretBox(Vec<(String, [u8; 32])>),
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Provider {
    /// Kubernetes' name of the provider.
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Identity => "identity",
            Provider::AesCbc(_) => "aescbc",
            Provider::AesGcm(_) => "aesgcm",
            Provider::SecretBox(_) => "secretbox",
        }
    }

    fn key_names(&self) -> Vec<&str> {
        match self {
            Provider::Identity => vec![],
            Provider::AesCbc(k) | Provider::SecretBox(k) => {
                k.iter().map(|(n, _)| n.as_str()).collect()
            }
            Provider::AesGcm(k) => k.iter().map(|(n, _)| n.as_str()).collect(),
        }
    }

    fn seal(&self, storage_key: &str, plain: &[u8]) -> Result<Vec<u8>> {
        let fail = |e: &dyn std::fmt::Display| Error::Encryption(format!("{}: {e}", self.name()));
        let (name, sealed) = match self {
            Provider::Identity => return Ok(plain.to_vec()),
            Provider::AesCbc(keys) => {
                use cbc::cipher::{BlockEncryptMut, KeyIvInit};
                let (name, key) = &keys[0];
                let iv: [u8; 16] = rand::random();
                let enc = cbc::Encryptor::<aes::Aes256>::new(key.into(), &iv.into());
                let mut out = iv.to_vec();
                out.extend(enc.encrypt_padded_vec_mut::<cbc::cipher::block_padding::Pkcs7>(plain));
                (name, out)
            }
            Provider::AesGcm(keys) => {
                let (name, key) = &keys[0];
                let nonce: [u8; 12] = rand::random();
                let payload = Payload {
                    msg: plain,
                    aad: storage_key.as_bytes(),
                };
                let sealed = gcm_encrypt(key, &nonce, payload).map_err(|e| fail(&e))?;
                let mut out = nonce.to_vec();
                out.extend(sealed);
                (name, out)
            }
            Provider::SecretBox(keys) => {
                use crypto_secretbox::{KeyInit as _, XSalsa20Poly1305};
                let (name, key) = &keys[0];
                let nonce: [u8; 24] = rand::random();
                let cipher = XSalsa20Poly1305::new(key.into());
                let sealed = crypto_secretbox::aead::Aead::encrypt(&cipher, &nonce.into(), plain)
                    .map_err(|e| fail(&e))?;
                let mut out = nonce.to_vec();
                out.extend(sealed);
                (name, out)
            }
        };
        let mut out = format!("k8s:enc:{}:v1:{name}:", self.name()).into_bytes();
        out.extend(sealed);
        Ok(out)
    }

    /// Opens `data` if this provider sealed it (`None` when the envelope names another).
    fn open(&self, storage_key: &str, data: &[u8]) -> Option<Result<Vec<u8>>> {
        let fail = |why: &str| {
            Some(Err(Error::Encryption(format!(
                "{}: {why} ({storage_key})",
                self.name()
            ))))
        };
        let prefix = format!("k8s:enc:{}:v1:", self.name());
        let rest = data.strip_prefix(prefix.as_bytes())?;
        let colon = rest.iter().position(|b| *b == b':')?;
        let (name, body) = (
            std::str::from_utf8(&rest[..colon]).ok()?,
            &rest[colon + 1..],
        );
        match self {
            Provider::Identity => None,
            Provider::AesCbc(keys) => {
                use cbc::cipher::{BlockDecryptMut, KeyIvInit};
                let (_, key) = keys.iter().find(|(n, _)| n == name)?;
                if body.len() < 16 {
                    return fail("ciphertext too short");
                }
                let (iv, ct) = body.split_at(16);
                let dec = cbc::Decryptor::<aes::Aes256>::new(key.into(), iv.into());
                Some(
                    dec.decrypt_padded_vec_mut::<cbc::cipher::block_padding::Pkcs7>(ct)
                        .map_err(|e| Error::Encryption(format!("aescbc: {e} ({storage_key})"))),
                )
            }
            Provider::AesGcm(keys) => {
                let (_, key) = keys.iter().find(|(n, _)| n == name)?;
                if body.len() < 12 {
                    return fail("ciphertext too short");
                }
                let (nonce, ct) = body.split_at(12);
                let payload = Payload {
                    msg: ct,
                    aad: storage_key.as_bytes(),
                };
                Some(
                    gcm_decrypt(key, nonce, payload)
                        .map_err(|e| Error::Encryption(format!("aesgcm: {e} ({storage_key})"))),
                )
            }
            Provider::SecretBox(keys) => {
                use crypto_secretbox::{KeyInit as _, XSalsa20Poly1305};
                let (_, key) = keys.iter().find(|(n, _)| n == name)?;
                if body.len() < 24 {
                    return fail("ciphertext too short");
                }
                let (nonce, ct) = body.split_at(24);
                let cipher = XSalsa20Poly1305::new(key.into());
                let nonce = crypto_secretbox::Nonce::from_slice(nonce);
                Some(
                    crypto_secretbox::aead::Aead::decrypt(&cipher, nonce, ct)
                        .map_err(|e| Error::Encryption(format!("secretbox: {e} ({storage_key})"))),
                )
            }
        }
    }
}

fn gcm_encrypt(
    key: &[u8],
    nonce: &[u8; 12],
    payload: Payload<'_, '_>,
) -> std::result::Result<Vec<u8>, String> {
    let nonce = aes_gcm::Nonce::from_slice(nonce);
    match key.len() {
        16 => aes_gcm::Aes128Gcm::new_from_slice(key)
            .map_err(|e| e.to_string())?
            .encrypt(nonce, payload),
        32 => aes_gcm::Aes256Gcm::new_from_slice(key)
            .map_err(|e| e.to_string())?
            .encrypt(nonce, payload),
        n => return Err(format!("unsupported key length {n}")),
    }
    .map_err(|e| e.to_string())
}

fn gcm_decrypt(
    key: &[u8],
    nonce: &[u8],
    payload: Payload<'_, '_>,
) -> std::result::Result<Vec<u8>, String> {
    let nonce = aes_gcm::Nonce::from_slice(nonce);
    match key.len() {
        16 => aes_gcm::Aes128Gcm::new_from_slice(key)
            .map_err(|e| e.to_string())?
            .decrypt(nonce, payload),
        32 => aes_gcm::Aes256Gcm::new_from_slice(key)
            .map_err(|e| e.to_string())?
            .decrypt(nonce, payload),
        n => return Err(format!("unsupported key length {n}")),
    }
    .map_err(|e| e.to_string())
}

/// The providers of one group of key prefixes: the first seals, all open.
#[derive(Debug, Clone)]
pub struct Transformer {
    providers: Vec<Provider>,
}

impl Transformer {
    /// A transformer over `providers` (at least one).
    pub fn new(providers: Vec<Provider>) -> Result<Self> {
        if providers.is_empty() {
            return Err(Error::Config(
                "an encryption rule needs at least one provider".into(),
            ));
        }
        for p in &providers {
            if !matches!(p, Provider::Identity) && p.key_names().is_empty() {
                return Err(Error::Config(format!("provider {} has no keys", p.name())));
            }
        }
        Ok(Self { providers })
    }

    fn seal(&self, key: &str, value: Vec<u8>) -> Result<Vec<u8>> {
        self.providers[0].seal(key, &value)
    }

    fn open(&self, key: &str, value: Vec<u8>) -> Result<Vec<u8>> {
        for p in &self.providers {
            if let Some(opened) = p.open(key, &value) {
                return opened;
            }
        }
        let enveloped = value.starts_with(b"k8s:enc:");
        match self
            .providers
            .iter()
            .any(|p| matches!(p, Provider::Identity))
            && !enveloped
        {
            true => Ok(value),
            false if enveloped => Err(Error::Encryption(format!(
                "no configured key can decrypt {key}"
            ))),
            // Plain data written before encryption was configured stays readable.
            false => Ok(value),
        }
    }
}

/// A backend that seals values under the configured prefixes.
pub struct EncryptingBackend {
    inner: Arc<dyn Backend>,
    rules: Arc<Vec<(String, Transformer)>>,
}

impl EncryptingBackend {
    /// Wraps `inner`; `rules` map key prefixes to transformers (first match wins).
    pub fn new(inner: Arc<dyn Backend>, rules: Vec<(String, Transformer)>) -> Self {
        Self {
            inner,
            rules: Arc::new(rules),
        }
    }
}

fn rule<'a>(rules: &'a [(String, Transformer)], key: &str) -> Option<&'a Transformer> {
    rules
        .iter()
        .find(|(p, _)| key.starts_with(p.as_str()))
        .map(|(_, t)| t)
}

fn open_kv(rules: &[(String, Transformer)], mut kv: KeyValue) -> Result<KeyValue> {
    if let Some(t) = rule(rules, &kv.key) {
        kv.value = t.open(&kv.key, std::mem::take(&mut kv.value))?;
    }
    Ok(kv)
}

#[async_trait::async_trait]
impl Backend for EncryptingBackend {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.inner
            .get(key)
            .await?
            .map(|kv| open_kv(&self.rules, kv))
            .transpose()
    }
    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64)> {
        let (kvs, rev) = self.inner.list(prefix).await?;
        let kvs = kvs
            .into_iter()
            .map(|kv| open_kv(&self.rules, kv))
            .collect::<Result<_>>()?;
        Ok((kvs, rev))
    }
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        let sealed = match rule(&self.rules, key) {
            Some(t) => t.seal(key, value.clone())?,
            None => return self.inner.create(key, value).await,
        };
        let mut kv = self.inner.create(key, sealed).await?;
        kv.value = value;
        Ok(kv)
    }
    async fn update(&self, key: &str, value: Vec<u8>, expected: i64) -> Result<KeyValue> {
        let sealed = match rule(&self.rules, key) {
            Some(t) => t.seal(key, value.clone())?,
            None => return self.inner.update(key, value, expected).await,
        };
        let mut kv = self.inner.update(key, sealed, expected).await?;
        kv.value = value;
        Ok(kv)
    }
    async fn delete(&self, key: &str, expected: i64) -> Result<KeyValue> {
        let kv = self.inner.delete(key, expected).await?;
        open_kv(&self.rules, kv)
    }
    async fn current_revision(&self) -> Result<i64> {
        self.inner.current_revision().await
    }
    async fn watch(&self, after: i64) -> Result<tokio::sync::mpsc::Receiver<Result<Event>>> {
        let mut inner = self.inner.watch(after).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let rules = self.rules.clone();
        tokio::spawn(async move {
            while let Some(event) = inner.recv().await {
                let event = event.and_then(|mut e: Event| {
                    if let Some(t) = rule(&rules, &e.kv.key) {
                        if let Some(prev) = e.prev.take() {
                            e.prev = Some(t.open(&e.kv.key, prev)?);
                        }
                    }
                    e.kv = open_kv(&rules, e.kv)?;
                    Ok(e)
                });
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }
    async fn compact(&self, revision: i64) -> Result<()> {
        self.inner.compact(revision).await
    }
    async fn flush(&self) -> Result<()> {
        self.inner.flush().await
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    /// Snapshots keep values sealed, as they are on disk.
    async fn snapshot(&self, dest: &std::path::Path) -> Result<i64> {
        self.inner.snapshot(dest).await
    }
    async fn size(&self) -> Result<u64> {
        self.inner.size().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn providers() -> Vec<Provider> {
        vec![
            Provider::AesCbc(vec![("k1".into(), [1; 32])]),
            Provider::AesGcm(vec![("g1".into(), vec![2; 32])]),
            Provider::SecretBox(vec![("s1".into(), [3; 32])]),
        ]
    }

    #[test]
    fn every_provider_round_trips_and_hides_the_plaintext() {
        for p in providers() {
            let t = Transformer::new(vec![p.clone(), Provider::Identity]).unwrap();
            let sealed = t
                .seal("/registry/secrets/d/s", b"top-secret-value".to_vec())
                .unwrap();
            assert!(sealed.starts_with(format!("k8s:enc:{}:v1:", p.name()).as_bytes()));
            assert!(
                !sealed.windows(10).any(|w| w == b"top-secret"),
                "{}",
                p.name()
            );
            assert_eq!(
                t.open("/registry/secrets/d/s", sealed.clone()).unwrap(),
                b"top-secret-value"
            );
            // Tampering is detected by the authenticated ciphers.
            if !matches!(p, Provider::AesCbc(_)) {
                let mut bad = sealed.clone();
                *bad.last_mut().unwrap() ^= 1;
                assert!(t.open("/registry/secrets/d/s", bad).is_err());
            }
        }
    }

    #[test]
    fn rotation_keeps_old_data_readable() {
        let old = Transformer::new(vec![
            Provider::AesCbc(vec![("k1".into(), [1; 32])]),
            Provider::Identity,
        ])
        .unwrap();
        let sealed = old.seal("/k", b"v".to_vec()).unwrap();
        // New key first, old key second: new writes use k2, old values still open.
        let rotated = Transformer::new(vec![
            Provider::AesGcm(vec![("g2".into(), vec![9; 32])]),
            Provider::AesCbc(vec![("k1".into(), [1; 32])]),
            Provider::Identity,
        ])
        .unwrap();
        assert_eq!(rotated.open("/k", sealed).unwrap(), b"v");
        assert_eq!(rotated.open("/k", b"plain".to_vec()).unwrap(), b"plain");
        // A value sealed with a key nobody has any more is an error, not garbage.
        let lost = Transformer::new(vec![Provider::Identity]).unwrap();
        let sealed = rotated.seal("/k", b"v".to_vec()).unwrap();
        assert!(lost.open("/k", sealed).is_err());
    }
}
