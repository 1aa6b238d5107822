//! What a pod worker knows about each container ([`ContainerState`]) and the pod status
//! computed from it, as the kubelet writes it: `phase`, the conditions PodScheduled,
//! PodReadyToStartContainers, Initialized, ContainersReady and Ready (keeping each one's
//! `lastTransitionTime` while its status holds), `initContainerStatuses` and
//! `containerStatuses` (state, lastState, ready, started, restartCount, image, imageID,
//! containerID), `hostIP(s)`, `podIP(s)` and `startTime`.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use crate::runtime::Exited;

/// One finished run of a container.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Terminated {
    pub(crate) exit: Exited,
    pub(crate) started_at: Timestamp,
    pub(crate) finished_at: Timestamp,
    pub(crate) container_id: String,
}

/// Where a container is now.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Current {
    /// Not running: about to start, backing off, or unable to start.
    Waiting {
        reason: String,
        message: Option<String>,
    },
    /// Running since `started_at`.
    Running {
        started_at: Timestamp,
        container_id: String,
    },
    /// Ended and will not run again.
    Terminated(Terminated),
}

/// A container as the worker tracks it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ContainerState {
    pub(crate) name: String,
    pub(crate) image: String,
    pub(crate) image_id: String,
    pub(crate) restart_count: i32,
    pub(crate) current: Current,
    /// The run before the current one (`lastState`).
    pub(crate) last: Option<Terminated>,
    /// A sidecar: an init container with `restartPolicy: Always`, which keeps running beside
    /// the containers and counts as initialized once started.
    pub(crate) sidecar: bool,
    /// The readiness probe's verdict on the current run (`None`: no readiness probe).
    pub(crate) probe_ready: Option<bool>,
    /// Whether the startup probe passed on the current run (`None`: no startup probe).
    pub(crate) probe_started: Option<bool>,
}

impl ContainerState {
    pub(crate) fn new(name: &str, image: &str) -> Self {
        ContainerState {
            name: name.into(),
            image: image.into(),
            image_id: String::new(),
            restart_count: 0,
            current: Current::Waiting {
                reason: "PodInitializing".into(),
                message: None,
            },
            last: None,
            sidecar: false,
            probe_ready: None,
            probe_started: None,
        }
    }

    /// Running and, with a readiness probe, found ready by it (and started).
    pub(crate) fn ready(&self) -> bool {
        self.started() && self.probe_ready.unwrap_or(true)
    }

    /// Running and, with a startup probe, past it.
    pub(crate) fn started(&self) -> bool {
        self.running() && self.probe_started.unwrap_or(true)
    }

    /// An init container is done initializing: succeeded, or (a sidecar) started.
    pub(crate) fn initialized(&self) -> bool {
        match self.sidecar {
            true => self.running() || self.last.is_some() || self.terminated(),
            false => self.succeeded(),
        }
    }

    pub(crate) fn running(&self) -> bool {
        matches!(self.current, Current::Running { .. })
    }

    /// Ended for good with exit code 0.
    pub(crate) fn succeeded(&self) -> bool {
        matches!(&self.current, Current::Terminated(t) if t.exit.code == 0)
    }

    pub(crate) fn terminated(&self) -> bool {
        matches!(self.current, Current::Terminated(_))
    }
}

