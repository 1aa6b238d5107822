//! `keelson plugin install | list | rm`: WasmPlugin objects through the API.

use std::path::PathBuf;

use anyhow::Context;
use base64::Engine;
use clap::Args;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::{json, Value};

use super::kubeconfig::ConnectArgs;

/// The WasmPlugin API of the kubeconfig's cluster.
async fn plugins(connect: &ConnectArgs) -> anyhow::Result<Api<DynamicObject>> {
    let client = connect.connect().await?;
    Ok(Api::all_with(
        client,
        &keelson_client::resources::wasm_plugins(),
    ))
}

/// Flags of `keelson plugin install`.
#[derive(Args, Debug)]
pub(crate) struct InstallArgs {
    /// The component (.wasm).
    wasm: PathBuf,
    /// WasmPlugin name.
    #[arg(long)]
    name: String,
    /// admission-validate, admission-mutate or controller.
    #[arg(long = "type", default_value = "admission-validate")]
    kind: String,
    /// For `--type controller`: a kind it watches, as `v1/Namespace` or `apps/v1/Deployment`
    /// (repeatable; at least one).
    #[arg(long = "watch")]
    watches: Vec<String>,
    /// For `--type controller`: the ServiceAccount it acts as, `NAMESPACE/NAME` or `NAME` (in
    /// `default`).
    #[arg(long)]
    service_account: Option<String>,
    /// Resources the plugin sees, as `group/resource` or `resource` (repeatable; default: all).
    #[arg(long = "resource")]
    resources: Vec<String>,
    /// Operations the plugin sees (CREATE, UPDATE, DELETE; repeatable; default: CREATE, UPDATE).
    #[arg(long = "operation")]
    operations: Vec<String>,
    /// JSON handed to the plugin with every request.
    #[arg(long, default_value = "{}")]
    config: String,
    /// Fail or Ignore when the plugin errs.
    #[arg(long, default_value = "Fail")]
    failure_policy: String,
    /// Deadline of one call in milliseconds.
    #[arg(long, default_value_t = 1000)]
    timeout_millis: u64,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Flags of `keelson plugin rm`.
#[derive(Args, Debug)]
pub(crate) struct RmArgs {
    /// WasmPlugin name.
    name: String,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// The WasmPlugin object `install` sends (server-side apply, so re-running updates it).
fn manifest(a: &InstallArgs, wasm: &[u8]) -> anyhow::Result<Value> {
    let config: Value = serde_json::from_str(&a.config).context("--config is not JSON")?;
    let operations = if a.operations.is_empty() {
        vec!["CREATE".to_string(), "UPDATE".to_string()]
    } else {
        a.operations.clone()
    };
    let rules: Vec<Value> = if a.resources.is_empty() {
        vec![
            json!({"operations": operations, "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}),
        ]
    } else {
        a.resources
            .iter()
            .map(|r| {
                let (group, resource) = r.rsplit_once('/').unwrap_or(("", r));
                json!({"operations": operations, "apiGroups": [group], "apiVersions": ["*"], "resources": [resource]})
            })
            .collect()
    };
    let mut spec = json!({
        "type": a.kind,
        "component": {"base64": base64::engine::general_purpose::STANDARD.encode(wasm)},
        "config": config,
        "failurePolicy": a.failure_policy,
        "timeoutMillis": a.timeout_millis,
    });
    if a.kind == "controller" {
        spec["controller"] = controller(a)?;
    } else {
        spec["rules"] = json!(rules);
    }
    Ok(json!({
        "apiVersion": "keelson.dev/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": {"name": a.name},
        "spec": spec,
    }))
}

/// `spec.controller` from `--watch` and `--service-account`.
fn controller(a: &InstallArgs) -> anyhow::Result<Value> {
    anyhow::ensure!(
        !a.watches.is_empty(),
        "--type controller needs --watch (e.g. v1/Namespace)"
    );
    let watches = a
        .watches
        .iter()
        .map(|w| {
            let (api_version, kind) = w
                .rsplit_once('/')
                .filter(|(v, k)| !v.is_empty() && !k.is_empty())
                .with_context(|| format!("--watch {w:?} is not apiVersion/Kind"))?;
            Ok(json!({"apiVersion": api_version, "kind": kind}))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let sa = a
        .service_account
        .as_deref()
        .context("--type controller needs --service-account")?;
    let (namespace, name) = sa.split_once('/').unwrap_or(("default", sa));
    Ok(
        json!({"watches": watches, "serviceAccountName": name, "serviceAccountNamespace": namespace}),
    )
}

pub(super) async fn install(a: InstallArgs) -> anyhow::Result<()> {
    let wasm = std::fs::read(&a.wasm).with_context(|| format!("reading {}", a.wasm.display()))?;
    let obj = manifest(&a, &wasm)?;
    let api = plugins(&a.connect).await?;
    let params = PatchParams::apply("keelson-plugin").force();
    let out = api.patch(&a.name, &params, &Patch::Apply(&obj)).await?;
    println!(
        "wasmplugin.keelson.dev/{} installed (generation {})",
        a.name,
        out.metadata.generation.unwrap_or_default()
    );
    Ok(())
}

pub(super) async fn list(a: ConnectArgs) -> anyhow::Result<()> {
    let list = plugins(&a).await?.list(&Default::default()).await?;
    println!(
        "{:<24} {:<20} {:<7} {:<14} {:>7} {:>7}  ERROR",
        "NAME", "TYPE", "LOADED", "DIGEST", "CALLS", "ERRORS"
    );
    for p in list.items {
        let s = &p.data["status"];
        println!(
            "{:<24} {:<20} {:<7} {:<14} {:>7} {:>7}  {}",
            p.metadata.name.as_deref().unwrap_or_default(),
            p.data["spec"]["type"].as_str().unwrap_or_default(),
            s["loaded"].as_bool().unwrap_or(false),
            s["digest"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .take(12)
                .collect::<String>(),
            s["calls"].as_u64().unwrap_or(0),
            s["errors"].as_u64().unwrap_or(0),
            s["error"].as_str().unwrap_or_default(),
        );
    }
    Ok(())
}

pub(super) async fn rm(a: RmArgs) -> anyhow::Result<()> {
    plugins(&a.connect)
        .await?
        .delete(&a.name, &DeleteParams::default())
        .await?;
    println!("wasmplugin.keelson.dev/{} deleted", a.name);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        install: InstallArgs,
    }

    fn args(extra: &[&str]) -> Result<InstallArgs, clap::Error> {
        let base = [
            "keelson",
            "x.wasm",
            "--name",
            "ns-defaults",
            "--type",
            "controller",
        ];
        Cli::try_parse_from(base.iter().chain(extra)).map(|c| c.install)
    }

    #[test]
    fn controller_manifest() {
        let a = args(&[
            "--watch",
            "v1/Namespace",
            "--watch",
            "apps/v1/Deployment",
            "--service-account",
            "ops/bot",
        ])
        .unwrap();
        let m = manifest(&a, b"\0asm").unwrap();
        let c = &m["spec"]["controller"];
        assert_eq!(
            c["watches"][1],
            json!({"apiVersion": "apps/v1", "kind": "Deployment"})
        );
        assert_eq!(
            (
                c["serviceAccountNamespace"].as_str(),
                c["serviceAccountName"].as_str()
            ),
            (Some("ops"), Some("bot"))
        );
        assert!(m["spec"].get("rules").is_none());
        assert!(manifest(&args(&["--service-account", "bot"]).unwrap(), b"").is_err());
        assert!(manifest(
            &args(&["--watch", "Namespace", "--service-account", "bot"]).unwrap(),
            b""
        )
        .is_err());
    }
}
