//! Matching one RBAC `PolicyRule` against a request, with Kubernetes' wildcard semantics
//! (`*` verbs, groups, resources, `*/subresource`, trailing `*` in nonResourceURLs), and
//! `covers`: whether one set of rules grants at least everything another does (the
//! escalation check).

use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::Attributes;

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|v| v == "*" || v == want)
}

fn resource_matches(rule: &PolicyRule, resource: &str, subresource: &str) -> bool {
    let Some(resources) = &rule.resources else {
        return false;
    };
    let combined = match subresource.is_empty() {
        true => resource.to_string(),
        false => format!("{resource}/{subresource}"),
    };
    resources.iter().any(|r| {
        r == "*"
            || *r == combined
            || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
    })
}

fn name_matches(rule: &PolicyRule, name: &str) -> bool {
    match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => names.iter().any(|n| n == name),
    }
}

fn url_matches(rule: &PolicyRule, path: &str) -> bool {
    rule.non_resource_urls
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|u| {
            u == "*"
                || u == path
                || u.strip_suffix('*')
                    .is_some_and(|prefix| path.starts_with(prefix))
        })
}

/// Whether `rule` allows the request.
pub fn allows(rule: &PolicyRule, a: &Attributes) -> bool {
    if !has(&rule.verbs, &a.verb) {
        return false;
    }
    if !a.resource_request {
        return url_matches(rule, &a.path);
    }
    has(rule.api_groups.as_deref().unwrap_or_default(), &a.group)
        && resource_matches(rule, &a.resource, &a.subresource)
        && name_matches(rule, &a.name)
}

/// Breaks a rule into the single requests it grants (one verb, group, resource, name or
/// URL each), as Kubernetes' escalation check does.
fn atoms(rule: &PolicyRule) -> Vec<Attributes> {
    let mut out = Vec::new();
    for verb in &rule.verbs {
        for url in rule.non_resource_urls.as_deref().unwrap_or_default() {
            out.push(Attributes::path(verb, url));
        }
        let names = rule.resource_names.as_deref().unwrap_or_default();
        for group in rule.api_groups.as_deref().unwrap_or_default() {
            for resource in rule.resources.as_deref().unwrap_or_default() {
                let empty = [String::new()];
                let names = if names.is_empty() { &empty[..] } else { names };
                for name in names {
                    out.push(Attributes::resource(verb, "", group, resource, name));
                }
            }
        }
    }
    out
}

/// The first rule of `wanted` (as text) that `held` does not cover, if any.
pub fn uncovered<'a>(
    held: impl Fn(&Attributes) -> bool,
    wanted: impl IntoIterator<Item = &'a PolicyRule>,
) -> Option<String> {
    wanted
        .into_iter()
        .find(|rule| atoms(rule).iter().any(|a| !held(a)))
        .map(describe)
}

/// A rule in Kubernetes' compact form, e.g. `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`.
pub fn describe(rule: &PolicyRule) -> String {
    let q = |v: &[String]| {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut parts = Vec::new();
    if let Some(g) = &rule.api_groups {
        parts.push(format!("APIGroups:[{}]", q(g)));
    }
    if let Some(r) = &rule.resources {
        parts.push(format!("Resources:[{}]", q(r)));
    }
    if let Some(n) = rule.resource_names.as_deref().filter(|n| !n.is_empty()) {
        parts.push(format!("ResourceNames:[{}]", q(n)));
    }
    if let Some(u) = &rule.non_resource_urls {
        parts.push(format!("NonResourceURLs:[{}]", q(u)));
    }
    parts.push(format!("Verbs:[{}]", q(&rule.verbs)));
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rule;

    #[test]
    fn wildcards_and_subresources() {
        let r = rule(&[""], &["pods", "*/scale"], &["get"]);
        assert!(allows(
            &r,
            &Attributes::resource("get", "d", "", "pods", "x")
        ));
        assert!(!allows(
            &r,
            &Attributes::resource("get", "d", "", "pods/log", "x")
        ));
        assert!(allows(
            &r,
            &Attributes::resource("get", "d", "", "deployments/scale", "x")
        ));
        assert!(!allows(
            &r,
            &Attributes::resource("list", "d", "", "pods", "")
        ));
        assert!(!allows(
            &r,
            &Attributes::resource("get", "d", "apps", "pods", "x")
        ));
        let all = rule(&["*"], &["*"], &["*"]);
        assert!(allows(
            &all,
            &Attributes::resource("escalate", "", "rbac.authorization.k8s.io", "roles", "")
        ));
    }

    #[test]
    fn resource_names_restrict_named_requests_only() {
        let mut r = rule(&[""], &["configmaps"], &["get", "list"]);
        r.resource_names = Some(vec!["a".into()]);
        assert!(allows(
            &r,
            &Attributes::resource("get", "d", "", "configmaps", "a")
        ));
        assert!(!allows(
            &r,
            &Attributes::resource("get", "d", "", "configmaps", "b")
        ));
        assert!(!allows(
            &r,
            &Attributes::resource("list", "d", "", "configmaps", "")
        ));
    }

    #[test]
    fn non_resource_prefixes() {
        let r = crate::policy::urls(&["/apis/*", "/version"], &["get"]);
        assert!(allows(&r, &Attributes::path("get", "/apis/apps/v1")));
        assert!(allows(&r, &Attributes::path("get", "/version")));
        assert!(!allows(&r, &Attributes::path("get", "/metrics")));
        assert!(!allows(
            &r,
            &Attributes::resource("get", "", "", "pods", "")
        ));
    }

    #[test]
    fn covers_is_literal_about_wildcards() {
        let held = [rule(&[""], &["pods"], &["get", "list"])];
        let check = |a: &Attributes| held.iter().any(|r| allows(r, a));
        assert!(uncovered(check, &[rule(&[""], &["pods"], &["get"])]).is_none());
        assert!(uncovered(check, &[rule(&[""], &["*"], &["get"])]).is_some());
        assert_eq!(
            uncovered(check, &[rule(&[""], &["pods"], &["delete"])]).unwrap(),
            "{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\"]}"
        );
    }
}
