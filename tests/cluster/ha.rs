//! HA: three `keelson server`s on one three-member etcd cluster act as one cluster. They
//! share the CA, signing keys and tokens through the store (`--token`), so one kubeconfig works
//! against each; one controller manager and one scheduler lead through their Leases; killing
//! the leading server (SIGKILL) hands both over within the lease duration and a SIGTERM hands
//! over at once; no write a server acknowledged is lost; the survivors still run Deployments to
//! bound pods; and the cluster keeps working when one etcd member dies.

use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::controllers::holder_of;
use crate::harness::{etcd_cluster, eventually, ok, Component, Server, KUBECTL_133};

const TOKEN: &str = "ha-test-cluster-token";
const LEASES: [&str; 2] = ["kube-controller-manager", "kube-scheduler"];

/// kubectl with `kubeconfig_of`'s credentials against `port` (any server of the cluster).
fn kubectl_at(kubeconfig_of: &Server, port: u16, args: &[&str]) -> Output {
    let server = format!("https://127.0.0.1:{port}");
    let mut all = vec!["--server", server.as_str(), "--request-timeout", "10s"];
    all.extend_from_slice(args);
    kubeconfig_of.kubectl(KUBECTL_133, &all)
}

/// The pid in a Lease's holder identity (`<hostname>_<pid>_<random>`), asked of `server`.
fn holder_pid(server: &Server, lease: &str) -> Option<u32> {
    holder_of(server, lease).rsplit('_').nth(1)?.parse().ok()
}

