//! What exists from the first start: the namespaces `default`, `kube-system`, `kube-public` and
//! `kube-node-lease`, the `default/kubernetes` Service with its Endpoints, the RuntimeClass
//! `wasm` (handler `wasmtime`, the agent's Wasm runtime), the default StorageClass `local-path`
//! (the built-in local-path provisioner's), and the serving of every stored
//! CustomResourceDefinition.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::rest::{create_object, WriteOptions};
use crate::start_error::StartError;
use crate::validation::FieldValidation;
use crate::ApiServer;

/// The cluster IP of the `kubernetes` Service (first address of 10.43.0.0/16).
pub(crate) const KUBERNETES_SERVICE_IP: &str = "10.43.0.1";

/// Creates the built-in objects that are missing and starts serving stored CRDs.
pub(crate) async fn run(api: &Arc<ApiServer>, secure_port: u16) -> Result<(), StartError> {
    let opts = WriteOptions {
        dry_run: false,
        validation: FieldValidation::Strict,
        manager: "keelson".into(),
        user: crate::serve::loopback_user(),
        managed_fields: None,
    };
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        ensure(
            api,
            "",
            "v1",
            "namespaces",
            None,
            json!({"metadata": {"name": ns}}),
            &opts,
        )
        .await?;
    }
    let service = json!({
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": KUBERNETES_SERVICE_IP, "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": secure_port}]},
    });
    ensure(api, "", "v1", "services", Some("default"), service, &opts).await?;
    let endpoints = json!({
        "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": secure_port, "protocol": "TCP"}]}],
    });
    upsert_endpoints(api, endpoints, &opts).await?;
    // The agent's Wasm runtime (handler `wasmtime`), as k3s creates RuntimeClasses for the
    // runtimes it finds.
    if api
        .registry
        .lookup("node.k8s.io", "v1", "runtimeclasses")
        .is_some()
    {
        let wasm = json!({"metadata": {"name": "wasm", "labels": {"app.kubernetes.io/managed-by": "keelson"}}, "handler": "wasmtime"});
        ensure(
            api,
            "node.k8s.io",
            "v1",
            "runtimeclasses",
            None,
            wasm,
            &opts,
        )
        .await?;
    }
    // The default StorageClass, served by the built-in local-path provisioner (as k3s ships
    // rancher.io/local-path).
    let local_path = json!({
        "metadata": {"name": "local-path", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}, "labels": {"app.kubernetes.io/managed-by": "keelson"}},
        "provisioner": "rancher.io/local-path",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    });
    ensure(
        api,
        "storage.k8s.io",
        "v1",
        "storageclasses",
        None,
        local_path,
        &opts,
    )
    .await?;
    // Keelson's own kinds, shipped as CRDs (like k3s's HelmChart).
    let crd: Value = serde_saphyr::from_str(include_str!("wasm/wasmplugin-crd.yaml"))
        .map_err(|e| failed("the WasmPlugin CRD", &e.to_string()))?;
    ensure(
        api,
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        None,
        crd,
        &opts,
    )
    .await?;
    // Serve every stored CRD.
    if let Some(def) =
        api.registry
            .lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    {
        let (items, _) = api.store.list(&def.prefix()).await?;
        for kv in items {
            if let Ok(crd) = serde_json::from_slice::<Value>(&kv.value) {
                crate::strategy::sync_crd(api, &crd, false);
            }
        }
    }
    Ok(())
}

async fn ensure(
    api: &Arc<ApiServer>,
    group: &str,
    version: &str,
    plural: &str,
    ns: Option<&str>,
    obj: Value,
    opts: &WriteOptions,
) -> Result<(), StartError> {
    let def = api
        .registry
        .lookup(group, version, plural)
        .ok_or_else(|| failed(plural, "not registered"))?;
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if api.store.get(&def.key(ns, &name)).await?.is_some() {
        return Ok(());
    }
    match create_object(api, &def, ns, obj, opts).await {
        Ok(_) => Ok(()),
        Err(e) if e.reason == "AlreadyExists" => Ok(()),
        Err(e) => Err(failed(&format!("{plural}/{name}"), &e.message)),
    }
}

/// The kubernetes Endpoints follow the real secure port, which may change between starts.
/// Servers sharing a store race on it: a write that loses re-reads (a few times; then the
/// other server's stands — every server of a cluster serves the same API).
async fn upsert_endpoints(
    api: &Arc<ApiServer>,
    endpoints: Value,
    opts: &WriteOptions,
) -> Result<(), StartError> {
    let def = api
        .registry
        .lookup("", "v1", "endpoints")
        .ok_or_else(|| failed("endpoints", "not registered"))?;
    let key = def.key(Some("default"), "kubernetes");
    for _ in 0..5 {
        let Some(kv) = api.store.get(&key).await? else {
            return ensure(api, "", "v1", "endpoints", Some("default"), endpoints, opts).await;
        };
        let mut current: Value = serde_json::from_slice(&kv.value)
            .map_err(|e| failed("endpoints/kubernetes", &e.to_string()))?;
        if current["subsets"] == endpoints["subsets"] {
            return Ok(());
        }
        current["subsets"] = endpoints["subsets"].clone();
        match api
            .store
            .update(&key, crate::objects::to_store(&current), kv.mod_revision)
            .await
        {
            Err(keelson_store::Error::Conflict(_)) => continue,
            done => return done.map(|_| ()).map_err(Into::into),
        }
    }
    Ok(())
}

fn failed(what: &str, message: &str) -> StartError {
    StartError::Bootstrap {
        what: what.to_string(),
        message: message.to_string(),
    }
}
