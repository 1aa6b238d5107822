//! The Wasm stage against real components from `plugins/`: the `prefer-nodes` example filters
//! and steers, and hostile plugins (loop, trap, memory bomb, garbage) fail only the pod at
//! hand, within their deadline, counted, while the next pod is scheduled.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use keelson_plugin_host::{Limits, PluginHost};
use rand::SeedableRng;

use super::*;
use crate::plugins::default_profile;
use crate::testing::{container, node, pod, snapshot};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds `plugins/` once (unless `KEELSON_PLUGINS_PREBUILT`) and reads component `name`.
fn wasm(name: &str) -> Vec<u8> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let target = root().join("target");
        if std::env::var_os("KEELSON_PLUGINS_PREBUILT").is_none() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .current_dir(root().join("plugins"))
                .args(["build", "--release", "--target-dir"])
                .arg(&target)
                .status()
                .expect("run cargo in plugins/");
            assert!(status.success(), "building plugins/ failed");
        }
        target.join("wasm32-wasip2/release")
    });
    let path = dir.join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn host() -> &'static PluginHost {
    static HOST: OnceLock<PluginHost> = OnceLock::new();
    HOST.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("keelson-sched-wasm-{}", std::process::id()));
        PluginHost::new(dir).expect("plugin host")
    })
}

fn plugin(component: &str, config: &str, weight: i64, ignore: bool) -> Arc<WasmScheduler> {
    let limits = Limits {
        timeout: Duration::from_millis(200),
        memory_bytes: 32 << 20,
        fuel: None,
    };
    let p = host()
        .load_scheduler(component, &wasm(component), limits)
        .expect("load");
    Arc::new(WasmScheduler::new(p, weight, vec![], config.into(), ignore))
}

/// Three nodes: `a` labelled no-wasm, `b` with little free memory, `c` labelled `disk=ssd`
/// with less free memory than `b`.
fn cluster() -> crate::node_info::Snapshot {
    snapshot(
        vec![
            node("a", "4", "64Gi")
                .label("keelson.dev/no-wasm", "true")
                .build(),
            node("b", "4", "16Gi").build(),
            node("c", "4", "8Gi").label("disk", "ssd").build(),
        ],
        vec![],
    )
}

/// Runs the default profile then the Wasm stage, as the scheduling loop does.
async fn schedule(
    plugins: &[Arc<WasmScheduler>],
    snap: &crate::node_info::Snapshot,
) -> Result<ScheduleResult, ScheduleError> {
    let info = pod("p").container(container("c", "100m", "128Mi")).info();
    schedule_pod(plugins, snap, info).await
}

