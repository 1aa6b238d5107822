//! Service networking through the real agent's proxy, inside namespaces the test makes (see
//! `netns`): from a pod, a ClusterIP reaches the backends and spreads over them, a NodePort
//! answers on the node's address, a Service without ready endpoints is refused at once,
//! endpoint changes reach the rules within a second, a flushed or deleted table comes back,
//! and a restarted agent keeps traffic flowing and leaves no stale rules.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::harness::{eventually, ok, Server, KUBECTL_133};
use crate::netns::{api_relay, http_backend, http_get, Agent, Topology, NODE_IP};

const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
"#;

/// The EndpointSlice of `web` (a selector-less Service's slice, as its owner writes it):
/// `(ip, ready)` per endpoint.
fn slice(endpoints: &[(&str, bool)]) -> String {
    let eps: Vec<String> = endpoints
        .iter()
        .map(|(ip, ready)| {
            format!(
                "  - {{addresses: [\"{ip}\"], conditions: {{ready: {ready}, serving: {ready}}}, nodeName: knode}}"
            )
        })
        .collect();
    format!(
        r#"apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  labels: {{kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{{name: http, port: 8080, protocol: TCP}}]
endpoints:
{}
"#,
        if eps.is_empty() {
            "  []".to_string()
        } else {
            eps.join("\n")
        }
    )
    .replace("endpoints:\n  []", "endpoints: []")
}

fn apply(server: &Server, yaml: &str) {
    ok(server.kubectl_stdin(KUBECTL_133, &["apply", "-f", "-"], yaml));
}

fn cluster_ip(server: &Server, name: &str) -> String {
    ok(server.kubectl(
        KUBECTL_133,
        &["get", "svc", name, "-o", "jsonpath={.spec.clusterIP}"],
    ))
}

/// The set of bodies `n` requests to `addr` from the client pod got (errors as "ERR").
fn answers(topo: &Topology, addr: &str, n: usize) -> BTreeSet<String> {
    (0..n)
        .map(|_| http_get(topo.ns("client"), addr).unwrap_or_else(|_| "ERR".into()))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Applies `yaml` and returns how long until `n` consecutive requests answered `want`.
fn change_takes(
    server: &Server,
    topo: &Topology,
    yaml: &str,
    addr: &str,
    want: &[&str],
) -> Duration {
    apply(server, yaml);
    let applied = Instant::now();
    let want = set(want);
    let ok = eventually(Duration::from_secs(10), || {
        let got = answers(topo, addr, 12);
        if got != want {
            eprintln!("{got:?} after {:?}", applied.elapsed());
        }
        got == want
    });
    assert!(ok, "never saw {want:?}");
    applied.elapsed()
}

#[test]
#[ignore = "needs root, ip netns and nft (tools/test.sh installs nftables)"]
fn cluster_ip_node_port_reject_and_endpoint_changes_through_the_agents_proxy() {
    let server = Server::start();
    let mut topo = Topology::new();
    topo.pod("a", "10.42.0.10");
    topo.pod("b", "10.42.0.11");
    topo.pod("client", "10.42.0.20");
    let _a = http_backend(topo.ns("a"), "10.42.0.10:8080", "a");
    let _b = http_backend(topo.ns("b"), "10.42.0.11:8080", "b");
    let _relay = api_relay(&topo.node, server.port);
    let mut agent = Agent::start(&server, &topo.node, &[]);
    apply(&server, SERVICES);
    apply(
        &server,
        &slice(&[("10.42.0.10", true), ("10.42.0.11", true)]),
    );
    let web = format!("{}:80", cluster_ip(&server, "web"));
    let empty = format!("{}:80", cluster_ip(&server, "empty"));

    // ClusterIP: reaches both backends.
    let spread = eventually(Duration::from_secs(30), || {
        answers(&topo, &web, 30) == set(&["a", "b"])
    });
    assert!(spread, "{}\n{}", topo.node.nft_table(), agent.log_text());
    // NodePort on the node's address.
    let node_port = format!("{NODE_IP}:30080");
    assert_eq!(answers(&topo, &node_port, 30), set(&["a", "b"]));
    // No endpoints: refused at once (a reject, not a timeout).
    let started = Instant::now();
    let err = http_get(topo.ns("client"), &empty).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    assert!(started.elapsed() < Duration::from_millis(500));

    // Endpoint changes reach the rules within a second (measured with the API round trip
    // and 12 requests per probe).
    let down = change_takes(
        &server,
        &topo,
        &slice(&[("10.42.0.10", true), ("10.42.0.11", false)]),
        &web,
        &["a"],
    );
    assert!(down < Duration::from_secs(1), "scale down took {down:?}");
    let up = change_takes(
        &server,
        &topo,
        &slice(&[("10.42.0.10", true), ("10.42.0.11", true)]),
        &web,
        &["a", "b"],
    );
    assert!(up < Duration::from_secs(2), "scale up took {up:?}");
    let none = change_takes(&server, &topo, &slice(&[]), &web, &["ERR"]);
    assert!(none < Duration::from_secs(1), "removal took {none:?}");
    let err = http_get(topo.ns("client"), &web).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    apply(
        &server,
        &slice(&[("10.42.0.10", true), ("10.42.0.11", true)]),
    );
    assert!(eventually(Duration::from_secs(5), || answers(
        &topo, &web, 20
    ) == set(&["a", "b"])));

    // Someone else flushes the table, then deletes it: the proxy writes it back.
    for cmd in [
        &["nft", "flush", "table", "ip", "keelson"][..],
        &["nft", "delete", "table", "ip", "keelson"][..],
    ] {
        let resyncs = |a: &Agent| a.log_text().matches("changed by someone else").count();
        let before = resyncs(&agent);
        ok(topo.node.exec(cmd));
        assert!(!topo.node.nft_table().contains("@service-ips"));
        let noticed = eventually(Duration::from_secs(10), || resyncs(&agent) > before);
        assert!(noticed, "{cmd:?} went unnoticed\n{}", agent.log_text());
        let back = eventually(Duration::from_secs(5), || {
            answers(&topo, &web, 20) == set(&["a", "b"])
        });
        assert!(back, "{cmd:?}: rules not restored\n{}", agent.log_text());
    }

    // The agent dies: its rules stay, so traffic flows; b goes away meanwhile.
    agent.kill();
    apply(&server, &slice(&[("10.42.0.10", true)]));
    assert_eq!(answers(&topo, &web, 20), set(&["a", "b"]));
    // Restarted, it replaces the table in one transaction: no request fails while it
    // starts, and b's stale rules are gone.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = {
        let stop = stop.clone();
        let client = topo.ns("client").name.clone();
        let web = web.clone();
        std::thread::spawn(move || {
            let ns = crate::netns::Netns::existing(client);
            let mut failures = 0;
            let mut count = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                count += 1;
                if http_get(&ns, &web).is_err() {
                    failures += 1;
                }
            }
            (count, failures)
        })
    };
    agent.restart();
    let clean = eventually(Duration::from_secs(30), || {
        let table = topo.node.nft_table();
        !table.is_empty() && !table.contains("10.42.0.11")
    });
    assert!(clean, "{}", topo.node.nft_table());
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (count, failures) = probe.join().unwrap();
    assert!(count > 10, "only {count} probes");
    assert_eq!(
        failures, 0,
        "{failures} of {count} requests failed during the restart"
    );
    assert_eq!(answers(&topo, &web, 20), set(&["a"]));
}

