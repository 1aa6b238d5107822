//! Why the server could not start: the one error type of [`crate::start`].

/// A failure while starting the server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A file, directory or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be opened or read.
    #[error("store: {0}")]
    Store(#[from] keelson_store::Error),
    /// `--enable-admission-plugins` / `--disable-admission-plugins` named an unknown plugin.
    #[error(transparent)]
    Admission(#[from] keelson_admission::UnknownPlugin),
    /// The token file or the ServiceAccount signing keys could not be loaded.
    #[error("authentication: {0}")]
    Auth(#[from] crate::AuthSetupError),
    /// `--encryption-provider-config` could not be used.
    #[error("encryption provider config {0}")]
    Encryption(#[from] crate::EncryptionConfigError),
    /// The audit policy or log could not be used.
    #[error(transparent)]
    Audit(#[from] crate::AuditError),
    /// The cluster's shared credentials could not be adopted or published.
    #[error("cluster credentials: {0}")]
    ClusterSecrets(#[from] crate::SecretsError),
    /// A built-in object could not be created.
    #[error("bootstrapping {what}: {message}")]
    Bootstrap {
        /// The object.
        what: String,
        /// Why.
        message: String,
    },
}

/// Attaches what was being done to an I/O error.
pub(crate) trait IoContext<T> {
    /// Maps the error to [`StartError::Io`] with `context`.
    fn context(self, context: impl FnOnce() -> String) -> Result<T, StartError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, StartError> {
        self.map_err(|source| StartError::Io {
            context: context(),
            source,
        })
    }
}
