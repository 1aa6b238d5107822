//! The containerd runtime against a real containerd that each test starts itself, with a
//! busybox image built locally ([`crate::local_containerd`]). Pods without a RuntimeClass run
//! there: exit codes and reasons, `kubectl logs` from the task's FIFOs, a pod IP from the CNI
//! bridge that the test reaches over TCP, the pod's default route and masquerading,
//! `kubectl exec` (stdin, exit codes, `-it` in a terminal of the client's size) over WebSockets,
//! `kubectl top`, an image imported without unpacking (the agent unpacks it), probes feeding
//! readiness and Endpoints and restarting on liveness failure,
//! and deletion with SIGTERM then SIGKILL after the grace period. Needs root, `containerd`,
//! `runc`, `ctr`, `busybox-static` and `containernetworking-plugins` (tools/test.sh installs
//! them).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{eventually, KUBECTL_128, KUBECTL_129, KUBECTL_133};
use crate::kubelet::{apply, jsonpath, kubectl, wait_for};
use crate::local_containerd::{containerd_cluster, containerd_cluster_with, delete_all_pods};

/// The body and headers of `GET /index.html` from `ip:port` (panics when nothing answers).
pub(crate) fn http_get(ip: &str, port: u16) -> String {
    let mut s = std::net::TcpStream::connect_timeout(
        &format!("{ip}:{port}").parse().unwrap(),
        Duration::from_secs(3),
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
#[ignore = "needs containerd, runc, CNI plugins and root (tools/test.sh installs them)"]
fn containerd_pods_run_with_logs_exit_codes_pod_ips_and_graceful_stop() {
    let (_containerd, server) = containerd_cluster(1);
    apply(
        &server,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: fails}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox:test
    imagePullPolicy: Never
    command: ["sh", "-c", "echo hello from $(hostname) as $GREETING; echo oops >&2; exit 3"]
    env: [{name: GREETING, value: pod-env}]
    resources: {limits: {memory: 64Mi, cpu: 500m}}
---
apiVersion: v1
kind: Pod
metadata: {name: succeeds}
spec:
  restartPolicy: Never
  containers:
  - {name: main, image: busybox:test, imagePullPolicy: Never, args: ["sh", "-c", "exit 0"]}
---
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: httpd
    image: busybox:test
    imagePullPolicy: Never
    command: ["sh", "-c", "trap 'echo got TERM; exit 0' TERM; httpd -f -p 8080 -h /www & wait"]
---
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  restartPolicy: Never
  containers:
  - {name: main, image: busybox:test, imagePullPolicy: Never, resources: {limits: {memory: 16Mi}},
     command: ["sh", "-c", "a=$(yes | head -c 100000000); echo ${#a}"]}
---
apiVersion: v1
kind: Pod
metadata: {name: busy}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: spin, image: busybox:test, imagePullPolicy: Never,
     command: ["sh", "-c", "while true; do :; done"], resources: {limits: {cpu: 300m}}}
---
apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - {name: main, image: busybox:test, imagePullPolicy: Never,
     command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]}
"#,
    );
    let t = Duration::from_secs(60);
    wait_for(&server, "fails", "{.status.phase}", "Failed", t);
    let term = "{.status.containerStatuses[0].state.terminated}";
    let got = jsonpath(&server, "fails", term);
    let got: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(got["exitCode"], 3, "{got}");
    assert_eq!(got["reason"], "Error", "{got}");
    assert!(
        got["containerID"]
            .as_str()
            .unwrap()
            .starts_with("containerd://"),
        "{got}"
    );
    let image_id = jsonpath(&server, "fails", "{.status.containerStatuses[0].imageID}");
    assert!(
        image_id.starts_with("docker.io/library/busybox@sha256:"),
        "{image_id}"
    );
    let logs = kubectl(&server, &["logs", "fails"]);
    assert!(logs.contains("hello from fails as pod-env"), "{logs}");
    assert!(logs.contains("oops"), "{logs}");
    let ip = jsonpath(&server, "fails", "{.status.podIP}");
    assert!(ip.starts_with("10.88.1."), "pod IP {ip:?}");

    wait_for(&server, "hog", "{.status.phase}", "Failed", t);
    let hog = jsonpath(&server, "hog", term);
    let hog: serde_json::Value = serde_json::from_str(&hog).unwrap();
    assert_eq!(hog["reason"], "OOMKilled", "{hog}");
    assert_eq!(hog["exitCode"], 137, "{hog}");

    wait_for(&server, "succeeds", "{.status.phase}", "Succeeded", t);
    let reason = jsonpath(
        &server,
        "succeeds",
        "{.status.containerStatuses[0].state.terminated.reason}",
    );
    assert_eq!(reason, "Completed");

    wait_for(&server, "web", "{.status.phase}", "Running", t);
    let web_ip = jsonpath(&server, "web", "{.status.podIP}");
    assert!(web_ip.starts_with("10.88.1.") && web_ip != ip, "{web_ip}");
    let mut page = String::new();
    let reached = eventually(Duration::from_secs(20), || {
        page = std::panic::catch_unwind(|| http_get(&web_ip, 8080)).unwrap_or_default();
        page.contains("hello over the pod network")
    });
    assert!(reached, "GET http://{web_ip}:8080/ gave {page:?}");

    // Egress: the bridge is the pod's default gateway, and what leaves the pod CIDR is
    // masqueraded (the CNI bridge plugin's ipMasq rule for the pod's address).
    let routes = kubectl(&server, &["exec", "web", "--", "ip", "route"]);
    assert!(routes.contains("default via 10.88.1.1"), "{routes}");
    let host_ip = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip().to_string())
        .ok();
    if let Some(host_ip) = host_ip.filter(|ip| !ip.starts_with("10.88.")) {
        // An address of the node outside the bridge is reached through the default route.
        let listener = std::net::TcpListener::bind((host_ip.as_str(), 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = std::thread::spawn(move || {
            let (mut conn, peer) = listener.accept().unwrap();
            let mut request = [0u8; 1024];
            let _ = conn.read(&mut request);
            let _ = conn.write_all(
                b"HTTP/1.0 200 OK\r\nContent-Length: 14\r\nConnection: close\r\n\r\nfrom the node\n",
            );
            peer.ip().to_string()
        });
        let url = format!("http://{host_ip}:{port}/");
        let body = kubectl(
            &server,
            &[
                "exec",
                "web",
                "--",
                "sh",
                "-c",
                &format!("wget -q -O- {url}"),
            ],
        );
        assert!(body.contains("from the node"), "{body}");
        assert_eq!(
            served.join().unwrap(),
            web_ip,
            "the pod's own address, not NATed"
        );
    }
    let nat = Command::new("iptables")
        .args(["-t", "nat", "-S", "POSTROUTING"])
        .output()
        .unwrap();
    let nat = String::from_utf8_lossy(&nat.stdout);
    assert!(
        nat.contains(&format!("-s {web_ip}/32")),
        "no masquerade rule: {nat}"
    );

    // kubectl exec over WebSocket (v5.channel.k8s.io), through the API server to the agent.
    let out = server.kubectl(KUBECTL_133, &["exec", "web", "--", "echo", "hi"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    let out = server.kubectl(
        KUBECTL_133,
        &[
            "exec",
            "web",
            "-c",
            "httpd",
            "--",
            "sh",
            "-c",
            "echo to-err >&2; exit 3",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("to-err"),
        "{out:?}"
    );
    let out = server.kubectl_stdin(
        KUBECTL_133,
        &["exec", "-i", "web", "--", "sh", "-c", "cat; echo done"],
        "line one\nline two\n",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "line one\nline two\ndone\n"
    );
    // `exec -it` in a terminal: kubectl (under `script`, which gives it one) sends its size,
    // the shell inside sees a pty of that size; the exit code still comes back.
    let kubectl_tty = format!(
        "stty rows 33 cols 101; {KUBECTL_133} exec -it web -- sh -c 'tty; stty size; exit 4'"
    );
    let home = server.dir.path().join("home");
    let out = Command::new("script")
        .args(["-qec", &kubectl_tty, "/dev/null"])
        .env("KUBECONFIG", server.kubeconfig())
        .env("HOME", &home)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/"), "{out:?}");
    assert!(text.contains("33 101"), "{out:?}");
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    // kubectl 1.29 speaks WebSockets when asked; 1.28 only SPDY, which is refused clearly.
    let out = server.kubectl_env(
        KUBECTL_129,
        &["exec", "web", "--", "echo", "from-129"],
        &[("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "true")],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "from-129\n",
        "{out:?}"
    );
    let out = server.kubectl(KUBECTL_128, &["exec", "web", "--", "true"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SPDY is not supported"),
        "{out:?}"
    );
    let out = server.kubectl(KUBECTL_133, &["exec", "web", "--", "no-such-binary"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no-such-binary"),
        "{out:?}"
    );

    // kubectl top: metrics.k8s.io from the agent's cgroup readings. The busy loop is capped
    // at 300m by its CPU quota.
    wait_for(&server, "busy", "{.status.phase}", "Running", t);
    let node = kubectl(
        &server,
        &["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"],
    );
    let mut top = String::new();
    let shown = eventually(Duration::from_secs(30), || {
        let out = server.kubectl(KUBECTL_133, &["top", "node"]);
        top = String::from_utf8_lossy(&out.stdout).into_owned();
        out.status.success() && top.contains(&node)
    });
    assert!(shown, "kubectl top node: {top}");
    let millis = |text: &str, name: &str| -> u64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default();
        let cpu = line.split_whitespace().nth(1).unwrap_or_default();
        cpu.trim_end_matches('m').parse().unwrap_or(0)
    };
    assert!(millis(&top, &node) > 0, "{top}");
    let mut busy = 0;
    let spinning = eventually(Duration::from_secs(30), || {
        let out = server.kubectl(KUBECTL_133, &["top", "pod"]);
        top = String::from_utf8_lossy(&out.stdout).into_owned();
        busy = millis(&top, "busy");
        (150..=400).contains(&busy)
    });
    assert!(spinning, "kubectl top pod (busy at {busy}m): {top}");
    // busybox's few hundred KiB print as 0Mi: read the object for the exact memory.
    let raw = kubectl(
        &server,
        &[
            "get",
            "--raw",
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web",
        ],
    );
    let metrics: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(metrics["kind"], "PodMetrics", "{raw}");
    let memory = metrics["containers"][0]["usage"]["memory"]
        .as_str()
        .unwrap();
    let kib: u64 = memory.trim_end_matches("Ki").parse().unwrap();
    assert!(kib > 0 && kib < 64 * 1024, "{raw}");
    let out = server.kubectl(KUBECTL_133, &["top", "pod", "busy", "--containers"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("spin"),
        "{out:?}"
    );

    // SIGTERM is handled at once; a container ignoring it is killed after its 2 s grace.
    wait_for(&server, "stubborn", "{.status.phase}", "Running", t);
    let started = Instant::now();
    kubectl(&server, &["delete", "pod", "web", "--wait=true"]);
    let web_took = started.elapsed();
    assert!(web_took < Duration::from_secs(15), "web took {web_took:?}");
    let started = Instant::now();
    kubectl(&server, &["delete", "pod", "stubborn", "--wait=true"]);
    let stubborn_took = started.elapsed();
    assert!(
        stubborn_took >= Duration::from_secs(2) && stubborn_took < Duration::from_secs(20),
        "stubborn took {stubborn_took:?}"
    );
    // Deleting the finished pods releases their network namespaces too.
    delete_all_pods(&server);
    // Nothing is left running in containerd.
    let tasks = Command::new("ctr")
        .arg("-a")
        .arg(_containerd.socket())
        .args(["-n", "k8s.io", "tasks", "ls", "-q"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let left = String::from_utf8_lossy(&tasks.stdout).trim().to_string();
    assert_eq!(left, "", "tasks left in containerd");
}

#[test]
#[ignore = "needs containerd, runc, CNI plugins and root (tools/test.sh installs them)"]
fn probes_gate_readiness_and_restart_on_liveness_failure_with_kubelet_events() {
    let (_containerd, server) = containerd_cluster(2);
    apply(
        &server,
        r#"
apiVersion: v1
kind: Service
metadata: {name: probed}
spec:
  selector: {app: probed}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: healthy-then-not, labels: {app: probed}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox:test
    imagePullPolicy: Never
    command: ["sh", "-c", "touch /tmp/healthy; httpd -f -p 8080 -h /www & sleep 6; rm /tmp/healthy; wait"]
    startupProbe: {tcpSocket: {port: 8080}, periodSeconds: 1, failureThreshold: 10}
    readinessProbe: {httpGet: {path: /index.html, port: 8080}, periodSeconds: 1}
    livenessProbe: {exec: {command: [cat, /tmp/healthy]}, periodSeconds: 1, failureThreshold: 2}
---
apiVersion: v1
kind: Pod
metadata: {name: never-ready, labels: {app: probed}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:test
    imagePullPolicy: Never
    command: ["sh", "-c", "sleep 3600"]
    readinessProbe: {tcpSocket: {port: 9999}, periodSeconds: 1}
"#,
    );
    let t = Duration::from_secs(60);
    wait_for(
        &server,
        "healthy-then-not",
        "{.status.containerStatuses[0].ready}",
        "true",
        t,
    );
    let ready_ip = jsonpath(&server, "healthy-then-not", "{.status.podIP}");
    wait_for(
        &server,
        "never-ready",
        "{.status.containerStatuses[0].started}",
        "true",
        t,
    );
    let cond = "{.status.conditions[?(@.type==\"Ready\")].status}";
    assert_eq!(jsonpath(&server, "healthy-then-not", cond), "True");
    assert_eq!(jsonpath(&server, "never-ready", cond), "False");
    assert_eq!(
        jsonpath(
            &server,
            "never-ready",
            "{.status.containerStatuses[0].ready}"
        ),
        "false"
    );
    let unready_ip = jsonpath(&server, "never-ready", "{.status.podIP}");
    // Readiness feeds the Service's Endpoints.
    let mut eps = String::new();
    let split = eventually(t, || {
        eps = kubectl(&server, &["get", "endpoints", "probed", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&eps).unwrap();
        let ips = |field: &str| -> Vec<String> {
            v["subsets"][0][field]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| x["ip"].as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default()
        };
        ips("addresses") == [ready_ip.clone()] && ips("notReadyAddresses") == [unready_ip.clone()]
    });
    assert!(split, "endpoints: {eps}");
    // The liveness probe fails once /tmp/healthy is gone: killed and restarted.
    wait_for(
        &server,
        "healthy-then-not",
        "{.status.containerStatuses[0].restartCount}",
        "1",
        t,
    );
    let events = kubectl(
        &server,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=healthy-then-not",
            "-o",
            "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
        ],
    );
    assert!(
        events.contains(
            "Unhealthy: Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory"
        ),
        "{events}"
    );
    assert!(
        events.contains("Killing: Container web failed liveness probe, will be restarted"),
        "{events}"
    );
    let events = kubectl(
        &server,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=never-ready",
            "-o",
            "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
        ],
    );
    let refused = format!(
        "Unhealthy: Readiness probe failed: dial tcp {unready_ip}:9999: connect: connection refused"
    );
    assert!(events.contains(&refused), "{events}");
    delete_all_pods(&server);
}

#[test]
#[ignore = "needs containerd, runc, CNI plugins and root (tools/test.sh installs them)"]
fn containerd_pods_come_back_after_an_agent_restart() {
    // Imported without unpacking: the agent applies the layer through the diff service.
    let (_containerd, mut server) = containerd_cluster_with(3, false);
    apply(
        &server,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: steady}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: main, image: busybox:test, imagePullPolicy: Never, command: ["sleep", "3600"]}
"#,
    );
    let t = Duration::from_secs(60);
    wait_for(&server, "steady", "{.status.phase}", "Running", t);
    let first = jsonpath(
        &server,
        "steady",
        "{.status.containerStatuses[0].containerID}",
    );
    server.restart();
    // The old agent's container is removed and the pod restarts in a fresh sandbox.
    wait_for(
        &server,
        "steady",
        "{.status.containerStatuses[0].restartCount}",
        "1",
        t,
    );
    wait_for(
        &server,
        "steady",
        "{.status.containerStatuses[0].ready}",
        "true",
        t,
    );
    let second = jsonpath(
        &server,
        "steady",
        "{.status.containerStatuses[0].containerID}",
    );
    assert_ne!(first, second);
    let ip = jsonpath(&server, "steady", "{.status.podIP}");
    assert!(ip.starts_with("10.88.3."), "{ip}");
    let out = server.kubectl(KUBECTL_133, &["exec", "steady", "--", "echo", "back"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "back\n", "{out:?}");
    let tasks = Command::new("ctr")
        .arg("-a")
        .arg(_containerd.socket())
        .args(["-n", "k8s.io", "tasks", "ls", "-q"])
        .output()
        .unwrap();
    let tasks = String::from_utf8_lossy(&tasks.stdout);
    assert_eq!(tasks.lines().count(), 1, "one task runs: {tasks}");
    delete_all_pods(&server);
}