fn time(t: &Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn terminated_json(t: &Terminated) -> Value {
    json!({"terminated": {
        "exitCode": t.exit.code, "reason": t.exit.reason, "message": t.exit.message,
        "startedAt": time(&t.started_at), "finishedAt": time(&t.finished_at),
        "containerID": t.container_id,
    }})
}

/// One entry of `containerStatuses` / `initContainerStatuses`.
pub(crate) fn container_status(c: &ContainerState) -> Value {
    let (state, container_id) = match &c.current {
        Current::Waiting { reason, message } => (
            json!({"waiting": {"reason": reason, "message": message}}),
            c.last.as_ref().map(|t| t.container_id.clone()),
        ),
        Current::Running {
            started_at,
            container_id,
        } => (
            json!({"running": {"startedAt": time(started_at)}}),
            Some(container_id.clone()),
        ),
        Current::Terminated(t) => (terminated_json(t), Some(t.container_id.clone())),
    };
    let mut status = json!({
        "name": c.name, "image": c.image, "imageID": c.image_id,
        "ready": c.ready(), "started": c.started(), "restartCount": c.restart_count,
        "state": state,
        "lastState": c.last.as_ref().map(terminated_json).unwrap_or_else(|| json!({})),
    });
    if let Some(id) = container_id {
        status["containerID"] = json!(id);
    }
    status
}

/// `phase` from the containers and the restart policy.
pub(crate) fn phase(
    init: &[ContainerState],
    containers: &[ContainerState],
    policy: &str,
) -> &'static str {
    let init_failed = init
        .iter()
        .any(|c| !c.sidecar && matches!(&c.current, Current::Terminated(t) if t.exit.code != 0));
    if init_failed {
        return "Failed";
    }
    if !init.iter().all(ContainerState::initialized) {
        return "Pending";
    }
    let ever_started = |c: &ContainerState| c.running() || c.terminated() || c.last.is_some();
    if !containers.iter().all(ever_started) {
        return "Pending";
    }
    if containers.iter().all(ContainerState::terminated) && policy != "Always" {
        return if containers.iter().all(ContainerState::succeeded) {
            "Succeeded"
        } else {
            "Failed"
        };
    }
    "Running"
}

