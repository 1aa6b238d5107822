//! A node agent on "another machine": `keelson agent --server URL --token NODE_TOKEN` joins
//! with the server's node join token (authenticated as `system:node:<name>`), a wrong token
//! gets 401, and a Wasm pod scheduled to the joined node runs there with its logs proxied.

use std::process::Command;
use std::time::Duration;

use crate::harness::{eventually, ok, Server, KUBECTL_133};
use crate::kubelet::{apply, jsonpath, kubectl, wait_for, wasi_demo};

#[test]
fn remote_agent_joins_with_the_node_token_and_a_wrong_token_gets_401() {
    let server = Server::start_with_scheduler(&[]);
    let token = std::fs::read_to_string(server.dir.path().join("node-token")).unwrap();
    let ca = server.dir.path().join("tls/ca.crt");
    let url = format!("https://127.0.0.1:{}", server.port);
    let agent_dir = tempfile::tempdir().unwrap();
    let import = Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(["image", "import"])
        .arg(wasi_demo())
        .args(["demo:1", "--data-dir"])
        .arg(agent_dir.path())
        .output()
        .unwrap();
    ok(import);
    let args = |token: &str| -> Vec<String> {
        [
            "agent",
            "--server",
            &url,
            "--token",
            token,
            "--certificate-authority",
            ca.to_str().unwrap(),
            "--node-name",
            "remote-1",
            "--kubelet-port",
            "0",
            // No nftables rules in the test machine's own namespace.
            "--disable-proxy",
            "--data-dir",
            agent_dir.path().to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let wrong = Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(args("not-the-token"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success());
    assert!(stderr.contains("Unauthorized"), "{stderr}");

    let joined = args(token.trim());
    let joined: Vec<&str> = joined.iter().map(String::as_str).collect();
    let agent = crate::harness::Component::start(&server, &joined);
    let ready = eventually(Duration::from_secs(30), || {
        let out = server.kubectl(
            KUBECTL_133,
            &[
                "get",
                "node",
                "remote-1",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ],
        );
        String::from_utf8_lossy(&out.stdout) == "True"
    });
    assert!(ready, "{}", agent.log_text());
    apply(
        &server,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: away}
spec:
  runtimeClassName: wasm
  restartPolicy: Never
  nodeSelector: {kubernetes.io/hostname: remote-1}
  containers:
  - {name: main, image: "demo:1", args: ["--print", "from afar"]}
"#,
    );
    wait_for(
        &server,
        "away",
        "{.status.phase}",
        "Succeeded",
        Duration::from_secs(60),
    );
    assert_eq!(jsonpath(&server, "away", "{.spec.nodeName}"), "remote-1");
    assert!(kubectl(&server, &["logs", "away"]).contains("from afar\n"));
}
