//! Crash safety: kill -9 the server while a client writes; every acknowledged write survives a restart.
//!
//! Several writer threads create ConfigMaps as fast as the server accepts them and record each one
//! that got a 201. The server is SIGKILLed (whole process group) mid-stream, restarted on the same
//! port and data dir (and, for the etcd variant, the same etcd), and every acknowledged ConfigMap
//! must come back with the same data, uid and resourceVersion, by GET and in a LIST.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{etcd, eventually, Server};

/// Writer threads.
const WRITERS: usize = 4;
/// Minimum run time before the kill.
const MIN_RUN: Duration = Duration::from_millis(1500);
/// Acknowledged writes needed before the kill (and asserted after it), so the test means something.
const MIN_ACKED: usize = 50;

/// What the server acknowledged for one create.
#[derive(Clone, Debug)]
struct Acked {
    value: String,
    uid: String,
    resource_version: String,
}

fn client(server: &Server) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&server.ca_pem()).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

const CM_PATH: &str = "/api/v1/namespaces/default/configmaps";

#[test]
fn acknowledged_writes_survive_kill_9() {
    let mut server = Server::start();
    kill_while_writing(&mut server);
}

#[test]
#[ignore = "needs etcd"]
fn acknowledged_writes_survive_kill_9_etcd() {
    let etcd = etcd();
    let mut server = Server::start_with_store(&etcd.store_url());
    kill_while_writing(&mut server);
    drop(server);
    drop(etcd);
}

/// Writes from [`WRITERS`] threads, SIGKILLs the server mid-stream, restarts it and checks that
/// every acknowledged write is there.
fn kill_while_writing(server: &mut Server) {
    let http = client(server);
    let token = server.token();
    let base = format!("https://127.0.0.1:{}", server.port);
    wait_ready(&http, &base, &token);

    let acked: Arc<Mutex<HashMap<String, Acked>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    // Set just before the SIGKILL (failures are expected from then on) and just after it.
    let (killing, killed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    // Requests sent before the kill that never got an answer: writes in flight when it happened.
    let cut_off = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (http, token, base) = (http.clone(), token.clone(), base.clone());
            let (acked, stop, cut_off) = (acked.clone(), stop.clone(), cut_off.clone());
            let (killing, killed) = (killing.clone(), killed.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let name = format!("crash-w{w}-{i}");
                    let value = format!("value of {name}: {}", "x".repeat(i % 64));
                    let body = json!({
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": name},
                        "data": {"v": value},
                    });
                    let sent_before_kill = !killed.load(Ordering::SeqCst);
                    let resp = http
                        .post(format!("{base}{CM_PATH}"))
                        .bearer_auth(&token)
                        .json(&body)
                        .send();
                    let resp = match resp {
                        Ok(r) => r,
                        Err(e) => {
                            assert!(
                                killing.load(Ordering::SeqCst),
                                "write {name} failed before the kill: {e}"
                            );
                            if sent_before_kill {
                                cut_off.fetch_add(1, Ordering::SeqCst);
                            }
                            // The server is gone; keep trying until told to stop.
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                    };
                    let status = resp.status().as_u16();
                    let Ok(text) = resp.text() else {
                        // The body was cut off by the kill: not acknowledged.
                        assert!(killing.load(Ordering::SeqCst), "reading response of {name}");
                        if sent_before_kill {
                            cut_off.fetch_add(1, Ordering::SeqCst);
                        }
                        continue;
                    };
                    assert_eq!(status, 201, "create {name}: {text}");
                    let created: Value = serde_json::from_str(&text).unwrap();
                    let meta = &created["metadata"];
                    assert_eq!(created["data"]["v"], value.as_str());
                    let entry = Acked {
                        value,
                        uid: meta["uid"].as_str().expect("uid").to_string(),
                        resource_version: meta["resourceVersion"]
                            .as_str()
                            .expect("resourceVersion")
                            .to_string(),
                    };
                    acked.lock().unwrap().insert(name, entry);
                }
            })
        })
        .collect();

    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    while (started.elapsed() < MIN_RUN || acked.lock().unwrap().len() < MIN_ACKED)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    killing.store(true, Ordering::SeqCst);
    server.kill();
    killed.store(true, Ordering::SeqCst);
    // Let the writers hit the dead server for a moment, then stop them.
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().expect("writer thread panicked");
    }
    let acked = Arc::try_unwrap(acked).unwrap().into_inner().unwrap();
    eprintln!(
        "crash: {} writes acknowledged in {:?} before SIGKILL; {} in flight at the kill",
        acked.len(),
        started.elapsed(),
        cut_off.load(Ordering::SeqCst)
    );
    assert!(
        acked.len() >= MIN_ACKED,
        "only {} writes acknowledged; the test needs at least {MIN_ACKED}",
        acked.len()
    );
    assert!(
        cut_off.load(Ordering::SeqCst) > 0,
        "no write was in flight at the kill: the server was not killed under load"
    );

    server.restart();
    wait_ready(&http, &base, &token);

    // Every acknowledged write, one GET each.
    let mut lost = Vec::new();
    for (name, want) in &acked {
        let resp = http
            .get(format!("{base}{CM_PATH}/{name}"))
            .bearer_auth(&token)
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        if status == 404 {
            lost.push(name.clone());
            continue;
        }
        assert_eq!(status, 200, "get {name}");
        let got: Value = resp.json().unwrap();
        check_same(name, want, &got);
    }
    lost.sort();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost after kill -9: {lost:?}",
        lost.len(),
        acked.len()
    );

    // And the LIST has every one of them, identical.
    let list: Value = http
        .get(format!("{base}{CM_PATH}"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .unwrap();
    let items: HashMap<&str, &Value> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| (i["metadata"]["name"].as_str().unwrap(), i))
        .collect();
    for (name, want) in &acked {
        let got = items
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{name} missing from LIST after restart"));
        check_same(name, want, got);
    }

    // The store keeps working after the crash, and its revisions did not go backwards.
    let resp = http
        .post(format!("{base}{CM_PATH}"))
        .bearer_auth(&token)
        .json(&json!({"metadata": {"name": "after-restart"}, "data": {"k": "v"}}))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201, "create after restart");
    let created: Value = resp.json().unwrap();
    let new_rv: u64 = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .expect("numeric resourceVersion");
    let max_acked = acked
        .values()
        .map(|a| a.resource_version.parse::<u64>().unwrap())
        .max()
        .unwrap();
    assert!(
        new_rv > max_acked,
        "resourceVersion after restart ({new_rv}) is not above the last acknowledged ({max_acked})"
    );
}

fn check_same(name: &str, want: &Acked, got: &Value) {
    assert_eq!(got["data"]["v"], want.value.as_str(), "{name}: data");
    assert_eq!(got["metadata"]["uid"], want.uid.as_str(), "{name}: uid");
    assert_eq!(
        got["metadata"]["resourceVersion"],
        want.resource_version.as_str(),
        "{name}: resourceVersion"
    );
}

/// Waits until the server answers an authenticated GET of the default namespace.
fn wait_ready(http: &reqwest::blocking::Client, base: &str, token: &str) {
    let ready = eventually(Duration::from_secs(30), || {
        http.get(format!("{base}/api/v1/namespaces/default"))
            .bearer_auth(token)
            .send()
            .is_ok_and(|r| r.status().is_success())
    });
    assert!(ready, "server not ready");
}
