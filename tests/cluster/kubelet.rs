//! The in-process node agent with its Wasm runtime, driven with kubectl 1.33: the node
//! registers (capacity, labels, Lease, RuntimeClass `wasm`); WASI pods (the `wasi-demo`
//! command from `plugins/workloads`, imported with `keelson image import`) run to Succeeded or
//! Failed with their exit codes, init containers in order, env from ConfigMaps, Secrets and the
//! downward API; `kubectl logs` (-c, --tail, --previous, -f, --timestamps) reads them through
//! the API server's `pods/log` proxy; a crashing container backs off (CrashLoopBackOff);
//! memory limits end a guest as OOMKilled; delete honours the grace period; a Deployment
//! rolls out on the agent's node; a restarted server adopts its pods without rerunning them.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::harness::{eventually, ok, Server, KUBECTL_133};

/// Builds `plugins/workloads/wasi-demo` (wasm32-wasip2) once.
pub(crate) fn wasi_demo() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
            let target = root.join("target");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .current_dir(root.join("plugins"))
                .args(["build", "--release", "-p", "wasi-demo", "--target-dir"])
                .arg(&target)
                .status()
                .expect("run cargo");
            assert!(status.success(), "building wasi-demo failed");
            target.join("wasm32-wasip2/release/wasi-demo.wasm")
        })
        .clone()
}

/// A server with its agent, and `demo:1` imported.
pub(crate) fn cluster() -> Server {
    let server = Server::start_with_agent(&[]);
    import_demo(&server);
    server
}

/// Imports the wasi demo as image `demo:1` into `server`'s agent.
pub(crate) fn import_demo(server: &Server) {
    let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(["image", "import"])
        .arg(wasi_demo())
        .args(["demo:1", "--data-dir"])
        .arg(server.dir.path())
        .output()
        .unwrap();
    assert!(ok(out).starts_with("demo:1 demo@sha256:"));
}

/// Waits until each of `pods` is Running.
pub(crate) fn wait_running(server: &Server, pods: &[&str]) {
    for pod in pods {
        wait_for(
            server,
            pod,
            "{.status.phase}",
            "Running",
            Duration::from_secs(60),
        );
    }
}

pub(crate) fn kubectl(server: &Server, args: &[&str]) -> String {
    ok(server.kubectl(KUBECTL_133, args))
}

pub(crate) fn apply(server: &Server, yaml: &str) {
    ok(server.kubectl_stdin(KUBECTL_133, &["apply", "-f", "-"], yaml));
}

pub(crate) fn jsonpath(server: &Server, pod: &str, path: &str) -> String {
    let out = server.kubectl(
        KUBECTL_133,
        &["get", "pod", pod, "-o", &format!("jsonpath={path}")],
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn wait_for(server: &Server, pod: &str, path: &str, want: &str, timeout: Duration) {
    let mut last = String::new();
    let reached = eventually(timeout, || {
        last = jsonpath(server, pod, path);
        last == want
    });
    assert!(reached, "pod {pod}: {path} is {last:?}, expected {want:?}");
}

#[test]
fn node_registers_with_lease_and_wasm_runtime_class() {
    let server = cluster();
    let nodes = kubectl(&server, &["get", "nodes", "-o", "json"]);
    let nodes: serde_json::Value = serde_json::from_str(&nodes).unwrap();
    let node = &nodes["items"][0];
    assert_eq!(nodes["items"].as_array().unwrap().len(), 1);
    let name = node["metadata"]["name"].as_str().unwrap();
    assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], name);
    assert_eq!(node["metadata"]["labels"]["kubernetes.io/os"], "linux");
    assert_eq!(node["status"]["capacity"]["pods"], "110");
    assert!(node["status"]["allocatable"]["cpu"]
        .as_str()
        .unwrap()
        .ends_with('m'));
    let ready = node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "True");
    assert!(
        node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
            .as_u64()
            .unwrap()
            > 0
    );
    let lease = kubectl(
        &server,
        &[
            "get",
            "lease",
            "-n",
            "kube-node-lease",
            name,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
    );
    assert_eq!(lease, name);
    let rc = kubectl(
        &server,
        &["get", "runtimeclass", "wasm", "-o", "jsonpath={.handler}"],
    );
    assert_eq!(rc, "wasmtime");
}

