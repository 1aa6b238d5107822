//! What can go wrong in the revision store.

/// What can go wrong in the revision store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The key does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The caller's revision is stale.
    #[error("{0} was modified; re-read and retry")]
    Conflict(String),
    /// The requested revision was compacted away.
    #[error("revision {requested} is older than the oldest retained revision {oldest}")]
    Expired {
        /// What the caller asked for.
        requested: i64,
        /// The oldest revision still available.
        oldest: i64,
    },
    /// A misconfigured store URL.
    #[error("{0}")]
    Config(String),
    /// The SQLite backend failed.
    #[error("sqlite backend: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The etcd backend failed.
    #[error("etcd backend: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// Sealing or opening an encrypted value failed (a missing key, tampered data).
    #[error("encryption at rest: {0}")]
    Encryption(String),
    /// The store's writer is gone (shutting down).
    #[error("store is shutting down")]
    Closed,
}
