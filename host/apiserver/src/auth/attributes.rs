//! A request's authorization attributes, as Kubernetes' RequestInfo derives them: the verb
//! from the method (`get`/`list`/`watch`, `create`, `update`, `patch`, `delete`/
//! `deletecollection`), and namespace, group, resource, subresource and name from the path;
//! anything else is a non-resource path with the lower-cased method as verb.

use http::Method;
use keelson_auth::Attributes;

use crate::request::{Query, RequestInfo};

/// The attributes of a request.
pub(crate) fn of_request(method: &Method, path: &str, query: &Query) -> Attributes {
    let path = match path.trim_end_matches('/') {
        "" => "/",
        p => p,
    };
    let Some(info) = RequestInfo::parse(path) else {
        return Attributes::path(&method.as_str().to_lowercase(), path);
    };
    let named = info.name.is_some();
    let watching = info.legacy_watch || query.flag("watch");
    let verb = match *method {
        Method::GET | Method::HEAD if watching => "watch",
        Method::GET | Method::HEAD if named => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => return Attributes::path(&method.as_str().to_lowercase(), path),
    };
    // A namespace's own name is its namespace, as in Kubernetes.
    let namespace = match (info.resource.as_str(), &info.name) {
        ("namespaces", Some(n)) => n.clone(),
        _ => info.namespace.clone().unwrap_or_default(),
    };
    Attributes {
        verb: verb.into(),
        resource_request: true,
        namespace,
        group: info.group,
        resource: info.resource,
        subresource: info.subresource.unwrap_or_default(),
        name: info.name.unwrap_or_default(),
        path: path.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(method: Method, path: &str, query: &str) -> Attributes {
        of_request(&method, path, &Query::parse(Some(query)))
    }

    #[test]
    fn verbs_and_scopes_follow_kubernetes() {
        let a = attrs(Method::GET, "/api/v1/namespaces/d/pods", "");
        assert_eq!(
            (a.verb.as_str(), a.namespace.as_str(), a.resource.as_str()),
            ("list", "d", "pods")
        );
        assert_eq!(
            attrs(Method::GET, "/api/v1/namespaces/d/pods", "watch=true").verb,
            "watch"
        );
        assert_eq!(
            attrs(Method::GET, "/api/v1/watch/namespaces/d/pods", "").verb,
            "watch"
        );
        let a = attrs(Method::GET, "/api/v1/namespaces/d/pods/p/log", "");
        assert_eq!(
            (a.verb.as_str(), a.subresource.as_str(), a.name.as_str()),
            ("get", "log", "p")
        );
        assert_eq!(
            attrs(Method::DELETE, "/apis/apps/v1/namespaces/d/deployments", "").verb,
            "deletecollection"
        );
        let ns = attrs(Method::GET, "/api/v1/namespaces/kube-system", "");
        assert_eq!(
            (ns.namespace.as_str(), ns.name.as_str()),
            ("kube-system", "kube-system")
        );
        let v = attrs(Method::GET, "/version", "");
        assert!(!v.resource_request);
        assert_eq!((v.verb.as_str(), v.path.as_str()), ("get", "/version"));
        assert!(!attrs(Method::GET, "/apis/apps/v1", "").resource_request);
    }
}
