//! The rollout strategies, step for step as Kubernetes' deployment controller: RollingUpdate
//! (scale the new ReplicaSet up within maxSurge, old ones down within maxUnavailable),
//! Recreate (all old pods gone before the new ReplicaSet scales up), and scaling without a
//! rollout (paused Deployments and `spec.replicas` changes, proportionally across sets).

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::sets::{available, desired, max_replicas, revision, spec_replicas};
use super::Pass;
use crate::error::Error;
use crate::{ownership, selector};

/// What a pass did: the new ReplicaSet's index, whether progress should be estimated (a
/// rollout step, not a plain scale), and whether it waits for something no event announces.
pub(crate) struct Outcome {
    pub new_set: Option<usize>,
    pub rollout: bool,
    pub waiting: bool,
}

/// Whether some active set was last scaled for another Deployment size (`kubectl scale`).
pub(crate) fn is_scaling_event(pass: &Pass) -> bool {
    pass.sets
        .iter()
        .filter(|rs| spec_replicas(rs) > 0)
        .any(|rs| desired(rs).is_some_and(|d| d != pass.replicas()))
}

/// Scaling without a rollout (Kubernetes' `sync`).
pub(crate) async fn scale_only(pass: &mut Pass) -> Result<Outcome, Error> {
    let new = pass.ensure_new(false, 0).await?;
    scale(pass, new).await?;
    if pass.paused() {
        pass.cleanup(new).await?;
    }
    Ok(Outcome {
        new_set: new,
        rollout: false,
        waiting: false,
    })
}

fn olds(pass: &Pass, new: Option<usize>) -> Vec<usize> {
    let mut old: Vec<usize> = (0..pass.sets.len()).filter(|i| Some(*i) != new).collect();
    old.sort_by_key(|i| {
        let rs = &pass.sets[*i];
        (
            rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
            revision(rs),
        )
    });
    old
}

async fn scale(pass: &mut Pass, new: Option<usize>) -> Result<(), Error> {
    let replicas = pass.replicas();
    let active: Vec<usize> = (0..pass.sets.len())
        .filter(|i| spec_replicas(&pass.sets[*i]) > 0)
        .collect();
    // One active set (or none: the new one, else the newest old one) takes the whole size.
    let only = match active.len() {
        0 => new.or_else(|| olds(pass, None).last().copied()),
        1 => Some(active[0]),
        _ => None,
    };
    if let Some(i) = only {
        pass.scale_set(i, replicas).await?;
        return Ok(());
    }
    let saturated = new.is_some_and(|i| {
        spec_replicas(&pass.sets[i]) == replicas && available(&pass.sets[i]) >= replicas
    });
    if saturated {
        for i in olds(pass, new) {
            pass.scale_set(i, 0).await?;
        }
        return Ok(());
    }
    if pass.recreate() {
        return Ok(());
    }
    for (i, size) in proportional(pass, &active) {
        pass.scale_set(i, size).await?;
    }
    Ok(())
}

/// Kubernetes' proportional scaling: the sets' total moves to `replicas + maxSurge`, each set
/// getting its share by the size it was last scaled for, the rounding leftover to the largest.
fn proportional(pass: &Pass, active: &[usize]) -> Vec<(usize, i32)> {
    let replicas = pass.replicas();
    let allowed = if replicas > 0 {
        replicas + pass.max_surge()
    } else {
        0
    };
    let current: i32 = active.iter().map(|i| spec_replicas(&pass.sets[*i])).sum();
    let to_add = allowed - current;
    let mut order = active.to_vec();
    order.sort_by_key(|i| {
        let rs = &pass.sets[*i];
        let created = rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
        (
            std::cmp::Reverse(spec_replicas(rs)),
            std::cmp::Reverse(created),
        )
    });
    if to_add < 0 {
        order.reverse();
    }
    let mut added = 0;
    let mut sizes: Vec<(usize, i32)> = Vec::new();
    for i in order {
        let rs = &pass.sets[i];
        let size = spec_replicas(rs);
        let proportion = if to_add == 0 || size == 0 {
            0
        } else {
            let status_replicas = pass
                .deployment
                .status
                .as_ref()
                .and_then(|s| s.replicas)
                .unwrap_or(current);
            let annotated = max_replicas(rs)
                .filter(|a| *a > 0)
                .unwrap_or(status_replicas.max(1));
            let target = (f64::from(size) * f64::from(allowed) / f64::from(annotated)).round();
            let fraction = target as i32 - size;
            let left = to_add - added;
            if to_add > 0 {
                fraction.min(left)
            } else {
                fraction.max(left)
            }
        };
        added += proportion;
        sizes.push((i, size + proportion));
    }
    if let Some(first) = sizes.first_mut() {
        first.1 = (first.1 + to_add - added).max(0);
    }
    sizes
}

