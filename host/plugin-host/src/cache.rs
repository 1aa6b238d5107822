//! On-disk cache of precompiled components.
//!
//! Layout: `<cache_dir>/<engine>/<sha256>.cwasm`, where `<engine>` is a hash of
//! [`Engine::precompile_compatibility_hash`] (wasmtime version, target, and
//! every setting that changes generated code) and `<sha256>` the digest of the
//! component bytes. Entries are written to a temporary file and renamed, so
//! readers never see a partial file; an entry that fails to load is removed
//! and rebuilt.
//!
//! Loading an entry maps native code from disk: the cache directory must be
//! writable only by the server (it is created with mode 0700).

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

use crate::Error;

/// The precompiled cache of one engine.
pub(crate) struct Cache {
    dir: PathBuf,
}

/// How a component was obtained, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheOutcome {
    /// Deserialized from a precompiled file on disk.
    Hit,
    /// Compiled now (and written to disk).
    Miss,
}

impl Cache {
    /// Opens (creating) the engine's cache directory under `root`.
    pub(crate) fn open(root: &Path, engine: &Engine) -> Result<Self, Error> {
        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hex(&hasher.0.finalize()[..12]);
        let dir = root.join(engine_key);
        create_private_dir(&dir)?;
        Ok(Cache { dir })
    }

    /// The component for `bytes` (whose sha256 is `digest`), from disk or compiled.
    pub(crate) fn component(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest: &str,
    ) -> Result<(Component, CacheOutcome), Error> {
        let path = self.dir.join(format!("{digest}.cwasm"));
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` of an engine
            // with the same compatibility hash, into a directory only this
            // process's user can write; wasmtime re-checks the header.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(err) => {
                    tracing::warn!(path = %path.display(), error = %err, "dropping unusable precompiled component");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let component =
            Component::new(engine, bytes).map_err(|e| Error::Compile(format!("{e:#}")))?;
        match component.serialize() {
            Ok(image) => {
                if let Err(err) = write_atomically(&path, &image) {
                    tracing::warn!(path = %path.display(), error = %err, "cannot write precompiled component");
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot serialize component"),
        }
        Ok((component, CacheOutcome::Miss))
    }
}

/// Lowercase hex sha256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{seq}", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Feeds `Hash` output into sha256, so the key is stable across Rust releases.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        unreachable!("only the digest is read")
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha256_of_empty_input() {
        assert_eq!(
            super::sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
