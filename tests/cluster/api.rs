//! The REST API as a program sees it (no kubectl): watch bookmarks, `sendInitialEvents`, 410
//! Expired after compaction, list paging, Table output, optimistic concurrency, 401 without
//! credentials, the loopback-only plaintext port and `/metrics`.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{free_port, Server};

pub(crate) fn client(server: &Server) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&server.ca_pem()).unwrap())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

pub(crate) fn url(server: &Server, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", server.port)
}

fn create_cm(server: &Server, name: &str, labels: Value) -> Value {
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": name}});
    let resp = client(server)
        .post(url(server, "/api/v1/namespaces/default/configmaps"))
        .bearer_auth(server.token())
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    resp.json().unwrap()
}

/// Reads watch events (one JSON object per line) until `n` arrived.
fn read_events(resp: reqwest::blocking::Response, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for line in BufReader::new(resp).lines() {
        let line = line.unwrap();
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(&line).unwrap());
        if out.len() == n {
            break;
        }
    }
    out
}

#[test]
fn watch_from_compacted_revision_gets_410_expired() {
    let mut server = Server::start_with_args(&["--compaction-interval=1"]);
    let first = create_cm(&server, "old-1", json!({}));
    let rv: i64 = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    for i in 0..5 {
        create_cm(&server, &format!("old-{}", i + 2), json!({}));
    }
    // A restart empties the watch cache, so the old revision must come from the store.
    server.restart();
    std::thread::sleep(Duration::from_millis(2600));
    let resp = client(&server)
        .get(url(
            &server,
            &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}"),
        ))
        .bearer_auth(server.token())
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let events = read_events(resp, 1);
    assert_eq!(events[0]["type"], "ERROR", "{events:?}");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");
}

#[test]
fn watch_initial_events_bookmark_and_changes() {
    let server = Server::start();
    create_cm(&server, "w-a", json!({"w": "1"}));
    create_cm(&server, "w-b", json!({"w": "1"}));
    let resp = client(&server)
        .get(url(&server, "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&labelSelector=w%3D1"))
        .bearer_auth(server.token())
        .send()
        .unwrap();
    let s2 = std::thread::spawn({
        let port = server.port;
        let token = server.token();
        let ca = server.ca_pem();
        move || {
            std::thread::sleep(Duration::from_millis(500));
            let c = reqwest::blocking::Client::builder()
                .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
                .build()
                .unwrap();
            let body = json!({"metadata": {"name": "w-c", "labels": {"w": "1"}}});
            c.post(format!(
                "https://127.0.0.1:{port}/api/v1/namespaces/default/configmaps"
            ))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .unwrap();
            c.delete(format!(
                "https://127.0.0.1:{port}/api/v1/namespaces/default/configmaps/w-a"
            ))
            .bearer_auth(&token)
            .send()
            .unwrap();
        }
    });
    let events = read_events(resp, 5);
    s2.join().unwrap();
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("ADDED", "w-a"),
            ("ADDED", "w-b"),
            ("BOOKMARK", ""),
            ("ADDED", "w-c"),
            ("DELETED", "w-a")
        ]
    );
    assert_eq!(
        events[2]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
}

#[test]
fn watch_with_selector_sees_objects_enter_and_leave() {
    let server = Server::start();
    create_cm(&server, "moving", json!({"sel": "in"}));
    let resp = client(&server)
        .get(url(
            &server,
            "/api/v1/namespaces/default/configmaps?watch=true&labelSelector=sel%3Din",
        ))
        .bearer_auth(server.token())
        .send()
        .unwrap();
    let relabel = |value: &str| {
        let patch = json!({"metadata": {"labels": {"sel": value}}});
        let r = client(&server)
            .patch(url(&server, "/api/v1/namespaces/default/configmaps/moving"))
            .bearer_auth(server.token())
            .header("Content-Type", "application/merge-patch+json")
            .body(patch.to_string())
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    };
    relabel("out");
    relabel("in");
    let events = read_events(resp, 3);
    let seen: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["labels"]["sel"]
                    .as_str()
                    .unwrap_or(""),
            )
        })
        .collect();
    // Initial state, then leaving the selection is a DELETED (with the content it had), and
    // coming back is an ADDED.
    assert_eq!(
        seen,
        vec![("ADDED", "in"), ("DELETED", "in"), ("ADDED", "in")]
    );
}

