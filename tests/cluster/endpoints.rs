//! Endpoints and EndpointSlices on simulated nodes, driven by kubectl 1.33: a Service's
//! selector picks up the Ready pods of a Deployment with its named target port resolved, a pod
//! that turns unready moves to `notReadyAddresses` (and `ready: false` in its slice), a
//! scale-down drops an address, and deleting the Service removes both.

use std::time::Duration;

use crate::harness::{eventually, ok, Component, Server, KUBECTL_133};

const WAIT: Duration = Duration::from_secs(60);

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web, labels: {team: a}}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"#;

fn get(server: &Server, args: &[&str]) -> String {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    String::from_utf8_lossy(&server.kubectl(KUBECTL_133, &all).stdout).into_owned()
}

fn words(s: String) -> Vec<String> {
    let mut v: Vec<String> = s.split_whitespace().map(str::to_string).collect();
    v.sort();
    v
}

fn pod_ips(server: &Server) -> Vec<String> {
    words(get(
        server,
        &[
            "pods",
            "-l",
            "app=web",
            "-o",
            r#"jsonpath={range .items[*]}{.status.podIP} {end}"#,
        ],
    ))
}

fn endpoints(server: &Server, field: &str) -> Vec<String> {
    words(get(
        server,
        &[
            "endpoints",
            "web",
            "-o",
            &format!("jsonpath={{.subsets[*].{field}[*].ip}}"),
        ],
    ))
}

/// `ip=ready` of every endpoint in web's slices.
fn slice_endpoints(server: &Server) -> Vec<String> {
    words(get(
        server,
        &[
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            r#"jsonpath={range .items[*].endpoints[*]}{.addresses[0]}={.conditions.ready} {end}"#,
        ],
    ))
}

#[test]
fn endpoints_follow_ready_pods() {
    let server = Server::start_with_scheduler(&[]);
    let _nodes = Component::sim_nodes(&server, &["2"]);
    ok(server.kubectl_stdin(KUBECTL_133, &["apply", "-f", "-"], WEB));
    ok(server.kubectl(
        KUBECTL_133,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    ));
    // The Deployment and ReplicaSet controllers report what they did, in Kubernetes' words.
    let rs = get(
        &server,
        &[
            "rs",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ],
    );
    let pod = get(
        &server,
        &[
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ],
    );
    let events = get(
        &server,
        &[
            "events",
            "-o",
            "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
        ],
    );
    assert!(
        events.contains(&format!(
            "ScalingReplicaSet: Scaled up replica set {rs} from 0 to 3"
        )) && events.contains(&format!("SuccessfulCreate: Created pod: {pod}")),
        "{events}"
    );
    let mut ips = Vec::new();
    assert!(
        eventually(WAIT, || {
            ips = pod_ips(&server);
            ips.len() == 3 && endpoints(&server, "addresses") == ips
        }),
        "Endpoints list the 3 ready pods {ips:?}: {:?}",
        endpoints(&server, "addresses")
    );
    let ports = get(
        &server,
        &[
            "endpoints",
            "web",
            "-o",
            "jsonpath={.subsets[0].ports[0].name}={.subsets[0].ports[0].port}",
        ],
    );
    assert_eq!(ports, "http=8080", "the named targetPort is resolved");
    let target = get(
        &server,
        &[
            "endpoints",
            "web",
            "-o",
            "jsonpath={.subsets[0].addresses[0].targetRef.kind}",
        ],
    );
    assert_eq!(target, "Pod");

    let expected: Vec<String> = ips.iter().map(|ip| format!("{ip}=true")).collect();
    assert!(eventually(WAIT, || slice_endpoints(&server) == expected));
    let labels = get(
        &server,
        &[
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            r#"jsonpath={.items[0].metadata.labels.endpointslice\.kubernetes\.io/managed-by} {.items[0].metadata.labels.team} {.items[0].metadata.ownerReferences[0].kind} {.items[0].addressType} {.items[0].ports[0].port}"#,
        ],
    );
    assert_eq!(
        labels,
        "endpointslice-controller.k8s.io a Service IPv4 8080"
    );

    // A pod that turns unready moves to notReadyAddresses.
    let name = get(
        &server,
        &[
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ],
    );
    let ip = get(&server, &["pod", &name, "-o", "jsonpath={.status.podIP}"]);
    ok(server.kubectl(
        KUBECTL_133,
        &[
            "patch",
            "pod",
            &name,
            "--subresource=status",
            "--type=strategic",
            "-p",
            r#"{"status":{"conditions":[{"type":"Ready","status":"False"}]}}"#,
        ],
    ));
    assert!(eventually(WAIT, || endpoints(&server, "notReadyAddresses")
        == [ip.clone()]));
    assert_eq!(endpoints(&server, "addresses").len(), 2);
    assert!(eventually(WAIT, || slice_endpoints(&server)
        .contains(&format!("{ip}=false"))));

    // Scale-down drops addresses.
    ok(server.kubectl(KUBECTL_133, &["scale", "deployment/web", "--replicas=1"]));
    assert!(eventually(WAIT, || {
        let all = [
            endpoints(&server, "addresses"),
            endpoints(&server, "notReadyAddresses"),
        ]
        .concat();
        all.len() == 1 && slice_endpoints(&server).len() == 1
    }));

    // Deleting the Service takes its Endpoints and slices.
    ok(server.kubectl(KUBECTL_133, &["delete", "service", "web"]));
    assert!(eventually(WAIT, || {
        !server
            .kubectl(KUBECTL_133, &["get", "endpoints", "web"])
            .status
            .success()
            && slice_endpoints(&server).is_empty()
            && get(
                &server,
                &[
                    "endpointslices",
                    "-l",
                    "kubernetes.io/service-name=web",
                    "-o",
                    "name",
                ],
            )
            .is_empty()
    }));
}
