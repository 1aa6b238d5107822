//! `keelson bench admission`: what Wasm admission plugins add to API writes.
//!
//! One embedded-store server is started in this process. ConfigMap creates (which the plugins
//! see, and which carry the label require-labels wants, so they are admitted) are measured at a
//! fixed concurrency with 0, 1 and 5 WasmPlugins installed through the API (3× require-labels
//! validating, 2× default-resources mutating with a no-op patch for ConfigMaps), then with 0
//! again after removing them, to show drift. Each phase runs twice: over HTTPS, and through the
//! in-process client (`keelson_client::in_process()`: the same router, no socket or TLS), which isolates
//! the chain's cost from the round trip. The added latency per plugin is held to the DESIGN
//! target. Beforehand, [`AdmissionPlugin::bench`] gives each example plugin's raw instantiate
//! and call costs outside the server.
//!
//! First of all ([`super::admission_cpu`]): the plugin-added server CPU per request and the
//! resident memory of loaded plugins, with dry-run creates of a 4.9 kB Pod (`--cpu-only` stops
//! there).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::Engine as _;
use clap::Args;
use keelson_plugin_host::{
    AdmissionPlugin, AdmissionRequest, Limits, Operation, Percentiles, PluginHost, UserInfo,
};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::backend::{self, Backend, StartError};
use super::http::{self, Client};
use super::load::{self, Outcome};
use super::report::{self, latency, Metric, Report, Target, Unit};

/// DESIGN.md: "admission: Wasm plugin added latency p99 ≤ 200 µs".
const ADDED_P99_TARGET_US: f64 = 200.0;
/// Where WasmPlugin objects are served.
pub(super) const WASMPLUGINS: &str = "/apis/keelson.dev/v1alpha1/wasmplugins";
/// Upper bound on waiting for a plugin to load or unload (compiling is slow in debug builds).
const LOAD_TIMEOUT: Duration = Duration::from_secs(300);
/// Upper bound on each closed-loop phase.
const PHASE_BUDGET: Duration = Duration::from_secs(300);
/// Namespace of the HTTPS creates.
const HTTPS_NS: &str = "bench-adm-https";
/// Namespace of the in-process creates.
const LOCAL_NS: &str = "bench-adm-local";
/// Namespace of the probes (unlabeled ConfigMaps that require-labels refuses).
const PROBE_NS: &str = "bench-adm-probe";

/// Flags of `keelson bench admission`.
#[derive(Args, Debug)]
pub(crate) struct AdmissionBench {
    /// Small counts, for a smoke run.
    #[arg(long)]
    quick: bool,
    /// Only the plugin-added CPU and memory phase (Pod dry-run creates), not the raw plugin
    /// costs and the ConfigMap chain phases.
    #[arg(long)]
    cpu_only: bool,
    /// Dry-run Pod creates per phase and client count in the CPU phase [default: 3000; quick
    /// 300].
    #[arg(long)]
    cpu_requests: Option<usize>,
    /// Measured ConfigMap creates per phase and path [default: 3000; quick 300].
    #[arg(long)]
    requests: Option<usize>,
    /// Concurrent clients [default: 16].
    #[arg(long)]
    concurrency: Option<usize>,
    /// Calls per example plugin in the raw plugin benchmark [default: 2000; quick 200].
    #[arg(long)]
    iterations: Option<usize>,
    /// Directory with require_labels.wasm, deny_latest_tag.wasm and default_resources.wasm
    /// [default: <repo>/target/wasm32-wasip2/release, built with `cargo build --release` in
    /// plugins/ when missing].
    #[arg(long)]
    plugins_dir: Option<PathBuf>,
    /// Parent of the temp data dir [default: the system temp dir].
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// The resolved sizes of one run.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    requests: usize,
    warm_up: usize,
    concurrency: usize,
    iterations: usize,
}

/// What a plugin does in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Validate,
    Mutate,
}

impl Role {
    /// The WasmPlugin `spec.type`.
    fn spec_type(self) -> &'static str {
        match self {
            Role::Validate => "admission-validate",
            Role::Mutate => "admission-mutate",
        }
    }
}

