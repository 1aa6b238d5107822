use k8s_openapi::api::rbac::v1::{Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;
use crate::policy::{self, rule};

fn bootstrap() -> Objects {
    Objects {
        cluster_roles: policy::cluster_roles(),
        cluster_role_bindings: policy::cluster_role_bindings(),
        ..Default::default()
    }
}

fn role_binding(ns: &str, name: &str, kind: &str, role: &str, user: &str) -> RoleBinding {
    RoleBinding {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: kind.into(),
            name: role.into(),
        },
        subjects: Some(vec![Subject {
            kind: "User".into(),
            name: user.into(),
            ..Default::default()
        }]),
    }
}

fn can(rbac: &Rbac, user: &UserInfo, verb: &str, ns: &str, group: &str, resource: &str) -> bool {
    rbac.authorize(user, &Attributes::resource(verb, ns, group, resource, ""))
        .allowed()
}

#[test]
fn bootstrap_policy_grants_what_kubernetes_grants() {
    let mut objects = bootstrap();
    objects.role_bindings.push(role_binding(
        "dev",
        "alice-view",
        "ClusterRole",
        "view",
        "alice",
    ));
    objects.role_bindings.push(role_binding(
        "dev",
        "bob-edit",
        "ClusterRole",
        "edit",
        "bob",
    ));
    objects.role_bindings.push(role_binding(
        "dev",
        "carol-admin",
        "ClusterRole",
        "admin",
        "carol",
    ));
    let rbac = Rbac::new(&objects);
    let (alice, bob, carol) = (
        UserInfo::new("alice", &[]),
        UserInfo::new("bob", &[]),
        UserInfo::new("carol", &[]),
    );
    assert!(can(&rbac, &alice, "list", "dev", "", "pods"));
    assert!(can(&rbac, &alice, "get", "dev", "apps", "deployments"));
    assert!(
        !can(&rbac, &alice, "get", "dev", "", "secrets"),
        "view excludes secrets"
    );
    assert!(!can(&rbac, &alice, "create", "dev", "", "pods"));
    assert!(!can(&rbac, &alice, "list", "prod", "", "pods"));
    assert!(can(&rbac, &bob, "create", "dev", "apps", "deployments"));
    assert!(can(&rbac, &bob, "get", "dev", "", "secrets"));
    assert!(
        can(&rbac, &bob, "list", "dev", "", "pods"),
        "edit aggregates view"
    );
    assert!(!can(
        &rbac,
        &bob,
        "create",
        "dev",
        "rbac.authorization.k8s.io",
        "rolebindings"
    ));
    assert!(can(
        &rbac,
        &carol,
        "create",
        "dev",
        "rbac.authorization.k8s.io",
        "rolebindings"
    ));
    assert!(
        can(&rbac, &carol, "delete", "dev", "batch", "jobs"),
        "admin aggregates edit"
    );
    // Everyone authenticated may discover and ask about itself.
    assert!(rbac
        .authorize(&alice, &Attributes::path("get", "/apis/apps/v1"))
        .allowed());
    assert!(can(
        &rbac,
        &alice,
        "create",
        "",
        "authorization.k8s.io",
        "selfsubjectaccessreviews"
    ));
    let anonymous = UserInfo {
        name: "system:anonymous".into(),
        groups: vec!["system:unauthenticated".into()],
    };
    assert!(rbac
        .authorize(&anonymous, &Attributes::path("get", "/version"))
        .allowed());
    assert!(!rbac
        .authorize(&anonymous, &Attributes::path("get", "/apis"))
        .allowed());
    assert!(!can(&rbac, &anonymous, "list", "default", "", "pods"));
    let admin = UserInfo::admin();
    assert!(can(&rbac, &admin, "delete", "", "", "nodes"));
    assert!(can(
        &rbac,
        &UserInfo::scheduler(),
        "create",
        "d",
        "",
        "pods/binding"
    ));
    assert!(!can(
        &rbac,
        &UserInfo::scheduler(),
        "create",
        "d",
        "",
        "pods"
    ));
}

#[test]
fn allow_reason_names_the_binding() {
    let rbac = Rbac::new(&bootstrap());
    let d = rbac.authorize(
        &UserInfo::admin(),
        &Attributes::resource("get", "", "", "nodes", ""),
    );
    assert_eq!(
        d.reason(),
        "RBAC: allowed by ClusterRoleBinding \"cluster-admin\" of ClusterRole \"cluster-admin\" to Group \"system:masters\""
    );
}

#[test]
fn roles_and_service_accounts() {
    let mut objects = bootstrap();
    objects.roles.push(Role {
        metadata: ObjectMeta {
            name: Some("cm-reader".into()),
            namespace: Some("dev".into()),
            ..Default::default()
        },
        rules: Some(vec![rule(&[""], &["configmaps"], &["get"])]),
    });
    let mut rb = role_binding("dev", "sa", "Role", "cm-reader", "x");
    rb.subjects = Some(vec![Subject {
        kind: "ServiceAccount".into(),
        name: "builder".into(),
        ..Default::default()
    }]);
    objects.role_bindings.push(rb);
    // A binding to a role that does not exist grants nothing.
    objects
        .role_bindings
        .push(role_binding("dev", "ghost", "Role", "missing", "eve"));
    let rbac = Rbac::new(&objects);
    let sa = UserInfo::service_account("dev", "builder");
    assert!(can(&rbac, &sa, "get", "dev", "", "configmaps"));
    assert!(!can(&rbac, &sa, "get", "other", "", "configmaps"));
    assert!(!can(
        &rbac,
        &UserInfo::new("eve", &[]),
        "get",
        "dev",
        "",
        "configmaps"
    ));
    assert_eq!(rbac.bindings(), objects.cluster_role_bindings.len() + 1);
}

#[test]
fn escalation_check_compares_held_rules() {
    let mut objects = bootstrap();
    objects.role_bindings.push(role_binding(
        "dev",
        "bob-edit",
        "ClusterRole",
        "edit",
        "bob",
    ));
    let rbac = Rbac::new(&objects);
    let bob = UserInfo::new("bob", &[]);
    assert!(rbac
        .uncovered(&bob, "dev", &[rule(&[""], &["pods"], &["get"])])
        .is_none());
    let admin_rules = rbac.role_rules("", "ClusterRole", "admin").unwrap();
    assert!(rbac.uncovered(&bob, "dev", &admin_rules).is_some());
    assert!(rbac
        .uncovered(&bob, "prod", &[rule(&[""], &["pods"], &["get"])])
        .is_some());
}

#[test]
fn decisions_cost_microseconds_with_200_bindings() {
    let mut objects = bootstrap();
    for i in 0..200 {
        objects.role_bindings.push(role_binding(
            &format!("team-{}", i % 50),
            &format!("rb-{i}"),
            "ClusterRole",
            "edit",
            &format!("user-{i}"),
        ));
    }
    objects
        .role_bindings
        .push(role_binding("dev", "me", "ClusterRole", "edit", "me"));
    let rbac = Rbac::new(&objects);
    let me = UserInfo::new("me", &[]);
    let a = Attributes::resource("create", "dev", "", "configmaps", "");
    let n = 20_000;
    let started = std::time::Instant::now();
    for _ in 0..n {
        assert!(rbac.authorize(&me, &a).allowed());
    }
    let per = started.elapsed() / n;
    eprintln!("RBAC decision: {per:?}");
    assert!(
        per < std::time::Duration::from_millis(1),
        "{per:?} per decision"
    );
}
