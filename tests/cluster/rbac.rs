//! Authentication and RBAC through stock kubectl 1.33: users from the token file and from a
//! client certificate get exactly what their bindings grant (a `can-i` matrix checked against
//! Kubernetes' answers for the same bootstrap roles), `kubectl create token` gives a working
//! token that dies with its bound pod, `--as` needs `impersonate`, escalation through a
//! binding is refused, a node reads only the Secrets its pods use, anonymous may read
//! `/version` and nothing else, and forged credentials are 401.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;

use crate::harness::{fails, ok, Server};

const K133: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";

/// A server with a token file naming alice and bob (bob in group `devs`).
fn server() -> Server {
    let dir = tempfile::tempdir().unwrap().keep();
    let file = dir.join("tokens.csv");
    std::fs::write(
        &file,
        "alice-token,alice,1001\nbob-token,bob,1002,\"devs\"\n",
    )
    .unwrap();
    Server::start_with_args(&["--token-auth-file", file.to_str().unwrap()])
}

/// A kubeconfig for `server` with the given user credentials (YAML of the `user:` entry).
fn kubeconfig(server: &Server, name: &str, user: &str) -> PathBuf {
    let ca = base64::engine::general_purpose::STANDARD.encode(server.ca_pem());
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: https://127.0.0.1:{}\n  name: k\ncontexts:\n- context:\n    cluster: k\n    user: u\n  name: k\ncurrent-context: k\nusers:\n- name: u\n  user:\n{user}\n",
        server.port
    );
    let path = server.dir.path().join(format!("{name}.kubeconfig"));
    std::fs::write(&path, text).unwrap();
    path
}

fn token_kubeconfig(server: &Server, name: &str, token: &str) -> PathBuf {
    kubeconfig(server, name, &format!("    token: {token}"))
}

/// A client certificate from the cluster's client CA (in the server's data dir).
fn cert_kubeconfig(server: &Server, name: &str, user: &str, groups: &[&str]) -> PathBuf {
    let ca = keelson_auth::authn::x509::ClientCa::ensure(&server.dir.path().join("tls")).unwrap();
    let (cert, key) = ca.issue(user, groups, 1).unwrap();
    cert_pem_kubeconfig(server, name, &cert, &key)
}

fn cert_pem_kubeconfig(server: &Server, name: &str, cert: &str, key: &str) -> PathBuf {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    kubeconfig(
        server,
        name,
        &format!(
            "    client-certificate-data: {}\n    client-key-data: {}",
            b64(cert),
            b64(key)
        ),
    )
}

fn as_user(server: &Server, config: &Path, args: &[&str]) -> std::process::Output {
    server.kubectl_env(K133, args, &[("KUBECONFIG", config.to_str().unwrap())])
}

fn apply(server: &Server, yaml: &str) {
    ok(server.kubectl_stdin(K133, &["apply", "-f", "-"], yaml));
}

/// (impersonated user, groups, verb, resource, namespace, Kubernetes' answer)
type Row<'a> = (&'a str, &'a [&'a str], &'a str, &'a str, &'a str, bool);

