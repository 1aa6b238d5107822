//! The scheduler cache (Kubernetes' `internal/cache`): nodes and the pods bound to them, fed by
//! the watches, plus pods *assumed* on a node between the scheduling decision and the binding
//! being observed, so the next cycle already counts them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use crate::node_info::{PodInfo, Snapshot};
use crate::selectors::Labels;

struct Placed {
    node: String,
    assumed: bool,
}

/// Nodes, their pods and assumed pods.
#[derive(Default)]
pub(crate) struct Cache {
    /// What the scheduling cycle reads.
    pub(crate) snapshot: Snapshot,
    pods: HashMap<String, Placed>,
}

/// `namespace/name` of a pod.
pub(crate) fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// The parts of a node the filters read; other changes (heartbeats) do not wake pods.
fn relevant(node: &Node) -> impl PartialEq + '_ {
    let spec = node.spec.as_ref();
    let status = node.status.as_ref();
    (
        &node.metadata.labels,
        spec.map(|s| (&s.unschedulable, &s.taints)),
        status.map(|s| (&s.allocatable, &s.capacity, &s.images)),
    )
}

impl Cache {
    /// Adds or replaces a node; returns whether scheduling-relevant fields changed.
    pub(crate) fn set_node(&mut self, node: Node) -> bool {
        let name = node.metadata.name.clone().unwrap_or_default();
        let entry = self.snapshot.entry(&name);
        if entry
            .node
            .as_deref()
            .is_some_and(|old| relevant(old) == relevant(&node))
        {
            entry.node = Some(Arc::new(node));
            return false;
        }
        let old_images = std::mem::take(&mut entry.images);
        entry.set_node(Arc::new(node));
        let new_images = entry.images.clone();
        self.snapshot.adjust_images(&old_images, &new_images);
        true
    }

    /// Drops a node (its pods stay accounted until they go).
    pub(crate) fn remove_node(&mut self, name: &str) {
        let Some(entry) = self
            .snapshot
            .index
            .get(name)
            .map(|i| &mut self.snapshot.nodes[*i])
        else {
            return;
        };
        let images = std::mem::take(&mut entry.images);
        entry.node = None;
        let empty = entry.pods.is_empty();
        self.snapshot.adjust_images(&images, &Default::default());
        if empty {
            self.snapshot.remove(name);
        }
    }

    /// Names of all nodes with an object.
    pub(crate) fn node_names(&self) -> HashSet<String> {
        self.snapshot
            .ready_nodes()
            .map(|n| n.name.clone())
            .collect()
    }

    /// Counts a pod on a node before its binding is observed.
    pub(crate) fn assume(&mut self, info: Arc<PodInfo>, node: &str) {
        self.remove_pod(&info.key.clone());
        self.pods.insert(
            info.key.clone(),
            Placed {
                node: node.to_string(),
                assumed: true,
            },
        );
        self.snapshot.entry(node).add_pod(info);
    }

    /// Undoes `assume` after a failed binding.
    pub(crate) fn forget(&mut self, key: &str) {
        if self.pods.get(key).is_some_and(|p| p.assumed) {
            self.remove_pod(key);
        }
    }

    /// Records a pod the watch reports bound to a node (confirming an assumed one).
    pub(crate) fn set_pod(&mut self, pod: Arc<Pod>) {
        let info = Arc::new(PodInfo::new(pod));
        let node = info
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        self.remove_pod(&info.key.clone());
        self.pods.insert(
            info.key.clone(),
            Placed {
                node: node.clone(),
                assumed: false,
            },
        );
        self.snapshot.entry(&node).add_pod(info);
    }

    /// Forgets a pod (deleted, finished, or unbound); returns whether it was counted.
    pub(crate) fn remove_pod(&mut self, key: &str) -> bool {
        let Some(placed) = self.pods.remove(key) else {
            return false;
        };
        if let Some(i) = self.snapshot.index.get(&placed.node).copied() {
            let entry = &mut self.snapshot.nodes[i];
            entry.remove_pod(key);
            if entry.node.is_none() && entry.pods.is_empty() {
                self.snapshot.remove(&placed.node);
            }
        }
        true
    }

    /// Keys of pods the watch has reported (not merely assumed).
    pub(crate) fn observed_pod_keys(&self) -> Vec<String> {
        self.pods
            .iter()
            .filter(|(_, p)| !p.assumed)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Records a namespace's labels (for affinity namespace selectors).
    pub(crate) fn set_namespace(&mut self, name: String, labels: Labels) {
        self.snapshot.namespace_labels.insert(name, labels);
    }

    /// Adds or replaces a PodDisruptionBudget.
    pub(crate) fn set_pdb(&mut self, pdb: PodDisruptionBudget) {
        self.remove_pdb(&pdb);
        self.snapshot.pdbs.push(pdb);
    }

    /// Forgets a PodDisruptionBudget.
    pub(crate) fn remove_pdb(&mut self, pdb: &PodDisruptionBudget) {
        let id = |p: &PodDisruptionBudget| (p.metadata.namespace.clone(), p.metadata.name.clone());
        let key = id(pdb);
        self.snapshot.pdbs.retain(|p| id(p) != key);
    }

    /// Forgets a namespace.
    pub(crate) fn remove_namespace(&mut self, name: &str) {
        self.snapshot.namespace_labels.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{container, node, pod};

    #[test]
    fn assumed_pods_count_until_forgotten_or_confirmed() {
        let mut cache = Cache::default();
        assert!(cache.set_node(node("n", "2", "4Gi").build()));
        assert!(
            !cache.set_node(node("n", "2", "4Gi").build()),
            "same node is not a change"
        );
        let p = pod("p").container(container("c", "1", "1Gi"));
        let info = p.info();
        cache.assume(info.clone(), "n");
        assert_eq!(cache.snapshot.get("n").unwrap().requested.milli_cpu, 1000);
        cache.forget(&info.key);
        assert_eq!(cache.snapshot.get("n").unwrap().requested.milli_cpu, 0);
        cache.assume(info.clone(), "n");
        let bound = pod("p")
            .container(container("c", "1", "1Gi"))
            .node_name("n")
            .build();
        cache.set_pod(Arc::new(bound));
        cache.forget(&info.key);
        let n = cache.snapshot.get("n").unwrap();
        assert_eq!((n.pods.len(), n.requested.milli_cpu), (1, 1000));
        assert!(cache.remove_pod(&info.key));
        assert_eq!(cache.snapshot.get("n").unwrap().pods.len(), 0);
    }
}
