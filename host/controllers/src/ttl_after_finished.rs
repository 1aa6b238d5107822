//! The TTL-after-finished controller: a Job with `spec.ttlSecondsAfterFinished` is deleted (its
//! pods with it, in the background, as Kubernetes' controller does) that many seconds after it
//! finished — the last transition of its `Complete` or `Failed` condition. A Job not yet due
//! is requeued for the moment it is.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;

use crate::error::Error;

/// Runs the TTL-after-finished controller until the process ends.
pub async fn run(client: kube::Client) {
    let jobs: Api<Job> = Api::all(client.clone());
    Controller::new(jobs, watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|_| async {})
        .await;
}

fn error_policy(_job: Arc<Job>, e: &Error, _client: Arc<kube::Client>) -> Action {
    tracing::warn!(error = %e, "cleaning up a finished Job failed; will retry");
    Action::requeue(Duration::from_secs(5))
}

/// When the Job finished (its Complete or Failed condition turned True), if it has.
pub fn finished_at(job: &Job) -> Option<Timestamp> {
    let status = job.status.as_ref()?;
    status
        .conditions
        .iter()
        .flatten()
        .filter(|c| matches!(c.type_.as_str(), "Complete" | "Failed") && c.status == "True")
        .filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0))
        .max()
        .or_else(|| status.completion_time.as_ref().map(|t| t.0))
}

/// How long until the Job is due for deletion (zero once due); `None` when it never is.
pub fn remaining(job: &Job, now: Timestamp) -> Option<Duration> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let due = finished_at(job)?.checked_add(jiff_secs(ttl.max(0))).ok()?;
    let left = now.duration_until(due);
    Some(Duration::try_from(left).unwrap_or(Duration::ZERO))
}

fn jiff_secs(s: i32) -> jiff::SignedDuration {
    jiff::SignedDuration::from_secs(s as i64)
}

#[tracing::instrument(skip_all, fields(controller = "ttl-after-finished", namespace = job.metadata.namespace.as_deref().unwrap_or_default(), job = job.metadata.name.as_deref().unwrap_or_default()))]
async fn reconcile(job: Arc<Job>, client: Arc<kube::Client>) -> Result<Action, Error> {
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(left) = remaining(&job, Timestamp::now()) else {
        return Ok(Action::await_change());
    };
    if !left.is_zero() {
        return Ok(Action::requeue(left + Duration::from_millis(100)));
    }
    let (ns, name) = (
        job.metadata.namespace.clone().unwrap_or_default(),
        job.metadata.name.clone().unwrap_or_default(),
    );
    let api: Api<Job> = Api::namespaced((*client).clone(), &ns);
    // Only this Job: a new one of the same name is not deleted by mistake.
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions {
            uid: job.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => tracing::info!("deleted finished Job after its TTL"),
        Err(kube::Error::Api(s)) if matches!(s.code, 404 | 409) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(ttl: Option<i32>, finished: Option<&str>) -> Job {
        let conditions = finished.map(|t| {
            serde_json::json!([{"type": "Complete", "status": "True", "lastTransitionTime": t}])
        });
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "j", "namespace": "default"},
            "spec": {"template": {"spec": {"containers": []}}, "ttlSecondsAfterFinished": ttl},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    #[test]
    fn due_after_the_ttl_counted_from_the_finish() {
        let now: Timestamp = "2026-12-07T12:00:00Z".parse().unwrap();
        let j = job(Some(100), Some("2026-12-07T11:59:00Z"));
        assert_eq!(remaining(&j, now), Some(Duration::from_secs(40)));
        let j = job(Some(30), Some("2026-12-07T11:59:00Z"));
        assert_eq!(remaining(&j, now), Some(Duration::ZERO));
        assert_eq!(
            remaining(&job(None, Some("2026-12-07T11:59:00Z")), now),
            None
        );
        assert_eq!(remaining(&job(Some(0), None), now), None, "not finished");
    }
}
