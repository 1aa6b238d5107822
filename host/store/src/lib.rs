//! Revision store for Keelson: the [`Backend`] trait that both storage engines implement, and the
//! [`Store`] that the API server uses (a backend plus the in-memory [`watch_cache`]).
//!
//! The model is etcd's: one global, monotonically increasing revision; every key remembers the
//! revision that created it and the one that last modified it; a write is conditional on the
//! modification revision the caller read (optimistic concurrency); watches replay every event
//! after a revision, and revisions older than the last compaction are gone (`Expired`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), keelson_store::Error> {
//! let store = keelson_store::Store::open_embedded(std::path::Path::new("/tmp/k")).await?;
//! let kv = store.create("/registry/configmaps/default/a", b"{}".to_vec()).await?;
//! assert_eq!(store.get("/registry/configmaps/default/a").await?.unwrap().mod_revision, kv.mod_revision);
//! # Ok(()) }
//! ```

pub mod encryption;
mod error;
mod etcd;
#[cfg(any(test, feature = "local-etcd"))]
pub mod local_etcd;
pub mod migrate;
pub mod snapshot;
mod sqlite;
mod sqlite_file;
mod watch_cache;

#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;

pub use error::Error;
pub use etcd::EtcdBackend;
pub use snapshot::SnapshotInfo;
pub use sqlite::SqliteBackend;
pub use watch_cache::{CachedEvent, WatchCache, WatchStream};

/// Result type of the store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One stored key at one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyValue {
    /// The full key, e.g. `/registry/configmaps/default/app`.
    pub key: String,
    /// The stored bytes (JSON for the API server).
    pub value: Vec<u8>,
    /// Revision at which the key was created.
    pub create_revision: i64,
    /// Revision of the last modification (the object's resourceVersion).
    pub mod_revision: i64,
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created.
    Created,
    /// The key was updated.
    Updated,
    /// The key was deleted; `kv` holds the last value with the deletion revision.
    Deleted,
}

/// One change, as delivered to watchers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Created, updated or deleted.
    pub kind: EventKind,
    /// The key after the change (for a deletion: the last value, `mod_revision` = deletion revision).
    pub kv: KeyValue,
    /// For an update: the value before it, when the backend knows it (watchers with selectors
    /// need it to notice objects leaving their selection).
    pub prev: Option<Vec<u8>>,
}

/// A storage engine: the embedded SQLite revision log or etcd v3.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;
    /// Reads every key under `prefix`, sorted by key, with the revision the read was taken at.
    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64)>;
    /// Creates a key; fails with [`Error::AlreadyExists`] when it exists.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue>;
    /// Replaces a key if its modification revision is still `expected` (0 = unconditional).
    async fn update(&self, key: &str, value: Vec<u8>, expected: i64) -> Result<KeyValue>;
    /// Deletes a key if its modification revision is still `expected` (0 = unconditional);
    /// returns the deleted value with the deletion revision as `mod_revision`.
    async fn delete(&self, key: &str, expected: i64) -> Result<KeyValue>;
    /// The newest revision.
    async fn current_revision(&self) -> Result<i64>;
    /// Streams every event with a revision greater than `after`, over all keys, then live ones.
    async fn watch(&self, after: i64) -> Result<tokio::sync::mpsc::Receiver<Result<Event>>>;
    /// Forgets history at and below `revision` (current values are kept).
    async fn compact(&self, revision: i64) -> Result<()>;
    /// Makes every acknowledged write durable in the backend's main files (called on
    /// shutdown; acknowledged writes are already durable, this only tidies the log).
    async fn flush(&self) -> Result<()> {
        Ok(())
    }
    /// `embedded` or `etcd`.
    fn kind(&self) -> &'static str;
    /// Writes a consistent copy of the whole store to `dest` (the backend's own format) and
    /// returns the revision it holds.
    async fn snapshot(&self, dest: &Path) -> Result<i64> {
        let _ = dest;
        Err(Error::Unsupported(format!(
            "the {} store cannot take snapshots",
            self.kind()
        )))
    }
    /// Bytes the store occupies.
    async fn size(&self) -> Result<u64> {
        Ok(0)
    }
}

/// The store the API server uses: a backend behind a shared watch cache.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    cache: Arc<WatchCache>,
}

impl Store {
    /// Wraps a backend and starts its watch cache.
    pub async fn new(backend: Arc<dyn Backend>) -> Result<Self> {
        let cache = WatchCache::start(backend.clone()).await?;
        Ok(Self { backend, cache })
    }

    /// Opens (or creates) the embedded store in `dir`.
    pub async fn open_embedded(dir: &Path) -> Result<Self> {
        let backend = SqliteBackend::open(&dir.join("state.db"))?;
        Self::new(Arc::new(backend)).await
    }

    /// Connects to etcd at the given endpoints (`http://host:port`).
    pub async fn connect_etcd(endpoints: &[String]) -> Result<Self> {
        let backend = EtcdBackend::connect(endpoints).await?;
        Self::new(Arc::new(backend)).await
    }

    /// Opens a store from a `--store` URL: `embedded` (in `data_dir`) or `etcd://h:p[,h:p]`.
    pub async fn open(url: &str, data_dir: &Path) -> Result<Self> {
        let backend = Self::open_backend(url, data_dir).await?;
        Self::new(backend).await
    }

