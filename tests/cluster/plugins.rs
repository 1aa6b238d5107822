//! Wasm admission plugins in a running server, driven as an operator would: `keelson plugin
//! build | install | list | rm` and kubectl. Denials carry the plugin's message; mutations
//! land; a new version hot-swaps without a restart (and a broken one leaves the old running);
//! rules and selectors scope plugins; hostile plugins (infinite loop, 4 GiB allocation, trap,
//! garbage and huge output) are answered within their timeout per failurePolicy while the
//! server keeps serving.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::harness::{eventually, fails, ok, Server, KUBECTL_133};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds a plugin crate (examples/ or fixtures/) with `keelson plugin build`, once.
pub(crate) fn component(dir: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.get(dir) {
        return p.clone();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(["plugin", "build"])
        .arg(repo_root().join("plugins").join(dir))
        .output()
        .unwrap();
    let path = PathBuf::from(ok(out).trim());
    assert!(path.exists(), "{}", path.display());
    built.insert(dir.to_string(), path.clone());
    path
}

fn keelson(server: &Server, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(args)
        .env("KUBECONFIG", server.kubeconfig())
        .output()
        .unwrap()
}

fn install(server: &Server, dir: &str, name: &str, extra: &[&str]) {
    let wasm = component(dir);
    let mut args = vec!["plugin", "install", wasm.to_str().unwrap(), "--name", name];
    args.extend_from_slice(extra);
    ok(keelson(server, &args));
}

/// Waits until the plugin reports `loaded` for its current generation.
fn wait_loaded(server: &Server, name: &str) {
    let loaded = eventually(Duration::from_secs(60), || {
        let out = server.kubectl(
            KUBECTL_133,
            &[
                "get",
                "wasmplugin",
                name,
                "-o",
                "jsonpath={.metadata.generation} {.status.observedGeneration} {.status.loaded}",
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let parts: Vec<&str> = text.split(' ').collect();
        parts.len() == 3 && parts[0] == parts[1] && parts[2] == "true"
    });
    assert!(
        loaded,
        "plugin {name} never loaded; log:\n{}",
        server.log_text()
    );
}

fn apply(server: &Server, yaml: &str) -> Output {
    server.kubectl_stdin(KUBECTL_133, &["apply", "-f", "-"], yaml)
}

fn configmap(name: &str, labels: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\n")
}

#[test]
fn plugins_validate_mutate_hot_swap_and_scope() {
    let server = Server::start();
    let k = |args: &[&str]| server.kubectl(KUBECTL_133, args);

    // A validating plugin scoped to configmaps.
    install(
        &server,
        "examples/require-labels",
        "require-team",
        &[
            "--resource",
            "configmaps",
            "--config",
            r#"{"labels":["team"]}"#,
        ],
    );
    wait_loaded(&server, "require-team");
    let denied = fails(k(&["create", "configmap", "no-team"]));
    assert!(
        denied.contains("admission plugin \"require-team\" denied the request")
            && denied.contains("team"),
        "{denied}"
    );
    ok(apply(&server, &configmap("with-team", "team: a")));
    ok(k(&[
        "create",
        "secret",
        "generic",
        "unscoped",
        "--from-literal=a=b",
    ]));

    // A mutating plugin injects resources into pods.
    install(
        &server,
        "examples/default-resources",
        "defaults",
        &[
            "--type",
            "admission-mutate",
            "--resource",
            "pods",
            "--config",
            r#"{"requests":{"cpu":"100m","memory":"64Mi"}}"#,
        ],
    );
    wait_loaded(&server, "defaults");
    ok(k(&["run", "web", "--image=nginx:1.27"]));
    assert_eq!(
        ok(k(&[
            "get",
            "pod",
            "web",
            "-o",
            "jsonpath={.spec.containers[0].resources.requests.cpu}"
        ])),
        "100m"
    );

    // A new version (new config) takes over without a restart.
    install(
        &server,
        "examples/require-labels",
        "require-team",
        &[
            "--resource",
            "configmaps",
            "--config",
            r#"{"labels":["owner"]}"#,
        ],
    );
    wait_loaded(&server, "require-team");
    let denied = fails(apply(&server, &configmap("team-only", "team: a")));
    assert!(denied.contains("owner"), "{denied}");
    ok(apply(&server, &configmap("owned", "owner: me")));

    // A version that does not compile leaves the old one running and reports the error.
    let garbage = server.dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm not really a component").unwrap();
    ok(keelson(
        &server,
        &[
            "plugin",
            "install",
            garbage.to_str().unwrap(),
            "--name",
            "require-team",
            "--resource",
            "configmaps",
        ],
    ));
    assert!(eventually(Duration::from_secs(30), || !ok(k(&[
        "get",
        "wasmplugin",
        "require-team",
        "-o",
        "jsonpath={.status.error}"
    ]))
    .is_empty()));
    assert_eq!(
        ok(k(&[
            "get",
            "wasmplugin",
            "require-team",
            "-o",
            "jsonpath={.status.loaded}"
        ])),
        "true"
    );
    assert!(fails(apply(&server, &configmap("still-checked", "team: a"))).contains("owner"));

    // list and rm.
    let listed = ok(keelson(&server, &["plugin", "list"]));
    assert!(
        listed.contains("require-team") && listed.contains("defaults"),
        "{listed}"
    );
    ok(keelson(&server, &["plugin", "rm", "require-team"]));
    assert!(eventually(Duration::from_secs(10), || k(&[
        "create",
        "configmap",
        "free-again"
    ])
    .status
    .success()));
}

#[test]
fn hostile_plugins_are_contained() {
    let server = Server::start();
    let k = |args: &[&str]| server.kubectl(KUBECTL_133, args);
    let fixtures = [
        ("fixtures/infinite-loop", "admission-validate"),
        ("fixtures/memory-bomb", "admission-validate"),
        ("fixtures/trap", "admission-validate"),
        ("fixtures/garbage-output", "admission-mutate"),
        ("fixtures/huge-output", "admission-validate"),
    ];
    for (dir, ty) in fixtures {
        let name = dir.trim_start_matches("fixtures/");
        // Each fixture only sees configmaps labelled for it (objectSelector via rules + label).
        let wasm = component(dir);
        let b64 = base64_file(&wasm);
        let yaml = format!(
            "apiVersion: keelson.dev/v1alpha1\nkind: WasmPlugin\nmetadata: {{name: {name}}}\nspec:\n  type: {ty}\n  component: {{base64: \"{b64}\"}}\n  rules: [{{operations: [CREATE], apiGroups: [\"\"], apiVersions: [\"*\"], resources: [configmaps]}}]\n  objectSelector: {{matchLabels: {{hostile: {name}}}}}\n  failurePolicy: Fail\n  timeoutMillis: 300\n  memoryLimitBytes: 67108864\n"
        );
        ok(apply(&server, &yaml));
        wait_loaded(&server, name);
        // While the hostile call runs, other requests are served.
        let other = std::thread::spawn({
            let kubeconfig = server.kubeconfig();
            let home = server.dir.path().join("home");
            let name = name.to_string();
            move || {
                let started = Instant::now();
                let out = Command::new(KUBECTL_133)
                    .args(["create", "configmap", &format!("bystander-{name}")])
                    .env("KUBECONFIG", kubeconfig)
                    .env("HOME", home)
                    .output()
                    .unwrap();
                (out.status.success(), started.elapsed())
            }
        });
        let started = Instant::now();
        let refused = fails(apply(
            &server,
            &configmap(&format!("victim-{name}"), &format!("hostile: {name}")),
        ));
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(10),
            "{name}: answered after {took:?}"
        );
        assert!(
            refused.contains(&format!("plugin \"{name}\"")),
            "{name}: {refused}"
        );
        // The failed call shows in the plugin's status within 2 s, not at the next slow sync.
        let errors_reported = eventually(Duration::from_secs(2), || {
            let out = k(&["get", "wasmplugin", name, "-o", "jsonpath={.status.errors}"]);
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<u64>()
                .is_ok_and(|n| n >= 1)
        });
        assert!(
            errors_reported,
            "{name}: status.errors not updated within 2 s"
        );
        let (bystander_ok, bystander_took) = other.join().unwrap();
        assert!(bystander_ok, "{name}: a concurrent request failed");
        assert!(
            bystander_took < Duration::from_secs(10),
            "{name}: bystander took {bystander_took:?}"
        );
        // failurePolicy Ignore lets the request through.
        ok(k(&[
            "patch",
            "wasmplugin",
            name,
            "--type=merge",
            "-p",
            r#"{"spec":{"failurePolicy":"Ignore"}}"#,
        ]));
        wait_loaded(&server, name);
        let admitted = apply(
            &server,
            &configmap(&format!("ignored-{name}"), &format!("hostile: {name}")),
        );
        if name == "huge-output"
            || name == "trap"
            || name == "infinite-loop"
            || name == "memory-bomb"
            || name == "garbage-output"
        {
            ok(admitted);
        }
    }
    // The server survived with bounded memory and still serves.
    let rss_kib = std::fs::read_to_string(format!("/proc/{}/status", server.pid()))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .map(|v| v.trim().trim_end_matches(" kB").parse::<u64>().unwrap())
        })
        .unwrap();
    assert!(
        rss_kib < 1024 * 1024,
        "server RSS {rss_kib} KiB after the memory bomb"
    );
    ok(k(&["get", "ns", "default"]));
    let metrics = ok(k(&["get", "--raw", "/metrics"]));
    assert!(
        metrics.contains("keelson_wasm_plugin_errors_total{plugin=\"infinite-loop\"}"),
        "{metrics}"
    );
}

pub(crate) fn base64_file(path: &std::path::Path) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).unwrap())
}
