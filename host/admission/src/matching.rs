//! Which requests a webhook or a Wasm plugin is called for: its `rules` (operations, apiGroups,
//! apiVersions, resources with `*`, `pods/*` and `*/scale` forms, scope), `namespaceSelector`
//! and `objectSelector` — Kubernetes' `rules.Matcher` and `namespace.Matcher`.

use keelson_apimachinery::rules::{self, Request};
use keelson_apimachinery::selector::LabelSelector;
use serde_json::{Map, Value};

use crate::{Api, ApiAccessError, Attributes, Operation};

/// Is this request about a Namespace object itself?
fn is_namespace(a: &Attributes) -> bool {
    a.group.is_empty() && a.resource == "namespaces"
}

/// Does one `RuleWithOperations` match the request?
pub(crate) fn rule_matches(rule: &Value, a: &Attributes) -> bool {
    let req = Request {
        operation: a.operation.as_str(),
        group: &a.group,
        version: &a.version,
        resource: &a.resource,
        subresource: &a.subresource,
        namespaced: !is_namespace(a) && !a.namespace.is_empty(),
    };
    rules::rule_matches(rule, &req)
}

/// Does a `LabelSelector` select these labels? An absent or empty selector selects everything;
/// an invalid one selects nothing.
pub(crate) fn selects(selector: Option<&Value>, labels: &Map<String, Value>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return true;
    };
    LabelSelector::from_object(Some(selector)).is_ok_and(|s| s.matches(Some(labels)))
}

