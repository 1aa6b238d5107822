//! The scheduler on simulated nodes, driven by kubectl 1.33: pods land where resources,
//! nodeSelector, taints and tolerations, host ports, pod (anti-)affinity and topology spread
//! say; the simulated kubelet runs them; an unschedulable pod carries Kubernetes' message in
//! its events and condition and is placed once a node with room appears; a higher-priority pod
//! preempts a lower one; a second profile from `--scheduler-config` changes placement, and pods
//! naming no profile are left alone; pods on nodes are deleted gracefully and evictions honour
//! PodDisruptionBudgets; `keelson scheduler` runs standalone.

use std::time::Duration;

use crate::harness::{eventually, ok, Component, Server, KUBECTL_133};

const WAIT: Duration = Duration::from_secs(30);

fn pod(name: &str, extra_spec: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{{labels}}}
spec:
  containers:
  - name: c
    image: busybox:1.36
    resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}
{extra_spec}"
    )
}

fn node_of(server: &Server, name: &str) -> String {
    let out = server.kubectl(
        KUBECTL_133,
        &["get", "pod", name, "-o", "jsonpath={.spec.nodeName}"],
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_bound(server: &Server, name: &str) -> String {
    let mut node = String::new();
    let bound = eventually(WAIT, || {
        node = node_of(server, name);
        !node.is_empty()
    });
    assert!(bound, "pod {name} was not scheduled");
    node
}

fn apply(server: &Server, yaml: &str) {
    ok(server.kubectl_stdin(KUBECTL_133, &["apply", "-f", "-"], yaml));
}

fn events_of(server: &Server, name: &str) -> String {
    ok(server.kubectl(
        KUBECTL_133,
        &[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={name}"),
            "-o",
            "wide",
        ],
    ))
}

fn wait_nodes(server: &Server, n: usize) {
    let ready = eventually(WAIT, || {
        let out = server.kubectl(KUBECTL_133, &["get", "nodes", "--no-headers"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(" Ready"))
            .count()
            == n
    });
    assert!(ready, "{n} nodes did not register");
}

#[test]
fn pods_land_where_the_rules_say() {
    let server = Server::start_with_scheduler(&[]);
    let common = ["--cpu", "2", "--memory", "4Gi", "--pods", "20"];
    let _z1 = Component::sim_nodes(
        &server,
        &[
            &[
                "2",
                "--name-prefix",
                "a-",
                "--label",
                "zone=z1",
                "--label",
                "disk=ssd",
            ][..],
            &common,
        ]
        .concat(),
    );
    let _z2 = Component::sim_nodes(
        &server,
        &[
            &["1", "--name-prefix", "b-", "--label", "zone=z2"][..],
            &common,
        ]
        .concat(),
    );
    let _z3 = Component::sim_nodes(
        &server,
        &[
            &[
                "1",
                "--name-prefix",
                "t-",
                "--label",
                "zone=z3",
                "--taint",
                "dedicated=gpu:NoSchedule",
            ][..],
            &common,
        ]
        .concat(),
    );
    wait_nodes(&server, 4);

    // nodeSelector; the simulated kubelet then runs the pod.
    apply(&server, &pod("ssd", "  nodeSelector: {disk: ssd}", ""));
    assert!(wait_bound(&server, "ssd").starts_with("a-"));
    assert!(eventually(WAIT, || {
        let out = server.kubectl(
            KUBECTL_133,
            &[
                "get",
                "pod",
                "ssd",
                "-o",
                "jsonpath={.status.phase} {.status.podIP}",
            ],
        );
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        s.starts_with("Running 10.")
    }));
    assert!(events_of(&server, "ssd").contains("Successfully assigned default/ssd to a-"));

    // Taints and tolerations.
    let tolerate = "  nodeSelector: {zone: z3}\n  tolerations: [{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}]";
    apply(&server, &pod("gpu", tolerate, ""));
    assert_eq!(wait_bound(&server, "gpu"), "t-0");
    apply(
        &server,
        &pod("no-toleration", "  nodeSelector: {zone: z3}", ""),
    );
    let expected = "0/4 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, \
                    3 node(s) didn't match Pod's node affinity/selector. preemption: 0/4 nodes are \
                    available: 4 Preemption is not helpful for scheduling.";
    assert!(
        eventually(WAIT, || events_of(&server, "no-toleration")
            .contains(expected)),
        "{}",
        events_of(&server, "no-toleration")
    );
    let cond = ok(server.kubectl(
        KUBECTL_133,
        &[
            "get",
            "pod",
            "no-toleration",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].reason}",
        ],
    ));
    assert_eq!(cond, "Unschedulable");

    // Host ports: two pods on zone z1's two nodes, a third does not fit.
    let port = "  nodeSelector: {zone: z1}\n  containers:\n  - name: p\n    image: busybox:1.36\n    ports: [{containerPort: 80, hostPort: 8080}]";
    let port_pod = |name: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{port}\n")
    };
    apply(&server, &port_pod("port-1"));
    apply(&server, &port_pod("port-2"));
    let (n1, n2) = (wait_bound(&server, "port-1"), wait_bound(&server, "port-2"));
    assert_ne!(n1, n2);
    apply(&server, &port_pod("port-3"));
    assert!(eventually(WAIT, || events_of(&server, "port-3").contains(
        "2 node(s) didn't have free ports for the requested pod ports"
    )));

    // Required anti-affinity by hostname: two pods on two different z1/z2 nodes.
    let anti = "  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector: {matchLabels: {app: anti}}\n        topologyKey: kubernetes.io/hostname";
    for name in ["anti-1", "anti-2", "anti-3"] {
        apply(&server, &pod(name, anti, "app: anti"));
    }
    let placed: Vec<String> = ["anti-1", "anti-2", "anti-3"]
        .iter()
        .map(|n| wait_bound(&server, n))
        .collect();
    let mut distinct = placed.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{placed:?}");
    assert!(!placed.contains(&"t-0".to_string()));
    apply(&server, &pod("anti-4", anti, "app: anti"));
    assert!(eventually(WAIT, || events_of(&server, "anti-4").contains(
        "3 node(s) didn't satisfy existing pods anti-affinity rules"
    )));

    // Required affinity: follow the app=web pod to its zone.
    let affinity = "  affinity:\n    podAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector: {matchLabels: {app: web}}\n        topologyKey: zone";
    apply(
        &server,
        &pod("web", "  nodeSelector: {zone: z2}", "app: web"),
    );
    assert_eq!(wait_bound(&server, "web"), "b-0");
    apply(&server, &pod("follower", affinity, ""));
    assert_eq!(wait_bound(&server, "follower"), "b-0");

    // Topology spread over zones z1 and z2 (z3 excluded by node affinity): 2 and 2.
    let spread = "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions: [{key: zone, operator: In, values: [z1, z2]}]\n  topologySpreadConstraints:\n  - maxSkew: 1\n    topologyKey: zone\n    whenUnsatisfiable: DoNotSchedule\n    labelSelector: {matchLabels: {app: spread}}";
    let mut zones = Vec::new();
    for i in 0..4 {
        let name = format!("spread-{i}");
        apply(&server, &pod(&name, spread, "app: spread"));
        let node = wait_bound(&server, &name);
        zones.push(if node.starts_with("a-") { "z1" } else { "z2" });
    }
    zones.sort();
    assert_eq!(zones, ["z1", "z1", "z2", "z2"]);
}

