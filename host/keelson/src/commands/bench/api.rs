//! `keelson bench api`: for each backend, start the server in-process and measure creates
//! (closed loop and paced), gets, lists and watch fan-out over HTTPS; print a table per backend
//! and the embedded vs etcd ratios. Every backend runs through the same [`measure`] path.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::backend::{self, Backend, StartError};
use super::http::{Client, Endpoint};
use super::load::{self, Outcome};
use super::report::{self, latency, Metric, Report, Target, Unit};
use super::watch::{self, FanOutSize};

/// DESIGN.md: API create p99 at 200 writes/s, embedded store.
const PACED_P99_TARGET_MS: f64 = 20.0;
/// DESIGN.md: cold start to serving.
const COLD_START_TARGET_MS: f64 = 1000.0;
/// Issue 16: a list of 1,000 objects, p50, embedded store.
const LIST_P50_TARGET_MS: f64 = 10.0;
/// DESIGN.md: watch fan-out, 1,000 watchers × 100 events, delivery p99.
const WATCH_P99_TARGET_MS: f64 = 100.0;
/// Upper bound on each closed-loop phase.
const PHASE_BUDGET: Duration = Duration::from_secs(300);

/// Flags of `keelson bench api`. Sizes default to the full run, or to small counts with
/// `--quick`.
#[derive(Args, Debug)]
pub(crate) struct ApiBench {
    /// Small counts, for a smoke run.
    #[arg(long)]
    quick: bool,
    /// Store backends to measure, in order (etcd is skipped when not installed).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "embedded,etcd"
    )]
    backends: Vec<Backend>,
    /// Parent of the temp data dirs (the stores write here) [default: the system temp dir].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Concurrent clients (connections) for creates and gets [default: 16].
    #[arg(long)]
    concurrency: Option<usize>,
    /// ConfigMaps created in the closed-loop create phase [default: 5000; quick 300].
    #[arg(long)]
    creates: Option<usize>,
    /// Paced create rate, writes per second [default: 200].
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds of paced creates [default: 10; quick 2].
    #[arg(long)]
    paced_secs: Option<f64>,
    /// Gets in the get phase [default: 10000; quick 500].
    #[arg(long)]
    gets: Option<usize>,
    /// ConfigMaps in the listed namespace [default: 1000; quick 100].
    #[arg(long)]
    list_objects: Option<usize>,
    /// Lists in the list phase [default: 200; quick 20].
    #[arg(long)]
    lists: Option<usize>,
    /// Concurrent clients for lists [default: 4].
    #[arg(long)]
    list_concurrency: Option<usize>,
    /// Concurrent watches in the fan-out [default: 1000; quick 100].
    #[arg(long)]
    watchers: Option<usize>,
    /// Objects created while the watches run [default: 100; quick 10].
    #[arg(long)]
    watch_events: Option<usize>,
    /// Watches per connection (HTTP/2 streams; the server allows 200) [default: 100].
    #[arg(long)]
    watches_per_connection: Option<usize>,
}

/// The resolved sizes of one run.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sizes {
    concurrency: usize,
    creates: usize,
    rate: f64,
    paced_secs: f64,
    gets: usize,
    list_objects: usize,
    lists: usize,
    list_concurrency: usize,
    fan_out: FanOutSize,
}

impl Sizes {
    /// The default sizes (full, or small with `quick`).
    pub(super) fn resolve(quick: bool) -> Self {
        ApiBench {
            quick,
            backends: vec![],
            dir: None,
            concurrency: None,
            creates: None,
            rate: None,
            paced_secs: None,
            gets: None,
            list_objects: None,
            lists: None,
            list_concurrency: None,
            watchers: None,
            watch_events: None,
            watches_per_connection: None,
        }
        .sizes()
    }
}