fn labels(obj: Option<&Value>) -> Map<String, Value> {
    obj.and_then(|o| o.pointer("/metadata/labels"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// `objectSelector`: matches when the new or the old object has matching labels.
pub(crate) fn object_selected(hook: &Value, a: &Attributes) -> bool {
    let sel = hook.get("objectSelector");
    if sel.is_none_or(|s| s.is_null() || s.as_object().is_some_and(Map::is_empty)) {
        return true;
    }
    [a.object.as_ref(), a.old_object.as_ref()]
        .into_iter()
        .flatten()
        .any(|o| selects(sel, &labels(Some(o))))
}

/// `namespaceSelector`: cluster-scoped objects other than namespaces always match; a Namespace
/// is matched on its own labels; everything else on its namespace's labels.
pub(crate) async fn namespace_selected(
    hook: &Value,
    a: &Attributes,
    api: &dyn Api,
) -> Result<bool, ApiAccessError> {
    let sel = hook.get("namespaceSelector");
    if sel.is_none_or(|s| s.is_null() || s.as_object().is_some_and(Map::is_empty)) {
        return Ok(true);
    }
    if is_namespace(a)
        && a.subresource.is_empty()
        && matches!(a.operation, Operation::Create | Operation::Update)
    {
        return Ok(selects(sel, &labels(a.object.as_ref())));
    }
    let name = if is_namespace(a) {
        &a.name
    } else {
        &a.namespace
    };
    if name.is_empty() {
        return Ok(true);
    }
    let ns = api.get(&format!("/api/v1/namespaces/{name}")).await?;
    Ok(selects(sel, &labels(ns.as_ref())))
}

/// Is `hook` (one entry of a configuration's `webhooks`) called for this request?
pub async fn hook_matches(
    hook: &Value,
    a: &Attributes,
    api: &dyn Api,
) -> Result<bool, ApiAccessError> {
    let rules = hook
        .get("rules")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    if !rules.iter().any(|r| rule_matches(r, a)) || !object_selected(hook, a) {
        return Ok(false);
    }
    namespace_selected(hook, a, api).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plugins::fake_api::FakeApi;
    use crate::UserInfo;

    fn attrs(
        op: Operation,
        group: &str,
        resource: &str,
        sub: &str,
        ns: &str,
        labels: Value,
    ) -> Attributes {
        Attributes {
            encoded: Default::default(),
            operation: op,
            group: group.into(),
            version: "v1".into(),
            kind: "X".into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: "n".into(),
            object: Some(json!({"metadata": {"name": "n", "labels": labels}})),
            old_object: None,
            user: UserInfo::default(),
            dry_run: false,
        }
    }

    #[test]
    fn rules() {
        let pods = attrs(Operation::Create, "", "pods", "", "ns", json!({}));
        let status = attrs(Operation::Update, "", "pods", "status", "ns", json!({}));
        let scale = attrs(
            Operation::Update,
            "apps",
            "deployments",
            "scale",
            "ns",
            json!({}),
        );
        let r = |ops: Value, groups: Value, res: Value| json!({"operations": ops, "apiGroups": groups, "apiVersions": ["*"], "resources": res});
        assert!(rule_matches(
            &r(json!(["CREATE"]), json!([""]), json!(["pods"])),
            &pods
        ));
        assert!(!rule_matches(
            &r(json!(["UPDATE"]), json!([""]), json!(["pods"])),
            &pods
        ));
        assert!(!rule_matches(
            &r(json!(["*"]), json!(["apps"]), json!(["pods"])),
            &pods
        ));
        assert!(rule_matches(
            &r(json!(["*"]), json!(["*"]), json!(["*"])),
            &pods
        ));
        assert!(
            !rule_matches(&r(json!(["*"]), json!(["*"]), json!(["*"])), &status),
            "`*` is main resources only"
        );
        assert!(rule_matches(
            &r(json!(["*"]), json!(["*"]), json!(["pods/*"])),
            &status
        ));
        assert!(rule_matches(
            &r(json!(["*"]), json!(["*"]), json!(["pods/status"])),
            &status
        ));
        assert!(!rule_matches(
            &r(json!(["*"]), json!(["*"]), json!(["pods"])),
            &status
        ));
        assert!(rule_matches(
            &r(json!(["*"]), json!(["*"]), json!(["*/scale"])),
            &scale
        ));
        assert!(rule_matches(
            &r(json!(["*"]), json!(["*"]), json!(["*/*"])),
            &scale
        ));
        let mut cluster = r(json!(["*"]), json!(["*"]), json!(["*"]));
        cluster["scope"] = json!("Cluster");
        assert!(!rule_matches(&cluster, &pods));
        let ns = attrs(Operation::Create, "", "namespaces", "", "", json!({}));
        assert!(rule_matches(&cluster, &ns));
        cluster["scope"] = json!("Namespaced");
        assert!(rule_matches(&cluster, &pods) && !rule_matches(&cluster, &ns));
    }

    #[test]
    fn label_selectors() {
        let labels = json!({"app": "web", "tier": "front"});
        let labels = labels.as_object().unwrap();
        assert!(selects(None, labels));
        assert!(selects(Some(&json!({})), labels));
        assert!(selects(
            Some(&json!({"matchLabels": {"app": "web"}})),
            labels
        ));
        assert!(!selects(
            Some(&json!({"matchLabels": {"app": "db"}})),
            labels
        ));
        let e = |op: &str, key: &str, values: Value| json!({"matchExpressions": [{"key": key, "operator": op, "values": values}]});
        assert!(selects(
            Some(&e("In", "tier", json!(["front", "back"]))),
            labels
        ));
        assert!(!selects(Some(&e("In", "zone", json!(["a"]))), labels));
        assert!(selects(Some(&e("NotIn", "zone", json!(["a"]))), labels));
        assert!(!selects(Some(&e("NotIn", "app", json!(["web"]))), labels));
        assert!(selects(Some(&e("Exists", "app", json!([]))), labels));
        assert!(selects(Some(&e("DoesNotExist", "zone", json!([]))), labels));
        assert!(!selects(Some(&e("Bogus", "app", json!([]))), labels));
    }

    #[tokio::test]
    async fn selectors_on_objects_and_namespaces() {
        let api = FakeApi::new();
        api.put(
            "/api/v1/namespaces/prod",
            json!({"metadata": {"name": "prod", "labels": {"env": "prod"}}}),
        );
        api.put(
            "/api/v1/namespaces/dev",
            json!({"metadata": {"name": "dev"}}),
        );
        let hook = json!({
            "rules": [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}],
            "namespaceSelector": {"matchLabels": {"env": "prod"}},
            "objectSelector": {"matchExpressions": [{"key": "deny", "operator": "Exists"}]},
        });
        let a = attrs(
            Operation::Create,
            "",
            "configmaps",
            "",
            "prod",
            json!({"deny": "yes"}),
        );
        assert!(hook_matches(&hook, &a, &api).await.unwrap());
        let a = attrs(
            Operation::Create,
            "",
            "configmaps",
            "",
            "dev",
            json!({"deny": "yes"}),
        );
        assert!(!hook_matches(&hook, &a, &api).await.unwrap());
        let a = attrs(Operation::Create, "", "configmaps", "", "prod", json!({}));
        assert!(!hook_matches(&hook, &a, &api).await.unwrap());
        let mut a = attrs(Operation::Update, "", "configmaps", "", "prod", json!({}));
        a.old_object = Some(json!({"metadata": {"labels": {"deny": "1"}}}));
        assert!(
            hook_matches(&hook, &a, &api).await.unwrap(),
            "the old object's labels count too"
        );
        let ns = attrs(
            Operation::Create,
            "",
            "namespaces",
            "",
            "",
            json!({"env": "prod", "deny": "x"}),
        );
        assert!(
            hook_matches(&hook, &ns, &api).await.unwrap(),
            "a namespace is matched on its own labels"
        );
        let node = attrs(Operation::Create, "", "nodes", "", "", json!({"deny": "x"}));
        assert!(
            hook_matches(&hook, &node, &api).await.unwrap(),
            "cluster-scoped objects ignore namespaceSelector"
        );
    }
}
