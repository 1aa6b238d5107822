//! Data at rest: with `--encryption-provider-config` a Secret's value is not in the store files
//! in any form, stays readable after a restart and across a key rotation; the data dir is
//! private; and `--audit-policy-file` writes `audit.k8s.io/v1` events.

use std::os::unix::fs::PermissionsExt;

use base64::Engine;
use serde_json::Value;

use crate::harness::{ok, Server};

const K133: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";
const MARKER: &str = "correct-horse-battery-staple";

fn key(byte: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

/// Every byte the embedded store keeps on disk (database and write-ahead log).
fn store_bytes(server: &Server) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["state.db", "state.db-wal"] {
        if let Ok(b) = std::fs::read(server.dir.path().join(name)) {
            all.extend(b);
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn secrets_encrypted_rotated_audited_and_private() {
    let conf_dir = tempfile::tempdir().unwrap();
    let config = conf_dir.path().join("encryption.yaml");
    let write_config = |providers: &str| {
        std::fs::write(
            &config,
            format!("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n{providers}"),
        )
        .unwrap();
    };
    write_config(&format!(
        "  - aescbc:\n      keys:\n      - name: key1\n        secret: {}\n  - identity: {{}}\n",
        key(1)
    ));
    let policy = conf_dir.path().join("audit.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  userGroups: [system:serviceaccounts, system:nodes]\n- level: Metadata\n  resources: [{group: '', resources: [secrets]}]\n- level: Request\n  verbs: [create]\n",
    )
    .unwrap();
    let audit_log = conf_dir.path().join("audit.log");
    let mut server = Server::start_with_args(&[
        "--encryption-provider-config",
        config.to_str().unwrap(),
        "--audit-policy-file",
        policy.to_str().unwrap(),
        "--audit-log-path",
        audit_log.to_str().unwrap(),
    ]);
    ok(server.kubectl(
        K133,
        &[
            "create",
            "secret",
            "generic",
            "db",
            &format!("--from-literal=password={MARKER}"),
        ],
    ));
    ok(server.kubectl(
        K133,
        &["label", "secret", "db", &format!("marker={MARKER}")],
    ));
    ok(server.kubectl(
        K133,
        &[
            "create",
            "configmap",
            "plain",
            &format!("--from-literal=k={MARKER}"),
        ],
    ));
    let encoded = base64::engine::general_purpose::STANDARD.encode(MARKER);
    let bytes = store_bytes(&server);
    assert!(
        contains(&bytes, MARKER),
        "the ConfigMap is not encrypted, so the marker is on disk"
    );
    let secret_pos = bytes
        .windows(encoded.len())
        .filter(|w| *w == encoded.as_bytes())
        .count();
    assert_eq!(secret_pos, 0, "the Secret's value is on disk in base64");
    assert!(
        contains(&bytes, "k8s:enc:aescbc:v1:key1:"),
        "sealed values carry the envelope"
    );

    // Private at rest.
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(server.dir.path()), 0o700);
    assert_eq!(mode(&server.dir.path().join("state.db")), 0o600);
    assert_eq!(
        mode(&server.dir.path().join("tls/service-account.key")),
        0o600
    );

    // Rotation: a new key first, the old one still listed; after a restart the old Secret
    // reads back and new writes use the new key.
    write_config(&format!(
        "  - aesgcm:\n      keys:\n      - name: key2\n        secret: {}\n  - aescbc:\n      keys:\n      - name: key1\n        secret: {}\n  - identity: {{}}\n",
        key(2),
        key(1)
    ));
    server.restart();
    let value = ok(server.kubectl(
        K133,
        &["get", "secret", "db", "-o", "jsonpath={.data.password}"],
    ));
    assert_eq!(value, encoded);
    ok(server.kubectl(
        K133,
        &[
            "create",
            "secret",
            "generic",
            "db2",
            &format!("--from-literal=password={MARKER}"),
        ],
    ));
    assert!(contains(&store_bytes(&server), "k8s:enc:aesgcm:v1:key2:"));
    let bytes = store_bytes(&server);
    assert!(
        !contains(&bytes, &encoded),
        "no Secret value on disk after rotation"
    );

    // Audit events: Metadata for Secrets (no body), Request for other creates (with body).
    let log = std::fs::read_to_string(&audit_log).unwrap();
    let events: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let secret_create = events
        .iter()
        .find(|e| e["verb"] == "create" && e["objectRef"]["resource"] == "secrets")
        .expect("the Secret create is audited");
    assert_eq!(secret_create["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(secret_create["level"], "Metadata");
    assert_eq!(secret_create["user"]["username"], "admin");
    assert_eq!(secret_create["responseStatus"]["code"], 201);
    assert!(secret_create.get("requestObject").is_none());
    let cm_create = events
        .iter()
        .find(|e| e["verb"] == "create" && e["objectRef"]["resource"] == "configmaps")
        .expect("the ConfigMap create is audited");
    assert_eq!(cm_create["level"], "Request");
    assert_eq!(
        cm_create["requestObject"]["data"]["k"],
        MARKER,
        "{cm_create}\n{}",
        server.log_text()
    );
    assert!(
        !events.iter().any(|e| e["user"]["username"]
            .as_str()
            .is_some_and(|u| u.starts_with("system:serviceaccount:"))),
        "controllers' requests are at level None"
    );
}