impl ApiBench {
    fn sizes(&self) -> Sizes {
        let q = self.quick;
        let pick = |flag: Option<usize>, full: usize, quick: usize| {
            flag.unwrap_or(if q { quick } else { full }).max(1)
        };
        Sizes {
            concurrency: pick(self.concurrency, 16, 16),
            creates: pick(self.creates, 5000, 300),
            rate: self.rate.unwrap_or(200.0).max(0.1),
            paced_secs: self
                .paced_secs
                .unwrap_or(if q { 2.0 } else { 10.0 })
                .max(0.1),
            gets: pick(self.gets, 10_000, 500),
            list_objects: pick(self.list_objects, 1000, 100),
            lists: pick(self.lists, 200, 20),
            list_concurrency: pick(self.list_concurrency, 4, 4),
            fan_out: FanOutSize {
                watchers: pick(self.watchers, 1000, 100),
                events: pick(self.watch_events, 100, 10),
                per_connection: pick(self.watches_per_connection, 100, 100),
            },
        }
    }

    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let sizes = self.sizes();
        let base = self.dir.clone().unwrap_or_else(std::env::temp_dir);
        super::report::banner("api", "the load generator and the server", &base);
        let mut backends = self.backends.clone();
        backends.dedup();
        let mut reports = Vec::new();
        // Servers cannot be stopped; keep each (and its etcd) alive until every table printed.
        let mut keep = Vec::new();
        for backend in backends {
            eprintln!("bench: starting the server on the {} store", backend.name());
            let started = match backend::start(backend, &base).await {
                Ok(s) => s,
                Err(StartError::Skip(why)) => {
                    println!("\n== backend: {} == skipped: {why}", backend.name());
                    continue;
                }
                Err(StartError::Failed(e)) => {
                    let report = Report {
                        backend: backend.name().into(),
                        notes: vec![format!("the server did not start: {e:#}")],
                        ..Report::default()
                    };
                    print!("{}", report::table(&report));
                    reports.push(report);
                    continue;
                }
            };
            let report = measure(backend, &started.endpoint, started.cold_start, sizes).await;
            print!("{}", report::table(&report));
            reports.push(report);
            keep.push(started);
        }
        let find = |name: &str| reports.iter().find(|r| r.backend == name);
        match (find("embedded"), find("etcd")) {
            (Some(ours), Some(baseline)) => print!("{}", report::comparison(ours, baseline)),
            _ => println!("\n(no embedded vs etcd comparison: both backends are needed)"),
        }
        if let (Some(ours), Some(baseline)) = (find("embedded"), find("embedded-unshared")) {
            print!("{}", report::comparison(ours, baseline));
        }
        if keep.iter().any(|s| s.has_etcd()) {
            eprintln!(
                "bench: stopping etcd (a store-watch warning from the idle server may follow)"
            );
        }
        drop(keep);
        Ok(())
    }
}

/// Name of the `i`th object of a phase.
fn name(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i}")
}

