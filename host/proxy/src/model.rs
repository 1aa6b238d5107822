//! From Services and EndpointSlices to the [`Ruleset`] Kubernetes' nftables proxier would
//! write (pkg/proxy/nftables): the `service-ips` and `service-nodeports` verdict maps send a
//! packet to its service port's chain, which picks an endpoint with `numgen random mod N`
//! (or the client's remembered endpoint under `sessionAffinity: ClientIP`); an endpoint's
//! chain DNATs. Service ports without usable endpoints go to `no-endpoint-services` /
//! `no-endpoint-nodeports`, checked before NAT, which reject (or drop, when endpoints exist
//! but none is local under a `Local` traffic policy).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use sha2::{Digest, Sha256};

use crate::ruleset::Ruleset;

/// The node the rules are for.
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// Its Node name (for `Local` traffic policies).
    pub name: String,
    /// The addresses NodePorts answer on; empty = every local address but loopback.
    pub ips: Vec<Ipv4Addr>,
    /// The pod network; traffic to a ClusterIP from outside it is masqueraded.
    pub cluster_cidr: Option<String>,
    /// Whether to enforce NetworkPolicies (watching Pods, Namespaces and policies).
    pub network_policy: bool,
}

/// Marks a packet for masquerading in `masquerading` (postrouting). Written inline rather
/// than as a jump to a shared chain: a rule without jumps or gotos spares the kernel a walk
/// over every chain reachable from the hooks when it is added, which keeps a one-endpoint
/// change cheap in a big table.
const MARK: &str = "meta mark set meta mark | 0x4000";

/// The label linking an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One usable endpoint of a service port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Endpoint {
    ip: Ipv4Addr,
    port: i32,
    local: bool,
}

/// The fixed chains' rules for `node`.
fn base(node: &Node) -> BTreeMap<String, Vec<String>> {
    let nodeport_match = if node.ips.is_empty() {
        "fib daddr type local ip daddr != 127.0.0.0/8".to_string()
    } else {
        "ip daddr @nodeport-ips".to_string()
    };
    let mut b = BTreeMap::new();
    let mut add = |name: &str, rules: Vec<String>| {
        b.insert(name.to_string(), rules);
    };
    add("nat-prerouting", vec!["jump services".into()]);
    add("nat-output", vec!["jump services".into()]);
    add("nat-postrouting", vec!["jump masquerading".into()]);
    add(
        "filter-prerouting",
        vec!["ct state new jump endpoints-check".into()],
    );
    add(
        "filter-output",
        vec!["ct state new jump endpoints-check".into()],
    );
    add(
        "filter-forward",
        vec!["ct state new jump network-policies".into()],
    );
    add(
        "services",
        vec![
            "ip daddr . meta l4proto . th dport vmap @service-ips".into(),
            format!("{nodeport_match} meta l4proto . th dport vmap @service-nodeports"),
        ],
    );
    add(
        "endpoints-check",
        vec![
            "ip daddr . meta l4proto . th dport vmap @no-endpoint-services".into(),
            format!("{nodeport_match} meta l4proto . th dport vmap @no-endpoint-nodeports"),
        ],
    );
    add(
        "masquerading",
        vec![
            "meta mark & 0x4000 == 0 return".into(),
            "meta mark set meta mark ^ 0x4000".into(),
            "masquerade fully-random".into(),
        ],
    );
    // A TCP reset rather than ICMP for TCP (kube-proxy sends ICMP port-unreachable): the
    // kernel rate-limits ICMP errors per client (net.ipv4.icmp_ratelimit), so a client
    // retrying quickly would see its SYNs go unanswered for a second instead of refused.
    add(
        "reject-chain",
        vec![
            "meta l4proto tcp reject with tcp reset".into(),
            "reject".into(),
        ],
    );
    b
}

/// The chain names of the fixed, unhooked chains (declared with the others in `base`).
pub(crate) const FIXED_CHAINS: &[&str] = &[
    "services",
    "endpoints-check",
    "masquerading",
    "reject-chain",
    "network-policies",
];

/// A short stable hash, as kube-proxy prefixes its chain names (names stay unique and
/// readable: `service-1A2B3C4D-default/web/tcp/http`).
fn hash(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    d.iter().take(4).map(|b| format!("{b:02X}")).collect()
}

fn protocol(p: Option<&str>) -> Option<&'static str> {
    match p.unwrap_or("TCP") {
        "TCP" => Some("tcp"),
        "UDP" => Some("udp"),
        "SCTP" => Some("sctp"),
        _ => None,
    }
}

