//! Moving to etcd and the snapshot numbers: 10,000 objects of mixed kinds on the embedded
//! store are snapshotted and restored (timed), copied into a real etcd with `keelson store
//! migrate` (a second copy without `--force` is refused), served by a server on etcd with the
//! same uids (kubectl 1.33 lists them and its core workflow works), and snapshotted and
//! restored there too. The timings and sizes are printed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{etcd, fails, keelson, ok, Server, KUBECTL_133};
use crate::snapshot::{client, save, wait_ready};

const NAMESPACES: usize = 10;
/// (collection path under a namespace, how many, body maker)
const KINDS: [(&str, &str, usize); 4] = [
    ("/api/v1", "configmaps", 4000),
    ("/api/v1", "secrets", 3000),
    ("/api/v1", "serviceaccounts", 1990),
    ("/apis/coordination.k8s.io/v1", "leases", 1000),
];

fn body(resource: &str, name: &str) -> Value {
    let pad = "x".repeat(256);
    match resource {
        "configmaps" => json!({"metadata": {"name": name}, "data": {"pad": pad}}),
        "secrets" => json!({"metadata": {"name": name}, "stringData": {"pad": pad}}),
        "leases" => json!({"metadata": {"name": name}, "spec": {"holderIdentity": name}}),
        _ => json!({"metadata": {"name": name}}),
    }
}

