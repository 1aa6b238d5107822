//! The StatefulSet controller on simulated nodes, driven by kubectl 1.33: pods come up one at
//! a time in ordinal order with their claims, `rollout status` follows a rolling update from
//! the highest ordinal and a partitioned one, `rollout history|undo` use ControllerRevisions,
//! and a scale-down removes the highest ordinal first and waits for it.

use std::time::Duration;

use crate::harness::{eventually, ok, Component, Server, KUBECTL_133};

const WAIT: Duration = Duration::from_secs(60);

const WEB: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: nginx}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: web, port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: nginx
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, image: "nginx:1.27"}]
  volumeClaimTemplates:
  - metadata: {name: www}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"#;

fn get(server: &Server, args: &[&str]) -> String {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    String::from_utf8_lossy(&server.kubectl(KUBECTL_133, &all).stdout).into_owned()
}

/// `name image deleting?` of every pod of web, sorted by name.
fn pods(server: &Server) -> Vec<(String, String, bool)> {
    let out = get(
        server,
        &[
            "pods",
            "-l",
            "app=web",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name} {.spec.containers[0].image} {.metadata.deletionTimestamp}{"\n"}{end}"#,
        ],
    );
    let mut v: Vec<_> = out
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((
                f.next()?.to_string(),
                f.next()?.to_string(),
                f.next().is_some(),
            ))
        })
        .collect();
    v.sort();
    v
}

fn names(server: &Server) -> Vec<String> {
    pods(server).into_iter().map(|p| p.0).collect()
}

fn rollout_status(server: &Server) -> String {
    ok(server.kubectl(
        KUBECTL_133,
        &["rollout", "status", "statefulset/web", "--timeout=60s"],
    ))
}

#[test]
fn statefulset_orders_pods_rolls_and_scales_down_in_reverse() {
    let server = Server::start_with_scheduler(&[]);
    ok(server.kubectl_stdin(KUBECTL_133, &["apply", "-f", "-"], WEB));

    // Without nodes web-0 stays Pending, and OrderedReady makes nothing after it.
    assert!(eventually(WAIT, || names(&server) == ["web-0"]));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        names(&server),
        ["web-0"],
        "web-1 waits for web-0 to be Ready"
    );
    assert!(get(&server, &["pvc", "www-web-0", "-o", "name"]).contains("www-web-0"));

    let mut nodes = Component::sim_nodes(&server, &["2"]);
    rollout_status(&server);
    assert_eq!(names(&server), ["web-0", "web-1", "web-2"]);
    let claims = get(
        &server,
        &["pvc", "-o", "jsonpath={.items[*].metadata.name}"],
    );
    assert_eq!(claims, "www-web-0 www-web-1 www-web-2");
    let identity = get(
        &server,
        &[
            "pod",
            "web-1",
            "-o",
            r#"jsonpath={.spec.hostname} {.spec.subdomain} {.metadata.labels.apps\.kubernetes\.io/pod-index} {.spec.volumes[?(@.name=="www")].persistentVolumeClaim.claimName}"#,
        ],
    );
    assert_eq!(identity, "web-1 nginx 1 www-web-1");
    let status = get(
        &server,
        &[
            "sts",
            "web",
            "-o",
            "jsonpath={.status.replicas} {.status.readyReplicas} {.status.currentRevision} {.status.updateRevision}",
        ],
    );
    let fields: Vec<&str> = status.split_whitespace().collect();
    assert_eq!(fields[..2], ["3", "3"], "{status}");
    assert!(
        fields[2].starts_with("web-") && fields[2] == fields[3],
        "{status}"
    );
    let revision = get(
        &server,
        &[
            "controllerrevision",
            fields[2],
            "-o",
            "jsonpath={.revision}",
        ],
    );
    assert_eq!(revision, "1");
    let events = get(
        &server,
        &[
            "events",
            "--field-selector",
            "reason=SuccessfulCreate",
            "-o",
            "jsonpath={.items[*].message}",
        ],
    );
    assert!(
        events.contains("create Pod web-0 in StatefulSet web successful")
            && events.contains("create Claim www-web-2 Pod web-2 in StatefulSet web success"),
        "{events}"
    );

    // A rolling update replaces every pod; history has two revisions.
    ok(server.kubectl(
        KUBECTL_133,
        &["set", "image", "statefulset/web", "nginx=nginx:1.28"],
    ));
    let done = rollout_status(&server);
    assert!(
        done.contains("partitioned roll out complete: 3 new pods have been updated"),
        "{done}"
    );
    assert!(eventually(WAIT, || pods(&server)
        .iter()
        .all(|p| p.1 == "nginx:1.28" && !p.2)));
    let history = ok(server.kubectl(KUBECTL_133, &["rollout", "history", "statefulset/web"]));
    let revisions = history
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .count();
    assert_eq!(revisions, 2, "{history}");

    // Undo applies the first revision's template again; it becomes revision 3.
    ok(server.kubectl(KUBECTL_133, &["rollout", "undo", "statefulset/web"]));
    rollout_status(&server);
    assert!(eventually(WAIT, || pods(&server)
        .iter()
        .all(|p| p.1 == "nginx:1.27" && !p.2)));
    let numbers = get(
        &server,
        &["controllerrevision", "-o", "jsonpath={.items[*].revision}"],
    );
    let mut numbers: Vec<&str> = numbers.split_whitespace().collect();
    numbers.sort();
    assert_eq!(numbers, ["2", "3"], "the undone-to revision is renumbered");

    // With partition 2 only web-2 moves to the next image.
    ok(server.kubectl(
        KUBECTL_133,
        &[
            "patch",
            "statefulset/web",
            "-p",
            r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}}}}"#,
        ],
    ));
    ok(server.kubectl(
        KUBECTL_133,
        &["set", "image", "statefulset/web", "nginx=nginx:1.29"],
    ));
    let done = rollout_status(&server);
    assert!(
        done.contains("partitioned roll out complete: 1 new pods have been updated"),
        "{done}"
    );
    let images: Vec<String> = pods(&server).into_iter().map(|p| p.1).collect();
    assert_eq!(images, ["nginx:1.27", "nginx:1.27", "nginx:1.29"]);

    // Scale-down: with the nodes gone web-2 stays Terminating, and web-1 waits for it.
    nodes.kill();
    ok(server.kubectl(KUBECTL_133, &["scale", "statefulset/web", "--replicas=1"]));
    assert!(eventually(WAIT, || pods(&server)
        .iter()
        .any(|p| p.0 == "web-2" && p.2)));
    std::thread::sleep(Duration::from_secs(3));
    let now = pods(&server);
    assert!(
        now.iter().any(|p| p.0 == "web-1" && !p.2),
        "web-1 is kept while web-2 terminates: {now:?}"
    );
    let _nodes = Component::sim_nodes(&server, &["2"]);
    assert!(eventually(WAIT, || names(&server) == ["web-0"]));
    let claims = get(
        &server,
        &["pvc", "-o", "jsonpath={.items[*].metadata.name}"],
    );
    assert_eq!(
        claims, "www-web-0 www-web-1 www-web-2",
        "claims are retained"
    );
}
