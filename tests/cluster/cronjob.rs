//! The CronJob controller end to end on simulated nodes (the scheduling arithmetic is unit-tested
//! on a fake clock in `keelson-controllers`): `kubectl create job --from=cronjob/…` makes a Job
//! the controller reports as unexpected, and at the next minute the controller makes
//! `<cronjob>-<minutes>` itself, sees it complete and records the times.

use std::time::Duration;

use crate::harness::{eventually, ok, Component, Server, KUBECTL_133};

const TICK: &str = r#"
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "*/1 * * * *"
  concurrencyPolicy: Forbid
  jobTemplate:
    metadata: {labels: {app: tick}}
    spec:
      template:
        metadata:
          annotations: {keelson.dev/sim-duration-seconds: "1"}
        spec:
          restartPolicy: Never
          containers: [{name: c, image: busybox}]
"#;

fn get(server: &Server, args: &[&str]) -> String {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    String::from_utf8_lossy(&server.kubectl(KUBECTL_133, &all).stdout).into_owned()
}

fn events(server: &Server, reason: &str) -> String {
    get(
        server,
        &[
            "events",
            "--field-selector",
            &format!("involvedObject.kind=CronJob,reason={reason}"),
            "-o",
            "jsonpath={.items[*].message}",
        ],
    )
}

#[test]
fn cronjob_makes_jobs_on_schedule() {
    let server = Server::start_with_scheduler(&[]);
    let _nodes = Component::sim_nodes(&server, &["1"]);
    ok(server.kubectl_stdin(KUBECTL_133, &["apply", "-f", "-"], TICK));

    // A Job made by hand from the template is owned by the CronJob but not in its active list.
    ok(server.kubectl(
        KUBECTL_133,
        &["create", "job", "manual", "--from=cronjob/tick"],
    ));
    let owner = get(
        &server,
        &[
            "job",
            "manual",
            "-o",
            "jsonpath={.metadata.ownerReferences[0].kind}",
        ],
    );
    assert_eq!(owner, "CronJob");
    assert!(eventually(Duration::from_secs(20), || events(
        &server,
        "UnexpectedJob"
    )
    .contains(
        "Saw a job that the controller did not create or forgot: manual"
    )));

    // Within a minute the schedule fires: tick-<minutes since the epoch>.
    let mut scheduled = String::new();
    assert!(
        eventually(Duration::from_secs(75), || {
            scheduled = get(
                &server,
                &[
                    "cronjob",
                    "tick",
                    "-o",
                    "jsonpath={.status.lastScheduleTime}",
                ],
            );
            !scheduled.is_empty()
        }),
        "the CronJob never fired"
    );
    let at: k8s_openapi::jiff::Timestamp = scheduled.parse().unwrap();
    assert_eq!(
        at.as_second() % 60,
        0,
        "scheduled on the minute: {scheduled}"
    );
    let job = format!("tick-{}", at.as_second() / 60);
    let created = events(&server, "SuccessfulCreate");
    assert!(created.contains(&format!("Created job {job}")), "{created}");
    let annotation = get(
        &server,
        &[
            "job",
            &job,
            "-o",
            r#"jsonpath={.metadata.annotations.batch\.kubernetes\.io/cronjob-scheduled-timestamp}"#,
        ],
    );
    assert_eq!(annotation, scheduled);

    // The Job completes on the simulated node; the CronJob sees it and records success.
    assert!(
        eventually(Duration::from_secs(40), || {
            let s = get(
                &server,
                &[
                    "cronjob",
                    "tick",
                    "-o",
                    "jsonpath={.status.lastSuccessfulTime}|{.status.active}",
                ],
            );
            s.ends_with('|') && s.len() > 1
        }),
        "the scheduled Job's completion was not recorded"
    );
    assert!(events(&server, "SawCompletedJob")
        .contains(&format!("Saw completed job: {job}, condition: Complete")));
}
