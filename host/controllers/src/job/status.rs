//! A Job's verdict and status: Complete once enough pods succeeded, Failed past
//! `backoffLimit` or `activeDeadlineSeconds` (with Kubernetes 1.33's SuccessCriteriaMet and
//! FailureTarget conditions before them), Suspended while suspended; the counts, start and
//! completion times and `completedIndexes`, written through the status subresource.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use kube::api::{Api, Patch, PatchParams};

use super::Census;
use crate::error::{is_not_found, Error};
use crate::replicaset::now;

/// What the Job should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Keep `want` pods running.
    Running { want: i32 },
    /// Done: every completion succeeded.
    Complete,
    /// Failed for `reason` (`BackoffLimitExceeded`, `DeadlineExceeded`).
    Failed {
        reason: &'static str,
        message: &'static str,
    },
}

fn condition_true(job: &Job, type_: &str) -> bool {
    job.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// Whether the Job already finished (Complete or Failed).
pub(crate) fn finished(job: &Job) -> bool {
    condition_true(job, "Complete") || condition_true(job, "Failed")
}

fn start_time(job: &Job) -> Option<i64> {
    job.status
        .as_ref()?
        .start_time
        .as_ref()
        .map(|t| t.0.as_second())
}

/// Time left until `activeDeadlineSeconds` passes, if it is set and the Job started.
pub(crate) fn deadline_in(job: &Job) -> Option<Duration> {
    let ads = job.spec.as_ref()?.active_deadline_seconds?;
    let left = start_time(job)? + ads - now().0.as_second();
    Some(Duration::from_secs(left.max(0) as u64 + 1))
}

/// Decides the Job's fate from its pods.
pub(crate) fn verdict(job: &Job, census: &Census, suspended: bool) -> Verdict {
    let spec = job.spec.clone().unwrap_or_default();
    if census.failed > spec.backoff_limit.unwrap_or(6) {
        return Verdict::Failed {
            reason: "BackoffLimitExceeded",
            message: "Job has reached the specified backoff limit",
        };
    }
    let deadline_passed = spec
        .active_deadline_seconds
        .zip(start_time(job))
        .is_some_and(|(ads, start)| !suspended && now().0.as_second() >= start + ads);
    if deadline_passed {
        return Verdict::Failed {
            reason: "DeadlineExceeded",
            message: "Job was active longer than specified deadline",
        };
    }
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    match spec.completions {
        Some(c) if census.succeeded >= c => Verdict::Complete,
        Some(c) => Verdict::Running {
            want: parallelism.min(c - census.succeeded),
        },
        // A work queue: done once one pod succeeded and the rest have stopped.
        None if census.succeeded > 0 && census.active.is_empty() => Verdict::Complete,
        None if census.succeeded > 0 => Verdict::Running {
            want: census.active.len() as i32,
        },
        None => Verdict::Running { want: parallelism },
    }
}

/// Kubernetes' compressed index list: `0-2,5`.
pub(crate) fn compress(indexes: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run: Option<(i32, i32)> = None;
    for &i in indexes {
        run = match run {
            Some((a, b)) if i == b + 1 => Some((a, i)),
            Some(r) => {
                out.push(range(r));
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    out.extend(run.map(range));
    out.join(",")
}

fn range((a, b): (i32, i32)) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}-{b}")
    }
}

fn cond(type_: &str, status: &str, reason: Option<&str>, message: Option<&str>) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.map(str::to_string),
        message: message.map(str::to_string),
        last_probe_time: Some(now()),
        last_transition_time: Some(now()),
    }
}

