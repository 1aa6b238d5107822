//! ResourceQuota and admission webhooks against the real server, driven by kubectl: once the
//! quota controller has computed a new quota's usage, the third pod under `pods: 2` and a pod
//! over a `limits.cpu` quota are refused with Kubernetes' message;
//! a small HTTPS webhook server started here (its own CA from rcgen, passed as caBundle) denies
//! ConfigMaps labelled `deny=yes` and labels the others through a JSONPatch; an unreachable
//! webhook is skipped under `failurePolicy: Ignore` and fails the request under `Fail`.

use std::convert::Infallible;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use serde_json::{json, Value};

use crate::harness::{eventually, fails, free_port, ok, Server, KUBECTL_133};

const K: &str = KUBECTL_133;

fn pod_yaml(name: &str, ns: &str, resources: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  containers:\n  - name: c1\n    image: busybox:1.36\n    resources: {resources}\n"
    )
}

fn namespace_with_account(server: &Server, ns: &str) {
    ok(server.kubectl(K, &["create", "namespace", ns]));
    assert!(eventually(std::time::Duration::from_secs(10), || server
        .kubectl(K, &["get", "serviceaccount", "default", "-n", ns])
        .status
        .success()));
}

/// Waits until the quota controller has filled in `status.used` of quota `name` in `ns`.
fn quota_computed(server: &Server, name: &str, ns: &str) {
    assert!(eventually(std::time::Duration::from_secs(10), || {
        let out = server.kubectl(
            K,
            &[
                "get",
                "quota",
                name,
                "-n",
                ns,
                "-o",
                "jsonpath={.status.used}",
            ],
        );
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    }));
}

#[test]
fn resource_quota_with_kubectl() {
    let server = Server::start();
    let run = |args: &[&str]| ok(server.kubectl(K, args));

    // Object count: two pods fit, the third is refused with the usage.
    namespace_with_account(&server, "q1");
    run(&[
        "create",
        "quota",
        "q",
        "--hard=pods=2,configmaps=20",
        "-n",
        "q1",
    ]);
    quota_computed(&server, "q", "q1");
    run(&["run", "p1", "--image=busybox:1.36", "-n", "q1"]);
    run(&["run", "p2", "--image=busybox:1.36", "-n", "q1"]);
    let err = fails(server.kubectl(K, &["run", "p3", "--image=busybox:1.36", "-n", "q1"]));
    assert!(
        err.contains("Error from server (Forbidden): pods \"p3\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"),
        "{err}"
    );
    assert_eq!(
        run(&[
            "get",
            "quota",
            "q",
            "-n",
            "q1",
            "-o",
            "jsonpath={.status.used.pods}/{.status.hard.pods}"
        ]),
        "2/2"
    );
    let described = run(&["describe", "quota", "q", "-n", "q1"]);
    assert!(
        described
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["pods", "2", "2"]),
        "{described}"
    );
    // dry-run charges nothing.
    let configmaps = || {
        run(&[
            "get",
            "quota",
            "q",
            "-n",
            "q1",
            "-o",
            "jsonpath={.status.used.configmaps}",
        ])
    };
    let before = configmaps();
    run(&["create", "configmap", "c", "-n", "q1", "--dry-run=server"]);
    assert_eq!(configmaps(), before);
    // Deleting a pod releases its share (the quota controller recalculates).
    run(&["delete", "pod", "p1", "-n", "q1", "--wait=false"]);
    assert!(eventually(std::time::Duration::from_secs(10), || run(&[
        "get",
        "quota",
        "q",
        "-n",
        "q1",
        "-o",
        "jsonpath={.status.used.pods}"
    ]) == "1"));
    run(&["run", "p3", "--image=busybox:1.36", "-n", "q1"]);

    // Compute resources: limits.cpu=1.
    namespace_with_account(&server, "q2");
    run(&[
        "create",
        "quota",
        "cpu",
        "--hard=limits.cpu=1,requests.memory=1Gi",
        "-n",
        "q2",
    ]);
    quota_computed(&server, "cpu", "q2");
    let stdin = |yaml: String| server.kubectl_stdin(K, &["apply", "-f", "-"], &yaml);
    let err = fails(stdin(pod_yaml(
        "big",
        "q2",
        "{limits: {cpu: \"2\", memory: 128Mi}}",
    )));
    assert!(
        err.contains("pods \"big\" is forbidden: exceeded quota: cpu, requested: limits.cpu=2, used: limits.cpu=0, limited: limits.cpu=1"),
        "{err}"
    );
    let err = fails(stdin(pod_yaml("bare", "q2", "{}")));
    assert!(
        err.contains("pods \"bare\" is forbidden: failed quota: cpu: must specify limits.cpu for: c1; must specify requests.memory for: c1"),
        "{err}"
    );
    ok(stdin(pod_yaml(
        "fits",
        "q2",
        "{limits: {cpu: 600m, memory: 256Mi}}",
    )));
    let used = run(&[
        "get",
        "quota",
        "cpu",
        "-n",
        "q2",
        "-o",
        "jsonpath={.status.used}",
    ]);
    let used: Value = serde_json::from_str(&used).unwrap();
    assert_eq!(
        used,
        json!({"limits.cpu": "600m", "requests.memory": "256Mi"})
    );
    let err = fails(stdin(pod_yaml(
        "second",
        "q2",
        "{limits: {cpu: 600m, memory: 256Mi}}",
    )));
    assert!(
        err.contains("requested: limits.cpu=600m, used: limits.cpu=600m, limited: limits.cpu=1"),
        "{err}"
    );
}

/// A CA and a serving certificate for 127.0.0.1: (ca_pem, cert_pem, key_pem).
fn webhook_certs() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params
        .signed_by(&key, &Issuer::new(ca_params, ca_key))
        .unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// The webhook's answer to one AdmissionReview.
