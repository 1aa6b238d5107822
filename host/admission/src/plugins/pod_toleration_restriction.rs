//! PodTolerationRestriction (opt-in): a namespace's `scheduler.alpha.kubernetes.io/defaultTolerations`
//! annotation (a JSON list of tolerations) is merged into each new Pod's tolerations, and its
//! `scheduler.alpha.kubernetes.io/tolerationsWhitelist` bounds what pods there may tolerate:
//! every toleration (after merging) must be covered by one of the whitelist's, or the pod is
//! refused with `pod tolerations (possibly merged with namespace default tolerations) conflict
//! with its namespace whitelist`. Pods that are not BestEffort also get the
//! `node.kubernetes.io/memory-pressure` NoSchedule toleration, as in Kubernetes. Kubernetes'
//! cluster-wide plugin configuration file is not supported (a namespace without annotations adds
//! and restricts nothing).
//!
//! Kubernetes returns the whitelist refusal as a bare error (HTTP 500); Keelson refuses with 403
//! Forbidden and the same words, as for every other policy denial.

use serde_json::{json, Value};

use crate::quantity;
use crate::{Api, Attributes, Denied, Operation, Plugin};

/// Tolerations merged into new pods.
pub(crate) const DEFAULT_TOLERATIONS: &str = "scheduler.alpha.kubernetes.io/defaultTolerations";
/// Tolerations pods may have.
pub(crate) const WHITELIST: &str = "scheduler.alpha.kubernetes.io/tolerationsWhitelist";

/// The PodTolerationRestriction plugin.
pub(crate) struct PodTolerationRestriction;

fn s<'a>(t: &'a Value, k: &str) -> &'a str {
    t.get(k).and_then(Value::as_str).unwrap_or_default()
}

/// Does `ss` tolerate everything `t` does? (Kubernetes' `isSuperset`.)
pub(crate) fn is_superset(ss: &Value, t: &Value) -> bool {
    if ss == t {
        return true;
    }
    if s(t, "key") != s(ss, "key") && !(s(ss, "key").is_empty() && s(ss, "operator") == "Exists") {
        return false;
    }
    if s(t, "effect") != s(ss, "effect") && !s(ss, "effect").is_empty() {
        return false;
    }
    if s(ss, "effect") == "NoExecute" {
        if let Some(limit) = ss.get("tolerationSeconds").and_then(Value::as_i64) {
            match t.get("tolerationSeconds").and_then(Value::as_i64) {
                Some(secs) if secs <= limit => {}
                _ => return false,
            }
        }
    }
    match s(ss, "operator") {
        // An empty operator means Equal.
        "Equal" | "" => matches!(s(t, "operator"), "Equal" | "") && s(t, "value") == s(ss, "value"),
        "Exists" => true,
        _ => false,
    }
}

/// Merges two toleration lists, dropping any toleration another one covers (the first of equal
/// ones is kept): Kubernetes' `MergeTolerations`.
pub(crate) fn merge(first: &[Value], second: &[Value]) -> Vec<Value> {
    let all: Vec<&Value> = first.iter().chain(second).collect();
    let mut merged: Vec<Value> = Vec::new();
    'next: for (i, t) in all.iter().enumerate() {
        if merged.iter().any(|m| is_superset(m, t)) {
            continue;
        }
        for t2 in &all[i + 1..] {
            if t != t2 && is_superset(t2, t) {
                continue 'next;
            }
        }
        merged.push((*t).clone());
    }
    merged
}

/// Is every toleration covered by the whitelist? (An empty whitelist allows everything.)
pub(crate) fn verify(tolerations: &[Value], whitelist: &[Value]) -> bool {
    whitelist.is_empty()
        || tolerations
            .iter()
            .all(|t| whitelist.iter().any(|w| is_superset(w, t)))
}

/// A namespace annotation as tolerations: `None` when absent, empty when set to "".
fn annotation(ns: &Option<Value>, key: &str) -> Result<Option<Vec<Value>>, String> {
    let Some(raw) = ns
        .as_ref()
        .and_then(|n| n.pointer("/metadata/annotations"))
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
    else {
        return Ok(None);
    };
    if raw.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let list: Vec<Value> = serde_json::from_str(raw).map_err(|e| e.to_string())?;
    for (i, t) in list.iter().enumerate() {
        let op = s(t, "operator");
        if !t.is_object() || !matches!(op, "" | "Equal" | "Exists") {
            return Err(format!("{key}[{i}].operator: Unsupported value: \"{op}\": supported values: \"Equal\", \"Exists\""));
        }
        if op == "Exists" && !s(t, "value").is_empty() {
            return Err(format!("{key}[{i}].operator: Invalid value: \"{}\": value must be empty when `operator` is 'Exists'", s(t, "value")));
        }
    }
    Ok(Some(list))
}

