//! Instantiate and call costs; run with
//! `cargo test --release -p keelson-plugin-host --test wasm -- --ignored --nocapture bench`.

use serde_json::json;

use crate::support::{create, load, pod};

#[test]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
fn bench_admission_calls() {
    for name in ["require-labels", "deny-latest-tag"] {
        let plugin = load(name);
        let req = create(pod(&["nginx:1.27"]), json!({"labels": ["app"]}));
        let report = plugin.bench(&req, 5_000).unwrap();
        println!("{name}: {report}");
    }
}

#[test]
fn bench_runs() {
    let plugin = load("require-labels");
    let req = create(pod(&["nginx:1.27"]), json!({"labels": ["app"]}));
    let report = plugin.bench(&req, 20).unwrap();
    assert_eq!(report.iterations, 20);
    assert!(report.total.p50 >= report.call.p50);
}
