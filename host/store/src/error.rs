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
    /// A snapshot file is unreadable, corrupt, truncated or foreign.
    #[error("{}: {reason}", file.display())]
    Snapshot {
        /// The file.
        file: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The embedded store was written by a newer keelson.
    #[error("{}: store format version {found} is newer than this keelson supports ({supported}); run a newer keelson, or restore a snapshot taken by this version", file.display())]
    FormatTooNew {
        /// The store file.
        file: std::path::PathBuf,
        /// The version recorded in it.
        found: i64,
        /// The newest version this binary reads.
        supported: i64,
    },
    /// The backend cannot do this (e.g. snapshots of a backend without them).
    #[error("{0}")]
    Unsupported(String),
    /// The store's writer is gone (shutting down).
    #[error("store is shutting down")]
    Closed,
}
