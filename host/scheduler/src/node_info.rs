//! What the scheduler knows about each node and the pods on it (Kubernetes' `framework.NodeInfo`
//! and `PodInfo`): the node object, its pods with their precomputed requests, affinity terms and
//! host ports, the running totals the filters compare against, and the cluster-wide snapshot
//! (nodes in a stable order, image spread, namespace labels) a scheduling cycle reads.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, PodAffinityTerm, WeightedPodAffinityTerm};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::resources::{node_allocatable, pod_requests, Resources};
use crate::selectors::{labels_of, optional_selector_matches, Labels};

/// One pod-affinity term with its namespaces resolved (Kubernetes' `framework.AffinityTerm`).
#[derive(Clone, Debug)]
pub struct AffinityTerm {
    /// Namespaces named by the term (the pod's own when neither these nor a selector is given).
    pub namespaces: Vec<String>,
    /// Selects namespaces by label (`None` selects none; empty selects all).
    pub namespace_selector: Option<LabelSelector>,
    /// Selects the pods the term is about (`None` selects none).
    pub selector: Option<LabelSelector>,
    /// The node label whose values define the topology domains.
    pub topology_key: String,
    /// The weight of a preferred term (1 for required ones).
    pub weight: i64,
}

impl AffinityTerm {
    fn new(term: &PodAffinityTerm, pod_namespace: &str, weight: i64) -> Self {
        let mut namespaces = term.namespaces.clone().unwrap_or_default();
        if namespaces.is_empty() && term.namespace_selector.is_none() {
            namespaces.push(pod_namespace.to_string());
        }
        AffinityTerm {
            namespaces,
            namespace_selector: term.namespace_selector.clone(),
            selector: term.label_selector.clone(),
            topology_key: term.topology_key.clone(),
            weight,
        }
    }

    /// Does the term select `pod`, whose namespace carries `ns_labels`?
    pub fn matches(&self, pod: &Pod, namespace_labels: &HashMap<String, Labels>) -> bool {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let empty = Labels::new();
        let in_ns = self.namespaces.iter().any(|n| n == ns)
            || optional_selector_matches(
                self.namespace_selector.as_ref(),
                namespace_labels.get(ns).unwrap_or(&empty),
            );
        in_ns && optional_selector_matches(self.selector.as_ref(), labels_of(&pod.metadata.labels))
    }
}

/// A host port a pod uses (`hostIP`, protocol, port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    /// The host IP; `0.0.0.0` when unset (all addresses).
    pub ip: String,
    /// TCP, UDP or SCTP.
    pub protocol: String,
    /// The port number.
    pub port: i32,
}

