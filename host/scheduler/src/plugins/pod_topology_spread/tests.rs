//! PodTopologySpread cases: skew across zones, minDomains, missing labels, ScheduleAnyway scores.

use k8s_openapi::api::core::v1::TopologySpreadConstraint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::*;
use crate::testing::{node, pod, snapshot};

fn spread(key: &str, max_skew: i32, when: &str) -> TopologySpreadConstraint {
    TopologySpreadConstraint {
        max_skew,
        topology_key: key.into(),
        when_unsatisfiable: when.into(),
        label_selector: Some(LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn web(name: &str) -> k8s_openapi::api::core::v1::Pod {
    pod(name).label("app", "web").build()
}

fn nodes() -> Vec<k8s_openapi::api::core::v1::Node> {
    vec![
        node("a", "4", "8Gi").label("zone", "z1").build(),
        node("b", "4", "8Gi").label("zone", "z2").build(),
        node("c", "4", "8Gi").build(),
    ]
}

fn filter_all(snap: &Snapshot, p: &PodInfo) -> Vec<Status> {
    let mut st = CycleState::default();
    assert_eq!(
        FilterPlugin::pre_filter(&PodTopologySpread, &mut st, p, snap).unwrap(),
        Pre::Run
    );
    snap.ready_nodes()
        .map(|n| FilterPlugin::filter(&PodTopologySpread, &st, p, n))
        .collect()
}

#[test]
fn do_not_schedule_keeps_skew_within_max_skew() {
    let snap = snapshot(nodes(), vec![(web("w1"), "a")]);
    let p = pod("new")
        .label("app", "web")
        .spread(spread("zone", 1, "DoNotSchedule"))
        .info();
    let got = filter_all(&snap, &p);
    // z1 has 1, z2 has 0: another in z1 makes skew 2.
    assert_eq!(got[0], Status::unschedulable(ERR_CONSTRAINTS));
    assert!(got[1].is_success());
    assert_eq!(got[2], Status::unresolvable(ERR_LABEL));
}

#[test]
fn min_domains_treats_missing_domains_as_zero() {
    let snap = snapshot(nodes(), vec![(web("w1"), "a"), (web("w2"), "b")]);
    let mut c = spread("zone", 1, "DoNotSchedule");
    let p = pod("new").label("app", "web").spread(c.clone()).info();
    assert!(filter_all(&snap, &p)[0].is_success());
    c.min_domains = Some(3);
    let p = pod("new").label("app", "web").spread(c).info();
    assert_eq!(
        filter_all(&snap, &p)[0],
        Status::unschedulable(ERR_CONSTRAINTS)
    );
}

#[test]
fn schedule_anyway_prefers_the_emptier_domain() {
    let snap = snapshot(nodes(), vec![(web("w1"), "a"), (web("w2"), "a")]);
    let p = pod("new")
        .label("app", "web")
        .spread(spread("zone", 1, "ScheduleAnyway"))
        .info();
    let feasible: Vec<&NodeInfo> = snap.ready_nodes().collect();
    let mut st = CycleState::default();
    assert_eq!(
        ScorePlugin::pre_score(&PodTopologySpread, &mut st, &p, &snap, &feasible),
        Pre::Run
    );
    let mut scores: Vec<i64> = feasible
        .iter()
        .map(|n| ScorePlugin::score(&PodTopologySpread, &st, &p, n, &snap))
        .collect();
    // Two domains: weight ln(4); z1 holds 2 → round(2 * 1.386) = 3, z2 → 0; c is ignored.
    assert_eq!(scores[..2], [3, 0]);
    ScorePlugin::normalize(&PodTopologySpread, &st, &feasible, &mut scores);
    // 100 * (max + min - s) / max: z1 → 0, z2 → 100, ignored → 0.
    assert_eq!(scores, [0, 100, 0]);
}