#[test]
fn can_i_matrix_matches_kubernetes() {
    let server = server();
    ok(server.kubectl(K133, &["create", "namespace", "dev"]));
    ok(server.kubectl(
        K133,
        &[
            "create",
            "rolebinding",
            "alice-view",
            "--clusterrole=view",
            "--user=alice",
            "-n",
            "dev",
        ],
    ));
    ok(server.kubectl(
        K133,
        &[
            "create",
            "rolebinding",
            "bob-edit",
            "--clusterrole=edit",
            "--group=devs",
            "-n",
            "dev",
        ],
    ));
    ok(server.kubectl(
        K133,
        &[
            "create",
            "rolebinding",
            "ops-admin",
            "--clusterrole=admin",
            "--group=ops",
            "-n",
            "dev",
        ],
    ));
    apply(
        &server,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: one-pod}\nrules:\n- {apiGroups: [''], resources: [pods], resourceNames: [p1], verbs: [get]}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: dave-one-pod}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: one-pod}\nsubjects:\n- {apiGroup: rbac.authorization.k8s.io, kind: User, name: dave}\n",
    );
    // (impersonated user and groups, verb, resource, namespace, Kubernetes' answer)
    let rows: &[Row] = &[
        ("alice", &[], "list", "pods", "dev", true),
        ("alice", &[], "get", "deployments.apps", "dev", true),
        ("alice", &[], "get", "secrets", "dev", false),
        ("alice", &[], "create", "pods", "dev", false),
        ("alice", &[], "list", "pods", "default", false),
        ("alice", &[], "get", "pods/log", "dev", true),
        ("alice", &[], "create", "pods/exec", "dev", false),
        ("alice", &[], "list", "nodes", "", false),
        ("alice", &[], "watch", "configmaps", "dev", true),
        ("alice", &[], "delete", "configmaps", "dev", false),
        (
            "alice",
            &[],
            "create",
            "selfsubjectaccessreviews.authorization.k8s.io",
            "",
            true,
        ),
        (
            "alice",
            &[],
            "get",
            "rolebindings.rbac.authorization.k8s.io",
            "dev",
            false,
        ),
        ("bob", &["devs"], "create", "deployments.apps", "dev", true),
        ("bob", &["devs"], "get", "secrets", "dev", true),
        (
            "bob",
            &["devs"],
            "create",
            "rolebindings.rbac.authorization.k8s.io",
            "dev",
            false,
        ),
        ("bob", &["devs"], "create", "pods/exec", "dev", true),
        (
            "bob",
            &["devs"],
            "impersonate",
            "serviceaccounts",
            "dev",
            true,
        ),
        ("bob", &["devs"], "delete", "jobs.batch", "dev", true),
        ("bob", &["devs"], "create", "pods", "prod", false),
        ("bob", &["devs"], "update", "resourcequotas", "dev", false),
        ("bob", &["devs"], "get", "resourcequotas", "dev", true),
        (
            "bob",
            &["devs"],
            "create",
            "leases.coordination.k8s.io",
            "dev",
            true,
        ),
        (
            "carol",
            &["ops"],
            "create",
            "rolebindings.rbac.authorization.k8s.io",
            "dev",
            true,
        ),
        (
            "carol",
            &["ops"],
            "create",
            "roles.rbac.authorization.k8s.io",
            "dev",
            true,
        ),
        ("carol", &["ops"], "delete", "namespaces", "", false),
        (
            "carol",
            &["ops"],
            "create",
            "localsubjectaccessreviews.authorization.k8s.io",
            "dev",
            true,
        ),
        ("carol", &["ops"], "list", "nodes", "", false),
        (
            "carol",
            &[],
            "create",
            "roles.rbac.authorization.k8s.io",
            "dev",
            false,
        ),
        ("dave", &[], "get", "pods/p1", "dev", true),
        ("dave", &[], "get", "pods/p2", "dev", false),
        ("dave", &[], "list", "pods", "dev", false),
        (
            "system:kube-scheduler",
            &[],
            "create",
            "pods#binding",
            "dev",
            true,
        ),
        (
            "system:kube-scheduler",
            &[],
            "create",
            "bindings",
            "dev",
            true,
        ),
        (
            "system:kube-scheduler",
            &[],
            "update",
            "pods#status",
            "dev",
            true,
        ),
        ("alice", &[], "get", "pods#log", "dev", true),
        ("alice", &[], "create", "pods#exec", "dev", false),
        ("bob", &["devs"], "create", "pods#exec", "dev", true),
        (
            "system:kube-scheduler",
            &[],
            "create",
            "configmaps",
            "dev",
            false,
        ),
        (
            "system:kube-controller-manager",
            &[],
            "list",
            "secrets",
            "",
            true,
        ),
        (
            "system:serviceaccount:kube-system:replicaset-controller",
            &[],
            "create",
            "pods",
            "dev",
            true,
        ),
        (
            "system:serviceaccount:kube-system:replicaset-controller",
            &[],
            "delete",
            "nodes",
            "",
            false,
        ),
        ("admin", &["system:masters"], "delete", "nodes", "", true),
    ];
    let mut wrong = Vec::new();
    for (user, groups, verb, resource, ns, want) in rows {
        // `pods/x` names a pod; `pods#log` is the subresource `log` (`--subresource`).
        let (resource, sub) = resource.split_once('#').unwrap_or((resource, ""));
        let mut args = vec!["auth", "can-i", verb, resource, "--as", user];
        if !sub.is_empty() {
            args.extend(["--subresource", sub]);
        }
        for g in *groups {
            args.extend(["--as-group", g]);
        }
        if ns.is_empty() {
            args.push("--all-namespaces=false");
        } else {
            args.extend(["-n", ns]);
        }
        let out = server.kubectl(K133, &args);
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if answer != if *want { "yes" } else { "no" } {
            wrong.push(format!(
                "{user} {groups:?} {verb} {resource} -n {ns:?}: got {answer:?}, want {want}"
            ));
        }
    }
    // Non-resource URLs.
    for (user, path, want) in [
        ("alice", "/healthz", true),
        ("alice", "/apis", true),
        ("alice", "/metrics", false),
        ("admin", "/metrics", false),
    ] {
        let out = server.kubectl(K133, &["auth", "can-i", "get", path, "--as", user]);
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if answer != if want { "yes" } else { "no" } {
            wrong.push(format!("{user} get {path}: got {answer:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "can-i answers differ from Kubernetes':\n{}",
        wrong.join("\n")
    );

    // The same rights hold for real requests, by token and by client certificate.
    let alice = token_kubeconfig(&server, "alice", "alice-token");
    ok(as_user(&server, &alice, &["get", "pods", "-n", "dev"]));
    let denied = fails(as_user(&server, &alice, &["get", "secrets", "-n", "dev"]));
    assert!(
        denied.contains("secrets is forbidden: User \"alice\" cannot list resource \"secrets\" in API group \"\" in the namespace \"dev\""),
        "{denied}"
    );
    let carol = cert_kubeconfig(&server, "carol", "carol", &["ops"]);
    let whoami = ok(as_user(&server, &carol, &["auth", "whoami", "-o", "json"]));
    let who: Value = serde_json::from_str(&whoami).unwrap();
    assert_eq!(who["status"]["userInfo"]["username"], "carol");
    assert_eq!(who["status"]["userInfo"]["groups"][0], "ops");
    ok(as_user(
        &server,
        &carol,
        &[
            "create",
            "rolebinding",
            "dave-view",
            "--clusterrole=view",
            "--user=dave",
            "-n",
            "dev",
        ],
    ));
    let list = ok(as_user(
        &server,
        &carol,
        &["auth", "can-i", "--list", "-n", "dev"],
    ));
    assert!(
        list.contains("rolebindings.rbac.authorization.k8s.io"),
        "{list}"
    );
}

#[test]
fn escalation_and_impersonation_are_checked() {
    let server = server();
    ok(server.kubectl(K133, &["create", "namespace", "dev"]));
    ok(server.kubectl(
        K133,
        &[
            "create",
            "rolebinding",
            "alice-admin",
            "--clusterrole=admin",
            "--user=alice",
            "-n",
            "dev",
        ],
    ));
    let alice = token_kubeconfig(&server, "alice", "alice-token");
    // alice administers dev but may not hand out cluster-admin there, nor roles beyond hers.
    let err = fails(as_user(
        &server,
        &alice,
        &[
            "create",
            "rolebinding",
            "esc",
            "--clusterrole=cluster-admin",
            "--user=alice",
            "-n",
            "dev",
        ],
    ));
    assert!(
        err.contains("rolebindings.rbac.authorization.k8s.io \"esc\" is forbidden: user \"alice\"")
            && err.contains("is attempting to grant RBAC permissions not currently held"),
        "{err}"
    );
    let err = fails(as_user(
        &server,
        &alice,
        &[
            "create",
            "role",
            "nodes",
            "--verb=get",
            "--resource=nodes",
            "-n",
            "dev",
        ],
    ));
    assert!(
        err.contains("is attempting to grant RBAC permissions not currently held"),
        "{err}"
    );
    ok(as_user(
        &server,
        &alice,
        &[
            "create",
            "role",
            "pods",
            "--verb=get",
            "--resource=pods",
            "-n",
            "dev",
        ],
    ));
    ok(as_user(
        &server,
        &alice,
        &[
            "create",
            "rolebinding",
            "bob-view",
            "--clusterrole=view",
            "--user=bob",
            "-n",
            "dev",
        ],
    ));
    // With `bind` on cluster-admin the same binding is allowed.
    apply(
        &server,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: bind-cluster-admin}\nrules:\n- {apiGroups: [rbac.authorization.k8s.io], resources: [clusterroles], resourceNames: [cluster-admin], verbs: [bind]}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: alice-bind, namespace: dev}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: bind-cluster-admin}\nsubjects:\n- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}\n",
    );
    ok(as_user(
        &server,
        &alice,
        &[
            "create",
            "rolebinding",
            "esc",
            "--clusterrole=cluster-admin",
            "--user=alice",
            "-n",
            "dev",
        ],
    ));

    // --as needs impersonate.
    let bob = token_kubeconfig(&server, "bob", "bob-token");
    let err = fails(as_user(
        &server,
        &bob,
        &["get", "pods", "-n", "dev", "--as", "alice"],
    ));
    assert!(
        err.contains("users \"alice\" is forbidden: User \"bob\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"),
        "{err}"
    );
    apply(
        &server,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: impersonate-alice}\nrules:\n- {apiGroups: [''], resources: [users], resourceNames: [alice], verbs: [impersonate]}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: bob-impersonates}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: impersonate-alice}\nsubjects:\n- {apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}\n",
    );
    let who = ok(as_user(
        &server,
        &bob,
        &[
            "auth",
            "whoami",
            "--as",
            "alice",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    ));
    assert_eq!(who, "alice");
    let err = fails(as_user(
        &server,
        &bob,
        &[
            "get",
            "pods",
            "--as",
            "alice",
            "--as-group",
            "system:masters",
        ],
    ));
    assert!(
        err.contains("cannot impersonate resource \"groups\""),
        "{err}"
    );
}

