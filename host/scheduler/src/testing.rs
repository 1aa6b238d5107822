//! Hand-made pods, nodes and snapshots for the unit tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerImage, ContainerPort, Node, NodeSelectorRequirement,
    NodeSelectorTerm, NodeSpec, NodeStatus, Pod, PodSpec, ResourceRequirements, Taint, Toleration,
    TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::node_info::{NodeInfo, PodInfo, Snapshot};

fn q(s: &str) -> Quantity {
    Quantity(s.to_string())
}

/// A container requesting `cpu` and `memory` ("" = no request).
pub(crate) fn container(name: &str, cpu: &str, memory: &str) -> Container {
    let mut requests = BTreeMap::new();
    if !cpu.is_empty() {
        requests.insert("cpu".to_string(), q(cpu));
    }
    if !memory.is_empty() {
        requests.insert("memory".to_string(), q(memory));
    }
    Container {
        name: name.into(),
        image: Some("busybox".into()),
        resources: Some(ResourceRequirements {
            requests: Some(requests),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// More requests on a test container.
pub(crate) trait ContainerExt {
    /// Requests an extended resource.
    fn scalar(self, name: &str, amount: &str) -> Self;
    /// Requests ephemeral storage.
    fn ephemeral(self, amount: &str) -> Self;
}

impl ContainerExt for Container {
    fn scalar(mut self, name: &str, amount: &str) -> Self {
        let r = self.resources.get_or_insert_with(Default::default);
        r.requests
            .get_or_insert_with(Default::default)
            .insert(name.into(), q(amount));
        self
    }

    fn ephemeral(self, amount: &str) -> Self {
        self.scalar("ephemeral-storage", amount)
    }
}

/// A toleration.
pub(crate) fn toleration(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Toleration {
        key: opt(key),
        operator: opt(op),
        value: opt(value),
        effect: opt(effect),
        toleration_seconds: None,
    }
}

/// A node selector term with one requirement.
pub(crate) fn node_term(key: &str, op: &str, values: &[&str]) -> NodeSelectorTerm {
    NodeSelectorTerm {
        match_expressions: Some(vec![NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }]),
        match_fields: None,
    }
}

/// Builds a test pod.
pub(crate) struct PodBuilder(Pod);

/// A pod in `default` with no containers.
pub(crate) fn pod(name: &str) -> PodBuilder {
    let mut p = Pod::default();
    p.metadata.name = Some(name.into());
    p.metadata.namespace = Some("default".into());
    p.spec = Some(PodSpec::default());
    PodBuilder(p)
}

impl PodBuilder {
    fn spec(&mut self) -> &mut PodSpec {
        self.0.spec.as_mut().unwrap()
    }

    /// Adds a container.
    pub(crate) fn container(mut self, c: Container) -> Self {
        self.spec().containers.push(c);
        self
    }

    /// Adds an init container.
    pub(crate) fn init_container(mut self, c: Container) -> Self {
        self.spec()
            .init_containers
            .get_or_insert_with(Vec::new)
            .push(c);
        self
    }

    /// Adds a container running `image`.
    pub(crate) fn image(mut self, image: &str) -> Self {
        let mut c = container("c", "", "");
        c.image = Some(image.into());
        self.spec().containers.push(c);
        self
    }

    /// Adds a label.
    pub(crate) fn label(mut self, k: &str, v: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(k.into(), v.into());
        self
    }

    /// Adds a nodeSelector entry.
    pub(crate) fn node_selector(mut self, k: &str, v: &str) -> Self {
        self.spec()
            .node_selector
            .get_or_insert_with(Default::default)
            .insert(k.into(), v.into());
        self
    }

    /// Sets spec.nodeName.
    pub(crate) fn node_name(mut self, n: &str) -> Self {
        self.spec().node_name = Some(n.into());
        self
    }

    /// Adds a toleration.
    pub(crate) fn toleration(mut self, t: Toleration) -> Self {
        self.spec().tolerations.get_or_insert_with(Vec::new).push(t);
        self
    }

    /// Sets the affinity.
    pub(crate) fn affinity(mut self, a: Affinity) -> Self {
        self.spec().affinity = Some(a);
        self
    }

    /// Sets the priority.
    pub(crate) fn priority(mut self, p: i32) -> Self {
        self.spec().priority = Some(p);
        self
    }

    /// Adds a topology spread constraint.
    pub(crate) fn spread(mut self, c: TopologySpreadConstraint) -> Self {
        self.spec()
            .topology_spread_constraints
            .get_or_insert_with(Vec::new)
            .push(c);
        self
    }

    /// Adds a container with a host port.
    pub(crate) fn host_port(mut self, port: i32, ip: &str, protocol: &str) -> Self {
        let mut c = container("p", "", "");
        c.ports = Some(vec![ContainerPort {
            container_port: port,
            host_port: Some(port),
            host_ip: (!ip.is_empty()).then(|| ip.to_string()),
            protocol: Some(protocol.into()),
            name: None,
        }]);
        self.spec().containers.push(c);
        self
    }

    /// The pod.
    pub(crate) fn build(self) -> Pod {
        self.0
    }

    /// The pod's precomputed info.
    pub(crate) fn info(self) -> Arc<PodInfo> {
        Arc::new(PodInfo::new(Arc::new(self.0)))
    }
}

/// Builds a test node.
pub(crate) struct NodeBuilder(Node);

/// A node with `cpu` and `memory` allocatable, 110 pods, and its hostname label.
pub(crate) fn node(name: &str, cpu: &str, memory: &str) -> NodeBuilder {
    let mut n = Node::default();
    n.metadata.name = Some(name.into());
    n.metadata.labels = Some([("kubernetes.io/hostname".to_string(), name.to_string())].into());
    n.spec = Some(NodeSpec::default());
    let alloc: BTreeMap<String, Quantity> = [("cpu", cpu), ("memory", memory), ("pods", "110")]
        .iter()
        .map(|(k, v)| (k.to_string(), q(v)))
        .collect();
    n.status = Some(NodeStatus {
        allocatable: Some(alloc),
        ..Default::default()
    });
    NodeBuilder(n)
}

impl NodeBuilder {
    fn alloc(&mut self) -> &mut BTreeMap<String, Quantity> {
        self.0
            .status
            .as_mut()
            .unwrap()
            .allocatable
            .as_mut()
            .unwrap()
    }

    /// Adds a label.
    pub(crate) fn label(mut self, k: &str, v: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(k.into(), v.into());
        self
    }

    /// Adds a taint.
    pub(crate) fn taint(mut self, k: &str, v: &str, effect: &str) -> Self {
        let spec = self.0.spec.as_mut().unwrap();
        spec.taints.get_or_insert_with(Vec::new).push(Taint {
            key: k.into(),
            value: (!v.is_empty()).then(|| v.to_string()),
            effect: effect.into(),
            time_added: None,
        });
        self
    }

    /// Cordons the node.
    pub(crate) fn unschedulable(mut self) -> Self {
        self.0.spec.as_mut().unwrap().unschedulable = Some(true);
        self
    }

    /// Sets the pod capacity.
    pub(crate) fn pods(mut self, n: i64) -> Self {
        self.alloc().insert("pods".into(), q(&n.to_string()));
        self
    }

    /// Adds an extended resource.
    pub(crate) fn scalar(mut self, name: &str, amount: &str) -> Self {
        self.alloc().insert(name.into(), q(amount));
        self
    }

    /// Sets ephemeral storage.
    pub(crate) fn ephemeral(self, amount: &str) -> Self {
        self.scalar("ephemeral-storage", amount)
    }

    /// Adds an image present on the node.
    pub(crate) fn image(mut self, name: &str, size: i64) -> Self {
        let st = self.0.status.as_mut().unwrap();
        st.images.get_or_insert_with(Vec::new).push(ContainerImage {
            names: Some(vec![name.into()]),
            size_bytes: Some(size),
        });
        self
    }

    /// The node.
    pub(crate) fn build(self) -> Node {
        self.0
    }

    /// A node info with no pods.
    pub(crate) fn info(self) -> NodeInfo {
        let mut info = NodeInfo::new(self.0.metadata.name.as_deref().unwrap());
        info.set_node(Arc::new(self.0));
        info
    }
}

/// A snapshot of nodes with pods placed on them by node name.
pub(crate) fn snapshot(nodes: Vec<Node>, pods: Vec<(Pod, &str)>) -> Snapshot {
    let mut snap = Snapshot::default();
    for n in nodes {
        let name = n.metadata.name.clone().unwrap();
        let entry = snap.entry(&name);
        entry.set_node(Arc::new(n));
        let images = entry.images.clone();
        snap.adjust_images(&Default::default(), &images);
    }
    for (p, node) in pods {
        snap.entry(node)
            .add_pod(Arc::new(PodInfo::new(Arc::new(p))));
    }
    snap
}
