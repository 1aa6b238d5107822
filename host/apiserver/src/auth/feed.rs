//! Keeps the authorizers current, as Kubernetes' RBAC and Node authorizers do with
//! informers: watches of Roles, ClusterRoles, RoleBindings and ClusterRoleBindings rebuild
//! the RBAC index on every change, and a watch of pods feeds the Node authorizer's graph.
//! The watches run through the API server's own loopback client.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;

use crate::ApiServer;

/// The four RBAC caches.
#[derive(Clone)]
struct Caches {
    cluster_roles: Store<ClusterRole>,
    roles: Store<Role>,
    cluster_role_bindings: Store<ClusterRoleBinding>,
    role_bindings: Store<RoleBinding>,
}

impl Caches {
    fn objects(&self) -> keelson_auth::rbac::Objects {
        fn own<K: Clone>(v: Vec<Arc<K>>) -> Vec<K> {
            v.into_iter().map(|o| (*o).clone()).collect()
        }
        keelson_auth::rbac::Objects {
            cluster_roles: own(self.cluster_roles.state()),
            roles: own(self.roles.state()),
            cluster_role_bindings: own(self.cluster_role_bindings.state()),
            role_bindings: own(self.role_bindings.state()),
        }
    }

    async fn synced(&self) {
        let _ = tokio::join!(
            self.cluster_roles.wait_until_ready(),
            self.roles.wait_until_ready(),
            self.cluster_role_bindings.wait_until_ready(),
            self.role_bindings.wait_until_ready(),
        );
    }
}

/// A reflector stream over every object of kind `K`, yielding `()` per change.
fn reflect<K>(client: &kube::Client) -> (Store<K>, impl futures::Stream<Item = ()> + Send + 'static)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher::watcher(Api::<K>::all(client.clone()), Default::default()),
    )
    .default_backoff()
    .map(|e| {
        if let Err(e) = e {
            tracing::warn!(error = %e, "RBAC watch failed; retrying");
        }
    });
    (reader, stream)
}

/// Starts the watches; returns once the RBAC caches have their first full list, so no
/// request is judged against an empty policy.
pub(crate) async fn start(api: &Arc<ApiServer>, client: kube::Client) {
    let (cluster_roles, a) = reflect::<ClusterRole>(&client);
    let (roles, b) = reflect::<Role>(&client);
    let (cluster_role_bindings, c) = reflect::<ClusterRoleBinding>(&client);
    let (role_bindings, d) = reflect::<RoleBinding>(&client);
    let caches = Caches {
        cluster_roles,
        roles,
        cluster_role_bindings,
        role_bindings,
    };
    let changes = futures::stream::select_all([a.boxed(), b.boxed(), c.boxed(), d.boxed()]);
    let (feed_api, feed_caches) = (api.clone(), caches.clone());
    let stopping = api.stopping.clone();
    tokio::spawn(async move {
        let mut changes = changes.ready_chunks(256);
        loop {
            tokio::select! {
                () = stopping.cancelled() => return,
                next = changes.next() => if next.is_none() { return },
            }
            let objects = feed_caches.objects();
            feed_api.auth.rbac.replace(&objects);
            tracing::debug!(
                bindings = feed_api.auth.rbac.bindings(),
                "RBAC policy updated"
            );
        }
    });
    tokio::spawn(pods(api.clone(), client));
    caches.synced().await;
    api.auth.rbac.replace(&caches.objects());
}

/// Feeds the Node authorizer from a watch of every pod.
async fn pods(api: Arc<ApiServer>, client: kube::Client) {
    let stream = watcher::watcher(Api::<Pod>::all(client), Default::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    loop {
        let next = tokio::select! {
            () = api.stopping.cancelled() => return,
            next = stream.try_next() => next,
        };
        match next {
            Ok(Some(Event::Apply(pod) | Event::InitApply(pod))) => api.auth.node.upsert_pod(&pod),
            Ok(Some(Event::Delete(pod))) => api.auth.node.remove_pod(
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod.metadata.name.as_deref().unwrap_or_default(),
            ),
            Ok(Some(Event::Init)) => api.auth.node.clear(),
            Ok(Some(Event::InitDone)) => {}
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "pod watch for the Node authorizer failed; retrying")
            }
        }
    }
}