/// Kubernetes' `NewRSNewReplicas` for RollingUpdate: grow the new set up to
/// `replicas + maxSurge` pods in total.
fn new_replicas(pass: &Pass, current_new: i32) -> i32 {
    let replicas = pass.replicas();
    if current_new >= replicas {
        return replicas;
    }
    let max_total = replicas + pass.max_surge();
    let all = pass.total_spec();
    if all >= max_total {
        return current_new;
    }
    current_new + (max_total - all).min(replicas - current_new)
}

/// One RollingUpdate step.
pub(crate) async fn rolling(pass: &mut Pass) -> Result<Outcome, Error> {
    let initial = new_replicas(pass, 0);
    let new = pass
        .ensure_new(true, initial)
        .await?
        .ok_or_else(|| Error::Contended(format!("new ReplicaSet of {}", pass.name())))?;
    let outcome = Outcome {
        new_set: Some(new),
        rollout: true,
        waiting: false,
    };
    let target = new_replicas(pass, spec_replicas(&pass.sets[new]));
    if pass.scale_set(new, target).await? {
        return Ok(outcome);
    }
    if scale_down_old(pass, new).await? {
        return Ok(outcome);
    }
    if complete(pass, new) {
        pass.cleanup(Some(new)).await?;
    }
    Ok(outcome)
}

fn complete(pass: &Pass, new: usize) -> bool {
    let rs = &pass.sets[new];
    let all_status: i32 = pass
        .sets
        .iter()
        .map(|s| s.status.as_ref().map(|s| s.replicas).unwrap_or(0))
        .sum();
    let replicas = pass.replicas();
    spec_replicas(rs) == replicas && available(rs) >= replicas && all_status == replicas
}

/// Kubernetes' `reconcileOldReplicaSets`: first unhealthy old pods, then healthy ones while
/// enough stay available.
async fn scale_down_old(pass: &mut Pass, new: usize) -> Result<bool, Error> {
    let old = olds(pass, Some(new));
    if old.iter().all(|i| spec_replicas(&pass.sets[*i]) == 0) {
        return Ok(false);
    }
    let min_available = pass.replicas() - pass.max_unavailable();
    let new_unavailable = spec_replicas(&pass.sets[new]) - available(&pass.sets[new]);
    let max_scaled_down = pass.total_spec() - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Ok(false);
    }
    let mut cleaned = 0;
    for &i in &old {
        if cleaned >= max_scaled_down {
            break;
        }
        let (size, avail) = (spec_replicas(&pass.sets[i]), available(&pass.sets[i]));
        if size == 0 || size == avail {
            continue;
        }
        let down = (max_scaled_down - cleaned).min(size - avail);
        pass.scale_set(i, size - down).await?;
        cleaned += down;
    }
    let available_now: i32 = pass.sets.iter().map(available).sum();
    let mut scaled = 0;
    if available_now > min_available {
        let total = available_now - min_available;
        for &i in &old {
            if scaled >= total {
                break;
            }
            let size = spec_replicas(&pass.sets[i]);
            if size == 0 {
                continue;
            }
            let down = size.min(total - scaled);
            pass.scale_set(i, size - down).await?;
            scaled += down;
        }
    }
    Ok(cleaned + scaled > 0)
}