impl HostPort {
    /// Two host ports conflict on the same protocol and port when either IP is the wildcard
    /// or both are equal (Kubernetes' `HostPortInfo.CheckConflict`).
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// A pod with what the plugins read from it precomputed once.
#[derive(Debug)]
pub struct PodInfo {
    /// The pod object.
    pub pod: Arc<Pod>,
    /// `namespace/name`.
    pub key: String,
    /// Effective requests (for fitting).
    pub requests: Resources,
    /// Requests with the scoring defaults for unset cpu/memory.
    pub non_zero_requests: Resources,
    /// `spec.priority` (0 when unset).
    pub priority: i32,
    /// Required pod-affinity terms.
    pub required_affinity: Vec<AffinityTerm>,
    /// Required pod-anti-affinity terms.
    pub required_anti_affinity: Vec<AffinityTerm>,
    /// Preferred pod-affinity terms (with weights).
    pub preferred_affinity: Vec<AffinityTerm>,
    /// Preferred pod-anti-affinity terms (with weights).
    pub preferred_anti_affinity: Vec<AffinityTerm>,
    /// Host ports of its containers.
    pub host_ports: Vec<HostPort>,
}

fn terms(required: Option<&Vec<PodAffinityTerm>>, ns: &str) -> Vec<AffinityTerm> {
    required
        .into_iter()
        .flatten()
        .map(|t| AffinityTerm::new(t, ns, 1))
        .collect()
}

fn weighted(preferred: Option<&Vec<WeightedPodAffinityTerm>>, ns: &str) -> Vec<AffinityTerm> {
    preferred
        .into_iter()
        .flatten()
        .map(|t| AffinityTerm::new(&t.pod_affinity_term, ns, t.weight as i64))
        .collect()
}

impl PodInfo {
    /// Precomputes a pod's scheduling facts.
    pub fn new(pod: Arc<Pod>) -> Self {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let key = format!("{ns}/{}", pod.metadata.name.as_deref().unwrap_or(""));
        let spec = pod.spec.as_ref();
        let affinity = spec.and_then(|s| s.affinity.as_ref());
        let pa = affinity.and_then(|a| a.pod_affinity.as_ref());
        let paa = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let host_ports = spec
            .into_iter()
            .flat_map(|s| {
                let sidecars = s.init_containers.iter().flatten();
                let sidecars = sidecars.filter(|c| c.restart_policy.as_deref() == Some("Always"));
                s.containers.iter().chain(sidecars)
            })
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                let port = p.host_port.filter(|p| *p > 0)?;
                Some(HostPort {
                    ip: p
                        .host_ip
                        .clone()
                        .filter(|ip| !ip.is_empty())
                        .unwrap_or_else(|| "0.0.0.0".into()),
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    port,
                })
            })
            .collect();
        PodInfo {
            requests: pod_requests(&pod, false),
            non_zero_requests: pod_requests(&pod, true),
            priority: spec.and_then(|s| s.priority).unwrap_or(0),
            required_affinity: terms(
                pa.and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
                &ns,
            ),
            required_anti_affinity: terms(
                paa.and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
                &ns,
            ),
            preferred_affinity: weighted(
                pa.and_then(|a| {
                    a.preferred_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
                &ns,
            ),
            preferred_anti_affinity: weighted(
                paa.and_then(|a| {
                    a.preferred_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
                &ns,
            ),
            host_ports,
            key,
            pod,
        }
    }

    /// The pod's namespace.
    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// The pod's labels.
    pub fn labels(&self) -> &Labels {
        labels_of(&self.pod.metadata.labels)
    }

    /// Does the pod carry any pod-affinity or anti-affinity term?
    pub fn has_affinity(&self) -> bool {
        !(self.required_affinity.is_empty()
            && self.required_anti_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty())
    }

    /// Is the pod being deleted?
    pub fn terminating(&self) -> bool {
        self.pod.metadata.deletion_timestamp.is_some()
    }
}

/// A node and the pods assigned (or assumed) to it.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// The node's name.
    pub name: String,
    /// The node object; `None` while pods name a node the cache has not seen yet.
    pub node: Option<Arc<Node>>,
    /// Its allocatable resources.
    pub allocatable: Resources,
    /// Pods on it.
    pub pods: Vec<Arc<PodInfo>>,
    /// Sum of the pods' requests.
    pub requested: Resources,
    /// Sum of the pods' requests with scoring defaults.
    pub non_zero_requested: Resources,
    /// Host ports in use.
    pub used_ports: Vec<HostPort>,
    /// Number of its pods with any pod-affinity term.
    pub pods_with_affinity: usize,
    /// Images present on the node: normalized name → size in bytes.
    pub images: HashMap<String, i64>,
}

/// Adds `:latest` to an image name without a tag, as Kubernetes' ImageLocality does.
pub fn normalized_image_name(name: &str) -> String {
    if name.rfind(':').unwrap_or(0) <= name.rfind('/').unwrap_or(0) && !name.contains('@') {
        format!("{name}:latest")
    } else {
        name.to_string()
    }
}

impl NodeInfo {
    /// An empty entry for a node name.
    pub fn new(name: &str) -> Self {
        NodeInfo {
            name: name.to_string(),
            node: None,
            allocatable: Resources::default(),
            pods: Vec::new(),
            requested: Resources::default(),
            non_zero_requested: Resources::default(),
            used_ports: Vec::new(),
            pods_with_affinity: 0,
            images: HashMap::new(),
        }
    }

    /// Sets (or replaces) the node object.
    pub fn set_node(&mut self, node: Arc<Node>) {
        self.allocatable = node_allocatable(&node);
        self.images = node
            .status
            .iter()
            .flat_map(|s| s.images.iter().flatten())
            .flat_map(|img| {
                let size = img.size_bytes.unwrap_or(0);
                img.names
                    .iter()
                    .flatten()
                    .map(move |n| (normalized_image_name(n), size))
            })
            .collect();
        self.node = Some(node);
    }

    /// The node object (only called for nodes the cache has seen).
    pub fn node(&self) -> &Node {
        self.node.as_deref().expect("node info without a node")
    }

    /// The node's labels.
    pub fn labels(&self) -> &Labels {
        self.node
            .as_deref()
            .map(|n| labels_of(&n.metadata.labels))
            .unwrap_or_else(|| labels_of(&None))
    }

    /// Adds a pod and its usage.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.non_zero_requested.add(&pod.non_zero_requests);
        self.used_ports.extend(pod.host_ports.iter().cloned());
        if pod.has_affinity() {
            self.pods_with_affinity += 1;
        }
        self.pods.push(pod);
    }

    /// Removes a pod (by `namespace/name`) and its usage; returns whether it was there.
    pub fn remove_pod(&mut self, key: &str) -> bool {
        let Some(i) = self.pods.iter().position(|p| p.key == key) else {
            return false;
        };
        let pod = self.pods.swap_remove(i);
        self.requested.sub(&pod.requests);
        self.non_zero_requested.sub(&pod.non_zero_requests);
        for port in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|p| p == port) {
                self.used_ports.swap_remove(j);
            }
        }
        if pod.has_affinity() {
            self.pods_with_affinity -= 1;
        }
        true
    }
}

