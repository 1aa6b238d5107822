//! The client crate's errors.

/// What can go wrong building a client or running leader election.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig could not be read or understood.
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// A request failed (network, TLS, or an error `Status` from the server).
    #[error(transparent)]
    Api(#[from] kube::Error),
}