/// An example plugin of the plugins/ workspace.
struct Example {
    /// File stem of the component.
    file: &'static str,
    role: Role,
}

const EXAMPLES: [Example; 3] = [
    Example {
        file: "require_labels",
        role: Role::Validate,
    },
    Example {
        file: "deny_latest_tag",
        role: Role::Validate,
    },
    Example {
        file: "default_resources",
        role: Role::Mutate,
    },
];

/// The example components' bytes, by file stem.
struct Components(Vec<(&'static str, Vec<u8>)>);

impl Components {
    fn read(dir: &Path) -> anyhow::Result<Self> {
        EXAMPLES
            .iter()
            .map(|e| {
                let path = dir.join(format!("{}.wasm", e.file));
                let bytes = std::fs::read(&path).with_context(|| format!("reading {path:?}"))?;
                Ok((e.file, bytes))
            })
            .collect::<anyhow::Result<_>>()
            .map(Components)
    }

    fn bytes(&self, file: &str) -> &[u8] {
        self.0
            .iter()
            .find(|(f, _)| *f == file)
            .map_or(&[], |(_, b)| b.as_slice())
    }
}

/// One WasmPlugin of the chain under test.
struct ChainPlugin {
    name: &'static str,
    file: &'static str,
    role: Role,
    config: Value,
}

/// The five plugins of the largest phase, in install order; the 1-plugin phase uses the first.
fn chain() -> Vec<ChainPlugin> {
    let labels = || json!({"labels": ["app"]});
    let defaults = || json!({"requests": {"cpu": "100m", "memory": "128Mi"}});
    vec![
        ChainPlugin {
            name: "bench-require-labels-1",
            file: "require_labels",
            role: Role::Validate,
            config: labels(),
        },
        ChainPlugin {
            name: "bench-require-labels-2",
            file: "require_labels",
            role: Role::Validate,
            config: labels(),
        },
        ChainPlugin {
            name: "bench-require-labels-3",
            file: "require_labels",
            role: Role::Validate,
            config: labels(),
        },
        ChainPlugin {
            name: "bench-default-resources-1",
            file: "default_resources",
            role: Role::Mutate,
            config: defaults(),
        },
        ChainPlugin {
            name: "bench-default-resources-2",
            file: "default_resources",
            role: Role::Mutate,
            config: defaults(),
        },
    ]
}

impl ChainPlugin {
    /// The WasmPlugin object: ConfigMap creates only, failurePolicy Fail.
    fn object(&self, components: &Components) -> Value {
        let b64 = base64::engine::general_purpose::STANDARD.encode(components.bytes(self.file));
        json!({
            "apiVersion": "keelson.dev/v1alpha1",
            "kind": "WasmPlugin",
            "metadata": {"name": self.name},
            "spec": {
                "type": self.role.spec_type(),
                "component": {"base64": b64},
                "rules": [{
                    "operations": ["CREATE"],
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "resources": ["configmaps"],
                }],
                "config": self.config,
                "failurePolicy": "Fail",
                "timeoutMillis": 1000,
            },
        })
    }
}

/// How creates reach the server.
#[derive(Clone)]
enum Route {
    /// Over HTTPS, one connection per worker.
    Https(Arc<[Client]>),
    /// Through the router in this process, without socket or TLS (keelson-client's
    /// in-process `kube::Client`).
    InProcess(Client),
}

impl Route {
    fn name(&self) -> &'static str {
        match self {
            Route::Https(_) => "HTTPS",
            Route::InProcess(_) => "in-process",
        }
    }

    async fn create(&self, worker: usize, name: String) -> Result<(), String> {
        match self {
            Route::Https(clients) => {
                clients[worker % clients.len()]
                    .create_configmap(HTTPS_NS, &name)
                    .await
            }
            Route::InProcess(client) => client.create_configmap(LOCAL_NS, &name).await,
        }
    }
}

/// `count` ConfigMap creates named `<prefix>-<i>` at `concurrency`.
async fn creates(route: &Route, prefix: String, count: usize, concurrency: usize) -> Outcome {
    let route = route.clone();
    let prefix: Arc<str> = prefix.into();
    load::closed_loop(count, concurrency, PHASE_BUDGET, move |w, i| {
        let route = route.clone();
        let name = format!("{prefix}-{i}");
        async move { route.create(w, name).await }
    })
    .await
}

/// One way of sending the creates: a route at a concurrency.
struct LoadPath {
    route: Route,
    concurrency: usize,
}

impl LoadPath {
    fn name(&self) -> String {
        format!("{} ×{}", self.route.name(), self.concurrency)
    }
}

/// One measured phase: the same creates over every path with `plugins` plugins installed.
struct Phase {
    label: &'static str,
    plugins: usize,
    /// Per path, in [`Measured::paths`] order.
    outcomes: Vec<Outcome>,
}

/// Everything the chain phases measured.
#[derive(Default)]
struct Measured {
    /// Names of the paths.
    paths: Vec<String>,
    phases: Vec<Phase>,
    notes: Vec<String>,
    /// One line about the setup.
    setup: String,
}

impl AdmissionBench {
    fn sizes(&self) -> Sizes {
        let q = self.quick;
        let pick = |flag: Option<usize>, full: usize, quick: usize| {
            flag.unwrap_or(if q { quick } else { full }).max(1)
        };
        let requests = pick(self.requests, 3000, 300);
        Sizes {
            requests,
            warm_up: (requests / 5).clamp(20, 500),
            concurrency: pick(self.concurrency, 16, 16),
            iterations: pick(self.iterations, 2000, 200),
        }
    }

    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let s = self.sizes();
        let base = self.dir.clone().unwrap_or_else(std::env::temp_dir);
        super::report::banner(
            "admission",
            "the load generator, the server and the plugins",
            &base,
        );
        let files: Vec<&str> = EXAMPLES.iter().map(|e| e.file).collect();
        let (dir, how) = super::plugins::locate(self.plugins_dir.clone(), &files).await?;
        println!("   plugins: {} ({how})", dir.display());
        let components = Arc::new(Components::read(&dir)?);

        eprintln!("bench: starting the server on the embedded store");
        let started = match backend::start(Backend::Embedded, &base).await {
            Ok(started) => started,
            Err(StartError::Skip(why)) => anyhow::bail!("the server did not start: {why}"),
            Err(StartError::Failed(e)) => return Err(e.context("the server did not start")),
        };
        let cpu_requests = self
            .cpu_requests
            .unwrap_or(if self.quick { 300 } else { 3000 })
            .max(1);
        eprintln!("bench: plugin-added CPU, {cpu_requests} dry-run Pod creates per phase");
        let clients: Arc<[Client]> = started.endpoint.clients(16)?.into();
        for c in clients.iter() {
            c.warm_up().await.map_err(anyhow::Error::msg)?;
        }
        let cpu = super::admission_cpu::measure(
            clients,
            components.bytes("deny_latest_tag"),
            cpu_requests,
        )
        .await;
        print!("{}", report::table(&cpu));
        if self.cpu_only {
            return Ok(());
        }

        eprintln!("bench: raw plugin costs, {} calls per plugin", s.iterations);
        let raw = {
            let components = components.clone();
            tokio::task::spawn_blocking(move || raw_costs(&components, s.iterations))
                .await
                .context("the raw plugin benchmark panicked")?
        };
        print!("{}", report::table(&raw));

        let measured = measure(&started, &components, s).await;
        let (latencies, added) = chain_reports(measured, s);
        print!("{}", report::table(&latencies));
        print!("{}", report::table(&added));
        drop(started);
        Ok(())
    }
}

