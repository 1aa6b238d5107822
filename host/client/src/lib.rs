//! The one Kubernetes client every Keelson component uses (scheduler, controllers, kubelet,
//! CLI, benchmarks): a [`kube::Client`] with k8s-openapi types, built either
//! - [`in_process`]: over a tower `Service` that hands requests to the API server's router
//!   without sockets or TLS, under an identity the caller chooses (authentication records it,
//!   admission sees it, exactly as for a remote request); or
//! - [`from_kubeconfig`]: remote, over HTTPS, from a kubeconfig file.
//!
//! So `keelson controller-manager --kubeconfig F` runs the very code that runs in-process.
//! [`leader`] holds Lease-based leader election so several servers can share one store.
//!
//! ```no_run
//! # async fn demo(router: axum::Router) -> Result<(), keelson_client::Error> {
//! use k8s_openapi::api::core::v1::Namespace;
//! use keelson_client::{in_process, UserInfo};
//! let client = in_process(router, UserInfo::scheduler());
//! let namespaces = kube::Api::<Namespace>::all(client).list(&Default::default()).await?;
//! # Ok(()) }
//! ```

mod error;
mod impersonate;
mod in_process;
pub mod leader;
mod remote;
pub mod resources;

pub use error::Error;
pub use impersonate::impersonating;
pub use in_process::in_process;
pub use keelson_apimachinery::UserInfo;
pub use kube;
pub use remote::{config_from_kubeconfig, from_kubeconfig, multiplexed};
