//! Hostile components: each fails with the right error within its budget, and
//! the host keeps serving the next call.

use std::time::{Duration, Instant};

use keelson_plugin_host::{Error, HostConfig, Limits, PluginHost};
use serde_json::json;

use crate::support::{assert_host_healthy, create, host, load, pod, test_limits, wasm};

fn request() -> keelson_plugin_host::AdmissionRequest {
    create(pod(&["nginx:1.27"]), json!({}))
}

#[test]
fn infinite_loop_hits_its_deadline() {
    let plugin = load("infinite-loop");
    for mutate in [false, true] {
        let start = Instant::now();
        let err = if mutate {
            plugin.mutate(&request()).unwrap_err()
        } else {
            plugin.validate(&request()).unwrap_err()
        };
        let elapsed = start.elapsed();
        assert!(
            matches!(err, Error::Deadline(d) if d == Duration::from_millis(200)),
            "{err:?}"
        );
        assert!(
            elapsed >= Duration::from_millis(190),
            "stopped early: {elapsed:?}"
        );
        assert!(
            elapsed < Duration::from_millis(1000),
            "stopped late: {elapsed:?}"
        );
        assert_host_healthy();
    }
    let m = plugin.metrics();
    assert_eq!((m.calls, m.errors, m.timeouts), (2, 2, 2));
}

#[test]
fn good_plugins_answer_while_one_loops() {
    let looping = load("infinite-loop");
    let spinner = std::thread::spawn(move || {
        let _ = looping.validate(&request());
    });
    std::thread::sleep(Duration::from_millis(20));
    let start = Instant::now();
    for _ in 0..20 {
        assert_host_healthy();
    }
    assert!(start.elapsed() < Duration::from_millis(1000));
    spinner.join().unwrap();
}

#[test]
fn a_looping_plugin_yields_to_its_executor() {
    // One thread runs everything: the loop must yield every epoch tick so the
    // good call and a timer still finish long before the loop's deadline.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let looping = load("infinite-loop");
    let good = load("require-labels");
    rt.block_on(async {
        let start = Instant::now();
        let spinning = tokio::spawn({
            let looping = looping.clone();
            async move { looping.validate_async(&request()).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let req = create(pod(&["nginx:1.27"]), json!({"labels": ["app"]}));
        for _ in 0..5 {
            let t = Instant::now();
            assert!(good.validate_async(&req).await.unwrap().allowed);
            assert!(
                t.elapsed() < Duration::from_millis(100),
                "{:?}",
                t.elapsed()
            );
        }
        assert!(
            start.elapsed() < Duration::from_millis(150),
            "{:?}",
            start.elapsed()
        );
        let err = spinning.await.unwrap().unwrap_err();
        assert!(matches!(err, Error::Deadline(_)), "{err:?}");
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(190),
            "stopped early: {elapsed:?}"
        );
        assert!(
            elapsed < Duration::from_millis(1000),
            "stopped late: {elapsed:?}"
        );
    });
}

fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn memory_bomb_hits_the_memory_cap() {
    let plugin = load("memory-bomb");
    let before = rss_bytes();
    let start = Instant::now();
    let err = plugin.validate(&request()).unwrap_err();
    assert!(
        matches!(err, Error::MemoryLimit(cap) if cap == 64 << 20),
        "{err:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(2));
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 512 << 20, "host RSS grew by {grown} bytes");
    let err = plugin.mutate(&request()).unwrap_err();
    assert!(matches!(err, Error::MemoryLimit(_)), "{err:?}");
    assert_eq!(plugin.metrics().memory_limits, 2);
    assert_host_healthy();
}

#[test]
fn traps_are_reported_with_guest_output() {
    let plugin = load("trap");
    let err = plugin.validate(&request()).unwrap_err();
    let Error::Trap(message) = &err else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("trap fixture panicked on Pod"),
        "{message}"
    );
    assert_host_healthy();
    let err = plugin.mutate(&request()).unwrap_err();
    assert!(
        matches!(err, Error::Trap(ref m) if m.contains("unreachable")),
        "{err:?}"
    );
    assert_host_healthy();
    // The plugin itself keeps working too: each call is a fresh instance.
    assert!(matches!(plugin.validate(&request()), Err(Error::Trap(_))));
}

#[test]
fn garbage_output_is_refused() {
    let plugin = load("garbage-output");
    let err = plugin.mutate(&request()).unwrap_err();
    assert!(
        matches!(err, Error::BadOutput(ref m) if m.contains("not a JSON Patch")),
        "{err:?}"
    );
    let err = plugin.validate(&request()).unwrap_err();
    assert!(
        matches!(err, Error::BadOutput(ref m) if m.contains("status code 200")),
        "{err:?}"
    );
    assert_eq!(plugin.metrics().bad_outputs, 2);
    assert_host_healthy();
}

#[test]
fn huge_output_is_refused() {
    let plugin = load("huge-output");
    let err = plugin.validate(&request()).unwrap_err();
    assert!(
        matches!(err, Error::BadOutput(ref m) if m.contains("message is 8388608 bytes")),
        "{err:?}"
    );
    let err = plugin.mutate(&request()).unwrap_err();
    assert!(
        matches!(err, Error::BadOutput(ref m) if m.contains("patch is")),
        "{err:?}"
    );
    assert_host_healthy();
}

#[test]
fn huge_output_beyond_the_memory_cap_is_a_memory_limit() {
    let limits = Limits {
        memory_bytes: 8 << 20,
        ..test_limits()
    };
    let plugin = host()
        .load("huge-output", &wasm("huge-output"), limits)
        .unwrap();
    let err = plugin.validate(&request()).unwrap_err();
    assert!(matches!(err, Error::MemoryLimit(_)), "{err:?}");
    assert_host_healthy();
}

#[test]
fn bad_components_do_not_load() {
    let err = host()
        .load("junk", b"not wasm at all", test_limits())
        .unwrap_err();
    assert!(matches!(err, Error::Compile(_)), "{err:?}");
    // A core module (not a component) is refused too.
    let core_module = b"\0asm\x01\0\0\0";
    let err = host().load("core", core_module, test_limits()).unwrap_err();
    assert!(matches!(err, Error::Compile(_)), "{err:?}");
    assert_host_healthy();
}

#[test]
fn limits_the_host_cannot_enforce_are_refused() {
    let too_big = Limits {
        memory_bytes: 1 << 30,
        ..test_limits()
    };
    let err = host().load("big", &wasm("trap"), too_big).unwrap_err();
    assert!(matches!(err, Error::Limits(_)), "{err:?}");
    let fuel = Limits {
        fuel: Some(1_000),
        ..test_limits()
    };
    let err = host().load("fuel", &wasm("trap"), fuel).unwrap_err();
    assert!(matches!(err, Error::Limits(_)), "{err:?}");
}

#[test]
fn fuel_stops_a_loop_before_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let config = HostConfig {
        fuel: true,
        max_instances: 4,
        ..HostConfig::default()
    };
    let host = PluginHost::with_config(dir.path(), config).unwrap();
    let limits = Limits {
        fuel: Some(10_000_000),
        timeout: Duration::from_secs(5),
        ..test_limits()
    };
    let plugin = host.load("loop", &wasm("infinite-loop"), limits).unwrap();
    let start = Instant::now();
    let err = plugin.validate(&request()).unwrap_err();
    assert!(matches!(err, Error::Deadline(_)), "{err:?}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    // Unlimited fuel on the same host still works for good plugins.
    let good = host
        .load("good", &wasm("require-labels"), test_limits())
        .unwrap();
    assert!(good.validate(&request()).unwrap().allowed);
}
