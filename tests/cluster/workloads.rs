//! The workload controllers on simulated nodes, driven by kubectl 1.33: a Deployment rolls
//! out through ReplicaSets (`rollout status|history|undo|pause|resume`), scales up and down,
//! replaces a deleted pod, and is deleted with everything it made; Jobs complete, fail by
//! backoffLimit, and give Indexed pods their indexes; a DaemonSet covers every eligible node,
//! follows a new one and rolls a new image.

use std::time::Duration;

use crate::harness::{eventually, fails, ok, Component, Server, KUBECTL_133};

const WAIT: Duration = Duration::from_secs(60);

fn get(server: &Server, args: &[&str]) -> String {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    String::from_utf8_lossy(&server.kubectl(KUBECTL_133, &all).stdout).into_owned()
}

/// Names of the pods of `web` that are Running and not being deleted.
fn running_pods(server: &Server) -> Vec<String> {
    get(
        server,
        &[
            "pods",
            "-l",
            "app=web",
            "-o",
            r#"jsonpath={range .items[?(@.status.phase=="Running")]}{.metadata.name} {.metadata.deletionTimestamp}{"\n"}{end}"#,
        ],
    )
    .lines()
    .filter(|l| l.split_whitespace().count() == 1)
    .map(|l| l.trim().to_string())
    .collect()
}

fn rollout_status(server: &Server) {
    ok(server.kubectl(
        KUBECTL_133,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    ));
}

fn template_image(server: &Server) -> String {
    get(
        server,
        &[
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ],
    )
}

fn replicasets(server: &Server) -> Vec<String> {
    get(
        server,
        &[
            "rs",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
    )
    .split_whitespace()
    .map(str::to_string)
    .collect()
}

fn wait_running(server: &Server, n: usize) {
    let mut pods = Vec::new();
    let reached = eventually(WAIT, || {
        pods = running_pods(server);
        pods.len() == n
    });
    assert!(reached, "expected {n} running pods of web, have {pods:?}");
}

#[test]
fn deployment_rolls_out_scales_and_cascades() {
    let server = Server::start_with_scheduler(&[]);
    let _nodes = Component::sim_nodes(&server, &["3"]);
    ok(server.kubectl(
        KUBECTL_133,
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--replicas=3",
        ],
    ));
    rollout_status(&server);
    wait_running(&server, 3);
    let first = replicasets(&server);
    assert_eq!(first.len(), 1, "one ReplicaSet: {first:?}");
    let hash = get(
        &server,
        &[
            "rs",
            &first[0],
            "-o",
            "jsonpath={.metadata.labels.pod-template-hash}",
        ],
    );
    assert!(
        !hash.is_empty() && first[0] == format!("web-{hash}"),
        "ReplicaSet {} is named after its pod-template-hash {hash}",
        first[0]
    );
    let conditions = get(
        &server,
        &[
            "deployment",
            "web",
            "-o",
            r#"jsonpath={range .status.conditions[*]}{.type}={.reason}{"\n"}{end}"#,
        ],
    );
    assert!(
        conditions.contains("Available=MinimumReplicasAvailable"),
        "{conditions}"
    );
    assert!(
        conditions.contains("Progressing=NewReplicaSetAvailable"),
        "{conditions}"
    );

    // A new image rolls out through a second ReplicaSet.
    ok(server.kubectl(
        KUBECTL_133,
        &["set", "image", "deployment/web", "nginx=nginx:1.28"],
    ));
    rollout_status(&server);
    assert_eq!(replicasets(&server).len(), 2);
    wait_running(&server, 3);
    let history = ok(server.kubectl(KUBECTL_133, &["rollout", "history", "deployment/web"]));
    let revisions: Vec<&str> = history
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert_eq!(revisions.len(), 2, "two revisions:\n{history}");

    // Undo goes back to the first template (and its ReplicaSet).
    ok(server.kubectl(KUBECTL_133, &["rollout", "undo", "deployment/web"]));
    rollout_status(&server);
    assert_eq!(template_image(&server), "nginx:1.27");
    assert_eq!(
        replicasets(&server).len(),
        2,
        "the first ReplicaSet is reused"
    );
    let revision = get(
        &server,
        &[
            "rs",
            &first[0],
            "-o",
            r#"jsonpath={.metadata.annotations.deployment\.kubernetes\.io/revision}"#,
        ],
    );
    assert_eq!(revision, "3", "the reused ReplicaSet becomes revision 3");
    wait_running(&server, 3);

    // Paused: a template change makes no ReplicaSet until resumed.
    ok(server.kubectl(KUBECTL_133, &["rollout", "pause", "deployment/web"]));
    ok(server.kubectl(
        KUBECTL_133,
        &["set", "image", "deployment/web", "nginx=nginx:1.29"],
    ));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(replicasets(&server).len(), 2, "paused: no new ReplicaSet");
    ok(server.kubectl(KUBECTL_133, &["rollout", "resume", "deployment/web"]));
    rollout_status(&server);
    assert_eq!(replicasets(&server).len(), 3);

    // Scale up and down.
    ok(server.kubectl(KUBECTL_133, &["scale", "deployment/web", "--replicas=5"]));
    wait_running(&server, 5);
    rollout_status(&server);
    ok(server.kubectl(KUBECTL_133, &["scale", "deployment/web", "--replicas=1"]));
    wait_running(&server, 1);
    rollout_status(&server);

    // A deleted pod is replaced.
    let victim = running_pods(&server).remove(0);
    ok(server.kubectl(KUBECTL_133, &["delete", "pod", &victim, "--wait=false"]));
    let mut pods = Vec::new();
    let replaced = eventually(WAIT, || {
        pods = running_pods(&server);
        pods.len() == 1 && pods[0] != victim
    });
    assert!(replaced, "pod {victim} was not replaced: {pods:?}");

    // Deleting the Deployment takes its ReplicaSets and pods with it.
    ok(server.kubectl(KUBECTL_133, &["delete", "deployment", "web"]));
    let gone = eventually(WAIT, || {
        replicasets(&server).is_empty()
            && get(&server, &["pods", "-l", "app=web", "-o", "name"])
                .trim()
                .is_empty()
    });
    assert!(gone, "ReplicaSets and pods of web remain after deletion");
}

