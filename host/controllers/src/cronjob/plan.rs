//! One pass of a CronJob decided without I/O at a given `now` (Kubernetes' `syncCronJob`, so
//! tests drive it with a fake clock): drop finished and vanished Jobs from `status.active`
//! (`SawCompletedJob`, `MissingJob`) and advance `lastSuccessfulTime`; when a scheduled time
//! is due and not too late (`startingDeadlineSeconds`, `MissSchedule`), honour the
//! concurrencyPolicy (`Forbid`: `JobAlreadyActive`; `Replace`: delete the active Jobs) and
//! make the Job `<cronjob>-<scheduled minutes since the epoch>`; trim finished Jobs to the
//! history limits; and say when to look again.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;

use super::schedule::{most_recent, Invalid, Schedule};
use crate::events::Type;

/// The annotation with the time a Job was scheduled for.
pub(crate) const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// What one pass does.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// `status.active` after the pass, without the Job to create.
    pub active: Vec<ObjectReference>,
    /// `status.lastScheduleTime` after the pass.
    pub last_schedule: Option<Timestamp>,
    /// `status.lastSuccessfulTime` after the pass.
    pub last_successful: Option<Timestamp>,
    /// The Job to create.
    pub create: Option<Job>,
    /// Jobs to delete (replaced, or past the history limits).
    pub delete: Vec<String>,
    /// Events: type, reason, message.
    pub events: Vec<(Type, &'static str, String)>,
    /// When to look again without another event.
    pub requeue: Option<Duration>,
}

/// The Job's finished condition, if it finished.
pub(crate) fn finished(job: &Job) -> Option<&'static str> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .filter(|c| c.status == "True")
        .find_map(|c| match c.type_.as_str() {
            "Complete" => Some("Complete"),
            "Failed" => Some("Failed"),
            _ => None,
        })
}

fn time(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> Option<Timestamp> {
    t.map(|t| t.0)
}

/// A reference to `job` for `status.active`.
pub(crate) fn reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..Default::default()
    }
}

/// The Job for `scheduled` (Kubernetes' `getJobFromTemplate2`).
pub(crate) fn job_for(cj: &CronJob, sched: &Schedule, scheduled: Timestamp) -> Job {
    let spec = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let meta = spec.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), sched.format(scheduled));
    let name = cj.metadata.name.clone().unwrap_or_default();
    Job {
        metadata: ObjectMeta {
            name: Some(format!("{name}-{}", scheduled.as_second().div_euclid(60))),
            namespace: cj.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: cj.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        spec: spec.spec,
        status: None,
    }
}

fn until(now: Timestamp, t: Option<Timestamp>) -> Option<Duration> {
    let t = t?;
    let secs = (t.as_millisecond() - now.as_millisecond()).max(0) as u64;
    // A little after the minute starts, as Kubernetes' `nextScheduleTimeDuration` does.
    Some(Duration::from_millis(secs) + Duration::from_millis(100))
}

