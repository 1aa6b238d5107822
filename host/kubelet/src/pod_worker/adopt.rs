//! Adoption after an agent restart: a pod worker's view of each container rebuilt from the
//! status the API holds (restart counts, finished runs, the run lost with the old agent), and
//! the restart-policy rule deciding which ended runs start again.

use k8s_openapi::api::core::v1::{Container, ContainerStateTerminated, ContainerStatus};
use k8s_openapi::jiff::Timestamp;

use crate::runtime::Exited;
use crate::status::{ContainerState, Current, Terminated};

/// The worker's view of a container from the status the API holds: what ran before an agent
/// restart stays counted; a run that was in progress is gone with the old agent and counts as
/// ended (exit 137).
pub(super) fn adopt(
    c: &Container,
    statuses: Option<&Vec<ContainerStatus>>,
) -> (ContainerState, u32) {
    let mut state = ContainerState::new(&c.name, c.image.as_deref().unwrap_or_default());
    let Some(s) = statuses.into_iter().flatten().find(|s| s.name == c.name) else {
        return (state, 0);
    };
    state.restart_count = s.restart_count;
    state.image_id = s.image_id.clone();
    let to_term = |t: &ContainerStateTerminated| Terminated {
        exit: Exited {
            code: t.exit_code,
            reason: t.reason.clone().unwrap_or_else(|| "Error".into()),
            message: t.message.clone(),
        },
        started_at: t
            .started_at
            .as_ref()
            .map(|t| t.0)
            .unwrap_or_else(Timestamp::now),
        finished_at: t
            .finished_at
            .as_ref()
            .map(|t| t.0)
            .unwrap_or_else(Timestamp::now),
        container_id: t.container_id.clone().unwrap_or_default(),
    };
    state.last = s
        .last_state
        .as_ref()
        .and_then(|l| l.terminated.as_ref())
        .map(to_term);
    let now_state = s.state.as_ref();
    let runs = if let Some(t) = now_state.and_then(|st| st.terminated.as_ref()) {
        state.current = Current::Terminated(to_term(t));
        s.restart_count as u32 + 1
    } else if let Some(r) = now_state.and_then(|st| st.running.as_ref()) {
        state.current = Current::Terminated(Terminated {
            exit: Exited {
                code: 137,
                reason: "Error".into(),
                message: Some("the agent restarted while the container ran".into()),
            },
            started_at: r
                .started_at
                .as_ref()
                .map(|t| t.0)
                .unwrap_or_else(Timestamp::now),
            finished_at: Timestamp::now(),
            container_id: s.container_id.clone().unwrap_or_default(),
        });
        s.restart_count as u32 + 1
    } else if state.last.is_some() {
        s.restart_count as u32 + 1
    } else {
        0
    };
    (state, runs)
}

/// Whether `policy` restarts an (init) container that ended with `code`.
pub(super) fn restarts(init: bool, policy: &str, code: i32) -> bool {
    match (init, policy) {
        (true, "Never") => false,
        (true, _) => code != 0,
        (false, "Always") => true,
        (false, "OnFailure") => code != 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn restart_policy_decides_per_container_kind() {
        for (init, policy, code, want) in [
            (false, "Always", 0, true),
            (false, "OnFailure", 0, false),
            (false, "OnFailure", 1, true),
            (false, "Never", 1, false),
            (true, "Always", 0, false),
            (true, "Always", 1, true),
            (true, "Never", 1, false),
        ] {
            assert_eq!(restarts(init, policy, code), want, "{init} {policy} {code}");
        }
    }

    #[test]
    fn adoption_keeps_counts_and_counts_a_lost_run() {
        let c: Container = serde_json::from_value(json!({"name": "c", "image": "demo:1"})).unwrap();
        let statuses: Vec<ContainerStatus> = serde_json::from_value(json!([{
            "name": "c", "image": "demo:1", "imageID": "demo@sha256:1", "ready": true, "restartCount": 2,
            "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}
        }]))
        .unwrap();
        let (state, runs) = adopt(&c, Some(&statuses));
        assert_eq!(runs, 3);
        assert_eq!(state.restart_count, 2);
        assert_eq!(state.last.as_ref().map(|t| t.exit.code), Some(1));
        match &state.current {
            Current::Terminated(t) => assert_eq!(t.exit.code, 137),
            other => panic!("{other:?}"),
        }
        let (fresh, runs) = adopt(&c, None);
        assert_eq!((runs, fresh.restart_count), (0, 0));
    }
}
