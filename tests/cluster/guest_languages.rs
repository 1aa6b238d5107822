//! Plugins written in Python (componentize-py) and JavaScript (jco / ComponentizeJS) against
//! the same WIT worlds as the Rust examples: `plugins/build-guest-examples.sh` builds
//! `plugins/python/require-labels` and `plugins/js/deny-latest-tag` (admission) and
//! `plugins/python/prefer-nodes` (scheduler), installing the pinned toolchains from PyPI and
//! npm; then `keelson plugin test` runs each component offline, with the server's plugin host,
//! against fixture objects it must refuse and allow, and the Python scheduler plugin must
//! answer exactly as its Rust twin.
//!
//! Needs python3 with pip and node (>= 20) with npm, and registry access on the first run.
//! Wasmtime compiles these ~12–18 MB components (a CPython and a SpiderMonkey inside) on each
//! `plugin test`, which takes a minute or two in a debug build.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

use serde_json::Value;

const IGNORE: &str = "needs componentize-py and jco (plugins/build-guest-examples.sh)";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The built components: runs the build script once per test binary.
pub(crate) struct Components {
    /// `plugins/python/require-labels` (world `admission`).
    python: PathBuf,
    /// `plugins/js/deny-latest-tag` (world `admission`).
    javascript: PathBuf,
    /// `plugins/python/prefer-nodes` (world `scheduler`).
    python_scheduler: PathBuf,
    /// `plugins/python/configmap-mirror` (world `controller`).
    pub(crate) python_controller: PathBuf,
}

pub(crate) fn components() -> &'static Components {
    static BUILT: OnceLock<Components> = OnceLock::new();
    BUILT.get_or_init(|| {
        let started = Instant::now();
        let out = Command::new("bash")
            .arg(repo_root().join("plugins/build-guest-examples.sh"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{IGNORE}: build failed ({}):\n{stderr}",
            out.status
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let paths: Vec<PathBuf> = stdout.lines().map(PathBuf::from).collect();
        let [python, javascript, python_scheduler, python_controller] = paths.as_slice() else {
            panic!("expected four component paths, got {stdout:?}\n{stderr}");
        };
        for path in [python, javascript, python_scheduler, python_controller] {
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            assert!(size > 0, "{} is missing or empty", path.display());
            eprintln!("{}: {size} bytes", path.display());
        }
        eprintln!("guest examples built in {:.1?}", started.elapsed());
        Components {
            python: python.clone(),
            javascript: javascript.clone(),
            python_scheduler: python_scheduler.clone(),
            python_controller: python_controller.clone(),
        }
    })
}

/// Writes fixture objects (`(file name, YAML)`) into a temp dir.
fn fixtures(files: &[(&str, &str)]) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let paths = files
        .iter()
        .map(|(name, yaml)| {
            let path = dir.path().join(name);
            std::fs::write(&path, yaml).unwrap();
            path
        })
        .collect();
    (dir, paths)
}

/// Runs `keelson plugin test` on all fixtures at once (one compile of the component) and
/// returns its exit status and the verdict printed for each fixture, in order.
fn plugin_test(wasm: &Path, objects: &[PathBuf], extra: &[&str]) -> (Output, Vec<Value>) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(["plugin", "test"])
        .arg(wasm)
        .args(objects)
        // Generous per-call deadline: a debug build on a loaded CI machine, not the plugin, is slow.
        .args(["--timeout-millis", "5000"])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "plugin test {} took {:.1?}: {}",
        wasm.display(),
        started.elapsed(),
        stderr.trim()
    );
    // stdout is `<path>: <pretty JSON verdict>` per fixture.
    let verdicts = objects
        .iter()
        .map(|path| {
            let label = format!("{}: ", path.display());
            let at = stdout
                .find(&label)
                .unwrap_or_else(|| panic!("no verdict for {label}in:\n{stdout}\n{stderr}"));
            let rest = &stdout[at + label.len()..];
            serde_json::Deserializer::from_str(rest)
                .into_iter::<Value>()
                .next()
                .unwrap_or_else(|| panic!("no JSON after {label}"))
                .unwrap()
        })
        .collect();
    (out, verdicts)
}

fn assert_allowed(verdict: &Value) {
    assert_eq!(verdict["allowed"], true, "{verdict:#}");
}

fn assert_refused(verdict: &Value, message: &str) {
    assert_eq!(verdict["allowed"], false, "{verdict:#}");
    assert!(
        verdict.get("error").is_none(),
        "the plugin failed instead of refusing: {verdict:#}"
    );
    assert_eq!(verdict["code"], 403, "{verdict:#}");
    assert_eq!(verdict["message"], message, "{verdict:#}");
}

