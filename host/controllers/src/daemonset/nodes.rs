//! Which nodes a DaemonSet's pod belongs on: the template's nodeSelector and required node
//! affinity (matchExpressions on labels), and the node's NoSchedule/NoExecute taints against
//! the pod's tolerations plus the ones Kubernetes adds to every daemon pod.

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, PodSpec, Taint, Toleration};

/// Tolerations the DaemonSet controller adds to its pods (Kubernetes'
/// `AddOrUpdateDaemonPodTolerations`), so daemons run on not-ready, pressured or cordoned nodes.
pub(crate) fn daemon_tolerations() -> Vec<Toleration> {
    let exists = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    };
    vec![
        exists("node.kubernetes.io/not-ready", "NoExecute"),
        exists("node.kubernetes.io/unreachable", "NoExecute"),
        exists("node.kubernetes.io/disk-pressure", "NoSchedule"),
        exists("node.kubernetes.io/memory-pressure", "NoSchedule"),
        exists("node.kubernetes.io/pid-pressure", "NoSchedule"),
        exists("node.kubernetes.io/unschedulable", "NoSchedule"),
    ]
}

/// Kubernetes' `ToleratesTaint`.
pub(crate) fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect_ok = t
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == taint.effect);
    let key = t.key.as_deref().unwrap_or_default();
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => effect_ok && (key.is_empty() || key == taint.key),
        _ => {
            effect_ok
                && key == taint.key
                && t.value.as_deref().unwrap_or_default()
                    == taint.value.as_deref().unwrap_or_default()
        }
    }
}

fn requirement_holds(r: &NodeSelectorRequirement, node: &Node) -> bool {
    let value = node.metadata.labels.as_ref().and_then(|l| l.get(&r.key));
    let values = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        op @ ("Gt" | "Lt") => {
            let parse = |s: &str| s.parse::<i64>().ok();
            match (
                value.and_then(|v| parse(v)),
                values.first().and_then(|v| parse(v)),
            ) {
                (Some(v), Some(bound)) if op == "Gt" => v > bound,
                (Some(v), Some(bound)) => v < bound,
                _ => false,
            }
        }
        _ => false,
    }
}

/// Whether a daemon pod with `spec` should run on `node`.
pub(crate) fn eligible(spec: &PodSpec, node: &Node) -> bool {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let selected = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let affine = required.is_none_or(|r| {
        r.node_selector_terms.iter().any(|term| {
            term.match_expressions
                .iter()
                .flatten()
                .all(|e| requirement_holds(e, node))
        })
    });
    let mut tolerations = spec.tolerations.clone().unwrap_or_default();
    tolerations.extend(daemon_tolerations());
    let tolerated = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .all(|taint| tolerations.iter().any(|t| tolerates(t, taint)));
    selected && affine && tolerated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(labels: serde_json::Value, taints: serde_json::Value) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n", "labels": labels},
            "spec": {"taints": taints},
        }))
        .unwrap()
    }

    #[test]
    fn selectors_and_taints_decide() {
        let plain: PodSpec = serde_json::from_value(serde_json::json!({"containers": []})).unwrap();
        let picky: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [], "nodeSelector": {"disk": "ssd"},
        }))
        .unwrap();
        let ssd = node(serde_json::json!({"disk": "ssd"}), serde_json::json!([]));
        let tainted = node(
            serde_json::json!({}),
            serde_json::json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
        );
        let cordoned = node(
            serde_json::json!({}),
            serde_json::json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
        );
        assert!(eligible(&plain, &ssd));
        assert!(eligible(&picky, &ssd));
        assert!(!eligible(&picky, &tainted));
        assert!(!eligible(&plain, &tainted));
        assert!(
            eligible(&plain, &cordoned),
            "daemons tolerate cordoned nodes"
        );
        let tolerant: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [],
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db"}],
        }))
        .unwrap();
        assert!(eligible(&tolerant, &tainted));
    }
}