/// Usable endpoints of `port` of `svc`, from its slices: the ready ones, else (as
/// Kubernetes does while a rollout ends) the serving and terminating ones.
fn endpoints(port: &ServicePort, slices: &[&EndpointSlice], node: &Node) -> Vec<Endpoint> {
    let name = port.name.clone().unwrap_or_default();
    let proto = port.protocol.as_deref().unwrap_or("TCP");
    let mut ready = Vec::new();
    let mut terminating = Vec::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let Some(target) = slice.ports.iter().flatten().find(|p| {
            p.name.clone().unwrap_or_default() == name
                && p.protocol.as_deref().unwrap_or("TCP") == proto
        }) else {
            continue;
        };
        let Some(target_port) = target.port else {
            continue;
        };
        for ep in &slice.endpoints {
            let c = ep.conditions.clone().unwrap_or_default();
            let is_ready = c.ready.unwrap_or(true);
            let serving = c.serving.unwrap_or(is_ready);
            let is_terminating = c.terminating.unwrap_or(false);
            let local = ep.node_name.as_deref() == Some(node.name.as_str());
            for ip in ep.addresses.iter().filter_map(|a| a.parse().ok()) {
                let e = Endpoint {
                    ip,
                    port: target_port,
                    local,
                };
                if is_ready && !is_terminating {
                    ready.push(e);
                } else if serving && is_terminating {
                    terminating.push(e);
                }
            }
        }
    }
    let mut out = if ready.is_empty() { terminating } else { ready };
    out.sort();
    out.dedup_by(|a, b| a.ip == b.ip && a.port == b.port);
    out
}