/// BestEffort: no container asks for or limits CPU or memory.
fn best_effort(pod: &Value) -> bool {
    let lists = ["initContainers", "containers"];
    !lists
        .iter()
        .flat_map(|f| pod["spec"][*f].as_array().into_iter().flatten())
        .any(|c| {
            ["requests", "limits"].iter().any(|kind| {
                ["cpu", "memory"].iter().any(|r| {
                    c.pointer(&format!("/resources/{kind}/{r}"))
                        .and_then(|q| match q {
                            Value::String(s) => quantity::parse(s).ok(),
                            Value::Number(n) => quantity::parse(&n.to_string()).ok(),
                            _ => None,
                        })
                        .is_some_and(|m| m > 0)
                })
            })
        })
}

fn relevant(a: &Attributes) -> bool {
    matches!(a.operation, Operation::Create | Operation::Update)
        && a.is("", "Pod")
        && a.object.is_some()
}

async fn namespace(a: &Attributes, api: &dyn Api) -> Result<Option<Value>, Denied> {
    api.get(&format!("/api/v1/namespaces/{}", a.namespace))
        .await
        .map_err(|e| Denied {
            code: 500,
            reason: crate::Reason::InternalError,
            message: e.to_string(),
        })
}

fn bad_annotation(e: String) -> Denied {
    Denied {
        code: 500,
        reason: crate::Reason::InternalError,
        message: e,
    }
}

#[async_trait::async_trait]
impl Plugin for PodTolerationRestriction {
    fn name(&self) -> &str {
        "PodTolerationRestriction"
    }