#[test]
#[ignore = "needs componentize-py and jco (plugins/build-guest-examples.sh)"]
fn python_require_labels_refuses_missing_labels() {
    let python = &components().python;
    let configmap = |name: &str, labels: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\ndata:\n  a: b\n")
    };
    let labelled = configmap("labelled", "team: payments, tier: web");
    let partly = configmap("partly", "team: payments");
    let unlabelled = configmap("unlabelled", "app: web");
    let (_dir, objects) = fixtures(&[
        ("labelled.yaml", &labelled),
        ("partly.yaml", &partly),
        ("unlabelled.yaml", &unlabelled),
    ]);
    let (out, v) = plugin_test(
        python,
        &objects,
        &["--config", r#"{"labels":["team","tier"]}"#],
    );
    assert_eq!(out.status.code(), Some(1), "a refusal exits 1");
    assert_allowed(&v[0]);
    assert_refused(
        &v[1],
        "ConfigMap \"partly\" is missing required label(s): tier",
    );
    assert_refused(
        &v[2],
        "ConfigMap \"unlabelled\" is missing required label(s): team, tier",
    );
}

#[test]
#[ignore = "needs componentize-py and jco (plugins/build-guest-examples.sh)"]
fn javascript_deny_latest_tag_refuses_floating_images() {
    let javascript = &components().javascript;
    let pod = |name: &str, image: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n    - name: web\n      image: {image}\n"
        )
    };
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    spec:\n      initContainers:\n        - name: init\n          image: busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000\n      containers:\n        - name: app\n          image: registry.local:5000/team/app\n";
    let latest = pod("latest", "nginx:latest");
    let pinned = pod("pinned", "nginx:1.27");
    let (_dir, objects) = fixtures(&[
        ("latest.yaml", &latest),
        ("pinned.yaml", &pinned),
        ("deployment.yaml", deployment),
    ]);
    let (out, v) = plugin_test(javascript, &objects, &[]);
    assert_eq!(out.status.code(), Some(1), "a refusal exits 1");
    assert_refused(
        &v[0],
        "container \"web\" image \"nginx:latest\" uses :latest; pin a version tag or digest",
    );
    assert_allowed(&v[1]);
    assert_refused(
        &v[2],
        "container \"app\" image \"registry.local:5000/team/app\" has no tag (means :latest); pin a version tag or digest",
    );
}

#[test]
#[ignore = "needs componentize-py and jco (plugins/build-guest-examples.sh)"]
fn python_scheduler_plugin_answers_like_its_rust_twin() {
    let python = &components().python_scheduler;
    let rust = crate::plugins::component("examples/prefer-nodes");
    let node = |name: &str, memory: &str, labels: &str| {
        format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{{\"name\":\"{name}\",\"labels\":{{{labels}}}}},\"status\":{{\"allocatable\":{{\"cpu\":\"4\",\"memory\":\"{memory}\",\"pods\":\"110\"}}}}}}"
        )
    };
    let nodes = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[{},{},{}]}}",
        node("a", "64Gi", "\"keelson.dev/no-wasm\":\"true\""),
        node("b", "16Gi", ""),
        node("c", "8Gi", "\"disk\":\"ssd\""),
    );
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n    - name: web\n      image: nginx:1.27\n      resources: {requests: {cpu: 100m, memory: 1Gi}}\n";
    let (dir, objects) = fixtures(&[("nodes.json", &nodes), ("pod.yaml", pod)]);
    let nodes_file = dir.path().join("nodes.json");
    let answers = |wasm: &Path, config: &str| {
        let (out, v) = plugin_test(
            wasm,
            &objects[1..],
            &[
                "--world",
                "scheduler",
                "--config",
                config,
                "--nodes",
                nodes_file.to_str().unwrap(),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        v.into_iter().next().unwrap()
    };
    for config in [
        "{}",
        r#"{"preferLabel":{"key":"disk","value":"ssd"},"otherMax":40}"#,
    ] {
        let py = answers(python, config);
        let rs = answers(&rust, config);
        assert_eq!(py, rs, "config {config}: Python and Rust differ");
        assert_eq!(
            py["filter"][0]["code"], "UnschedulableAndUnresolvable",
            "{py:#}"
        );
        assert_eq!(
            py["filter"][0]["reason"],
            "node(s) had label keelson.dev/no-wasm"
        );
        assert_eq!(py["filter"][1]["code"], "Success", "{py:#}");
        let scores: Vec<(String, u64)> = py["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["node"].as_str().unwrap().into(),
                    s["score"].as_u64().unwrap(),
                )
            })
            .collect();
        let expected = match config {
            // By free memory: b is the freest (50), c has half b's memory (25).
            "{}" => vec![("b".to_string(), 50), ("c".to_string(), 25)],
            // c carries the preferred label (100); b is the freest of the rest (40).
            _ => vec![("b".to_string(), 40), ("c".to_string(), 100)],
        };
        assert_eq!(scores, expected, "config {config}");
    }
}
