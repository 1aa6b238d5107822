//! `keelson bench store`: the store layer alone, like `etcdctl check perf`. A thousand
//! concurrent writers create keys through [`keelson_store::Store`] (the backend plus its watch
//! cache, as the API server uses it) on the embedded store and on a real etcd in the same run;
//! every write is acknowledged only once durable (fsync), so writes/s are durable writes/s.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use keelson_store::local_etcd::LocalEtcd;
use keelson_store::Store;

use super::backend::Backend;
use super::load::{self, Outcome};
use super::report::{self, latency, Metric, Report, Target, Unit};

/// DESIGN.md: store layer, 1,000 concurrent writers, embedded: ≥ 10,000 durable writes/s.
const WRITES_TARGET: f64 = 10_000.0;
/// DESIGN.md: … with p99 ≤ 50 ms.
const P99_TARGET_MS: f64 = 50.0;

/// Flags of `keelson bench store`.
#[derive(Args, Debug)]
pub(crate) struct StoreBench {
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
    /// Concurrent writers [default: 1000].
    #[arg(long)]
    writers: Option<usize>,
    /// Keys created per backend [default: 100000; quick 5000].
    #[arg(long)]
    writes: Option<usize>,
    /// Bytes per value [default: 1024].
    #[arg(long, default_value_t = 1024)]
    value_bytes: usize,
}

impl StoreBench {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let base = self.dir.clone().unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
        report::banner("store", "this machine", &base);
        let writers = self.writers.unwrap_or(1000).max(1);
        let writes = self
            .writes
            .unwrap_or(if self.quick { 5_000 } else { 100_000 });
        println!(
            "   {writes} creates of {} B values by {writers} concurrent writers per backend",
            self.value_bytes
        );
        let mut reports = Vec::new();
        for &backend in &self.backends {
            let mut r = Report {
                backend: backend.name().to_string(),
                setup: format!("Store::create, {writers} writers, durable acknowledgement (fsync)"),
                ..Report::default()
            };
            match measure(backend, &base, writers, writes, self.value_bytes).await {
                Ok(Some(out)) => fill(&mut r, backend, &out, writers),
                Ok(None) => {
                    r.notes
                        .push("skipped: etcd is not installed (no `etcd` on PATH)".into());
                }
                Err(e) => r.notes.push(format!("failed: {e:#}")),
            }
            print!("{}", report::table(&r));
            reports.push(r);
        }
        if let [ours, baseline, ..] = reports.as_slice() {
            print!("{}", report::comparison(ours, baseline));
        }
        Ok(())
    }
}

fn fill(r: &mut Report, backend: Backend, out: &Outcome, writers: usize) {
    let embedded = backend == Backend::Embedded;
    r.metrics.push(Metric::new(
        "writes",
        format!("durable writes/s ({writers} writers)"),
        out.throughput(),
        Unit::PerSec,
    ));
    r.metrics
        .push(latency("p50", "write p50".into(), out, 50.0));
    r.metrics.push(
        latency("p99", "write p99".into(), out, 99.0)
            .with_target(embedded.then_some(Target { max: P99_TARGET_MS })),
    );
    r.metrics
        .push(latency("max", "write max".into(), out, 100.0));
    if embedded {
        let got = out.throughput().unwrap_or(0.0);
        let verdict = if got >= WRITES_TARGET {
            "met"
        } else {
            "MISSED"
        };
        r.notes.push(format!(
            "target ≥{WRITES_TARGET:.0} durable writes/s: {verdict}"
        ));
    }
    if let Some(n) = out.error_note("writes") {
        r.notes.push(n);
    }
}

/// Opens `backend` in a fresh temp dir under `base` and runs the writers; `None` when etcd is
/// not installed.
async fn measure(
    backend: Backend,
    base: &std::path::Path,
    writers: usize,
    writes: usize,
    value_bytes: usize,
) -> anyhow::Result<Option<Outcome>> {
    let data = tempfile::Builder::new()
        .prefix("keelson-bench-store-")
        .tempdir_in(base)
        .context("creating the data dir")?;
    let mut _etcd = None;
    let store = match backend {
        Backend::Embedded | Backend::EmbeddedUnshared => Store::open_embedded(data.path())
            .await
            .context("opening the embedded store")?,
        Backend::Etcd => {
            let etcd = match tokio::task::spawn_blocking(LocalEtcd::start).await? {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(anyhow::Error::new(e).context("starting etcd")),
            };
            let store = Store::connect_etcd(&[format!("http://{}", etcd.endpoint)])
                .await
                .context("connecting to etcd")?;
            _etcd = Some(etcd);
            store
        }
    };
    let store = Arc::new(store);
    // Warm up: connections, the writer thread, the first pages of the files.
    for i in 0..100 {
        store
            .create(
                &format!("/registry/bench/warm/{i}"),
                vec![b'w'; value_bytes],
            )
            .await?;
    }
    let value: Arc<[u8]> = vec![b'x'; value_bytes].into();
    let out = load::closed_loop(writes, writers, Duration::from_secs(300), move |_, i| {
        let (store, value) = (store.clone(), value.clone());
        async move {
            store
                .create(&format!("/registry/bench/keys/k{i:08}"), value.to_vec())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    })
    .await;
    Ok(Some(out))
}
