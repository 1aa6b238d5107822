//! Snapshots and restore: a snapshot taken while a writer creates ConfigMaps restores to a
//! server holding exactly the writes acknowledged at or below the snapshot's revision (same
//! uids and resourceVersions, by LIST and by kubectl), old watches get 410; corrupt, truncated
//! and foreign snapshot files and a store of a future format are refused with an error naming
//! the file, leaving the data dir as it was; an older store format is upgraded after an
//! automatic snapshot.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{eventually, fails, keelson, ok, Server, KUBECTL_133};

/// Creates per second, across the writer threads.
const RATE: u64 = 200;
const WRITERS: u64 = 4;

pub(crate) fn client(server: &Server) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&server.ca_pem()).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub(crate) fn wait_ready(server: &Server) {
    let (http, token) = (client(server), server.token());
    let ready = eventually(Duration::from_secs(30), || {
        http.get(format!(
            "https://127.0.0.1:{}/api/v1/namespaces/default/serviceaccounts/default",
            server.port
        ))
        .bearer_auth(&token)
        .send()
        .is_ok_and(|r| r.status().is_success())
    });
    assert!(ready, "server not ready:\n{}", server.log_text());
}

/// name → (uid, resourceVersion) of the ConfigMaps in `default` whose name starts with `prefix`.
fn listed(server: &Server, prefix: &str) -> BTreeMap<String, (String, i64)> {
    let body: Value = client(server)
        .get(format!(
            "https://127.0.0.1:{}/api/v1/namespaces/default/configmaps",
            server.port
        ))
        .bearer_auth(server.token())
        .send()
        .unwrap()
        .json()
        .unwrap();
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| {
            let name = i["metadata"]["name"].as_str()?;
            name.starts_with(prefix).then(|| {
                (
                    name.to_string(),
                    (
                        i["metadata"]["uid"].as_str().unwrap().to_string(),
                        i["metadata"]["resourceVersion"]
                            .as_str()
                            .unwrap()
                            .parse()
                            .unwrap(),
                    ),
                )
            })
        })
        .collect()
}

/// Takes a snapshot through the running server; returns its JSON record.
pub(crate) fn save(server: &Server, name: &str) -> Value {
    let kubeconfig = server.kubeconfig();
    let out = ok(keelson(&[
        "snapshot",
        "save",
        "--name",
        name,
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "-o",
        "json",
    ]));
    serde_json::from_str(&out).unwrap()
}