#[test]
fn unschedulable_pod_is_placed_when_a_node_with_room_appears() {
    let server = Server::start_with_scheduler(&[]);
    let _small = Component::sim_nodes(
        &server,
        &[
            "2",
            "--name-prefix",
            "small-",
            "--cpu",
            "1",
            "--memory",
            "2Gi",
        ],
    );
    wait_nodes(&server, 2);
    let big = "apiVersion: v1\nkind: Pod\nmetadata: {name: big}\nspec:\n  containers:\n  - name: c\n    image: busybox:1.36\n    resources: {requests: {cpu: \"3\"}}\n";
    apply(&server, big);
    let expected =
        "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: \
                    2 Preemption is not helpful for scheduling.";
    assert!(
        eventually(WAIT, || events_of(&server, "big").contains(expected)),
        "{}",
        events_of(&server, "big")
    );
    let describe = ok(server.kubectl(KUBECTL_133, &["describe", "pod", "big"]));
    assert!(describe.contains("FailedScheduling"), "{describe}");
    assert!(describe.contains("default-scheduler"), "{describe}");
    assert!(describe.contains("2 Insufficient cpu"), "{describe}");
    assert_eq!(node_of(&server, "big"), "");

    let _large = Component::sim_nodes(
        &server,
        &[
            "1",
            "--name-prefix",
            "large-",
            "--cpu",
            "8",
            "--memory",
            "16Gi",
        ],
    );
    assert_eq!(wait_bound(&server, "big"), "large-0");
    // A pod that runs for a second and fails.
    let short = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: short\n  annotations: {keelson.dev/sim-duration-seconds: \"1\", keelson.dev/sim-exit-code: \"3\"}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: busybox:1.36\n";
    apply(&server, short);
    assert!(eventually(WAIT, || {
        let out = server.kubectl(
            KUBECTL_133,
            &["get", "pod", "short", "-o", "jsonpath={.status.phase}"],
        );
        String::from_utf8_lossy(&out.stdout) == "Failed"
    }));
}

const SCHEDULER_CONFIG: &str = "apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: default-scheduler
- schedulerName: ignore-taints
  plugins:
    filter:
      disabled: [{name: TaintToleration}]
";

#[test]
fn preemption_and_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("scheduler.yaml");
    std::fs::write(&config, SCHEDULER_CONFIG).unwrap();
    let server = Server::start_with_scheduler(&["--scheduler-config", config.to_str().unwrap()]);
    let _node = Component::sim_nodes(
        &server,
        &[
            "1",
            "--name-prefix",
            "only-",
            "--cpu",
            "1",
            "--memory",
            "2Gi",
            "--taint",
            "team=a:NoSchedule",
        ],
    );
    wait_nodes(&server, 1);

    // The second profile ignores taints; a pod naming no profile is left alone.
    let with = |name: &str, scheduler: &str, extra: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  schedulerName: {scheduler}\n{extra}  containers:\n  - name: c\n    image: busybox:1.36\n    resources: {{requests: {{cpu: 400m}}}}\n")
    };
    apply(&server, &with("ignorer", "ignore-taints", ""));
    assert_eq!(wait_bound(&server, "ignorer"), "only-0");
    apply(&server, &with("tainted-out", "default-scheduler", ""));
    assert!(eventually(WAIT, || events_of(&server, "tainted-out")
        .contains("1 node(s) had untolerated taint {team: a}")));
    apply(&server, &with("other", "someone-else", ""));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(node_of(&server, "other"), "");
    assert!(!events_of(&server, "other").contains("default-scheduler"));

    // Preemption: a high-priority pod evicts the low one that holds the cpu.
    ok(server.kubectl(KUBECTL_133, &["delete", "pod", "tainted-out", "other"]));
    apply(&server, "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: high}\nvalue: 1000\n");
    let tolerate = "  tolerations: [{key: team, operator: Exists}]\n";
    apply(
        &server,
        &with("low", "default-scheduler", tolerate).replace("400m", "500m"),
    );
    assert_eq!(wait_bound(&server, "low"), "only-0");
    let high = with(
        "high",
        "default-scheduler",
        &format!("{tolerate}  priorityClassName: high\n"),
    )
    .replace("400m", "500m");
    apply(&server, &high);
    assert_eq!(wait_bound(&server, "high"), "only-0");
    assert!(
        eventually(WAIT, || {
            let out = server.kubectl(KUBECTL_133, &["get", "pod", "low"]);
            !out.status.success()
        }),
        "the low-priority pod was not preempted"
    );
    let nominated = ok(server.kubectl(
        KUBECTL_133,
        &[
            "get",
            "pod",
            "high",
            "-o",
            "jsonpath={.status.nominatedNodeName}",
        ],
    ));
    assert_eq!(nominated, "only-0");
    let events = ok(server.kubectl(KUBECTL_133, &["get", "events", "-o", "wide"]));
    assert!(events.contains("Preempted by pod"), "{events}");
}