#[test]
fn service_account_tokens_work_and_die_with_their_pod() {
    let server = server();
    ok(server.kubectl(K133, &["create", "namespace", "dev"]));
    ok(server.kubectl(K133, &["create", "serviceaccount", "builder", "-n", "dev"]));
    ok(server.kubectl(
        K133,
        &[
            "create",
            "rolebinding",
            "builder-view",
            "--clusterrole=view",
            "--serviceaccount=dev:builder",
            "-n",
            "dev",
        ],
    ));
    let token = ok(server.kubectl(K133, &["create", "token", "builder", "-n", "dev"]));
    let sa = token_kubeconfig(&server, "sa", token.trim());
    let who = ok(as_user(
        &server,
        &sa,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    ));
    assert_eq!(who, "system:serviceaccount:dev:builder");
    ok(as_user(&server, &sa, &["get", "pods", "-n", "dev"]));
    fails(as_user(&server, &sa, &["get", "secrets", "-n", "dev"]));

    // TokenReview agrees, and names the audience; another audience is refused.
    let review = |token: &str, audience: &str| -> Value {
        let body = format!(
            "{{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\",\"spec\":{{\"token\":\"{token}\"{audience}}}}}"
        );
        let out = ok(server.kubectl_stdin(K133, &["create", "-f", "-", "-o", "json"], &body));
        serde_json::from_str(&out).unwrap()
    };
    let r = review(token.trim(), "");
    assert_eq!(r["status"]["authenticated"], true);
    assert_eq!(
        r["status"]["user"]["username"],
        "system:serviceaccount:dev:builder"
    );
    let r = review(token.trim(), ",\"audiences\":[\"vault\"]");
    assert_eq!(r["status"]["authenticated"], false, "{r}");

    // A token bound to a pod stops working once the pod is gone.
    ok(server.kubectl(K133, &["run", "p", "--image=busybox", "-n", "dev"]));
    let bound = ok(server.kubectl(
        K133,
        &[
            "create",
            "token",
            "builder",
            "-n",
            "dev",
            "--bound-object-kind=Pod",
            "--bound-object-name=p",
            "--duration=20m",
        ],
    ));
    let bound_config = token_kubeconfig(&server, "bound", bound.trim());
    ok(as_user(
        &server,
        &bound_config,
        &["get", "pods", "-n", "dev"],
    ));
    ok(server.kubectl(
        K133,
        &[
            "delete",
            "pod",
            "p",
            "-n",
            "dev",
            "--grace-period=0",
            "--force",
        ],
    ));
    let err = fails(as_user(
        &server,
        &bound_config,
        &["get", "pods", "-n", "dev"],
    ));
    assert!(err.contains("Unauthorized"), "{err}");
    // Too short a lifetime is refused as Kubernetes does.
    let err = fails(server.kubectl(
        K133,
        &["create", "token", "builder", "-n", "dev", "--duration=1m"],
    ));
    assert!(
        err.contains("may not specify a duration less than 10 minutes"),
        "{err}"
    );

    // The issuer's discovery documents, readable by service accounts.
    let jwks = ok(as_user(&server, &sa, &["get", "--raw", "/openid/v1/jwks"]));
    let jwks: Value = serde_json::from_str(&jwks).unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    let oidc = ok(as_user(
        &server,
        &sa,
        &["get", "--raw", "/.well-known/openid-configuration"],
    ));
    assert!(
        oidc.contains("\"issuer\":\"https://kubernetes.default.svc.cluster.local\""),
        "{oidc}"
    );
}