#[test]
fn wasm_pods_run_to_completion_with_exit_codes_env_init_order_and_logs() {
    let server = cluster();
    apply(
        &server,
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {who: world}
---
apiVersion: v1
kind: Secret
metadata: {name: sec}
stringData: {token: s3cret}
---
apiVersion: v1
kind: Pod
metadata: {name: done, labels: {app: demo}}
spec:
  runtimeClassName: wasm
  restartPolicy: Never
  initContainers:
  - {name: first, image: "demo:1", args: ["--print", "init one", "--sleep-ms", "1100"]}
  - {name: second, image: "demo:1", args: ["--print", "init two"]}
  containers:
  - name: main
    image: "demo:1"
    args: ["--print", "hello $(WHO) from $(POD) ($(APP))", "--env", "--stderr", "to stderr", "--lines", "5"]
    envFrom: [{secretRef: {name: sec}, prefix: SEC_}]
    env:
    - {name: WHO, valueFrom: {configMapKeyRef: {name: cfg, key: who}}}
    - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: APP, valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}}
---
apiVersion: v1
kind: Pod
metadata: {name: failed}
spec:
  runtimeClassName: wasm
  restartPolicy: Never
  containers:
  - {name: main, image: "demo:1", args: ["--print", "bye", "--exit", "42"]}
"#,
    );
    wait_for(
        &server,
        "done",
        "{.status.phase}",
        "Succeeded",
        Duration::from_secs(60),
    );
    assert_eq!(
        jsonpath(
            &server,
            "done",
            "{.status.containerStatuses[0].state.terminated.exitCode}"
        ),
        "0"
    );
    assert_eq!(
        jsonpath(&server, "done", "{.status.containerStatuses[0].imageID}")
            .split('@')
            .next(),
        Some("demo")
    );
    assert_eq!(
        jsonpath(
            &server,
            "done",
            "{.status.initContainerStatuses[*].state.terminated.reason}"
        ),
        "Completed Completed"
    );
    assert_eq!(
        jsonpath(&server, "done", "{.status.qosClass}"),
        "BestEffort"
    );
    assert!(!jsonpath(&server, "done", "{.status.podIP}").is_empty());
    assert!(!jsonpath(&server, "done", "{.status.startTime}").is_empty());
    wait_for(
        &server,
        "failed",
        "{.status.phase}",
        "Failed",
        Duration::from_secs(30),
    );
    assert_eq!(
        jsonpath(
            &server,
            "failed",
            "{.status.containerStatuses[0].state.terminated.exitCode}"
        ),
        "42"
    );
    assert_eq!(
        jsonpath(
            &server,
            "failed",
            "{.status.containerStatuses[0].state.terminated.reason}"
        ),
        "Error"
    );

    // Logs through pods/log: env expansion, stderr, the downward API, -c, --tail.
    let logs = kubectl(&server, &["logs", "done"]);
    assert!(logs.contains("hello world from done (demo)\n"), "{logs}");
    assert!(logs.contains("SEC_token=s3cret\n"), "{logs}");
    assert!(logs.contains("to stderr\n"), "{logs}");
    assert_eq!(
        kubectl(&server, &["logs", "done", "--tail=2"]),
        "line 4\nline 5\n"
    );
    assert!(kubectl(&server, &["logs", "failed"]).contains("bye\n"));
    let since = kubectl(&server, &["logs", "done", "--since=1h"]);
    assert!(since.contains("line 5\n"), "{since}");
    let future = kubectl(
        &server,
        &["logs", "done", "--since-time=2099-01-01T00:00:00Z"],
    );
    assert_eq!(future, "");
    // Init containers ran in order: the first ended before the second began.
    let stamp = |c: &str| {
        let out = kubectl(&server, &["logs", "done", "-c", c, "--timestamps"]);
        let last = out.lines().last().unwrap_or_default().to_string();
        last.split(' ')
            .next()
            .unwrap()
            .parse::<chrono_like::Stamp>()
            .unwrap()
    };
    assert!(stamp("first") < stamp("second"));
    let second_start = jsonpath(
        &server,
        "done",
        "{.status.initContainerStatuses[1].state.terminated.startedAt}",
    );
    let first_end = jsonpath(
        &server,
        "done",
        "{.status.initContainerStatuses[0].state.terminated.finishedAt}",
    );
    assert!(first_end <= second_start, "{first_end} > {second_start}");
}