/// Waits until `lease` is held by one of `pids` (asked of `server`); returns the holder and
/// how long it took.
fn wait_holder(server: &Server, lease: &str, pids: &[u32], limit: Duration) -> (u32, Duration) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(pid) = holder_pid(server, lease).filter(|p| pids.contains(p)) {
            return (pid, started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{lease} not held by any of {pids:?} within {limit:?}");
}

#[test]
#[ignore = "needs etcd"]
fn three_servers_on_three_etcd_members_act_as_one_cluster() {
    let etcd = etcd_cluster(3);
    let store = etcd.store_url();
    let flags = ["--token", TOKEN];
    // All three start at once: one publishes the cluster's credentials, the others adopt them.
    let servers: Vec<Server> = std::thread::scope(|scope| {
        let starting: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| Server::start_ha(&store, &flags)))
            .collect();
        starting.into_iter().map(|s| s.join().unwrap()).collect()
    });
    let mut servers = servers;
    // One cluster's credentials everywhere: the first server's kubeconfig works on all.
    for s in &servers[1..] {
        assert_eq!(s.ca_pem(), servers[0].ca_pem(), "one CA");
        assert_eq!(s.token(), servers[0].token(), "one admin token");
    }
    for s in &servers {
        ok(kubectl_at(&servers[0], s.port, &["get", "ns", "default"]));
    }
    // A write through one server is read through the others.
    ok(kubectl_at(
        &servers[1],
        servers[1].port,
        &["create", "configmap", "seen-everywhere"],
    ));
    for s in &servers {
        assert!(eventually(Duration::from_secs(10), || {
            kubectl_at(
                &servers[0],
                s.port,
                &["get", "configmap", "seen-everywhere"],
            )
            .status
            .success()
        }));
    }

    // One leader each for the controller manager and the scheduler.
    let pids: Vec<u32> = servers.iter().map(|s| s.pid()).collect();
    let (cm_leader, _) = wait_holder(&servers[0], LEASES[0], &pids, Duration::from_secs(30));
    wait_holder(&servers[0], LEASES[1], &pids, Duration::from_secs(30));

    // Writers keep creating ConfigMaps through every live server while the leader dies.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let live_ports = Arc::new(Mutex::new(
        servers.iter().map(|s| s.port).collect::<Vec<u16>>(),
    ));
    let kubeconfig_dir = tempfile::tempdir().unwrap();
    let kubeconfig = kubeconfig_dir.path().join("kubeconfig");
    std::fs::copy(servers[0].kubeconfig(), &kubeconfig).unwrap();
    let writer = {
        let (acknowledged, stop, live_ports) =
            (acknowledged.clone(), stop.clone(), live_ports.clone());
        std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let ports = live_ports.lock().unwrap().clone();
                let port = ports[i % ports.len()];
                let name = format!("w-{i}");
                let out = std::process::Command::new(KUBECTL_133)
                    .env("KUBECONFIG", &kubeconfig)
                    .args(["--server", &format!("https://127.0.0.1:{port}")])
                    .args(["--request-timeout", "10s", "create", "configmap", &name])
                    .output()
                    .unwrap();
                if out.status.success() {
                    acknowledged.lock().unwrap().push(name);
                }
                i += 1;
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));

    // SIGKILL the controller manager's leader: the Lease expires and a survivor takes over.
    let victim = servers.iter().position(|s| s.pid() == cm_leader).unwrap();
    let victim_port = servers[victim].port;
    live_ports.lock().unwrap().retain(|p| *p != victim_port);
    servers[victim].kill();
    let mut dead = servers.remove(victim);
    let survivors: Vec<u32> = servers.iter().map(|s| s.pid()).collect();
    let (new_cm, killed_handover) =
        wait_holder(&servers[0], LEASES[0], &survivors, Duration::from_secs(25));
    let (_, killed_sched) =
        wait_holder(&servers[0], LEASES[1], &survivors, Duration::from_secs(25));
    eprintln!("handover after SIGKILL: controller manager {killed_handover:?}, scheduler {killed_sched:?}");
    // Kubernetes' timing: a 15 s lease, renewed and retried every 2 s.
    assert!(
        killed_handover <= Duration::from_secs(17),
        "{killed_handover:?}"
    );

    // SIGTERM the new leader: it gives its Leases up, the last server leads at once.
    let leaving = servers.iter().position(|s| s.pid() == new_cm).unwrap();
    let leaving_port = servers[leaving].port;
    live_ports.lock().unwrap().retain(|p| *p != leaving_port);
    let (clean, _) = servers[leaving].terminate(Duration::from_secs(40));
    assert!(clean, "a terminated server exits cleanly");
    let left = servers.remove(leaving);
    drop(left);
    let last = servers.pop().unwrap();
    let (_, term_handover) = wait_holder(&last, LEASES[0], &[last.pid()], Duration::from_secs(25));
    eprintln!("handover after SIGTERM: {term_handover:?}");
    assert!(term_handover <= Duration::from_secs(5), "{term_handover:?}");
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    // No acknowledged write is lost.
    let listed = ok(kubectl_at(
        &last,
        last.port,
        &[
            "get",
            "configmaps",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
    ));
    let listed: std::collections::HashSet<&str> = listed.split_whitespace().collect();
    let acknowledged = acknowledged.lock().unwrap();
    assert!(
        acknowledged.len() >= 10,
        "writes went on: {}",
        acknowledged.len()
    );
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|n| !listed.contains(n.as_str()))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");

    // The survivor's controller manager and scheduler still run a Deployment to bound pods.
    let _nodes = Component::sim_nodes(&last, &["2"]);
    ok(kubectl_at(
        &last,
        last.port,
        &[
            "create",
            "deployment",
            "after-failover",
            "--image=busybox",
            "--replicas=3",
        ],
    ));
    assert!(
        eventually(Duration::from_secs(60), || {
            let out = kubectl_at(
                &last,
                last.port,
                &[
                    "get",
                    "pods",
                    "-l",
                    "app=after-failover",
                    "-o",
                    "jsonpath={.items[*].spec.nodeName}",
                ],
            );
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .count()
                == 3
        }),
        "pods were not scheduled after the failover"
    );

    // The killed server comes back into the same cluster.
    dead.start_again();
    ok(kubectl_at(
        &last,
        dead.port,
        &["get", "deployment", "after-failover"],
    ));

    // etcd keeps its quorum with one member gone: both servers still read and write.
    let mut etcd = etcd;
    etcd.members[0].kill();
    for (i, port) in [last.port, dead.port].into_iter().enumerate() {
        let name = format!("after-member-loss-{i}");
        assert!(
            eventually(Duration::from_secs(20), || {
                let made = kubectl_at(&last, port, &["create", "configmap", &name]);
                made.status.success()
                    || String::from_utf8_lossy(&made.stderr).contains("AlreadyExists")
            }),
            "no write through :{port} after an etcd member died"
        );
        ok(kubectl_at(&last, port, &["get", "configmap", &name]));
    }
}
