//! The RBAC authorizer: Roles, ClusterRoles (with aggregation), RoleBindings and
//! ClusterRoleBindings folded into an index by subject, so a decision looks up the user's
//! name and groups and checks only the rules bound to them — microseconds however many
//! bindings exist. The API server feeds it every change ([`Rbac::replace`]).

pub mod rule;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject,
};
use keelson_apimachinery::selector::LabelSelector;

use crate::{Attributes, Decision, UserInfo};

/// Everything RBAC decides from.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    /// ClusterRoles.
    pub cluster_roles: Vec<ClusterRole>,
    /// Roles.
    pub roles: Vec<Role>,
    /// ClusterRoleBindings.
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
    /// RoleBindings.
    pub role_bindings: Vec<RoleBinding>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Group(String),
}

/// Rules granted to a subject, and the binding that grants them.
#[derive(Debug, Clone)]
struct Grant {
    rules: Arc<Vec<PolicyRule>>,
    source: Arc<str>,
}

#[derive(Debug, Default)]
struct Index {
    cluster: HashMap<Key, Vec<Grant>>,
    namespaced: HashMap<String, HashMap<Key, Vec<Grant>>>,
    cluster_roles: HashMap<String, Arc<Vec<PolicyRule>>>,
    roles: HashMap<(String, String), Arc<Vec<PolicyRule>>>,
    bindings: usize,
}

/// The RBAC authorizer.
#[derive(Debug, Default)]
pub struct Rbac {
    index: RwLock<Arc<Index>>,
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

/// The rules of every ClusterRole, aggregation resolved (Kubernetes'
/// clusterrole-aggregation controller writes the same union back to the object).
pub fn aggregated_rules(roles: &[ClusterRole]) -> HashMap<String, Vec<PolicyRule>> {
    let labels = |r: &ClusterRole| -> serde_json::Map<String, serde_json::Value> {
        r.metadata
            .labels
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect()
    };
    let mut out: HashMap<String, Vec<PolicyRule>> = roles
        .iter()
        .map(|r| {
            (
                name_of(&r.metadata).to_string(),
                r.rules.clone().unwrap_or_default(),
            )
        })
        .collect();
    let selectors: Vec<(&str, Vec<LabelSelector>)> = roles
        .iter()
        .filter_map(|role| {
            let rule = role.aggregation_rule.as_ref()?;
            let sels = rule
                .cluster_role_selectors
                .iter()
                .flatten()
                .filter_map(|s| {
                    LabelSelector::from_object(Some(&serde_json::to_value(s).ok()?)).ok()
                })
                .collect();
            Some((name_of(&role.metadata), sels))
        })
        .collect();
    // Aggregated roles may aggregate other aggregated roles (admin ← edit ← view): repeat
    // until nothing changes.
    for _ in 0..8 {
        let mut changed = false;
        for (name, sels) in &selectors {
            let mut rules = out.get(*name).cloned().unwrap_or_default();
            for other in roles {
                let other_name = name_of(&other.metadata);
                if other_name == *name || !sels.iter().any(|s| s.matches(Some(&labels(other)))) {
                    continue;
                }
                for r in out.get(other_name).into_iter().flatten() {
                    if !rules.contains(r) {
                        rules.push(r.clone());
                        changed = true;
                    }
                }
            }
            out.insert(name.to_string(), rules);
        }
        if !changed {
            break;
        }
    }
    out
}

fn subject_key(s: &Subject, binding_ns: &str) -> Option<(Key, String)> {
    match s.kind.as_str() {
        "User" => Some((Key::User(s.name.clone()), format!("User {:?}", s.name))),
        "Group" => Some((Key::Group(s.name.clone()), format!("Group {:?}", s.name))),
        "ServiceAccount" => {
            let ns = s
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            Some((
                Key::User(format!("system:serviceaccount:{ns}:{}", s.name)),
                format!("ServiceAccount \"{}/{ns}\"", s.name),
            ))
        }
        _ => None,
    }
}

impl Index {
    fn build(objects: &Objects) -> Self {
        let cluster_rules: HashMap<String, Arc<Vec<PolicyRule>>> =
            aggregated_rules(&objects.cluster_roles)
                .into_iter()
                .map(|(k, v)| (k, Arc::new(v)))
                .collect();
        let role_rules: HashMap<(String, String), Arc<Vec<PolicyRule>>> = objects
            .roles
            .iter()
            .map(|r| {
                let ns = r.metadata.namespace.clone().unwrap_or_default();
                (
                    (ns, name_of(&r.metadata).to_string()),
                    Arc::new(r.rules.clone().unwrap_or_default()),
                )
            })
            .collect();
        let mut index = Index {
            cluster_roles: cluster_rules.clone(),
            roles: role_rules.clone(),
            ..Default::default()
        };
        for b in &objects.cluster_role_bindings {
            let Some(rules) = (b.role_ref.kind == "ClusterRole")
                .then(|| cluster_rules.get(&b.role_ref.name))
                .flatten()
            else {
                continue;
            };
            index.bindings += 1;
            for s in b.subjects.iter().flatten() {
                if let Some((key, who)) = subject_key(s, "") {
                    let source = format!(
                        "ClusterRoleBinding {:?} of ClusterRole {:?} to {who}",
                        name_of(&b.metadata),
                        b.role_ref.name
                    );
                    index.cluster.entry(key).or_default().push(Grant {
                        rules: rules.clone(),
                        source: source.into(),
                    });
                }
            }
        }
        for b in &objects.role_bindings {
            let ns = b.metadata.namespace.clone().unwrap_or_default();
            let rules = match b.role_ref.kind.as_str() {
                "ClusterRole" => cluster_rules.get(&b.role_ref.name),
                "Role" => role_rules.get(&(ns.clone(), b.role_ref.name.clone())),
                _ => None,
            };
            let Some(rules) = rules else { continue };
            index.bindings += 1;
            for s in b.subjects.iter().flatten() {
                if let Some((key, who)) = subject_key(s, &ns) {
                    let source = format!(
                        "RoleBinding \"{}/{ns}\" of {} {:?} to {who}",
                        name_of(&b.metadata),
                        b.role_ref.kind,
                        b.role_ref.name
                    );
                    index
                        .namespaced
                        .entry(ns.clone())
                        .or_default()
                        .entry(key)
                        .or_default()
                        .push(Grant {
                            rules: rules.clone(),
                            source: source.into(),
                        });
                }
            }
        }
        index
    }

