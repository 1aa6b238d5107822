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
//! writable only by the server (it is created with mode 0700). A freshly
//! compiled component is written, dropped and mapped back from its file, so
//! its code is file-backed (the page cache, not the server's heap), and the
//! compiler's freed heap goes back to the kernel. The most recently loaded
//! components stay mapped: loading the same digest again (five WasmPlugins of
//! one component, a new generation with only a new config) maps nothing new.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

use crate::Error;

/// Components kept mapped for reuse by digest.
const MAPPED: usize = 16;

/// The precompiled cache of one engine.
pub(crate) struct Cache {
    dir: PathBuf,
    /// Recently loaded components by digest, most recent last (at most [`MAPPED`]).
    mapped: Mutex<Vec<(String, Component)>>,
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
        Ok(Cache {
            dir,
            mapped: Mutex::new(Vec::new()),
        })
    }

    /// The component for `bytes` (whose sha256 is `digest`), from disk or compiled.
    pub(crate) fn component(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest: &str,
    ) -> Result<(Component, CacheOutcome), Error> {
        if let Some(component) = self.recent(digest) {
            return Ok((component, CacheOutcome::Hit));
        }
        let (component, outcome) = self.load(engine, bytes, digest)?;
        let mut mapped = self.mapped.lock().unwrap_or_else(|e| e.into_inner());
        mapped.retain(|(d, _)| d != digest);
        if mapped.len() >= MAPPED {
            mapped.remove(0);
        }
        mapped.push((digest.to_string(), component.clone()));
        Ok((component, outcome))
    }

    /// A component loaded recently, moved to the most recent place.
    fn recent(&self, digest: &str) -> Option<Component> {
        let mut mapped = self.mapped.lock().unwrap_or_else(|e| e.into_inner());
        let at = mapped.iter().position(|(d, _)| d == digest)?;
        let entry = mapped.remove(at);
        let component = entry.1.clone();
        mapped.push(entry);
        Some(component)
    }

    fn load(
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
        let compiled = Component::new(engine, bytes);
        let component = compiled.map_err(|e| Error::Compile(format!("{e:#}")));
        let written = match &component {
            Ok(c) => match c.serialize() {
                Ok(image) => write_atomically(&path, &image)
                    .map_err(|err| tracing::warn!(path = %path.display(), error = %err, "cannot write precompiled component"))
                    .is_ok(),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot serialize component");
                    false
                }
            },
            Err(_) => false,
        };
        // Map the written file instead of keeping the compiled code on the heap.
        let component = match written {
            // SAFETY: as above; the file was just written by this engine.
            true => match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(mapped) => Ok(mapped),
                Err(_) => component,
            },
            false => component,
        };
        release_compiler_memory();
        Ok((component?, CacheOutcome::Miss))
    }
}

/// Gives the heap the compiler freed back to the kernel: glibc keeps freed
/// memory in its arenas, and compiling a component churns megabytes.
fn release_compiler_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
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