#[test]
fn replicaset_adopts_orphans_and_keeps_its_count() {
    let server = Server::start_with_scheduler(&[]);
    let _nodes = Component::sim_nodes(&server, &["2"]);
    let orphan = "apiVersion: v1
kind: Pod
metadata: {name: orphan, labels: {app: web}}
spec: {containers: [{name: c, image: nginx:1.27}]}";
    ok(server.kubectl_stdin(KUBECTL_133, &["create", "-f", "-"], orphan));
    let rs = "apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: nginx:1.27}]}";
    ok(server.kubectl_stdin(KUBECTL_133, &["create", "-f", "-"], rs));
    wait_running(&server, 3);
    let owner = get(
        &server,
        &[
            "pod",
            "orphan",
            "-o",
            "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}",
        ],
    );
    assert_eq!(owner, "ReplicaSet/web", "the orphan was adopted");
    let ready = eventually(WAIT, || {
        get(&server, &["rs", "web", "-o", "jsonpath={.status.readyReplicas}/{.status.availableReplicas}/{.status.fullyLabeledReplicas}"]) == "3/3/3"
    });
    assert!(
        ready,
        "ReplicaSet status counts 3 ready, available, fully labeled pods"
    );
    // Exactly three stay: no burst of events makes a fourth.
    std::thread::sleep(Duration::from_secs(2));
    let all = get(&server, &["pods", "-l", "app=web", "-o", "name"]);
    assert_eq!(all.lines().count(), 3, "{all}");

    // Rapid rescaling settles on the last size, with no pod too many or too few.
    for n in ["10", "2", "6"] {
        ok(server.kubectl(
            KUBECTL_133,
            &["scale", "rs/web", &format!("--replicas={n}")],
        ));
    }
    wait_running(&server, 6);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(running_pods(&server).len(), 6);

    // A ReplicationController runs its pods the same way.
    let rc = "apiVersion: v1
kind: ReplicationController
metadata: {name: legacy}
spec:
  replicas: 2
  template:
    metadata: {labels: {app: legacy}}
    spec: {containers: [{name: c, image: nginx:1.27}]}";
    ok(server.kubectl_stdin(KUBECTL_133, &["create", "-f", "-"], rc));
    let ready = eventually(WAIT, || {
        get(
            &server,
            &["rc", "legacy", "-o", "jsonpath={.status.readyReplicas}"],
        ) == "2"
    });
    assert!(ready, "the ReplicationController has 2 ready pods");
}