/// The pass for `cj` with its owned `jobs` at `now`.
pub(crate) fn plan(cj: &CronJob, jobs: &[Job], now: Timestamp) -> Outcome {
    let spec = cj.spec.clone().unwrap_or_default();
    let status = cj.status.clone().unwrap_or_default();
    let mut out = Outcome {
        last_schedule: time(status.last_schedule_time.as_ref()),
        last_successful: time(status.last_successful_time.as_ref()),
        ..Default::default()
    };
    let uid_of = |j: &Job| j.metadata.uid.clone();
    for r in status.active.iter().flatten() {
        match jobs.iter().find(|j| uid_of(j) == r.uid) {
            None => out.events.push((
                Type::Normal,
                "MissingJob",
                format!(
                    "Active job went missing: {}",
                    r.name.as_deref().unwrap_or_default()
                ),
            )),
            Some(j) => match finished(j) {
                Some(c) => out.events.push((
                    Type::Normal,
                    "SawCompletedJob",
                    format!(
                        "Saw completed job: {}, condition: {c}",
                        j.metadata.name.as_deref().unwrap_or_default()
                    ),
                )),
                None => out.active.push(r.clone()),
            },
        }
    }
    for j in jobs {
        if finished(j) == Some("Complete") {
            let done = time(j.status.as_ref().and_then(|s| s.completion_time.as_ref()));
            if done.is_some() && (out.last_successful.is_none() || done > out.last_successful) {
                out.last_successful = done;
            }
        }
    }
    for j in jobs {
        let name = j.metadata.name.clone().unwrap_or_default();
        let listed = status.active.iter().flatten().any(|r| r.uid == uid_of(j));
        if !listed && finished(j).is_none() {
            let msg = format!("Saw a job that the controller did not create or forgot: {name}");
            out.events.push((Type::Warning, "UnexpectedJob", msg));
        }
    }
    for name in over_history(&spec, jobs) {
        out.events.push((
            Type::Normal,
            "SuccessfulDelete",
            format!("Deleted job {name}"),
        ));
        out.delete.push(name);
    }
    if cj.metadata.deletion_timestamp.is_some() {
        return out;
    }
    let sched = match Schedule::parse(&spec.schedule, spec.time_zone.as_deref()) {
        Ok(s) => s,
        Err(Invalid::TimeZone(e)) => {
            let tz = spec.time_zone.clone().unwrap_or_default();
            out.events.push((
                Type::Warning,
                "UnknownTimeZone",
                format!("invalid timeZone: {tz:?}: {e}"),
            ));
            return out;
        }
        Err(Invalid::Schedule(e)) => {
            let msg = format!("unparseable schedule: {:?} : {e}", spec.schedule);
            out.events.push((Type::Warning, "UnparseableSchedule", msg));
            return out;
        }
    };
    if spec.suspend == Some(true) {
        return out;
    }
    let created = time(cj.metadata.creation_timestamp.as_ref()).unwrap_or(now);
    let earliest = out.last_schedule.unwrap_or(created);
    let (due, missed) = most_recent(&sched, earliest, now, spec.starting_deadline_seconds);
    out.requeue = until(now, sched.next_after(now));
    let Some(scheduled) = due else {
        return out;
    };
    if missed > 100 {
        out.events.push((Type::Warning, "TooManyMissedTimes", format!("too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew")));
    }
    if let Some(sds) = spec.starting_deadline_seconds {
        if scheduled + jiff::SignedDuration::from_secs(sds) < now {
            let msg = format!(
                "Missed scheduled time to start a job: {}",
                sched.format(scheduled)
            );
            out.events.push((Type::Warning, "MissSchedule", msg));
            return out;
        }
    }
    let job = job_for(cj, &sched, scheduled);
    let already = out.active.iter().any(|r| r.name == job.metadata.name)
        || out.last_schedule == Some(scheduled);
    if already {
        return out;
    }
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !out.active.is_empty() => {
            let msg = "Not starting job because prior execution is running and concurrency policy is Forbid";
            out.events
                .push((Type::Normal, "JobAlreadyActive", msg.into()));
            return out;
        }
        Some("Replace") => {
            for r in std::mem::take(&mut out.active) {
                let name = r.name.unwrap_or_default();
                out.events.push((
                    Type::Normal,
                    "SuccessfulDelete",
                    format!("Deleted job {name}"),
                ));
                out.delete.push(name);
            }
        }
        _ => {}
    }
    out.last_schedule = Some(scheduled);
    out.create = Some(job);
    out
}

