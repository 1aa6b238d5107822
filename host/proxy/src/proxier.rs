//! The proxy's loop: reflectors of Services and EndpointSlices wake it; it builds the
//! desired [`Ruleset`], applies the difference to what it last wrote (or the whole table at
//! start and whenever the table was changed behind its back, checked every second), and
//! keeps what the kernel holds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use tokio::sync::Notify;

use crate::{build, Error, Nft, Node, Ruleset};

/// How often the table is checked for outside changes (deleted table, flushed ruleset).
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Every this many checks, also for a flushed table (a more expensive listing).
const THOROUGH_EVERY: u32 = 5;

/// Runs the proxy for `node` until the returned future is dropped.
pub async fn run(client: kube::Client, node: Node, nft: Nft) -> Result<(), Error> {
    let wake = Arc::new(Notify::new());
    let (services, _s): (Store<Service>, _) =
        reflect(Api::all(client.clone()), wake.clone(), "Services");
    let (slices, _e): (Store<EndpointSlice>, _) =
        reflect(Api::all(client.clone()), wake.clone(), "EndpointSlices");
    let policy_stores = if node.network_policy {
        let (p, a) = reflect(
            Api::<NetworkPolicy>::all(client.clone()),
            wake.clone(),
            "NetworkPolicies",
        );
        let (q, b) = reflect(Api::<Pod>::all(client.clone()), wake.clone(), "Pods");
        let (n, c) = reflect(Api::<Namespace>::all(client), wake.clone(), "Namespaces");
        Some(((p, q, n), (a, b, c)))
    } else {
        None
    };
    // Writing rules from a half-listed cache would drop live services.
    let _ = services.wait_until_ready().await;
    let _ = slices.wait_until_ready().await;
    if let Some(((p, q, n), _)) = &policy_stores {
        // Policies must be in the first table too, or a restart would open a window
        // without them; but a client that may not read them must not stop the proxy.
        let ready = async {
            let _ = p.wait_until_ready().await;
            let _ = q.wait_until_ready().await;
            let _ = n.wait_until_ready().await;
        };
        if tokio::time::timeout(Duration::from_secs(10), ready)
            .await
            .is_err()
        {
            tracing::warn!("NetworkPolicy caches not synced after 10 s; going on without them");
        }
    }
    tracing::info!(node = %node.name, "proxy caches synced");
    let mut applied: Option<Ruleset> = None;
    let mut next_check = Instant::now() + CHECK_EVERY;
    let mut checks = 0u32;
    loop {
        if applied.is_some() {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep_until(next_check.into()) => {}
            }
        }
        if Instant::now() >= next_check {
            next_check = Instant::now() + CHECK_EVERY;
            checks = checks.wrapping_add(1);
            let thorough = checks.is_multiple_of(THOROUGH_EVERY);
            if applied.is_some() && !nft.intact(thorough).await? {
                tracing::warn!("nftables table keelson was changed by someone else; resyncing");
                applied = None;
            }
        }
        let span = tracing::info_span!("sync", full = applied.is_none());
        let _enter = span.enter();
        let started = Instant::now();
        let svcs = services.state();
        let eps = slices.state();
        let mut desired = build(
            svcs.iter().map(|s| s.as_ref()),
            eps.iter().map(|s| s.as_ref()),
            &node,
        );
        if let Some(((p, q, n), _)) = &policy_stores {
            let (p, q, n) = (p.state(), q.state(), n.state());
            crate::build_policies(
                &mut desired,
                p.iter().map(|x| x.as_ref()),
                q.iter().map(|x| x.as_ref()),
                n.iter().map(|x| x.as_ref()),
            );
        }
        let script = match &applied {
            Some(old) => desired.diff_script(old),
            None => desired.full_script(),
        };
        if script.is_empty() {
            continue;
        }
        match nft.apply(&script).await {
            Ok(()) => {
                tracing::debug!(
                    services = svcs.len(),
                    chains = desired.chains.len(),
                    ms = started.elapsed().as_secs_f64() * 1e3,
                    "rules synced"
                );
                applied = Some(desired);
            }
            Err(e) => {
                tracing::warn!(error = %e, "rule sync failed; retrying with the whole table");
                applied = None;
                drop(_enter);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// A reflector store of `api` whose changes wake the loop, driven by its own task.
fn reflect<K>(api: Api<K>, wake: Arc<Notify>, what: &'static str) -> (Store<K>, AbortOnDrop)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => wake.notify_one(),
                Err(e) => tracing::warn!(error = %e, what, "watch failed; retrying"),
            }
        }
    });
    (store, AbortOnDrop(task))
}

/// Stops a watch task when the proxy stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
