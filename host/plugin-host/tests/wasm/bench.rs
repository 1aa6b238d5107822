//! Instantiate and call costs; run with
//! `cargo test --release -p keelson-plugin-host --test wasm -- --ignored --nocapture bench`.

use serde_json::json;

use crate::support::{bench_limits, create, load_with, pod};

#[test]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
fn bench_admission_calls() {
    for name in ["require-labels", "deny-latest-tag"] {
        let plugin = load_with(name, bench_limits());
        let req = create(pod(&["nginx:1.27"]), json!({"labels": ["app"]}));
        let report = plugin.bench(&req, 5_000).unwrap();
        println!("{name}: {report}");
    }
}

#[test]
fn bench_runs() {
    let plugin = load_with("require-labels", bench_limits());
    let req = create(pod(&["nginx:1.27"]), json!({"labels": ["app"]}));
    let report = plugin.bench(&req, 20).unwrap();
    assert_eq!(report.iterations, 20);
    assert!(report.total.p50 >= report.call.p50);
}

/// Resident anonymous memory of this process in KiB (heap, stacks, wasm memories; not the
/// pages of the binary's code).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("RssAnon:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
fn bench_resident_memory() {
    let dir = tempfile::tempdir().unwrap();
    let before = rss_kib();
    let mut config = keelson_plugin_host::HostConfig::default();
    if let Some(n) = std::env::var("KEELSON_BENCH_MAX_INSTANCES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.max_instances = n;
    }
    let host =
        keelson_plugin_host::PluginHost::with_config(dir.path().join("cache"), config).unwrap();
    let after_host = rss_kib();
    let wasm = crate::support::wasm("deny-latest-tag");
    let compiled = host
        .load("a", &wasm, crate::support::bench_limits())
        .unwrap();
    let after_compile = rss_kib();
    let plugins: Vec<_> = (0..5)
        .map(|i| {
            host.load(&format!("p{i}"), &wasm, crate::support::bench_limits())
                .unwrap()
        })
        .collect();
    let after_five = rss_kib();
    let req = create(pod(&["nginx:1.27"]), json!({}));
    for p in &plugins {
        for _ in 0..50 {
            p.validate(&req).unwrap();
        }
    }
    let after_calls = rss_kib();
    std::thread::scope(|s| {
        for t in 0..16 {
            let p = plugins[t % plugins.len()].clone();
            let req = req.clone();
            s.spawn(move || {
                for _ in 0..50 {
                    // A slow debug build may miss the deadline under load; memory is the point.
                    let _ = p.validate(&req);
                }
            });
        }
    });
    let after_parallel = rss_kib();
    drop(compiled);
    println!(
        "anonymous RSS KiB: start {before}, +host {}, +compile {}, +5 cached loads {}, +250 calls {}, \
         +16 threads × 50 calls {}",
        after_host as i64 - before as i64,
        after_compile as i64 - after_host as i64,
        after_five as i64 - after_compile as i64,
        after_calls as i64 - after_five as i64,
        after_parallel as i64 - after_calls as i64,
    );
}
