//! Matching rules shared by the plugins: label selectors, node selector terms (with `Gt`/`Lt`
//! and `matchFields`), and tolerations against taints — the semantics of Kubernetes'
//! `labels.Selector`, `nodeaffinity.NodeSelector` and `Toleration.ToleratesTaint`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Labels as Kubernetes objects carry them.
pub type Labels = BTreeMap<String, String>;

static EMPTY: Labels = BTreeMap::new();

/// The labels of an object's metadata (empty when absent).
pub fn labels_of(labels: &Option<Labels>) -> &Labels {
    labels.as_ref().unwrap_or(&EMPTY)
}

/// Does `selector` select `labels`? An empty selector selects everything (`LabelSelectorAsSelector`).
pub fn label_selector_matches(selector: &LabelSelector, labels: &Labels) -> bool {
    let by_label = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    by_label
        && selector.match_expressions.iter().flatten().all(|r| {
            let values = r.values.as_deref().unwrap_or_default();
            match r.operator.as_str() {
                "In" => labels.get(&r.key).is_some_and(|v| values.contains(v)),
                "NotIn" => labels.get(&r.key).is_none_or(|v| !values.contains(v)),
                "Exists" => labels.contains_key(&r.key),
                "DoesNotExist" => !labels.contains_key(&r.key),
                _ => false,
            }
        })
}

/// An optional selector: `None` selects nothing, as `metav1.LabelSelectorAsSelector(nil)` does.
pub fn optional_selector_matches(selector: Option<&LabelSelector>, labels: &Labels) -> bool {
    selector.is_some_and(|s| label_selector_matches(s, labels))
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&String>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let as_int = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), [bound]) = (value.and_then(|v| as_int(v)), values) else {
                return false;
            };
            let Some(bound) = as_int(bound) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// Does one node selector term match the node? A term with no requirements matches nothing.
pub fn node_selector_term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = labels_of(&node.metadata.labels);
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key)))
        && fields.iter().all(|r| {
            let name = node.metadata.name.as_ref();
            r.key == "metadata.name" && requirement_matches(r, name)
        })
}

/// Does any of the terms match the node (the terms are ORed)?
pub fn node_selector_terms_match(terms: &[NodeSelectorTerm], node: &Node) -> bool {
    terms.iter().any(|t| node_selector_term_matches(t, node))
}

/// `Toleration.ToleratesTaint`: effect (empty = all), key (empty with `Exists` = all), value.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    if let Some(key) = toleration.key.as_deref().filter(|k| !k.is_empty()) {
        if key != taint.key {
            return false;
        }
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        "Exists" => true,
        _ => false,
    }
}

/// Is the taint tolerated by any of the tolerations?
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selector_operators() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        let req = |op: &str, vals: &[&str]| LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "app".into(),
                operator: op.into(),
                values: Some(vals.iter().map(|s| s.to_string()).collect()),
            }]),
            ..Default::default()
        };
        assert!(label_selector_matches(&req("In", &["web", "db"]), &l));
        assert!(!label_selector_matches(&req("NotIn", &["web"]), &l));
        assert!(label_selector_matches(&req("Exists", &[]), &l));
        assert!(!label_selector_matches(&req("DoesNotExist", &[]), &l));
        assert!(label_selector_matches(&LabelSelector::default(), &l));
        assert!(!optional_selector_matches(None, &l));
    }

    #[test]
    fn node_requirements_gt_lt_and_empty_terms() {
        let mut node = Node::default();
        node.metadata.name = Some("n1".into());
        node.metadata.labels = Some(labels(&[("cores", "8")]));
        let term = |op: &str, v: &str| NodeSelectorTerm {
            match_expressions: Some(vec![NodeSelectorRequirement {
                key: "cores".into(),
                operator: op.into(),
                values: Some(vec![v.into()]),
            }]),
            match_fields: None,
        };
        assert!(node_selector_term_matches(&term("Gt", "4"), &node));
        assert!(!node_selector_term_matches(&term("Lt", "4"), &node));
        assert!(!node_selector_term_matches(
            &NodeSelectorTerm::default(),
            &node
        ));
    }

    #[test]
    fn tolerations() {
        let taint = Taint {
            key: "k".into(),
            value: Some("v".into()),
            effect: "NoSchedule".into(),
            time_added: None,
        };
        let t =
            |key: Option<&str>, op: &str, value: Option<&str>, effect: Option<&str>| Toleration {
                key: key.map(Into::into),
                operator: Some(op.into()),
                value: value.map(Into::into),
                effect: effect.map(Into::into),
                toleration_seconds: None,
            };
        assert!(tolerates(&t(Some("k"), "Equal", Some("v"), None), &taint));
        assert!(!tolerates(&t(Some("k"), "Equal", Some("w"), None), &taint));
        assert!(tolerates(&t(None, "Exists", None, None), &taint));
        assert!(!tolerates(
            &t(Some("k"), "Exists", None, Some("NoExecute")),
            &taint
        ));
    }
}
