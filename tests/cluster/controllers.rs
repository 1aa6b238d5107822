//! The controllers as a separate process: `keelson server --disable-controllers` plus
//! `keelson controller-manager --kubeconfig`, so every controller request crosses the network
//! like an external component's; and leader election between two managers and between two
//! standalone schedulers.

use std::time::{Duration, Instant};

use crate::harness::{eventually, ok, Component, Server, KUBECTL_133};

fn has_default_sa(server: &Server, ns: &str) -> bool {
    server
        .kubectl(KUBECTL_133, &["get", "sa", "default", "-n", ns])
        .status
        .success()
}

fn lease_holder(server: &Server) -> String {
    holder_of(server, "kube-controller-manager")
}

/// The holder identity of Lease `kube-system/<lease>` (`<hostname>_<pid>_<random>`).
pub(crate) fn holder_of(server: &Server, lease: &str) -> String {
    let out = server.kubectl(
        KUBECTL_133,
        &[
            "get",
            "lease",
            lease,
            "-n",
            "kube-system",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn controller_manager_over_the_network() {
    let server = Server::start_with_args(&["--disable-controllers"]);
    ok(server.kubectl(KUBECTL_133, &["create", "namespace", "early"]));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !has_default_sa(&server, "early"),
        "no controller runs in the server with --disable-controllers"
    );

    let _manager = Component::start(&server, &["controller-manager"]);
    // ServiceAccounts: for the namespace made before the manager started, and a new one.
    assert!(eventually(Duration::from_secs(20), || has_default_sa(
        &server, "early"
    )));
    ok(server.kubectl(KUBECTL_133, &["create", "namespace", "later"]));
    assert!(eventually(Duration::from_secs(10), || has_default_sa(
        &server, "later"
    )));

    // Cascading deletion: a dependent goes with its owner (Background) …
    ok(server.kubectl(
        KUBECTL_133,
        &["create", "configmap", "owner", "-n", "later"],
    ));
    let uid = ok(server.kubectl(
        KUBECTL_133,
        &[
            "get",
            "cm",
            "owner",
            "-n",
            "later",
            "-o",
            "jsonpath={.metadata.uid}",
        ],
    ));
    let dependent = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"dependent","namespace":"later","ownerReferences":[{{"apiVersion":"v1","kind":"ConfigMap","name":"owner","uid":"{uid}"}}]}}}}"#
    );
    ok(server.kubectl_stdin(KUBECTL_133, &["create", "-f", "-"], &dependent));
    ok(server.kubectl(KUBECTL_133, &["delete", "cm", "owner", "-n", "later"]));
    assert!(eventually(Duration::from_secs(15), || {
        !server
            .kubectl(KUBECTL_133, &["get", "cm", "dependent", "-n", "later"])
            .status
            .success()
    }));
    // … and a Deployment deleted in the foreground waits for nothing left behind.
    ok(server.kubectl(
        KUBECTL_133,
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "-n",
            "later",
        ],
    ));
    ok(server.kubectl(
        KUBECTL_133,
        &[
            "delete",
            "deployment",
            "web",
            "-n",
            "later",
            "--cascade=foreground",
            "--timeout=20s",
        ],
    ));

    // Namespace deletion: contents removed, then the namespace finalized.
    ok(server.kubectl(
        KUBECTL_133,
        &["create", "configmap", "leftover", "-n", "early"],
    ));
    ok(server.kubectl(
        KUBECTL_133,
        &["delete", "namespace", "early", "--wait", "--timeout=30s"],
    ));
    let left = server.kubectl(KUBECTL_133, &["get", "namespace", "early"]);
    assert!(!left.status.success(), "namespace early is gone");
}

#[test]
fn two_managers_one_leader_and_handover() {
    let server = Server::start_with_args(&["--disable-controllers"]);
    let timing = [
        "controller-manager",
        "--leader-elect-lease-duration=6",
        "--leader-elect-renew-deadline=4",
        "--leader-elect-retry-period=1",
    ];
    let mut a = Component::start(&server, &timing);
    let mut b = Component::start(&server, &timing);
    assert!(eventually(Duration::from_secs(20), || !lease_holder(
        &server
    )
    .is_empty()));
    let holder = lease_holder(&server);
    let (leader, follower) = if holder.contains(&format!("_{}_", a.pid())) {
        (&mut a, &mut b)
    } else {
        assert!(
            holder.contains(&format!("_{}_", b.pid())),
            "holder {holder} is one of the two managers"
        );
        (&mut b, &mut a)
    };
    ok(server.kubectl(KUBECTL_133, &["create", "namespace", "one"]));
    assert!(eventually(Duration::from_secs(10), || has_default_sa(
        &server, "one"
    )));
    assert!(
        !follower.log_text().contains("became leader"),
        "only the Lease holder acts; follower log:\n{}",
        follower.log_text()
    );

    let killed = Instant::now();
    leader.kill();
    let follower_pid = format!("_{}_", follower.pid());
    assert!(
        eventually(Duration::from_secs(15), || lease_holder(&server)
            .contains(&follower_pid)),
        "the follower took over within 15 s of the leader's death"
    );
    let handover = killed.elapsed();
    ok(server.kubectl(KUBECTL_133, &["create", "namespace", "two"]));
    assert!(eventually(Duration::from_secs(10), || has_default_sa(
        &server, "two"
    )));
    eprintln!("leader handover took {handover:?}");
}

fn pod_node(server: &Server, pod: &str) -> String {
    let out = server.kubectl(
        KUBECTL_133,
        &["get", "pod", pod, "-o", "jsonpath={.spec.nodeName}"],
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn standalone_schedulers_elect_one_leader() {
    let server = Server::start();
    let _nodes = Component::start(&server, &["sim", "nodes", "1", "--name-prefix", "elect-"]);
    let timing = [
        "scheduler",
        "--leader-elect-lease-duration=6",
        "--leader-elect-renew-deadline=4",
        "--leader-elect-retry-period=1",
    ];
    let mut a = Component::start(&server, &timing);
    let mut b = Component::start(&server, &timing);
    assert!(eventually(Duration::from_secs(20), || !holder_of(
        &server,
        "kube-scheduler"
    )
    .is_empty()));
    let holder = holder_of(&server, "kube-scheduler");
    let (leader, follower) = if holder.contains(&format!("_{}_", a.pid())) {
        (&mut a, &mut b)
    } else {
        assert!(
            holder.contains(&format!("_{}_", b.pid())),
            "holder {holder}"
        );
        (&mut b, &mut a)
    };
    ok(server.kubectl(KUBECTL_133, &["run", "first", "--image=nginx:1.27"]));
    assert!(eventually(Duration::from_secs(20), || pod_node(
        &server, "first"
    ) == "elect-0"));
    leader.kill();
    let follower_pid = format!("_{}_", follower.pid());
    assert!(eventually(Duration::from_secs(15), || {
        holder_of(&server, "kube-scheduler").contains(&follower_pid)
    }));
    ok(server.kubectl(KUBECTL_133, &["run", "second", "--image=nginx:1.27"]));
    assert!(eventually(Duration::from_secs(20), || pod_node(
        &server, "second"
    ) == "elect-0"));
}