fn job(name: &str, spec: &str, exit_code: u8) -> String {
    format!(
        "apiVersion: batch/v1
kind: Job
metadata: {{name: {name}}}
spec:
{spec}
  template:
    metadata:
      annotations: {{keelson.dev/sim-duration-seconds: '1', keelson.dev/sim-exit-code: '{exit_code}'}}
    spec:
      restartPolicy: Never
      containers: [{{name: c, image: busybox:1.36}}]"
    )
}

fn wait_job(server: &Server, name: &str, condition: &str) {
    ok(server.kubectl(
        KUBECTL_133,
        &[
            "wait",
            &format!("--for=condition={condition}"),
            &format!("job/{name}"),
            "--timeout=60s",
        ],
    ));
}

#[test]
fn jobs_complete_fail_and_index() {
    let server = Server::start_with_scheduler(&[]);
    let _nodes = Component::sim_nodes(&server, &["2"]);
    let jobs = [
        job("done", "  completions: 3\n  parallelism: 2", 0),
        job("fails", "  backoffLimit: 1", 1),
        job(
            "indexed",
            "  completions: 3\n  parallelism: 3\n  completionMode: Indexed",
            0,
        ),
    ];
    for j in &jobs {
        ok(server.kubectl_stdin(KUBECTL_133, &["create", "-f", "-"], j));
    }
    wait_job(&server, "done", "complete");
    assert_eq!(
        get(
            &server,
            &[
                "job",
                "done",
                "-o",
                "jsonpath={.status.succeeded}/{.status.active}"
            ]
        ),
        "3/0"
    );
    wait_job(&server, "fails", "failed");
    assert_eq!(
        get(
            &server,
            &[
                "job",
                "fails",
                "-o",
                r#"jsonpath={.status.failed}/{.status.conditions[?(@.type=="Failed")].reason}"#,
            ],
        ),
        "2/BackoffLimitExceeded",
        "backoffLimit 1 allows one retry"
    );
    wait_job(&server, "indexed", "complete");
    assert_eq!(
        get(
            &server,
            &[
                "job",
                "indexed",
                "-o",
                "jsonpath={.status.completedIndexes}"
            ]
        ),
        "0-2"
    );
    let mut indexes: Vec<String> = get(
        &server,
        &[
            "pods",
            "-l",
            "batch.kubernetes.io/job-name=indexed",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.annotations.batch\.kubernetes\.io/job-completion-index}{"\n"}{end}"#,
        ],
    )
    .lines()
    .map(str::to_string)
    .collect();
    indexes.sort();
    assert_eq!(indexes, ["0", "1", "2"]);
}

/// `node pod-image` lines of the DaemonSet `agent`'s live pods.
fn daemon_pods(server: &Server) -> Vec<String> {
    let mut lines: Vec<String> = get(
        server,
        &[
            "pods",
            "-l",
            "app=agent",
            "-o",
            r#"jsonpath={range .items[*]}{.spec.nodeName} {.spec.containers[0].image} {.metadata.deletionTimestamp}{"\n"}{end}"#,
        ],
    )
    .lines()
    .filter(|l| l.split_whitespace().count() == 2)
    .map(|l| l.trim().to_string())
    .collect();
    lines.sort();
    lines
}

