//! Certificates: `keelson certificate check` lists the data dir's certificates with their
//! expiry; `keelson certificate rotate` under a live `kubectl get -w`: new connections get the
//! new certificate (signed by the same CA) without a restart, and the watch keeps delivering.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{eventually, keelson, ok, Server, KUBECTL_133};
use crate::snapshot::wait_ready;

/// The DER of the certificate the server presents to a new TLS connection (verified
/// against the data dir's CA).
fn served_certificate(server: &Server) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut server.ca_pem().as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .expect("TLS handshake with the CA");
    }
    conn.peer_certificates().unwrap()[0].to_vec()
}

fn file_certificate(server: &Server) -> Vec<u8> {
    let pem = std::fs::read(server.dir.path().join("tls/server.crt")).unwrap();
    let der = rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .unwrap()
        .unwrap()
        .to_vec();
    der
}

#[test]
fn rotation_under_a_live_watch_serves_the_new_certificate() {
    let server = Server::start();
    wait_ready(&server);
    let dir = server.dir.path().to_str().unwrap().to_string();
    let checked: Vec<Value> = serde_json::from_str(&ok(keelson(&[
        "certificate",
        "check",
        "--data-dir",
        &dir,
        "-o",
        "json",
    ])))
    .unwrap();
    let names: Vec<&str> = checked
        .iter()
        .map(|c| c["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["keelson-ca", "keelson-client-ca", "keelson-apiserver"],
        "{checked:?}"
    );
    assert!(checked
        .iter()
        .all(|c| c["secondsLeft"].as_i64().unwrap() > 86_400 * 365));

    let old = served_certificate(&server);
    assert_eq!(old, file_certificate(&server));

    let home = server.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut watch = Command::new(KUBECTL_133)
        .args(["get", "configmaps", "-n", "default", "-w", "--no-headers"])
        .env("KUBECONFIG", server.kubeconfig())
        .env("HOME", &home)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let seen: Arc<Mutex<String>> = Arc::default();
    let reader = {
        let (seen, out) = (seen.clone(), watch.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let mut s = seen.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        })
    };
    ok(server.kubectl(KUBECTL_133, &["create", "configmap", "before-rotation"]));
    assert!(
        eventually(Duration::from_secs(10), || seen
            .lock()
            .unwrap()
            .contains("before-rotation")),
        "watch sees the first object"
    );

    let out = ok(keelson(&[
        "certificate",
        "rotate",
        "--data-dir",
        &dir,
        "--days",
        "90",
    ]));
    assert!(out.contains("rotated"), "{out}");
    let new = file_certificate(&server);
    assert_ne!(new, old, "a new certificate was written");
    assert!(
        eventually(Duration::from_secs(10), || served_certificate(&server)
            == new),
        "new connections get the new certificate (verified with the same CA)"
    );
    ok(server.kubectl(KUBECTL_133, &["create", "configmap", "after-rotation"]));
    assert!(
        eventually(Duration::from_secs(20), || seen
            .lock()
            .unwrap()
            .contains("after-rotation")),
        "the watch keeps going: {}",
        seen.lock().unwrap()
    );
    assert!(
        watch.try_wait().unwrap().is_none(),
        "kubectl get -w still running"
    );
    let _ = watch.kill();
    let _ = watch.wait();
    reader.join().unwrap();
    let checked: Vec<Value> = serde_json::from_str(&ok(keelson(&[
        "certificate",
        "check",
        "--data-dir",
        &dir,
        "-o",
        "json",
    ])))
    .unwrap();
    let server_cert = checked
        .iter()
        .find(|c| c["subject"] == "keelson-apiserver")
        .unwrap();
    let days = server_cert["secondsLeft"].as_i64().unwrap() / 86_400;
    assert!((88..=90).contains(&days), "{checked:?}");
    // The expiry is exported on /metrics.
    let metrics = ok(server.kubectl(KUBECTL_133, &["get", "--raw", "/metrics"]));
    assert!(
        metrics.contains("keelson_certificate_expiry_timestamp_seconds"),
        "{metrics}"
    );
}

#[test]
fn a_certificate_expiring_within_30_days_is_warned_about() {
    let mut server = Server::start();
    wait_ready(&server);
    let dir = server.dir.path().to_str().unwrap().to_string();
    let metrics = ok(server.kubectl(KUBECTL_133, &["get", "--raw", "/metrics"]));
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("keelson_certificate_expiring_soon{") && l.ends_with(" 1")),
        "{metrics}"
    );
    let out = ok(keelson(&[
        "certificate",
        "rotate",
        "--data-dir",
        &dir,
        "--days",
        "10",
    ]));
    assert!(out.contains("expires within 30 days"), "{out}");
    server.restart();
    wait_ready(&server);
    let soon = format!(
        "keelson_certificate_expiring_soon{{file=\"{}\"}} 1",
        server.dir.path().join("tls/server.crt").display()
    );
    assert!(
        eventually(Duration::from_secs(10), || ok(
            server.kubectl(KUBECTL_133, &["get", "--raw", "/metrics"])
        )
        .contains(&soon)),
        "{soon}"
    );
    assert!(
        server
            .log_text()
            .contains("certificate expires within 30 days"),
        "{}",
        server.log_text()
    );
}