/// RFC 3339 stamps with nanoseconds compare as strings once their length is fixed.
mod chrono_like {
    #[derive(Debug, PartialEq, PartialOrd)]
    pub(crate) struct Stamp(String);

    impl std::str::FromStr for Stamp {
        type Err = String;
        fn from_str(s: &str) -> Result<Self, String> {
            if s.len() == 30 && s.ends_with('Z') {
                Ok(Stamp(s.to_string()))
            } else {
                Err(format!("not a nanosecond stamp: {s}"))
            }
        }
    }
}

#[test]
fn crashing_container_backs_off_and_keeps_previous_logs() {
    let server = cluster();
    apply(
        &server,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: crash}
spec:
  runtimeClassName: wasm
  containers:
  - {name: main, image: "demo:1", args: ["--print", "crashing", "--exit", "2"]}
"#,
    );
    let mut status = String::new();
    let looped = eventually(Duration::from_secs(60), || {
        status = jsonpath(&server, "crash", "{.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].state.waiting.reason}");
        let mut parts = status.split(' ');
        let restarts: u32 = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        restarts >= 2 && parts.next() == Some("CrashLoopBackOff")
    });
    assert!(looped, "no CrashLoopBackOff: {status}");
    assert_eq!(
        jsonpath(
            &server,
            "crash",
            "{.status.containerStatuses[0].lastState.terminated.exitCode}"
        ),
        "2"
    );
    assert_eq!(jsonpath(&server, "crash", "{.status.phase}"), "Running");
    let table = kubectl(&server, &["get", "pod", "crash", "--no-headers"]);
    assert!(table.contains("CrashLoopBackOff"), "{table}");
    let events = kubectl(
        &server,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=crash",
            "-o",
            "jsonpath={.items[*].reason}",
        ],
    );
    for reason in ["Pulled", "Created", "Started", "BackOff"] {
        assert!(
            events.split(' ').any(|r| r == reason),
            "{reason} missing: {events}"
        );
    }
    let previous = kubectl(&server, &["logs", "crash", "--previous"]);
    assert!(previous.contains("crashing\n"), "{previous}");
}

#[test]
fn memory_limit_ends_a_guest_as_oom_killed() {
    let server = cluster();
    apply(
        &server,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  runtimeClassName: wasm
  restartPolicy: Never
  containers:
  - {name: main, image: "demo:1", args: ["--alloc-mb", "100"], resources: {limits: {memory: 32Mi}}}
"#,
    );
    wait_for(
        &server,
        "hog",
        "{.status.phase}",
        "Failed",
        Duration::from_secs(60),
    );
    assert_eq!(
        jsonpath(
            &server,
            "hog",
            "{.status.containerStatuses[0].state.terminated.reason}"
        ),
        "OOMKilled"
    );
    assert_eq!(
        jsonpath(
            &server,
            "hog",
            "{.status.containerStatuses[0].state.terminated.exitCode}"
        ),
        "137"
    );
    assert_eq!(jsonpath(&server, "hog", "{.status.qosClass}"), "Burstable");
}

