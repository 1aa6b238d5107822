//! Which rules policies make: selection, peers, named ports, default allow.

use super::*;
use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec, PodStatus};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn pod(name: &str, ns: &str, ip: &str, labels: &[(&str, &str)]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                ports: Some(vec![ContainerPort {
                    name: Some("http".into()),
                    container_port: 8080,
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            pod_ip: Some(ip.into()),
            ..Default::default()
        }),
    }
}

fn selector(k: &str, v: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some([(k.to_string(), v.to_string())].into()),
        ..Default::default()
    }
}

fn policy(spec: NetworkPolicySpec) -> NetworkPolicy {
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some("p".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(spec),
    }
}

fn pods() -> Vec<Pod> {
    vec![
        pod("web", "default", "10.42.0.10", &[("app", "web")]),
        pod("good", "default", "10.42.0.20", &[("access", "true")]),
        pod("bad", "default", "10.42.0.21", &[]),
        pod("other", "team", "10.42.1.5", &[("access", "true")]),
    ]
}

fn namespaces() -> Vec<Namespace> {
    ["default", "team"]
        .iter()
        .map(|n| Namespace {
            metadata: ObjectMeta {
                name: Some(n.to_string()),
                labels: Some([("kubernetes.io/metadata.name".to_string(), n.to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        })
        .collect()
}

#[test]
fn no_policy_means_no_isolation() {
    let mut r = Ruleset::default();
    build(&mut r, [], &pods(), &namespaces());
    assert!(!r.elements.contains_key("ingress-isolated"));
    assert_eq!(r.chains.len(), 1);
}

#[test]
fn ingress_from_labelled_pods_on_a_named_port() {
    let p = policy(NetworkPolicySpec {
        pod_selector: Some(selector("app", "web")),
        ingress: Some(vec![NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                pod_selector: Some(selector("access", "true")),
                ..Default::default()
            }]),
            ports: Some(vec![NetworkPolicyPort {
                port: Some(IntOrString::String("http".into())),
                ..Default::default()
            }]),
        }]),
        ..Default::default()
    });
    let mut r = Ruleset::default();
    build(&mut r, [&p], &pods(), &namespaces());
    assert_eq!(
        r.elements["ingress-isolated"]["10.42.0.10"],
        "jump ingress-default/web"
    );
    // Only the pod in the policy's namespace: a podSelector alone does not reach "team".
    assert_eq!(
        r.chains["ingress-default/web"],
        vec!["ip saddr { 10.42.0.20 } tcp dport { 8080 } return", "drop"]
    );
}

#[test]
fn namespace_selector_and_ip_block_egress() {
    let p = policy(NetworkPolicySpec {
        pod_selector: Some(selector("access", "true")),
        policy_types: Some(vec!["Egress".into()]),
        egress: Some(vec![
            NetworkPolicyEgressRule {
                to: Some(vec![NetworkPolicyPeer {
                    namespace_selector: Some(selector("kubernetes.io/metadata.name", "team")),
                    ..Default::default()
                }]),
                ports: None,
            },
            NetworkPolicyEgressRule {
                to: Some(vec![NetworkPolicyPeer {
                    ip_block: Some(IPBlock {
                        cidr: "10.0.0.0/8".into(),
                        except: Some(vec!["10.42.0.10/32".into()]),
                    }),
                    ..Default::default()
                }]),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(5000)),
                    end_port: Some(5010),
                    protocol: Some("UDP".into()),
                }]),
            },
        ]),
        ..Default::default()
    });
    let mut r = Ruleset::default();
    build(&mut r, [&p], &pods(), &namespaces());
    assert_eq!(
        r.chains["egress-default/good"],
        vec![
            "ip daddr { 10.42.1.5 } return",
            "ip daddr 10.0.0.0/8 ip daddr != { 10.42.0.10/32 } udp dport 5000-5010 return",
            "drop"
        ]
    );
    assert!(!r.elements.contains_key("ingress-isolated"));
}

#[test]
fn a_policy_without_rules_denies_all_ingress() {
    let p = policy(NetworkPolicySpec {
        pod_selector: None,
        ..Default::default()
    });
    let mut r = Ruleset::default();
    build(&mut r, [&p], &pods(), &namespaces());
    assert_eq!(r.elements["ingress-isolated"].len(), 3);
    assert_eq!(r.chains["ingress-default/bad"], vec!["drop"]);
}
