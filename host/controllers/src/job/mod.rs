//! The Job controller: a `kube::runtime` Controller over Jobs that owns their pods. Each pass
//! counts the Job's pods (labelled `batch.kubernetes.io/controller-uid`), decides whether the
//! Job has finished (completions reached → Complete; more failures than `backoffLimit` or
//! `activeDeadlineSeconds` passed → Failed, its running pods deleted), otherwise keeps
//! `min(parallelism, remaining completions)` pods running — per completion index in Indexed
//! mode — and deletes them all while `suspend` is set; then writes the status ([`status`]).

mod status;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::Resource;

use crate::error::Error;
use crate::events::{Recorder, Type};
use crate::ownership;
use crate::replicaset::{delete_pods, deletion_order, from_template, is_active, is_ready};
pub(crate) use status::Verdict;

/// The label tying pods to their Job's uid (and Kubernetes' other job labels).
pub const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
const JOB_NAME: &str = "batch.kubernetes.io/job-name";
/// The annotation and label carrying an Indexed Job pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// Runs the Job controller until the process ends.
pub async fn run(client: kube::Client) {
    let jobs: Api<Job> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    Controller::new(jobs, watcher::Config::default())
        .owns(pods, watcher::Config::default().labels(CONTROLLER_UID))
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|_| async {})
        .await;
}

fn error_policy(_job: Arc<Job>, e: &Error, _client: Arc<kube::Client>) -> Action {
    tracing::warn!(error = %e, "syncing job failed; will retry");
    Action::requeue(Duration::from_secs(1))
}

/// The completion index of an Indexed Job's pod.
fn index_of(pod: &Pod) -> Option<i32> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(COMPLETION_INDEX)?
        .parse()
        .ok()
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

/// The Job's pods sorted out: the ones still running, the succeeded and failed counts, and
/// (Indexed mode) which indexes succeeded.
pub(crate) struct Census {
    pub active: Vec<Pod>,
    pub succeeded: i32,
    pub failed: i32,
    pub ready: i32,
    pub succeeded_indexes: BTreeSet<i32>,
}

fn census(pods: Vec<Pod>, indexed: bool) -> Census {
    let succeeded_pods = pods
        .iter()
        .filter(|p| phase(p) == Some("Succeeded"))
        .count() as i32;
    let succeeded_indexes: BTreeSet<i32> = pods
        .iter()
        .filter(|p| phase(p) == Some("Succeeded"))
        .filter_map(index_of)
        .collect();
    let failed = pods.iter().filter(|p| phase(p) == Some("Failed")).count() as i32;
    let active: Vec<Pod> = pods.into_iter().filter(is_active).collect();
    Census {
        ready: active.iter().filter(|p| is_ready(p)).count() as i32,
        succeeded: if indexed {
            succeeded_indexes.len() as i32
        } else {
            succeeded_pods
        },
        failed,
        active,
        succeeded_indexes,
    }
}

#[tracing::instrument(skip_all, fields(
    controller = "job",
    namespace = job.metadata.namespace.as_deref().unwrap_or_default(),
    name = job.metadata.name.as_deref().unwrap_or_default(),
))]
async fn reconcile(job: Arc<Job>, client: Arc<kube::Client>) -> Result<Action, Error> {
    let Some(spec) = job.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    if job.metadata.deletion_timestamp.is_some() || status::finished(&job) {
        return Ok(Action::await_change());
    }
    let ns = job.metadata.namespace.clone().unwrap_or_default();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced((*client).clone(), &ns);
    let listed = api
        .list(&ListParams::default().labels(&format!("{CONTROLLER_UID}={uid}")))
        .await?;
    let owned: Vec<Pod> = listed
        .items
        .into_iter()
        .filter(|p| ownership::controller_of(&p.metadata).is_some_and(|c| c.uid == uid))
        .collect();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let census = census(owned, indexed);
    let suspended = spec.suspend.unwrap_or(false);
    let verdict = status::verdict(&job, &census, suspended);
    match verdict {
        Verdict::Running { want } if !suspended => {
            manage(&client, &api, &job, &census, want, indexed).await?;
        }
        _ => {
            let deleted = delete_pods(&api, &census.active.iter().collect::<Vec<_>>()).await?;
            report_deleted(&client, &job, deleted);
        }
    }
    status::write(&client, &job, &census, &verdict, suspended).await?;
    Ok(match status::deadline_in(&job) {
        Some(after) if matches!(verdict, Verdict::Running { .. }) => Action::requeue(after),
        _ => Action::await_change(),
    })
}