#[test]
fn nodes_read_only_what_their_pods_use() {
    let server = server();
    ok(server.kubectl(
        K133,
        &["create", "secret", "generic", "used", "--from-literal=k=v"],
    ));
    ok(server.kubectl(
        K133,
        &["create", "secret", "generic", "other", "--from-literal=k=v"],
    ));
    apply(
        &server,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default}\nspec:\n  nodeName: n1\n  containers: [{name: c, image: busybox}]\n  volumes: [{name: s, secret: {secretName: used}}]\n",
    );
    let node = cert_kubeconfig(&server, "n1", "system:node:n1", &["system:nodes"]);
    let read = |name: &str| as_user(&server, &node, &["get", "secret", name, "-o", "name"]);
    assert!(crate::harness::eventually(
        std::time::Duration::from_secs(10),
        || read("used").status.success()
    ));
    let err = fails(read("other"));
    assert!(
        err.contains("secrets \"other\" is forbidden: User \"system:node:n1\" cannot get resource \"secrets\" in API group \"\" in the namespace \"default\": no relationship found between node 'n1' and this object"),
        "{err}"
    );
    fails(as_user(&server, &node, &["get", "secrets"]));
    // Another node's kubelet cannot read the pod's secret either.
    let n2 = cert_kubeconfig(&server, "n2", "system:node:n2", &["system:nodes"]);
    fails(as_user(&server, &n2, &["get", "secret", "used"]));
    ok(as_user(&server, &node, &["get", "pods", "-A"]));
}

