//! Admission rules as webhooks and WasmPlugins declare them (`operations`, `apiGroups`,
//! `apiVersions`, `resources` with `*` and `<resource>/<subresource>` forms, `scope`).

use serde_json::Value;

/// What a rule is matched against.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub operation: &'a str,
    /// API group ("" for core).
    pub group: &'a str,
    /// API version.
    pub version: &'a str,
    /// Plural resource.
    pub resource: &'a str,
    /// Subresource, "" for the main resource.
    pub subresource: &'a str,
    /// Is the resource namespaced?
    pub namespaced: bool,
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn listed(list: &[String], value: &str) -> bool {
    list.iter().any(|x| x == "*" || x == value)
}

/// Does one rule (`{operations, apiGroups, apiVersions, resources, scope}`) match?
pub fn rule_matches(rule: &Value, req: &Request<'_>) -> bool {
    let resources = strings(rule, "resources");
    let resource_ok = resources.iter().any(|r| {
        let (res, sub) = r.split_once('/').unwrap_or((r.as_str(), ""));
        let res_ok = res == "*" || res == req.resource;
        let sub_ok = if r.contains('/') {
            sub == "*" || sub == req.subresource
        } else {
            req.subresource.is_empty()
        };
        // `*` alone matches main resources only; `*/*` matches everything.
        res_ok && sub_ok
    });
    let scope_ok = match rule.get("scope").and_then(Value::as_str).unwrap_or("*") {
        "Cluster" => !req.namespaced,
        "Namespaced" => req.namespaced,
        _ => true,
    };
    listed(&strings(rule, "operations"), req.operation)
        && listed(&strings(rule, "apiGroups"), req.group)
        && listed(&strings(rule, "apiVersions"), req.version)
        && resource_ok
        && scope_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_rules() {
        let req = Request {
            operation: "CREATE",
            group: "",
            version: "v1",
            resource: "pods",
            subresource: "",
            namespaced: true,
        };
        let status = Request {
            subresource: "status",
            operation: "UPDATE",
            ..req
        };
        let rule = |ops: &[&str], res: &[&str], scope: &str| json!({"operations": ops, "apiGroups": [""], "apiVersions": ["v1"], "resources": res, "scope": scope});
        let cases = [
            (rule(&["CREATE"], &["pods"], "*"), req, true),
            (rule(&["UPDATE"], &["pods"], "*"), req, false),
            (rule(&["*"], &["*"], "*"), req, true),
            (rule(&["*"], &["*"], "*"), status, false),
            (rule(&["*"], &["pods/*"], "*"), status, true),
            (rule(&["*"], &["pods/status"], "*"), status, true),
            (rule(&["*"], &["*/*"], "*"), status, true),
            (rule(&["CREATE"], &["pods"], "Cluster"), req, false),
            (
                rule(&["CREATE"], &["deployments"], "Namespaced"),
                req,
                false,
            ),
        ];
        for (i, (r, q, want)) in cases.iter().enumerate() {
            assert_eq!(rule_matches(r, q), *want, "case {i}: {r}");
        }
    }
}
