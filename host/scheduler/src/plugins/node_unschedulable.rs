//! NodeUnschedulable: nodes with `spec.unschedulable` (cordoned) take only pods that tolerate
//! the `node.kubernetes.io/unschedulable:NoSchedule` taint.

use k8s_openapi::api::core::v1::Taint;

use crate::framework::{CycleState, FilterPlugin, Status};
use crate::node_info::{NodeInfo, PodInfo};
use crate::selectors::tolerated;

/// The NodeUnschedulable filter.
pub struct NodeUnschedulable;

/// Kubernetes' `ErrReasonUnschedulable`.
pub const ERR_REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";

impl FilterPlugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        "NodeUnschedulable"
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let cordoned = node.node().spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
        if !cordoned {
            return Status::success();
        }
        let taint = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            value: None,
            time_added: None,
        };
        let tolerations = pod.pod.spec.as_ref().and_then(|s| s.tolerations.as_deref());
        if tolerated(tolerations.unwrap_or_default(), &taint) {
            return Status::success();
        }
        Status::unresolvable(ERR_REASON_UNSCHEDULABLE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{node, pod, toleration};

    #[test]
    fn cordoned_nodes_reject_pods_without_the_toleration() {
        let n = node("n", "1", "1Gi").unschedulable().info();
        let plain = pod("p").info();
        let s = NodeUnschedulable.filter(&CycleState::default(), &plain, &n);
        assert_eq!(s, Status::unresolvable("node(s) were unschedulable"));
        let tolerant = pod("p")
            .toleration(toleration(
                "node.kubernetes.io/unschedulable",
                "Exists",
                "",
                "NoSchedule",
            ))
            .info();
        assert!(NodeUnschedulable
            .filter(&CycleState::default(), &tolerant, &n)
            .is_success());
        let open = node("m", "1", "1Gi").info();
        assert!(NodeUnschedulable
            .filter(&CycleState::default(), &plain, &open)
            .is_success());
    }
}
