//! The ClusterRole aggregation controller (Kubernetes' `clusterrole-aggregation`): a
//! ClusterRole with an `aggregationRule` gets as its rules the union of the rules of every
//! ClusterRole its selectors match — so `admin`, `edit` and `view` show, and grant, what the
//! `aggregate-to-*` roles add. Nested aggregation (admin ← edit ← view) settles in one pass.

use futures::StreamExt;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};

/// Writes every aggregated ClusterRole whose stored rules differ from the union.
async fn reconcile(api: &Api<ClusterRole>, store: &Store<ClusterRole>) {
    let roles: Vec<ClusterRole> = store.state().iter().map(|r| (**r).clone()).collect();
    let wanted = keelson_auth::rbac::aggregated_rules(&roles);
    for role in roles.iter().filter(|r| r.aggregation_rule.is_some()) {
        let name = role.metadata.name.clone().unwrap_or_default();
        let Some(rules) = wanted.get(&name) else {
            continue;
        };
        if role.rules.as_deref().unwrap_or_default() == rules.as_slice() {
            continue;
        }
        let _span =
            tracing::info_span!("reconcile", controller = "clusterrole-aggregation", role = %name)
                .entered();
        let mut updated = role.clone();
        updated.rules = Some(rules.clone());
        drop(_span);
        match api.replace(&name, &PostParams::default(), &updated).await {
            Ok(_) => tracing::debug!(role = %name, rules = rules.len(), "aggregated"),
            // A conflict means a newer version is on its way through the watch.
            Err(e) => {
                tracing::debug!(role = %name, error = %e, "aggregation write failed; will retry")
            }
        }
    }
}

/// Runs the controller until the process ends.
pub async fn run(client: kube::Client) {
    let api: Api<ClusterRole> = Api::all(client);
    let (store, writer) = reflector::store();
    let changes = reflector::reflector(writer, watcher(api.clone(), Default::default()))
        .default_backoff()
        .ready_chunks(64);
    let mut changes = std::pin::pin!(changes);
    let store: Store<ClusterRole> = store;
    // The cache is whole once the initial list is done; polling the stream is what gets it
    // there, so readiness is read from the events rather than awaited.
    let mut listed = false;
    while let Some(batch) = changes.next().await {
        for e in batch.iter().filter_map(|r| r.as_ref().err()) {
            tracing::warn!(error = %e, "ClusterRole watch failed; retrying");
        }
        listed |= batch
            .iter()
            .any(|e| matches!(e, Ok(watcher::Event::InitDone)));
        if listed && batch.iter().any(Result::is_ok) {
            reconcile(&api, &store).await;
        }
    }
}
