//! Request routing facts: which resource, namespace, name and subresource a path names
//! (Kubernetes' RequestInfo), and the query parameters every verb understands.

use std::collections::HashMap;

/// What a resource path names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RequestInfo {
    /// API group (empty for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Namespace from the path, if any.
    pub namespace: Option<String>,
    /// Plural resource name.
    pub resource: String,
    /// Object name, if any.
    pub name: Option<String>,
    /// Subresource (`status`, `scale`, …), if any.
    pub subresource: Option<String>,
    /// The path used the legacy `/watch/` prefix.
    pub legacy_watch: bool,
}

impl RequestInfo {
    /// Parses `/api/v1/...` or `/apis/<group>/<version>/...`; `None` when the path is not a
    /// resource path (discovery and other endpoints).
    pub(crate) fn parse(path: &str) -> Option<Self> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, version, rest) = match parts.as_slice() {
            ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
            ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
            _ => return None,
        };
        if rest.is_empty() {
            return None;
        }
        let mut rest: Vec<String> = rest.iter().map(|s| decode(s)).collect();
        let mut info = RequestInfo {
            group,
            version,
            ..Default::default()
        };
        if rest[0] == "watch" {
            info.legacy_watch = true;
            rest.remove(0);
            if rest.is_empty() {
                return None;
            }
        }
        if rest[0] == "namespaces" && rest.len() > 1 {
            info.namespace = Some(rest[1].clone());
            if rest.len() > 2 && rest[2] != "status" && rest[2] != "finalize" {
                rest.drain(0..2);
            }
        }
        info.resource = rest[0].clone();
        info.name = rest.get(1).cloned();
        info.subresource = rest.get(2).cloned();
        if rest.len() > 3 {
            return None;
        }
        if info.resource == "namespaces" {
            info.namespace = None;
        }
        Some(info)
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Query parameters, parsed once.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    map: HashMap<String, String>,
    /// The query as sent (repeated keys, e.g. exec's `command`, are kept here).
    raw: String,
}

impl Query {
    /// Parses a raw query string.
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        let map = raw
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        Self {
            map,
            raw: raw.unwrap_or_default().to_string(),
        }
    }

    /// The query string as sent.
    pub(crate) fn raw(&self) -> &str {
        &self.raw
    }
    /// A parameter's value.
    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.map.get(k).map(|s| s.as_str())
    }
    /// A boolean parameter (`true`/`1`).
    pub(crate) fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true") | Some("1"))
    }
    /// `dryRun=All`.
    pub(crate) fn dry_run(&self) -> bool {
        self.get("dryRun") == Some("All")
    }
    /// A numeric parameter.
    pub(crate) fn number(&self, k: &str) -> Option<i64> {
        self.get(k).and_then(|v| v.parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// group, version, namespace, resource, name, subresource.
    type Parsed<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
    );

    #[test]
    fn parses_paths() {
        let cases: &[(&str, Option<Parsed>)] = &[
            (
                "/api/v1/namespaces",
                Some(("", "v1", None, "namespaces", None, None)),
            ),
            (
                "/api/v1/namespaces/default",
                Some(("", "v1", None, "namespaces", Some("default"), None)),
            ),
            (
                "/api/v1/namespaces/x/status",
                Some(("", "v1", None, "namespaces", Some("x"), Some("status"))),
            ),
            (
                "/api/v1/namespaces/x/finalize",
                Some(("", "v1", None, "namespaces", Some("x"), Some("finalize"))),
            ),
            (
                "/api/v1/namespaces/ns/pods",
                Some(("", "v1", Some("ns"), "pods", None, None)),
            ),
            (
                "/api/v1/namespaces/ns/pods/p/status",
                Some(("", "v1", Some("ns"), "pods", Some("p"), Some("status"))),
            ),
            (
                "/apis/apps/v1/namespaces/ns/deployments/d/scale",
                Some((
                    "apps",
                    "v1",
                    Some("ns"),
                    "deployments",
                    Some("d"),
                    Some("scale"),
                )),
            ),
            (
                "/apis/apps/v1/deployments",
                Some(("apps", "v1", None, "deployments", None, None)),
            ),
            (
                "/api/v1/nodes/n1",
                Some(("", "v1", None, "nodes", Some("n1"), None)),
            ),
            ("/api", None),
            ("/apis/apps/v1", None),
            ("/api/v1/a/b/c/d", None),
        ];
        for (path, want) in cases {
            let got = RequestInfo::parse(path);
            let got = got.as_ref().map(|i| {
                (
                    i.group.as_str(),
                    i.version.as_str(),
                    i.namespace.as_deref(),
                    i.resource.as_str(),
                    i.name.as_deref(),
                    i.subresource.as_deref(),
                )
            });
            assert_eq!(&got, want, "{path}");
        }
        let w = RequestInfo::parse("/api/v1/watch/namespaces/ns/configmaps").unwrap();
        assert!(w.legacy_watch);
        assert_eq!(w.namespace.as_deref(), Some("ns"));
    }
}
