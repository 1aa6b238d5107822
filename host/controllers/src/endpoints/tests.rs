use super::*;
use serde_json::json;

fn service(extra: serde_json::Value) -> Service {
    let mut v = json!({
        "metadata": {"name": "web", "namespace": "ns", "labels": {"team": "a"}},
        "spec": {"selector": {"app": "web"}, "clusterIP": "10.43.0.10", "ports": [
            {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
            {"name": "metrics", "port": 9000, "targetPort": 9100, "protocol": "TCP"},
        ]},
    });
    json_patch::merge(&mut v, &extra);
    serde_json::from_value(v).unwrap()
}

fn pod(name: &str, ip: Option<&str>, ready: bool, http_port: Option<i32>) -> Pod {
    let ports = http_port.map(|p| json!([{"name": "http", "containerPort": p}]));
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
        "spec": {"nodeName": "n1", "hostname": name, "subdomain": "web",
                 "containers": [{"name": "c", "image": "nginx", "ports": ports}]},
        "status": {"phase": "Running", "podIP": ip,
                   "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
    }))
    .unwrap()
}

#[test]
fn members_resolve_named_and_numeric_target_ports() {
    let svc = service(json!({}));
    let pods = [
        pod("b", Some("10.42.0.2"), true, Some(8080)),
        pod("a", Some("10.42.0.1"), false, Some(8081)),
        pod("noip", None, true, Some(8080)),
        pod("noname", Some("10.42.0.3"), true, None),
    ];
    let m = members(&svc, &pods);
    let ips: Vec<&str> = m.iter().map(|m| m.ip.as_str()).collect();
    assert_eq!(
        ips,
        ["10.42.0.1", "10.42.0.2", "10.42.0.3"],
        "pods without IP are left out"
    );
    let ports = |i: usize| -> Vec<(Option<String>, i32)> {
        m[i].ports
            .iter()
            .map(|p| (p.name.clone(), p.port))
            .collect()
    };
    assert_eq!(
        ports(0),
        [(Some("http".into()), 8081), (Some("metrics".into()), 9100)]
    );
    assert_eq!(
        ports(2),
        [(Some("metrics".into()), 9100)],
        "no container port named http"
    );
    assert!(!m[0].ready && m[1].ready);
    assert_eq!(
        m[1].hostname.as_deref(),
        Some("b"),
        "subdomain is the Service"
    );
    assert_eq!(m[1].target.kind.as_deref(), Some("Pod"));
    assert_eq!(m[1].node.as_deref(), Some("n1"));
}

#[test]
fn subsets_split_ready_and_group_by_ports() {
    let svc = service(json!({}));
    let mut terminating = pod("t", Some("10.42.0.9"), true, Some(8080));
    terminating.metadata.deletion_timestamp = Some(crate::replicaset::now());
    let pods = [
        pod("a", Some("10.42.0.1"), true, Some(8080)),
        pod("b", Some("10.42.0.2"), false, Some(8080)),
        pod("c", Some("10.42.0.3"), true, Some(8081)),
        terminating,
    ];
    let subsets = subsets(&svc, &members(&svc, &pods));
    assert_eq!(subsets.len(), 2);
    let ips = |v: &Option<Vec<EndpointAddress>>| -> Vec<String> {
        v.iter().flatten().map(|a| a.ip.clone()).collect()
    };
    assert_eq!(ips(&subsets[0].addresses), ["10.42.0.1"]);
    assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.42.0.2"]);
    assert_eq!(ips(&subsets[1].addresses), ["10.42.0.3"]);
    assert_eq!(subsets[1].ports.as_ref().unwrap()[0].port, 8081);

    let publish = service(json!({"spec": {"publishNotReadyAddresses": true}}));
    let subsets = super::subsets(&publish, &members(&publish, &pods));
    assert_eq!(
        ips(&subsets[0].addresses).len(),
        3,
        "all ready, terminating included"
    );
}

#[test]
fn slices_carry_conditions_and_split_at_a_hundred() {
    let svc =
        service(json!({"spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}));
    let mut pods: Vec<Pod> = (0..150)
        .map(|i| {
            pod(
                &format!("p{i}"),
                Some(&format!("10.42.1.{i}")),
                i % 2 == 0,
                None,
            )
        })
        .collect();
    pods[0].metadata.deletion_timestamp = Some(crate::replicaset::now());
    let slices = slices::desired(&members(&svc, &pods));
    assert_eq!(slices.len(), 2);
    assert_eq!((slices[0].2.len(), slices[1].2.len()), (100, 50));
    assert_eq!(slices[0].0, "IPv4");
    assert_eq!(slices[0].1[0].port, Some(8080));
    let all: Vec<&k8s_openapi::api::discovery::v1::Endpoint> =
        slices.iter().flat_map(|s| &s.2).collect();
    let p0 = all
        .iter()
        .find(|e| e.addresses == ["10.42.1.0"])
        .unwrap()
        .conditions
        .clone()
        .unwrap();
    assert_eq!(
        (p0.ready, p0.serving, p0.terminating),
        (Some(false), Some(true), Some(true)),
        "a terminating pod serves but is not ready"
    );
    let p1 = all.iter().find(|e| e.addresses == ["10.42.1.1"]).unwrap();
    assert_eq!(p1.conditions.as_ref().unwrap().ready, Some(false));
    let headless = service(json!({"spec": {"clusterIP": "None"}}));
    assert_eq!(labels_of(&headless)[HEADLESS_LABEL], "");
    assert_eq!(labels_of(&svc).get(HEADLESS_LABEL), None);
}