/// Creates or deletes pods so `want` run.
async fn manage(
    client: &kube::Client,
    api: &Api<Pod>,
    job: &Job,
    census: &Census,
    want: i32,
    indexed: bool,
) -> Result<(), Error> {
    let active = census.active.len() as i32;
    if active > want {
        let mut surplus: Vec<&Pod> = census.active.iter().collect();
        surplus.sort_by(|a, b| deletion_order(a, b));
        surplus.truncate((active - want) as usize);
        let deleted = delete_pods(api, &surplus).await?;
        report_deleted(client, job, deleted);
        return Ok(());
    }
    let missing = (want - active) as usize;
    if missing == 0 {
        return Ok(());
    }
    let pods: Vec<Pod> = if indexed {
        let running: BTreeSet<i32> = census.active.iter().filter_map(index_of).collect();
        let completions = job.spec.as_ref().and_then(|s| s.completions).unwrap_or(1);
        (0..completions)
            .filter(|i| !running.contains(i) && !census.succeeded_indexes.contains(i))
            .take(missing)
            .map(|i| pod_for(job, Some(i)))
            .collect()
    } else {
        (0..missing).map(|_| pod_for(job, None)).collect()
    };
    let params = PostParams::default();
    let recorder = Recorder::new(client.clone(), COMPONENT);
    for r in join_all(pods.iter().map(|p| api.create(&params, p))).await {
        match r {
            Ok(p) => {
                let msg = format!("Created pod: {}", p.metadata.name.unwrap_or_default());
                recorder.publish(job, Type::Normal, "SuccessfulCreate", msg);
            }
            Err(e) => {
                let msg = format!("Error creating: {e}");
                recorder.publish(job, Type::Warning, "FailedCreate", msg);
                return Err(e.into());
            }
        }
    }
    tracing::info!(created = pods.len(), "created job pods");
    Ok(())
}

/// The controller's name on events.
const COMPONENT: &str = "job-controller";

/// `SuccessfulDelete` events for the pods deleted.
fn report_deleted(client: &kube::Client, job: &Job, deleted: Vec<String>) {
    let recorder = Recorder::new(client.clone(), COMPONENT);
    for name in deleted {
        let msg = format!("Deleted pod: {name}");
        recorder.publish(job, Type::Normal, "SuccessfulDelete", msg);
    }
}

/// A pod of the Job (for one completion index in Indexed mode).
fn pod_for(job: &Job, index: Option<i32>) -> Pod {
    let name = job.metadata.name.clone().unwrap_or_default();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let prefix = match index {
        Some(i) => format!("{name}-{i}"),
        None => name.clone(),
    };
    let owner = job.controller_owner_ref(&()).unwrap_or_default();
    let ns = job.metadata.namespace.clone().unwrap_or_default();
    let mut pod = from_template(&template, &ns, &prefix, owner);
    let labels = pod.metadata.labels.get_or_insert_with(Default::default);
    for (k, v) in [
        (CONTROLLER_UID, &uid),
        (JOB_NAME, &name),
        ("controller-uid", &uid),
        ("job-name", &name),
    ] {
        labels.insert(k.into(), v.clone());
    }
    if let Some(i) = index {
        labels.insert(COMPLETION_INDEX.into(), i.to_string());
        pod.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(COMPLETION_INDEX.into(), i.to_string());
        if let Some(spec) = pod.spec.as_mut() {
            spec.hostname = Some(prefix.clone());
            for c in spec.containers.iter_mut() {
                c.env.get_or_insert_with(Vec::new).push(EnvVar {
                    name: "JOB_COMPLETION_INDEX".into(),
                    value: Some(i.to_string()),
                    value_from: None,
                });
            }
        }
    }
    pod
}