#[test]
fn daemonset_covers_eligible_nodes() {
    let server = Server::start_with_scheduler(&[]);
    let _nodes = Component::sim_nodes(&server, &["2"]);
    let _tainted = Component::sim_nodes(
        &server,
        &[
            "1",
            "--name-prefix",
            "db-",
            "--taint",
            "dedicated=db:NoSchedule",
        ],
    );
    let ds = "apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: c, image: agent:1}]}";
    ok(server.kubectl_stdin(KUBECTL_133, &["create", "-f", "-"], ds));
    let mut pods = Vec::new();
    let covered = eventually(WAIT, || {
        pods = daemon_pods(&server);
        pods == ["sim-0 agent:1", "sim-1 agent:1"]
    });
    assert!(
        covered,
        "one pod per untainted node: {pods:?}\n{}",
        get(&server, &["pods", "-o", "wide"]) + &get(&server, &["events"])
    );
    ok(server.kubectl(
        KUBECTL_133,
        &["rollout", "status", "ds/agent", "--timeout=60s"],
    ));

    // A new node gets its pod.
    let _extra = Component::sim_nodes(&server, &["1", "--name-prefix", "extra-"]);
    let followed = eventually(WAIT, || {
        pods = daemon_pods(&server);
        pods.len() == 3 && pods[0] == "extra-0 agent:1"
    });
    assert!(followed, "the new node got a pod: {pods:?}");

    // A new image rolls over every node.
    ok(server.kubectl(KUBECTL_133, &["set", "image", "ds/agent", "c=agent:2"]));
    ok(server.kubectl(
        KUBECTL_133,
        &["rollout", "status", "ds/agent", "--timeout=60s"],
    ));
    let rolled = eventually(WAIT, || {
        pods = daemon_pods(&server);
        pods == ["extra-0 agent:2", "sim-0 agent:2", "sim-1 agent:2"]
    });
    assert!(rolled, "every node runs the new image: {pods:?}");
}

#[test]
fn recreate_restart_and_progress_deadline() {
    let server = Server::start_with_scheduler(&[]);
    let _nodes = Component::sim_nodes(&server, &["2"]);
    let recreate = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  strategy: {type: Recreate}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: nginx, image: nginx:1.27}]}";
    ok(server.kubectl_stdin(KUBECTL_133, &["create", "-f", "-"], recreate));
    rollout_status(&server);
    ok(server.kubectl(
        KUBECTL_133,
        &["set", "image", "deployment/web", "nginx=nginx:1.28"],
    ));
    rollout_status(&server);
    wait_running(&server, 2);
    let sizes = get(
        &server,
        &[
            "rs",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.replicas}",
        ],
    );
    let mut sizes: Vec<&str> = sizes.split_whitespace().collect();
    sizes.sort();
    assert_eq!(sizes, ["0", "2"], "Recreate leaves the old ReplicaSet at 0");

    // `rollout restart` changes the template, so a third ReplicaSet rolls out.
    ok(server.kubectl(KUBECTL_133, &["rollout", "restart", "deployment/web"]));
    rollout_status(&server);
    assert_eq!(replicasets(&server).len(), 3);

    // Pods that can never be placed: the rollout exceeds its deadline and says so.
    let stuck = "apiVersion: apps/v1
kind: Deployment
metadata: {name: stuck}
spec:
  replicas: 1
  progressDeadlineSeconds: 3
  selector: {matchLabels: {app: stuck}}
  template:
    metadata: {labels: {app: stuck}}
    spec:
      nodeSelector: {disk: none}
      containers: [{name: c, image: nginx:1.27}]";
    ok(server.kubectl_stdin(KUBECTL_133, &["create", "-f", "-"], stuck));
    let err = fails(server.kubectl(
        KUBECTL_133,
        &["rollout", "status", "deployment/stuck", "--timeout=30s"],
    ));
    assert!(err.contains("exceeded its progress deadline"), "{err}");
    let reason = get(
        &server,
        &[
            "deployment",
            "stuck",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Progressing")].reason}"#,
        ],
    );
    assert_eq!(reason, "ProgressDeadlineExceeded");
}