/// Creates 10 namespaces and 9,990 namespaced objects (10,000 in all) with 8 threads.
fn populate(server: &Server) {
    let (http, token) = (client(server), server.token());
    let base = format!("https://127.0.0.1:{}", server.port);
    for n in 0..NAMESPACES {
        let r = http
            .post(format!("{base}/api/v1/namespaces"))
            .bearer_auth(&token)
            .json(&json!({"metadata": {"name": format!("mig-{n}")}}))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }
    let mut jobs = Vec::new();
    for (prefix, resource, count) in KINDS {
        for i in 0..count {
            jobs.push((prefix, resource, i));
        }
    }
    let jobs = std::sync::Arc::new(std::sync::Mutex::new(jobs));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (http, token, base, jobs) =
                (http.clone(), token.clone(), base.clone(), jobs.clone());
            std::thread::spawn(move || loop {
                let Some((prefix, resource, i)) = jobs.lock().unwrap().pop() else {
                    return;
                };
                let name = format!("obj-{i}");
                let ns = format!("mig-{}", i % NAMESPACES);
                let r = http
                    .post(format!("{base}{prefix}/namespaces/{ns}/{resource}"))
                    .bearer_auth(&token)
                    .json(&body(resource, &name))
                    .send()
                    .unwrap();
                assert_eq!(r.status().as_u16(), 201, "{resource}/{name}");
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// namespace/name → uid of every object of the test's kinds.
fn uids(server: &Server) -> BTreeMap<String, String> {
    let (http, token) = (client(server), server.token());
    let mut out = BTreeMap::new();
    for (prefix, resource, _) in KINDS {
        let list: Value = http
            .get(format!(
                "https://127.0.0.1:{}{prefix}/{resource}",
                server.port
            ))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        for i in list["items"].as_array().unwrap() {
            let ns = i["metadata"]["namespace"].as_str().unwrap();
            if ns.starts_with("mig-") && i["metadata"]["name"].as_str().unwrap().starts_with("obj-")
            {
                out.insert(
                    format!(
                        "{resource}/{ns}/{}",
                        i["metadata"]["name"].as_str().unwrap()
                    ),
                    i["metadata"]["uid"].as_str().unwrap().to_string(),
                );
            }
        }
    }
    out
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let t = f();
    (t, started.elapsed())
}

#[test]
#[ignore = "needs etcd"]
fn migrate_10k_objects_to_etcd_and_snapshot_numbers() {
    let mut server = Server::start();
    wait_ready(&server);
    let (_, took) = timed(|| populate(&server));
    eprintln!("populated 10,000 objects in {took:?}");
    let expected = uids(&server);
    assert_eq!(expected.len(), 9990);

    // Embedded: snapshot and restore, timed.
    let (snap, snap_took) = timed(|| save(&server, "ten-k"));
    let restored = tempfile::tempdir().unwrap();
    let (_, restore_took) = timed(|| {
        ok(keelson(&[
            "snapshot",
            "restore",
            snap["path"].as_str().unwrap(),
            "--data-dir",
            restored.path().to_str().unwrap(),
        ]))
    });
    let embedded_numbers = (snap["size"].as_u64().unwrap(), snap_took, restore_took);
    let check = Server::start_in_dir(restored, "embedded");
    wait_ready(&check);
    assert_eq!(uids(&check), expected, "restored embedded store");
    drop(check);

    // Move to etcd.
    let (ok_exit, _) = server.terminate(Duration::from_secs(30));
    assert!(ok_exit, "server stopped cleanly");
    let etcd = etcd();
    let from = server.dir.path().to_str().unwrap().to_string();
    let (report, migrate_took) = timed(|| {
        ok(keelson(&[
            "store",
            "migrate",
            "--from",
            &from,
            "--to",
            &etcd.store_url(),
            "-o",
            "json",
        ]))
    });
    let report: Value = serde_json::from_str(&report).unwrap();
    assert!(report["total"].as_u64().unwrap() >= 10_000, "{report}");
    assert!(report["byResource"]["configmaps"].as_u64().unwrap() >= 4000);
    assert_eq!(report["byResource"]["leases.coordination.k8s.io"], 1000);
    assert_eq!(report["byResource"]["secrets"], 3000);
    let err = fails(keelson(&[
        "store",
        "migrate",
        "--from",
        &from,
        "--to",
        &etcd.store_url(),
    ]));
    assert!(err.contains("refusing") && err.contains("--force"), "{err}");

    let on_etcd = Server::start_with_store(&etcd.store_url());
    wait_ready(&on_etcd);
    assert_eq!(
        uids(&on_etcd),
        expected,
        "etcd serves every object with its uid"
    );
    let listed = ok(on_etcd.kubectl(
        KUBECTL_133,
        &["get", "configmaps", "-n", "mig-3", "--no-headers"],
    ));
    assert_eq!(
        listed.lines().filter(|l| l.starts_with("obj-")).count(),
        400
    );
    ok(on_etcd.kubectl(
        KUBECTL_133,
        &["create", "deployment", "web", "--image=nginx:1.27"],
    ));
    let got = ok(on_etcd.kubectl(KUBECTL_133, &["get", "deployment", "web", "-o", "name"]));
    assert_eq!(got.trim(), "deployment.apps/web");
    ok(on_etcd.kubectl(
        KUBECTL_133,
        &["delete", "configmap", "obj-3", "-n", "mig-3"],
    ));

    // etcd: snapshot and restore (etcdctl), timed.
    let (esnap, esnap_took) = timed(|| save(&on_etcd, "ten-k-etcd"));
    assert_eq!(esnap["backend"], "etcd");
    let edir = tempfile::tempdir().unwrap();
    let (out, erestore_took) = timed(|| {
        ok(keelson(&[
            "snapshot",
            "restore",
            esnap["path"].as_str().unwrap(),
            "--data-dir",
            edir.path().join("d").to_str().unwrap(),
        ]))
    });
    assert!(out.contains("etcd"), "{out}");
    assert!(edir.path().join("d/etcd/member").is_dir());

    eprintln!(
        "NUMBERS (10,000 objects, debug build): migrate {migrate_took:?}; embedded snapshot {} bytes, save {:?}, restore {:?}; etcd snapshot {} bytes, save {esnap_took:?}, restore {erestore_took:?}",
        embedded_numbers.0,
        embedded_numbers.1,
        embedded_numbers.2,
        esnap["size"]
    );
}
