//! `kubectl attach` and `kubectl run -it --rm` against containerd pods (see
//! [`crate::containerd`] for what the suite needs): output from the moment of attaching until
//! the container ends, stdin with `stdinOnce`, and a terminal of the client's size.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{eventually, KUBECTL_133};
use crate::kubelet::{apply, wait_for, wait_running};
use crate::local_containerd::containerd_cluster;

#[test]
#[ignore = "needs containerd, runc, CNI plugins and root (tools/test.sh installs them)"]
fn attach_streams_output_feeds_stdin_and_gives_a_terminal() {
    let (_containerd, server) = containerd_cluster(5);
    apply(
        &server,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: ticker}
spec:
  restartPolicy: Never
  containers:
  - {name: main, image: busybox:test, imagePullPolicy: Never,
     command: ["sh", "-c", "sleep 2; for i in 1 2 3; do echo tick $i; sleep 1; done"]}
---
apiVersion: v1
kind: Pod
metadata: {name: reader}
spec:
  restartPolicy: Never
  containers:
  - {name: main, image: busybox:test, imagePullPolicy: Never, stdin: true, stdinOnce: true,
     command: ["sh", "-c", "while read l; do echo got $l; done; echo eof"]}
"#,
    );
    wait_running(&server, &["ticker", "reader"]);
    // Output from the moment of attaching until the container ends.
    let out = server.kubectl(KUBECTL_133, &["attach", "ticker"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("tick 3"), "{out:?}");
    // stdin reaches the process; with stdinOnce, the client's end of stdin is the process'.
    let out = server.kubectl_stdin(KUBECTL_133, &["attach", "-i", "reader"], "one\ntwo\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("got one\ngot two\neof"), "{out:?}");
    wait_for(
        &server,
        "reader",
        "{.status.phase}",
        "Succeeded",
        Duration::from_secs(30),
    );

    // `kubectl run -it --rm`: a terminal of the client's size, typed input, then the pod goes.
    let home = server.dir.path().join("home");
    let run = format!(
        "stty rows 21 cols 77; {KUBECTL_133} run shell --image=busybox:test \
         --image-pull-policy=Never --restart=Never -i --tty --rm -- sh -c 'sleep 1; tty; stty size; read x; echo got $x'"
    );
    // script(1) gives kubectl a terminal and types what it reads from its own stdin.
    let mut child = Command::new("script")
        .args(["-qec", &run, "/dev/null"])
        .env("KUBECONFIG", server.kubeconfig())
        .env("HOME", &home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut typing = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_secs(6));
    typing.write_all(b"typed\n").unwrap();
    let out = child.wait_with_output().unwrap();
    drop(typing);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/"), "{out:?}");
    assert!(text.contains("21 77"), "{out:?}");
    assert!(text.contains("got typed"), "{out:?}");
    assert!(
        eventually(Duration::from_secs(30), || {
            !server
                .kubectl(KUBECTL_133, &["get", "pod", "shell"])
                .status
                .success()
        }),
        "--rm deletes the pod"
    );
}
