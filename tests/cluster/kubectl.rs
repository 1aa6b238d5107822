//! The kubectl suite: stock kubectl 1.33, 1.29, 1.28 and 1.27 against a real server, on the
//! embedded store and on etcd. One function walks the commands a Kubernetes user types; each step asserts
//! what kubectl printed or what the server then holds.

use std::time::Duration;

use crate::harness::{
    etcd, eventually, fails, ok, Server, KUBECTL_127, KUBECTL_128, KUBECTL_129, KUBECTL_133,
};

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  labels: {app: app}
spec:
  replicas: 1
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      containers:
      - name: c
        image: busybox:1.36
        env: [{name: A, value: \"1\"}]
";

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
";

fn suite(server: &Server, k: &str) {
    let run = |args: &[&str]| ok(server.kubectl(k, args));
    let stdin = |args: &[&str], input: &str| ok(server.kubectl_stdin(k, args, input));

    // version, api-resources, cluster-info, the default namespaces.
    // kubectl 1.27 prints the whole version.Info struct (`Server Version: version.Info{…
    // GitVersion:"v1.33.0+keelson…`), later ones only the version.
    let version = run(&["version"]);
    assert!(
        version.contains("Server Version: ") && version.contains("v1.33.0+keelson"),
        "{version}"
    );
    let resources = run(&["api-resources"]);
    for line in [
        "deployments",
        "customresourcedefinitions",
        "horizontalpodautoscalers",
        "leases",
        "endpointslices",
    ] {
        assert!(
            resources.contains(line),
            "api-resources lacks {line}:\n{resources}"
        );
    }
    assert!(run(&["api-resources", "--namespaced=false", "-o", "name"]).contains("namespaces"));
    assert!(run(&["cluster-info"]).contains(&format!("https://127.0.0.1:{}", server.port)));
    let ns = run(&["get", "ns"]);
    for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(ns.contains(n), "{n} missing:\n{ns}");
    }
    assert!(eventually(Duration::from_secs(5), || server
        .kubectl(k, &["get", "sa", "default"])
        .status
        .success()));
    assert_eq!(
        run(&["auth", "can-i", "create", "deployments"]).trim(),
        "yes"
    );
    if k == KUBECTL_133 {
        assert!(run(&["auth", "whoami"]).contains("admin"));
    }

    // create with protobuf bodies (kubectl create <kind>), then get in every format.
    run(&["create", "namespace", "suite"]);
    run(&[
        "-n",
        "suite",
        "create",
        "configmap",
        "cfg",
        "--from-literal=a=1",
        "--from-literal=b=2",
    ]);
    run(&[
        "-n",
        "suite",
        "create",
        "secret",
        "generic",
        "sec",
        "--from-literal=password=s3cret",
    ]);
    run(&[
        "-n",
        "suite",
        "create",
        "deployment",
        "web",
        "--image=nginx:1.27",
        "--replicas=2",
        "--port=80",
    ]);
    assert_eq!(
        run(&[
            "-n",
            "suite",
            "get",
            "cm",
            "cfg",
            "-o",
            "jsonpath={.data.b}"
        ]),
        "2"
    );
    assert_eq!(
        run(&[
            "-n",
            "suite",
            "get",
            "secret",
            "sec",
            "-o",
            "jsonpath={.data.password}"
        ]),
        "czNjcmV0"
    );
    assert_eq!(
        run(&[
            "-n",
            "suite",
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].ports[0].containerPort}"
        ]),
        "80"
    );
    let table = run(&["-n", "suite", "get", "deploy", "-o", "wide"]);
    assert!(
        table.contains("CONTAINERS") && table.contains("nginx:1.27") && table.contains("app=web"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&run(&["-n", "suite", "get", "cm", "cfg", "-o", "json"])).unwrap();
    assert_eq!(json["metadata"]["namespace"], "suite");
    assert!(json["metadata"]["uid"]
        .as_str()
        .is_some_and(|u| u.len() == 36));
    assert!(json["metadata"]["resourceVersion"]
        .as_str()
        .is_some_and(|rv| rv.parse::<u64>().is_ok()));
    assert!(run(&["-n", "suite", "get", "cm", "cfg", "-o", "yaml"]).contains("a: \"1\""));
    let cols = run(&[
        "-n",
        "suite",
        "get",
        "deploy",
        "-o",
        "custom-columns=NAME:.metadata.name,REPLICAS:.spec.replicas",
    ]);
    assert!(cols.contains("web    2"), "{cols}");

    // create -f, apply twice with a change, diff, server-side apply.
    let dir = server.dir.path();
    let file = dir.join("deploy.yaml");
    std::fs::write(&file, DEPLOYMENT).unwrap();
    let f = file.to_str().unwrap();
    assert!(run(&["create", "-f", f]).contains("deployment.apps/app created"));
    assert!(fails(server.kubectl(k, &["create", "-f", f])).contains("AlreadyExists"));
    run(&["delete", "-f", f]);
    assert!(run(&["apply", "-f", f]).contains("created"));
    std::fs::write(&file, DEPLOYMENT.replace("replicas: 1", "replicas: 3")).unwrap();
    let diff = server.kubectl(k, &["diff", "-f", f]);
    assert_eq!(
        diff.status.code(),
        Some(1),
        "diff should report a change: {}",
        String::from_utf8_lossy(&diff.stdout)
    );
    assert!(String::from_utf8_lossy(&diff.stdout).contains("+  replicas: 3"));
    assert!(run(&["apply", "-f", f]).contains("configured"));
    assert_eq!(
        run(&["get", "deploy", "app", "-o", "jsonpath={.spec.replicas}"]),
        "3"
    );
    assert!(
        run(&[
            "get",
            "deploy",
            "app",
            "-o",
            "jsonpath={.metadata.generation}"
        ])
        .parse::<u32>()
        .unwrap()
            >= 2
    );
    assert_eq!(server.kubectl(k, &["diff", "-f", f]).status.code(), Some(0));
    // Removing a list item from the file removes it from the object (patch merge keys in OpenAPI).
    std::fs::write(
        &file,
        DEPLOYMENT.replace("replicas: 1", "replicas: 3").replace(
            "env: [{name: A, value: \"1\"}]",
            "env: [{name: B, value: \"2\"}]",
        ),
    )
    .unwrap();
    run(&["apply", "-f", f]);
    assert_eq!(
        run(&[
            "get",
            "deploy",
            "app",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].env}"
        ]),
        r#"[{"name":"B","value":"2"}]"#
    );
    let ssa = stdin(
        &["apply", "--server-side", "--field-manager=suite", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {x: \"1\", y: \"2\"}\n",
    );
    assert!(ssa.contains("serverside-applied"), "{ssa}");
    stdin(
        &["apply", "--server-side", "--field-manager=suite", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {x: \"1\"}\n",
    );
    assert_eq!(
        run(&["get", "cm", "ssa", "-o", "jsonpath={.data}"]),
        "{\"x\":\"1\"}"
    );
    let conflict = server.kubectl_stdin(
        k,
        &["apply", "--server-side", "--field-manager=other", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {x: \"9\"}\n",
    );
    assert!(fails(conflict).contains("conflict"));

    // label, annotate, patch (strategic, merge, json), edit, scale.
    run(&["label", "deploy", "app", "tier=web"]);
    run(&["annotate", "deploy", "app", "note=hello"]);
    assert!(run(&["get", "deploy", "app", "--show-labels"]).contains("tier=web"));
    assert_eq!(
        run(&[
            "get",
            "deploy",
            "app",
            "-o",
            "jsonpath={.metadata.annotations.note}"
        ]),
        "hello"
    );
    run(&[
        "patch",
        "deploy",
        "app",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox:1.37"}]}}}}"#,
    ]);
    let env = run(&["get", "deploy", "app", "-o", "jsonpath={.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].env[0].name}"]);
    assert_eq!(
        env, "busybox:1.37 B",
        "strategic merge must merge containers by name"
    );
    run(&[
        "patch",
        "deploy",
        "app",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"merged":"yes"}}}"#,
    ]);
    run(&[
        "patch",
        "deploy",
        "app",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":4}]"#,
    ]);
    assert_eq!(
        run(&[
            "get",
            "deploy",
            "app",
            "-o",
            "jsonpath={.spec.replicas} {.metadata.labels.merged}"
        ]),
        "4 yes"
    );
    ok(server.kubectl_env(
        k,
        &["edit", "deploy", "app"],
        &[
            ("EDITOR", "sed -i s/busybox:1.37/busybox:1.38/"),
            ("KUBE_EDITOR", "sed -i s/busybox:1.37/busybox:1.38/"),
        ],
    ));
    assert_eq!(
        run(&[
            "get",
            "deploy",
            "app",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "busybox:1.38"
    );
    run(&["scale", "deploy", "app", "--replicas=5"]);
    assert_eq!(
        run(&["get", "deploy", "app", "-o", "jsonpath={.spec.replicas}"]),
        "5"
    );
    let described = run(&["describe", "deploy", "app"]);
    assert!(
        described.contains("Replicas:") && described.contains("busybox:1.38"),
        "{described}"
    );

    // selectors and server-side dry run.
    run(&["create", "cm", "sel-a"]);
    run(&["label", "cm", "sel-a", "pick=yes"]);
    run(&["create", "cm", "sel-b"]);
    let picked = run(&["get", "cm", "-l", "pick=yes", "-o", "name"]);
    assert_eq!(picked.trim(), "configmap/sel-a");
    let by_field = run(&[
        "get",
        "cm",
        "--field-selector",
        "metadata.name=sel-b",
        "-o",
        "name",
    ]);
    assert_eq!(by_field.trim(), "configmap/sel-b");
    run(&["create", "cm", "dry", "--dry-run=server"]);
    assert!(fails(server.kubectl(k, &["get", "cm", "dry"])).contains("NotFound"));

    // invalid input is refused with the server's message.
    let invalid = stdin_fail(
        server,
        k,
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n",
    );
    assert!(
        invalid.contains("Invalid value") || invalid.contains("invalid"),
        "{invalid}"
    );
    let unknown = stdin_fail(
        server,
        k,
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: strict}\nbogus: 1\n",
    );
    assert!(unknown.contains("unknown field"), "{unknown}");

    // watch: kubectl get -w sees a new object.
    let watcher = std::process::Command::new(k)
        .args(["get", "cm", "-w", "--request-timeout=8s"])
        .env("KUBECONFIG", server.kubeconfig())
        .env("HOME", server.dir.path().join("home"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    run(&["create", "cm", "watched-one"]);
    std::thread::sleep(Duration::from_millis(1500));
    let _ = std::process::Command::new("kill")
        .arg(watcher.id().to_string())
        .status();
    let seen = String::from_utf8_lossy(&watcher.wait_with_output().unwrap().stdout).into_owned();
    assert!(seen.contains("watched-one"), "watch output:\n{seen}");

    // CRD and a custom resource with printer columns.
    let crd = dir.join("crd.yaml");
    std::fs::write(&crd, CRD).unwrap();
    run(&["apply", "-f", crd.to_str().unwrap()]);
    assert!(eventually(Duration::from_secs(5), || server
        .kubectl(k, &["get", "widgets"])
        .status
        .success()));
    stdin(
        &["apply", "-f", "-"],
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3}\n",
    );
    let widgets = run(&["get", "wd"]);
    assert!(
        widgets.contains("SIZE") && widgets.contains("w1") && widgets.contains('3'),
        "{widgets}"
    );
    run(&[
        "patch",
        "widget",
        "w1",
        "--type=merge",
        "-p",
        r#"{"spec":{"size":7}}"#,
    ]);
    assert_eq!(
        run(&["get", "widget", "w1", "-o", "jsonpath={.spec.size}"]),
        "7"
    );
    let wrong_type = stdin_fail(
        server,
        k,
        &["apply", "-f", "-"],
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: big}\n",
    );
    assert!(
        wrong_type.contains("must be of type integer"),
        "{wrong_type}"
    );

    // delete: cascade variants, --wait, namespaces.
    for mode in ["background", "orphan", "foreground"] {
        let parent = format!("parent-{mode}");
        run(&["create", "cm", &parent]);
        let uid = run(&["get", "cm", &parent, "-o", "jsonpath={.metadata.uid}"]);
        let child = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: child-{mode}\n  ownerReferences:\n  - {{apiVersion: v1, kind: ConfigMap, name: {parent}, uid: {uid}, blockOwnerDeletion: true}}\n");
        stdin(&["apply", "-f", "-"], &child);
        run(&[
            "delete",
            "cm",
            &parent,
            &format!("--cascade={mode}"),
            "--wait=true",
            "--timeout=20s",
        ]);
        let child_name = format!("child-{mode}");
        if mode == "orphan" {
            assert!(eventually(Duration::from_secs(10), || {
                run(&[
                    "get",
                    "cm",
                    &child_name,
                    "-o",
                    "jsonpath={.metadata.ownerReferences}",
                ])
                .trim()
                .is_empty()
                    || run(&[
                        "get",
                        "cm",
                        &child_name,
                        "-o",
                        "jsonpath={.metadata.ownerReferences}",
                    ])
                    .trim()
                        == "[]"
            }));
        } else {
            assert!(
                eventually(Duration::from_secs(10), || !server
                    .kubectl(k, &["get", "cm", &child_name])
                    .status
                    .success()),
                "{mode}: child not collected"
            );
        }
    }
    run(&["delete", "ns", "suite", "--wait=true", "--timeout=30s"]);
    assert!(fails(server.kubectl(k, &["get", "ns", "suite"])).contains("NotFound"));
}

fn stdin_fail(server: &Server, k: &str, args: &[&str], input: &str) -> String {
    fails(server.kubectl_stdin(k, args, input))
}

#[test]
fn kubectl_133_embedded() {
    suite(&Server::start(), KUBECTL_133);
}

#[test]
fn kubectl_129_embedded() {
    suite(&Server::start(), KUBECTL_129);
}

#[test]
fn kubectl_128_embedded() {
    suite(&Server::start(), KUBECTL_128);
}

#[test]
fn kubectl_127_embedded() {
    suite(&Server::start(), KUBECTL_127);
}

#[test]
#[ignore = "needs etcd"]
fn kubectl_133_etcd() {
    let etcd = etcd();
    suite(&Server::start_with_store(&etcd.store_url()), KUBECTL_133);
}

#[test]
#[ignore = "needs etcd"]
fn kubectl_129_etcd() {
    let etcd = etcd();
    suite(&Server::start_with_store(&etcd.store_url()), KUBECTL_129);
}