/// Measures one started backend. The same path for every backend.
pub(super) async fn measure(
    backend: Backend,
    endpoint: &Endpoint,
    cold_start: Duration,
    s: Sizes,
) -> Report {
    let mut r = Report {
        backend: backend.name().into(),
        ..Report::default()
    };
    let embedded = backend == Backend::Embedded;
    r.metrics.push(
        Metric::new(
            "cold_start",
            "cold start to serving (in-process start())".into(),
            Some(cold_start.as_secs_f64() * 1e3),
            Unit::Millis,
        )
        .with_target(Some(Target {
            max: COLD_START_TARGET_MS,
        })),
    );

    let clients = match endpoint.clients(s.concurrency) {
        Ok(c) => c,
        Err(e) => {
            r.notes.push(format!("no HTTPS client: {e:#}"));
            return r;
        }
    };
    let mut protocol = String::from("?");
    for c in &clients {
        match c.warm_up().await {
            Ok(p) => protocol = p,
            Err(e) => {
                r.notes.push(format!("the server does not answer: {e}"));
                return r;
            }
        }
    }
    r.setup = format!(
        "{protocol} over TLS to {}, bearer token, {} client connections; controllers running",
        endpoint.base(),
        clients.len()
    );
    for ns in ["bench-create", "bench-paced", "bench-list", "bench-watch"] {
        if let Err(e) = clients[0].ensure_namespace(ns).await {
            r.notes.push(format!("cannot create namespace {ns}: {e}"));
            return r;
        }
    }

    // Creates, closed loop.
    eprintln!("bench[{}]: {} creates", r.backend, s.creates);
    let creates = run_creates(&clients, "bench-create", "c", s.creates, s.concurrency).await;
    let label = format!("create ({} × {} clients)", s.creates, s.concurrency);
    r.metrics.push(Metric::new(
        "create_tput",
        format!("{label}: throughput"),
        creates.throughput(),
        Unit::PerSec,
    ));
    r.metrics.push(latency(
        "create_p50",
        format!("{label}: p50"),
        &creates,
        50.0,
    ));
    r.metrics.push(latency(
        "create_p99",
        format!("{label}: p99"),
        &creates,
        99.0,
    ));
    r.notes.extend(creates.error_note("create"));

    // Creates, paced (open loop).
    let count = (s.rate * s.paced_secs).round().max(1.0) as usize;
    eprintln!(
        "bench[{}]: paced creates, {} /s for {} s",
        r.backend, s.rate, s.paced_secs
    );
    let paced = {
        let clients = clients.clone();
        load::open_loop(s.rate, count, move |i| {
            let client = clients[i % clients.len()].clone();
            async move { client.create_configmap("bench-paced", &name("p", i)).await }
        })
        .await
    };
    let label = format!("paced create ({:.0}/s for {:.0} s)", s.rate, s.paced_secs);
    r.metrics.push(Metric::new(
        "paced_rate",
        format!("{label}: achieved rate"),
        paced.throughput(),
        Unit::PerSec,
    ));
    r.metrics
        .push(latency("paced_p50", format!("{label}: p50"), &paced, 50.0));
    // The DESIGN target is for the embedded store at 200 writes/s.
    let paced_target = (embedded && (s.rate - 200.0).abs() < f64::EPSILON).then_some(Target {
        max: PACED_P99_TARGET_MS,
    });
    r.metrics.push(
        latency("paced_p99", format!("{label}: p99"), &paced, 99.0).with_target(paced_target),
    );
    r.notes.extend(paced.error_note("paced create"));

    // Gets of the objects created above.
    eprintln!("bench[{}]: {} gets", r.backend, s.gets);
    let created = s.creates;
    let gets = {
        let clients = clients.clone();
        load::closed_loop(s.gets, s.concurrency, PHASE_BUDGET, move |w, i| {
            let client = clients[w].clone();
            // Spread reads over the created objects.
            let target = name("c", (i.wrapping_mul(7919)) % created);
            async move { client.get_configmap("bench-create", &target).await }
        })
        .await
    };
    let label = format!("get ({} × {} clients)", s.gets, s.concurrency);
    r.metrics.push(Metric::new(
        "get_tput",
        format!("{label}: throughput"),
        gets.throughput(),
        Unit::PerSec,
    ));
    r.metrics
        .push(latency("get_p50", format!("{label}: p50"), &gets, 50.0));
    r.metrics
        .push(latency("get_p99", format!("{label}: p99"), &gets, 99.0));
    r.notes.extend(gets.error_note("get"));

    // Lists of a namespace with list_objects ConfigMaps.
    eprintln!(
        "bench[{}]: filling a namespace with {} objects, then {} lists",
        r.backend, s.list_objects, s.lists
    );
    let fill = run_creates(&clients, "bench-list", "l", s.list_objects, s.concurrency).await;
    r.notes.extend(fill.error_note("list fill"));
    let label = format!(
        "list {} objects ({} × {} clients)",
        s.list_objects, s.lists, s.list_concurrency
    );
    let lists = match clients[0].count_configmaps("bench-list").await {
        Ok((n, _)) if n == s.list_objects => {
            let clients = clients.clone();
            load::closed_loop(s.lists, s.list_concurrency, PHASE_BUDGET, move |w, _| {
                let client = clients[w % clients.len()].clone();
                async move { client.list_configmaps("bench-list").await }
            })
            .await
        }
        Ok((n, _)) => {
            r.notes.push(format!(
                "list: the namespace holds {n} objects, not {}; skipped",
                s.list_objects
            ));
            Outcome::default()
        }
        Err(e) => {
            r.notes.push(format!("list: {e}"));
            Outcome::default()
        }
    };
    r.metrics.push(Metric::new(
        "list_tput",
        format!("{label}: throughput"),
        lists.throughput(),
        Unit::PerSec,
    ));
    r.metrics.push(
        latency("list_p50", format!("{label}: p50"), &lists, 50.0).with_target(embedded.then_some(
            Target {
                max: LIST_P50_TARGET_MS,
            },
        )),
    );
    r.metrics
        .push(latency("list_p99", format!("{label}: p99"), &lists, 99.0));
    r.notes.extend(lists.error_note("list"));

    // Watch fan-out.
    let f = s.fan_out;
    eprintln!(
        "bench[{}]: watch fan-out, {} watchers × {} events",
        r.backend, f.watchers, f.events
    );
    let label = format!(
        "watch fan-out ({} watchers × {} creates)",
        f.watchers, f.events
    );
    let fan = watch::fan_out(endpoint, &clients, "bench-watch", f).await;
    let (p50, p99, total) = match fan {
        Ok(fan) => {
            r.notes.extend(fan.notes);
            r.notes.extend(fan.creates.error_note("fan-out create"));
            (
                fan.delivery.percentile_ms(50.0),
                fan.delivery.percentile_ms(99.0),
                fan.total.map(|t| t.as_secs_f64() * 1e3),
            )
        }
        Err(e) => {
            r.notes.push(format!("fan-out: {e}"));
            (None, None, None)
        }
    };
    r.metrics.push(Metric::new(
        "watch_p50",
        format!("{label}: delivery p50"),
        p50,
        Unit::Millis,
    ));
    r.metrics.push(
        Metric::new(
            "watch_p99",
            format!("{label}: delivery p99"),
            p99,
            Unit::Millis,
        )
        .with_target(embedded.then_some(Target {
            max: WATCH_P99_TARGET_MS,
        })),
    );
    r.metrics.push(Metric::new(
        "watch_total",
        format!("{label}: all delivered"),
        total,
        Unit::Millis,
    ));
    r
}

/// Creates `count` ConfigMaps named `<prefix>-<i>` in `ns`, one client per worker.
async fn run_creates(
    clients: &[Client],
    ns: &'static str,
    prefix: &'static str,
    count: usize,
    concurrency: usize,
) -> Outcome {
    let clients = clients.to_vec();
    load::closed_loop(count, concurrency, PHASE_BUDGET, move |w, i| {
        let client = clients[w % clients.len()].clone();
        async move { client.create_configmap(ns, &name(prefix, i)).await }
    })
    .await
}