/// One Recreate step: old sets to zero, wait until their pods are gone, then the new set.
pub(crate) async fn recreate(pass: &mut Pass) -> Result<Outcome, Error> {
    let mut new = pass.ensure_new(false, 0).await?;
    let mut scaled_down = false;
    for i in olds(pass, new) {
        if spec_replicas(&pass.sets[i]) > 0 {
            scaled_down |= pass.scale_set(i, 0).await?;
        }
    }
    if scaled_down || old_pods_running(pass, new).await? {
        return Ok(Outcome {
            new_set: new,
            rollout: true,
            waiting: true,
        });
    }
    if new.is_none() {
        new = pass.ensure_new(true, pass.replicas()).await?;
    }
    if let Some(i) = new {
        pass.scale_set(i, pass.replicas()).await?;
        if complete(pass, i) {
            pass.cleanup(new).await?;
        }
    }
    Ok(Outcome {
        new_set: new,
        rollout: true,
        waiting: false,
    })
}

/// Whether any pod of an old set still exists and has not terminated.
async fn old_pods_running(pass: &Pass, new: Option<usize>) -> Result<bool, Error> {
    let old = olds(pass, new);
    if old.iter().any(|i| {
        pass.sets[*i]
            .status
            .as_ref()
            .is_some_and(|s| s.replicas > 0)
    }) {
        return Ok(true);
    }
    let old_uids: Vec<&str> = old
        .iter()
        .filter_map(|i| pass.sets[*i].metadata.uid.as_deref())
        .collect();
    let sel = pass
        .deployment
        .spec
        .as_ref()
        .map(|s| s.selector.clone())
        .unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(pass.client.clone(), &pass.namespace());
    let listed = pods
        .list(&ListParams::default().labels(&selector::match_labels_query(&sel)))
        .await?;
    Ok(listed.items.iter().any(|p| {
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
        !matches!(phase, Some("Succeeded" | "Failed"))
            && ownership::controller_of(&p.metadata)
                .is_some_and(|c| old_uids.contains(&c.uid.as_str()))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
    use std::sync::Arc;

    fn set(name: &str, replicas: i32, desired: i32, created: &str) -> ReplicaSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "creationTimestamp": created, "annotations": {
                "deployment.kubernetes.io/desired-replicas": desired.to_string(),
                "deployment.kubernetes.io/max-replicas": (desired + desired / 4 + 1).to_string()}},
            "spec": {"replicas": replicas, "selector": {}},
        }))
        .unwrap()
    }

    fn pass(replicas: i32, surge: &str, unavailable: &str, sets: Vec<ReplicaSet>) -> Pass {
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
                "template": {}},
        }))
        .unwrap();
        // Never used to send: these functions only compute.
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        Pass {
            sets_api: kube::Api::namespaced(client.clone(), "default"),
            client,
            deployment: Arc::new(d),
            sets,
            created: false,
        }
    }

    #[tokio::test]
    async fn surge_and_unavailable_fenceposts() {
        let p = pass(10, "25%", "25%", vec![]);
        assert_eq!((p.max_surge(), p.max_unavailable()), (3, 2));
        let p = pass(3, "0%", "0%", vec![]);
        assert_eq!(
            (p.max_surge(), p.max_unavailable()),
            (0, 1),
            "never both zero"
        );
        // A new rollout of 10 with 10 old pods may add maxSurge pods.
        let p = pass(
            10,
            "25%",
            "25%",
            vec![set("old", 10, 10, "2026-01-01T00:00:00Z")],
        );
        assert_eq!(new_replicas(&p, 0), 3);
        assert_eq!(new_replicas(&p, 12), 10, "never above spec.replicas");
    }

    #[tokio::test]
    async fn scaling_mid_rollout_is_proportional() {
        // 10 → 20 while old has 8 and new 5 (13 = 10 + surge 3): the 12 extra
        // (20 + 5 surge - 13) split by each set's share, the leftover to the largest.
        let p = pass(
            20,
            "25%",
            "25%",
            vec![
                set("old", 8, 10, "2026-01-01T00:00:00Z"),
                set("new", 5, 10, "2026-01-02T00:00:00Z"),
            ],
        );
        let sizes = proportional(&p, &[0, 1]);
        let total: i32 = sizes.iter().map(|(_, n)| n).sum();
        assert_eq!(total, 25, "replicas + maxSurge in all: {sizes:?}");
        // Kubernetes' arithmetic: 8·25/13 → 15 and 5·25/13 → 10 (max-replicas 13).
        assert_eq!(sizes, [(0, 15), (1, 10)]);
    }
}
