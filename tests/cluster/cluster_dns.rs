//! Cluster DNS from a pod, through the `kube-dns` Service (10.43.0.10) and the agent's
//! proxy, inside namespaces the test makes: `keelson dns` publishes itself as kube-dns's
//! endpoint; the pod's resolv.conf is the kubelet's for `dnsPolicy: ClusterFirst`, so glibc's
//! resolver (`getent`) applies the search path: `web` and `web.default.svc.cluster.local`
//! resolve, reverse lookups name the Service, SRV and headless records list the endpoints,
//! and an outside name is forwarded to a resolver the test runs, then served from the cache.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::harness::{eventually, ok, Server, KUBECTL_133};
use crate::netns::{api_relay, Agent, Netns, Topology, NODE_IP};

const OBJECTS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  ports: [{name: sql, port: 5432}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-1
  labels: {kubernetes.io/service-name: db}
addressType: IPv4
ports: [{name: sql, port: 5432, protocol: TCP}]
endpoints:
- {addresses: ["10.42.0.10"], hostname: db-0, conditions: {ready: true}}
- {addresses: ["10.42.0.11"], conditions: {ready: true}}
- {addresses: ["10.42.0.12"], conditions: {ready: false}}
"#;

/// A resolver "outside" the cluster, on loopback in the node namespace: `outside.example`
/// is 203.0.113.7, everything else NXDOMAIN. Counts the queries it gets.
fn upstream(ns: &Netns, queries: Arc<AtomicUsize>) -> crate::netns::Serving {
    let socket = ns.enter(|| UdpSocket::bind("127.0.0.1:5300").unwrap());
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while !flag.load(Ordering::SeqCst) {
            let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                continue;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            queries.fetch_add(1, Ordering::SeqCst);
            let mut m = Message::response(q.metadata.id, OpCode::Query);
            m.metadata.recursion_available = true;
            m.queries = q.queries.clone();
            let question = &q.queries[0];
            if question.name().to_ascii().to_lowercase() == "outside.example." {
                if question.query_type() == RecordType::A {
                    m.answers.push(Record::from_rdata(
                        question.name().clone(),
                        60,
                        RData::A("203.0.113.7".parse::<std::net::Ipv4Addr>().unwrap().into()),
                    ));
                }
            } else {
                m.metadata.response_code = ResponseCode::NXDomain;
            }
            let _ = socket.send_to(&m.to_vec().unwrap(), peer);
        }
    });
    crate::netns::Serving::new(stop)
}

/// Asks 10.43.0.10 from `ns`, over UDP.
fn query(ns: &Netns, name: &str, t: RecordType) -> Message {
    let bytes = question(name, t);
    ns.enter(move || ask(&bytes, "10.43.0.10:53".parse().unwrap()))
        .expect("DNS answer")
}

