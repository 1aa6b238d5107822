//! `keelson plugin test`: runs a component against fixture objects offline, with the same host
//! (limits, deadline, output checks) the server uses, and prints each verdict and patch.

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

pub(super) fn run(a: TestArgs) -> anyhow::Result<()> {
    let operation = match a.operation.to_uppercase().as_str() {
        "CREATE" => Operation::Create,
        "UPDATE" => Operation::Update,
        "DELETE" => Operation::Delete,
        other => anyhow::bail!("--operation {other:?}: use CREATE, UPDATE or DELETE"),
    };
    serde_json::from_str::<Value>(&a.config).context("--config is not JSON")?;
    let cache = tempfile::tempdir()?;
    let host = PluginHost::new(cache.path())?;
    let wasm = std::fs::read(&a.wasm).with_context(|| format!("reading {}", a.wasm.display()))?;
    let limits = Limits {
        timeout: Duration::from_millis(a.timeout_millis),
        ..Limits::default()
    };
    let plugin = host.load("test", &wasm, limits)?;
    let mut all_allowed = true;
    for path in &a.objects {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let obj: Value =
            serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
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
        println!(
            "{}: {}",
            path.display(),
            serde_json::to_string_pretty(&out)?
        );
    }
    let m = plugin.metrics();
    eprintln!(
        "{} call(s), {} error(s), p99 ≤ {:.0} µs",
        m.calls,
        m.errors,
        m.quantile(0.99).unwrap_or(0.0) * 1e6
    );
    if !all_allowed {
        std::process::exit(1);
    }
    Ok(())
}
