//! The CronJob controller: a `kube::runtime` Controller over CronJobs that owns their Jobs.
//! Each pass re-reads the CronJob (the cache may not hold this controller's last status
//! write yet), lists the Jobs it controls, lets [`plan`] decide at the injected clock's `now`
//! what to create and delete, applies that with Kubernetes' events (`SuccessfulCreate`
//! "Created job x", `SuccessfulDelete`, `SawCompletedJob`, …), writes `status.active`,
//! `lastScheduleTime` and `lastSuccessfulTime`, and requeues for the next scheduled time.

mod plan;
mod schedule;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use serde_json::json;

use crate::error::{is_not_found, Error};
use crate::events::{Recorder, Type};
use crate::ownership::controller_of;

/// The controller's name on events.
const COMPONENT: &str = "cronjob-controller";

/// The time source (tests inject a fake one).
pub type Clock = Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>;

struct Ctx {
    client: kube::Client,
    recorder: Recorder,
    clock: Clock,
}

/// Runs the CronJob controller on the system clock until the process ends.
pub async fn run(client: kube::Client) {
    run_with_clock(client, Arc::new(jiff::Timestamp::now)).await
}

/// Runs the CronJob controller with `clock` as its notion of now.
pub async fn run_with_clock(client: kube::Client, clock: Clock) {
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), COMPONENT),
        client: client.clone(),
        clock,
    });
    Controller::new(
        Api::<CronJob>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<Job>::all(client), watcher::Config::default())
    .run(reconcile, error_policy, ctx)
    .for_each(|_| async {})
    .await;
}

fn error_policy(_cj: Arc<CronJob>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "syncing cronjob failed; will retry");
    Action::requeue(Duration::from_secs(1))
}

#[tracing::instrument(skip_all, fields(
    controller = "cronjob",
    namespace = cached.metadata.namespace.as_deref().unwrap_or_default(),
    name = cached.metadata.name.as_deref().unwrap_or_default(),
))]
async fn reconcile(cached: Arc<CronJob>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = cached.metadata.namespace.clone().unwrap_or_default();
    let name = cached.metadata.name.clone().unwrap_or_default();
    let cronjobs: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
    let cj = match cronjobs.get(&name).await {
        Ok(cj) => cj,
        Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
        Err(e) => return Err(e.into()),
    };
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let jobs: Vec<Job> = jobs_api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|j| controller_of(&j.metadata).is_some_and(|o| o.uid == uid))
        .collect();

    let mut out = plan::plan(&cj, &jobs, (ctx.clock)());
    for (type_, reason, message) in out.events.drain(..) {
        ctx.recorder.publish(&cj, type_, reason, message);
    }
    let background = DeleteParams::background();
    for job in &out.delete {
        match jobs_api.delete(job, &background).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(job) = out.create.take() {
        let job_name = job.metadata.name.clone().unwrap_or_default();
        let made = match jobs_api.create(&PostParams::default(), &job).await {
            Ok(j) => {
                let msg = format!("Created job {job_name}");
                ctx.recorder
                    .publish(&cj, Type::Normal, "SuccessfulCreate", msg);
                tracing::info!(job = %job_name, "created job");
                Some(j)
            }
            // Made by an earlier pass whose status write was lost: take it over if it is ours.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let existing = jobs_api.get(&job_name).await?;
                let ours = controller_of(&existing.metadata).is_some_and(|o| o.uid == uid);
                (ours && plan::finished(&existing).is_none()).then_some(existing)
            }
            Err(e) => {
                let msg = format!("Error creating job: {e}");
                ctx.recorder
                    .publish(&cj, Type::Warning, "FailedCreate", msg);
                return Err(e.into());
            }
        };
        if let Some(j) = made {
            if !out.active.iter().any(|r| r.uid == j.metadata.uid) {
                out.active.push(plan::reference(&j));
            }
        }
    }

    let status = cj.status.clone().unwrap_or_default();
    let changed = status.active.clone().unwrap_or_default() != out.active
        || status.last_schedule_time.as_ref().map(|t| t.0) != out.last_schedule
        || status.last_successful_time.as_ref().map(|t| t.0) != out.last_successful;
    if changed {
        let patch = json!({ "status": {
            "active": if out.active.is_empty() { None } else { Some(&out.active) },
            "lastScheduleTime": out.last_schedule.map(Time),
            "lastSuccessfulTime": out.last_successful.map(Time),
        }});
        match cronjobs
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out
        .requeue
        .map(Action::requeue)
        .unwrap_or_else(Action::await_change))
}
