//! Who may do what in Keelson. Authentication turns credentials into a [`UserInfo`]:
//! [`authn::TokenFile`] (Kubernetes' `--token-auth-file` CSV), [`authn::ServiceAccountTokens`]
//! (signed JWTs from the TokenRequest API) and [`authn::x509`] (client certificates signed by
//! the cluster's client CA). Authorization answers an [`Attributes`] question: the
//! [`node::NodeAuthorizer`] first for kubelets, then [`rbac::Rbac`] over the cluster's Roles
//! and bindings, seeded by Kubernetes' bootstrap [`policy`]. The API server owns the wiring;
//! this crate holds no store keys and does no I/O but reading its own key files.

pub mod authn;
/// The Node authorizer.
pub mod node;
pub mod policy;
pub mod rbac;

pub use keelson_apimachinery::UserInfo;

/// The group `system:masters`: every request allowed, before any authorizer runs.
pub const MASTERS: &str = "system:masters";

/// What a request asks to do (Kubernetes' `authorizer.Attributes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`,
    /// `impersonate`, `bind`, `escalate`, …
    pub verb: String,
    /// True for an API resource, false for a non-resource path such as `/version`.
    pub resource_request: bool,
    /// Namespace ("" for cluster-scoped).
    pub namespace: String,
    /// API group ("" for core).
    pub group: String,
    /// Plural resource.
    pub resource: String,
    /// Subresource ("" for none).
    pub subresource: String,
    /// Object name ("" for collections).
    pub name: String,
    /// The path, for non-resource requests.
    pub path: String,
}

impl Attributes {
    /// A resource request.
    pub fn resource(verb: &str, namespace: &str, group: &str, resource: &str, name: &str) -> Self {
        let (resource, subresource) = match resource.split_once('/') {
            Some((r, s)) => (r, s),
            None => (resource, ""),
        };
        Self {
            verb: verb.into(),
            resource_request: true,
            namespace: namespace.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            name: name.into(),
            path: String::new(),
        }
    }

    /// A non-resource request.
    pub fn path(verb: &str, path: &str) -> Self {
        Self {
            verb: verb.into(),
            path: path.into(),
            ..Default::default()
        }
    }

    /// `resource` or `resource/subresource`.
    pub fn qualified_resource(&self) -> String {
        match self.subresource.is_empty() {
            true => self.resource.clone(),
            false => format!("{}/{}", self.resource, self.subresource),
        }
    }

    /// Kubernetes' words for a denial, e.g. `User "x" cannot list resource "pods" in API group
    /// "" in the namespace "y"`.
    pub fn forbidden_message(&self, user: &str) -> String {
        if !self.resource_request {
            return format!(
                "User \"{user}\" cannot {} path \"{}\"",
                self.verb, self.path
            );
        }
        let scope = match self.namespace.is_empty() {
            true => "at the cluster scope".to_string(),
            false => format!("in the namespace \"{}\"", self.namespace),
        };
        format!(
            "User \"{user}\" cannot {} resource \"{}\" in API group \"{}\" {scope}",
            self.verb,
            self.qualified_resource(),
            self.group
        )
    }
}

/// An authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, with why (e.g. which binding).
    Allow(String),
    /// Explicitly denied: later authorizers are not asked.
    Deny(String),
    /// No opinion: the next authorizer decides; the reason is kept for the message.
    NoOpinion(String),
}

impl Decision {
    /// Whether the request may proceed.
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    /// The reason text.
    pub fn reason(&self) -> &str {
        match self {
            Decision::Allow(r) | Decision::Deny(r) | Decision::NoOpinion(r) => r,
        }
    }
}

/// Whether a user is in `system:masters`.
pub fn is_master(user: &UserInfo) -> bool {
    user.groups.iter().any(|g| g == MASTERS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_use_kubernetes_words() {
        let a = Attributes::resource("list", "y", "", "pods", "");
        assert_eq!(
            a.forbidden_message("x"),
            "User \"x\" cannot list resource \"pods\" in API group \"\" in the namespace \"y\""
        );
        let a = Attributes::resource("get", "", "apps", "deployments/scale", "d");
        assert_eq!(
            a.forbidden_message("x"),
            "User \"x\" cannot get resource \"deployments/scale\" in API group \"apps\" at the cluster scope"
        );
        assert_eq!(
            Attributes::path("get", "/metrics").forbidden_message("x"),
            "User \"x\" cannot get path \"/metrics\""
        );
    }
}
