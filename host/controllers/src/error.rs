//! The controllers' errors.

/// Why one reconcile failed (it is retried with back-off).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed.
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// A read-modify-write kept losing races with other writers.
    #[error("{0} kept changing; will retry")]
    Contended(String),
}

/// Whether an API error is 404 Not Found.
pub(crate) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Whether an API error is 409 Conflict.
pub(crate) fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}
