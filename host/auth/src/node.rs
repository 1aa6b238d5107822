//! Kubernetes' Node authorizer: a kubelet (`system:node:<name>` in `system:nodes`) may read
//! a Secret, ConfigMap, PersistentVolumeClaim or ServiceAccount token only when a pod bound to
//! its node uses it, may write only its own Node, Lease and the status of its own pods, and
//! otherwise holds the `system:node` rules. The graph of which pod on which node uses what is
//! fed from pod events ([`NodeAuthorizer::upsert_pod`]).

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::rbac::rule;
use crate::{policy, Attributes, Decision, UserInfo};

const NODES_GROUP: &str = "system:nodes";
const NODE_PREFIX: &str = "system:node:";

/// An object a pod uses: (resource, namespace, name).
type Use = (&'static str, String, String);

#[derive(Debug, Default)]
struct Graph {
    /// (namespace, pod) → (node, what it uses).
    pods: HashMap<(String, String), (String, Vec<Use>)>,
    /// node → use → how many of its pods use it.
    uses: HashMap<String, HashMap<Use, usize>>,
    /// node → its pods.
    node_pods: HashMap<String, HashSet<(String, String)>>,
}

/// The Node authorizer.
#[derive(Debug)]
pub struct NodeAuthorizer {
    graph: RwLock<Graph>,
    rules: Vec<PolicyRule>,
}

impl Default for NodeAuthorizer {
    fn default() -> Self {
        Self {
            graph: Default::default(),
            rules: policy::node_rules(),
        }
    }
}

fn uses_of(spec: &PodSpec, ns: &str) -> Vec<Use> {
    let mut out: HashSet<Use> = HashSet::new();
    let mut add = |kind: &'static str, name: Option<&String>| {
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            out.insert((kind, ns.to_string(), n.clone()));
        }
    };
    add("serviceaccounts", spec.service_account_name.as_ref());
    for s in spec.image_pull_secrets.iter().flatten() {
        add("secrets", Some(&s.name));
    }
    for v in spec.volumes.iter().flatten() {
        add(
            "secrets",
            v.secret.as_ref().and_then(|s| s.secret_name.as_ref()),
        );
        add("configmaps", v.config_map.as_ref().map(|c| &c.name));
        add(
            "persistentvolumeclaims",
            v.persistent_volume_claim.as_ref().map(|c| &c.claim_name),
        );
        for p in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            add("secrets", p.secret.as_ref().map(|s| &s.name));
            add("configmaps", p.config_map.as_ref().map(|c| &c.name));
        }
    }
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in containers {
        for e in c.env_from.iter().flatten() {
            add("secrets", e.secret_ref.as_ref().map(|s| &s.name));
            add("configmaps", e.config_map_ref.as_ref().map(|c| &c.name));
        }
        for e in c.env.iter().flatten() {
            let from = e.value_from.as_ref();
            add(
                "secrets",
                from.and_then(|f| f.secret_key_ref.as_ref())
                    .map(|s| &s.name),
            );
            add(
                "configmaps",
                from.and_then(|f| f.config_map_key_ref.as_ref())
                    .map(|c| &c.name),
            );
        }
    }
    out.into_iter().collect()
}

impl Graph {
    fn remove(&mut self, key: &(String, String)) {
        let Some((node, uses)) = self.pods.remove(key) else {
            return;
        };
        if let Some(counts) = self.uses.get_mut(&node) {
            for u in uses {
                if let Some(c) = counts.get_mut(&u) {
                    *c -= 1;
                    if *c == 0 {
                        counts.remove(&u);
                    }
                }
            }
        }
        if let Some(pods) = self.node_pods.get_mut(&node) {
            pods.remove(key);
        }
    }
}

/// The node a user acts for, if it is a node identity.
pub fn node_name(user: &UserInfo) -> Option<&str> {
    let name = user.name.strip_prefix(NODE_PREFIX)?;
    user.groups.iter().any(|g| g == NODES_GROUP).then_some(name)
}