/// The pod's `status`, given the worker's view and the status the API has now.
pub(crate) fn pod_status(
    pod: &Pod,
    init: &[ContainerState],
    containers: &[ContainerState],
    host_ip: &str,
    pod_ip: &str,
    start_time: &Timestamp,
    sandbox_ready: bool,
) -> Value {
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let phase = phase(init, containers, policy);
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let initialized = init.iter().all(ContainerState::initialized);
    let sidecars_up = init
        .iter()
        .filter(|c| c.sidecar)
        .all(ContainerState::running);
    let ready =
        !terminal && initialized && sidecars_up && containers.iter().all(ContainerState::ready);
    let not_ready_reason = |what: &str| {
        let names: Vec<&str> = containers
            .iter()
            .filter(|c| !c.ready())
            .map(|c| c.name.as_str())
            .collect();
        match terminal {
            true => (Some("PodCompleted".to_string()), None),
            false => (
                Some("ContainersNotReady".to_string()),
                Some(format!("{what} with unready status: [{}]", names.join(" "))),
            ),
        }
    };
    let old = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let now = Timestamp::now();
    let condition = |type_: &str, ok: bool, why: (Option<String>, Option<String>)| {
        let status = if ok { "True" } else { "False" };
        let since = old
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| time(&t.0))
            .unwrap_or_else(|| time(&now));
        let (reason, message) = if ok { (None, None) } else { why };
        json!({"type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": since,
               "reason": reason, "message": message})
    };
    let init_reason = if initialized || terminal {
        (terminal.then(|| "PodCompleted".to_string()), None)
    } else {
        let pending: Vec<&str> = init
            .iter()
            .filter(|c| !c.initialized())
            .map(|c| c.name.as_str())
            .collect();
        (
            Some("ContainersNotInitialized".to_string()),
            Some(format!(
                "containers with incomplete status: [{}]",
                pending.join(" ")
            )),
        )
    };
    let mut conditions = vec![
        condition(
            "PodReadyToStartContainers",
            sandbox_ready && !terminal,
            (None, None),
        ),
        condition("Initialized", initialized, init_reason),
        condition("Ready", ready, not_ready_reason("containers")),
        condition("ContainersReady", ready, not_ready_reason("containers")),
        condition("PodScheduled", true, (None, None)),
    ];
    if initialized && terminal {
        conditions[1]["reason"] = json!("PodCompleted");
    }
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
        "startTime": time(start_time),
        "containerStatuses": containers.iter().map(container_status).collect::<Vec<_>>(),
    });
    if !init.is_empty() {
        status["initContainerStatuses"] =
            json!(init.iter().map(container_status).collect::<Vec<_>>());
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Exited;

    fn ended(name: &str, code: i32) -> ContainerState {
        let mut c = ContainerState::new(name, "demo:1");
        c.current = Current::Terminated(Terminated {
            exit: Exited::with_code(code),
            started_at: Timestamp::now(),
            finished_at: Timestamp::now(),
            container_id: format!("wasm://{name}"),
        });
        c
    }

    fn running(name: &str) -> ContainerState {
        let mut c = ContainerState::new(name, "demo:1");
        c.current = Current::Running {
            started_at: Timestamp::now(),
            container_id: format!("wasm://{name}"),
        };
        c
    }

    #[test]
    fn phases() {
        let waiting = ContainerState::new("c", "demo:1");
        let cases: [(&[ContainerState], &[ContainerState], &str, &str); 8] = [
            (&[], std::slice::from_ref(&waiting), "Always", "Pending"),
            (
                std::slice::from_ref(&waiting),
                std::slice::from_ref(&waiting),
                "Never",
                "Pending",
            ),
            (
                &[ended("i", 1)],
                std::slice::from_ref(&waiting),
                "Never",
                "Failed",
            ),
            (&[ended("i", 0)], &[running("c")], "Always", "Running"),
            (&[], &[ended("a", 0), ended("b", 0)], "Never", "Succeeded"),
            (&[], &[ended("a", 0), ended("b", 2)], "OnFailure", "Failed"),
            (&[], &[ended("a", 0), running("b")], "Never", "Running"),
            (&[], &[ended("a", 0)], "Always", "Running"),
        ];
        for (init, containers, policy, want) in cases {
            assert_eq!(
                phase(init, containers, policy),
                want,
                "{init:?} {containers:?} {policy}"
            );
        }
    }

    #[test]
    fn sidecars_count_as_initialized_once_started_and_not_for_the_phase() {
        let mut sidecar = running("proxy");
        sidecar.sidecar = true;
        assert_eq!(
            phase(std::slice::from_ref(&sidecar), &[running("c")], "Never"),
            "Running"
        );
        assert_eq!(
            phase(std::slice::from_ref(&sidecar), &[ended("c", 0)], "Never"),
            "Succeeded"
        );
        let mut stopped = ended("proxy", 143);
        stopped.sidecar = true;
        assert_eq!(phase(&[stopped], &[ended("c", 0)], "Never"), "Succeeded");
        let mut waiting = ContainerState::new("proxy", "demo:1");
        waiting.sidecar = true;
        assert_eq!(
            phase(&[waiting], &[ContainerState::new("c", "demo:1")], "Never"),
            "Pending"
        );
    }

    #[test]
    fn status_of_a_crash_looping_container() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"restartPolicy": "Always", "containers": [{"name": "c"}]},
            "status": {"conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}]}
        }))
        .unwrap();
        let mut c = ended("c", 3);
        c.last = match c.current.clone() {
            Current::Terminated(t) => Some(t),
            _ => None,
        };
        c.restart_count = 2;
        c.current = Current::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: Some("back-off 20s restarting failed container=c pod=p_default(u)".into()),
        };
        let s = pod_status(
            &pod,
            &[],
            &[c],
            "10.0.0.1",
            "10.0.0.1",
            &Timestamp::now(),
            true,
        );
        assert_eq!(s["phase"], "Running");
        let cs = &s["containerStatuses"][0];
        assert_eq!(cs["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(cs["lastState"]["terminated"]["exitCode"], 3);
        assert_eq!(cs["restartCount"], 2);
        assert_eq!(cs["ready"], false);
        assert_eq!(s["podIP"], "10.0.0.1");
        let cond = |t: &str| {
            s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == t)
                .unwrap()
                .clone()
        };
        assert_eq!(cond("Ready")["status"], "False");
        assert_eq!(cond("Ready")["reason"], "ContainersNotReady");
        assert_eq!(cond("Initialized")["status"], "True");
        // An unchanged condition keeps its transition time.
        assert_eq!(
            cond("PodScheduled")["lastTransitionTime"],
            "2020-01-01T00:00:00Z"
        );
    }

    #[test]
    fn status_of_a_finished_pod_with_init_containers() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c"}]}
        }))
        .unwrap();
        let s = pod_status(
            &pod,
            &[ended("i", 0)],
            &[ended("c", 0)],
            "10.0.0.1",
            "10.0.0.1",
            &Timestamp::now(),
            true,
        );
        assert_eq!(s["phase"], "Succeeded");
        assert_eq!(
            s["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        assert_eq!(
            s["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            0
        );
        assert_eq!(s["conditions"][2]["reason"], "PodCompleted");
    }
}
