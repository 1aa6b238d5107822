//! `keelson plugin test`: runs a component against fixture objects offline, with the same host
//! (limits, deadline, output checks) the server uses, and prints each verdict and patch
//! (world `admission`) or each pod's filter results and scores over the given nodes (world
//! `scheduler`, see [`scheduler`]).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use keelson_plugin_host::{AdmissionRequest, Limits, Operation, PluginHost};
use serde_json::{json, Value};

/// Flags of `keelson plugin test`.
#[derive(Args, Debug)]
pub(crate) struct TestArgs {
    /// The component (.wasm).
    wasm: PathBuf,
    /// Fixture objects (YAML or JSON files, one object each).
    #[arg(required = true)]
    objects: Vec<PathBuf>,
    /// Call `mutate` instead of `validate`.
    #[arg(long)]
    mutate: bool,
    /// CREATE, UPDATE or DELETE.
    #[arg(long, default_value = "CREATE")]
    operation: String,
    /// The plugin's config (JSON).
    #[arg(long, default_value = "{}")]
    config: String,
    /// Deadline of one call in milliseconds.
    #[arg(long, default_value_t = 1000)]
    timeout_millis: u64,
    /// The component's world: `admission`, or `scheduler` (the objects are then Pods, scheduled
    /// against `--nodes`).
    #[arg(long, default_value = "admission")]
    world: String,
    /// With `--world scheduler`: files of Node objects (one Node, or a List/NodeList of them).
    #[arg(long)]
    nodes: Vec<PathBuf>,
}

