//! API fidelity as outside clients see it (issues 11, 19, 20): Status bytes, OpenAPI v2 as
//! protobuf, aggregated discovery, APIServices, metadata-only responses on every verb,
//! `pods/ephemeralcontainers`, `componentstatuses`, Kubernetes' field order, a log without
//! colour codes, and the official Python client's discovery cache.

use std::process::Command;
use std::time::Duration;

use reqwest::blocking::RequestBuilder;
use serde_json::{json, Value};

use crate::api::{client, url};
use crate::harness::{eventually, fails, ok, Server, KUBECTL_133};

const METADATA: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
const METADATA_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
const DISCOVERY_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

fn request(server: &Server, method: reqwest::Method, path: &str) -> RequestBuilder {
    client(server)
        .request(method, url(server, path))
        .bearer_auth(server.token())
}

fn get(server: &Server, path: &str, accept: &str) -> reqwest::blocking::Response {
    request(server, reqwest::Method::GET, path)
        .header("Accept", accept)
        .send()
        .unwrap()
}

#[test]
fn status_bytes_field_order_and_uncoloured_log() {
    let server = Server::start();
    let missing = get(
        &server,
        "/api/v1/namespaces/default/configmaps/nope",
        "application/json",
    );
    assert_eq!(missing.status().as_u16(), 404);
    assert_eq!(
        missing.text().unwrap(),
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"configmaps \\\"nope\\\" not found\",\"reason\":\"NotFound\",\"details\":{\"name\":\"nope\",\"kind\":\"configmaps\"},\"code\":404}\n"
    );
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"selector": {"app": "s"}, "ports": [{"port": 80, "protocol": "TCP"}]}});
    let created = request(
        &server,
        reqwest::Method::POST,
        "/api/v1/namespaces/default/services",
    )
    .json(&svc)
    .send()
    .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let raw = get(
        &server,
        "/api/v1/namespaces/default/services/s",
        "application/json",
    )
    .text()
    .unwrap();
    assert!(
        raw.starts_with(r#"{"kind":"Service","apiVersion":"v1","metadata":{"name":"s","namespace":"default","uid":"#),
        "{raw}"
    );
    let spec_at = raw
        .find(r#""spec":{"ports":"#)
        .expect("spec starts with ports");
    assert!(spec_at < raw.find(r#""status":"#).unwrap(), "{raw}");
    // The harness writes the server's stderr to a file: no ANSI escapes there.
    let log = server.log_text();
    assert!(log.contains("ready"), "{log}");
    assert!(!log.contains('\u{1b}'), "escape bytes in the log:\n{log}");
}

#[test]
fn openapi_v2_protobuf_on_request() {
    let server = Server::start();
    let pb = get(
        &server,
        "/openapi/v2",
        "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    );
    assert_eq!(
        pb.headers()["content-type"],
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    );
    let bytes = pb.bytes().unwrap();
    // Field 1 (swagger) = "2.0", then the definitions carry the GVK extension as YAML text.
    assert_eq!(&bytes[..5], b"\x0a\x032.0");
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("io.k8s.api.apps.v1.Deployment")
            && text.contains("x-kubernetes-group-version-kind")
    );
    let json: Value = get(&server, "/openapi/v2", "application/json")
        .json()
        .unwrap();
    assert_eq!(json["swagger"], "2.0");
}

#[test]
fn aggregated_discovery_and_apiservices() {
    let server = Server::start();
    let resp = get(&server, "/apis", DISCOVERY_V2);
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    assert_eq!(resp.headers()["vary"], "Accept");
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    let doc: Value = resp.json().unwrap();
    assert_eq!(doc["kind"], "APIGroupDiscoveryList");
    let apps = doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "apps")
        .expect("apps group");
    let deployments = apps["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "deployments")
        .expect("deployments");
    assert_eq!(apps["versions"][0]["version"], "v1");
    assert_eq!(deployments["scope"], "Namespaced");
    assert!(deployments["verbs"]
        .as_array()
        .unwrap()
        .contains(&json!("watch")));
    assert!(deployments["subresources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["subresource"] == "scale" && s["responseKind"]["kind"] == "Scale"));
    let unchanged = request(&server, reqwest::Method::GET, "/apis")
        .header("Accept", DISCOVERY_V2)
        .header("If-None-Match", &etag)
        .send()
        .unwrap();
    assert_eq!(unchanged.status().as_u16(), 304);
    let core: Value = get(&server, "/api", DISCOVERY_V2).json().unwrap();
    assert!(core["items"][0]["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["resource"] == "pods"));
    let legacy = get(&server, "/apis", "application/json");
    assert_eq!(legacy.headers()["vary"], "Accept");
    assert_eq!(legacy.json::<Value>().unwrap()["kind"], "APIGroupList");

    // kubectl api-resources reads every group from the aggregated document: no per-group GETs.
    let cache = server.dir.path().join("kube-cache");
    let out = server.kubectl(
        KUBECTL_133,
        &[
            "api-resources",
            "-v=6",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(String::from_utf8_lossy(&out.stdout).contains("deployments"));
    let discovery_gets: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"Response\" verb=\"GET\""))
        .collect();
    assert_eq!(discovery_gets.len(), 2, "{discovery_gets:#?}");

    // APIServices: one Local, Available service per served group/version.
    let k = |args: &[&str]| ok(server.kubectl(KUBECTL_133, args));
    let table = k(&["get", "apiservices"]);
    assert!(
        table.contains("v1.apps") && table.contains("Local") && table.contains("True"),
        "{table}"
    );
    assert!(
        table.contains("v1.") && table.contains("v2.autoscaling"),
        "{table}"
    );
    assert_eq!(
        k(&[
            "get",
            "apiservice",
            "v1.apps",
            "-o",
            "jsonpath={.spec.group} {.status.conditions[0].reason}"
        ]),
        "apps Local"
    );
    let refused = fails(server.kubectl(KUBECTL_133, &["delete", "apiservice", "v1.apps"]));
    assert!(refused.contains("does not allow this method"), "{refused}");
}

#[test]
fn metadata_only_responses_on_every_verb() {
    let server = Server::start();
    let base = "/api/v1/namespaces/default/configmaps";
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m"}, "data": {"a": "1"}});
    let send = |method: reqwest::Method, path: &str, body: Option<(&str, String)>| {
        let mut r = request(&server, method, path).header("Accept", METADATA);
        if let Some((ct, b)) = body {
            r = r.header("Content-Type", ct).body(b);
        }
        let resp = r.send().unwrap();
        let code = resp.status().as_u16();
        (code, resp.json::<Value>().unwrap())
    };
    let (code, created) = send(
        reqwest::Method::POST,
        base,
        Some(("application/json", cm.to_string())),
    );
    assert_eq!(code, 201);
    assert_eq!(created["kind"], "PartialObjectMetadata");
    assert_eq!(created["apiVersion"], "meta.k8s.io/v1");
    assert!(created.get("data").is_none());
    let (_, got) = send(reqwest::Method::GET, &format!("{base}/m"), None);
    assert_eq!(got["kind"], "PartialObjectMetadata");
    let mut updated = cm.clone();
    updated["data"]["a"] = json!("2");
    let (code, put) = send(
        reqwest::Method::PUT,
        &format!("{base}/m"),
        Some(("application/json", updated.to_string())),
    );
    assert_eq!(
        (code, put["kind"].as_str()),
        (200, Some("PartialObjectMetadata"))
    );
    // What kube-rs's Api::patch_metadata sends.
    let (code, patched) = send(
        reqwest::Method::PATCH,
        &format!("{base}/m"),
        Some((
            "application/merge-patch+json",
            r#"{"metadata":{"labels":{"x":"y"}}}"#.into(),
        )),
    );
    assert_eq!(code, 200);
    assert_eq!(patched["kind"], "PartialObjectMetadata");
    assert_eq!(patched["metadata"]["labels"]["x"], "y");
    let list: Value = get(&server, base, METADATA_LIST).json().unwrap();
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["items"][0]["kind"], "PartialObjectMetadata");
    let (code, deleted) = send(reqwest::Method::DELETE, &format!("{base}/m"), None);
    assert!(code == 200 || code == 202, "{code}");
    assert!(
        deleted["kind"] == "PartialObjectMetadata" || deleted["kind"] == "Status",
        "{deleted}"
    );
    assert!(deleted.get("data").is_none());
    let refused = request(&server, reqwest::Method::POST, base)
        .header("Accept", "application/json;as=Foo;g=meta.k8s.io;v=v1")
        .json(&cm)
        .send()
        .unwrap();
    assert_eq!(refused.status().as_u16(), 406);
    assert_eq!(refused.json::<Value>().unwrap()["reason"], "NotAcceptable");
}

#[test]
fn ephemeral_containers_and_componentstatuses() {
    let server = Server::start();
    let k = |args: &[&str]| ok(server.kubectl(KUBECTL_133, args));
    assert!(eventually(Duration::from_secs(5), || server
        .kubectl(KUBECTL_133, &["get", "sa", "default"])
        .status
        .success()));
    k(&["run", "p", "--image=busybox:1.36", "--restart=Never"]);
    k(&[
        "debug",
        "p",
        "--image=busybox:1.36",
        "--container=dbg",
        "--",
        "sleep",
        "1",
    ]);
    assert_eq!(
        k(&[
            "get",
            "pod",
            "p",
            "-o",
            "jsonpath={.spec.ephemeralContainers[*].name}"
        ]),
        "dbg"
    );
    // Validation: ports are forbidden; existing ephemeral containers cannot change.
    let path = "/api/v1/namespaces/default/pods/p/ephemeralcontainers";
    let mut pod: Value = get(&server, path, "application/json").json().unwrap();
    pod["spec"]["ephemeralContainers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "bad", "image": "busybox", "ports": [{"containerPort": 80}]}));
    let refused = request(&server, reqwest::Method::PUT, path)
        .json(&pod)
        .send()
        .unwrap();
    assert_eq!(refused.status().as_u16(), 422);
    let body: Value = refused.json().unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("spec.ephemeralContainers[1].ports: Forbidden"),
        "{body}"
    );
    // Through the Pod itself they do not change.
    let patched = k(&[
        "patch",
        "pod",
        "p",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/ephemeralContainers"}]"#,
        "-o",
        "jsonpath={.spec.ephemeralContainers[*].name}",
    ]);
    assert_eq!(patched, "dbg");

    // componentstatuses: the store and the in-process controllers are healthy; no scheduler
    // runs and none holds the Lease, until a fresh Lease appears.
    let cs = k(&["get", "cs"]);
    for line in ["etcd-0", "controller-manager"] {
        let row = cs.lines().find(|l| l.starts_with(line)).unwrap_or_default();
        assert!(
            row.contains("Healthy") && !row.contains("Unhealthy"),
            "{cs}"
        );
    }
    assert!(
        cs.lines()
            .any(|l| l.starts_with("scheduler") && l.contains("Unhealthy")),
        "{cs}"
    );
    let now = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.000000Z"])
        .output()
        .unwrap();
    let lease = format!(
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {{name: kube-scheduler, namespace: kube-system}}\nspec: {{holderIdentity: s1, leaseDurationSeconds: 60, renewTime: \"{}\"}}\n",
        String::from_utf8_lossy(&now.stdout).trim()
    );
    ok(server.kubectl_stdin(KUBECTL_133, &["apply", "-f", "-"], &lease));
    let cs = k(&["get", "cs", "scheduler"]);
    assert!(cs.contains("Healthy") && !cs.contains("Unhealthy"), "{cs}");
}

#[test]
#[ignore = "needs the kubernetes Python client: tools/test.sh installs it and sets KEELSON_TEST_PYTHON"]
fn python_client_discovery_cache_round_trips() {
    let server = Server::start();
    let python = std::env::var("KEELSON_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/cluster/python/discovery_cache.py"
    );
    let out = Command::new(python)
        .arg(script)
        .env("KUBECONFIG", server.kubeconfig())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fresh and cached discovery differ:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
