//! Resource arithmetic: a pod's effective requests (Kubernetes' `PodRequests`: the larger of the
//! containers' sum and each init container, sidecars included, plus overhead), the non-zero
//! defaults used for scoring, and a node's allocatable resources.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// CPU assumed for a container without a CPU request when scoring (Kubernetes' `DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory assumed for a container without a memory request when scoring (`DefaultMemoryRequest`, 200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// The resource names Kubernetes tracks as first-class fields.
pub const CPU: &str = "cpu";
/// Memory, in bytes.
pub const MEMORY: &str = "memory";
/// Local ephemeral storage, in bytes.
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
/// The number of pods a node accepts.
pub const PODS: &str = "pods";

/// An amount of each resource (Kubernetes' `framework.Resource`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in millicores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// Pod count (only meaningful for allocatable).
    pub allowed_pods: i64,
    /// Extended and other scalar resources (hugepages-*, vendor.com/gpu, …) in whole units.
    pub scalar: BTreeMap<String, i64>,
}

/// Parses a quantity into thousandths, treating garbage as zero (the API server validated it).
fn milli(q: &Quantity) -> i64 {
    keelson_apimachinery::quantity::parse(&q.0)
        .map(|m| m.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
        .unwrap_or(0)
}

/// The whole-unit value of a quantity, rounded up like `Quantity.Value()`.
fn value(q: &Quantity) -> i64 {
    let m = milli(q);
    if m >= 0 {
        (m + 999) / 1000
    } else {
        m / 1000
    }
}

impl Resources {
    /// Reads a resource list (requests, allocatable, overhead).
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Self {
        let mut r = Resources::default();
        for (name, q) in list {
            r.set(name, q);
        }
        r
    }

    fn set(&mut self, name: &str, q: &Quantity) {
        match name {
            CPU => self.milli_cpu = milli(q),
            MEMORY => self.memory = value(q),
            EPHEMERAL_STORAGE => self.ephemeral_storage = value(q),
            PODS => self.allowed_pods = value(q),
            "storage" => {}
            other => {
                self.scalar.insert(other.to_string(), value(q));
            }
        }
    }

    /// Adds `other` to `self`.
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.allowed_pods += other.allowed_pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    /// Subtracts `other` from `self`.
    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.allowed_pods -= other.allowed_pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    /// Raises each resource of `self` to at least `other`'s.
    fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }

    /// The amount of one named resource (`cpu` in millicores, others in units).
    pub fn get(&self, name: &str) -> i64 {
        match name {
            CPU => self.milli_cpu,
            MEMORY => self.memory,
            EPHEMERAL_STORAGE => self.ephemeral_storage,
            PODS => self.allowed_pods,
            other => self.scalar.get(other).copied().unwrap_or(0),
        }
    }

    /// True when nothing at all is requested.
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.values().all(|v| *v == 0)
    }
}

/// A container's requests; a limit stands in for a missing request, as API defaulting does.
fn container_requests(c: &Container, non_zero: bool) -> Resources {
    let mut r = Resources::default();
    if let Some(res) = &c.resources {
        if let Some(limits) = &res.limits {
            for (k, q) in limits {
                r.set(k, q);
            }
        }
        if let Some(requests) = &res.requests {
            for (k, q) in requests {
                r.set(k, q);
            }
        }
    }
    if non_zero {
        let requested = |name: &str| {
            c.resources.as_ref().is_some_and(|res| {
                res.requests.as_ref().is_some_and(|m| m.contains_key(name))
                    || res.limits.as_ref().is_some_and(|m| m.contains_key(name))
            })
        };
        if !requested(CPU) {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !requested(MEMORY) {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

/// A pod's effective requests, as Kubernetes' `resource.PodRequests` computes them: the sum
/// of the containers (plus restartable init containers, i.e. sidecars) or, if larger, what
/// each init container needs while the sidecars started before it run, plus the overhead.
/// With `non_zero`, containers without a CPU or memory request count the scoring defaults.
pub fn pod_requests(pod: &Pod, non_zero: bool) -> Resources {
    let Some(spec) = &pod.spec else {
        return Resources::default();
    };
    let mut reqs = Resources::default();
    for c in &spec.containers {
        reqs.add(&container_requests(c, non_zero));
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let mut r = container_requests(c, non_zero);
        if c.restart_policy.as_deref() == Some("Always") {
            reqs.add(&r);
            sidecars.add(&r);
            r = sidecars.clone();
        } else {
            r.add(&sidecars);
        }
        init_max.max_with(&r);
    }
    reqs.max_with(&init_max);
    if let Some(overhead) = &spec.overhead {
        reqs.add(&Resources::from_list(overhead));
    }
    reqs
}

/// A node's allocatable resources (capacity when allocatable is absent).
pub fn node_allocatable(node: &Node) -> Resources {
    node.status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()))
        .map(Resources::from_list)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{container, pod};

    #[test]
    fn requests_are_the_larger_of_containers_and_each_init_container_plus_overhead() {
        let mut p = pod("p")
            .container(container("a", "500m", "1Gi"))
            .container(container("b", "250m", "512Mi"))
            .init_container(container("i", "1", "256Mi"))
            .build();
        p.spec.as_mut().unwrap().overhead =
            Some([("cpu".to_string(), Quantity("10m".into()))].into());
        let r = pod_requests(&p, false);
        assert_eq!(r.milli_cpu, 1010);
        assert_eq!(r.memory, 1536 * 1024 * 1024);
    }

    #[test]
    fn sidecars_add_to_the_sum_and_to_later_init_containers() {
        let mut side = container("side", "200m", "100Mi");
        side.restart_policy = Some("Always".into());
        let p = pod("p")
            .container(container("a", "500m", "100Mi"))
            .init_container(side)
            .init_container(container("i", "600m", "100Mi"))
            .build();
        // Sum: 500m + 200m = 700m; init "i" runs beside the sidecar: 800m.
        assert_eq!(pod_requests(&p, false).milli_cpu, 800);
    }

    #[test]
    fn non_zero_requests_default_missing_cpu_and_memory() {
        let p = pod("p").container(container("a", "", "")).build();
        let r = pod_requests(&p, true);
        assert_eq!(r.milli_cpu, DEFAULT_MILLI_CPU_REQUEST);
        assert_eq!(r.memory, DEFAULT_MEMORY_REQUEST);
        assert!(pod_requests(&p, false).is_zero());
    }
}
