//! Table-driven checks of the rules built for Services and EndpointSlices.

use super::*;
use k8s_openapi::api::core::v1::{ClientIPConfig, ServiceSpec, SessionAffinityConfig};
use k8s_openapi::api::discovery::v1::{
    Endpoint as SliceEndpoint, EndpointConditions, EndpointPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn svc(name: &str, ip: &str, node_port: Option<i32>) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some(ip.into()),
            type_: Some(
                if node_port.is_some() {
                    "NodePort"
                } else {
                    "ClusterIP"
                }
                .into(),
            ),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                node_port,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// (ip, ready, serving, terminating, node)
type Ep<'a> = (&'a str, bool, bool, bool, &'a str);

fn slice(svc: &str, eps: &[Ep]) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("{svc}-x")),
            namespace: Some("default".into()),
            labels: Some([(SERVICE_NAME_LABEL.to_string(), svc.to_string())].into()),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: eps
            .iter()
            .map(|(ip, ready, serving, terminating, node)| SliceEndpoint {
                addresses: vec![ip.to_string()],
                conditions: Some(EndpointConditions {
                    ready: Some(*ready),
                    serving: Some(*serving),
                    terminating: Some(*terminating),
                }),
                node_name: Some(node.to_string()),
                ..Default::default()
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

fn node() -> Node {
    Node {
        name: "n1".into(),
        ips: vec!["192.168.1.10".parse().unwrap()],
        cluster_cidr: None,
        network_policy: false,
    }
}

fn dnat_targets(r: &Ruleset) -> Vec<String> {
    let mut v: Vec<String> = r
        .chains
        .values()
        .flatten()
        .filter_map(|rule| rule.split("dnat to ").nth(1))
        .flat_map(|target| match target.split_once(" map { ") {
            // numgen random mod N map { 0 : ip . port, … }
            Some((_, map)) => map
                .trim_end_matches(" }")
                .split(", ")
                .map(|e| e.split(" : ").nth(1).unwrap().replace(" . ", ":"))
                .collect::<Vec<_>>(),
            None => vec![target.to_string()],
        })
        .collect();
    v.sort();
    v
}

#[test]
fn cluster_ip_balances_over_ready_endpoints_only() {
    let s = svc("web", "10.43.0.5", None);
    let sl = slice(
        "web",
        &[
            ("10.42.0.2", true, true, false, "n1"),
            ("10.42.0.3", true, true, false, "n2"),
            ("10.42.0.4", false, false, false, "n2"),
        ],
    );
    let r = build([&s], [&sl], &node());
    assert_eq!(dnat_targets(&r), vec!["10.42.0.2:8080", "10.42.0.3:8080"]);
    let verdict = &r.elements["service-ips"]["10.43.0.5 . tcp . 80"];
    let chain = verdict.strip_prefix("goto ").unwrap();
    let rules = &r.chains[chain];
    assert_eq!(
        rules[0],
        "ip saddr { 10.42.0.2, 10.42.0.3 } meta mark set meta mark | 0x4000"
    );
    assert!(rules[1].starts_with("meta l4proto tcp dnat to numgen random mod 2 map"));
    assert!(!r.elements.contains_key("no-endpoint-services"));
}

#[test]
fn terminating_endpoints_serve_only_when_nothing_is_ready() {
    let s = svc("web", "10.43.0.5", None);
    let only_terminating = slice("web", &[("10.42.0.2", false, true, true, "n1")]);
    let r = build([&s], [&only_terminating], &node());
    assert_eq!(dnat_targets(&r), vec!["10.42.0.2:8080"]);
    let mixed = slice(
        "web",
        &[
            ("10.42.0.2", false, true, true, "n1"),
            ("10.42.0.3", true, true, false, "n1"),
        ],
    );
    let r = build([&s], [&mixed], &node());
    assert_eq!(dnat_targets(&r), vec!["10.42.0.3:8080"]);
}

#[test]
fn service_without_endpoints_is_rejected() {
    let s = svc("web", "10.43.0.5", Some(30080));
    let r = build([&s], [], &node());
    assert_eq!(
        r.elements["no-endpoint-services"]["10.43.0.5 . tcp . 80"],
        "goto reject-chain"
    );
    assert_eq!(
        r.elements["no-endpoint-nodeports"]["tcp . 30080"],
        "goto reject-chain"
    );
    assert!(!r.elements.contains_key("service-ips"));
}

#[test]
fn node_port_masquerades_and_reaches_the_service_chain() {
    let s = svc("web", "10.43.0.5", Some(30080));
    let sl = slice("web", &[("10.42.0.2", true, true, false, "n2")]);
    let r = build([&s], [&sl], &node());
    let verdict = &r.elements["service-nodeports"]["tcp . 30080"];
    let chain = verdict.strip_prefix("goto ").unwrap();
    assert!(chain.starts_with("external-"));
    assert_eq!(r.chains[chain][0], "meta mark set meta mark | 0x4000");
    assert_eq!(r.elements["nodeport-ips"]["192.168.1.10"], "");
}

#[test]
fn external_local_without_local_endpoints_drops_but_node_traffic_passes() {
    let mut s = svc("web", "10.43.0.5", Some(30080));
    s.spec.as_mut().unwrap().external_traffic_policy = Some("Local".into());
    let sl = slice("web", &[("10.42.0.2", true, true, false, "n2")]);
    let r = build([&s], [&sl], &node());
    let chain = r.elements["service-nodeports"]["tcp . 30080"]
        .strip_prefix("goto ")
        .unwrap()
        .to_string();
    let rules = &r.chains[&chain];
    assert!(rules[1].starts_with("fib saddr type local goto service-"));
    assert_eq!(rules.last().unwrap(), "drop");
    // With a local endpoint the external path picks it, without masquerading.
    let sl = slice(
        "web",
        &[
            ("10.42.0.2", true, true, false, "n2"),
            ("10.42.0.9", true, true, false, "n1"),
        ],
    );
    let r = build([&s], [&sl], &node());
    let rules = &r.chains[&chain];
    let last = rules.last().unwrap();
    assert_eq!(last, "meta l4proto tcp dnat to 10.42.0.9:8080");
}

#[test]
fn internal_local_without_local_endpoints_drops() {
    let mut s = svc("web", "10.43.0.5", None);
    s.spec.as_mut().unwrap().internal_traffic_policy = Some("Local".into());
    let sl = slice("web", &[("10.42.0.2", true, true, false, "n2")]);
    let r = build([&s], [&sl], &node());
    assert_eq!(
        r.elements["no-endpoint-services"]["10.43.0.5 . tcp . 80"],
        "drop"
    );
}

#[test]
fn client_ip_affinity_remembers_the_endpoint() {
    let mut s = svc("web", "10.43.0.5", None);
    let spec = s.spec.as_mut().unwrap();
    spec.session_affinity = Some("ClientIP".into());
    spec.session_affinity_config = Some(SessionAffinityConfig {
        client_ip: Some(ClientIPConfig {
            timeout_seconds: Some(60),
        }),
    });
    let sl = slice(
        "web",
        &[
            ("10.42.0.2", true, true, false, "n1"),
            ("10.42.0.3", true, true, false, "n1"),
        ],
    );
    let r = build([&s], [&sl], &node());
    assert_eq!(r.sets.len(), 2);
    assert!(r.sets.values().all(|b| b.contains("timeout 60s")));
    let chain = r.elements["service-ips"]["10.43.0.5 . tcp . 80"]
        .strip_prefix("goto ")
        .unwrap()
        .to_string();
    let rules = &r.chains[&chain];
    assert!(rules[0].starts_with("ip saddr @affinity-"));
    assert!(rules[2].starts_with("numgen"));
    assert!(r
        .chains
        .values()
        .flatten()
        .any(|l| l.starts_with("update @affinity-")));
}

#[test]
fn external_ips_and_off_cluster_masquerade() {
    let mut s = svc("web", "10.43.0.5", None);
    s.spec.as_mut().unwrap().external_ips = Some(vec!["192.168.1.50".into()]);
    let sl = slice("web", &[("10.42.0.2", true, true, false, "n1")]);
    let mut n = node();
    n.cluster_cidr = Some("10.42.0.0/16".into());
    let r = build([&s], [&sl], &n);
    assert!(r.elements["service-ips"]["192.168.1.50 . tcp . 80"].starts_with("goto external-"));
    let chain = r.elements["service-ips"]["10.43.0.5 . tcp . 80"]
        .strip_prefix("goto ")
        .unwrap()
        .to_string();
    assert!(
        r.chains[&chain][0].contains("ip saddr != 10.42.0.0/16 meta mark set meta mark | 0x4000")
    );
}