/// A request each example plugin admits after doing its real work: a labeled ConfigMap for
/// require-labels, a Pod with pinned images for the others.
fn sample_request(example: &Example) -> AdmissionRequest {
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "bench", "labels": {"app": "web"}},
        "spec": {"containers": [
            {"name": "web", "image": "registry.example/web:1.2.3"},
            {"name": "proxy", "image": "registry.example/proxy@sha256:0123456789abcdef"},
        ]},
    });
    let (kind, resource, name, object, config) = match example.file {
        "require_labels" => (
            "ConfigMap",
            "configmaps",
            "cm",
            http::configmap("cm"),
            json!({"labels": ["app"]}),
        ),
        "default_resources" => (
            "Pod",
            "pods",
            "web",
            pod,
            json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}),
        ),
        _ => ("Pod", "pods", "web", pod, json!({})),
    };
    AdmissionRequest {
        uid: "bench".into(),
        operation: Operation::Create,
        version: "v1".into(),
        kind: kind.into(),
        resource: resource.into(),
        namespace: "bench".into(),
        name: name.into(),
        user: UserInfo {
            name: "admin".into(),
            uid: String::new(),
            groups: vec!["system:masters".into()],
        },
        object: object.to_string(),
        config: config.to_string(),
        ..AdmissionRequest::default()
    }
}

