//! `kubectl port-forward` to a containerd pod (see [`crate::containerd`] for what the suite
//! needs): kubectl 1.33 tunnels SPDY inside a WebSocket, 1.29 upgrades to SPDY itself; both
//! reach busybox httpd inside the pod's network namespace, with concurrent connections, a
//! download larger than SPDY's initial windows, a refused port reported with the kubelet's
//! words, and a clear error for a Wasm pod.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::harness::{Server, KUBECTL_129, KUBECTL_133};
use crate::kubelet::{apply, import_demo, wait_running};
use crate::local_containerd::containerd_cluster;

/// A running `kubectl port-forward`, killed on drop.
struct Forward {
    child: Child,
    /// The local ports, in the order asked for.
    ports: Vec<u16>,
    stderr: std::path::PathBuf,
}

impl Forward {
    fn start(server: &Server, bin: &str, target: &str, remote: &[u16]) -> Forward {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let stderr = server.dir.path().join(format!("port-forward-{n}.err"));
        let specs: Vec<String> = remote.iter().map(|p| format!("0:{p}")).collect();
        let mut child = Command::new(bin)
            .args(["port-forward", "--address", "127.0.0.1", target])
            .args(&specs)
            .env("KUBECONFIG", server.kubeconfig())
            .env("HOME", server.dir.path().join("home"))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        // "Forwarding from 127.0.0.1:41234 -> 8080", one line per port.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut ports = Vec::new();
        while ports.len() < remote.len() {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                panic!(
                    "{bin} port-forward ended: {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            };
            if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
                ports.push(rest.split(' ').next().unwrap().parse().unwrap());
            }
        }
        // Keep reading ("Handling connection for …") so kubectl never blocks on its stdout.
        std::thread::spawn(move || lines.for_each(drop));
        Forward {
            child,
            ports,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends an HTTP/1.0 GET for `path` on `conn` and returns the whole answer.
fn get_on(mut conn: TcpStream, path: &str) -> String {
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(conn, "GET {path} HTTP/1.0\r\nHost: pod\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).unwrap()
}

#[test]
#[ignore = "needs containerd, runc, CNI plugins and root (tools/test.sh installs them)"]
fn port_forward_reaches_pod_ports_over_websocket_and_spdy() {
    let (_containerd, server) = containerd_cluster(6);
    import_demo(&server);
    // The big page is ~220 KB: over three times SPDY's 64 KiB initial windows.
    apply(
        &server,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: main
    image: busybox:test
    imagePullPolicy: Never
    command: ["sh", "-c", "i=0; while [ $i -lt 4000 ]; do echo \"line $i of a page that is long enough to need windows\"; i=$((i+1)); done > /www/big.txt; echo ready; exec httpd -f -p 8080 -h /www"]
---
apiVersion: v1
kind: Pod
metadata: {name: wasm}
spec:
  runtimeClassName: wasm
  containers:
  - {name: main, image: "demo:1", args: ["--print", "up", "--sleep-ms", "600000"]}
"#,
    );
    wait_running(&server, &["web", "wasm"]);
    assert!(crate::harness::eventually(Duration::from_secs(30), || {
        server
            .kubectl(KUBECTL_133, &["logs", "web"])
            .stdout
            .starts_with(b"ready")
    }));

    for bin in [KUBECTL_133, KUBECTL_129] {
        // 9 is a port nothing in the pod listens on.
        let mut forward = Forward::start(&server, bin, "pod/web", &[8080, 9]);
        let (web, closed) = (forward.ports[0], forward.ports[1]);
        let page = get_on(connect(web), "/index.html");
        assert!(page.starts_with("HTTP/1.1 200 OK"), "{bin}: {page}");
        assert!(
            page.ends_with("hello over the pod network\n"),
            "{bin}: {page}"
        );

        // Two connections at once: the first is opened, the second served, then the first.
        let first = connect(web);
        let second = get_on(connect(web), "/index.html");
        assert!(second.ends_with("hello over the pod network\n"), "{bin}");
        let first = get_on(first, "/big.txt");
        assert!(
            first.starts_with("HTTP/1.1 200 OK"),
            "{bin}: {}",
            &first[..first.len().min(200)]
        );
        assert!(
            first.contains("line 0 of")
                && first.ends_with("line 3999 of a page that is long enough to need windows\n"),
            "{bin}: {} bytes",
            first.len()
        );
        assert!(first.len() > 200_000, "{bin}: {} bytes", first.len());
        // Several downloads in parallel.
        let downloads: Vec<_> = (0..3)
            .map(|_| std::thread::spawn(move || get_on(connect(web), "/big.txt").len()))
            .collect();
        for d in downloads {
            assert_eq!(d.join().unwrap(), first.len(), "{bin}");
        }

        // Nothing listens on 9: kubectl reports the agent's error.
        let mut refused = connect(closed);
        refused
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut nothing = Vec::new();
        let _ = refused.read_to_end(&mut nothing);
        assert!(nothing.is_empty(), "{bin}");
        assert!(
            crate::harness::eventually(Duration::from_secs(10), || forward
                .stderr()
                .contains("error forwarding port 9 to pod ")),
            "{bin}: {}",
            forward.stderr()
        );
        let err = forward.stderr();
        assert!(err.contains("connect: connection refused"), "{bin}: {err}");
        // kubectl (client-go ≥ 1.28, against a kubelet too) ends the whole forward after an
        // error on one of its connections, with the agent's message: a new one still reaches
        // the pod.
        assert!(
            crate::harness::eventually(Duration::from_secs(10), || !forward.alive()),
            "{bin} kept running: {err}"
        );
        assert!(
            forward.stderr().contains("lost connection to pod"),
            "{}",
            forward.stderr()
        );
        forward = Forward::start(&server, bin, "pod/web", &[8080]);
        let again = get_on(connect(forward.ports[0]), "/index.html");
        assert!(
            again.ends_with("hello over the pod network\n"),
            "{bin}: {again}"
        );
        drop(forward);
    }

    // 1.33 used the WebSocket tunnel, 1.29 plain SPDY.
    let log = server.log_text();
    assert!(
        log.contains("websocket=true"),
        "no WebSocket session in the log"
    );
    assert!(
        log.contains("websocket=false"),
        "no SPDY session in the log"
    );

    // A Wasm pod has no network to forward to.
    let out = server.kubectl(KUBECTL_133, &["port-forward", "pod/wasm", "8081:80"]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no network of their own to forward ports to"),
        "{err}"
    );
}
