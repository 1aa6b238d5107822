//! `keelson bench authz`: what authorization costs. The same API load (the `bench api`
//! phases, embedded store) runs twice in this process as an ordinary user from a token file:
//! first under `--authorization-mode AlwaysAllow` (the baseline), then under `Node,RBAC`
//! with a realistic policy of `--bindings` RoleBindings and ClusterRoleBindings to other
//! users and groups besides the user's own; the ratio table compares the two.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, RoleRef, Subject};
use kube::api::{Api, PostParams};

use super::api::{measure, Sizes};
use super::backend::{self, Backend, StartError};
use super::report;

const USER: &str = "bench-user";
const TOKEN: &str = "bench-user-token";

/// Flags of `keelson bench authz`.
#[derive(Args, Debug)]
pub(crate) struct AuthzBench {
    /// Small counts, for a smoke run.
    #[arg(long)]
    quick: bool,
    /// Bindings in the RBAC policy (besides the bootstrap ones) [default: 200].
    #[arg(long, default_value_t = 200)]
    bindings: usize,
    /// Parent of the temp data dirs [default: the system temp dir].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Rounds; each starts fresh servers, alternating which mode goes first, and every
    /// figure keeps its best value over the rounds (the machine's noise is one-sided).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
}

/// Keeps, per metric, the better of `best` and `next` (higher rates, lower latencies).
fn keep_best(best: &mut report::Report, next: report::Report) {
    for m in next.metrics {
        let Some(b) = best.metrics.iter_mut().find(|b| b.key == m.key) else {
            best.metrics.push(m);
            continue;
        };
        b.value = match (b.value, m.value) {
            (Some(x), Some(y)) => Some(match m.unit {
                report::Unit::PerSec => x.max(y),
                _ => x.min(y),
            }),
            (x, y) => x.or(y),
        };
    }
    best.notes.extend(next.notes);
    best.notes.dedup();
}

fn binding_meta(
    name: String,
    ns: Option<&str>,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: Some(name),
        namespace: ns.map(String::from),
        ..Default::default()
    }
}

fn role_ref(name: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: "ClusterRole".into(),
        name: name.into(),
    }
}

fn subject(kind: &str, name: &str) -> Subject {
    Subject {
        api_group: Some("rbac.authorization.k8s.io".into()),
        kind: kind.into(),
        name: name.into(),
        namespace: None,
    }
}

/// The bench user may use the bench namespaces (`edit` plus creating namespaces), among
/// `n` bindings for 50 teams' namespaces, users and groups.
async fn policy(client: kube::Client, n: usize) -> anyhow::Result<()> {
    let crbs: Api<ClusterRoleBinding> = Api::all(client.clone());
    let pp = PostParams::default();
    let mut own = ClusterRoleBinding {
        metadata: binding_meta("bench-user-edit".into(), None),
        role_ref: role_ref("edit"),
        subjects: Some(vec![subject("User", USER)]),
    };
    crbs.create(&pp, &own)
        .await
        .context("binding the bench user")?;
    let create_namespaces = k8s_openapi::api::rbac::v1::ClusterRole {
        metadata: binding_meta("bench-namespaces".into(), None),
        rules: Some(vec![k8s_openapi::api::rbac::v1::PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["namespaces".into()]),
            verbs: vec!["create".into(), "get".into()],
            ..Default::default()
        }]),
        ..Default::default()
    };
    Api::<k8s_openapi::api::rbac::v1::ClusterRole>::all(client.clone())
        .create(&pp, &create_namespaces)
        .await?;
    own.metadata = binding_meta("bench-user-namespaces".into(), None);
    own.role_ref = role_ref("bench-namespaces");
    crbs.create(&pp, &own).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for team in 0..50 {
        let ns = Namespace {
            metadata: binding_meta(format!("team-{team}"), None),
            ..Default::default()
        };
        namespaces.create(&pp, &ns).await?;
    }
    let roles = ["view", "edit", "admin"];
    for i in 0..n {
        let role = roles[i % roles.len()];
        let who = match i % 3 {
            0 => subject("User", &format!("user-{i}")),
            1 => subject("Group", &format!("group-{}", i % 40)),
            _ => Subject {
                api_group: None,
                kind: "ServiceAccount".into(),
                name: format!("sa-{i}"),
                namespace: Some(format!("team-{}", i % 50)),
            },
        };
        if i % 5 == 0 {
            let b = ClusterRoleBinding {
                metadata: binding_meta(format!("crb-{i}"), None),
                role_ref: role_ref(role),
                subjects: Some(vec![who]),
            };
            crbs.create(&pp, &b).await?;
        } else {
            let ns = format!("team-{}", i % 50);
            let b = RoleBinding {
                metadata: binding_meta(format!("rb-{i}"), Some(&ns)),
                role_ref: role_ref(role),
                subjects: Some(vec![who]),
            };
            Api::<RoleBinding>::namespaced(client.clone(), &ns)
                .create(&pp, &b)
                .await?;
        }
    }
    Ok(())
}

impl AuthzBench {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let sizes = Sizes::resolve(self.quick);
        let base = self.dir.clone().unwrap_or_else(std::env::temp_dir);
        report::banner("authz", "the load generator and the server", &base);
        let tokens = tempfile::tempdir()?;
        let file = tokens.path().join("tokens.csv");
        std::fs::write(&file, format!("{TOKEN},{USER},1000\n"))?;
        let modes = [
            (
                "AlwaysAllow",
                keelson_apiserver::AuthorizationMode::AlwaysAllow,
            ),
            ("RBAC", keelson_apiserver::AuthorizationMode::NodeRbac),
        ];
        let mut best: Vec<Option<report::Report>> = vec![None, None];
        let mut keep = Vec::new();
        for round in 0..self.rounds.max(1) {
            let order: Vec<usize> = if round % 2 == 0 {
                vec![0, 1]
            } else {
                vec![1, 0]
            };
            for i in order {
                let (name, mode) = modes[i];
                let auth = keelson_apiserver::AuthConfig {
                    token_auth_file: Some(file.clone()),
                    authorization_mode: mode,
                    ..Default::default()
                };
                eprintln!(
                    "bench: round {}, starting the server with {name}",
                    round + 1
                );
                let started = match backend::start_with(Backend::Embedded, &base, auth).await {
                    Ok(s) => s,
                    Err(StartError::Skip(why)) => anyhow::bail!("the server did not start: {why}"),
                    Err(StartError::Failed(e)) => return Err(e.context("the server did not start")),
                };
                // The same objects in both modes (only the authorizer differs); then let the
                // controllers finish reacting to the new namespaces before measuring.
                policy(started.in_process.clone(), self.bindings).await?;
                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                let endpoint = started.endpoint.with_token(TOKEN);
                let mut r = measure(Backend::Embedded, &endpoint, started.cold_start, sizes).await;
                r.backend = name.into();
                r.setup = format!("{} as {USER} (token file)", r.setup);
                r.notes.push(format!(
                    "{} bindings besides the bootstrap policy (enforced only under RBAC); best of {} rounds",
                    self.bindings, self.rounds
                ));
                match &mut best[i] {
                    Some(b) => keep_best(b, r),
                    slot => *slot = Some(r),
                }
                keep.push(started);
            }
        }
        let reports: Vec<report::Report> = best.into_iter().flatten().collect();
        for r in &reports {
            print!("{}", report::table(r));
        }
        print!("{}", report::comparison(&reports[1], &reports[0]));
        drop(keep);
        Ok(())
    }
}
