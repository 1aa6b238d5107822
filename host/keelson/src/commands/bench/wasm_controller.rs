//! The Wasm controller part of `keelson bench controllers`: what one `reconcile` of the
//! namespace-defaults example costs (a fresh instance, its `cache` reads served by the host,
//! two create actions returned and checked), against a baseline from the same run: one
//! in-process ConfigMap create through the API server, the write a reconcile leads to.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::core::v1::ConfigMap;
use keelson_plugin_host::controller::{
    CacheError, ControllerAction, ControllerCache, GroupVersionKind, ObjectRef,
};
use keelson_plugin_host::{Limits, PluginHost};
use kube::api::PostParams;
use kube::Api;

use super::load;
use super::report::{Metric, Report, Unit};

/// The example controller timed.
const PLUGIN: &str = "namespace_defaults";
/// The namespace it reconciles.
const NAMESPACE: &str = "bench-wasm";

/// A cache holding one live Namespace and nothing else, so every reconcile decides to create
/// the ConfigMap and the ResourceQuota.
struct OneNamespace {
    namespace: String,
}

impl ControllerCache for OneNamespace {
    fn get(
        &self,
        kind: &GroupVersionKind,
        _namespace: &str,
        name: &str,
    ) -> Result<Option<String>, CacheError> {
        Ok((kind.kind == "Namespace" && name == NAMESPACE).then(|| self.namespace.clone()))
    }

    fn list(
        &self,
        _kind: &GroupVersionKind,
        _namespace: Option<&str>,
        _label_selector: &str,
    ) -> Result<Vec<String>, CacheError> {
        Ok(Vec::new())
    }

    fn config(&self) -> String {
        "{}".into()
    }
}

/// Sorted samples' p50 and p99 in microseconds, as rows keyed `key`.
fn rows(r: &mut Report, key: &'static str, what: &str, mut samples: Vec<Duration>) -> f64 {
    samples.sort_unstable();
    let at = |p| load::percentile(&samples, p).map(|d| d.as_secs_f64() * 1e6);
    let p50 = at(50.0);
    r.metrics
        .push(Metric::new(key, format!("{what} p50"), p50, Unit::Micros));
    r.metrics.push(Metric::new(
        key,
        format!("{what} p99"),
        at(99.0),
        Unit::Micros,
    ));
    p50.unwrap_or(f64::NAN)
}

/// Times `n` reconciles of the example and `n` ConfigMap creates through `admin`, after ten
/// warm-up calls each.
pub(crate) async fn measure(
    plugins_dir: Option<PathBuf>,
    admin: &kube::Client,
    n: usize,
) -> anyhow::Result<Report> {
    let (dir, how) = super::plugins::locate(plugins_dir, &[PLUGIN]).await?;
    let wasm = std::fs::read(dir.join(format!("{PLUGIN}.wasm")))?;
    let cache_dir = tempfile::tempdir()?;
    let host = PluginHost::new(cache_dir.path())?;
    let plugin = host.load_controller(PLUGIN, &wasm, Limits::default())?;
    let cache: Arc<dyn ControllerCache> = Arc::new(OneNamespace {
        namespace: serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": NAMESPACE}, "status": {"phase": "Active"}
        })
        .to_string(),
    });
    let key = ObjectRef {
        kind: GroupVersionKind {
            group: String::new(),
            version: "v1".into(),
            kind: "Namespace".into(),
        },
        namespace: String::new(),
        name: NAMESPACE.into(),
    };
    let mut reconciles = Vec::with_capacity(n);
    for i in 0..n + 10 {
        let t = Instant::now();
        let actions = plugin
            .reconcile_async(&key, cache.clone())
            .await?
            .map_err(|e| anyhow::anyhow!("{PLUGIN} answered an error: {e}"))?;
        let took = t.elapsed();
        let creates = actions
            .iter()
            .filter(|a| matches!(a, ControllerAction::Create(_)))
            .count();
        anyhow::ensure!(
            creates == 2,
            "{PLUGIN} returned {actions:?}, not two creates"
        );
        if i >= 10 {
            reconciles.push(took);
        }
    }

    let configmaps: Api<ConfigMap> = Api::namespaced(admin.clone(), "default");
    let mut creates = Vec::with_capacity(n);
    for i in 0..n + 10 {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("bench-wasm-{i}")}, "data": {"owner": "platform"}
        }))?;
        let t = Instant::now();
        configmaps
            .create(&PostParams::default(), &cm)
            .await
            .context("the baseline ConfigMap create")?;
        if i >= 10 {
            creates.push(t.elapsed());
        }
    }

    let mut r = Report {
        backend: "wasm-controller".into(),
        title: format!("Wasm controller reconcile ({PLUGIN}.wasm, {n} calls; plugins {how})"),
        setup: "reconcile = fresh instance, config + Namespace read through the cache import, \
                two create actions lifted and checked; baseline = one in-process ConfigMap \
                create through the API server (what applying one action costs)"
            .into(),
        ..Report::default()
    };
    let ours = rows(&mut r, "wasm_reconcile", "reconcile", reconciles);
    let base = rows(
        &mut r,
        "wasm_baseline",
        "baseline: ConfigMap create",
        creates,
    );
    r.notes.push(format!(
        "a reconcile costs {:.2}× one in-process create of what it returns",
        ours / base
    ));
    Ok(r)
}
