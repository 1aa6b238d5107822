//! A Deployment's status from its ReplicaSets (Kubernetes' `calculateStatus` and
//! `syncRolloutStatus`): the replica counts, the Available condition, and the Progressing
//! condition — NewReplicaSetAvailable when complete, ReplicaSetUpdated while it moves,
//! ProgressDeadlineExceeded after `progressDeadlineSeconds` without progress, and
//! DeploymentPaused/DeploymentResumed — written through the status subresource.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};
use kube::api::{Api, Patch, PatchParams};

use super::sets::spec_replicas;
use super::Pass;
use crate::error::{is_not_found, Error};
use crate::replicaset::now;

const PROGRESSING: &str = "Progressing";
const AVAILABLE: &str = "Available";
const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
const RS_UPDATED: &str = "ReplicaSetUpdated";
const TIMED_OUT: &str = "ProgressDeadlineExceeded";
const PAUSED: &str = "DeploymentPaused";
const RESUMED: &str = "DeploymentResumed";

fn condition(type_: &str, status: &str, reason: &str, message: String) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now()),
        last_transition_time: Some(now()),
    }
}

fn get<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

/// Kubernetes' `SetDeploymentCondition`: no change for the same status and reason; the
/// transition time kept while the status stays.
fn set(status: &mut DeploymentStatus, mut cond: DeploymentCondition) {
    if let Some(cur) = get(status, &cond.type_) {
        if cur.status == cond.status && cur.reason == cond.reason {
            return;
        }
        if cur.status == cond.status {
            cond.last_transition_time = cur.last_transition_time.clone();
        }
    }
    let conds = status.conditions.get_or_insert_with(Vec::new);
    conds.retain(|c| c.type_ != cond.type_);
    conds.push(cond);
}

fn counts(pass: &Pass, new: Option<usize>) -> DeploymentStatus {
    let d = &pass.deployment;
    let st = |f: fn(&k8s_openapi::api::apps::v1::ReplicaSetStatus) -> i32| -> i32 {
        pass.sets
            .iter()
            .filter_map(|rs| rs.status.as_ref())
            .map(f)
            .sum()
    };
    let available = st(|s| s.available_replicas.unwrap_or(0));
    let old = d.status.clone().unwrap_or_default();
    DeploymentStatus {
        replicas: Some(st(|s| s.replicas)),
        updated_replicas: Some(
            new.and_then(|i| pass.sets[i].status.as_ref())
                .map(|s| s.replicas)
                .unwrap_or(0),
        ),
        ready_replicas: Some(st(|s| s.ready_replicas.unwrap_or(0))),
        available_replicas: Some(available),
        unavailable_replicas: Some(
            (pass.sets.iter().map(spec_replicas).sum::<i32>() - available).max(0),
        ),
        observed_generation: d.metadata.generation,
        collision_count: old.collision_count,
        conditions: old.conditions,
        terminating_replicas: old.terminating_replicas,
    }
}

fn deadline(d: &Deployment) -> Option<i32> {
    let secs = d
        .spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .unwrap_or(600);
    (secs != i32::MAX).then_some(secs)
}

/// Computes the status; with `rollout`, also estimates progress. Also returns when the
/// deadline check must run again without an event.
fn compute(pass: &Pass, new: Option<usize>, rollout: bool) -> (DeploymentStatus, Option<Duration>) {
    let d = &pass.deployment;
    let replicas = pass.replicas();
    let mut status = counts(pass, new);
    let available = status.available_replicas.unwrap_or(0);
    if available >= replicas - pass.max_unavailable() {
        set(
            &mut status,
            condition(
                AVAILABLE,
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
            ),
        );
    } else {
        set(
            &mut status,
            condition(
                AVAILABLE,
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
            ),
        );
    }
    let progressing = get(&status, PROGRESSING).cloned();
    let reason = progressing.as_ref().and_then(|c| c.reason.as_deref());
    if pass.paused() {
        if reason != Some(PAUSED) {
            set(
                &mut status,
                condition(
                    PROGRESSING,
                    "Unknown",
                    PAUSED,
                    "Deployment is paused".into(),
                ),
            );
        }
        return (status, None);
    }
    if reason == Some(PAUSED) {
        set(
            &mut status,
            condition(
                PROGRESSING,
                "Unknown",
                RESUMED,
                "Deployment is resumed".into(),
            ),
        );
    }
    let Some(deadline) = deadline(d) else {
        return (status, None);
    };
    let subject = match new {
        Some(_) => format!("ReplicaSet {:?}", pass.name_of(new)),
        None => format!("Deployment {:?}", pass.name()),
    };
    if pass.created {
        let msg = format!("Created new replica set {:?}", pass.name_of(new));
        set(
            &mut status,
            condition(PROGRESSING, "True", "NewReplicaSetCreated", msg),
        );
    }
    let old = d.status.clone().unwrap_or_default();
    let v = |x: Option<i32>| x.unwrap_or(0);
    let is_complete =
        v(status.replicas) == v(status.updated_replicas) && reason == Some(NEW_RS_AVAILABLE);
    if !rollout || is_complete {
        return (status, None);
    }
    let done = v(status.updated_replicas) == replicas
        && v(status.replicas) == replicas
        && available == replicas
        && status.observed_generation >= d.metadata.generation;
    let moved = v(status.updated_replicas) > v(old.updated_replicas)
        || v(status.replicas) - v(status.updated_replicas)
            < v(old.replicas) - v(old.updated_replicas)
        || v(status.ready_replicas) > v(old.ready_replicas)
        || available > v(old.available_replicas);
    let cur = get(&status, PROGRESSING).cloned();
    if done {
        set(
            &mut status,
            condition(
                PROGRESSING,
                "True",
                NEW_RS_AVAILABLE,
                format!("{subject} has successfully progressed."),
            ),
        );
        return (status, None);
    }
    if moved || cur.is_none() {
        let mut cond = condition(
            PROGRESSING,
            "True",
            RS_UPDATED,
            format!("{subject} is progressing."),
        );
        if let Some(c) = cur.as_ref().filter(|c| c.status == "True") {
            cond.last_transition_time = c.last_transition_time.clone();
        }
        let conds = status.conditions.get_or_insert_with(Vec::new);
        conds.retain(|c| c.type_ != PROGRESSING);
        conds.push(cond);
        return (status, Some(Duration::from_secs(deadline as u64)));
    }
    let Some(cond) = cur else {
        return (status, None);
    };
    if matches!(cond.reason.as_deref(), Some(TIMED_OUT | NEW_RS_AVAILABLE)) {
        return (status, None);
    }
    let since = cond
        .last_update_time
        .as_ref()
        .map(|t| t.0.as_second())
        .unwrap_or(0);
    let left = since + i64::from(deadline) - now().0.as_second();
    if left < 0 {
        set(
            &mut status,
            condition(
                PROGRESSING,
                "False",
                TIMED_OUT,
                format!("{subject} has timed out progressing."),
            ),
        );
        return (status, None);
    }
    (status, Some(Duration::from_secs(left as u64 + 1)))
}

/// Writes the status when it changed; returns when to look at the deadline again.
pub(crate) async fn sync(
    pass: &Pass,
    new: Option<usize>,
    rollout: bool,
) -> Result<Option<Duration>, Error> {
    let (status, requeue) = compute(pass, new, rollout);
    if pass.deployment.status.as_ref() != Some(&status) {
        let api: Api<Deployment> = Api::namespaced(pass.client.clone(), &pass.namespace());
        let patch = serde_json::json!({ "status": status });
        match api
            .patch_status(&pass.name(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(requeue)
}
