//! Wasm controllers (WasmPlugin `spec.type: controller`) in a running server, driven by
//! kubectl 1.33: the `namespace-defaults` example acts as its ServiceAccount, so while RBAC
//! denies it the creates fail with 403 (reported in the WasmPlugin's status) and are retried
//! with back-off; once a binding grants them, every new namespace gets its ConfigMap and
//! ResourceQuota. A looping and a trapping controller run beside it the whole time and stall
//! nothing; their failures show in their own status. A remote `keelson controller-manager`
//! does the same through impersonation. The Python `configmap-mirror` example
//! (componentize-py, gated like the other Python tests) copies a labelled ConfigMap into
//! namespaces and keeps the copies in step.

use std::time::Duration;

use crate::harness::{eventually, ok, Server, KUBECTL_133};
use crate::plugins::{base64_file, component};

const WAIT: Duration = Duration::from_secs(60);

fn apply(server: &Server, yaml: &str) {
    ok(server.kubectl_stdin(KUBECTL_133, &["apply", "-f", "-"], yaml));
}

fn get(server: &Server, args: &[&str]) -> String {
    let out = server.kubectl(KUBECTL_133, args);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn status(server: &Server, plugin: &str, field: &str) -> String {
    get(
        server,
        &[
            "get",
            "wasmplugin",
            plugin,
            "-o",
            &format!("jsonpath={{.status.{field}}}"),
        ],
    )
}

/// A WasmPlugin of type controller running `dir` as ServiceAccount `default/<sa>`.
fn controller_yaml(name: &str, dir: &str, sa: &str, config: &str) -> String {
    let b64 = base64_file(&component(dir));
    format!(
        "apiVersion: keelson.dev/v1alpha1
kind: WasmPlugin
metadata: {{name: {name}}}
spec:
  type: controller
  component: {{base64: \"{b64}\"}}
  timeoutMillis: 300
  config: {config}
  controller:
    serviceAccountName: {sa}
    resyncSeconds: 2
    watches:
    - {{apiVersion: v1, kind: Namespace}}
    - {{apiVersion: v1, kind: ConfigMap}}
    - {{apiVersion: v1, kind: ResourceQuota}}
"
    )
}

/// ServiceAccounts in `default` that may read what the controllers watch, nothing more.
const READERS: &str = "apiVersion: v1
kind: ServiceAccount
metadata: {name: ns-defaults, namespace: default}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: hostile, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: wasm-controller-read}
rules:
- {apiGroups: [\"\"], resources: [namespaces, configmaps, resourcequotas], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: wasm-controller-read}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: wasm-controller-read}
subjects:
- {kind: ServiceAccount, name: ns-defaults, namespace: default}
- {kind: ServiceAccount, name: hostile, namespace: default}
";

const WRITER: &str = "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: ns-defaults-write}
rules:
- {apiGroups: [\"\"], resources: [configmaps, resourcequotas], verbs: [create]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ns-defaults-write}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ns-defaults-write}
subjects:
- {kind: ServiceAccount, name: ns-defaults, namespace: default}
";

fn has_defaults(server: &Server, ns: &str) -> bool {
    let cm = get(
        server,
        &[
            "get",
            "configmap",
            "namespace-defaults",
            "-n",
            ns,
            "-o",
            "name",
        ],
    );
    let quota = get(
        server,
        &[
            "get",
            "resourcequota",
            "default-quota",
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.hard.pods}",
        ],
    );
    cm.contains("namespace-defaults") && quota == "7"
}

/// With only read rights the ServiceAccount's creates get 403 (in status, naming the
/// ServiceAccount) and are retried; once [`WRITER`] grants them, `team-a` gets its defaults.
fn denied_then_granted(server: &Server) {
    // Without create rights: 403, reported in status, retried.
    let mut error = String::new();
    let denied = eventually(WAIT, || {
        error = status(server, "ns-defaults", "error");
        error.contains("forbidden")
    });
    assert!(denied, "no 403 in status: {error:?}\n{}", server.log_text());
    assert!(
        error.contains("system:serviceaccount:default:ns-defaults"),
        "{error}"
    );
    let retried = eventually(WAIT, || {
        status(server, "ns-defaults", "reconcileErrors")
            .parse::<u64>()
            .is_ok_and(|n| n >= 3)
    });
    assert!(retried, "the failing key was not retried");
    assert!(!has_defaults(server, "team-a"));

    // Granted: the retry succeeds.
    apply(server, WRITER);
    let served = eventually(WAIT, || has_defaults(server, "team-a"));
    assert!(served, "team-a got no defaults\n{}", server.log_text());
}

#[test]
fn a_remote_controller_manager_acts_as_the_service_account_by_impersonation() {
    let server = Server::start_with_args(&["--disable-controllers"]);
    let _manager = crate::harness::Component::start(&server, &["controller-manager"]);
    apply(&server, READERS);
    apply(
        &server,
        &controller_yaml(
            "ns-defaults",
            "examples/namespace-defaults",
            "ns-defaults",
            "{hard: {pods: \"7\"}}",
        ),
    );
    ok(server.kubectl(KUBECTL_133, &["create", "namespace", "team-a"]));
    denied_then_granted(&server);
}

#[test]
fn namespace_defaults_is_authorized_as_its_service_account_beside_hostile_controllers() {
    let server = Server::start();
    apply(&server, READERS);
    apply(
        &server,
        &controller_yaml(
            "looping",
            "fixtures/controller-hostile",
            "hostile",
            "{mode: loop}",
        ),
    );
    apply(
        &server,
        &controller_yaml(
            "trapping",
            "fixtures/controller-hostile",
            "hostile",
            "{mode: trap}",
        ),
    );
    apply(
        &server,
        &controller_yaml(
            "ns-defaults",
            "examples/namespace-defaults",
            "ns-defaults",
            "{hard: {pods: \"7\"}}",
        ),
    );
    ok(server.kubectl(KUBECTL_133, &["create", "namespace", "team-a"]));

    denied_then_granted(&server);
    ok(server.kubectl(KUBECTL_133, &["create", "namespace", "team-b"]));
    let served = eventually(Duration::from_secs(20), || has_defaults(&server, "team-b"));
    assert!(served, "team-b got no defaults\n{}", server.log_text());
    let cleared = eventually(WAIT, || status(&server, "ns-defaults", "error").is_empty());
    assert!(cleared, "status.error stayed set after successes");
    // Skipped by default.
    assert!(get(
        &server,
        &["get", "configmaps", "-n", "kube-system", "-o", "name"]
    )
    .lines()
    .all(|l| !l.contains("namespace-defaults")));

    // The hostile ones failed in their own lanes, visibly.
    assert_eq!(status(&server, "looping", "loaded"), "true");
    let timeouts = eventually(WAIT, || {
        status(&server, "looping", "timeouts")
            .parse::<u64>()
            .is_ok_and(|n| n > 0)
    });
    assert!(timeouts, "looping: {}", status(&server, "looping", "error"));
    let trapped = eventually(WAIT, || {
        status(&server, "trapping", "error").contains("trap on purpose")
    });
    assert!(
        trapped,
        "trapping: {}",
        status(&server, "trapping", "error")
    );

    // Deleting a WasmPlugin stops its controller.
    ok(server.kubectl(KUBECTL_133, &["delete", "wasmplugin", "ns-defaults"]));
    let stopped = eventually(WAIT, || {
        server.log_text().contains("wasm controller stopped")
    });
    assert!(stopped, "ns-defaults did not stop");
    ok(server.kubectl(KUBECTL_133, &["create", "namespace", "team-c"]));
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !has_defaults(&server, "team-c"),
        "a deleted controller still acts"
    );
}

const MIRROR_RBAC: &str = "apiVersion: v1
kind: Namespace
metadata: {name: shared}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: mirror, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: mirror}
rules:
- {apiGroups: [\"\"], resources: [namespaces], verbs: [get, list, watch]}
- {apiGroups: [\"\"], resources: [configmaps], verbs: [get, list, watch, create, patch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: mirror}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: mirror}
subjects:
- {kind: ServiceAccount, name: mirror, namespace: default}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ca-bundle, namespace: shared, labels: {keelson.dev/mirror: \"true\"}}
data: {motd: hello}
";

#[test]
#[ignore = "needs componentize-py and jco (plugins/build-guest-examples.sh)"]
fn python_configmap_mirror_copies_and_follows_its_source() {
    let wasm = crate::guest_languages::components()
        .python_controller
        .clone();
    let server = Server::start();
    apply(&server, MIRROR_RBAC);
    ok(server.kubectl(KUBECTL_133, &["create", "namespace", "team-a"]));
    let plugin = format!(
        "apiVersion: keelson.dev/v1alpha1
kind: WasmPlugin
metadata: {{name: configmap-mirror}}
spec:
  type: controller
  component: {{path: \"{}\"}}
  timeoutMillis: 5000
  controller:
    serviceAccountName: mirror
    watches:
    - {{apiVersion: v1, kind: Namespace}}
    - {{apiVersion: v1, kind: ConfigMap}}
",
        wasm.display()
    );
    apply(&server, &plugin);
    let motd = |ns: &str| {
        get(
            &server,
            &[
                "get",
                "configmap",
                "ca-bundle",
                "-n",
                ns,
                "-o",
                "jsonpath={.data.motd}",
            ],
        )
    };
    // A debug build compiles the ~18 MB component for a minute or two.
    let long = Duration::from_secs(300);
    let copied = eventually(long, || motd("team-a") == "hello");
    assert!(
        copied,
        "no copy in team-a: {}\n{}",
        status(&server, "configmap-mirror", "error"),
        server.log_text()
    );
    ok(server.kubectl(KUBECTL_133, &["create", "namespace", "team-b"]));
    assert!(
        eventually(WAIT, || motd("team-b") == "hello"),
        "no copy in team-b"
    );
    ok(server.kubectl(
        KUBECTL_133,
        &[
            "patch",
            "configmap",
            "ca-bundle",
            "-n",
            "shared",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"motd":"bye"}}"#,
        ],
    ));
    let followed = eventually(WAIT, || motd("team-a") == "bye" && motd("team-b") == "bye");
    assert!(
        followed,
        "copies did not follow: {}",
        status(&server, "configmap-mirror", "error")
    );
    assert_eq!(motd("kube-system"), "", "kube-system is skipped");
}
