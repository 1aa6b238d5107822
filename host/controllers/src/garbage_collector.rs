//! The garbage collector: keeps a graph of ownerReferences over every served resource (one
//! `kube::runtime` watcher per resource, discovered anew every few seconds so CRDs join) and
//! - deletes dependents whose owners are all gone (Background propagation);
//! - for an owner being deleted with the `orphan` finalizer, removes its ownerReferences from
//!   the dependents, then the finalizer (Orphan propagation);
//! - for an owner with the `foregroundDeletion` finalizer, deletes the dependents (themselves in
//!   the foreground) and removes the finalizer once none are left (Foreground propagation).

mod graph;

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, DynamicObject, PostParams, PropagationPolicy};
use kube::runtime::{watcher, WatchStreamExt};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::discovery::{self, Resource};
use crate::error::{is_conflict, is_not_found, Error};
use graph::{Change, Graph, Node, FOREGROUND, ORPHAN};

/// Runs the garbage collector until the process ends.
pub async fn run(client: kube::Client) {
    let mut graph = Graph::default();
    let (tx, mut rx) = mpsc::channel::<(usize, Change)>(4096);
    let mut refresh = tokio::time::interval(Duration::from_secs(5));
    let mut retry = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = refresh.tick() => {
                let Ok(found) = discovery::resources(&client).await else { continue };
                for r in found {
                    if graph.resources.contains(&r) {
                        continue;
                    }
                    let idx = graph.resources.len();
                    tokio::spawn(watch(r.api(&client, None), idx, tx.clone()));
                    graph.resources.push(r);
                }
            }
            Some((res, change)) = rx.recv() => {
                graph.apply(res, change);
                while let Ok((res, change)) = rx.try_recv() {
                    graph.apply(res, change);
                }
                process(&client, &mut graph).await;
            }
            _ = retry.tick() => process(&client, &mut graph).await,
        }
    }
}

/// Feeds one resource's watch events into the graph's channel.
async fn watch(api: kube::Api<DynamicObject>, res: usize, tx: mpsc::Sender<(usize, Change)>) {
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listing = Vec::new();
    while let Some(event) = events.next().await {
        let change = match event {
            Ok(watcher::Event::Init) => {
                listing.clear();
                continue;
            }
            Ok(watcher::Event::InitApply(o)) => {
                listing.push(o);
                continue;
            }
            Ok(watcher::Event::InitDone) => Change::Sync(std::mem::take(&mut listing)),
            Ok(watcher::Event::Apply(o)) => Change::Upsert(o),
            Ok(watcher::Event::Delete(o)) => Change::Delete(o),
            Err(e) => {
                tracing::debug!(error = %e, "garbage collector watch failed; retrying");
                continue;
            }
        };
        if tx.send((res, change)).await.is_err() {
            return;
        }
    }
}

async fn process(client: &kube::Client, graph: &mut Graph) {
    let work: Vec<String> = graph.queue.drain().collect();
    for uid in work {
        let span = tracing::debug_span!("reconcile", controller = "garbagecollector", %uid);
        if let Err(e) = attempt(client, graph, &uid).instrument(span).await {
            tracing::debug!(uid = %uid, error = %e, "garbage collection will retry");
            graph.queue.insert(uid);
        }
    }
}

async fn attempt(client: &kube::Client, graph: &mut Graph, uid: &str) -> Result<(), Error> {
    let Some(node) = graph.nodes.get(uid).cloned() else {
        return Ok(());
    };
    let deps = graph.dependents_of(uid);
    if node.deleting && node.has_finalizer(ORPHAN) {
        for dep in &deps {
            edit(client, graph, dep, |o| {
                o.metadata
                    .owner_references
                    .get_or_insert_with(Vec::new)
                    .retain(|r| r.uid != uid)
            })
            .await?;
        }
        remove_finalizer(client, graph, &node, ORPHAN).await?;
        tracing::info!(object = %graph.describe(&node), dependents = deps.len(), "orphaned dependents");
        return Ok(());
    }
    if node.deleting && node.has_finalizer(FOREGROUND) {
        if deps.is_empty() {
            return remove_finalizer(client, graph, &node, FOREGROUND).await;
        }
        for dep in deps.iter().filter(|d| !d.deleting) {
            delete(client, graph, dep, PropagationPolicy::Foreground).await?;
        }
        graph.queue.insert(uid.to_string());
        return Ok(());
    }
    if node.owners.is_empty() {
        return Ok(());
    }
    let mut absent = Vec::new();
    for owner in &node.owners {
        if !owner_exists(client, graph, &node, owner).await? {
            absent.push(owner.uid.clone());
        }
    }
    if absent.len() == node.owners.len() {
        tracing::info!(object = %graph.describe(&node), "deleting object whose owners are gone");
        delete(client, graph, &node, PropagationPolicy::Background).await?;
    } else if !absent.is_empty() {
        edit(client, graph, &node, |o| {
            o.metadata
                .owner_references
                .get_or_insert_with(Vec::new)
                .retain(|r| !absent.contains(&r.uid))
        })
        .await?;
    }
    Ok(())
}

async fn owner_exists(
    client: &kube::Client,
    graph: &Graph,
    node: &Node,
    owner: &OwnerReference,
) -> Result<bool, Error> {
    let Some(res) = graph
        .resources
        .iter()
        .find(|r| r.serves(&owner.api_version, &owner.kind))
    else {
        // An owner kind nobody serves cannot exist (yet); keep the dependent, as Kubernetes does.
        return Ok(true);
    };
    let found = res
        .api(client, node.ns.as_deref())
        .get_opt(&owner.name)
        .await?;
    Ok(found.is_some_and(|o| o.metadata.uid.as_deref() == Some(owner.uid.as_str())))
}

fn resource<'g>(graph: &'g Graph, node: &Node) -> &'g Resource {
    &graph.resources[node.res]
}

async fn delete(
    client: &kube::Client,
    graph: &Graph,
    node: &Node,
    policy: PropagationPolicy,
) -> Result<(), Error> {
    let params = DeleteParams {
        propagation_policy: Some(policy),
        ..Default::default()
    };
    let api = resource(graph, node).api(client, node.ns.as_deref());
    match api.delete(&node.name, &params).await {
        Err(e) if !is_not_found(&e) => Err(e.into()),
        _ => Ok(()),
    }
}

/// Read-modify-write with the object's resourceVersion; 404 counts as done.
async fn edit(
    client: &kube::Client,
    graph: &Graph,
    node: &Node,
    change: impl Fn(&mut DynamicObject),
) -> Result<(), Error> {
    let api = resource(graph, node).api(client, node.ns.as_deref());
    for _ in 0..5 {
        let Some(mut obj) = api.get_opt(&node.name).await? else {
            return Ok(());
        };
        change(&mut obj);
        match api.replace(&node.name, &PostParams::default(), &obj).await {
            Ok(_) => return Ok(()),
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) if is_conflict(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Contended(graph.describe(node)))
}

/// Removes one finalizer from an object.
async fn remove_finalizer(
    client: &kube::Client,
    graph: &Graph,
    node: &Node,
    finalizer: &str,
) -> Result<(), Error> {
    edit(client, graph, node, |o| {
        o.metadata
            .finalizers
            .get_or_insert_with(Vec::new)
            .retain(|f| f != finalizer)
    })
    .await
}
