//! Authentication: credentials to a [`UserInfo`](crate::UserInfo). Each authenticator answers
//! `Ok(Some(user))`, `Ok(None)` (not mine: try the next) or an error (mine, and invalid: 401).

pub mod serviceaccount;
pub mod tokenfile;
pub mod x509;

pub use serviceaccount::{BoundClaims, ServiceAccountTokens, TokenRequest};
pub use tokenfile::TokenFile;

/// Why credentials were refused (always answered as 401, never more detail to the caller).
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    /// A token that is not valid (bad signature, expired, wrong audience or issuer, garbled).
    #[error("invalid bearer token: {0}")]
    InvalidToken(String),
    /// A certificate that cannot be read.
    #[error("invalid client certificate: {0}")]
    InvalidCertificate(String),
    /// Reading or writing key material failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A token file line that is not `token,user,uid[,"groups"]`.
    #[error("{path}:{line}: {why}")]
    TokenFile {
        /// The file.
        path: std::path::PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// Generating or loading keys failed.
    #[error("key material: {0}")]
    Key(String),
}

/// Writes a file only its owner can read (0600), creating its directory (0700).
pub fn write_private(path: &std::path::Path, contents: &[u8]) -> Result<(), AuthnError> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io = |source| AuthnError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(contents).map_err(io)?;
    f.sync_all().map_err(io)
}
