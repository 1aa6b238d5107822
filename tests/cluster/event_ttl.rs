//! Event TTL with kubectl 1.33 on a server started with `--event-ttl 4s`: an Event is deleted
//! a few seconds after its last update, while one whose `lastTimestamp` keeps being refreshed
//! lives on until the updates stop.

use std::time::{Duration, Instant};

use crate::harness::{eventually, ok, Server, KUBECTL_133};

const K: &str = KUBECTL_133;

fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap()
        .to_string()
}

fn event(name: &str) -> String {
    let t = now();
    format!(
        "apiVersion: v1\nkind: Event\nmetadata: {{name: {name}, namespace: default}}\ninvolvedObject: {{kind: Pod, name: x, namespace: default}}\nreason: Testing\nmessage: hello\ntype: Normal\nfirstTimestamp: {t}\nlastTimestamp: {t}\n"
    )
}

fn exists(server: &Server, name: &str) -> bool {
    server
        .kubectl(K, &["get", "event", name, "-n", "default"])
        .status
        .success()
}

#[test]
fn events_expire_after_their_ttl() {
    let server = Server::start_with_args(&["--event-ttl", "4s"]);
    let apply = |yaml: String| ok(server.kubectl_stdin(K, &["apply", "-f", "-"], &yaml));
    apply(event("once"));
    apply(event("refreshed"));
    assert!(exists(&server, "once"), "created");
    // Keep `refreshed` fresh for 8 s (twice the TTL) while `once` expires.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(8) {
        let patch = format!("{{\"lastTimestamp\": \"{}\"}}", now());
        ok(server.kubectl(
            K,
            &["patch", "event", "refreshed", "-n", "default", "-p", &patch],
        ));
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(!exists(&server, "once"), "expired after 4 s");
    assert!(exists(&server, "refreshed"), "its TTL restarts on update");
    assert!(
        eventually(Duration::from_secs(20), || !exists(&server, "refreshed")),
        "expires once the updates stop\n{}",
        server.log_text()
    );
}