fn micros(d: Duration) -> Option<f64> {
    Some(d.as_secs_f64() * 1e6)
}

/// p50 and p99 rows of one cost, in microseconds.
fn percentile_rows(r: &mut Report, what: String, p: &Percentiles) {
    r.metrics.push(Metric::new(
        "raw",
        format!("{what} p50"),
        micros(p.p50),
        Unit::Micros,
    ));
    r.metrics.push(Metric::new(
        "raw",
        format!("{what} p99"),
        micros(p.p99),
        Unit::Micros,
    ));
}

/// Times `mutate` end to end (instantiate, call, patch parsing, drop) `iterations` times after
/// 10 warm-up calls.
fn time_mutate(
    plugin: &AdmissionPlugin,
    req: &AdmissionRequest,
    iterations: usize,
) -> Result<Percentiles, String> {
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations + 10 {
        let t = std::time::Instant::now();
        let verdict = plugin.mutate(req).map_err(|e| e.to_string())?;
        let took = t.elapsed();
        if !verdict.verdict.allowed {
            return Err(format!("refused: {}", verdict.verdict.message));
        }
        if i >= 10 {
            samples.push(took);
        }
    }
    samples.sort_unstable();
    let at = |p| load::percentile(&samples, p).unwrap_or_default();
    Ok(Percentiles {
        p50: at(50.0),
        p99: at(99.0),
        max: samples.last().copied().unwrap_or_default(),
    })
}

/// Raw costs of each example plugin on its own host, outside the server (blocking).
fn raw_costs(components: &Components, iterations: usize) -> Report {
    let mut r = Report {
        backend: "plugins".into(),
        title: format!(
            "raw plugin cost (AdmissionPlugin::bench: {iterations} validate() calls each on a \
             fresh instance; no server)"
        ),
        setup: "instantiate = new store + instance from InstancePre; call = validate() with \
                lowering, guest code, lifting, checks; total adds dropping the store"
            .into(),
        ..Report::default()
    };
    let cache = match tempfile::tempdir() {
        Ok(c) => c,
        Err(e) => {
            r.notes.push(format!("no cache dir: {e}"));
            return r;
        }
    };
    let host = match PluginHost::new(cache.path()) {
        Ok(h) => h,
        Err(e) => {
            r.notes.push(format!("no plugin host: {e}"));
            return r;
        }
    };
    for example in &EXAMPLES {
        let file = example.file;
        eprintln!("bench: raw costs of {file}");
        let started = std::time::Instant::now();
        let plugin = match host.load(file, components.bytes(file), Limits::default()) {
            Ok(p) => p,
            Err(e) => {
                r.notes.push(format!("{file}: does not load: {e}"));
                continue;
            }
        };
        r.metrics.push(Metric::new(
            "raw_load",
            format!("{file}: compile + load (cold cache)"),
            Some(started.elapsed().as_secs_f64() * 1e3),
            Unit::Millis,
        ));
        let req = sample_request(example);
        match plugin.validate(&req) {
            Ok(v) if !v.allowed => r.notes.push(format!(
                "{file}: the sample request is refused ({}); the numbers time a refusal",
                v.message
            )),
            Ok(_) => {}
            Err(e) => r.notes.push(format!("{file}: validate failed: {e}")),
        }
        match plugin.bench(&req, iterations) {
            Ok(b) => {
                percentile_rows(&mut r, format!("{file}: instantiate"), &b.instantiate);
                percentile_rows(&mut r, format!("{file}: validate() call"), &b.call);
                percentile_rows(&mut r, format!("{file}: total"), &b.total);
            }
            Err(e) => r.notes.push(format!("{file}: bench failed: {e}")),
        }
        if example.role == Role::Mutate {
            match time_mutate(&plugin, &req, iterations) {
                Ok(p) => percentile_rows(&mut r, format!("{file}: mutate() end to end"), &p),
                Err(e) => r.notes.push(format!("{file}: mutate failed: {e}")),
            }
        }
    }
    r.notes.push(
        "validate-only plugins answer mutate() and mutate-only ones validate() with the SDK's \
         allowing default; bench times validate(), so default_resources also has mutate() rows"
            .into(),
    );
    r
}

