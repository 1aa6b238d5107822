//! Priority: resolves a new Pod's `priorityClassName` to `spec.priority` and
//! `spec.preemptionPolicy`. A pod without a class gets the `globalDefault` PriorityClass (the
//! lowest-valued one if several are marked), or priority 0 and `PreemptLowerPriority` when there
//! is none; an unknown class is refused (`no PriorityClass with name X was found`), as is a pod
//! that sets a different integer priority itself. `system-node-critical` (2000001000) and
//! `system-cluster-critical` (2000000000) resolve to their built-in values even before their
//! objects exist. On update the stored priority is carried over. A second PriorityClass with
//! `globalDefault: true` is refused.

use serde_json::{json, Value};

use crate::{Api, Attributes, Denied, Operation, Plugin};

/// Where PriorityClasses live.
const CLASSES: &str = "/apis/scheduling.k8s.io/v1/priorityclasses";

/// The classes every Kubernetes cluster has, with their values.
pub(crate) const SYSTEM_CLASSES: [(&str, i64); 2] = [
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

/// The Priority plugin.
pub(crate) struct Priority;

fn internal(message: String) -> Denied {
    Denied {
        code: 500,
        reason: crate::Reason::InternalError,
        message,
    }
}

/// The global default class: the lowest value among those marked `globalDefault`.
fn default_class(classes: &[Value]) -> Option<&Value> {
    classes
        .iter()
        .filter(|c| c["globalDefault"] == true)
        .min_by_key(|c| c["value"].as_i64().unwrap_or(0))
}

/// (class name, priority, preemption policy) for a pod.
async fn resolve(
    a: &Attributes,
    class: &str,
    api: &dyn Api,
) -> Result<(String, i64, Option<Value>), Denied> {
    if class.is_empty() {
        let classes = api
            .list(CLASSES)
            .await
            .map_err(|e| internal(format!("failed to get default priority class: {e}")))?;
        return Ok(match default_class(&classes) {
            Some(pc) => (
                pc["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                pc["value"].as_i64().unwrap_or(0),
                pc.get("preemptionPolicy").cloned(),
            ),
            None => (String::new(), 0, Some(json!("PreemptLowerPriority"))),
        });
    }
    match api.get(&format!("{CLASSES}/{class}")).await {
        Ok(Some(pc)) => Ok((
            class.to_string(),
            pc["value"].as_i64().unwrap_or(0),
            pc.get("preemptionPolicy").cloned(),
        )),
        Ok(None) => match SYSTEM_CLASSES.iter().find(|(n, _)| *n == class) {
            Some((_, value)) => Ok((
                class.to_string(),
                *value,
                Some(json!("PreemptLowerPriority")),
            )),
            None => Err(Denied::forbidden(
                a,
                format!("no PriorityClass with name {class} was found"),
            )),
        },
        Err(e) => Err(internal(format!(
            "failed to get PriorityClass with name {class}: {e}"
        ))),
    }
}

#[async_trait::async_trait]
impl Plugin for Priority {
    fn name(&self) -> &str {
        "Priority"
    }

    async fn admit(&self, a: &mut Attributes, api: &dyn Api) -> Result<(), Denied> {
        if !a.is("", "Pod") || a.object.is_none() {
            return Ok(());
        }
        match a.operation {
            Operation::Update => {
                // Keep what this plugin set on create; validation refuses any other change.
                let old = a
                    .old_object
                    .as_ref()
                    .map(|o| o["spec"].clone())
                    .unwrap_or_default();
                if let Some(spec) = a
                    .object
                    .as_mut()
                    .and_then(|p| p.get_mut("spec"))
                    .and_then(Value::as_object_mut)
                {
                    for field in ["priority", "preemptionPolicy"] {
                        if spec.get(field).is_none_or(Value::is_null)
                            && old.get(field).is_some_and(|v| !v.is_null())
                        {
                            spec.insert(field.into(), old[field].clone());
                        }
                    }
                }
                Ok(())
            }
            Operation::Create => {
                let pod = a.object.as_ref().expect("checked");
                let class = pod
                    .pointer("/spec/priorityClassName")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let given = pod.pointer("/spec/priority").and_then(Value::as_i64);
                let given_policy = pod
                    .pointer("/spec/preemptionPolicy")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let (name, priority, policy) = resolve(a, &class, api).await?;
                if let Some(p) = given.filter(|p| *p != priority) {
                    return Err(Denied::forbidden(a, format!("the integer value of priority ({p}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name")));
                }
                let policy = policy.filter(|p| !p.is_null());
                if let (Some(p), Some(given)) = (
                    policy.as_ref().and_then(Value::as_str),
                    given_policy.as_deref(),
                ) {
                    if p != given {
                        return Err(Denied::forbidden(a, format!("the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {p} from the given PriorityClass name")));
                    }
                }
                let Some(spec) = a
                    .object
                    .as_mut()
                    .and_then(|p| p.get_mut("spec"))
                    .and_then(Value::as_object_mut)
                else {
                    return Ok(());
                };
                if class.is_empty() && !name.is_empty() {
                    spec.insert("priorityClassName".into(), json!(name));
                }
                spec.insert("priority".into(), json!(priority));
                if let Some(p) = policy {
                    spec.insert("preemptionPolicy".into(), p);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn validate(&self, a: &Attributes, api: &dyn Api) -> Result<(), Denied> {
        if !a.is("scheduling.k8s.io", "PriorityClass")
            || !matches!(a.operation, Operation::Create | Operation::Update)
        {
            return Ok(());
        }
        let Some(pc) = a.object.as_ref() else {
            return Ok(());
        };
        if pc["globalDefault"] != true {
            return Ok(());
        }
        let classes = api
            .list(CLASSES)
            .await
            .map_err(|e| internal(format!("failed to get default priority class: {e}")))?;
        if let Some(existing) = default_class(&classes) {
            let existing = existing["metadata"]["name"].as_str().unwrap_or_default();
            if a.operation == Operation::Create || existing != a.name {
                return Err(Denied::forbidden(a, format!("PriorityClass {existing} is already marked as default. Only one default can exist")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::fake_api::FakeApi;
    use crate::plugins::testing::attrs;

    fn class(name: &str, value: i64, global: bool, policy: Option<&str>) -> Value {
        let mut c = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name}, "value": value, "globalDefault": global});
        if let Some(p) = policy {
            c["preemptionPolicy"] = json!(p);
        }
        c
    }

    fn api(classes: &[Value]) -> FakeApi {
        let api = FakeApi::new();
        for c in classes {
            api.put(
                &format!("{CLASSES}/{}", c["metadata"]["name"].as_str().unwrap()),
                c.clone(),
            );
        }
        api
    }

    #[tokio::test]
    async fn pods() {
        let high = class("high", 1000, false, Some("PreemptLowerPriority"));
        let never = class("batch", 10, false, Some("Never"));
        let dflt = class("dflt", 5, true, Some("PreemptLowerPriority"));
        let dflt2 = class("dflt-low", 3, true, None);
        // (name, classes, spec fields, expected (priority, class name, policy) or error)
        type Want = Result<(i64, &'static str, Value), &'static str>;
        let cases: Vec<(&str, Vec<Value>, Value, Want)> = vec![
            ("named class", vec![high.clone()], json!({"priorityClassName": "high"}), Ok((1000, "high", json!("PreemptLowerPriority")))),
            ("policy Never", vec![never.clone()], json!({"priorityClassName": "batch"}), Ok((10, "batch", json!("Never")))),
            ("no class, no default", vec![high.clone()], json!({}), Ok((0, "", json!("PreemptLowerPriority")))),
            ("global default", vec![high.clone(), dflt.clone()], json!({}), Ok((5, "dflt", json!("PreemptLowerPriority")))),
            ("lowest default wins", vec![dflt.clone(), dflt2.clone()], json!({}), Ok((3, "dflt-low", Value::Null))),
            ("system-node-critical built in", vec![], json!({"priorityClassName": "system-node-critical"}), Ok((2_000_001_000, "system-node-critical", json!("PreemptLowerPriority")))),
            ("system-cluster-critical built in", vec![], json!({"priorityClassName": "system-cluster-critical"}), Ok((2_000_000_000, "system-cluster-critical", json!("PreemptLowerPriority")))),
            ("unknown", vec![high.clone()], json!({"priorityClassName": "nope"}), Err("pods \"p\" is forbidden: no PriorityClass with name nope was found")),
            ("matching priority given", vec![high.clone()], json!({"priorityClassName": "high", "priority": 1000}), Ok((1000, "high", json!("PreemptLowerPriority")))),
            (
                "different priority given",
                vec![high.clone()],
                json!({"priorityClassName": "high", "priority": 7}),
                Err("pods \"p\" is forbidden: the integer value of priority (7) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name"),
            ),
            (
                "different policy given",
                vec![never.clone()],
                json!({"priorityClassName": "batch", "preemptionPolicy": "PreemptLowerPriority"}),
                Err("pods \"p\" is forbidden: the string value of PreemptionPolicy (PreemptLowerPriority) must not be provided in pod spec; priority admission controller computed Never from the given PriorityClass name"),
            ),
        ];
        for (name, classes, fields, want) in cases {
            let api = api(&classes);
            let mut spec = json!({"containers": []});
            for (k, v) in fields.as_object().unwrap() {
                spec[k] = v.clone();
            }
            let mut a = attrs(
                Operation::Create,
                "Pod",
                "ns",
                Some(json!({"metadata": {"name": "p"}, "spec": spec})),
                None,
            );
            let got = Priority.admit(&mut a, &api).await;
            match want {
                Ok((prio, class, policy)) => {
                    assert_eq!(got, Ok(()), "{name}");
                    let spec = &a.object.as_ref().unwrap()["spec"];
                    assert_eq!(spec["priority"], json!(prio), "{name}");
                    assert_eq!(
                        spec.get("priorityClassName").cloned().unwrap_or(json!("")),
                        json!(class),
                        "{name}"
                    );
                    assert_eq!(
                        spec.get("preemptionPolicy").cloned().unwrap_or(Value::Null),
                        policy,
                        "{name}"
                    );
                }
                Err(msg) => {
                    let d = got.expect_err(name);
                    assert_eq!((d.code, d.message.as_str()), (403, msg), "{name}");
                }
            }
        }
    }

    #[tokio::test]
    async fn update_keeps_priority() {
        let old = json!({"metadata": {"name": "p"}, "spec": {"priority": 1000, "preemptionPolicy": "Never"}});
        let new = json!({"metadata": {"name": "p"}, "spec": {}});
        let mut a = attrs(Operation::Update, "Pod", "ns", Some(new), Some(old));
        Priority.admit(&mut a, &FakeApi::new()).await.unwrap();
        assert_eq!(
            a.object.unwrap()["spec"],
            json!({"priority": 1000, "preemptionPolicy": "Never"})
        );
    }

    #[tokio::test]
    async fn one_global_default() {
        let existing = class("dflt", 5, true, None);
        let cases: Vec<(&str, Operation, Value, Option<&str>)> = vec![
            ("second default", Operation::Create, class("other", 1, true, None), Some("priorityclasses.scheduling.k8s.io \"other\" is forbidden: PriorityClass dflt is already marked as default. Only one default can exist")),
            ("not default", Operation::Create, class("other", 1, false, None), None),
            ("update of the default", Operation::Update, class("dflt", 6, true, None), None),
            ("another becomes default", Operation::Update, class("other", 1, true, None), Some("priorityclasses.scheduling.k8s.io \"other\" is forbidden: PriorityClass dflt is already marked as default. Only one default can exist")),
        ];
        for (name, op, obj, want) in cases {
            let api = api(&[existing.clone(), class("other", 1, false, None)]);
            let old = (op == Operation::Update).then(|| obj.clone());
            let a = attrs(op, "PriorityClass", "", Some(obj), old);
            match want {
                None => assert_eq!(Priority.validate(&a, &api).await, Ok(()), "{name}"),
                Some(msg) => assert_eq!(
                    Priority.validate(&a, &api).await.expect_err(name).message,
                    msg,
                    "{name}"
                ),
            }
        }
    }
}
