//! The plugin-added server CPU per request: server-side dry-run creates of a 4.9 kB Pod over
//! HTTPS at 1 and 16 clients, with 0, 1 and 5 deny-latest-tag WasmPlugins validating Pods. The
//! server runs in this process, so process CPU (user + system) counts the load generator too;
//! it does the same work in every phase (same payload, same requests), so the difference with
//! and without plugins, per request, is what the plugins cost the server. Also the resident
//! memory the loaded plugins add.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use super::http::Client;
use super::load::{self, Outcome};
use super::report::{Metric, Report, Target, Unit};

/// Issue 16: plugin-added server CPU per request, one client.
const ADDED_CPU_TARGET_MS: f64 = 0.10;
/// DESIGN.md: Wasm plugin-added latency p99.
const ADDED_P99_TARGET_US: f64 = 100.0;
/// Issue 16: RSS with five plugins loaded ≤ idle + 8 MiB.
const RSS_TARGET_MIB: f64 = 8.0;
/// Namespace of the dry-run creates.
const NS: &str = "bench-adm-cpu";

/// The WasmPlugin objects of a phase: `n` deny-latest-tag validators on Pod creates.
fn plugins(n: usize, component: &[u8]) -> Vec<(String, Value)> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(component);
    (1..=n)
        .map(|i| {
            let name = format!("bench-cpu-deny-latest-{i}");
            let obj = json!({
                "apiVersion": "keelson.dev/v1alpha1",
                "kind": "WasmPlugin",
                "metadata": {"name": name},
                "spec": {
                    "type": "admission-validate",
                    "component": {"base64": b64},
                    "rules": [{
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                    }],
                    "failurePolicy": "Fail",
                    "timeoutMillis": 1000,
                },
            });
            (name, obj)
        })
        .collect()
}

/// A Pod of about 4.9 kB of JSON, with pinned images (deny-latest-tag admits it).
pub(super) fn pod(name: &str) -> Value {
    let env: Vec<Value> = (0..12)
        .map(|i| json!({"name": format!("SETTING_NUMBER_{i}"), "value": format!("value-of-setting-{i}-for-the-bench")}))
        .collect();
    let container = |n: &str, image: &str| {
        json!({
            "name": n,
            "image": image,
            "args": ["--listen=:8080", "--log-level=info", "--metrics=:9090"],
            "ports": [{"containerPort": 8080, "name": "http"}, {"containerPort": 9090, "name": "metrics"}],
            "env": env,
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
            "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}, {"name": "data", "mountPath": "/var/lib/app"}],
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5},
        })
    };
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"app": "bench", "tier": "backend", "team": "platform", "release": "stable"},
            "annotations": {
                "example.com/owner": "platform-team@example.com",
                "example.com/description": "a pod of the size kubectl users send, for the admission CPU benchmark",
            },
        },
        "spec": {
            "containers": [
                container("app", "registry.example.com/team/app:1.27.3"),
                container("sidecar", "registry.example.com/team/sidecar:2.4.1"),
            ],
            "volumes": [{"name": "config", "emptyDir": {}}, {"name": "data", "emptyDir": {}}],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
        },
    })
}

/// Process CPU (user + system) so far.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

/// Resident memory of this process, in MiB.
fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// One run of dry-run creates: latencies and process CPU per request.
struct Run {
    out: Outcome,
    cpu_ms_per_request: Option<f64>,
}

async fn dry_runs(clients: &Arc<[Client]>, tag: &str, count: usize, concurrency: usize) -> Run {
    let path = format!("/api/v1/namespaces/{NS}/pods?dryRun=All");
    let clients = clients.clone();
    let tag: Arc<str> = tag.into();
    let before = process_cpu();
    let out = load::closed_loop(count, concurrency, Duration::from_secs(300), move |w, i| {
        let (client, path) = (clients[w % clients.len()].clone(), path.clone());
        let body = pod(&format!("{tag}-{i}"));
        async move { client.post(&path, &body).await }
    })
    .await;
    let cpu_ms_per_request = match (before, process_cpu()) {
        (Some(b), Some(a)) if !out.latencies.is_empty() => {
            Some((a - b).as_secs_f64() * 1e3 / out.latencies.len() as f64)
        }
        _ => None,
    };
    Run {
        out,
        cpu_ms_per_request,
    }
}

