//! `keelson status`: the cluster on one screen, from the API (through keelson-client): store
//! backend, size and revision and the last snapshot (`GET /keelson/v1/status`), the leaders
//! of the scheduler and the controller manager (their Leases in kube-system), nodes
//! ready/total, and the Wasm plugins loaded/failing with their error counts.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DynamicObject};
use serde_json::{json, Value};

/// `keelson status`.
#[derive(Args, Debug)]
pub(crate) struct StatusCommand {
    /// kubeconfig of the server [default: $KUBECONFIG, else the data dir's kubeconfig.yaml].
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_parser = ["text", "json"], default_value = "text")]
    output: String,
}

async fn leader(leases: &Api<Lease>, name: &str) -> Value {
    match leases.get_opt(name).await {
        Ok(Some(l)) => {
            let spec = l.spec.unwrap_or_default();
            json!({
                "holder": spec.holder_identity,
                "renewTime": spec.renew_time.map(|t| t.0.to_string()),
            })
        }
        Ok(None) => json!({"holder": null}),
        Err(e) => json!({"error": e.to_string()}),
    }
}

async fn gather(client: kube::Client) -> anyhow::Result<Value> {
    let request = http::Request::get("/keelson/v1/status").body(Vec::new())?;
    let server: Value = serde_json::from_str(
        &client
            .request_text(request)
            .await
            .context("GET /keelson/v1/status")?,
    )?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let nodes = Api::<Node>::all(client.clone())
        .list(&Default::default())
        .await?;
    let ready = nodes
        .items
        .iter()
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count();
    let plugins: Api<DynamicObject> =
        Api::all_with(client.clone(), &keelson_client::resources::wasm_plugins());
    let plugins = plugins.list(&Default::default()).await?;
    let items: Vec<Value> = plugins
        .items
        .iter()
        .map(|p| {
            let s = &p.data["status"];
            json!({
                "name": p.metadata.name,
                "loaded": s["loaded"].as_bool().unwrap_or(false),
                "error": s["error"],
                "calls": s["calls"].as_u64().unwrap_or(0),
                "errors": s["errors"].as_u64().unwrap_or(0),
            })
        })
        .collect();
    let loaded = items.iter().filter(|p| p["loaded"] == json!(true)).count();
    Ok(json!({
        "store": server["store"],
        "lastSnapshot": server["lastSnapshot"],
        "certificates": server["certificates"],
        "leaders": {
            "scheduler": leader(&leases, "kube-scheduler").await,
            "controllerManager": leader(&leases, "kube-controller-manager").await,
        },
        "nodes": {"ready": ready, "total": nodes.items.len()},
        "wasmPlugins": {
            "loaded": loaded,
            "failing": items.len() - loaded,
            "items": items,
        },
    }))
}

fn holder(v: &Value) -> String {
    v["holder"]
        .as_str()
        .map(str::to_string)
        .or_else(|| v["error"].as_str().map(|e| format!("unknown ({e})")))
        .unwrap_or_else(|| "none (in-process, no election)".into())
}

impl StatusCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let path = super::kube_client::kubeconfig_path(self.kubeconfig);
        let client = super::kube_client::from_kubeconfig(&path).await?;
        let s = gather(client).await?;
        if self.output == "json" {
            println!("{}", serde_json::to_string_pretty(&s)?);
            return Ok(());
        }
        let store = &s["store"];
        println!(
            "store:               {} ({:.1} MiB, revision {})",
            store["backend"].as_str().unwrap_or("?"),
            store["sizeBytes"].as_f64().unwrap_or(0.0) / 1_048_576.0,
            store["revision"]
        );
        let last = &s["lastSnapshot"];
        if last.is_null() {
            println!("last snapshot:       none");
        } else {
            let when =
                chrono::DateTime::from_timestamp(last["createdUnix"].as_i64().unwrap_or(0), 0)
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_default();
            println!(
                "last snapshot:       {} at revision {} ({when})",
                last["name"].as_str().unwrap_or_default(),
                last["revision"]
            );
        }
        println!(
            "scheduler leader:    {}",
            holder(&s["leaders"]["scheduler"])
        );
        println!(
            "controller leader:   {}",
            holder(&s["leaders"]["controllerManager"])
        );
        println!(
            "nodes:               {}/{} ready",
            s["nodes"]["ready"], s["nodes"]["total"]
        );
        let w = &s["wasmPlugins"];
        println!(
            "wasm plugins:        {} loaded, {} failing",
            w["loaded"], w["failing"]
        );
        for p in w["items"].as_array().into_iter().flatten() {
            println!(
                "  {:<30} loaded={:<5} calls={:<8} errors={:<6} {}",
                p["name"].as_str().unwrap_or_default(),
                p["loaded"],
                p["calls"],
                p["errors"],
                p["error"].as_str().unwrap_or_default()
            );
        }
        for c in s["certificates"].as_array().into_iter().flatten() {
            let days = c["secondsLeft"].as_i64().unwrap_or(0) / 86_400;
            if days < 30 {
                println!(
                    "WARNING: {} expires in {days} days: run `keelson certificate rotate`",
                    c["file"].as_str().unwrap_or_default()
                );
            }
        }
        Ok(())
    }
}