#[test]
fn delete_honours_the_grace_period_and_follow_streams() {
    let server = cluster();
    apply(
        &server,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: hook}
spec:
  runtimeClassName: wasm
  terminationGracePeriodSeconds: 30
  containers:
  - name: main
    image: "demo:1"
    args: ["--print", "up", "--sleep-ms", "600000"]
    lifecycle: {preStop: {sleep: {seconds: 2}}}
---
apiVersion: v1
kind: Pod
metadata: {name: capped}
spec:
  runtimeClassName: wasm
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: "demo:1"
    args: ["--sleep-ms", "600000"]
    lifecycle: {preStop: {sleep: {seconds: 60}}}
---
apiVersion: v1
kind: Pod
metadata: {name: ticker}
spec:
  runtimeClassName: wasm
  restartPolicy: Never
  containers:
  - {name: main, image: "demo:1", args: ["--print", "a", "--sleep-ms", "3000", "--print", "b"]}
"#,
    );
    for pod in ["ticker", "hook", "capped"] {
        wait_for(
            &server,
            pod,
            "{.status.phase}",
            "Running",
            Duration::from_secs(60),
        );
    }
    // exec has nothing to run in a Wasm pod: a clear error, not a missing route.
    let exec = crate::harness::fails(server.kubectl(KUBECTL_133, &["exec", "hook", "--", "ls"]));
    assert!(exec.contains("no processes to exec"), "{exec}");
    // -f returns once the container ends, with the lines written meanwhile.
    let started = Instant::now();
    let followed = kubectl(&server, &["logs", "-f", "ticker"]);
    assert!(followed.ends_with("a\nb\n"), "{followed}");
    assert!(started.elapsed() < Duration::from_secs(20));
    // The preStop hook delays the end by its 2 s; the 2 s grace period cuts the 60 s hook.
    for (pod, min, max) in [("hook", 2, 10), ("capped", 2, 10)] {
        let started = Instant::now();
        kubectl(&server, &["delete", "pod", pod]);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(min) && took < Duration::from_secs(max),
            "{pod}: delete took {took:?}"
        );
        let gone = server.kubectl(KUBECTL_133, &["get", "pod", pod]);
        assert!(!gone.status.success());
    }
}

#[test]
fn deployment_rolls_out_on_the_agent_node_and_survives_a_restart() {
    let mut server = cluster();
    apply(
        &server,
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      runtimeClassName: wasm
      containers:
      - {name: main, image: "demo:1", args: ["--print", "serving", "--sleep-ms", "600000"], resources: {limits: {memory: 16Mi, cpu: 100m}}}
---
apiVersion: v1
kind: Pod
metadata: {name: once}
spec:
  runtimeClassName: wasm
  restartPolicy: OnFailure
  containers:
  - {name: main, image: "demo:1", args: ["--print", "ran"]}
"#,
    );
    kubectl(
        &server,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    );
    let node = kubectl(
        &server,
        &["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"],
    );
    let pods = kubectl(
        &server,
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.nodeName} {.items[*].status.phase}",
        ],
    );
    assert_eq!(
        pods,
        format!("{node} {node} {node} Running Running Running")
    );
    assert!(kubectl(&server, &["logs", "deployment/web"]).contains("serving\n"));
    wait_for(
        &server,
        "once",
        "{.status.phase}",
        "Succeeded",
        Duration::from_secs(30),
    );

    // A restarted server (and agent) adopts its pods: the finished one is not run again and
    // the others keep their identity, their restart count now 1 for the lost Wasm instance.
    server.restart();
    kubectl(
        &server,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    );
    let restarted = eventually(Duration::from_secs(30), || {
        let out = server.kubectl(
            KUBECTL_133,
            &[
                "get",
                "pods",
                "-l",
                "app=web",
                "-o",
                "jsonpath={.items[*].status.containerStatuses[0].restartCount}",
            ],
        );
        String::from_utf8_lossy(&out.stdout) == "1 1 1"
    });
    assert!(
        restarted,
        "{}",
        kubectl(&server, &["get", "pods", "-o", "wide"])
    );
    assert_eq!(jsonpath(&server, "once", "{.status.phase}"), "Succeeded");
    assert_eq!(
        jsonpath(
            &server,
            "once",
            "{.status.containerStatuses[0].restartCount}"
        ),
        "0"
    );
    assert_eq!(
        kubectl(&server, &["logs", "once"]),
        "args: --print ran\nran\n"
    );
}
