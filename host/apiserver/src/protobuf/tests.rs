//! Tests: real protobuf bodies built by encoding k8s-pb structs with prost.

use std::collections::BTreeMap;

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::json;

use super::decode;

fn body(api_version: &str, kind: &str, object: &impl Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(object.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = b"k8s\0".to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn meta_named(name: &str) -> Option<meta::ObjectMeta> {
    Some(meta::ObjectMeta {
        name: s(name),
        ..Default::default()
    })
}

#[test]
fn namespace() {
    let ns = core::Namespace {
        metadata: meta_named("team-a"),
        ..Default::default()
    };
    let got = decode(&body("v1", "Namespace", &ns)).unwrap();
    assert_eq!(
        got,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
    );
    assert_eq!(
        got.as_object().unwrap().keys().next().unwrap(),
        "apiVersion"
    );
}

#[test]
fn configmap() {
    let cm = core::ConfigMap {
        metadata: Some(meta::ObjectMeta {
            name: s("cfg"),
            namespace: s("default"),
            ..Default::default()
        }),
        data: labels(&[("a", "1"), ("empty", "")]),
        binary_data: [("bin".to_string(), vec![0u8, 255])].into(),
        immutable: Some(true),
    };
    let got = decode(&body("v1", "ConfigMap", &cm)).unwrap();
    assert_eq!(
        got,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": "default"},
            "immutable": true, "data": {"a": "1", "empty": ""}, "binaryData": {"bin": "AP8="}})
    );
}

#[test]
fn secret_binary_data() {
    let secret = core::Secret {
        metadata: meta_named("tls"),
        data: [("key".to_string(), b"\x00\x01secret\xff".to_vec())].into(),
        r#type: s("Opaque"),
        ..Default::default()
    };
    let got = decode(&body("v1", "Secret", &secret)).unwrap();
    assert_eq!(
        got,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls"},
            "data": {"key": "AAFzZWNyZXT/"}, "type": "Opaque"})
    );
}

#[test]
fn deployment_like_kubectl_create() {
    let app = labels(&[("app", "web")]);
    let deploy = apps::Deployment {
        metadata: Some(meta::ObjectMeta {
            name: s("web"),
            labels: app.clone(),
            ..Default::default()
        }),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(2),
            selector: Some(meta::LabelSelector {
                match_labels: app.clone(),
                ..Default::default()
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels: app,
                    ..Default::default()
                }),
                spec: Some(core::PodSpec {
                    containers: vec![core::Container {
                        name: s("nginx"),
                        image: s("nginx"),
                        ports: vec![core::ContainerPort {
                            container_port: Some(80),
                            ..Default::default()
                        }],
                        resources: Some(Default::default()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            }),
            strategy: Some(Default::default()),
            ..Default::default()
        }),
        status: Some(Default::default()),
    };
    let got = decode(&body("apps/v1", "Deployment", &deploy)).unwrap();
    assert_eq!(
        got,
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx",
                        "ports": [{"containerPort": 80}], "resources": {}}]}},
                "strategy": {}},
            "status": {}})
    );
}

