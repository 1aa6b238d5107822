//! NodePorts: a pod's host ports must be free on the node (the seed's PodFitsHostPorts); a
//! port conflicts on the same protocol when either host IP is the wildcard or both are equal.

use crate::framework::{CycleState, FilterPlugin, Pre, Status};
use crate::node_info::{NodeInfo, PodInfo, Snapshot};

/// The NodePorts filter.
pub struct NodePorts;

/// Kubernetes' `ErrReason` of NodePorts.
pub const ERR_REASON: &str = "node(s) didn't have free ports for the requested pod ports";

impl FilterPlugin for NodePorts {
    fn name(&self) -> &'static str {
        "NodePorts"
    }

    fn pre_filter(&self, _: &mut CycleState, pod: &PodInfo, _: &Snapshot) -> Result<Pre, Status> {
        Ok(if pod.host_ports.is_empty() {
            Pre::Skip
        } else {
            Pre::Run
        })
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let conflict = pod
            .host_ports
            .iter()
            .any(|want| node.used_ports.iter().any(|used| used.conflicts(want)));
        if conflict {
            Status::unschedulable(ERR_REASON)
        } else {
            Status::success()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{node, pod};

    #[test]
    fn host_port_conflicts() {
        let st = CycleState::default();
        let mut n = node("n", "1", "1Gi").info();
        n.add_pod(pod("web").host_port(8080, "", "TCP").info());
        assert_eq!(
            NodePorts.filter(&st, &pod("p").host_port(8080, "", "TCP").info(), &n),
            Status::unschedulable(ERR_REASON)
        );
        // Same port, other protocol: free.
        assert!(NodePorts
            .filter(&st, &pod("p").host_port(8080, "", "UDP").info(), &n)
            .is_success());
        // A specific IP conflicts with the wildcard already in use.
        assert!(!NodePorts
            .filter(&st, &pod("p").host_port(8080, "10.0.0.1", "TCP").info(), &n)
            .is_success());
        let mut m = node("m", "1", "1Gi").info();
        m.add_pod(pod("a").host_port(9090, "10.0.0.1", "TCP").info());
        assert!(NodePorts
            .filter(&st, &pod("p").host_port(9090, "10.0.0.2", "TCP").info(), &m)
            .is_success());
    }
}
