//! The namespace controller: when a namespace is terminating, delete everything in it (every
//! namespaced resource discovery lists), wait until it is empty, then remove the `kubernetes`
//! finalizer through `namespaces/<n>/finalize`. A `kube::runtime` Controller drives it, so
//! failures are retried with back-off and a namespace still holding objects is requeued.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;

use crate::discovery;
use crate::error::{is_not_found, Error};

/// Runs the namespace controller until the process ends.
pub async fn run(client: kube::Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    Controller::new(namespaces, watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|_| async {})
        .await;
}

fn error_policy(_ns: Arc<Namespace>, e: &Error, _client: Arc<kube::Client>) -> Action {
    tracing::debug!(error = %e, "namespace cleanup will retry");
    Action::requeue(Duration::from_secs(1))
}

#[tracing::instrument(skip_all, fields(controller = "namespace", namespace = ns.metadata.name.as_deref().unwrap_or_default()))]
async fn reconcile(ns: Arc<Namespace>, client: Arc<kube::Client>) -> Result<Action, Error> {
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let name = ns.metadata.name.clone().unwrap_or_default();
    if delete_contents(&client, &name).await? > 0 {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let api: Api<Namespace> = Api::all((*client).clone());
    let Some(mut current) = api.get_opt(&name).await? else {
        return Ok(Action::await_change());
    };
    if let Some(spec) = current.spec.as_mut() {
        spec.finalizers = Some(Vec::new());
    }
    match api
        .replace_subresource("finalize", &name, &PostParams::default(), &current)
        .await
    {
        Ok(_) => tracing::info!(namespace = %name, "namespace finalized"),
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}

/// Deletes what is left in `ns`; returns how many objects remain (terminating ones included).
async fn delete_contents(client: &kube::Client, ns: &str) -> Result<usize, Error> {
    let mut remaining = 0;
    let background = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    for r in discovery::resources(client)
        .await?
        .into_iter()
        .filter(|r| r.namespaced)
    {
        let api = r.api(client, Some(ns));
        let items = match api.list(&ListParams::default()).await {
            Ok(list) => list.items,
            Err(e) if is_not_found(&e) => continue,
            Err(e) => return Err(e.into()),
        };
        for item in items {
            remaining += 1;
            if item.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let name = item.metadata.name.unwrap_or_default();
            match api.delete(&name, &background).await {
                Err(e) if !is_not_found(&e) => return Err(e.into()),
                _ => {}
            }
        }
    }
    Ok(remaining)
}