/// Reads one fixture object (YAML or JSON).
fn read_object(path: &std::path::Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Prints one fixture's answer as `<path>: <pretty JSON>`.
fn print_result(path: &std::path::Path, out: &Value) -> anyhow::Result<()> {
    println!("{}: {}", path.display(), serde_json::to_string_pretty(out)?);
    Ok(())
}

/// Prints the call counters to stderr; exits 1 unless every answer was a success.
fn finish(m: &keelson_plugin_host::MetricsSnapshot, success: bool) -> anyhow::Result<()> {
    eprintln!(
        "{} call(s), {} error(s), p99 ≤ {:.0} µs",
        m.calls,
        m.errors,
        m.quantile(0.99).unwrap_or(0.0) * 1e6
    );
    if !success {
        std::process::exit(1);
    }
    Ok(())
}

/// What both worlds need: a plugin host (and its temp cache dir), the component's bytes and
/// the limits of one call.
fn setup(a: &TestArgs) -> anyhow::Result<(tempfile::TempDir, PluginHost, Vec<u8>, Limits)> {
    serde_json::from_str::<Value>(&a.config).context("--config is not JSON")?;
    let cache = tempfile::tempdir()?;
    let host = PluginHost::new(cache.path())?;
    let wasm = std::fs::read(&a.wasm).with_context(|| format!("reading {}", a.wasm.display()))?;
    let limits = Limits {
        timeout: Duration::from_millis(a.timeout_millis),
        ..Limits::default()
    };
    Ok((cache, host, wasm, limits))
}

/// The plural resource of a kind, as Kubernetes forms most of them.
fn plural(kind: &str) -> String {
    let lower = kind.to_lowercase();
    if lower.ends_with('s') || lower.ends_with('x') {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

fn request(obj: &Value, operation: Operation, config: &str) -> AdmissionRequest {
    let api_version = obj["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = obj["kind"].as_str().unwrap_or_default();
    AdmissionRequest {
        uid: "keelson-plugin-test".into(),
        operation,
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        resource: plural(kind),
        namespace: obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .into(),
        name: obj["metadata"]["name"].as_str().unwrap_or_default().into(),
        object: if operation == Operation::Delete {
            String::new()
        } else {
            obj.to_string()
        },
        old_object: if operation == Operation::Create {
            String::new()
        } else {
            obj.to_string()
        },
        config: config.into(),
        ..Default::default()
    }
}

pub(super) async fn run(a: TestArgs) -> anyhow::Result<()> {
    if a.world == "scheduler" {
        return scheduler::run(a).await;
    }
    anyhow::ensure!(
        a.world == "admission",
        "--world {:?}: use admission or scheduler",
        a.world
    );
    let operation = match a.operation.to_uppercase().as_str() {
        "CREATE" => Operation::Create,
        "UPDATE" => Operation::Update,
        "DELETE" => Operation::Delete,
        other => anyhow::bail!("--operation {other:?}: use CREATE, UPDATE or DELETE"),
    };
    let (_cache, host, wasm, limits) = setup(&a)?;
    let plugin = host.load("test", &wasm, limits)?;
    let mut all_allowed = true;
    for path in &a.objects {
        let obj = read_object(path)?;
        let req = request(&obj, operation, &a.config);
        let result = if a.mutate {
            plugin.mutate(&req).map(|m| {
                let patch = m.patch.as_ref().map(|p| serde_json::to_value(p).unwrap_or(Value::Null));
                let mut patched = obj.clone();
                if let Some(p) = &m.patch {
                    let _ = json_patch::patch(&mut patched, p);
                }
                json!({"allowed": m.verdict.allowed, "code": m.verdict.code, "message": m.verdict.message, "warnings": m.verdict.warnings, "patch": patch, "patched": m.patch.as_ref().map(|_| patched)})
            })
        } else {
            plugin.validate(&req).map(|v| json!({"allowed": v.allowed, "code": v.code, "message": v.message, "warnings": v.warnings}))
        };
        let out = match result {
            Ok(v) => v,
            Err(e) => json!({"allowed": false, "error": e.kind(), "message": e.to_string()}),
        };
        all_allowed &= out["allowed"] == true;
        print_result(path, &out)?;
    }
    finish(&plugin.metrics(), all_allowed)
}

/// `--world scheduler`: each fixture is a Pod, filtered and then scored over the `--nodes`.
mod scheduler {
    use std::sync::Arc;

    use anyhow::Context;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use keelson_scheduler::wasm::{node_input, pod_input};
    use keelson_scheduler::{PodInfo, Snapshot};
    use serde_json::{json, Value};

    use super::{finish, print_result, read_object, setup, TestArgs};

    /// The Node objects of the `--nodes` files, in order.
    fn nodes(a: &TestArgs) -> anyhow::Result<Vec<Node>> {
        let mut nodes = Vec::new();
        for path in &a.nodes {
            let obj = read_object(path)?;
            let items = match obj.get("items") {
                Some(Value::Array(items)) => items.clone(),
                _ => vec![obj],
            };
            for item in items {
                let node: Node = serde_json::from_value(item)
                    .with_context(|| format!("{}: not a Node", path.display()))?;
                nodes.push(node);
            }
        }
        anyhow::ensure!(
            !nodes.is_empty(),
            "--world scheduler needs nodes: --nodes FILE (a Node, or a List of Nodes)"
        );
        Ok(nodes)
    }

    fn failure(e: &keelson_plugin_host::Error) -> Value {
        json!({"error": e.kind(), "message": e.to_string()})
    }

    pub(super) async fn run(a: TestArgs) -> anyhow::Result<()> {
        let (_cache, host, wasm, limits) = setup(&a)?;
        let plugin = host.load_scheduler("test", &wasm, limits)?;
        let mut snapshot = Snapshot::default();
        let mut names = Vec::new();
        for node in nodes(&a)? {
            let name = node.metadata.name.clone().unwrap_or_default();
            snapshot.entry(&name).set_node(Arc::new(node));
            names.push(name);
        }
        let inputs: Vec<_> = names
            .iter()
            .filter_map(|n| snapshot.get(n))
            .map(node_input)
            .collect();
        let mut failed = false;
        for path in &a.objects {
            let obj = read_object(path)?;
            let pod: Pod = serde_json::from_value(obj.clone())
                .with_context(|| format!("{}: not a Pod", path.display()))?;
            let mut input = pod_input(&PodInfo::new(Arc::new(pod)), obj.to_string());
            input.config = a.config.clone();
            let out = match plugin.filter_async(input.clone(), inputs.clone()).await {
                Err(e) => failure(&e),
                Ok(results) => {
                    let filter: Vec<Value> = results
                        .iter()
                        .zip(&inputs)
                        .map(|(r, n)| json!({"node": n.name, "code": format!("{:?}", r.code), "reason": r.reason}))
                        .collect();
                    let passed: Vec<_> = results
                        .iter()
                        .zip(&inputs)
                        .filter(|(r, _)| {
                            r.code == keelson_plugin_host::scheduler::FilterCode::Success
                        })
                        .map(|(_, n)| n.clone())
                        .collect();
                    let scores = match plugin.score_async(input, passed.clone()).await {
                        Ok(scores) => json!(passed
                            .iter()
                            .zip(scores)
                            .map(|(n, s)| json!({"node": n.name, "score": s}))
                            .collect::<Vec<_>>()),
                        Err(e) => failure(&e),
                    };
                    json!({"filter": filter, "scores": scores})
                }
            };
            failed |= out.get("error").is_some() || out["scores"].get("error").is_some();
            print_result(path, &out)?;
        }
        finish(&plugin.metrics(), !failed)
    }
}
