//! `keelson bench dns`: the cluster DNS server on one core (a current-thread runtime) on
//! loopback, answering from its cache (outside names forwarded once to a stub upstream the
//! benchmark runs) and from the cluster zone (1,000 Services), with a client keeping a
//! window of queries in flight. The baseline, measured in the same run, is the same client
//! against the stub upstream itself: a responder that only flips the query into an answer,
//! the floor of what a UDP round trip costs on this machine.

use std::net::{SocketAddr, UdpSocket};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The design target: answers per second from the cache on one core.
const QPS_TARGET: f64 = 50_000.0;

/// Flags of `keelson bench dns`.
#[derive(Args, Debug)]
pub(crate) struct DnsBench {
    /// Queries per measurement.
    #[arg(long, default_value_t = 200_000)]
    queries: usize,
    /// Queries in flight.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Distinct outside names in the cache.
    #[arg(long, default_value_t = 1000)]
    names: usize,
}

fn query_bytes(name: &str, id: u16) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.queries.push(Query::query(
        Name::from_str(name).expect("name"),
        RecordType::A,
    ));
    m.to_vec().expect("encode")
}

/// A stub resolver answering every A query with 192.0.2.1 (TTL 300), on its own thread.
fn stub_upstream(stop: Arc<AtomicBool>) -> std::io::Result<SocketAddr> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let addr = socket.local_addr()?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                continue;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut m = Message::response(q.metadata.id, OpCode::Query);
            m.queries = q.queries.clone();
            if let Some(question) = q.queries.first() {
                m.answers.push(Record::from_rdata(
                    question.name().clone(),
                    300,
                    RData::A(std::net::Ipv4Addr::new(192, 0, 2, 1).into()),
                ));
            }
            if let Ok(bytes) = m.to_vec() {
                let _ = socket.send_to(&bytes, peer);
            }
        }
    });
    Ok(addr)
}

/// Sends `total` queries (cycling over `names`) to `server` with `window` in flight; returns
/// answers per second and the latencies in microseconds.
fn load(server: SocketAddr, names: &[String], total: usize, window: usize) -> (f64, Vec<f64>) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    socket.connect(server).expect("connect");
    let queries: Vec<Vec<u8>> = (0..names.len().min(4096))
        .map(|i| query_bytes(&names[i % names.len()], i as u16))
        .collect();
    let mut sent_at = vec![Instant::now(); 65_536];
    let mut latencies = Vec::with_capacity(total);
    let started = Instant::now();
    let mut sent = 0usize;
    let mut buf = [0u8; 1500];
    let send = |sent: usize, sent_at: &mut Vec<Instant>| {
        let mut q = queries[sent % queries.len()].clone();
        let id = (sent % 65_536) as u16;
        q[..2].copy_from_slice(&id.to_be_bytes());
        sent_at[id as usize] = Instant::now();
        let _ = socket.send(&q);
    };
    while sent < window.min(total) {
        send(sent, &mut sent_at);
        sent += 1;
    }
    while latencies.len() < total {
        match socket.recv(&mut buf) {
            Ok(n) if n >= 2 => {
                let id = u16::from_be_bytes([buf[0], buf[1]]);
                latencies.push(sent_at[id as usize].elapsed().as_secs_f64() * 1e6);
                if sent < total {
                    send(sent, &mut sent_at);
                    sent += 1;
                }
            }
            _ => {
                // A lost datagram: count it as answered late and refill the window.
                latencies.push(500_000.0);
                if sent < total {
                    send(sent, &mut sent_at);
                    sent += 1;
                }
            }
        }
    }
    (total as f64 / started.elapsed().as_secs_f64(), latencies)
}

fn p(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

impl DnsBench {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = stub_upstream(stop.clone())?;
        let resolver = keelson_dns::Resolver::new(vec![upstream]);
        let services: Vec<Service> = (0..1000)
            .map(|i| Service {
                metadata: ObjectMeta {
                    name: Some(format!("svc-{i}")),
                    namespace: Some(format!("ns-{}", i % 10)),
                    ..Default::default()
                },
                spec: Some(ServiceSpec {
                    cluster_ip: Some(format!("10.43.{}.{}", 1 + i / 250, 1 + i % 250)),
                    ports: Some(vec![ServicePort {
                        name: Some("http".into()),
                        port: 80,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                status: None,
            })
            .collect();
        resolver.set_zone(keelson_dns::Zone::build("cluster.local", &services, []));
        // The server on one core of its own.
        let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let server = socket.local_addr()?;
        socket.set_nonblocking(true)?;
        let serving = resolver.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async move {
                    if let Ok(socket) = tokio::net::UdpSocket::from_std(socket) {
                        let _ = keelson_dns::serve_udp(Arc::new(socket), serving).await;
                    }
                });
            }
        });
        let outside: Vec<String> = (0..self.names)
            .map(|i| format!("host-{i}.example.com."))
            .collect();
        let cluster: Vec<String> = (0..1000)
            .map(|i| format!("svc-{i}.ns-{}.svc.cluster.local.", i % 10))
            .collect();
        let (queries, window) = (self.queries, self.window);
        let results = tokio::task::spawn_blocking(move || {
            // Fill the cache (one forward per name), then measure.
            let _ = load(server, &outside, outside.len(), 8);
            let cached = load(server, &outside, queries, window);
            let zone = load(server, &cluster, queries, window);
            let baseline = load(upstream, &outside, queries / 4, window);
            (cached, zone, baseline)
        })
        .await?;
        stop.store(true, Ordering::Relaxed);
        let ((cq, mut cl), (zq, mut zl), (bq, mut bl)) = results;
        println!(
            "dns: {} queries each, {} in flight, server on one core (current-thread runtime)",
            self.queries, self.window
        );
        println!(
            "  cached outside names: {cq:.0} answers/s, p50 {:.0} µs, p99 {:.0} µs (target ≥ {QPS_TARGET:.0}/s: {})",
            p(&mut cl, 0.5),
            p(&mut cl, 0.99),
            if cq >= QPS_TARGET { "met" } else { "MISSED" }
        );
        println!(
            "  cluster.local names (1,000 Services): {zq:.0} answers/s, p50 {:.0} µs, p99 {:.0} µs",
            p(&mut zl, 0.5),
            p(&mut zl, 0.99)
        );
        println!(
            "  baseline, stub responder (no lookup, blocking thread): {bq:.0} answers/s, p99 {:.0} µs; cache/baseline {:.2}",
            p(&mut bl, 0.99),
            cq / bq
        );
        Ok(())
    }
}
