//! Who is calling: the authenticated user a request runs as, and the identities Keelson's own
//! components use (the names Kubernetes gives its components, so RBAC and NodeRestriction
//! treat them alike).

/// An authenticated caller: a user name and its groups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct UserInfo {
    /// User name, e.g. `admin` or `system:kube-scheduler`.
    pub name: String,
    /// Groups, e.g. `system:masters`.
    pub groups: Vec<String>,
}

/// Group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";

impl UserInfo {
    /// A user with the given groups plus `system:authenticated`.
    pub fn new(name: impl Into<String>, groups: &[&str]) -> Self {
        let mut groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.into());
        }
        Self {
            name: name.into(),
            groups,
        }
    }

    /// The cluster administrator (`system:masters`).
    pub fn admin() -> Self {
        Self::new("admin", &["system:masters"])
    }

    /// The controller manager (`system:kube-controller-manager`).
    pub fn controller_manager() -> Self {
        Self::new("system:kube-controller-manager", &[])
    }

    /// The scheduler (`system:kube-scheduler`).
    pub fn scheduler() -> Self {
        Self::new("system:kube-scheduler", &[])
    }

    /// A node's agent: `system:node:<name>` in group `system:nodes`.
    pub fn node(name: &str) -> Self {
        Self::new(format!("system:node:{name}"), &["system:nodes"])
    }

    /// A ServiceAccount: `system:serviceaccount:<ns>:<name>` in groups `system:serviceaccounts`
    /// and `system:serviceaccounts:<ns>`.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        let ns_group = format!("system:serviceaccounts:{namespace}");
        Self::new(
            format!("system:serviceaccount:{namespace}:{name}"),
            &["system:serviceaccounts", &ns_group],
        )
    }

    /// The user agent an in-process component sends (its field manager): the part after the
    /// last `:` of the user name, e.g. `kube-scheduler`.
    pub fn user_agent(&self) -> String {
        let short = self.name.rsplit(':').next().unwrap_or(&self.name);
        format!("{short}/keelson")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_identities_follow_kubernetes_names() {
        let n = UserInfo::node("n1");
        assert_eq!(n.name, "system:node:n1");
        assert_eq!(n.groups, ["system:nodes", AUTHENTICATED]);
        let sa = UserInfo::service_account("kube-system", "gc");
        assert_eq!(sa.name, "system:serviceaccount:kube-system:gc");
        assert!(sa
            .groups
            .contains(&"system:serviceaccounts:kube-system".to_string()));
        assert_eq!(UserInfo::scheduler().user_agent(), "kube-scheduler/keelson");
    }
}
