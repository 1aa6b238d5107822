//! The garbage collector's ownership graph: every object of every watched resource by uid,
//! who owns whom, and the queue of uids to look at again.

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::DynamicObject;

use crate::discovery::Resource;

/// Finalizer asking the collector to orphan dependents.
pub(super) const ORPHAN: &str = "orphan";
/// Finalizer asking the collector to delete dependents first.
pub(super) const FOREGROUND: &str = "foregroundDeletion";

/// What one resource's watcher delivers.
#[derive(Debug)]
pub(super) enum Change {
    /// The complete current list (initially and after every re-list).
    Sync(Vec<DynamicObject>),
    /// An object was added or modified.
    Upsert(DynamicObject),
    /// An object was deleted.
    Delete(DynamicObject),
}

/// One object in the graph.
#[derive(Debug, Clone)]
pub(super) struct Node {
    /// Index into [`Graph::resources`].
    pub(super) res: usize,
    pub(super) ns: Option<String>,
    pub(super) name: String,
    pub(super) owners: Vec<OwnerReference>,
    pub(super) deleting: bool,
    finalizers: Vec<String>,
}

impl Node {
    fn of(res: usize, obj: &DynamicObject) -> Self {
        let meta = &obj.metadata;
        Node {
            res,
            ns: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
            owners: meta.owner_references.clone().unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
        }
    }

    pub(super) fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }
}

/// The ownership graph and the work queue.
#[derive(Default)]
pub(super) struct Graph {
    pub(super) resources: Vec<Resource>,
    pub(super) nodes: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<String>>,
    pub(super) queue: HashSet<String>,
}

fn uid_of(obj: &DynamicObject) -> String {
    obj.metadata.uid.clone().unwrap_or_default()
}

impl Graph {
    pub(super) fn apply(&mut self, res: usize, change: Change) {
        match change {
            Change::Sync(items) => self.sync(res, &items),
            Change::Upsert(obj) => self.upsert(res, &obj),
            Change::Delete(obj) => self.remove(&uid_of(&obj), true),
        }
    }

    fn upsert(&mut self, res: usize, obj: &DynamicObject) {
        let uid = uid_of(obj);
        if uid.is_empty() {
            return;
        }
        self.remove(&uid, false);
        let node = Node::of(res, obj);
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
            || (node.deleting && (node.has_finalizer(ORPHAN) || node.has_finalizer(FOREGROUND)))
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

    fn sync(&mut self, res: usize, items: &[DynamicObject]) {
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

    /// The known dependents of `uid`.
    pub(super) fn dependents_of(&self, uid: &str) -> Vec<Node> {
        self.dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|d| self.nodes.get(d).cloned())
            .collect()
    }

    /// `plural/namespace/name` of a node, for logs.
    pub(super) fn describe(&self, node: &Node) -> String {
        let plural = &self.resources[node.res].api.plural;
        match &node.ns {
            Some(ns) => format!("{plural}/{ns}/{}", node.name),
            None => format!("{plural}/{}", node.name),
        }
    }
}