/// The new status from the census and verdict.
fn compute(job: &Job, census: &Census, verdict: &Verdict, suspended: bool) -> JobStatus {
    let old = job.status.clone().unwrap_or_default();
    let mut conds = old.conditions.clone().unwrap_or_default();
    let mut put = |c: JobCondition| {
        if let Some(cur) = conds.iter_mut().find(|x| x.type_ == c.type_) {
            if cur.status != c.status || cur.reason != c.reason {
                *cur = c;
            }
        } else {
            conds.push(c);
        }
    };
    if suspended {
        put(cond(
            "Suspended",
            "True",
            Some("JobSuspended"),
            Some("Job suspended"),
        ));
    } else if condition_true(job, "Suspended") {
        put(cond(
            "Suspended",
            "False",
            Some("JobResumed"),
            Some("Job resumed"),
        ));
    }
    let mut completion_time = old.completion_time.clone();
    match verdict {
        Verdict::Complete => {
            put(cond(
                "SuccessCriteriaMet",
                "True",
                Some("CompletionsReached"),
                Some("Reached expected number of succeeded pods"),
            ));
            put(cond(
                "Complete",
                "True",
                Some("CompletionsReached"),
                Some("Reached expected number of succeeded pods"),
            ));
            completion_time.get_or_insert_with(now);
        }
        Verdict::Failed { reason, message } => {
            put(cond("FailureTarget", "True", Some(reason), Some(message)));
            put(cond("Failed", "True", Some(reason), Some(message)));
        }
        Verdict::Running { .. } => {}
    }
    let indexed = !census.succeeded_indexes.is_empty();
    JobStatus {
        active: Some(if matches!(verdict, Verdict::Running { .. }) {
            census.active.len() as i32
        } else {
            0
        }),
        succeeded: Some(census.succeeded),
        failed: Some(census.failed),
        ready: Some(census.ready),
        start_time: if suspended {
            old.start_time.clone()
        } else {
            old.start_time.clone().or_else(|| Some(now()))
        },
        completion_time,
        completed_indexes: indexed.then(|| compress(&census.succeeded_indexes)),
        conditions: (!conds.is_empty()).then_some(conds),
        ..old
    }
}

/// Writes the status when it changed.
pub(crate) async fn write(
    client: &kube::Client,
    job: &Job,
    census: &Census,
    verdict: &Verdict,
    suspended: bool,
) -> Result<(), Error> {
    let status = compute(job, census, verdict, suspended);
    if job.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let ns = job.metadata.namespace.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let api: Api<Job> = Api::namespaced(client.clone(), &ns);
    let patch = serde_json::json!({ "status": status });
    match api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    // Kubernetes' events when the Job finishes.
    let recorder = crate::events::Recorder::new(client.clone(), "job-controller");
    match verdict {
        Verdict::Complete => recorder.publish(
            job,
            crate::events::Type::Normal,
            "Completed",
            "Job completed".into(),
        ),
        Verdict::Failed { reason, message } => {
            recorder.publish(job, crate::events::Type::Warning, reason, (*message).into())
        }
        Verdict::Running { .. } => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn census(succeeded: i32, failed: i32, active: usize) -> Census {
        Census {
            active: vec![Default::default(); active],
            succeeded,
            failed,
            ready: 0,
            succeeded_indexes: BTreeSet::new(),
        }
    }

    fn job(completions: Option<i32>, parallelism: i32, backoff: i32) -> Job {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "j"},
            "spec": {"completions": completions, "parallelism": parallelism,
                     "backoffLimit": backoff, "template": {}},
        }))
        .unwrap()
    }

    #[test]
    fn verdicts_follow_completions_parallelism_and_backoff() {
        let j = job(Some(5), 2, 1);
        assert_eq!(
            verdict(&j, &census(0, 0, 0), false),
            Verdict::Running { want: 2 }
        );
        assert_eq!(
            verdict(&j, &census(4, 0, 1), false),
            Verdict::Running { want: 1 }
        );
        assert_eq!(verdict(&j, &census(5, 0, 0), false), Verdict::Complete);
        assert!(matches!(
            verdict(&j, &census(0, 2, 0), false),
            Verdict::Failed {
                reason: "BackoffLimitExceeded",
                ..
            }
        ));
        let queue = job(None, 3, 6);
        assert_eq!(
            verdict(&queue, &census(0, 0, 0), false),
            Verdict::Running { want: 3 }
        );
        assert_eq!(
            verdict(&queue, &census(1, 0, 2), false),
            Verdict::Running { want: 2 }
        );
        assert_eq!(verdict(&queue, &census(1, 0, 0), false), Verdict::Complete);
    }

    #[test]
    fn completed_indexes_are_compressed() {
        let set: BTreeSet<i32> = [0, 1, 2, 5, 7, 8].into_iter().collect();
        assert_eq!(compress(&set), "0-2,5,7-8");
        assert_eq!(compress(&BTreeSet::new()), "");
    }
}