#[test]
fn anonymous_and_forged_credentials() {
    let server = server();
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&server.ca_pem()).unwrap())
        .build()
        .unwrap();
    let url = |p: &str| format!("https://127.0.0.1:{}{p}", server.port);
    let version = client.get(url("/version")).send().unwrap();
    assert_eq!(version.status().as_u16(), 200);
    let apis = client.get(url("/apis")).send().unwrap();
    assert_eq!(apis.status().as_u16(), 403, "anonymous may not discover");
    let pods = client
        .get(url("/api/v1/namespaces/default/pods"))
        .send()
        .unwrap();
    assert_eq!(pods.status().as_u16(), 403);
    let status: Value = pods.json().unwrap();
    assert_eq!(status["reason"], "Forbidden");
    assert_eq!(status["details"]["kind"], "pods");

    // Forged, truncated and foreign tokens: 401 every time, and the server keeps serving.
    let sa_token = ok(server.kubectl(K133, &["create", "token", "default"]))
        .trim()
        .to_string();
    let foreign = {
        let dir = tempfile::tempdir().unwrap();
        let other = keelson_auth::authn::ServiceAccountTokens::ensure(
            dir.path(),
            keelson_auth::authn::serviceaccount::DEFAULT_ISSUER,
        )
        .unwrap();
        let (t, _) = other
            .issue(&keelson_auth::authn::TokenRequest {
                audiences: vec![],
                expiration_seconds: 3600,
                bound: serde_json::from_value(serde_json::json!({
                    "namespace": "default", "serviceaccount": {"name": "default", "uid": "x"}
                }))
                .unwrap(),
            })
            .unwrap();
        t
    };
    let mut flipped = sa_token.clone().into_bytes();
    let mid = flipped.len() / 2;
    flipped[mid] = if flipped[mid] == b'A' { b'B' } else { b'A' };
    let bad = [
        "garbage".to_string(),
        sa_token[..sa_token.len() - 5].to_string(),
        String::from_utf8(flipped).unwrap(),
        foreign,
        format!("{sa_token}.extra"),
        "eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2t1YmVybmV0ZXMuZGVmYXVsdC5zdmMuY2x1c3Rlci5sb2NhbCJ9.".into(),
    ];
    for token in &bad {
        let r = client
            .get(url("/api/v1/namespaces"))
            .bearer_auth(token)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "token {token:?}");
    }
    // A client certificate from another CA is refused too.
    let dir = tempfile::tempdir().unwrap();
    let other_ca = keelson_auth::authn::x509::ClientCa::ensure(dir.path()).unwrap();
    let (cert, key) = other_ca.issue("mallory", &["system:masters"], 1).unwrap();
    let mallory = cert_pem_kubeconfig(&server, "mallory", &cert, &key);
    let err = fails(as_user(&server, &mallory, &["get", "namespaces"]));
    assert!(err.contains("provide credentials"), "{err}");
    ok(server.kubectl(K133, &["get", "namespaces"]));
}

