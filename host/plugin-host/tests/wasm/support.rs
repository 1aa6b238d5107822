//! Builds the `plugins/` workspace once and hands out components, a shared
//! host and fixture requests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use keelson_plugin_host::{AdmissionPlugin, AdmissionRequest, Limits, Operation, PluginHost};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Directory holding the built components. Runs
/// `cargo build --release` in `plugins/` once (its `.cargo/config.toml` picks
/// the wasm32-wasip2 target), unless `KEELSON_PLUGINS_PREBUILT` is set.
pub(crate) fn wasm_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = repo_root();
        let target_dir = root.join("target");
        if std::env::var_os("KEELSON_PLUGINS_PREBUILT").is_none() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .current_dir(root.join("plugins"))
                .args(["build", "--release", "--target-dir"])
                .arg(&target_dir)
                .status()
                .expect("run cargo to build plugins/");
            assert!(status.success(), "building plugins/ failed");
        }
        target_dir.join("wasm32-wasip2/release")
    })
}

/// Bytes of the component built from crate `name` (e.g. `require-labels`).
pub(crate) fn wasm(name: &str) -> Vec<u8> {
    let path = wasm_dir().join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// One host for the whole test binary, caching under the target tmp dir.
pub(crate) fn host() -> &'static PluginHost {
    static HOST: OnceLock<PluginHost> = OnceLock::new();
    HOST.get_or_init(|| {
        PluginHost::new(Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache"))
            .expect("create plugin host")
    })
}

/// Loads component `name` into the shared host with a 200 ms deadline and a
/// 64 MiB memory cap.
pub(crate) fn load(name: &str) -> Arc<AdmissionPlugin> {
    load_with(name, test_limits())
}

/// Loads a plugin with `limits`.
pub(crate) fn load_with(name: &str, limits: Limits) -> Arc<AdmissionPlugin> {
    host()
        .load(name, &wasm(name), limits)
        .unwrap_or_else(|e| panic!("load {name}: {e}"))
}

/// Benchmarks measure cost, not deadlines: 64 MiB and 10 s, so a loaded machine (CI running
/// them with `--include-ignored` beside other suites) slows them without failing them.
pub(crate) fn bench_limits() -> Limits {
    Limits {
        timeout: Duration::from_secs(10),
        ..test_limits()
    }
}

/// 64 MiB, 200 ms, no fuel.
pub(crate) fn test_limits() -> Limits {
    Limits {
        memory_bytes: 64 << 20,
        timeout: Duration::from_millis(200),
        fuel: None,
    }
}

/// A create request for `object` (its kind decides group/version/resource).
pub(crate) fn create(object: serde_json::Value, config: serde_json::Value) -> AdmissionRequest {
    let kind = object["kind"].as_str().unwrap_or_default().to_string();
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    AdmissionRequest {
        uid: "0b3c2d8e-test".into(),
        operation: Operation::Create,
        group: group.into(),
        version: version.into(),
        resource: format!("{}s", kind.to_lowercase()),
        kind,
        namespace: object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .into(),
        name: object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .into(),
        user: keelson_plugin_host::UserInfo {
            name: "admin".into(),
            uid: String::new(),
            groups: vec!["system:masters".into()],
        },
        object: object.to_string(),
        config: config.to_string(),
        ..Default::default()
    }
}

/// A pod with one container per image.
pub(crate) fn pod(images: &[&str]) -> serde_json::Value {
    let containers: Vec<_> = images
        .iter()
        .enumerate()
        .map(|(i, image)| serde_json::json!({"name": format!("c{i}"), "image": image}))
        .collect();
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": containers}
    })
}

/// Asserts that a known-good plugin still answers (after a hostile call).
pub(crate) fn assert_host_healthy() {
    static GOOD: OnceLock<Arc<AdmissionPlugin>> = OnceLock::new();
    let plugin = GOOD.get_or_init(|| load("require-labels"));
    let req = create(pod(&["nginx:1.27"]), serde_json::json!({"labels": ["app"]}));
    let verdict = plugin.validate(&req).expect("good plugin answers");
    assert!(verdict.allowed, "{verdict:?}");
}