/// The cluster as one scheduling cycle sees it.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Every node entry, in a stable order (the cache appends; removal swaps).
    pub nodes: Vec<NodeInfo>,
    /// Node name → position in `nodes`.
    pub index: HashMap<String, usize>,
    /// Normalized image name → number of nodes that have it.
    pub image_nodes: HashMap<String, usize>,
    /// Namespace name → its labels (for namespace selectors in affinity terms).
    pub namespace_labels: HashMap<String, Labels>,
    /// PodDisruptionBudgets (preemption spares the pods they protect where it can).
    pub pdbs: Vec<PodDisruptionBudget>,
}

impl Snapshot {
    /// The entries of nodes the cache has seen.
    pub fn ready_nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.iter().filter(|n| n.node.is_some())
    }

    /// Number of nodes the cache has seen.
    pub fn num_nodes(&self) -> usize {
        self.ready_nodes().count()
    }

    /// The entry for a node name, created on first use.
    pub fn entry(&mut self, name: &str) -> &mut NodeInfo {
        let i = match self.index.get(name) {
            Some(i) => *i,
            None => {
                self.nodes.push(NodeInfo::new(name));
                self.index.insert(name.to_string(), self.nodes.len() - 1);
                self.nodes.len() - 1
            }
        };
        &mut self.nodes[i]
    }

    /// The entry for a node name, if any.
    pub fn get(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|i| &self.nodes[*i])
    }

    /// Drops an entry (the last one takes its place).
    pub fn remove(&mut self, name: &str) -> Option<NodeInfo> {
        let i = self.index.remove(name)?;
        let info = self.nodes.swap_remove(i);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
        Some(info)
    }

    /// Counts images per node again after a node's image list changed.
    pub fn adjust_images(&mut self, old: &HashMap<String, i64>, new: &HashMap<String, i64>) {
        for name in old.keys() {
            if let Some(c) = self.image_nodes.get_mut(name) {
                *c = c.saturating_sub(1);
            }
        }
        for name in new.keys() {
            *self.image_nodes.entry(name.clone()).or_default() += 1;
        }
    }
}
