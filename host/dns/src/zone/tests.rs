//! The zone's records for Services and EndpointSlices, per Kubernetes' DNS specification.

use super::*;
use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn svc(name: &str, ip: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns1".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some(ip.into()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

fn slice(svc: &str, eps: &[(&str, Option<&str>, bool)]) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("{svc}-1")),
            namespace: Some("ns1".into()),
            labels: Some([(SERVICE_NAME_LABEL.to_string(), svc.to_string())].into()),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: eps
            .iter()
            .map(|(ip, host, ready)| Endpoint {
                addresses: vec![ip.to_string()],
                hostname: host.map(str::to_string),
                conditions: Some(EndpointConditions {
                    ready: Some(*ready),
                    ..Default::default()
                }),
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

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn data(l: Lookup) -> Vec<String> {
    match l {
        Lookup::Answer(r) => {
            let mut v: Vec<String> = r.iter().map(|r| r.data.to_string()).collect();
            v.sort();
            v
        }
        other => panic!("{other:?}"),
    }
}

fn zone() -> Zone {
    let mut headless = svc("db", "None");
    headless.spec.as_mut().unwrap().cluster_ip = Some("None".into());
    let mut ext = svc("ext", "");
    let spec = ext.spec.as_mut().unwrap();
    spec.type_ = Some("ExternalName".into());
    spec.external_name = Some("example.org".into());
    let services = [svc("web", "10.43.0.20"), headless, ext];
    let slices = [slice(
        "db",
        &[
            ("10.42.0.5", Some("db-0"), true),
            ("10.42.0.6", None, true),
            ("10.42.0.7", None, false),
        ],
    )];
    Zone::build("cluster.local", services.iter(), slices.iter())
}

#[test]
fn service_a_and_srv_and_ptr() {
    let z = zone();
    let a = z.lookup(&name("web.ns1.svc.cluster.local."), RecordType::A);
    assert_eq!(data(a), vec!["10.43.0.20"]);
    let srv = z.lookup(
        &name("_http._tcp.web.ns1.svc.cluster.local."),
        RecordType::SRV,
    );
    assert_eq!(data(srv), vec!["0 100 80 web.ns1.svc.cluster.local."]);
    let ptr = z.lookup(&name("20.0.43.10.in-addr.arpa."), RecordType::PTR);
    assert_eq!(data(ptr), vec!["web.ns1.svc.cluster.local."]);
    // Case does not matter.
    let a = z.lookup(&name("WEB.ns1.SVC.cluster.local."), RecordType::A);
    assert_eq!(data(a), vec!["10.43.0.20"]);
}

#[test]
fn headless_lists_ready_endpoints_by_hostname_or_dashed_ip() {
    let z = zone();
    let a = z.lookup(&name("db.ns1.svc.cluster.local."), RecordType::A);
    assert_eq!(data(a), vec!["10.42.0.5", "10.42.0.6"]);
    let host = z.lookup(&name("db-0.db.ns1.svc.cluster.local."), RecordType::A);
    assert_eq!(data(host), vec!["10.42.0.5"]);
    let dashed = z.lookup(&name("10-42-0-6.db.ns1.svc.cluster.local."), RecordType::A);
    assert_eq!(data(dashed), vec!["10.42.0.6"]);
    let srv = z.lookup(
        &name("_http._tcp.db.ns1.svc.cluster.local."),
        RecordType::SRV,
    );
    assert_eq!(
        data(srv),
        vec![
            "0 100 8080 10-42-0-6.db.ns1.svc.cluster.local.",
            "0 100 8080 db-0.db.ns1.svc.cluster.local."
        ]
    );
    let ptr = z.lookup(&name("5.0.42.10.in-addr.arpa."), RecordType::PTR);
    assert_eq!(data(ptr), vec!["db-0.db.ns1.svc.cluster.local."]);
}

#[test]
fn negative_answers_and_forwarding() {
    let z = zone();
    assert_eq!(
        z.lookup(&name("nope.ns1.svc.cluster.local."), RecordType::A),
        Lookup::NxDomain
    );
    assert_eq!(
        z.lookup(&name("web.ns1.svc.cluster.local."), RecordType::AAAA),
        Lookup::NoData
    );
    assert_eq!(
        z.lookup(&name("ns1.svc.cluster.local."), RecordType::A),
        Lookup::NoData
    );
    // The resolver's search list tries these before the real name: NXDOMAIN, quickly.
    assert_eq!(
        z.lookup(&name("example.org.ns1.svc.cluster.local."), RecordType::A),
        Lookup::NxDomain
    );
    assert_eq!(
        z.lookup(&name("example.org."), RecordType::A),
        Lookup::NotOurs
    );
    assert_eq!(
        z.lookup(&name("9.9.9.9.in-addr.arpa."), RecordType::PTR),
        Lookup::NotOurs
    );
}

#[test]
fn external_name_and_pod_names() {
    let z = zone();
    let c = z.lookup(&name("ext.ns1.svc.cluster.local."), RecordType::A);
    assert_eq!(data(c), vec!["example.org."]);
    let pod = z.lookup(&name("10-42-0-9.ns1.pod.cluster.local."), RecordType::A);
    assert_eq!(data(pod), vec!["10.42.0.9"]);
}
