//! `keelson bench proxy`: rule sync time of the service proxy for N Services × M endpoints,
//! in a network namespace the benchmark makes (rules never touch the host's own): the first
//! full sync, a one-endpoint change applied as a diff, and — the baseline, measured in the
//! same run — the same change applied as a full table replacement, which is what a proxy
//! that rewrites everything per change (iptables-restore style) pays. Also the cost of the
//! once-a-second "was the table flushed?" check and the memory the proxy's state takes.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The design target for a one-endpoint change at 1,000 Services × 10 endpoints.
const ONE_CHANGE_TARGET_MS: f64 = 50.0;

/// Flags of `keelson bench proxy`.
#[derive(Args, Debug)]
pub(crate) struct ProxyBench {
    /// Services (each with one TCP port and a NodePort).
    #[arg(long, default_value_t = 1000)]
    services: usize,
    /// Ready endpoints per Service.
    #[arg(long, default_value_t = 10)]
    endpoints: usize,
    /// One-endpoint changes to time.
    #[arg(long, default_value_t = 30)]
    changes: usize,
}

/// Deletes the benchmark's namespace.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .output();
    }
}

fn service(i: usize) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(format!("svc-{i}")),
            namespace: Some(format!("ns-{}", i % 10)),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some(format!("10.43.{}.{}", 1 + i / 250, 1 + i % 250)),
            type_: Some("NodePort".into()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                node_port: Some(30000 + i as i32),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

fn slice(i: usize, endpoints: usize, generation: usize) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("svc-{i}-1")),
            namespace: Some(format!("ns-{}", i % 10)),
            labels: Some(
                [(
                    keelson_proxy::SERVICE_NAME_LABEL.to_string(),
                    format!("svc-{i}"),
                )]
                .into(),
            ),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: (0..endpoints)
            .map(|e| {
                // The last endpoint moves with each generation.
                let n = i * endpoints
                    + e
                    + if e + 1 == endpoints {
                        generation * 7919
                    } else {
                        0
                    };
                Endpoint {
                    addresses: vec![format!(
                        "10.{}.{}.{}",
                        42 + n / 65_000 % 20,
                        n / 250 % 250,
                        1 + n % 250
                    )],
                    conditions: Some(EndpointConditions {
                        ready: Some(true),
                        serving: Some(true),
                        terminating: Some(false),
                    }),
                    node_name: Some("bench".into()),
                    ..Default::default()
                }
            })
            .collect(),
        ports: Some(vec![EndpointPort {
            name: Some("http".into()),
            port: Some(8080),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

impl ProxyBench {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let ns = Netns(format!("keelson-bench-proxy-{}", std::process::id()));
        let out = std::process::Command::new("ip")
            .args(["netns", "add", &ns.0])
            .output()
            .context("running ip netns add (needs root and iproute2)")?;
        anyhow::ensure!(
            out.status.success(),
            "ip netns add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let nft = keelson_proxy::Nft::with_argv(
            ["ip", "netns", "exec", &ns.0, "nft"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        );
        let node = keelson_proxy::Node {
            name: "bench".into(),
            ips: vec!["192.168.255.1".parse()?],
            cluster_cidr: Some("10.42.0.0/16".into()),
            network_policy: false,
        };
        let rss_before = super::kubelet::rss_mib();
        let services: Vec<Service> = (0..self.services).map(service).collect();
        let mut slices: Vec<EndpointSlice> = (0..self.services)
            .map(|i| slice(i, self.endpoints, 0))
            .collect();

        let started = Instant::now();
        let full = keelson_proxy::build(&services, &slices, &node);
        let build_full = started.elapsed();
        let script = full.full_script();
        let render_full = started.elapsed() - build_full;
        let apply_started = Instant::now();
        nft.apply(&script).await?;
        let apply_full = apply_started.elapsed();
        let rss_after = super::kubelet::rss_mib();
        println!(
            "proxy: {} Services × {} endpoints = {} chains, {} script lines",
            self.services,
            self.endpoints,
            full.chains.len(),
            script.lines().count()
        );
        println!(
            "  full sync: {:.0} ms (build {:.1} ms, render {:.1} ms, nft {:.0} ms)",
            ms(build_full + render_full + apply_full),
            ms(build_full),
            ms(render_full),
            ms(apply_full)
        );

        let mut applied = full;
        let mut diff_ms = Vec::new();
        let mut compute_ms = Vec::new();
        let mut full_ms = Vec::new();
        for g in 1..=self.changes {
            let i = (g * 37) % self.services;
            slices[i] = slice(i, self.endpoints, g);
            let t = Instant::now();
            let desired = keelson_proxy::build(&services, &slices, &node);
            let script = desired.diff_script(&applied);
            compute_ms.push(ms(t.elapsed()));
            nft.apply(&script).await?;
            diff_ms.push(ms(t.elapsed()));
            // Baseline: the same change as a whole-table replacement.
            let i = (g * 53 + 1) % self.services;
            slices[i] = slice(i, self.endpoints, g);
            let t = Instant::now();
            let desired = keelson_proxy::build(&services, &slices, &node);
            nft.apply(&desired.full_script()).await?;
            full_ms.push(ms(t.elapsed()));
            applied = desired;
        }
        let (d50, d99) = (
            percentile(&mut diff_ms, 0.5),
            percentile(&mut diff_ms, 0.99),
        );
        let (f50, f99) = (
            percentile(&mut full_ms, 0.5),
            percentile(&mut full_ms, 0.99),
        );
        println!(
            "  one-endpoint change, diff transaction: p50 {d50:.1} ms, p99 {d99:.1} ms (target ≤ {ONE_CHANGE_TARGET_MS:.0} ms: {}); of which rebuilding and diffing the rules p50 {:.1} ms, the rest is nft",
            if d99 <= ONE_CHANGE_TARGET_MS { "met" } else { "MISSED" },
            percentile(&mut compute_ms, 0.5)
        );
        println!(
            "  baseline, same change as a full replacement: p50 {f50:.0} ms, p99 {f99:.0} ms ({:.1}× the diff at p50)",
            f50 / d50
        );
        let mut noop = Vec::new();
        for _ in 0..10 {
            let t = Instant::now();
            nft.apply(&format!("add table ip {}\n", keelson_proxy::TABLE))
                .await?;
            noop.push(ms(t.elapsed()));
        }
        println!(
            "  floor: an empty nft transaction (process start, netlink, commit) p50 {:.1} ms",
            percentile(&mut noop, 0.5)
        );
        let t = Instant::now();
        let intact = nft.intact(false).await?;
        let quick = t.elapsed();
        let t = Instant::now();
        let intact = intact && nft.intact(true).await?;
        anyhow::ensure!(intact, "table not intact after the syncs");
        println!(
            "  outside-change checks: quick (canary set, every second) {:.1} ms, thorough (dispatch chain, every 5 s) {:.1} ms",
            ms(quick),
            ms(t.elapsed())
        );
        println!(
            "  memory of the objects and rule state: {:.1} MiB RSS growth ({rss_before:.0} → {rss_after:.0} MiB)",
            rss_after - rss_before
        );
        Ok(())
    }
}