impl NodeAuthorizer {
    /// Records (or updates) a pod's node and the objects it uses.
    pub fn upsert_pod(&self, pod: &Pod) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let key = (ns.clone(), pod.metadata.name.clone().unwrap_or_default());
        let mut graph = self.graph.write().unwrap_or_else(|e| e.into_inner());
        graph.remove(&key);
        let Some(spec) = &pod.spec else { return };
        let Some(node) = spec.node_name.clone().filter(|n| !n.is_empty()) else {
            return;
        };
        let uses = uses_of(spec, &ns);
        let counts = graph.uses.entry(node.clone()).or_default();
        for u in &uses {
            *counts.entry(u.clone()).or_default() += 1;
        }
        graph
            .node_pods
            .entry(node.clone())
            .or_default()
            .insert(key.clone());
        graph.pods.insert(key, (node, uses));
    }

    /// Forgets a deleted pod.
    pub fn remove_pod(&self, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        self.graph
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
    }

    /// Forgets every pod (before a relist).
    pub fn clear(&self) {
        *self.graph.write().unwrap_or_else(|e| e.into_inner()) = Graph::default();
    }

    fn related(&self, node: &str, a: &Attributes) -> bool {
        let graph = self.graph.read().unwrap_or_else(|e| e.into_inner());
        let resource: &'static str = match a.resource.as_str() {
            "secrets" => "secrets",
            "configmaps" => "configmaps",
            "persistentvolumeclaims" => "persistentvolumeclaims",
            "serviceaccounts" => "serviceaccounts",
            _ => return false,
        };
        graph
            .uses
            .get(node)
            .is_some_and(|u| u.contains_key(&(resource, a.namespace.clone(), a.name.clone())))
    }

    fn owns_pod(&self, node: &str, a: &Attributes) -> bool {
        let graph = self.graph.read().unwrap_or_else(|e| e.into_inner());
        graph
            .node_pods
            .get(node)
            .is_some_and(|p| p.contains(&(a.namespace.clone(), a.name.clone())))
    }

    fn rules_allow(&self, a: &Attributes) -> Decision {
        match self.rules.iter().any(|r| rule::allows(r, a)) {
            true => Decision::Allow(String::new()),
            false => Decision::NoOpinion(String::new()),
        }
    }

    /// The decision for a node identity; no opinion for anyone else.
    pub fn authorize(&self, user: &UserInfo, a: &Attributes) -> Decision {
        let Some(node) = node_name(user) else {
            return Decision::NoOpinion(String::new());
        };
        if !a.resource_request {
            return Decision::NoOpinion(String::new());
        }
        let no_relationship = || {
            Decision::NoOpinion(format!(
                "no relationship found between node '{node}' and this object"
            ))
        };
        match (
            a.group.as_str(),
            a.resource.as_str(),
            a.subresource.as_str(),
        ) {
            ("", "secrets" | "configmaps" | "persistentvolumeclaims", "") => {
                if a.verb != "get" || a.name.is_empty() {
                    return Decision::NoOpinion(
                        "can only get individual resources of this type".into(),
                    );
                }
                match self.related(node, a) {
                    true => Decision::Allow(String::new()),
                    false => no_relationship(),
                }
            }
            ("", "serviceaccounts", "token") => match a.verb == "create" && self.related(node, a) {
                true => Decision::Allow(String::new()),
                false => no_relationship(),
            },
            ("", "nodes", _) if !matches!(a.verb.as_str(), "get" | "list" | "watch" | "create") => {
                match a.name == node {
                    true => self.rules_allow(a),
                    false => Decision::NoOpinion(format!(
                        "node '{node}' cannot modify node '{}'",
                        a.name
                    )),
                }
            }
            ("", "pods", "status") => match self.owns_pod(node, a) {
                true => self.rules_allow(a),
                false => no_relationship(),
            },
            ("coordination.k8s.io", "leases", _) => {
                match a.namespace == "kube-node-lease" && (a.name == node || a.verb == "create") {
                    true => self.rules_allow(a),
                    false => Decision::NoOpinion(format!(
                        "node '{node}' may only use its own Lease in kube-node-lease"
                    )),
                }
            }
            _ => self.rules_allow(a),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str, node: &str, secret: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": ns, "name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i",
                "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}]}],
                "volumes": [{"name": "v", "secret": {"secretName": secret}}]}
        }))
        .unwrap()
    }

    #[test]
    fn nodes_read_only_what_their_pods_use() {
        let authz = NodeAuthorizer::default();
        authz.upsert_pod(&pod("d", "p1", "n1", "s1"));
        authz.upsert_pod(&pod("d", "p2", "n2", "s2"));
        let n1 = UserInfo::node("n1");
        let get = |kind, name| Attributes::resource("get", "d", "", kind, name);
        assert!(authz.authorize(&n1, &get("secrets", "s1")).allowed());
        assert!(authz.authorize(&n1, &get("configmaps", "cm")).allowed());
        let denied = authz.authorize(&n1, &get("secrets", "s2"));
        assert!(!denied.allowed());
        assert_eq!(
            denied.reason(),
            "no relationship found between node 'n1' and this object"
        );
        assert!(!authz
            .authorize(&n1, &Attributes::resource("list", "d", "", "secrets", ""))
            .allowed());
        // The pod moves away: the secret is no longer readable.
        authz.remove_pod("d", "p1");
        assert!(!authz.authorize(&n1, &get("secrets", "s1")).allowed());
        // Own node only; pods readable; other people: no opinion.
        assert!(authz
            .authorize(
                &n1,
                &Attributes::resource("patch", "", "", "nodes/status", "n1")
            )
            .allowed());
        assert!(!authz
            .authorize(
                &n1,
                &Attributes::resource("patch", "", "", "nodes/status", "n2")
            )
            .allowed());
        assert!(authz
            .authorize(&n1, &Attributes::resource("list", "", "", "pods", ""))
            .allowed());
        assert!(!authz
            .authorize(
                &n1,
                &Attributes::resource("update", "d", "", "pods/status", "p2")
            )
            .allowed());
        assert!(!authz
            .authorize(&UserInfo::new("x", &[]), &get("secrets", "s1"))
            .allowed());
    }
}