/// Installs the WasmPlugins and waits until each is loaded.
async fn install(admin: &Client, objs: &[(String, Value)]) -> Result<(), String> {
    for (_, obj) in objs {
        admin.post(super::admission::WASMPLUGINS, obj).await?;
    }
    for (name, _) in objs {
        super::admission::wait_loaded(admin, name).await?;
    }
    Ok(())
}

/// Runs the phases and returns the report. `requests` dry-run creates per phase and client
/// count, after a fifth as many to warm up.
pub(super) async fn measure(clients: Arc<[Client]>, deny_latest: &[u8], requests: usize) -> Report {
    let mut r = Report {
        backend: "embedded".into(),
        title: "plugin-added server CPU per request: dry-run creates of a 4.9 kB Pod over HTTPS, deny-latest-tag validating".into(),
        setup: format!(
            "{requests} requests per phase and client count; process CPU with plugins − without, per request (the load generator's share cancels out)"
        ),
        ..Report::default()
    };
    let admin = clients[0].clone();
    if let Err(e) = admin.ensure_namespace(NS).await {
        r.notes.push(format!("cannot create namespace {NS}: {e}"));
        return r;
    }
    // The namespace's default ServiceAccount comes from a controller; wait for creates to pass.
    let probe = format!("/api/v1/namespaces/{NS}/pods?dryRun=All");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Err(e) = admin.post(&probe, &pod("probe")).await {
        if tokio::time::Instant::now() >= deadline {
            r.notes.push(format!("dry-run creates fail: {e}"));
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let warm = (requests / 5).max(20);
    let mut baseline: Vec<Run> = Vec::new();
    let mut idle_rss = None;
    let mut installed = 0usize;
    let all = plugins(5, deny_latest);
    for n in [0usize, 1, 5] {
        if n > installed {
            if n > 0 && installed == 0 {
                idle_rss = rss_mib();
            }
            if let Err(e) = install(&admin, &all[installed..n]).await {
                r.notes.push(format!("{n} plugins: {e}"));
                return r;
            }
            installed = n;
        }
        for concurrency in [1usize, 16] {
            let tag = format!("p{n}c{concurrency}");
            dry_runs(&clients, &format!("w{tag}"), warm, concurrency).await;
            let run = dry_runs(&clients, &tag, requests, concurrency).await;
            r.notes
                .extend(run.out.error_note(&format!("{n} plugins ×{concurrency}")));
            if n == 0 {
                r.metrics.push(Metric::new(
                    "cpu_base",
                    format!("×{concurrency}, no plugin: server CPU per request"),
                    run.cpu_ms_per_request,
                    Unit::Millis,
                ));
                baseline.push(run);
                continue;
            }
            let Some(base) = baseline.get(if concurrency == 1 { 0 } else { 1 }) else {
                continue;
            };
            let cpu = match (run.cpu_ms_per_request, base.cpu_ms_per_request) {
                (Some(a), Some(b)) => Some(a - b),
                _ => None,
            };
            let one = n == 1 && concurrency == 1;
            r.metrics.push(
                Metric::new(
                    "cpu_added",
                    format!("×{concurrency}, {n} plugin(s): added CPU per request"),
                    cpu,
                    Unit::Millis,
                )
                .with_target(one.then_some(Target {
                    max: ADDED_CPU_TARGET_MS * n as f64,
                })),
            );
            for (key, p) in [("lat_p50", 50.0), ("lat_p99", 99.0)] {
                let added = match (run.out.percentile_ms(p), base.out.percentile_ms(p)) {
                    (Some(a), Some(b)) => Some((a - b) * 1e3),
                    _ => None,
                };
                let target = (key == "lat_p99" && n == 1 && concurrency == 1).then_some(Target {
                    max: ADDED_P99_TARGET_US,
                });
                r.metrics.push(
                    Metric::new(
                        key,
                        format!("×{concurrency}, {n} plugin(s): added latency p{p:.0}"),
                        added,
                        Unit::Micros,
                    )
                    .with_target(target),
                );
            }
        }
    }
    if let (Some(idle), Some(now)) = (idle_rss, rss_mib()) {
        r.metrics.push(
            Metric::new(
                "rss_added",
                format!("RSS added by 5 loaded plugins (idle {idle:.1} MiB)"),
                Some(now - idle),
                Unit::Mebibytes,
            )
            .with_target(Some(Target {
                max: RSS_TARGET_MIB,
            })),
        );
    }
    let objs = plugins(5, deny_latest);
    for (name, _) in objs.iter().take(installed) {
        let _ = admin
            .delete(&format!("{}/{name}", super::admission::WASMPLUGINS))
            .await;
    }
    r
}
