//! The Deployment controller: a `kube::runtime` Controller over Deployments that owns their
//! ReplicaSets. Each pass claims the ReplicaSets the selector matches, then, like Kubernetes'
//! `syncDeployment`: a paused Deployment or a scaling event only scales ([`rollout::scale`]);
//! otherwise the strategy rolls ([`rollout::rolling`] or [`rollout::recreate`]); finally the
//! status and the Progressing/Available conditions are written ([`status`]).
//! ReplicaSets are named `<deployment>-<pod-template-hash>` ([`hash`]) and carry the
//! `deployment.kubernetes.io/revision` annotation `kubectl rollout history|undo` read.

pub mod hash;
mod rollout;
mod sets;

pub(crate) use sets::scaled;
mod status;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::Resource;

use crate::error::Error;
use crate::{ownership, selector};

/// The revision annotation on Deployments and their ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";

/// Runs the Deployment controller until the process ends.
pub async fn run(client: kube::Client) {
    let deployments: Api<Deployment> = Api::all(client.clone());
    let sets: Api<ReplicaSet> = Api::all(client.clone());
    Controller::new(deployments, watcher::Config::default())
        .owns(sets, watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|_| async {})
        .await;
}

fn error_policy(_d: Arc<Deployment>, e: &Error, _client: Arc<kube::Client>) -> Action {
    tracing::warn!(error = %e, "syncing deployment failed; will retry");
    Action::requeue(Duration::from_secs(1))
}

/// What one pass works on: the Deployment and the ReplicaSets it controls.
pub(crate) struct Pass {
    pub client: kube::Client,
    pub deployment: Arc<Deployment>,
    pub sets_api: Api<ReplicaSet>,
    pub sets: Vec<ReplicaSet>,
    /// Whether this pass created the new ReplicaSet.
    pub created: bool,
}

impl Pass {
    pub(crate) fn name(&self) -> String {
        self.deployment.metadata.name.clone().unwrap_or_default()
    }
    pub(crate) fn namespace(&self) -> String {
        self.deployment
            .metadata
            .namespace
            .clone()
            .unwrap_or_default()
    }
    /// The name of set `i` (empty for none).
    pub(crate) fn name_of(&self, i: Option<usize>) -> &str {
        i.and_then(|i| self.sets[i].metadata.name.as_deref())
            .unwrap_or_default()
    }
    /// `spec.replicas` (default 1).
    pub(crate) fn replicas(&self) -> i32 {
        self.deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1)
    }
    pub(crate) fn paused(&self) -> bool {
        self.deployment
            .spec
            .as_ref()
            .and_then(|s| s.paused)
            .unwrap_or(false)
    }
    pub(crate) fn recreate(&self) -> bool {
        self.deployment
            .spec
            .as_ref()
            .and_then(|s| s.strategy.as_ref())
            .and_then(|s| s.type_.as_deref())
            == Some("Recreate")
    }
}

#[tracing::instrument(skip_all, fields(
    controller = "deployment",
    namespace = d.metadata.namespace.as_deref().unwrap_or_default(),
    name = d.metadata.name.as_deref().unwrap_or_default(),
))]
async fn reconcile(d: Arc<Deployment>, client: Arc<kube::Client>) -> Result<Action, Error> {
    let Some(spec) = d.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    if d.metadata.deletion_timestamp.is_some() || selector::is_empty(&spec.selector) {
        return Ok(Action::await_change());
    }
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let sets_api: Api<ReplicaSet> = Api::namespaced((*client).clone(), &ns);
    let sets = claim(&sets_api, &d).await?;
    let mut pass = Pass {
        client: (*client).clone(),
        deployment: d.clone(),
        sets_api,
        sets,
        created: false,
    };
    let outcome = if pass.paused() || rollout::is_scaling_event(&pass) {
        rollout::scale_only(&mut pass).await?
    } else if pass.recreate() {
        rollout::recreate(&mut pass).await?
    } else {
        rollout::rolling(&mut pass).await?
    };
    let requeue = status::sync(&pass, outcome.new_set, outcome.rollout).await?;
    Ok(match (outcome.waiting, requeue) {
        (true, _) => Action::requeue(Duration::from_secs(1)),
        (false, Some(after)) => Action::requeue(after),
        (false, None) => Action::await_change(),
    })
}

/// The ReplicaSets this Deployment controls: its own that still match, plus matching orphans it
/// adopts (owned ones that stopped matching are released).
async fn claim(api: &Api<ReplicaSet>, d: &Deployment) -> Result<Vec<ReplicaSet>, Error> {
    let sel = d
        .spec
        .as_ref()
        .map(|s| s.selector.clone())
        .unwrap_or_default();
    let owner = d.controller_owner_ref(&()).unwrap_or_default();
    let listed = api
        .list(&ListParams::default().labels(&selector::match_labels_query(&sel)))
        .await?;
    ownership::claim(api, listed.items, &sel, &owner, |rs| {
        rs.metadata.deletion_timestamp.is_none()
    })
    .await
}
