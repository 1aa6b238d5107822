//! NetworkPolicy (`networking.k8s.io/v1`) in the proxy's table, as kube-router does it for
//! k3s: traffic between pods is allowed until a policy selects a pod; then only what one of
//! the policies selecting it allows may reach it (ingress) or leave it (egress). Replies of
//! allowed connections pass (conntrack). Peers are podSelector, namespaceSelector (both
//! together = pods matching in matching namespaces), and ipBlock with `except`; ports by
//! number, range (`endPort`) or name (resolved on the selected pod for ingress, on the peer
//! pods for egress).
//!
//! In the table: the forward hook's `network-policies` chain sends each packet of a new
//! connection (the hook only sends those) through the `egress-isolated` map (source pod → its egress chain) and the
//! `ingress-isolated` map (destination pod → its ingress chain). A pod's chain `return`s
//! on the first rule that allows the packet and drops otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::ruleset::Ruleset;

/// A pod as policies see it.
struct PodInfo<'a> {
    ns: &'a str,
    name: &'a str,
    ip: Ipv4Addr,
    labels: BTreeMap<String, String>,
    pod: &'a Pod,
}

/// Whether `labels` match `selector` (matchLabels and matchExpressions; an empty selector
/// matches everything).
fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let empty = BTreeMap::new();
    for (k, v) in selector.match_labels.as_ref().unwrap_or(&empty) {
        if labels.get(k) != Some(v) {
            return false;
        }
    }
    for e in selector.match_expressions.iter().flatten() {
        let values: BTreeSet<&String> = e.values.iter().flatten().collect();
        let value = labels.get(&e.key);
        let ok = match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// The rules' port matches: `None` = any port; else nft fragments, one per port entry.
fn port_matches(
    ports: Option<&Vec<NetworkPolicyPort>>,
    named_on: &[&PodInfo],
) -> Option<Vec<String>> {
    let ports = ports.filter(|p| !p.is_empty())?;
    let mut out = Vec::new();
    for p in ports {
        let proto = p.protocol.as_deref().unwrap_or("TCP").to_lowercase();
        match &p.port {
            None => out.push(format!("meta l4proto {proto}")),
            Some(IntOrString::Int(n)) => match p.end_port {
                Some(end) if end > *n => out.push(format!("{proto} dport {n}-{end}")),
                _ => out.push(format!("{proto} dport {n}")),
            },
            Some(IntOrString::String(name)) => {
                // A named port is the number each pod gives it.
                let numbers: BTreeSet<i32> = named_on
                    .iter()
                    .filter_map(|info| named_port(info.pod, name, &proto))
                    .collect();
                if !numbers.is_empty() {
                    let list: Vec<String> = numbers.iter().map(i32::to_string).collect();
                    out.push(format!("{proto} dport {{ {} }}", list.join(", ")));
                }
            }
        }
    }
    Some(out)
}

fn named_port(pod: &Pod, name: &str, proto: &str) -> Option<i32> {
    pod.spec.as_ref()?.containers.iter().find_map(|c| {
        c.ports.iter().flatten().find_map(|p| {
            let p_proto = p.protocol.as_deref().unwrap_or("TCP").to_lowercase();
            (p.name.as_deref() == Some(name) && p_proto == proto).then_some(p.container_port)
        })
    })
}

/// Address matches of one peer: a set of pod IPs or CIDRs (`None` when the peer selects
/// nothing, which allows nothing).
fn peer_matches(
    peer: &NetworkPolicyPeer,
    policy_ns: &str,
    pods: &[PodInfo],
    ns_labels: &BTreeMap<String, BTreeMap<String, String>>,
    field: &str,
) -> (Option<String>, Vec<usize>) {
    if let Some(block) = &peer.ip_block {
        let mut m = format!("ip {field} {}", block.cidr);
        let except: Vec<&String> = block.except.iter().flatten().collect();
        if !except.is_empty() {
            let list: Vec<&str> = except.iter().map(|s| s.as_str()).collect();
            m.push_str(&format!(" ip {field} != {{ {} }}", list.join(", ")));
        }
        return (Some(m), Vec::new());
    }
    let empty = BTreeMap::new();
    let chosen: Vec<usize> = pods
        .iter()
        .enumerate()
        .filter(|(_, p)| match &peer.namespace_selector {
            Some(sel) => matches(sel, ns_labels.get(p.ns).unwrap_or(&empty)),
            None => p.ns == policy_ns,
        })
        .filter(|(_, p)| {
            peer.pod_selector
                .as_ref()
                .is_none_or(|sel| matches(sel, &p.labels))
        })
        .map(|(i, _)| i)
        .collect();
    if chosen.is_empty() {
        return (None, chosen);
    }
    let ips: BTreeSet<String> = chosen.iter().map(|i| pods[*i].ip.to_string()).collect();
    let list: Vec<String> = ips.into_iter().collect();
    (
        Some(format!("ip {field} {{ {} }}", list.join(", "))),
        chosen,
    )
}

/// Adds the policy chains and map elements for these objects to `r`.
pub fn build<'a>(
    r: &mut Ruleset,
    policies: impl IntoIterator<Item = &'a NetworkPolicy>,
    pods: impl IntoIterator<Item = &'a Pod>,
    namespaces: impl IntoIterator<Item = &'a Namespace>,
) {
    let ns_labels: BTreeMap<String, BTreeMap<String, String>> = namespaces
        .into_iter()
        .map(|n| {
            (
                n.metadata.name.clone().unwrap_or_default(),
                n.metadata.labels.clone().unwrap_or_default(),
            )
        })
        .collect();
    let pods: Vec<PodInfo> = pods
        .into_iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.host_network) != Some(true))
        .filter(|p| {
            !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
        })
        .filter_map(|p| {
            let ip = p.status.as_ref()?.pod_ip.as_deref()?.parse().ok()?;
            Some(PodInfo {
                ns: p.metadata.namespace.as_deref().unwrap_or_default(),
                name: p.metadata.name.as_deref().unwrap_or_default(),
                ip,
                labels: p.metadata.labels.clone().unwrap_or_default(),
                pod: p,
            })
        })
        .collect();
    // Per pod and direction: the allowing rules, once any policy selects it.
    let mut ingress: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut egress: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for policy in policies {
        let ns = policy.metadata.namespace.as_deref().unwrap_or_default();
        let Some(spec) = &policy.spec else { continue };
        let types: Vec<&str> = match &spec.policy_types {
            Some(t) => t.iter().map(String::as_str).collect(),
            None if spec.egress.is_some() => vec!["Ingress", "Egress"],
            None => vec!["Ingress"],
        };
        let pod_selector = spec.pod_selector.clone().unwrap_or_default();
        let selected: Vec<usize> = pods
            .iter()
            .enumerate()
            .filter(|(_, p)| p.ns == ns && matches(&pod_selector, &p.labels))
            .map(|(i, _)| i)
            .collect();
        for &i in &selected {
            if types.contains(&"Ingress") {
                let rules = ingress.entry(i).or_default();
                for rule in spec.ingress.iter().flatten() {
                    let Some(ports) = port_matches(rule.ports.as_ref(), &[&pods[i]]) else {
                        allow(
                            rules,
                            rule.from.as_ref(),
                            ns,
                            &pods,
                            &ns_labels,
                            "saddr",
                            None,
                        );
                        continue;
                    };
                    allow(
                        rules,
                        rule.from.as_ref(),
                        ns,
                        &pods,
                        &ns_labels,
                        "saddr",
                        Some(&ports),
                    );
                }
            }
            if types.contains(&"Egress") {
                let rules = egress.entry(i).or_default();
                for rule in spec.egress.iter().flatten() {
                    // Named ports resolve on the destination pods.
                    let peers: Vec<usize> = rule
                        .to
                        .iter()
                        .flatten()
                        .flat_map(|peer| peer_matches(peer, ns, &pods, &ns_labels, "daddr").1)
                        .collect();
                    let targets: Vec<&PodInfo> = if rule.to.as_ref().is_none_or(|t| t.is_empty()) {
                        pods.iter().collect()
                    } else {
                        peers.iter().map(|j| &pods[*j]).collect()
                    };
                    let ports = port_matches(rule.ports.as_ref(), &targets);
                    allow(
                        rules,
                        rule.to.as_ref(),
                        ns,
                        &pods,
                        &ns_labels,
                        "daddr",
                        ports.as_ref(),
                    );
                }
            }
        }
    }
    for (dir, map, table) in [
        ("ingress", "ingress-isolated", &ingress),
        ("egress", "egress-isolated", &egress),
    ] {
        for (i, allowed) in table {
            let p = &pods[*i];
            let chain = format!("{dir}-{}/{}", p.ns, p.name);
            let mut rules = allowed.clone();
            rules.push("drop".into());
            r.chain(chain.clone(), rules);
            r.element(map, p.ip.to_string(), format!("jump {chain}"));
        }
    }
    r.chains.insert(
        "network-policies".into(),
        vec![
            "ip saddr vmap @egress-isolated".into(),
            "ip daddr vmap @ingress-isolated".into(),
        ],
    );
}

/// Appends the `return` rules allowing `peers` (all sources/destinations when absent or
/// empty) on `ports` (any port when `None`).
fn allow(
    rules: &mut Vec<String>,
    peers: Option<&Vec<NetworkPolicyPeer>>,
    ns: &str,
    pods: &[PodInfo],
    ns_labels: &BTreeMap<String, BTreeMap<String, String>>,
    field: &str,
    ports: Option<&Vec<String>>,
) {
    let addr: Vec<Option<String>> = match peers.filter(|p| !p.is_empty()) {
        None => vec![Some(String::new())],
        Some(peers) => peers
            .iter()
            .map(|peer| peer_matches(peer, ns, pods, ns_labels, field).0)
            .collect(),
    };
    for a in addr.into_iter().flatten() {
        match ports {
            None => rules.push(format!("{a} return").trim_start().to_string()),
            Some(ports) => {
                for p in ports {
                    rules.push(format!("{a} {p} return").trim_start().to_string());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