#[test]
fn graceful_deletion_and_eviction() {
    let server = Server::start_with_scheduler(&[]);
    // A node with no agent: graceful deletions stay visible.
    apply(&server, "apiVersion: v1\nkind: Node\nmetadata:\n  name: manual\n  labels: {kubernetes.io/hostname: manual}\n");
    ok(server.kubectl(
        KUBECTL_133,
        &["patch", "node", "manual", "--subresource=status", "--type=merge", "-p",
          r#"{"status":{"allocatable":{"cpu":"2","memory":"4Gi","pods":"10"},"capacity":{"cpu":"2","memory":"4Gi","pods":"10"}}}"#],
    ));
    apply(
        &server,
        &pod(
            "slow",
            "  nodeSelector: {kubernetes.io/hostname: manual}\n  terminationGracePeriodSeconds: 45",
            "",
        ),
    );
    assert_eq!(wait_bound(&server, "slow"), "manual");
    ok(server.kubectl(KUBECTL_133, &["delete", "pod", "slow", "--wait=false"]));
    let grace = ok(server.kubectl(
        KUBECTL_133,
        &[
            "get",
            "pod",
            "slow",
            "-o",
            "jsonpath={.metadata.deletionGracePeriodSeconds}",
        ],
    ));
    assert_eq!(grace, "45");
    ok(server.kubectl(
        KUBECTL_133,
        &["delete", "pod", "slow", "--grace-period=0", "--force"],
    ));
    assert!(!server
        .kubectl(KUBECTL_133, &["get", "pod", "slow"])
        .status
        .success());
    // An unbound pod goes at once.
    apply(
        &server,
        &pod("nowhere", "  nodeSelector: {missing: label}", ""),
    );
    ok(server.kubectl(KUBECTL_133, &["delete", "pod", "nowhere", "--wait=false"]));
    assert!(!server
        .kubectl(KUBECTL_133, &["get", "pod", "nowhere"])
        .status
        .success());

    // Eviction through kubectl drain honours the PodDisruptionBudget; the simulated kubelet
    // finishes the graceful deletion.
    let _sim = Component::sim_nodes(&server, &["1", "--name-prefix", "drain-"]);
    // "manual" has no Ready condition; the simulated node has.
    wait_nodes(&server, 1);
    apply(
        &server,
        &pod(
            "guarded",
            "  nodeSelector: {kubernetes.io/hostname: drain-0}",
            "app: guarded",
        ),
    );
    assert_eq!(wait_bound(&server, "guarded"), "drain-0");
    apply(&server, "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: keep}\nspec:\n  minAvailable: 1\n  selector: {matchLabels: {app: guarded}}\n");
    // The disruption controller computes the budget: one healthy pod, one required.
    let allowed = || {
        ok(server.kubectl(
            KUBECTL_133,
            &[
                "get",
                "pdb",
                "keep",
                "-o",
                "jsonpath={.status.disruptionsAllowed}/{.status.currentHealthy}",
            ],
        ))
    };
    assert!(eventually(Duration::from_secs(20), || allowed() == "0/1"));
    let drain = server.kubectl(
        KUBECTL_133,
        &[
            "drain",
            "drain-0",
            "--pod-selector",
            "app=guarded",
            "--force",
            "--timeout=3s",
        ],
    );
    let stderr = String::from_utf8_lossy(&drain.stderr).into_owned();
    assert!(!drain.status.success());
    assert!(
        stderr.contains("Cannot evict pod as it would violate the pod's disruption budget"),
        "{stderr}"
    );
    ok(server.kubectl(
        KUBECTL_133,
        &[
            "patch",
            "pdb",
            "keep",
            "--type=merge",
            "-p",
            r#"{"spec":{"minAvailable":0}}"#,
        ],
    ));
    assert!(eventually(Duration::from_secs(20), || allowed() == "1/1"));
    ok(server.kubectl(
        KUBECTL_133,
        &[
            "drain",
            "drain-0",
            "--pod-selector",
            "app=guarded",
            "--force",
            "--timeout=20s",
        ],
    ));
    assert!(!server
        .kubectl(KUBECTL_133, &["get", "pod", "guarded"])
        .status
        .success());
    let left = ok(server.kubectl(
        KUBECTL_133,
        &[
            "get",
            "pdb",
            "keep",
            "-o",
            "jsonpath={.status.disruptionsAllowed}",
        ],
    ));
    assert_eq!(left, "0");
}

#[test]
fn standalone_scheduler() {
    // The server runs without its own scheduler; `keelson scheduler --kubeconfig` places pods.
    let server = Server::start();
    let _nodes = Component::sim_nodes(&server, &["1", "--name-prefix", "solo-"]);
    wait_nodes(&server, 1);
    apply(&server, &pod("waiting", "", ""));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        node_of(&server, "waiting"),
        "",
        "the server must not schedule with --disable-scheduler"
    );
    let _scheduler = Component::scheduler(&server, &[]);
    assert_eq!(wait_bound(&server, "waiting"), "solo-0");
}
