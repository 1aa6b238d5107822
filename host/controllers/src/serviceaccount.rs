//! The ServiceAccount controller: every active namespace has a `default` ServiceAccount; one
//! deleted by hand is created again. A `kube::runtime` Controller over Namespaces that also
//! watches ServiceAccounts named `default`.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use crate::error::Error;

/// Runs the ServiceAccount controller until the process ends.
pub async fn run(client: kube::Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let accounts: Api<ServiceAccount> = Api::all(client.clone());
    Controller::new(namespaces, watcher::Config::default())
        .watches(
            accounts,
            watcher::Config::default().fields("metadata.name=default"),
            |sa| {
                sa.metadata
                    .namespace
                    .as_deref()
                    .map(ObjectRef::<Namespace>::new)
            },
        )
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|_| async {})
        .await;
}

fn error_policy(_ns: Arc<Namespace>, e: &Error, _client: Arc<kube::Client>) -> Action {
    tracing::warn!(error = %e, "creating default ServiceAccount failed; will retry");
    Action::requeue(Duration::from_secs(2))
}

#[tracing::instrument(skip_all, fields(controller = "serviceaccount", namespace = ns.metadata.name.as_deref().unwrap_or_default()))]
async fn reconcile(ns: Arc<Namespace>, client: Arc<kube::Client>) -> Result<Action, Error> {
    if ns.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = ns.metadata.name.clone().unwrap_or_default();
    let api: Api<ServiceAccount> = Api::namespaced((*client).clone(), &name);
    if api.get_opt("default").await?.is_some() {
        return Ok(Action::await_change());
    }
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("default".into()),
            namespace: Some(name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &sa).await {
        Ok(_) => tracing::info!(namespace = %name, "created default ServiceAccount"),
        // Already there, or the namespace started terminating meanwhile.
        Err(kube::Error::Api(s)) if matches!(s.code, 403 | 404 | 409) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}