const POLICY_PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  nodeName: elsewhere
  containers: [{name: c, image: x, ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: good, labels: {access: "true"}}
spec:
  nodeName: elsewhere
  containers: [{name: c, image: x}]
---
apiVersion: v1
kind: Pod
metadata: {name: bad}
spec:
  nodeName: elsewhere
  containers: [{name: c, image: x}]
"#;

const ALLOW_GOOD: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-good}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {access: "true"}}}]
    ports: [{port: http}]
"#;

const GOOD_EGRESS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: good-egress}
spec:
  podSelector: {matchLabels: {access: "true"}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 10.42.0.0/24, except: [10.42.0.10/32]}}]
"#;

/// Whether `from` gets an answer from `addr` (one attempt, 2 s).
fn reaches(topo: &Topology, from: &str, addr: &str) -> bool {
    http_get(topo.ns(from), addr).is_ok()
}

#[test]
#[ignore = "needs root, ip netns and nft (tools/test.sh installs nftables)"]
fn network_policy_ingress_and_egress_in_the_proxys_table() {
    let server = Server::start();
    let mut topo = Topology::new();
    topo.pod("web", "10.42.0.10");
    topo.pod("good", "10.42.0.20");
    topo.pod("bad", "10.42.0.21");
    let _web = http_backend(topo.ns("web"), "10.42.0.10:8080", "web");
    let _relay = api_relay(&topo.node, server.port);
    let agent = Agent::start(&server, &topo.node, &[]);
    apply(&server, POLICY_PODS);
    for (pod, ip) in [
        ("web", "10.42.0.10"),
        ("good", "10.42.0.20"),
        ("bad", "10.42.0.21"),
    ] {
        let status = format!(
            r#"{{"status":{{"phase":"Running","podIP":"{ip}","podIPs":[{{"ip":"{ip}"}}]}}}}"#
        );
        ok(server.kubectl(
            KUBECTL_133,
            &[
                "patch",
                "pod",
                pod,
                "--subresource=status",
                "--type=merge",
                "-p",
                &status,
            ],
        ));
    }
    apply(&server, SERVICES);
    apply(&server, &slice(&[("10.42.0.10", true)]));
    let service = format!("{}:80", cluster_ip(&server, "web"));
    let direct = "10.42.0.10:8080";

    // Default allow: both clients reach the backend, directly and through the Service.
    let open = eventually(Duration::from_secs(30), || {
        reaches(&topo, "bad", &service) && reaches(&topo, "good", &service)
    });
    assert!(open, "{}", agent.log_text());
    assert!(reaches(&topo, "bad", direct));

    // Selected by a policy, the backend takes only the labelled client on its named port.
    apply(&server, ALLOW_GOOD);
    let closed = eventually(Duration::from_secs(10), || !reaches(&topo, "bad", direct));
    assert!(closed, "{}", topo.node.nft_table());
    assert!(!reaches(&topo, "bad", &service));
    assert!(reaches(&topo, "good", direct));
    assert!(reaches(&topo, "good", &service));

    // Egress: the good client may only reach 10.42.0.0/24 except the backend.
    apply(&server, GOOD_EGRESS);
    let blocked = eventually(Duration::from_secs(10), || !reaches(&topo, "good", direct));
    assert!(blocked, "{}", topo.node.nft_table());
    assert!(!reaches(&topo, "good", &service));

    // Without policies, default allow again.
    ok(server.kubectl(
        KUBECTL_133,
        &["delete", "networkpolicy", "web-from-good", "good-egress"],
    ));
    let reopened = eventually(Duration::from_secs(10), || {
        reaches(&topo, "bad", direct) && reaches(&topo, "good", &service)
    });
    assert!(reopened, "{}", topo.node.nft_table());
}