    async fn admit(&self, a: &mut Attributes, api: &dyn Api) -> Result<(), Denied> {
        if !relevant(a) {
            return Ok(());
        }
        let mut extra = Vec::new();
        if a.operation == Operation::Create {
            let ns = namespace(a, api).await?;
            extra = annotation(&ns, DEFAULT_TOLERATIONS)
                .map_err(bad_annotation)?
                .unwrap_or_default();
        }
        let pod = a.object.as_mut().expect("checked");
        if !best_effort(pod) {
            extra.push(json!({"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}));
        }
        if extra.is_empty() {
            return Ok(());
        }
        let own = pod
            .pointer("/spec/tolerations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("tolerations".into(), Value::Array(merge(&own, &extra)));
        }
        Ok(())
    }

    async fn validate(&self, a: &Attributes, api: &dyn Api) -> Result<(), Denied> {
        if !relevant(a) {
            return Ok(());
        }
        let tolerations = a
            .object
            .as_ref()
            .and_then(|p| p.pointer("/spec/tolerations"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if tolerations.is_empty() {
            return Ok(());
        }
        let ns = namespace(a, api).await?;
        let Some(whitelist) = annotation(&ns, WHITELIST).map_err(bad_annotation)? else {
            return Ok(());
        };
        if !verify(&tolerations, &whitelist) {
            return Err(Denied::forbidden(a, "pod tolerations (possibly merged with namespace default tolerations) conflict with its namespace whitelist"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::fake_api::FakeApi;
    use crate::plugins::testing::attrs;

    fn t(key: &str, op: &str, value: &str, effect: &str, secs: Option<i64>) -> Value {
        let mut t = json!({"operator": op});
        for (k, v) in [("key", key), ("value", value), ("effect", effect)] {
            if !v.is_empty() {
                t[k] = json!(v);
            }
        }
        if let Some(s) = secs {
            t["tolerationSeconds"] = json!(s);
        }
        t
    }

    #[test]
    fn superset_table() {
        let cases = [
            (
                "equal",
                t("k", "Equal", "v", "NoSchedule", None),
                t("k", "Equal", "v", "NoSchedule", None),
                true,
            ),
            (
                "exists covers equal",
                t("k", "Exists", "", "NoSchedule", None),
                t("k", "Equal", "v", "NoSchedule", None),
                true,
            ),
            (
                "empty key exists covers all",
                t("", "Exists", "", "", None),
                t("x", "Equal", "v", "NoExecute", Some(5)),
                true,
            ),
            (
                "other key",
                t("k", "Exists", "", "", None),
                t("x", "Exists", "", "", None),
                false,
            ),
            (
                "empty effect covers all effects",
                t("k", "Exists", "", "", None),
                t("k", "Exists", "", "NoExecute", None),
                true,
            ),
            (
                "effect differs",
                t("k", "Exists", "", "NoSchedule", None),
                t("k", "Exists", "", "NoExecute", None),
                false,
            ),
            (
                "value differs",
                t("k", "Equal", "a", "", None),
                t("k", "Equal", "b", "", None),
                false,
            ),
            (
                "equal does not cover exists",
                t("k", "Equal", "", "", None),
                t("k", "Exists", "", "", None),
                false,
            ),
            (
                "shorter seconds covered",
                t("k", "Exists", "", "NoExecute", Some(60)),
                t("k", "Exists", "", "NoExecute", Some(30)),
                true,
            ),
            (
                "longer seconds not covered",
                t("k", "Exists", "", "NoExecute", Some(60)),
                t("k", "Exists", "", "NoExecute", Some(90)),
                false,
            ),
            (
                "forever not covered",
                t("k", "Exists", "", "NoExecute", Some(60)),
                t("k", "Exists", "", "NoExecute", None),
                false,
            ),
        ];
        for (name, ss, tt, want) in cases {
            assert_eq!(is_superset(&ss, &tt), want, "{name}");
        }
    }

    #[test]
    fn merge_drops_covered() {
        let a = t("k", "Equal", "v", "NoSchedule", None);
        let b = t("k", "Exists", "", "NoSchedule", None);
        let c = t("other", "Exists", "", "", None);
        assert_eq!(
            merge(std::slice::from_ref(&a), &[b.clone(), c.clone()]),
            vec![b.clone(), c.clone()]
        );
        assert_eq!(
            merge(&[b.clone(), a.clone()], std::slice::from_ref(&b)),
            vec![b.clone()]
        );
        assert_eq!(merge(&[], std::slice::from_ref(&a)), vec![a]);
    }

    fn setup(defaults: Option<&str>, whitelist: Option<&str>) -> FakeApi {
        let api = FakeApi::new();
        let mut ann = serde_json::Map::new();
        if let Some(d) = defaults {
            ann.insert(DEFAULT_TOLERATIONS.into(), json!(d));
        }
        if let Some(w) = whitelist {
            ann.insert(WHITELIST.into(), json!(w));
        }
        api.put(
            "/api/v1/namespaces/ns",
            json!({"metadata": {"name": "ns", "annotations": ann}}),
        );
        api
    }

    fn pod(tolerations: Value, resources: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i", "resources": resources}], "tolerations": tolerations}})
    }

    #[allow(clippy::type_complexity)] // a test table
    #[tokio::test]
    async fn table() {
        let mp = json!({"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"});
        let dflt = r#"[{"key": "dedicated", "operator": "Equal", "value": "team-a", "effect": "NoSchedule"}]"#;
        let dflt_t = json!({"key": "dedicated", "operator": "Equal", "value": "team-a", "effect": "NoSchedule"});
        let wl = r#"[{"key": "dedicated", "operator": "Exists"}, {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists"}]"#;
        let conflict = "pods \"p\" is forbidden: pod tolerations (possibly merged with namespace default tolerations) conflict with its namespace whitelist";
        let res = json!({"requests": {"cpu": "100m"}});
        // (name, defaults, whitelist, pod tolerations, resources, expected tolerations or error)
        let cases: Vec<(
            &str,
            Option<&str>,
            Option<&str>,
            Value,
            Value,
            Result<Value, &str>,
        )> = vec![
            ("nothing", None, None, json!([]), json!({}), Ok(json!([]))),
            (
                "defaults merged",
                Some(dflt),
                None,
                json!([]),
                json!({}),
                Ok(json!([dflt_t.clone()])),
            ),
            (
                "burstable gets memory-pressure",
                None,
                None,
                json!([]),
                res.clone(),
                Ok(json!([mp.clone()])),
            ),
            (
                "defaults + memory-pressure",
                Some(dflt),
                Some(wl),
                json!([]),
                res.clone(),
                Ok(json!([dflt_t.clone(), mp.clone()])),
            ),
            (
                "whitelisted own",
                None,
                Some(wl),
                json!([{"key": "dedicated", "operator": "Equal", "value": "x"}]),
                json!({}),
                Ok(json!([{"key": "dedicated", "operator": "Equal", "value": "x"}])),
            ),
            (
                "not whitelisted",
                None,
                Some(wl),
                json!([{"key": "gpu", "operator": "Exists"}]),
                json!({}),
                Err(conflict),
            ),
            (
                "empty whitelist allows all",
                None,
                Some(""),
                json!([{"key": "gpu", "operator": "Exists"}]),
                json!({}),
                Ok(json!([{"key": "gpu", "operator": "Exists"}])),
            ),
        ];
        for (name, defaults, whitelist, tolerations, resources, want) in cases {
            let api = setup(defaults, whitelist);
            let mut a = attrs(
                Operation::Create,
                "Pod",
                "ns",
                Some(pod(tolerations, resources)),
                None,
            );
            PodTolerationRestriction.admit(&mut a, &api).await.unwrap();
            let got = PodTolerationRestriction.validate(&a, &api).await;
            match want {
                Ok(tols) => {
                    assert_eq!(got, Ok(()), "{name}");
                    assert_eq!(a.object.unwrap()["spec"]["tolerations"], tols, "{name}");
                }
                Err(msg) => assert_eq!(got.expect_err(name).message, msg, "{name}"),
            }
        }
    }

    #[tokio::test]
    async fn bad_annotation_is_an_error() {
        let api = setup(Some("not json"), None);
        let mut a = attrs(
            Operation::Create,
            "Pod",
            "ns",
            Some(pod(json!([]), json!({}))),
            None,
        );
        assert_eq!(
            PodTolerationRestriction
                .admit(&mut a, &api)
                .await
                .unwrap_err()
                .code,
            500
        );
    }
}