/// Finished Jobs past `successfulJobsHistoryLimit` (default 3) and `failedJobsHistoryLimit`
/// (default 1), oldest first.
fn over_history(spec: &k8s_openapi::api::batch::v1::CronJobSpec, jobs: &[Job]) -> Vec<String> {
    let mut doomed = Vec::new();
    for (kind, limit) in [
        ("Complete", spec.successful_jobs_history_limit.unwrap_or(3)),
        ("Failed", spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        let mut done: Vec<&Job> = jobs
            .iter()
            .filter(|j| finished(j) == Some(kind) && j.metadata.deletion_timestamp.is_none())
            .collect();
        done.sort_by_key(|j| {
            let started = j.status.as_ref().and_then(|s| s.start_time.as_ref());
            time(started.or(j.metadata.creation_timestamp.as_ref()))
        });
        let surplus = done
            .len()
            .saturating_sub(usize::try_from(limit).unwrap_or(0));
        doomed.extend(
            done.iter()
                .take(surplus)
                .filter_map(|j| j.metadata.name.clone()),
        );
    }
    doomed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cronjob(extra: serde_json::Value) -> CronJob {
        let mut v = json!({
            "metadata": {"name": "tick", "namespace": "ns", "uid": "cj1",
                         "creationTimestamp": "2026-01-01T10:00:30Z"},
            "spec": {"schedule": "*/1 * * * *",
                     "jobTemplate": {"metadata": {"labels": {"app": "tick"}},
                                     "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Never"}}}}},
        });
        json_patch::merge(&mut v, &extra);
        serde_json::from_value(v).unwrap()
    }

    fn job(name: &str, uid: &str, state: Option<(&str, &str)>) -> Job {
        let conditions = state.map(|(c, _)| json!([{"type": c, "status": "True"}]));
        let completion = state.filter(|s| s.0 == "Complete").map(|s| s.1);
        let start = state.map_or("2026-01-01T10:00:00Z", |s| s.1);
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "uid": uid},
            "status": {"conditions": conditions, "completionTime": completion, "startTime": start},
        }))
        .unwrap()
    }

    fn active(name: &str, uid: &str) -> serde_json::Value {
        json!({"kind": "Job", "name": name, "namespace": "ns", "uid": uid})
    }

    fn reasons(out: &Outcome) -> Vec<&str> {
        out.events.iter().map(|e| e.1).collect()
    }

    #[test]
    fn fires_on_the_injected_clock_with_kubernetes_job_names() {
        let cj = cronjob(json!({}));
        let out = plan(&cj, &[], at("2026-01-01T10:00:50Z"));
        assert!(out.create.is_none(), "nothing due before 10:01");
        assert_eq!(out.requeue, Some(Duration::from_millis(10_100)));

        let now = at("2026-01-01T10:01:02Z");
        let out = plan(&cj, &[], now);
        let made = out.create.expect("a job at 10:01");
        // 10:01 UTC on 2026-01-01 is 29,454,361 minutes after the epoch.
        assert_eq!(made.metadata.name.as_deref(), Some("tick-29454361"));
        assert_eq!(out.last_schedule, Some(at("2026-01-01T10:01:00Z")));
        let annotations = made.metadata.annotations.unwrap();
        assert_eq!(annotations[SCHEDULED_TIMESTAMP], "2026-01-01T10:01:00Z");
        assert_eq!(made.metadata.labels.unwrap()["app"], "tick");
        let owner = &made.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("CronJob", "cj1")
        );

        // Once recorded, the same time does not fire again.
        let cj = cronjob(
            json!({"status": {"lastScheduleTime": "2026-01-01T10:01:00Z",
            "active": [active("tick-29454361", "j1")]}}),
        );
        let jobs = [job("tick-29454361", "j1", None)];
        let out = plan(&cj, &jobs, at("2026-01-01T10:01:30Z"));
        assert!(out.create.is_none());
        assert_eq!(out.active.len(), 1);
        assert!(out.events.is_empty(), "{:?}", out.events);
    }

    #[test]
    fn concurrency_policies() {
        let running = [job("tick-29454361", "j1", None)];
        let status = json!({"lastScheduleTime": "2026-01-01T10:01:00Z",
                            "active": [active("tick-29454361", "j1")]});
        let now = at("2026-01-01T10:02:01Z");

        let allow = plan(&cronjob(json!({"status": status})), &running, now);
        assert!(allow.create.is_some());
        assert_eq!(allow.active.len(), 1);

        let cj = cronjob(json!({"spec": {"concurrencyPolicy": "Forbid"}, "status": status}));
        let forbid = plan(&cj, &running, now);
        assert!(forbid.create.is_none());
        assert_eq!(reasons(&forbid), ["JobAlreadyActive"]);
        assert_eq!(forbid.last_schedule, Some(at("2026-01-01T10:01:00Z")));

        let cj = cronjob(json!({"spec": {"concurrencyPolicy": "Replace"}, "status": status}));
        let replace = plan(&cj, &running, now);
        assert_eq!(replace.delete, ["tick-29454361"]);
        assert!(replace.active.is_empty());
        assert_eq!(
            replace.create.unwrap().metadata.name.as_deref(),
            Some("tick-29454362")
        );
    }

    #[test]
    fn finished_jobs_leave_active_and_history_is_trimmed() {
        let cj = cronjob(
            json!({"spec": {"suspend": true, "successfulJobsHistoryLimit": 1},
            "status": {"active": [active("tick-3", "j3"), active("tick-gone", "jx")]}}),
        );
        let jobs = [
            job("tick-1", "j1", Some(("Complete", "2026-01-01T10:01:10Z"))),
            job("tick-2", "j2", Some(("Failed", "2026-01-01T10:02:10Z"))),
            job("tick-3", "j3", Some(("Complete", "2026-01-01T10:03:10Z"))),
            job("tick-0", "j0", Some(("Failed", "2026-01-01T10:00:10Z"))),
        ];
        let out = plan(&cj, &jobs, at("2026-01-01T10:05:00Z"));
        assert!(out.active.is_empty());
        assert_eq!(out.last_successful, Some(at("2026-01-01T10:03:10Z")));
        assert_eq!(out.delete, ["tick-1", "tick-0"]);
        assert_eq!(
            reasons(&out),
            [
                "SawCompletedJob",
                "MissingJob",
                "SuccessfulDelete",
                "SuccessfulDelete"
            ]
        );
        assert_eq!(
            out.events[0].2,
            "Saw completed job: tick-3, condition: Complete"
        );
        assert!(out.create.is_none(), "suspended");
        assert_eq!(out.requeue, None);
    }

    #[test]
    fn starting_deadline_and_bad_schedules() {
        // Due at 10:01 but 40 s late with a 30 s deadline: missed.
        let cj = cronjob(json!({"spec": {"startingDeadlineSeconds": 30, "schedule": "1 * * * *"}}));
        let out = plan(&cj, &[], at("2026-01-01T10:01:40Z"));
        assert!(out.create.is_none());
        assert!(out.events.is_empty(), "out of the window: not even due");
        let out = plan(&cj, &[], at("2026-01-01T10:01:20Z"));
        assert!(out.create.is_some(), "within the deadline");

        let cj = cronjob(json!({"spec": {"schedule": "every minute"}}));
        let out = plan(&cj, &[], at("2026-01-01T10:05:00Z"));
        assert_eq!(reasons(&out), ["UnparseableSchedule"]);
        let cj = cronjob(json!({"spec": {"timeZone": "Nowhere/Land"}}));
        assert_eq!(
            reasons(&plan(&cj, &[], at("2026-01-01T10:05:00Z"))),
            ["UnknownTimeZone"]
        );

        // A job nobody listed as active is reported.
        let out = plan(
            &cronjob(json!({})),
            &[job("manual", "m1", None)],
            at("2026-01-01T10:00:40Z"),
        );
        assert_eq!(reasons(&out), ["UnexpectedJob"]);
    }
}