/// The rule choosing among `chains` (endpoint chains), or `None` when there are none.
fn pick(chains: &[String]) -> Option<String> {
    match chains.len() {
        0 => None,
        1 => Some(format!("goto {}", chains[0])),
        n => Some(format!(
            "numgen random mod {n} vmap {{ {} }}",
            chains
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{i} : goto {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The whole table for these Services and EndpointSlices.
pub fn build<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    node: &Node,
) -> Ruleset {
    let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices {
        let labels = slice.metadata.labels.as_ref();
        if let Some(svc) = labels.and_then(|l| l.get(SERVICE_NAME_LABEL)) {
            let ns = slice.metadata.namespace.clone().unwrap_or_default();
            by_service.entry((ns, svc.clone())).or_default().push(slice);
        }
    }
    let mut r = Ruleset {
        base: base(node),
        ..Default::default()
    };
    for name in FIXED_CHAINS {
        if let Some(rules) = r.base.remove(*name) {
            r.chains.insert(name.to_string(), rules);
        } else {
            r.chains.insert(name.to_string(), Vec::new());
        }
    }
    for ip in &node.ips {
        r.element("nodeport-ips", ip.to_string(), String::new());
    }
    r.element("canary", "127.0.0.1".into(), String::new());
    for svc in services {
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let slices = by_service
            .get(&(ns.clone(), name.clone()))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        service(&mut r, svc, &ns, &name, slices, node);
    }
    r
}

fn service(
    r: &mut Ruleset,
    svc: &Service,
    ns: &str,
    name: &str,
    slices: &[&EndpointSlice],
    node: &Node,
) {
    let Some(spec) = &svc.spec else { return };
    if spec.type_.as_deref() == Some("ExternalName") {
        return;
    }
    let cluster_ip: Option<Ipv4Addr> = spec.cluster_ip.as_deref().and_then(|ip| ip.parse().ok());
    let mut external_ips: Vec<Ipv4Addr> = spec
        .external_ips
        .iter()
        .flatten()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    if spec.type_.as_deref() == Some("LoadBalancer") {
        let ingress = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref());
        external_ips.extend(
            ingress
                .and_then(|lb| lb.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.as_deref()?.parse::<Ipv4Addr>().ok()),
        );
    }
    let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let external_local = spec.external_traffic_policy.as_deref() == Some("Local");
    let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .unwrap_or(10800)
    });
    for port in spec.ports.iter().flatten() {
        let Some(proto) = protocol(port.protocol.as_deref()) else {
            continue;
        };
        let port_name = port.name.clone().unwrap_or_default();
        let id = format!("{ns}/{name}/{proto}/{port_name}");
        let h = hash(&id);
        let eps = endpoints(port, slices, node);
        // With session affinity every endpoint gets a chain that records the client in its
        // affinity set; otherwise the service chain DNATs directly through a numgen map, so
        // a big cluster has one chain and two rules per service port (the kernel checks
        // the reachable rules on every change; per-endpoint chains would make each
        // one-endpoint change cost more with the cluster's size).
        let mut chain_of = BTreeMap::new();
        if let Some(timeout) = affinity {
            for ep in &eps {
                let ep_id = format!("{id}__{}/{}", ep.ip, ep.port);
                let chain = format!("endpoint-{}-{ep_id}", hash(&ep_id));
                let set = format!("affinity-{}", hash(&ep_id));
                r.sets.insert(
                    set.clone(),
                    format!("type ipv4_addr; flags dynamic,timeout; timeout {timeout}s;"),
                );
                let rules = vec![
                    format!("ip saddr {} {MARK}", ep.ip),
                    format!("update @{set} {{ ip saddr }}"),
                    format!("meta l4proto {proto} dnat to {}:{}", ep.ip, ep.port),
                ];
                r.chain(chain.clone(), rules);
                chain_of.insert(ep.clone(), (chain, set));
            }
        }
        let chooser = |local_only: bool| -> (Vec<String>, bool) {
            let chosen: Vec<&Endpoint> = eps.iter().filter(|e| !local_only || e.local).collect();
            if chosen.is_empty() {
                return (Vec::new(), false);
            }
            let mut rules = Vec::new();
            if affinity.is_some() {
                let chains: Vec<String> = chosen.iter().map(|e| chain_of[*e].0.clone()).collect();
                for e in &chosen {
                    let (chain, set) = &chain_of[*e];
                    rules.push(format!("ip saddr @{set} goto {chain}"));
                }
                rules.extend(pick(&chains));
                return (rules, true);
            }
            // Hairpin: a backend reaching itself through the service must be masqueraded
            // (any of the port's backends, as one set lookup).
            let ips: Vec<String> = chosen.iter().map(|e| e.ip.to_string()).collect();
            rules.push(format!("ip saddr {{ {} }} {MARK}", ips.join(", ")));
            rules.push(match chosen.as_slice() {
                [one] => format!("meta l4proto {proto} dnat to {}:{}", one.ip, one.port),
                many => format!(
                    "meta l4proto {proto} dnat to numgen random mod {} map {{ {} }}",
                    many.len(),
                    many.iter()
                        .enumerate()
                        .map(|(i, e)| format!("{i} : {} . {}", e.ip, e.port))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
            (rules, true)
        };
        let service_chain = format!("service-{h}-{id}");
        let (cluster_rules, cluster_has) = chooser(internal_local);
        let verdict_none = if eps.is_empty() {
            "goto reject-chain"
        } else {
            "drop"
        };
        if let Some(cip) = cluster_ip {
            let key = format!("{cip} . {proto} . {}", port.port);
            if cluster_has {
                let mut rules = Vec::new();
                if let Some(cidr) = &node.cluster_cidr {
                    rules.push(format!(
                        "ip daddr {cip} {proto} dport {} ip saddr != {cidr} {MARK}",
                        port.port
                    ));
                }
                rules.extend(cluster_rules);
                r.chain(service_chain.clone(), rules);
                r.element("service-ips", key, format!("goto {service_chain}"));
            } else {
                r.element("no-endpoint-services", key, verdict_none.to_string());
            }
        }
        let node_port = port.node_port.filter(|p| *p > 0 && cluster_ip.is_some());
        if external_ips.is_empty() && node_port.is_none() {
            continue;
        }
        // The external path: NodePorts, externalIPs, load-balancer IPs.
        let external_chain = format!("external-{h}-{id}");
        let mut rules = Vec::new();
        let external_has = if external_local {
            // Kubernetes: traffic from the node itself may still use any endpoint.
            let (local, has) = chooser(true);
            if cluster_has {
                rules.push(format!("fib saddr type local {MARK}"));
                rules.push(format!("fib saddr type local goto {service_chain}"));
            }
            if has {
                rules.extend(local);
            } else {
                rules.push("drop".into());
            }
            has || cluster_has
        } else if cluster_has {
            rules.push(MARK.into());
            rules.push(format!("goto {service_chain}"));
            true
        } else {
            false
        };
        let ext_none = if eps.is_empty() {
            "goto reject-chain"
        } else {
            "drop"
        };
        if external_has {
            r.chain(external_chain.clone(), rules);
        }
        for ip in &external_ips {
            let key = format!("{ip} . {proto} . {}", port.port);
            if external_has {
                r.element("service-ips", key, format!("goto {external_chain}"));
            } else {
                r.element("no-endpoint-services", key, ext_none.to_string());
            }
        }
        if let Some(np) = node_port {
            let key = format!("{proto} . {np}");
            if external_has {
                r.element("service-nodeports", key, format!("goto {external_chain}"));
            } else {
                r.element("no-endpoint-nodeports", key, ext_none.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests;
