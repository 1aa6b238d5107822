//! InterPodAffinity cases: required affinity, anti-affinity both ways, the first pod of a
//! self-affine group, and preferred-term scores.

use k8s_openapi::api::core::v1::{
    Affinity, PodAffinity, PodAffinityTerm, PodAntiAffinity, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::*;
use crate::framework::Profile;
use crate::testing::{node, pod, snapshot};

fn term(app: &str, key: &str) -> PodAffinityTerm {
    PodAffinityTerm {
        label_selector: Some(LabelSelector {
            match_labels: Some([("app".to_string(), app.to_string())].into()),
            ..Default::default()
        }),
        topology_key: key.into(),
        ..Default::default()
    }
}

fn affinity(required: Vec<PodAffinityTerm>) -> Affinity {
    Affinity {
        pod_affinity: Some(PodAffinity {
            required_during_scheduling_ignored_during_execution: Some(required),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn anti_affinity(required: Vec<PodAffinityTerm>) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            required_during_scheduling_ignored_during_execution: Some(required),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn zones() -> Vec<k8s_openapi::api::core::v1::Node> {
    vec![
        node("a", "4", "8Gi").label("zone", "z1").build(),
        node("b", "4", "8Gi").label("zone", "z1").build(),
        node("c", "4", "8Gi").label("zone", "z2").build(),
    ]
}

fn run(snap: &Snapshot, p: &PodInfo) -> Vec<Status> {
    let mut st = CycleState::default();
    let pre = FilterPlugin::pre_filter(&InterPodAffinity, &mut st, p, snap).unwrap();
    snap.ready_nodes()
        .map(|n| {
            if pre == Pre::Skip {
                Status::success()
            } else {
                FilterPlugin::filter(&InterPodAffinity, &st, p, n)
            }
        })
        .collect()
}

#[test]
fn required_affinity_follows_the_zone_of_matching_pods() {
    let db = pod("db").label("app", "db").build();
    let snap = snapshot(zones(), vec![(db, "a")]);
    let p = pod("web")
        .affinity(affinity(vec![term("db", "zone")]))
        .info();
    let got = run(&snap, &p);
    assert!(got[0].is_success() && got[1].is_success());
    assert_eq!(got[2], Status::unresolvable(ERR_AFFINITY));
}

#[test]
fn first_pod_of_a_self_affine_group_goes_anywhere() {
    let snap = snapshot(zones(), vec![]);
    let p = pod("web")
        .label("app", "web")
        .affinity(affinity(vec![term("web", "zone")]))
        .info();
    assert!(run(&snap, &p).iter().all(Status::is_success));
    let other = pod("x")
        .affinity(affinity(vec![term("web", "zone")]))
        .info();
    assert!(run(&snap, &other).iter().all(|s| !s.is_success()));
}

#[test]
fn anti_affinity_both_ways() {
    let existing = pod("e")
        .label("app", "web")
        .affinity(anti_affinity(vec![term("web", "zone")]))
        .build();
    let snap = snapshot(zones(), vec![(existing, "a")]);
    // The existing pod's anti-affinity keeps web pods out of z1.
    let got = run(&snap, &pod("w").label("app", "web").info());
    assert_eq!(got[0], Status::unschedulable(ERR_EXISTING_ANTI_AFFINITY));
    assert_eq!(got[1], Status::unschedulable(ERR_EXISTING_ANTI_AFFINITY));
    assert!(got[2].is_success());
    // The incoming pod's anti-affinity against web pods.
    let plain = pod("e").label("app", "web").build();
    let snap = snapshot(zones(), vec![(plain, "c")]);
    let p = pod("x")
        .affinity(anti_affinity(vec![term("web", "kubernetes.io/hostname")]))
        .info();
    let got = run(&snap, &p);
    assert!(got[0].is_success() && got[1].is_success());
    assert_eq!(got[2], Status::unschedulable(ERR_ANTI_AFFINITY));
}

#[test]
fn preferred_terms_score_domains() {
    let db = pod("db").label("app", "db").build();
    let snap = snapshot(zones(), vec![(db, "c")]);
    let p = pod("web")
        .affinity(Affinity {
            pod_affinity: Some(PodAffinity {
                preferred_during_scheduling_ignored_during_execution: Some(vec![
                    WeightedPodAffinityTerm {
                        weight: 50,
                        pod_affinity_term: term("db", "zone"),
                    },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        })
        .info();
    let mut st = CycleState::default();
    let nodes: Vec<&NodeInfo> = snap.ready_nodes().collect();
    assert_eq!(
        ScorePlugin::pre_score(&InterPodAffinity, &mut st, &p, &snap, &nodes),
        Pre::Run
    );
    let mut scores: Vec<i64> = nodes
        .iter()
        .map(|n| ScorePlugin::score(&InterPodAffinity, &st, &p, n, &snap))
        .collect();
    assert_eq!(scores, [0, 0, 50]);
    ScorePlugin::normalize(&InterPodAffinity, &st, &nodes, &mut scores);
    assert_eq!(scores, [0, 0, 100]);
    // Through a whole profile the preferred zone wins.
    let profile: Profile = crate::default_profile("default-scheduler", 0);
    let got = profile
        .schedule(&p, &snap, &mut 0, &mut rand::thread_rng())
        .unwrap();
    assert_eq!(got.node, "c");
}