#[test]
fn go_zero_values_of_non_pointer_fields_are_dropped_pointer_ones_kept() {
    // What gogo-protobuf writes for Go structs: every non-pointer field, even when zero.
    let deploy = apps::Deployment {
        metadata: Some(meta::ObjectMeta {
            name: s("web"),
            namespace: s(""),
            generation: Some(0),
            creation_timestamp: Some(Default::default()),
            ..Default::default()
        }),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            min_ready_seconds: Some(0),
            paused: Some(false),
            template: Some(core::PodTemplateSpec {
                metadata: None,
                spec: Some(core::PodSpec {
                    restart_policy: s(""),
                    host_network: Some(false),
                    termination_grace_period_seconds: Some(0),
                    containers: vec![core::Container {
                        name: s("c"),
                        ports: vec![core::ContainerPort {
                            host_port: Some(0),
                            container_port: Some(80),
                            protocol: s(""),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: None,
    };
    let got = decode(&body("apps/v1", "Deployment", &deploy)).unwrap();
    assert_eq!(
        got,
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 0, "template": {"spec": {"terminationGracePeriodSeconds": 0,
                "containers": [{"name": "c", "ports": [{"containerPort": 80}]}]}}}})
    );
}

#[test]
fn service_int_or_string_target_port() {
    let port = |name: &str, target: IntOrString| core::ServicePort {
        name: s(name),
        port: Some(80),
        target_port: Some(target),
        protocol: s("TCP"),
        ..Default::default()
    };
    let svc = core::Service {
        metadata: meta_named("web"),
        spec: Some(core::ServiceSpec {
            ports: vec![
                port(
                    "num",
                    IntOrString {
                        r#type: Some(0),
                        int_val: Some(8080),
                        str_val: None,
                    },
                ),
                port(
                    "named",
                    IntOrString {
                        r#type: Some(1),
                        int_val: None,
                        str_val: s("http"),
                    },
                ),
                port(
                    "unset",
                    IntOrString {
                        r#type: Some(0),
                        int_val: Some(0),
                        str_val: s(""),
                    },
                ),
            ],
            selector: labels(&[("app", "web")]),
            cluster_ip: s("None"),
            external_ips: vec!["1.2.3.4".into()],
            r#type: s("ClusterIP"),
            ..Default::default()
        }),
        status: None,
    };
    let got = decode(&body("v1", "Service", &svc)).unwrap();
    assert_eq!(
        got,
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"ports": [
                {"name": "num", "protocol": "TCP", "port": 80, "targetPort": 8080},
                {"name": "named", "protocol": "TCP", "port": 80, "targetPort": "http"},
                {"name": "unset", "protocol": "TCP", "port": 80}],
                "selector": {"app": "web"}, "clusterIP": "None", "type": "ClusterIP",
                "externalIPs": ["1.2.3.4"]}})
    );
}

#[test]
fn pod_quantity_time_inline_probe() {
    let q = |v: &str| Quantity { string: s(v) };
    let pod = core::Pod {
        metadata: Some(meta::ObjectMeta {
            name: s("p"),
            creation_timestamp: Some(meta::Time {
                seconds: Some(1_704_164_645),
                nanos: Some(0),
            }),
            ..Default::default()
        }),
        spec: Some(core::PodSpec {
            containers: vec![core::Container {
                name: s("c"),
                image: s("busybox"),
                resources: Some(core::ResourceRequirements {
                    limits: [("memory".to_string(), q("128Mi"))].into(),
                    requests: [("cpu".to_string(), q("100m"))].into(),
                    ..Default::default()
                }),
                readiness_probe: Some(core::Probe {
                    handler: Some(core::ProbeHandler {
                        http_get: Some(core::HttpGetAction {
                            path: s("/healthz"),
                            port: Some(IntOrString {
                                r#type: Some(1),
                                int_val: None,
                                str_val: s("http"),
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    period_seconds: Some(5),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            host_ipc: Some(true),
            volumes: vec![core::Volume {
                name: s("cfg"),
                volume_source: Some(core::VolumeSource {
                    config_map: Some(core::ConfigMapVolumeSource {
                        local_object_reference: Some(core::LocalObjectReference { name: s("cfg") }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }],
            ..Default::default()
        }),
        status: Some(core::PodStatus {
            pod_ip: s("10.42.0.5"),
            ..Default::default()
        }),
    };
    let got = decode(&body("v1", "Pod", &pod)).unwrap();
    assert_eq!(
        got,
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "creationTimestamp": "2024-01-02T03:04:05Z"},
            "spec": {"volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}],
                "containers": [{"name": "c", "image": "busybox",
                    "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "100m"}},
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5}}],
                "hostIPC": true},
            "status": {"podIP": "10.42.0.5"}})
    );
}

#[test]
fn lease_micro_time_and_event_series() {
    let lease = k8s_pb::api::coordination::v1::Lease {
        metadata: meta_named("node-1"),
        spec: Some(k8s_pb::api::coordination::v1::LeaseSpec {
            holder_identity: s("node-1"),
            renew_time: Some(meta::MicroTime {
                seconds: Some(1_704_164_645),
                nanos: Some(123_456_789),
            }),
            lease_duration_seconds: Some(40),
            ..Default::default()
        }),
    };
    let got = decode(&body("coordination.k8s.io/v1", "Lease", &lease)).unwrap();
    assert_eq!(
        got["spec"]["renewTime"],
        json!("2024-01-02T03:04:05.123456Z")
    );
    assert_eq!(got["spec"]["leaseDurationSeconds"], json!(40));
}

#[test]
fn raw_extension_fields_v1_and_duration() {
    let rev = apps::ControllerRevision {
        metadata: Some(meta::ObjectMeta {
            name: s("r"),
            managed_fields: vec![meta::ManagedFieldsEntry {
                manager: s("kubectl"),
                fields_v1: Some(meta::FieldsV1 {
                    raw: Some(br#"{"f:metadata":{}}"#.to_vec()),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        data: Some(k8s_pb::apimachinery::pkg::runtime::RawExtension {
            raw: Some(br#"{"spec":{"a":1}}"#.to_vec()),
        }),
        revision: Some(3),
    };
    let got = decode(&body("apps/v1", "ControllerRevision", &rev)).unwrap();
    assert_eq!(got["data"], json!({"spec": {"a": 1}}));
    assert_eq!(
        got["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:metadata": {}})
    );
    assert_eq!(got["revision"], json!(3));
    let durations = [
        (0, "0s"),
        (1_500, "1.5µs"),
        (1_500_000, "1.5ms"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (-2_500_000_000, "-2.5s"),
    ];
    for (ns, want) in durations {
        assert_eq!(super::special::go_duration(ns), want);
    }
}

#[test]
fn other_groups_resolve() {
    let pc = k8s_pb::api::scheduling::v1::PriorityClass {
        metadata: meta_named("high"),
        value: Some(1000),
        ..Default::default()
    };
    let got = decode(&body("scheduling.k8s.io/v1", "PriorityClass", &pc)).unwrap();
    assert_eq!(
        got,
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "high"}, "value": 1000})
    );
    let opts = meta::DeleteOptions {
        grace_period_seconds: Some(0),
        propagation_policy: s("Foreground"),
        ..Default::default()
    };
    let got = decode(&body("v1", "DeleteOptions", &opts)).unwrap();
    assert_eq!(
        got,
        json!({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "propagationPolicy": "Foreground"})
    );
}

#[test]
fn bad_input_is_an_error() {
    let ns = body(
        "v1",
        "Namespace",
        &core::Namespace {
            metadata: meta_named("x"),
            ..Default::default()
        },
    );
    assert!(decode(b"").is_err());
    assert!(decode(b"{\"kind\":\"Namespace\"}").is_err());
    assert!(decode(b"k8s\x01rest").is_err());
    assert!(decode(&ns[..ns.len() - 3]).is_err());
    assert!(decode(b"k8s\0\xff\xff\xff").is_err());
    assert!(decode(&body("v1", "NoSuchKind", &core::Namespace::default())).is_err());
    assert!(decode(&body("", "", &core::Namespace::default())).is_err());
    // A string where an int is expected (Namespace.spec tag 2 read as varint).
    let mut wrong = b"k8s\0".to_vec();
    wrong.extend(
        Unknown {
            type_meta: Some(TypeMeta {
                api_version: s("v1"),
                kind: s("Namespace"),
            }),
            raw: Some(vec![0x10, 1]),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    assert!(decode(&wrong).unwrap_err().contains("wire type"));
}

#[test]
fn random_and_mutated_bytes_never_panic() {
    let mut seeds = vec![
        body(
            "apps/v1",
            "Deployment",
            &apps::Deployment {
                metadata: meta_named("web"),
                ..Default::default()
            },
        ),
        body(
            "v1",
            "Pod",
            &core::Pod {
                metadata: meta_named("p"),
                spec: Some(Default::default()),
                status: None,
            },
        ),
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..2000 {
        let mut b = seeds[i % seeds.len()].clone();
        if i % 4 == 0 {
            let len = (next() % 64) as usize;
            b = b"k8s\0".to_vec();
            b.extend((0..len).map(|_| next() as u8));
        } else {
            for _ in 0..=(next() % 4) {
                if b.len() <= 5 {
                    b.push(next() as u8);
                }
                let pos = 4 + (next() as usize) % (b.len() - 4);
                match next() % 3 {
                    0 => b[pos] = next() as u8,
                    1 => b.truncate(pos.max(5)),
                    _ => b.insert(pos, next() as u8),
                }
            }
        }
        let _ = decode(&b);
        if i % 100 == 0 {
            seeds.push(b);
        }
    }
}

#[test]
fn hostile_nesting_is_refused() {
    // JSONSchemaProps.not (tag 28) nested 500 deep.
    let mut inner: Vec<u8> = Vec::new();
    for _ in 0..500 {
        let mut outer = vec![0xE2, 0x01];
        prost::encoding::encode_varint(inner.len() as u64, &mut outer);
        outer.extend(inner);
        inner = outer;
    }
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s("apiextensions.k8s.io/v1"),
            kind: s("JSONSchemaProps"),
        }),
        raw: Some(inner),
        ..Default::default()
    };
    let mut b = b"k8s\0".to_vec();
    b.extend(unknown.encode_to_vec());
    assert!(decode(&b).unwrap_err().contains("too deep"));
}