fn review(path: &str, body: &[u8]) -> Value {
    let review: Value = serde_json::from_slice(body).unwrap();
    let req = &review["request"];
    let uid = req["uid"].clone();
    let labels = &req["object"]["metadata"]["labels"];
    let response = match path {
        "/validate" if labels["deny"] == "yes" => json!({
            "uid": uid, "allowed": false,
            "status": {"code": 403, "message": "configmaps labelled deny=yes are not allowed"}
        }),
        "/mutate" => {
            let patch = if labels.is_object() {
                json!([{"op": "add", "path": "/metadata/labels/mutated-by", "value": "webhook"}])
            } else {
                json!([{"op": "add", "path": "/metadata/labels", "value": {"mutated-by": "webhook"}}])
            };
            let patch = base64::engine::general_purpose::STANDARD.encode(patch.to_string());
            json!({"uid": uid, "allowed": true, "patchType": "JSONPatch", "patch": patch})
        }
        _ => json!({"uid": uid, "allowed": true}),
    };
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

/// Starts the HTTPS webhook server on `rt`; returns its port.
fn start_webhook(rt: &tokio::runtime::Runtime, cert_pem: &str, key_pem: &str) -> u16 {
    let certs = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .unwrap()
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let path = req.uri().path().to_string();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let answer = review(&path, &body);
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(answer.to_string())))
                                .unwrap(),
                        )
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    port
}

fn webhook_config(
    kind: &str,
    name: &str,
    url: &str,
    ca: &str,
    resource: &str,
    policy: &str,
) -> String {
    format!(
        "apiVersion: admissionregistration.k8s.io/v1
kind: {kind}
metadata: {{name: {name}}}
webhooks:
- name: {name}.example.com
  clientConfig: {{url: \"{url}\", caBundle: {ca}}}
  rules:
  - {{operations: [CREATE, UPDATE], apiGroups: [\"\"], apiVersions: [v1], resources: [{resource}]}}
  failurePolicy: {policy}
  sideEffects: None
  admissionReviewVersions: [v1]
  timeoutSeconds: 5
"
    )
}

#[test]
fn admission_webhooks_with_kubectl() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ca_pem, cert_pem, key_pem) = webhook_certs();
    let port = start_webhook(&rt, &cert_pem, &key_pem);
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let server = Server::start();
    let run = |args: &[&str]| ok(server.kubectl(K, args));
    let apply = |yaml: &str| server.kubectl_stdin(K, &["apply", "-f", "-"], yaml);
    let base = format!("https://127.0.0.1:{port}");

    // Validating: ConfigMaps labelled deny=yes are refused with the webhook's message.
    ok(apply(&webhook_config(
        "ValidatingWebhookConfiguration",
        "deny",
        &format!("{base}/validate"),
        &ca,
        "configmaps",
        "Fail",
    )));
    run(&["create", "configmap", "allowed", "--from-literal=a=1"]);
    let denied = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: denied, labels: {deny: \"yes\"}}\ndata: {a: \"1\"}\n";
    let err = fails(apply(denied));
    assert!(
        err.contains("admission webhook \"deny.example.com\" denied the request: configmaps labelled deny=yes are not allowed"),
        "{err}"
    );
    assert!(!server
        .kubectl(K, &["get", "configmap", "denied"])
        .status
        .success());

    // Mutating: a label added by JSONPatch, before the validating webhook sees the object.
    ok(apply(&webhook_config(
        "MutatingWebhookConfiguration",
        "label",
        &format!("{base}/mutate"),
        &ca,
        "configmaps",
        "Fail",
    )));
    run(&["create", "configmap", "mutated", "--from-literal=a=1"]);
    assert_eq!(
        run(&[
            "get",
            "configmap",
            "mutated",
            "-o",
            "jsonpath={.metadata.labels.mutated-by}"
        ]),
        "webhook"
    );
    let labelled =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: labelled, labels: {team: a}}\n";
    ok(apply(labelled));
    assert_eq!(
        run(&[
            "get",
            "configmap",
            "labelled",
            "-o",
            "jsonpath={.metadata.labels}"
        ]),
        r#"{"mutated-by":"webhook","team":"a"}"#
    );
    run(&["delete", "mutatingwebhookconfiguration", "label"]);
    run(&["create", "configmap", "plain"]);
    assert_eq!(
        run(&[
            "get",
            "configmap",
            "plain",
            "-o",
            "jsonpath={.metadata.labels}"
        ]),
        ""
    );

    // An unreachable webhook: skipped under Ignore, a 500 under Fail.
    let closed = format!("https://127.0.0.1:{}/validate", free_port());
    ok(apply(&webhook_config(
        "ValidatingWebhookConfiguration",
        "gone",
        &closed,
        &ca,
        "secrets",
        "Ignore",
    )));
    run(&["create", "secret", "generic", "s1", "--from-literal=a=1"]);
    ok(apply(&webhook_config(
        "ValidatingWebhookConfiguration",
        "gone",
        &closed,
        &ca,
        "secrets",
        "Fail",
    )));
    let err = fails(server.kubectl(
        K,
        &["create", "secret", "generic", "s2", "--from-literal=a=1"],
    ));
    let want = "Internal error occurred: failed calling webhook \"gone.example.com\": failed to call webhook: Post \"https://127.0.0.1:";
    assert!(err.contains(want), "{err}");
    // Webhook configurations are exempt from webhooks, so the broken one can be removed.
    run(&["delete", "validatingwebhookconfiguration", "gone"]);
    run(&["create", "secret", "generic", "s2", "--from-literal=a=1"]);
    drop(server);
    rt.shutdown_background();
}
