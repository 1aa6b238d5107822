//! Reconciling Kubernetes' bootstrap roles and bindings at every start, as the API server's
//! `rbac/bootstrap-roles` post-start hook does: missing objects are created; existing ones
//! without `rbac.authorization.kubernetes.io/autoupdate: "false"` get back any rule, label or
//! subject they lost (nothing is removed, so an operator's additions stay).

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, PostParams};
use kube::Resource;

const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

fn autoupdate(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(AUTOUPDATE))
        .is_none_or(|v| v != "false")
}

fn merge_meta(
    have: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    want: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> bool {
    let mut changed = false;
    for (mine, theirs) in [
        (&mut have.labels, &want.labels),
        (&mut have.annotations, &want.annotations),
    ] {
        let mine = mine.get_or_insert_with(Default::default);
        for (k, v) in theirs.iter().flatten() {
            if !mine.contains_key(k) {
                mine.insert(k.clone(), v.clone());
                changed = true;
            }
        }
    }
    changed
}

/// Creates or repairs every bootstrap ClusterRole and ClusterRoleBinding. Servers sharing a
/// store may reconcile at the same moment: a create or update that loses to another server's
/// (409 AlreadyExists or Conflict) starts the pass again, which then finds their objects.
pub(crate) async fn reconcile(client: &kube::Client) -> Result<(), kube::Error> {
    const ATTEMPTS: usize = 5;
    for _ in 1..ATTEMPTS {
        match reconcile_once(client).await {
            Err(kube::Error::Api(e)) if e.code == 409 => {
                tracing::debug!(reason = %e.reason, "bootstrap policy raced another server; again");
            }
            done => return done,
        }
    }
    reconcile_once(client).await
}

/// How many objects one pass reconciles at once: their writes share the store's commits
/// instead of waiting for one fsync each.
const CONCURRENCY: usize = 32;

async fn reconcile_once(client: &kube::Client) -> Result<(), kube::Error> {
    use futures::{FutureExt as _, StreamExt as _, TryStreamExt as _};
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let roles = keelson_auth::policy::cluster_roles()
        .into_iter()
        .map(|want| reconcile_role(&roles, want).boxed());
    let bindings = keelson_auth::policy::cluster_role_bindings()
        .into_iter()
        .map(|want| reconcile_binding(&bindings, want).boxed());
    futures::stream::iter(roles.chain(bindings))
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await
}

async fn reconcile_role(roles: &Api<ClusterRole>, want: ClusterRole) -> Result<(), kube::Error> {
    let name = want.meta().name.clone().unwrap_or_default();
    let Some(mut have) = roles.get_opt(&name).await? else {
        roles.create(&PostParams::default(), &want).await?;
        return Ok(());
    };
    if !autoupdate(&have.metadata) {
        return Ok(());
    }
    let mut changed = merge_meta(&mut have.metadata, &want.metadata);
    if want.aggregation_rule.is_some() && have.aggregation_rule.is_none() {
        have.aggregation_rule = want.aggregation_rule.clone();
        changed = true;
    }
    // Aggregated roles get their rules from the aggregation, not from here.
    if want.aggregation_rule.is_none() {
        let rules = have.rules.get_or_insert_with(Vec::new);
        for r in want.rules.iter().flatten() {
            if !rules.contains(r) {
                rules.push(r.clone());
                changed = true;
            }
        }
    }
    if changed {
        roles.replace(&name, &PostParams::default(), &have).await?;
    }
    Ok(())
}

async fn reconcile_binding(
    bindings: &Api<ClusterRoleBinding>,
    want: ClusterRoleBinding,
) -> Result<(), kube::Error> {
    let name = want.meta().name.clone().unwrap_or_default();
    let Some(mut have) = bindings.get_opt(&name).await? else {
        bindings.create(&PostParams::default(), &want).await?;
        return Ok(());
    };
    if !autoupdate(&have.metadata) {
        return Ok(());
    }
    if have.role_ref != want.role_ref {
        // roleRef is immutable: recreate, as Kubernetes' reconciler does.
        bindings.delete(&name, &Default::default()).await?;
        bindings.create(&PostParams::default(), &want).await?;
        return Ok(());
    }
    let mut changed = merge_meta(&mut have.metadata, &want.metadata);
    let subjects = have.subjects.get_or_insert_with(Vec::new);
    for s in want.subjects.iter().flatten() {
        if !subjects.contains(s) {
            subjects.push(s.clone());
            changed = true;
        }
    }
    if changed {
        bindings
            .replace(&name, &PostParams::default(), &have)
            .await?;
    }
    Ok(())
}