/// Installs plugins, runs the phases over every path, removes the plugins.
async fn measure(started: &backend::Started, components: &Components, s: Sizes) -> Measured {
    let mut m = Measured::default();
    let clients: Arc<[Client]> = match started.endpoint.clients(s.concurrency) {
        Ok(c) => c.into(),
        Err(e) => {
            m.notes.push(format!("no HTTPS client: {e:#}"));
            return m;
        }
    };
    let mut protocol = String::from("?");
    for c in clients.iter() {
        match c.warm_up().await {
            Ok(p) => protocol = p,
            Err(e) => {
                m.notes.push(format!("the server does not answer: {e}"));
                return m;
            }
        }
    }
    m.setup = format!(
        "HTTPS: {protocol} over TLS to {}, one connection per client; in-process: \
         keelson_client::in_process() through the router; ×N = N concurrent clients; {} warm-up creates \
         per phase and path; controllers running",
        started.endpoint.base(),
        s.warm_up
    );
    let admin = clients[0].clone();
    for ns in [HTTPS_NS, LOCAL_NS, PROBE_NS] {
        if let Err(e) = admin.ensure_namespace(ns).await {
            m.notes.push(format!("cannot create namespace {ns}: {e}"));
            return m;
        }
    }
    // The sequential in-process path shows per-request latency without queueing behind other
    // requests for the CPUs.
    let paths = [
        LoadPath {
            route: Route::Https(clients.clone()),
            concurrency: s.concurrency,
        },
        LoadPath {
            route: Route::InProcess(Client::wrap(started.in_process.clone())),
            concurrency: s.concurrency,
        },
        LoadPath {
            route: Route::InProcess(Client::wrap(started.in_process.clone())),
            concurrency: 1,
        },
    ];
    m.paths = paths.iter().map(LoadPath::name).collect();
    let chain = chain();
    let plan: [(&'static str, usize); 4] = [
        ("0 plugins", 0),
        ("1 plugin (validate)", 1),
        ("5 plugins (3 validate + 2 mutate)", 5),
        ("0 plugins again (after removal)", 0),
    ];
    let mut installed = 0;
    let mut probe = Probe::new(admin.clone());
    for (round, (label, count)) in plan.into_iter().enumerate() {
        let ready = if count > installed {
            install(&admin, &chain[installed..count], components).await
        } else if count < installed {
            uninstall(&admin, &chain[count..installed]).await
        } else {
            Ok(())
        };
        if let Err(e) = ready {
            m.notes.push(format!("{label}: {e}"));
            break;
        }
        installed = count;
        // With a require-labels installed, an unlabeled ConfigMap must be refused.
        let validating = chain[..count].iter().any(|p| p.role == Role::Validate);
        if let Err(e) = probe.expect(validating).await {
            m.notes.push(format!("{label}: {e}"));
            break;
        }
        let mut outcomes = Vec::new();
        for (p, path) in paths.iter().enumerate() {
            let name = path.name();
            eprintln!(
                "bench: {label}, {name}: {} warm-up + {} creates",
                s.warm_up, s.requests
            );
            let (route, c) = (&path.route, path.concurrency);
            let warm = creates(route, format!("w{round}p{p}"), s.warm_up, c).await;
            m.notes
                .extend(warm.error_note(&format!("{label}, {name} warm-up")));
            let out = creates(route, format!("m{round}p{p}"), s.requests, c).await;
            m.notes.extend(out.error_note(&format!("{label}, {name}")));
            outcomes.push(out);
        }
        if count == chain.len() {
            m.notes.extend(call_counts(&admin, &chain).await);
        }
        m.phases.push(Phase {
            label,
            plugins: count,
            outcomes,
        });
    }
    m
}

/// Creates `plugins` and waits until each one's current generation is loaded.
async fn install(
    admin: &Client,
    plugins: &[ChainPlugin],
    components: &Components,
) -> Result<(), String> {
    for p in plugins {
        eprintln!("bench: installing WasmPlugin {} ({})", p.name, p.file);
        admin.post(WASMPLUGINS, &p.object(components)).await?;
    }
    for p in plugins {
        let started = Instant::now();
        wait_loaded(admin, p.name).await?;
        eprintln!(
            "bench: {} loaded after {:.1} s",
            p.name,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Waits until `status.loaded` and `status.observedGeneration == metadata.generation`.
pub(super) async fn wait_loaded(admin: &Client, name: &str) -> Result<(), String> {
    let deadline = Instant::now() + LOAD_TIMEOUT;
    loop {
        let obj = admin.get_json(&format!("{WASMPLUGINS}/{name}")).await?;
        let generation = obj
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let status = &obj["status"];
        let observed = status["observedGeneration"].as_i64();
        if observed == Some(generation) {
            if status["loaded"].as_bool() == Some(true) {
                return Ok(());
            }
            if let Some(e) = status["error"].as_str().filter(|e| !e.is_empty()) {
                return Err(format!("WasmPlugin {name} did not load: {e}"));
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "WasmPlugin {name} not loaded within {LOAD_TIMEOUT:?}; status {status}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deletes `plugins` in reverse install order; the probe then waits for the first one (a
/// require-labels) to leave the chain, which the server does in watch order, so every other
/// deleted plugin has left too.
async fn uninstall(admin: &Client, plugins: &[ChainPlugin]) -> Result<(), String> {
    for p in plugins.iter().rev() {
        eprintln!("bench: deleting WasmPlugin {}", p.name);
        admin.delete(&format!("{WASMPLUGINS}/{}", p.name)).await?;
    }
    Ok(())
}

/// Creates unlabeled ConfigMaps to see whether a require-labels plugin is in the chain.
struct Probe {
    admin: Client,
    next: usize,
}

impl Probe {
    fn new(admin: Client) -> Self {
        Self { admin, next: 0 }
    }

    /// Waits (up to [`LOAD_TIMEOUT`]) until an unlabeled create is refused (`refused`) or
    /// admitted (`!refused`).
    async fn expect(&mut self, refused: bool) -> Result<(), String> {
        let deadline = Instant::now() + LOAD_TIMEOUT;
        loop {
            self.next += 1;
            let body = json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": format!("probe-{}", self.next)},
            });
            let outcome = self.admin.post(&http::configmaps(PROBE_NS), &body).await;
            match (&outcome, refused) {
                (Err(e), true) if e.contains("HTTP 403") => return Ok(()),
                (Ok(()), false) => return Ok(()),
                (Err(e), _) if !e.contains("HTTP 403") => {
                    return Err(format!("probe create failed: {e}"))
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                let want = if refused { "refused" } else { "admitted" };
                return Err(format!(
                    "an unlabeled ConfigMap was not {want} within {LOAD_TIMEOUT:?}: {outcome:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Calls per chain plugin so far, from the server's `/metrics`: shows every plugin was called.
async fn call_counts(admin: &Client, chain: &[ChainPlugin]) -> Vec<String> {
    let text = match admin.get_text("/metrics").await {
        Ok(t) => t,
        Err(e) => return vec![format!("/metrics: {e}")],
    };
    let count = |metric: &str, name: &str| -> Option<u64> {
        let label = format!("plugin=\"{name}\"");
        text.lines()
            .filter(|l| l.starts_with(metric) && l.contains(&label))
            .find_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
    };
    let mut calls = Vec::new();
    let mut notes = Vec::new();
    for p in chain {
        match count("keelson_wasm_plugin_calls", p.name) {
            Some(0) | None => notes.push(format!(
                "{} was never called (per /metrics): its rules do not match?",
                p.name
            )),
            Some(n) => calls.push(format!("{} {n}", p.name)),
        }
        if let Some(e) = count("keelson_wasm_plugin_errors", p.name).filter(|e| *e > 0) {
            notes.push(format!("{}: {e} failed calls (per /metrics)", p.name));
        }
    }
    if !calls.is_empty() {
        notes.insert(
            0,
            format!(
                "plugin calls so far (server /metrics): {}",
                calls.join(", ")
            ),
        );
    }
    notes
}

/// Added microseconds per plugin at percentile `p`: (with − without) / plugins.
fn per_plugin_us(with: &Outcome, without: &Outcome, plugins: usize, p: f64) -> Option<f64> {
    let a = load::percentile(&with.latencies, p)?;
    let b = load::percentile(&without.latencies, p)?;
    Some((a.as_secs_f64() - b.as_secs_f64()) * 1e6 / plugins.max(1) as f64)
}

/// The create-latency table and the added-latency table.
fn chain_reports(m: Measured, s: Sizes) -> (Report, Report) {
    let phases = &m.phases;
    let mut latencies = Report {
        backend: "embedded".into(),
        title: format!(
            "ConfigMap create latency with Wasm plugins ({} creates per phase and path; embedded \
             store)",
            s.requests
        ),
        setup: m.setup,
        notes: m.notes,
        ..Report::default()
    };
    for (r, route) in m.paths.iter().enumerate() {
        for phase in phases {
            let Some(out) = phase.outcomes.get(r) else {
                continue;
            };
            let label = format!("{route}, {}", phase.label);
            latencies
                .metrics
                .push(latency("create_p50", format!("{label}: p50"), out, 50.0));
            latencies
                .metrics
                .push(latency("create_p99", format!("{label}: p99"), out, 99.0));
            latencies.metrics.push(Metric::new(
                "create_tput",
                format!("{label}: throughput"),
                out.throughput(),
                Unit::PerSec,
            ));
        }
    }
    if phases.is_empty() {
        latencies.notes.push("no phase ran".into());
    }

    let mut added = Report {
        backend: "embedded".into(),
        title: "added create latency per Wasm plugin: (pX with N − pX with 0) / N".into(),
        setup: "the HTTPS round trip dominates and varies; the in-process rows isolate the \
                admission chain's cost, and in-process ×1 (no queueing) its per-request latency"
            .into(),
        ..Report::default()
    };
    let target = Some(Target {
        max: ADDED_P99_TARGET_US,
    });
    let baseline = phases.first().filter(|p| p.plugins == 0);
    for (r, route) in m.paths.iter().enumerate() {
        let Some(base) = baseline.and_then(|b| b.outcomes.get(r)) else {
            continue;
        };
        for phase in phases.iter().filter(|p| p.plugins > 0) {
            let Some(out) = phase.outcomes.get(r) else {
                continue;
            };
            let n = phase.plugins;
            let label = format!("{route}, {}", phase.label);
            added.metrics.push(Metric::new(
                "added_p50",
                format!("{label}: p50 per plugin"),
                per_plugin_us(out, base, n, 50.0),
                Unit::Micros,
            ));
            added.metrics.push(
                Metric::new(
                    "added_p99",
                    format!("{label}: p99 per plugin"),
                    per_plugin_us(out, base, n, 99.0),
                    Unit::Micros,
                )
                .with_target(target),
            );
        }
        if let Some(again) = phases
            .iter()
            .skip(1)
            .find(|p| p.plugins == 0)
            .and_then(|p| p.outcomes.get(r))
        {
            for (key, p) in [("drift_p50", 50.0), ("drift_p99", 99.0)] {
                added.metrics.push(Metric::new(
                    key,
                    format!("{route}, baseline drift (0 again − 0): p{p:.0}"),
                    per_plugin_us(again, base, 1, p),
                    Unit::Micros,
                ));
            }
        }
    }
    if added.metrics.is_empty() {
        added
            .notes
            .push("no plugin phase completed next to a 0-plugin baseline".into());
    } else {
        added.notes.push(format!(
            "DESIGN target: Wasm plugin added latency p99 ≤ {ADDED_P99_TARGET_US:.0} µs (per \
             plugin); a negative number is noise"
        ));
    }
    (latencies, added)
}
