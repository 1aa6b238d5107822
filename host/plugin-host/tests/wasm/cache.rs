//! The precompiled cache: a second load of the same bytes, even by a new
//! host, deserializes instead of compiling.

use std::time::Instant;

use keelson_plugin_host::PluginHost;
use serde_json::json;

use crate::support::{create, pod, test_limits, wasm};

#[test]
fn second_load_hits_the_disk_cache() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = wasm("default-resources");

    let first_host = PluginHost::new(dir.path()).unwrap();
    let start = Instant::now();
    let first = first_host.load("defaults", &bytes, test_limits()).unwrap();
    let compile = start.elapsed();
    assert!(!first.from_cache());

    let second_host = PluginHost::new(dir.path()).unwrap();
    let start = Instant::now();
    let second = second_host.load("defaults", &bytes, test_limits()).unwrap();
    let cached = start.elapsed();
    assert!(second.from_cache());
    assert_eq!(first.digest(), second.digest());
    assert_eq!(first.digest().len(), 64);
    assert!(
        cached < compile,
        "cached load {cached:?} vs compile {compile:?}"
    );
    eprintln!("compile {compile:?}, cached load {cached:?}");

    // One engine directory holding one entry named after the digest.
    let engines: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(engines.len(), 1);
    let entry = engines[0]
        .as_ref()
        .unwrap()
        .path()
        .join(format!("{}.cwasm", first.digest()));
    assert!(entry.exists());

    // A corrupt entry is dropped and rebuilt. (Entries are mapped into memory:
    // replace them, never rewrite them in place, or mapped code faults.)
    std::fs::remove_file(&entry).unwrap();
    std::fs::write(&entry, b"garbage").unwrap();
    let third = PluginHost::new(dir.path())
        .unwrap()
        .load("defaults", &bytes, test_limits())
        .unwrap();
    assert!(!third.from_cache());
    let req = create(pod(&["nginx:1.27"]), json!({"requests": {"cpu": "1m"}}));
    assert!(third.mutate(&req).unwrap().patch.is_some());
}
