use super::*;
use serde_json::json;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn node(conditions: serde_json::Value) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": "n1", "creationTimestamp": "2026-01-01T09:00:00Z"},
        "status": {"conditions": conditions},
    }))
    .unwrap()
}

fn lease(renewed: &str) -> Lease {
    serde_json::from_value(json!({"metadata": {"name": "n1"}, "spec": {"renewTime": renewed}}))
        .unwrap()
}

#[test]
fn silent_nodes_turn_unknown_after_the_grace_period() {
    let n = node(json!([
        {"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T10:00:00Z"},
        {"type": "MemoryPressure", "status": "False"},
        {"type": "NetworkUnavailable", "status": "False"},
    ]));
    let grace = Duration::from_secs(40);
    // The Lease is newer than the status heartbeat.
    let hb = last_heartbeat(&n, Some(&lease("2026-01-01T10:00:30Z")));
    assert_eq!(hb, Some(at("2026-01-01T10:00:30Z")));
    assert!(stale_conditions(&n, hb, at("2026-01-01T10:01:05Z"), grace).is_none());
    let c = stale_conditions(&n, hb, at("2026-01-01T10:01:11Z"), grace).expect("stale");
    let by_type = |t: &str| c.iter().find(|c| c.type_ == t).unwrap().clone();
    let ready = by_type("Ready");
    assert_eq!(ready.status, "Unknown");
    assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(
        ready.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );
    assert_eq!(by_type("MemoryPressure").status, "Unknown");
    assert_eq!(
        by_type("NetworkUnavailable").status,
        "False",
        "not the kubelet's to post"
    );
    // Already Unknown: nothing to change.
    let unknown = node(json!([{"type": "Ready", "status": "Unknown"}]));
    assert!(stale_conditions(&unknown, hb, at("2026-01-01T11:00:00Z"), grace).is_none());
    // Never posted: Ready is added as Unknown once the grace since creation is over.
    let fresh = node(json!(null));
    let hb = last_heartbeat(&fresh, None);
    let c = stale_conditions(&fresh, hb, at("2026-01-01T09:01:00Z"), grace).unwrap();
    assert_eq!(c[0].reason.as_deref(), Some("NodeStatusNeverUpdated"));
}

#[test]
fn taints_follow_the_ready_condition() {
    let now = at("2026-01-01T10:00:00Z");
    let other = Taint {
        key: "dedicated".into(),
        value: Some("db".into()),
        effect: "NoSchedule".into(),
        time_added: None,
    };
    let unreachable = taints_for(std::slice::from_ref(&other), Some("Unknown"), now);
    let keys: Vec<(&str, &str)> = unreachable
        .iter()
        .map(|t| (t.key.as_str(), t.effect.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("dedicated", "NoSchedule"),
            (UNREACHABLE, "NoSchedule"),
            (UNREACHABLE, "NoExecute")
        ]
    );
    assert_eq!(unreachable[2].time_added, Some(Time(now)));
    // Stable: applying again changes nothing (timeAdded kept).
    let later = at("2026-01-01T10:05:00Z");
    assert_eq!(
        taints_for(&unreachable, Some("Unknown"), later),
        unreachable
    );
    // Ready=False swaps to not-ready; True clears them.
    let not_ready = taints_for(&unreachable, Some("False"), later);
    assert!(not_ready.iter().all(|t| t.key != UNREACHABLE));
    assert_eq!(not_ready.iter().filter(|t| t.key == NOT_READY).count(), 2);
    assert_eq!(taints_for(&not_ready, Some("True"), later), [other]);
}

#[test]
fn eviction_waits_for_toleration_seconds() {
    let added = at("2026-01-01T10:00:00Z");
    let taints = taints_for(&[], Some("Unknown"), added);
    let pod = |tolerations: serde_json::Value| -> Pod {
        serde_json::from_value(json!({"spec": {"containers": [], "tolerations": tolerations}}))
            .unwrap()
    };
    assert_eq!(
        eviction::due(&pod(json!([])), &taints),
        Some(Timestamp::UNIX_EPOCH),
        "no toleration: at once"
    );
    let tolerant = pod(json!([
        {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5},
    ]));
    assert_eq!(
        eviction::due(&tolerant, &taints),
        Some(at("2026-01-01T10:00:05Z"))
    );
    let forever = pod(json!([{"operator": "Exists"}]));
    assert_eq!(eviction::due(&forever, &taints), None);
    let wrong = pod(json!([{"key": NOT_READY, "operator": "Exists", "effect": "NoExecute"}]));
    assert_eq!(eviction::due(&wrong, &taints), Some(Timestamp::UNIX_EPOCH));
}
