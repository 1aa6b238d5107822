//! The garbage collector: keeps a graph of ownerReferences over every served resource and
//! - deletes dependents whose owners are all gone (Background propagation);
//! - for an owner being deleted with the `orphan` finalizer, removes its ownerReferences from
//!   the dependents, then the finalizer (Orphan propagation);
//! - for an owner with the `foregroundDeletion` finalizer, deletes the dependents (themselves in
//!   the foreground) and removes the finalizer once none are left (Foreground propagation).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use keelson_apiserver::ApiClient;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::discovery::{self, Resource};
use crate::informer::{self, Change};

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";

#[derive(Debug, Clone)]
struct Owner {
    uid: String,
    api_version: String,
    kind: String,
    name: String,
}

#[derive(Debug, Clone)]
struct Node {
    res: usize,
    ns: Option<String>,
    name: String,
    owners: Vec<Owner>,
    deleting: bool,
    finalizers: Vec<String>,
}

/// The ownership graph and the work queue.
#[derive(Default)]
struct Graph {
    resources: Vec<Resource>,
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<String>>,
    queue: HashSet<String>,
}

fn uid_of(obj: &Value) -> String {
    obj.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl Graph {
    fn node_of(res: usize, obj: &Value) -> Node {
        let meta = &obj["metadata"];
        let owners = meta["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| Owner {
                uid: o["uid"].as_str().unwrap_or_default().into(),
                api_version: o["apiVersion"].as_str().unwrap_or_default().into(),
                kind: o["kind"].as_str().unwrap_or_default().into(),
                name: o["name"].as_str().unwrap_or_default().into(),
            })
            .collect();
        Node {
            res,
            ns: meta["namespace"].as_str().map(String::from),
            name: meta["name"].as_str().unwrap_or_default().into(),
            owners,
            deleting: meta.get("deletionTimestamp").is_some_and(|v| !v.is_null()),
            finalizers: meta["finalizers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(String::from))
                .collect(),
        }
    }

    fn upsert(&mut self, res: usize, obj: &Value) {
        let uid = uid_of(obj);
        if uid.is_empty() {
            return;
        }
        self.remove(&uid, false);
        let node = Self::node_of(res, obj);
        for o in &node.owners {
            self.dependents
                .entry(o.uid.clone())
                .or_default()
                .insert(uid.clone());
            if self.nodes.get(&o.uid).is_some_and(|n| n.deleting) {
                self.queue.insert(o.uid.clone());
            }
        }
        if !node.owners.is_empty()
            || (node.deleting
                && node
                    .finalizers
                    .iter()
                    .any(|f| f == ORPHAN || f == FOREGROUND))
        {
            self.queue.insert(uid.clone());
        }
        self.nodes.insert(uid, node);
    }

    fn remove(&mut self, uid: &str, deleted: bool) {
        let Some(node) = self.nodes.remove(uid) else {
            return;
        };
        for o in &node.owners {
            if let Some(d) = self.dependents.get_mut(&o.uid) {
                d.remove(uid);
            }
            if deleted {
                self.queue.insert(o.uid.clone());
            }
        }
        if deleted {
            for d in self.dependents.get(uid).into_iter().flatten() {
                self.queue.insert(d.clone());
            }
        }
    }

    fn sync(&mut self, res: usize, items: &[Value]) {
        let live: HashSet<String> = items.iter().map(uid_of).collect();
        let gone: Vec<String> = self
            .nodes
            .iter()
            .filter(|(u, n)| n.res == res && !live.contains(*u))
            .map(|(u, _)| u.clone())
            .collect();
        for u in gone {
            self.remove(&u, true);
        }
        for obj in items {
            self.upsert(res, obj);
        }
    }

    fn path(&self, node: &Node) -> String {
        self.resources[node.res].object_path(node.ns.as_deref(), &node.name)
    }
}

/// Runs the garbage collector until the process ends.
pub async fn run(client: ApiClient) {
    let mut graph = Graph::default();
    let (tx, mut rx) = mpsc::channel::<(usize, Change)>(4096);
    let mut refresh = tokio::time::interval(Duration::from_secs(10));
    let mut retry = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = refresh.tick() => {
                for r in discovery::resources(&client).await {
                    if graph.resources.contains(&r) {
                        continue;
                    }
                    let idx = graph.resources.len();
                    let mut changes = informer::start(client.clone(), r.list_path(None));
                    graph.resources.push(r);
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        while let Some(c) = changes.recv().await {
                            if tx.send((idx, c)).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
            Some((res, change)) = rx.recv() => {
                apply(&mut graph, res, change);
                while let Ok((res, change)) = rx.try_recv() {
                    apply(&mut graph, res, change);
                }
                process(&client, &mut graph).await;
            }
            _ = retry.tick() => process(&client, &mut graph).await,
        }
    }
}

fn apply(graph: &mut Graph, res: usize, change: Change) {
    match change {
        Change::Sync(items) => graph.sync(res, &items),
        Change::Upsert(obj) => graph.upsert(res, &obj),
        Change::Delete(obj) => graph.remove(&uid_of(&obj), true),
    }
}

async fn process(client: &ApiClient, graph: &mut Graph) {
    let work: Vec<String> = graph.queue.drain().collect();
    for uid in work {
        if let Err(e) = attempt(client, graph, &uid).await {
            tracing::debug!(uid = %uid, error = %e.message, "garbage collection will retry");
            graph.queue.insert(uid);
        }
    }
}

async fn attempt(
    client: &ApiClient,
    graph: &mut Graph,
    uid: &str,
) -> Result<(), keelson_apiserver::ApiError> {
    let Some(node) = graph.nodes.get(uid).cloned() else {
        return Ok(());
    };
    let path = graph.path(&node);
    let deps: Vec<Node> = graph
        .dependents
        .get(uid)
        .into_iter()
        .flatten()
        .filter_map(|d| graph.nodes.get(d).cloned())
        .collect();
    if node.deleting && node.finalizers.iter().any(|f| f == ORPHAN) {
        for dep in &deps {
            let dep_path = graph.path(dep);
            edit(client, &dep_path, |obj| {
                let refs = obj["metadata"]["ownerReferences"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                obj["metadata"]["ownerReferences"] = json!(refs
                    .into_iter()
                    .filter(|r| r["uid"] != uid)
                    .collect::<Vec<_>>());
            })
            .await?;
        }
        remove_finalizer(client, &path, ORPHAN).await?;
        tracing::info!(object = %path, dependents = deps.len(), "orphaned dependents");
        return Ok(());
    }
    if node.deleting && node.finalizers.iter().any(|f| f == FOREGROUND) {
        if deps.is_empty() {
            remove_finalizer(client, &path, FOREGROUND).await?;
            return Ok(());
        }
        for dep in deps.iter().filter(|d| !d.deleting) {
            delete(client, &graph.path(dep), "Foreground").await?;
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
        tracing::info!(object = %path, "deleting object whose owners are gone");
        delete(client, &path, "Background").await?;
    } else if !absent.is_empty() {
        edit(client, &path, |obj| {
            let refs = obj["metadata"]["ownerReferences"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            obj["metadata"]["ownerReferences"] = json!(refs
                .into_iter()
                .filter(|r| !absent.iter().any(|a| r["uid"] == a.as_str()))
                .collect::<Vec<_>>());
        })
        .await?;
    }
    Ok(())
}

async fn owner_exists(
    client: &ApiClient,
    graph: &Graph,
    node: &Node,
    owner: &Owner,
) -> Result<bool, keelson_apiserver::ApiError> {
    let Some(res) = graph
        .resources
        .iter()
        .find(|r| r.api_version == owner.api_version && r.kind == owner.kind)
    else {
        // An owner kind nobody serves cannot exist (yet); keep the dependent, as Kubernetes does.
        return Ok(true);
    };
    let ns = if res.namespaced {
        node.ns.as_deref()
    } else {
        None
    };
    match client.get(&res.object_path(ns, &owner.name)).await {
        Ok(obj) => Ok(uid_of(&obj) == owner.uid),
        Err(e) if e.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

async fn delete(
    client: &ApiClient,
    path: &str,
    policy: &str,
) -> Result<(), keelson_apiserver::ApiError> {
    match client
        .delete(
            path,
            Some(
                &json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy}),
            ),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Read-modify-write with the object's resourceVersion; 404 counts as done.
async fn edit(
    client: &ApiClient,
    path: &str,
    change: impl Fn(&mut Value),
) -> Result<(), keelson_apiserver::ApiError> {
    for _ in 0..5 {
        let mut obj = match client.get(path).await {
            Ok(o) => o,
            Err(e) if e.code == 404 => return Ok(()),
            Err(e) => return Err(e),
        };
        change(&mut obj);
        match client.update(path, &obj).await {
            Ok(_) => return Ok(()),
            Err(e) if e.code == 404 => return Ok(()),
            Err(e) if e.code == 409 => continue,
            Err(e) => return Err(e),
        }
    }
    Err(keelson_apiserver::ApiError::conflict("", "object", path))
}

/// Removes one finalizer from an object.
pub(crate) async fn remove_finalizer(
    client: &ApiClient,
    path: &str,
    finalizer: &str,
) -> Result<(), keelson_apiserver::ApiError> {
    edit(client, path, |obj| {
        let list = obj["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        obj["metadata"]["finalizers"] = json!(list
            .into_iter()
            .filter(|f| f != finalizer)
            .collect::<Vec<_>>());
    })
    .await
}