/// One UDP question to `dns`; `None` when nothing answers within 2 s.
fn ask(bytes: &[u8], dns: SocketAddr) -> Option<Message> {
    let s = UdpSocket::bind("0.0.0.0:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.send_to(bytes, dns).ok()?;
    let mut buf = [0u8; 4096];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    Message::from_vec(&buf[..n]).ok()
}

fn question(name: &str, t: RecordType) -> Vec<u8> {
    let mut m = Message::new(4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.queries.push(hickory_proto::op::Query::query(
        Name::from_str(name).unwrap(),
        t,
    ));
    m.to_vec().unwrap()
}

fn data(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
    v.sort();
    v
}

/// `getent hosts <name>` in `ns` (glibc's resolver with the namespace's resolv.conf).
fn getent(ns: &Netns, name: &str) -> String {
    let out = ns.exec(&["getent", "hosts", name]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
#[ignore = "needs root, ip netns and nft (tools/test.sh installs nftables)"]
fn cluster_dns_through_kube_dns_with_search_path_srv_headless_ptr_and_forwarding() {
    let server = Server::start();
    let mut topo = Topology::new();
    topo.pod("client", "10.42.0.20");
    let _relay = api_relay(&topo.node, server.port);
    let upstream_queries = Arc::new(AtomicUsize::new(0));
    let _upstream = upstream(&topo.node, upstream_queries.clone());
    let _agent = Agent::start(&server, &topo.node, &[]);
    let dns = Agent::command(
        &server,
        &topo.node,
        &[
            "dns",
            "--listen",
            &format!("{NODE_IP}:53"),
            "--dns-upstream",
            "127.0.0.1:5300",
            "--node-name",
            "knode",
        ],
    );
    ok(server.kubectl_stdin(KUBECTL_133, &["apply", "-f", "-"], OBJECTS));
    // The pod's resolv.conf as the kubelet writes it; `ip netns exec` mounts it over
    // /etc/resolv.conf.
    let pod = Pod {
        metadata: ObjectMeta {
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(PodSpec::default()),
        status: None,
    };
    let dns_ip: IpAddr = "10.43.0.10".parse().unwrap();
    let resolv = keelson_kubelet::dns::resolv_conf(&pod, &[dns_ip], "cluster.local", "");
    let client = topo.ns("client");
    let dir = format!("/etc/netns/{}", client.name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(format!("{dir}/resolv.conf"), &resolv).unwrap();

    let kube_dns = ok(server.kubectl(
        KUBECTL_133,
        &[
            "get",
            "svc",
            "-n",
            "kube-system",
            "kube-dns",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
    ));
    assert_eq!(kube_dns, "10.43.0.10");
    let web_ip = ok(server.kubectl(
        KUBECTL_133,
        &["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"],
    ));
    // Short name through the search path, and the full name.
    let resolved = eventually(Duration::from_secs(30), || {
        getent(client, "web") == format!("{web_ip} web.default.svc.cluster.local")
    });
    assert!(
        resolved,
        "getent hosts web: {:?}\n{}\n{}",
        getent(client, "web"),
        topo.node.nft_table(),
        dns.log_text()
    );
    assert!(getent(client, "web.default.svc.cluster.local").starts_with(&web_ip));
    assert!(getent(client, "web.default").starts_with(&web_ip));
    // Reverse lookup of the ClusterIP names the Service.
    assert!(
        getent(client, &web_ip).ends_with("web.default.svc.cluster.local"),
        "{}",
        getent(client, &web_ip)
    );
    // SRV of a named port.
    let srv = query(
        client,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(data(&srv), vec!["0 100 80 web.default.svc.cluster.local."]);
    assert!(srv.metadata.authoritative);
    // Headless: the ready endpoints, by hostname or dashed address, and their SRV records.
    let a = query(client, "db.default.svc.cluster.local.", RecordType::A);
    assert_eq!(data(&a), vec!["10.42.0.10", "10.42.0.11"]);
    assert!(getent(client, "db-0.db").starts_with("10.42.0.10"));
    let srv = query(
        client,
        "_sql._tcp.db.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(
        data(&srv),
        vec![
            "0 100 5432 10-42-0-11.db.default.svc.cluster.local.",
            "0 100 5432 db-0.db.default.svc.cluster.local."
        ]
    );
    let missing = query(client, "nope.default.svc.cluster.local.", RecordType::A);
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    // An outside name goes to the upstream once, then comes from the cache.
    assert_eq!(
        getent(client, "outside.example"),
        "203.0.113.7 outside.example"
    );
    let asked = upstream_queries.load(Ordering::SeqCst);
    assert!(asked >= 1);
    let again = query(client, "outside.example.", RecordType::A);
    assert_eq!(data(&again), vec!["203.0.113.7"]);
    assert_eq!(again.metadata.id, 4242);
    assert_eq!(upstream_queries.load(Ordering::SeqCst), asked, "not cached");
    // A new Service resolves within a second or two of its creation.
    ok(server.kubectl_stdin(
        KUBECTL_133,
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Service\nmetadata: {name: late}\nspec:\n  ports: [{port: 81}]\n",
    ));
    let started = std::time::Instant::now();
    assert!(eventually(Duration::from_secs(5), || !query(
        client,
        "late.default.svc.cluster.local.",
        RecordType::A
    )
    .answers
    .is_empty()));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn in_process_dns_of_keelson_server_answers_under_its_own_identity() {
    // Loopback only: the server's DNS answers on 127.0.0.1; no rules, no forwarding.
    let port = crate::harness::free_port();
    let listen = format!("127.0.0.1:{port}");
    let server = Server::start_with_args(&[
        "--cluster-dns-listen",
        &listen,
        "--dns-upstream",
        "127.0.0.1:9",
    ]);
    let dns: SocketAddr = listen.parse().unwrap();
    let bytes = question("kubernetes.default.svc.cluster.local.", RecordType::A);
    let answered = eventually(Duration::from_secs(20), || {
        ask(&bytes, dns).is_some_and(|m| data(&m) == vec!["10.43.0.1".to_string()])
    });
    assert!(answered, "{}", server.log_text());
    let slice = ok(server.kubectl(
        KUBECTL_133,
        &[
            "get",
            "endpointslices",
            "-n",
            "kube-system",
            "-l",
            "kubernetes.io/service-name=kube-dns",
            "-o",
            "jsonpath={.items[*].endpoints[*].addresses[*]}",
        ],
    ));
    assert_eq!(slice, "127.0.0.1");
    let kube_dns = data(
        &ask(
            &question("kube-dns.kube-system.svc.cluster.local.", RecordType::A),
            dns,
        )
        .unwrap(),
    );
    assert_eq!(kube_dns, vec!["10.43.0.10"]);
}