    /// Like [`Store::open`], sealing the values under the prefixes of `encryption` (see
    /// [`encryption`]).
    pub async fn open_encrypted(
        url: &str,
        data_dir: &Path,
        encryption: Vec<(String, encryption::Transformer)>,
    ) -> Result<Self> {
        let backend = Self::open_backend(url, data_dir).await?;
        if encryption.is_empty() {
            return Self::new(backend).await;
        }
        Self::new(Arc::new(encryption::EncryptingBackend::new(
            backend, encryption,
        )))
        .await
    }

    async fn open_backend(url: &str, data_dir: &Path) -> Result<Arc<dyn Backend>> {
        if url.is_empty() || url == "embedded" || url.starts_with("sqlite") {
            return Ok(Arc::new(SqliteBackend::open(&data_dir.join("state.db"))?));
        }
        let rest = url.strip_prefix("etcd://").ok_or_else(|| {
            Error::Config(format!(
                "unknown store URL {url:?}: use embedded or etcd://host:port"
            ))
        })?;
        let endpoints: Vec<String> = rest
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|e| format!("http://{e}"))
            .collect();
        Ok(Arc::new(EtcdBackend::connect(&endpoints).await?))
    }

    /// The backend, for callers that need raw access (benchmarks, compaction).
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Reads one key.
    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.backend.get(key).await
    }
    /// Reads every key under a prefix, with the revision of the read.
    pub async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64)> {
        self.backend.list(prefix).await
    }
    /// Reads every key under a prefix from the watch cache, with the revision it reflects.
    /// `min_revision`: `None` for a consistent read (the cache first catches up with the
    /// backend's current revision, as Kubernetes 1.33's consistent reads from cache do),
    /// `Some(0)` for whatever the cache holds (`resourceVersion=0`), `Some(n)` for at least
    /// revision `n`. Reads the backend instead when the cache does not catch up in time.
    pub async fn list_cached(
        &self,
        prefix: &str,
        min_revision: Option<i64>,
    ) -> Result<(Vec<Arc<CachedEvent>>, i64)> {
        let min = match min_revision {
            Some(n) => n,
            None => self.backend.current_revision().await?,
        };
        if let Some(hit) = self.cache.list(prefix, min).await {
            return Ok(hit);
        }
        let (kvs, rev) = self.backend.list(prefix).await?;
        let items = kvs
            .into_iter()
            .map(|kv| {
                Arc::new(CachedEvent::new(Event {
                    kind: EventKind::Created,
                    kv,
                    prev: None,
                }))
            })
            .collect();
        Ok((items, rev))
    }
    /// Creates a key.
    pub async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        self.backend.create(key, value).await
    }
    /// Conditionally replaces a key.
    pub async fn update(&self, key: &str, value: Vec<u8>, expected: i64) -> Result<KeyValue> {
        self.backend.update(key, value, expected).await
    }
    /// Conditionally deletes a key.
    pub async fn delete(&self, key: &str, expected: i64) -> Result<KeyValue> {
        self.backend.delete(key, expected).await
    }
    /// Flushes the backend (see [`Backend::flush`]).
    pub async fn flush(&self) -> Result<()> {
        self.backend.flush().await
    }

    /// The newest revision.
    pub async fn current_revision(&self) -> Result<i64> {
        self.backend.current_revision().await
    }
    /// Watches keys under `prefix` for events after revision `after` (served by the cache).
    pub async fn watch(&self, prefix: &str, after: i64) -> Result<WatchStream> {
        self.cache.watch(prefix, after).await
    }
    /// Compacts history periodically, like the Kubernetes API server: every `interval`, forget
    /// the revisions older than the newest revision seen one interval earlier.
    pub fn spawn_compactor(&self, interval: std::time::Duration) {
        let backend = self.backend.clone();
        tokio::spawn(async move {
            let mut previous: Option<i64> = None;
            let mut tick = tokio::time::interval(interval);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Some(rev) = previous.filter(|r| *r > 0) {
                    match backend.compact(rev).await {
                        Ok(()) => tracing::debug!(revision = rev, "compacted"),
                        Err(e) => tracing::warn!(error = %e, "compaction failed"),
                    }
                }
                previous = backend.current_revision().await.ok();
            }
        });
    }

    /// Takes a consistent snapshot of the running store into `<dir>/<name>.ksnap` (default
    /// name: time and revision) while writes go on.
    pub async fn snapshot(&self, dir: &Path, name: Option<&str>) -> Result<SnapshotInfo> {
        if let Some(n) = name {
            snapshot::check_name(n)?;
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Config(format!("{}: {e}", dir.display())))?;
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let payload = dir.join(format!(".payload-{}-{seq}.tmp", std::process::id()));
        let revision = match self.backend.snapshot(&payload).await {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_file(&payload);
                return Err(e);
            }
        };
        let name = name
            .map(str::to_string)
            .unwrap_or_else(|| snapshot::default_name(revision));
        let (dir, kind) = (dir.to_path_buf(), self.backend.kind());
        tokio::task::spawn_blocking(move || snapshot::seal(&dir, &name, kind, revision, &payload))
            .await
            .map_err(|e| Error::Config(format!("snapshot task: {e}")))?
    }

    /// The newest revision the watch cache has seen.
    pub fn cached_revision(&self) -> i64 {
        self.cache.revision()
    }
}