/// [`schedule`] for a given pod.
async fn schedule_pod(
    plugins: &[Arc<WasmScheduler>],
    snap: &crate::node_info::Snapshot,
    info: Arc<crate::node_info::PodInfo>,
) -> Result<ScheduleResult, ScheduleError> {
    let profile = default_profile("default-scheduler", 0);
    let candidates = profile.candidates(&info, snap, &mut 0)?;
    let inputs = candidates
        .nodes
        .iter()
        .map(|n| node_input(snap.get(n).unwrap()))
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    decide(plugins, &info, candidates, inputs, &mut rng).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_filters_and_steers() {
    let snap = cluster();
    // Score by free memory only: `a` is filtered out although it has the most; `b` wins.
    let by_memory = plugin("prefer-nodes", "{}", 100, false);
    for _ in 0..5 {
        let placed = schedule(std::slice::from_ref(&by_memory), &snap)
            .await
            .unwrap();
        assert_eq!(placed.node, "b");
        assert_eq!(placed.feasible, 2);
    }
    // Prefer disk=ssd: `c` wins.
    let by_label = plugin(
        "prefer-nodes",
        r#"{"preferLabel":{"key":"disk","value":"ssd"}}"#,
        100,
        false,
    );
    let placed = schedule(std::slice::from_ref(&by_label), &snap)
        .await
        .unwrap();
    assert_eq!(placed.node, "c");
    assert_eq!(by_label.errors(), 0);
    assert_eq!(
        by_label.plugin.metrics().calls,
        2,
        "one filter and one score call"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_filter_example_keeps_tenants_on_their_nodes() {
    let snap = snapshot(
        vec![
            node("blue-1", "4", "8Gi")
                .label("keelson.dev/tenant", "blue")
                .build(),
            node("red-1", "4", "64Gi")
                .label("keelson.dev/tenant", "red")
                .build(),
            node("shared", "4", "16Gi").build(),
        ],
        vec![],
    );
    let tenants = plugin("tenant-nodes", "{}", 1, false);
    let of = |tenant: Option<&str>| {
        let p = pod("p").container(container("c", "100m", "128Mi"));
        match tenant {
            Some(t) => p.label("tenant", t).info(),
            None => p.info(),
        }
    };
    for _ in 0..3 {
        let blue = schedule_pod(std::slice::from_ref(&tenants), &snap, of(Some("blue")));
        assert_eq!(blue.await.unwrap().node, "blue-1");
        let untenanted = schedule_pod(std::slice::from_ref(&tenants), &snap, of(None));
        assert_eq!(untenanted.await.unwrap().node, "shared");
    }
    let green = schedule_pod(std::slice::from_ref(&tenants), &snap, of(Some("green")))
        .await
        .unwrap_err();
    assert_eq!(
        green.to_string(),
        "0/3 nodes are available: 3 node(s) not dedicated to tenant \"green\"."
    );
    // Other label keys from the config.
    let by_team = plugin(
        "tenant-nodes",
        r#"{"podLabel":"team","nodeLabel":"keelson.dev/tenant"}"#,
        1,
        false,
    );
    let p = pod("p").container(container("c", "100m", "128Mi"));
    let red = schedule_pod(&[by_team], &snap, p.label("team", "red").info()).await;
    assert_eq!(red.unwrap().node, "red-1");
    assert_eq!(tenants.errors(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_reason_reaches_the_fit_error() {
    let snap = snapshot(
        vec![node("a", "4", "8Gi")
            .label("keelson.dev/no-wasm", "")
            .build()],
        vec![],
    );
    let p = plugin("prefer-nodes", "{}", 1, false);
    let err = schedule(&[p], &snap).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "0/1 nodes are available: 1 node(s) had label keelson.dev/no-wasm."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_plugins_fail_the_pod_not_the_scheduler() {
    let snap = cluster();
    let good = plugin("prefer-nodes", "{}", 1, false);
    for (mode, kind) in [
        ("loop", "deadline"),
        ("trap", "trapped"),
        ("memory", "memory limit"),
        ("garbage", "bad output"),
    ] {
        let hostile = plugin(
            "scheduler-hostile",
            &format!(r#"{{"mode":"{mode}"}}"#),
            1,
            false,
        );
        let start = Instant::now();
        let err = schedule(std::slice::from_ref(&hostile), &snap)
            .await
            .unwrap_err();
        let elapsed = start.elapsed();
        let message = err.to_string();
        assert!(
            matches!(&err, ScheduleError::Plugin { stage: "Filter", plugin, .. } if plugin == "scheduler-hostile"),
            "{mode}: {err:?}"
        );
        assert!(message.contains(kind), "{mode}: {message}");
        assert!(elapsed < Duration::from_secs(2), "{mode} took {elapsed:?}");
        assert_eq!(hostile.errors(), 1, "{mode}");
        assert_eq!(hostile.plugin.metrics().errors, 1, "{mode}");
        // The scheduler keeps going: the next pod, with a sound plugin, is placed.
        assert_eq!(
            schedule(std::slice::from_ref(&good), &snap)
                .await
                .unwrap()
                .node,
            "b"
        );
        // With failurePolicy Ignore the hostile plugin is skipped and the pod placed.
        let ignored = plugin(
            "scheduler-hostile",
            &format!(r#"{{"mode":"{mode}"}}"#),
            1,
            true,
        );
        let placed = schedule(&[ignored.clone(), good.clone()], &snap)
            .await
            .unwrap();
        assert_eq!(placed.node, "b", "{mode}");
        assert_eq!(ignored.errors(), 2, "{mode}: filter and score both failed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_picks_plugins_by_profile() {
    let plugins = WasmPlugins::default();
    let p = plugin("prefer-nodes", "{}", 1, false);
    let only_b = Arc::new(WasmScheduler::new(
        p.plugin.clone(),
        1,
        vec!["b".into()],
        String::new(),
        false,
    ));
    plugins.insert("all", p);
    plugins.insert("only-b", only_b);
    assert_eq!(plugins.for_profile("a").len(), 1);
    assert_eq!(plugins.for_profile("b").len(), 2);
    assert!(plugins.remove("all"));
    assert!(!plugins.remove("all"));
    assert_eq!(plugins.names(), vec!["only-b".to_string()]);
}