#[test]
fn snapshot_under_writes_restores_exactly_the_acknowledged_objects() {
    let server = Server::start();
    wait_ready(&server);
    let http = client(&server);
    let (token, base) = (server.token(), format!("https://127.0.0.1:{}", server.port));
    let acked: Arc<Mutex<BTreeMap<String, (String, i64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (http, token, base) = (http.clone(), token.clone(), base.clone());
            let (acked, stop) = (acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let period = Duration::from_micros(1_000_000 * WRITERS / RATE);
                let mut next = Instant::now();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("load-{w}-{i}");
                    i += 1;
                    let resp = http
                        .post(format!("{base}/api/v1/namespaces/default/configmaps"))
                        .bearer_auth(&token)
                        .json(&json!({"metadata": {"name": name}, "data": {"i": i.to_string()}}))
                        .send()
                        .unwrap();
                    assert_eq!(resp.status().as_u16(), 201, "create {name}");
                    let obj: Value = resp.json().unwrap();
                    let rv = obj["metadata"]["resourceVersion"].as_str().unwrap();
                    acked.lock().unwrap().insert(
                        name,
                        (
                            obj["metadata"]["uid"].as_str().unwrap().to_string(),
                            rv.parse().unwrap(),
                        ),
                    );
                    next += period;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let snap = save(&server, "under-load");
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let revision = snap["revision"].as_i64().unwrap();
    let acked = acked.lock().unwrap().clone();
    let (before, after): (BTreeMap<_, _>, BTreeMap<_, _>) =
        acked.into_iter().partition(|(_, (_, rv))| *rv <= revision);
    assert!(
        before.len() >= 100 && after.len() >= 50,
        "the writer ran on both sides of the snapshot: {} before, {} after revision {revision}",
        before.len(),
        after.len()
    );
    let file = snap["path"].as_str().unwrap().to_string();
    assert!(file.starts_with(server.dir.path().join("snapshots").to_str().unwrap()));
    let listed_names = ok(keelson(&[
        "snapshot",
        "list",
        "--data-dir",
        server.dir.path().to_str().unwrap(),
    ]));
    assert!(listed_names.contains("under-load"), "{listed_names}");

    let restored = tempfile::tempdir().unwrap();
    let out = ok(keelson(&[
        "snapshot",
        "restore",
        &file,
        "--data-dir",
        restored.path().to_str().unwrap(),
    ]));
    assert!(out.contains("restored"), "{out}");
    let new = Server::start_in_dir(restored, "embedded");
    wait_ready(&new);
    assert_eq!(
        listed(&new, "load-"),
        before,
        "restored server holds exactly the writes acknowledged at or below revision {revision}"
    );
    // kubectl sees the same names, uids and resourceVersions.
    let printed = ok(new.kubectl(
        KUBECTL_133,
        &[
            "get",
            "configmaps",
            "-n",
            "default",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.metadata.uid} {.metadata.resourceVersion}{\"\\n\"}{end}",
        ],
    ));
    let from_kubectl: BTreeMap<String, (String, i64)> = printed
        .lines()
        .filter(|l| l.starts_with("load-"))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].to_string(), (f[1].to_string(), f[2].parse().unwrap()))
        })
        .collect();
    assert_eq!(from_kubectl, before);
    // A watch from a revision the old server handed out gets 410 Expired.
    let resp = client(&new)
        .get(format!(
            "https://127.0.0.1:{}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={revision}",
            new.port
        ))
        .bearer_auth(new.token())
        .send()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(resp).read_line(&mut line).unwrap();
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["type"], "ERROR", "{line}");
    assert_eq!(event["object"]["code"], 410, "{line}");
    // New writes continue above every revision the old server used.
    let created: Value = client(&new)
        .post(format!(
            "https://127.0.0.1:{}/api/v1/namespaces/default/configmaps",
            new.port
        ))
        .bearer_auth(new.token())
        .json(&json!({"metadata": {"name": "after-restore"}}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let rv: i64 = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let newest_old = after.values().map(|(_, rv)| *rv).max().unwrap();
    assert!(rv > newest_old, "{rv} > {newest_old}");
}

/// Every file and its bytes under `dir`.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                for (k, v) in tree(&p) {
                    out.insert(format!("{}/{k}", e.file_name().to_string_lossy()), v);
                }
            } else {
                out.insert(
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

fn restore_fails(file: &Path, expect: &str) {
    let target = tempfile::tempdir().unwrap();
    let dest = target.path().join("new");
    let err = fails(keelson(&[
        "snapshot",
        "restore",
        file.to_str().unwrap(),
        "--data-dir",
        dest.to_str().unwrap(),
    ]));
    assert!(
        err.contains(file.to_str().unwrap()) && err.contains(expect),
        "error names {} and says {expect:?}: {err}",
        file.display()
    );
    assert!(!dest.exists(), "nothing written for {}", file.display());
}

/// Runs `keelson server` on `dir` and returns its stderr once it exits (it must, within 20 s).
fn server_exits(dir: &Path) -> String {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(["server", "--secure-port", "0", "--data-dir"])
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("server did not refuse the store");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn sqlite(path: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(sql).unwrap();
}

#[test]
fn bad_snapshots_and_future_store_formats_are_refused_naming_the_file() {
    let server = Server::start();
    wait_ready(&server);
    let snap = save(&server, "good");
    let good = std::path::PathBuf::from(snap["path"].as_str().unwrap());
    let bytes = std::fs::read(&good).unwrap();
    let scratch = tempfile::tempdir().unwrap();

    let corrupt = scratch.path().join("corrupt.ksnap");
    let mut c = bytes.clone();
    let mid = c.len() - 4096;
    c[mid] ^= 0xff;
    std::fs::write(&corrupt, &c).unwrap();
    restore_fails(&corrupt, "checksum mismatch");

    let truncated = scratch.path().join("truncated.ksnap");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    restore_fails(&truncated, "truncated");

    let foreign = scratch.path().join("foreign.ksnap");
    std::fs::write(
        &foreign,
        b"SQLite format 3\0 this is not a keelson snapshot",
    )
    .unwrap();
    restore_fails(&foreign, "not a Keelson snapshot");

    // A good snapshot into a data dir that already holds a store: refused, unchanged.
    let before = tree(server.dir.path().join("snapshots").as_path());
    let target = tempfile::tempdir().unwrap();
    ok(keelson(&[
        "snapshot",
        "restore",
        good.to_str().unwrap(),
        "--data-dir",
        target.path().to_str().unwrap(),
    ]));
    let restored_tree = tree(target.path());
    let err = fails(keelson(&[
        "snapshot",
        "restore",
        good.to_str().unwrap(),
        "--data-dir",
        target.path().to_str().unwrap(),
    ]));
    assert!(err.contains("state.db") && err.contains("exists"), "{err}");
    assert_eq!(tree(target.path()), restored_tree);
    assert_eq!(tree(server.dir.path().join("snapshots").as_path()), before);

    // A store of a future format: the server refuses to start, naming the file; nothing changes.
    let state = target.path().join("state.db");
    sqlite(&state, "UPDATE meta SET value = 99 WHERE name = 'format';");
    let untouched = tree(target.path());
    let err = server_exits(target.path());
    assert!(
        err.contains(state.to_str().unwrap()) && err.contains("format version 99 is newer"),
        "{err}"
    );
    assert_eq!(tree(target.path()), untouched, "data dir unchanged");

    // A stopped server's store can be snapshotted offline; the copy restores.
    sqlite(&state, "UPDATE meta SET value = 1 WHERE name = 'format';");
    let offline: Value = serde_json::from_str(&ok(keelson(&[
        "snapshot",
        "save",
        "--offline-data-dir",
        target.path().to_str().unwrap(),
        "--name",
        "offline",
        "-o",
        "json",
    ])))
    .unwrap();
    // The restored store continues at the snapshot's revision plus the default bump.
    assert_eq!(
        offline["revision"].as_i64().unwrap(),
        snap["revision"].as_i64().unwrap() + 1_000_000,
        "{offline}"
    );
    let again = tempfile::tempdir().unwrap();
    ok(keelson(&[
        "snapshot",
        "restore",
        offline["path"].as_str().unwrap(),
        "--data-dir",
        again.path().to_str().unwrap(),
    ]));

    // A store from before format versions: upgraded in place after an automatic snapshot.
    sqlite(&state, "DELETE FROM meta WHERE name = 'format';");
    let old = Server::start_in_dir(target, "embedded");
    wait_ready(&old);
    let list = ok(keelson(&[
        "snapshot",
        "list",
        "--data-dir",
        old.dir.path().to_str().unwrap(),
    ]));
    assert!(list.contains("pre-format-1-from-0"), "{list}");
}