#[test]
fn list_paging_tables_conflicts_and_auth() {
    let server = Server::start_with_args(&["--insecure-port", &free_port().to_string()]);
    for i in 0..25 {
        create_cm(&server, &format!("page-{i:02}"), json!({"paged": "yes"}));
    }
    let c = client(&server);
    let mut names = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let list: Value = c
            .get(url(&server, &format!("/api/v1/namespaces/default/configmaps?labelSelector=paged%3Dyes&limit=10&continue={token}")))
            .bearer_auth(server.token())
            .send()
            .unwrap()
            .json()
            .unwrap();
        pages += 1;
        names.extend(
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
        );
        match list["metadata"]["continue"].as_str() {
            Some(t) if !t.is_empty() => {
                assert!(list["metadata"]["remainingItemCount"].as_u64().unwrap() > 0);
                token = t.to_string();
            }
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        names,
        (0..25).map(|i| format!("page-{i:02}")).collect::<Vec<_>>()
    );

    // Table output as kubectl asks for it.
    let table: Value = c
        .get(url(
            &server,
            "/api/v1/namespaces/default/configmaps?limit=2",
        ))
        .bearer_auth(server.token())
        .header(
            "Accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["columnDefinitions"][1]["name"], "Data");
    assert_eq!(table["rows"].as_array().unwrap().len(), 2);
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");

    // A stale resourceVersion is a 409 Conflict Status.
    let mut cm: Value = c
        .get(url(
            &server,
            "/api/v1/namespaces/default/configmaps/page-00",
        ))
        .bearer_auth(server.token())
        .send()
        .unwrap()
        .json()
        .unwrap();
    cm["data"]["k"] = json!("changed");
    assert_eq!(
        c.put(url(
            &server,
            "/api/v1/namespaces/default/configmaps/page-00"
        ))
        .bearer_auth(server.token())
        .json(&cm)
        .send()
        .unwrap()
        .status()
        .as_u16(),
        200
    );
    let stale = c
        .put(url(
            &server,
            "/api/v1/namespaces/default/configmaps/page-00",
        ))
        .bearer_auth(server.token())
        .json(&cm)
        .send()
        .unwrap();
    assert_eq!(stale.status().as_u16(), 409);
    let status: Value = stale.json().unwrap();
    assert_eq!(
        (status["kind"].as_str(), status["reason"].as_str()),
        (Some("Status"), Some("Conflict"))
    );

    // No credentials: system:anonymous, allowed only what RBAC grants (403 in Kubernetes'
    // words); a token nobody issued: 401.
    let anon = c.get(url(&server, "/api/v1/namespaces")).send().unwrap();
    assert_eq!(anon.status().as_u16(), 403);
    assert_eq!(
        anon.json::<Value>().unwrap()["message"],
        "namespaces is forbidden: User \"system:anonymous\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
    );
    let forged = c
        .get(url(&server, "/api/v1/namespaces"))
        .bearer_auth("not-a-token")
        .send()
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    assert_eq!(forged.json::<Value>().unwrap()["reason"], "Unauthorized");

    // The plaintext port is loopback-only and needs no token.
    let log = server.log_text();
    let insecure = server_insecure_port(&server)
        .unwrap_or_else(|| panic!("no insecure port in args; log: {log}"));
    let plain = reqwest::blocking::get(format!(
        "http://127.0.0.1:{insecure}/api/v1/namespaces/default"
    ))
    .unwrap();
    assert_eq!(plain.status().as_u16(), 200);

    // /metrics counts requests.
    let metrics = c
        .get(url(&server, "/metrics"))
        .bearer_auth(server.token())
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(
            "apiserver_request_total{verb=\"POST\",resource=\"configmaps\",code=\"201\"} 25"
        ),
        "{metrics}"
    );
}

fn server_insecure_port(server: &Server) -> Option<u16> {
    let args = server.args();
    let i = args.iter().position(|a| a == "--insecure-port")?;
    args.get(i + 1)?.parse().ok()
}

#[test]
fn sigterm_drains_watches_and_requests_then_exits_cleanly() {
    let mut server = Server::start();
    create_cm(&server, "before-shutdown", json!({}));
    let watch = client(&server)
        .get(url(
            &server,
            "/api/v1/namespaces/default/configmaps?watch=true",
        ))
        .bearer_auth(server.token())
        .send()
        .unwrap();
    assert_eq!(watch.status().as_u16(), 200);
    // The watch sees the initial state, then must end (EOF) when the server stops.
    let reader = std::thread::spawn(move || {
        let mut lines = 0;
        for line in BufReader::new(watch).lines() {
            match line {
                Ok(l) if !l.trim().is_empty() => lines += 1,
                Ok(_) => {}
                Err(_) => return (lines, false),
            }
        }
        (lines, true)
    });
    std::thread::sleep(Duration::from_millis(300));
    let (clean, took) = server.terminate(Duration::from_secs(20));
    assert!(
        clean,
        "exit status 0 after SIGTERM; log:\n{}",
        server.log_text()
    );
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    let (events, ended_cleanly) = reader.join().unwrap();
    assert!(events >= 1, "the watch delivered the initial ADDED event");
    assert!(ended_cleanly, "the watch stream ended with a clean EOF");
    let log = server.log_text();
    assert!(log.contains("draining connections"), "{log}");
    assert!(log.contains("shutdown complete"), "{log}");
    // Nothing acknowledged was lost.
    server.start_again();
    let resp = client(&server)
        .get(url(
            &server,
            "/api/v1/namespaces/default/configmaps/before-shutdown",
        ))
        .bearer_auth(server.token())
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}
