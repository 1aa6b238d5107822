//! `keelson status` (from the API: store, last snapshot, leaders, nodes, Wasm plugins),
//! scheduled snapshots with retention, and shell completions.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{eventually, keelson, ok, Component, Server};
use crate::snapshot::{save, wait_ready};

#[test]
fn status_reports_store_snapshot_leaders_and_nodes() {
    let server = Server::start();
    wait_ready(&server);
    let kubeconfig = server.kubeconfig().to_str().unwrap().to_string();
    let status = |format: &str| {
        ok(keelson(&[
            "status",
            "--kubeconfig",
            &kubeconfig,
            "-o",
            format,
        ]))
    };
    let s: Value = serde_json::from_str(&status("json")).unwrap();
    assert_eq!(s["store"]["backend"], "embedded", "{s}");
    assert!(s["store"]["sizeBytes"].as_u64().unwrap() > 0, "{s}");
    assert!(s["lastSnapshot"].is_null(), "{s}");
    assert_eq!(s["nodes"]["total"], 0);
    assert_eq!(s["wasmPlugins"]["loaded"], 0);

    let snap = save(&server, "for-status");
    let _nodes = Component::sim_nodes(&server, &["2"]);
    let _scheduler = Component::scheduler(&server, &[]);
    let mut last = Value::Null;
    let settled = eventually(Duration::from_secs(30), || {
        last = serde_json::from_str(&status("json")).unwrap();
        last["nodes"]["ready"] == 2 && last["leaders"]["scheduler"]["holder"].is_string()
    });
    assert!(settled, "two ready nodes and a scheduler leader: {last}");
    assert_eq!(last["nodes"]["total"], 2);
    assert_eq!(last["lastSnapshot"]["name"], "for-status");
    assert_eq!(last["lastSnapshot"]["revision"], snap["revision"]);
    let text = status("text");
    assert!(
        text.contains("2/2 ready") && text.contains("for-status"),
        "{text}"
    );
}

#[test]
fn scheduled_snapshots_keep_the_newest_k() {
    let server = Server::start_with_args(&[
        "--snapshot-schedule",
        "* * * * * *",
        "--snapshot-retention",
        "2",
    ]);
    wait_ready(&server);
    let dir = server.dir.path().to_str().unwrap().to_string();
    let scheduled = || -> Vec<Value> {
        let list: Vec<Value> = serde_json::from_str(&ok(keelson(&[
            "snapshot",
            "list",
            "--data-dir",
            &dir,
            "-o",
            "json",
        ])))
        .unwrap();
        list.into_iter()
            .filter(|s| s["name"].as_str().unwrap().starts_with("scheduled-"))
            .collect()
    };
    // Several have been taken once the names differ from the first two seen.
    let first: Vec<Value> = {
        assert!(eventually(Duration::from_secs(10), || scheduled().len() == 2));
        scheduled()
    };
    assert!(eventually(Duration::from_secs(10), || {
        let now = scheduled();
        now.len() == 2 && now.iter().all(|s| !first.contains(s))
    }));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(scheduled().len(), 2, "retention keeps two");
    // A manual snapshot is not pruned by the schedule.
    save(&server, "manual");
    std::thread::sleep(Duration::from_millis(2500));
    let all = ok(keelson(&["snapshot", "list", "--data-dir", &dir]));
    assert!(all.contains("manual"), "{all}");
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(keelson(&["completion", shell]));
        assert!(
            script.contains("snapshot") && script.contains("certificate"),
            "{shell}: {}",
            &script[..200.min(script.len())]
        );
    }
}