    /// Every grant that applies to `user` in `namespace` (cluster-wide ones first).
    fn grants<'a>(
        &'a self,
        user: &'a UserInfo,
        namespace: &'a str,
    ) -> impl Iterator<Item = &'a Grant> + 'a {
        let keys = std::iter::once(Key::User(user.name.clone()))
            .chain(user.groups.iter().map(|g| Key::Group(g.clone())))
            .collect::<Vec<_>>();
        let ns = (!namespace.is_empty())
            .then(|| self.namespaced.get(namespace))
            .flatten();
        let cluster: Vec<&Grant> = keys
            .iter()
            .filter_map(|k| self.cluster.get(k))
            .flatten()
            .collect();
        let local: Vec<&Grant> = ns
            .map(|m| keys.iter().filter_map(|k| m.get(k)).flatten().collect())
            .unwrap_or_default();
        cluster.into_iter().chain(local)
    }
}

impl Rbac {
    /// An authorizer over `objects`.
    pub fn new(objects: &Objects) -> Self {
        let rbac = Self::default();
        rbac.replace(objects);
        rbac
    }

    /// Rebuilds the index after a change to roles or bindings.
    pub fn replace(&self, objects: &Objects) {
        let index = Arc::new(Index::build(objects));
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = index;
    }

    fn current(&self) -> Arc<Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many bindings resolved to a role.
    pub fn bindings(&self) -> usize {
        self.current().bindings
    }

    /// Allow when a bound rule allows; otherwise no opinion (RBAC never denies outright).
    pub fn authorize(&self, user: &UserInfo, a: &Attributes) -> Decision {
        let index = self.current();
        for grant in index.grants(user, &a.namespace) {
            if grant.rules.iter().any(|r| rule::allows(r, a)) {
                return Decision::Allow(format!("RBAC: allowed by {}", grant.source));
            }
        }
        Decision::NoOpinion(String::new())
    }

    /// The rules `user` holds in `namespace` (cluster-wide ones included): what
    /// SelfSubjectRulesReview and `kubectl auth can-i --list` show.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<PolicyRule> {
        let index = self.current();
        let mut out: Vec<PolicyRule> = Vec::new();
        for grant in index.grants(user, namespace) {
            for r in grant.rules.iter() {
                if !out.contains(r) {
                    out.push(r.clone());
                }
            }
        }
        out
    }

    /// The first of `wanted` that `user` does not hold in `namespace`, as text: a user may only
    /// create a role (or bind one) that grants what it already has.
    pub fn uncovered(
        &self,
        user: &UserInfo,
        namespace: &str,
        wanted: &[PolicyRule],
    ) -> Option<String> {
        let held = self.rules_for(user, namespace);
        rule::uncovered(|a| held.iter().any(|r| rule::allows(r, a)), wanted)
    }

    /// The rules a role reference names (aggregation resolved), if it exists.
    pub fn role_rules(
        &self,
        namespace: &str,
        kind: &str,
        name: &str,
    ) -> Option<Arc<Vec<PolicyRule>>> {
        let index = self.current();
        match kind {
            "ClusterRole" => index.cluster_roles.get(name).cloned(),
            "Role" => index
                .roles
                .get(&(namespace.to_string(), name.to_string()))
                .cloned(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
