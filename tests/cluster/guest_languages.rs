//! Admission plugins written in Python (componentize-py) and JavaScript (jco / ComponentizeJS)
//! against the same WIT world as the Rust examples: `plugins/build-guest-examples.sh` builds
//! `plugins/python/require-labels` and `plugins/js/deny-latest-tag` (installing the pinned
//! toolchains from PyPI and npm), then `keelson plugin test` runs each component offline, with
//! the server's plugin host, against fixture objects it must refuse and allow.
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

/// The built components `(python, javascript)`: runs the build script once per test binary.
fn components() -> &'static (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
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
        let [python, javascript] = paths.as_slice() else {
            panic!("expected two component paths, got {stdout:?}\n{stderr}");
        };
        for path in [python, javascript] {
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            assert!(size > 0, "{} is missing or empty", path.display());
            eprintln!("{}: {size} bytes", path.display());
        }
        eprintln!("guest examples built in {:.1?}", started.elapsed());
        (python.clone(), javascript.clone())
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
    let (python, _) = components();
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
    let (_, javascript) = components();
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
