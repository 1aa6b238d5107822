//! Service cluster IPs and NodePorts with kubectl 1.33: 50 NodePort Services created in
//! parallel get 50 distinct ports and IPs; an asked-for port or IP that is taken, out of range,
//! or a nodePort on a ClusterIP Service is refused with Kubernetes' message; a deleted Service's
//! port and a port dropped by a type change can be had again; dry-run holds nothing; a
//! restarted server still knows every allocation.

use std::collections::HashSet;

use crate::harness::{fails, ok, Server, KUBECTL_133};

fn service(name: &str, ty: &str, extra_port: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  type: {ty}\n  selector: {{app: {name}}}\n  ports: [{{port: 80{extra_port}}}]\n{extra_spec}"
    )
}

fn create(server: &Server, yaml: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["create", "-f", "-"];
    args.extend_from_slice(extra);
    server.kubectl_stdin(KUBECTL_133, &args, yaml)
}

fn field(server: &Server, name: &str, path: &str) -> String {
    ok(server.kubectl(
        KUBECTL_133,
        &["get", "svc", name, "-o", &format!("jsonpath={{{path}}}")],
    ))
}

#[test]
fn node_ports_and_cluster_ips_never_collide_and_survive_a_restart() {
    let mut server = Server::start();
    let server_ref = &server;
    let outs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                s.spawn(move || {
                    create(
                        server_ref,
                        &service(&format!("np-{i}"), "NodePort", "", ""),
                        &[],
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for out in outs {
        ok(out);
    }
    let listed = ok(server.kubectl(
        KUBECTL_133,
        &[
            "get",
            "svc",
            "-o",
            r#"jsonpath={range .items[?(@.spec.type=="NodePort")]}{.spec.ports[0].nodePort} {.spec.clusterIP}{"\n"}{end}"#,
        ],
    ));
    let rows: Vec<(u16, String)> = listed
        .lines()
        .map(|l| {
            let (port, ip) = l.split_once(' ').unwrap();
            (port.parse().unwrap(), ip.to_string())
        })
        .collect();
    assert_eq!(rows.len(), 50, "{listed}");
    let ports: HashSet<u16> = rows.iter().map(|r| r.0).collect();
    let ips: HashSet<&String> = rows.iter().map(|r| &r.1).collect();
    assert_eq!(ports.len(), 50, "duplicate NodePorts: {listed}");
    assert_eq!(ips.len(), 50, "duplicate cluster IPs: {listed}");
    assert!(
        ports.iter().all(|p| (30000..=32767).contains(p)),
        "{listed}"
    );
    assert!(
        !ips.contains(&"10.43.0.10".to_string()),
        "the DNS address is kept"
    );

    // Taken, out of range, forbidden.
    let (taken_port, taken_ip) = rows[0].clone();
    let err = fails(create(
        &server,
        &service(
            "dup-port",
            "NodePort",
            &format!(", nodePort: {taken_port}"),
            "",
        ),
        &[],
    ));
    assert!(
        err.contains(&format!(
            "spec.ports[0].nodePort: Invalid value: {taken_port}: provided port is already allocated"
        )),
        "{err}"
    );
    let err = fails(create(
        &server,
        &service(
            "dup-ip",
            "ClusterIP",
            "",
            &format!("  clusterIP: {taken_ip}\n"),
        ),
        &[],
    ));
    assert!(
        err.contains(&format!(
            "failed to allocate IP {taken_ip}: provided IP is already allocated"
        )),
        "{err}"
    );
    let err = fails(create(
        &server,
        &service("low", "NodePort", ", nodePort: 80", ""),
        &[],
    ));
    assert!(
        err.contains(
            "provided port is not in the valid range. The range of valid ports is 30000-32767"
        ),
        "{err}"
    );
    let err = fails(create(
        &server,
        &service("far-ip", "ClusterIP", "", "  clusterIP: 192.168.1.1\n"),
        &[],
    ));
    assert!(
        err.contains("The range of valid IPs is 10.43.0.0/16"),
        "{err}"
    );
    let err = fails(create(
        &server,
        &service("cip", "ClusterIP", ", nodePort: 30999", ""),
        &[],
    ));
    assert!(
        err.contains(
            "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
        ),
        "{err}"
    );

    // Dry-run holds nothing; a deleted Service's port is free again.
    let free_port = 32100;
    ok(create(
        &server,
        &service("dry", "NodePort", &format!(", nodePort: {free_port}"), ""),
        &["--dry-run=server"],
    ));
    ok(create(
        &server,
        &service("real", "NodePort", &format!(", nodePort: {free_port}"), ""),
        &[],
    ));
    ok(server.kubectl(KUBECTL_133, &["delete", "svc", "real"]));
    ok(create(
        &server,
        &service("again", "NodePort", &format!(", nodePort: {free_port}"), ""),
        &[],
    ));
    // A type change to ClusterIP drops the NodePort and gives it back.
    ok(server.kubectl(
        KUBECTL_133,
        &[
            "patch",
            "svc",
            "again",
            "-p",
            r#"{"spec":{"type":"ClusterIP"}}"#,
        ],
    ));
    assert_eq!(field(&server, "again", ".spec.ports[0].nodePort"), "");
    ok(create(
        &server,
        &service(
            "after-type-change",
            "NodePort",
            &format!(", nodePort: {free_port}"),
            "",
        ),
        &[],
    ));
    // ExternalName and headless Services hold no IP.
    ok(create(
        &server,
        "apiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec: {type: ExternalName, externalName: example.com}\n",
        &[],
    ));
    assert_eq!(field(&server, "ext", ".spec.clusterIP"), "");
    ok(create(
        &server,
        &service("headless", "ClusterIP", "", "  clusterIP: None\n"),
        &[],
    ));
    assert_eq!(field(&server, "headless", ".spec.clusterIP"), "None");

    // After a restart every allocation is still known.
    server.restart();
    let err = fails(create(
        &server,
        &service(
            "after-restart",
            "NodePort",
            &format!(", nodePort: {taken_port}"),
            "",
        ),
        &[],
    ));
    assert!(err.contains("provided port is already allocated"), "{err}");
    let err = fails(create(
        &server,
        &service(
            "after-restart-ip",
            "ClusterIP",
            "",
            &format!("  clusterIP: {taken_ip}\n"),
        ),
        &[],
    ));
    assert!(err.contains("provided IP is already allocated"), "{err}");
}
