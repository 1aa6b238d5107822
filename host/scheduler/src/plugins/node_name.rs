//! NodeName: a pod that names its node (`spec.nodeName`) fits only there (the seed's HostName
//! predicate).

use crate::framework::{CycleState, FilterPlugin, Status};
use crate::node_info::{NodeInfo, PodInfo};

/// The NodeName filter.
pub struct NodeName;

/// Kubernetes' `ErrReason` of NodeName.
pub const ERR_REASON: &str = "node(s) didn't match the requested node name";

impl FilterPlugin for NodeName {
    fn name(&self) -> &'static str {
        "NodeName"
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match pod.pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            Some(name) if !name.is_empty() && name != node.name => Status::unresolvable(ERR_REASON),
            _ => Status::success(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{node, pod};

    #[test]
    fn only_the_named_node_fits() {
        let p = pod("p").node_name("a").info();
        let st = CycleState::default();
        assert!(NodeName
            .filter(&st, &p, &node("a", "1", "1Gi").info())
            .is_success());
        assert_eq!(
            NodeName.filter(&st, &p, &node("b", "1", "1Gi").info()),
            Status::unresolvable(ERR_REASON)
        );
        assert!(NodeName
            .filter(&st, &pod("q").info(), &node("b", "1", "1Gi").info())
            .is_success());
    }
}