#[test]
fn approved_csr_yields_a_working_client_certificate() {
    let server = server();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "erin");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "devs");
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let request = base64::engine::general_purpose::STANDARD.encode(&csr);
    apply(
        &server,
        &format!("apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{name: erin}}\nspec:\n  request: {request}\n  signerName: kubernetes.io/kube-apiserver-client\n  expirationSeconds: 86400\n  usages: [client auth]\n"),
    );
    let pending = ok(server.kubectl(K133, &["get", "csr", "erin"]));
    assert!(
        pending.contains("Pending") && pending.contains("kubernetes.io/kube-apiserver-client"),
        "{pending}"
    );
    ok(server.kubectl(K133, &["certificate", "approve", "erin"]));
    let mut cert = String::new();
    assert!(crate::harness::eventually(
        std::time::Duration::from_secs(15),
        || {
            cert = ok(server.kubectl(
                K133,
                &["get", "csr", "erin", "-o", "jsonpath={.status.certificate}"],
            ));
            !cert.is_empty()
        }
    ));
    let listed = ok(server.kubectl(K133, &["get", "csr", "erin"]));
    assert!(
        listed.contains("Approved,Issued") && listed.contains("24h"),
        "{listed}"
    );
    let pem = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(cert.trim())
            .unwrap(),
    )
    .unwrap();
    let erin = cert_pem_kubeconfig(&server, "erin", &pem, &key.serialize_pem());
    let who = ok(as_user(
        &server,
        &erin,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    ));
    assert_eq!(who, "erin");
    let version = ok(as_user(&server, &erin, &["get", "--raw", "/version"]));
    assert!(version.contains("gitVersion"), "{version}");
    // The requester recorded is the poster, whatever the body said.
    let requestor = ok(server.kubectl(
        K133,
        &["get", "csr", "erin", "-o", "jsonpath={.spec.username}"],
    ));
    assert_eq!(requestor, "admin");
    // A kubelet-client request whose subject is not a node fails with a reason.
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let request = base64::engine::general_purpose::STANDARD.encode(&csr);
    apply(
        &server,
        &format!("apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{name: fake-node}}\nspec:\n  request: {request}\n  signerName: kubernetes.io/kube-apiserver-client-kubelet\n  usages: [client auth]\n"),
    );
    ok(server.kubectl(K133, &["certificate", "approve", "fake-node"]));
    assert!(crate::harness::eventually(
        std::time::Duration::from_secs(15),
        || { ok(server.kubectl(K133, &["get", "csr", "fake-node"])).contains("Failed") }
    ));
}
