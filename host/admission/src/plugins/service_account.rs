//! ServiceAccount: a new Pod gets `spec.serviceAccountName: default` when it names none, must
//! name a ServiceAccount that exists (`error looking up service account ns/name: serviceaccount
//! "name" not found`), and inherits the account's `imagePullSecrets` when it has none. A
//! ServiceAccount annotated `kubernetes.io/enforce-mountable-secrets: "true"` limits the secrets
//! the pod may reference to the account's `secrets` / `imagePullSecrets`. Mirror pods (annotated
//! `kubernetes.io/config.mirror`) may reference neither service accounts nor secrets.
//!
//! The ServiceAccount controller creates `default` right after a namespace appears, so, like
//! Kubernetes, a missing `default` is looked up again a few times (10 attempts, ~150 ms apart)
//! before the pod is refused; other names are looked up once.
//!
//! Not done here: mounting the projected `kube-api-access-*` token volume (it needs the
//! TokenRequest API and a kubelet, which Keelson does not have yet).

use std::time::Duration;

use serde_json::{json, Value};

use crate::{Api, Attributes, Denied, Operation, Plugin};

/// The annotation marking mirror pods (static pods reflected by a kubelet).
pub(crate) const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// A ServiceAccount with this annotation set to "true" limits the secrets its pods reference.
const ENFORCE_MOUNTABLE_SECRETS: &str = "kubernetes.io/enforce-mountable-secrets";
/// The account pods get when they name none.
const DEFAULT: &str = "default";

/// The ServiceAccount plugin.
pub(crate) struct ServiceAccount {
    /// Lookups of the `default` account before giving up.
    attempts: u32,
    /// Pause between them.
    interval: Duration,
}

impl Default for ServiceAccount {
    fn default() -> Self {
        Self {
            attempts: 10,
            interval: Duration::from_millis(150),
        }
    }
}

fn relevant(a: &Attributes) -> bool {
    a.operation == Operation::Create && a.is("", "Pod") && a.object.is_some()
}

fn is_mirror(pod: &Value) -> bool {
    pod.pointer("/metadata/annotations")
        .and_then(|a| a.get(MIRROR_POD_ANNOTATION))
        .is_some()
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn names(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("name").and_then(Value::as_str).map(str::to_string))
        .collect()
}

impl ServiceAccount {
    /// Looks the account up; the `default` account several times, as the controller may not have
    /// created it yet.
    async fn lookup(&self, a: &Attributes, name: &str, api: &dyn Api) -> Result<Value, Denied> {
        let attempts = if name == DEFAULT {
            self.attempts.max(1)
        } else {
            1
        };
        let path = format!("/api/v1/namespaces/{}/serviceaccounts/{name}", a.namespace);
        for i in 0..attempts {
            if i > 0 {
                tokio::time::sleep(self.interval).await;
            }
            match api.get(&path).await {
                Ok(Some(sa)) => return Ok(sa),
                Ok(None) => {}
                Err(e) => {
                    return Err(Denied::forbidden(
                        a,
                        format!(
                            "error looking up service account {}/{name}: {e}",
                            a.namespace
                        ),
                    ));
                }
            }
        }
        Err(Denied::forbidden(
            a,
            format!(
                "error looking up service account {}/{name}: serviceaccount \"{name}\" not found",
                a.namespace
            ),
        ))
    }
}

/// Does the pod reference any secret (volumes, env, envFrom, imagePullSecrets, projected)?
pub(crate) fn references_secrets(pod: &Value) -> bool {
    let spec = &pod["spec"];
    if !names(spec.get("imagePullSecrets")).is_empty() {
        return true;
    }
    for v in spec["volumes"].as_array().into_iter().flatten() {
        if v.get("secret").is_some() {
            return true;
        }
        if v.pointer("/projected/sources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|s| s.get("secret").is_some())
        {
            return true;
        }
        // Volume plugins that name a secret for their credentials.
        if v.as_object()
            .into_iter()
            .flatten()
            .any(|(_, src)| src.get("secretRef").is_some_and(|r| !r.is_null()))
        {
            return true;
        }
    }
    all_containers(pod).any(|(_, c)| {
        c["env"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e.pointer("/valueFrom/secretKeyRef").is_some())
            || c["envFrom"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e.get("secretRef").is_some())
    })
}

/// Every container with how Kubernetes names its kind in messages.
pub(crate) fn all_containers(pod: &Value) -> impl Iterator<Item = (&'static str, &Value)> {
    [
        ("initContainers", "init container"),
        ("containers", "container"),
        ("ephemeralContainers", "ephemeral container"),
    ]
    .into_iter()
    .flat_map(move |(field, what)| {
        pod["spec"][field]
            .as_array()
            .into_iter()
            .flatten()
            .map(move |c| (what, c))
    })
}

/// With `enforce-mountable-secrets`, every secret the pod references must be one of the account's.
fn limit_secret_references(sa: &Value, pod: &Value) -> Result<(), String> {
    let sa_name = str_at(sa, "/metadata/name");
    let mountable = names(sa.get("secrets"));
    for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        if let Some(secret) = v.get("secret") {
            let name = secret
                .get("secretName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !mountable.iter().any(|m| m == name) {
                return Err(format!(
                    "volume with secret.secretName=\"{name}\" is not allowed because service account {sa_name} does not reference that secret"
                ));
            }
        }
    }
    for (what, c) in all_containers(pod) {
        let cname = c["name"].as_str().unwrap_or_default();
        for e in c["env"].as_array().into_iter().flatten() {
            if let Some(name) = e
                .pointer("/valueFrom/secretKeyRef/name")
                .and_then(Value::as_str)
            {
                if !mountable.iter().any(|m| m == name) {
                    let env = e["name"].as_str().unwrap_or_default();
                    return Err(format!("{what} {cname} with envVar {env} referencing secret.secretName=\"{name}\" is not allowed because service account {sa_name} does not reference that secret"));
                }
            }
        }
        for e in c["envFrom"].as_array().into_iter().flatten() {
            if let Some(name) = e.pointer("/secretRef/name").and_then(Value::as_str) {
                if !mountable.iter().any(|m| m == name) {
                    return Err(format!("{what} {cname} with envFrom referencing secret.secretName=\"{name}\" is not allowed because service account {sa_name} does not reference that secret"));
                }
            }
        }
    }
    let pull = names(sa.get("imagePullSecrets"));
    for (i, name) in names(pod["spec"].get("imagePullSecrets"))
        .iter()
        .enumerate()
    {
        if !pull.contains(name) {
            return Err(format!(
                "imagePullSecrets[{i}].name=\"{name}\" is not allowed because service account {sa_name} does not reference that imagePullSecret"
            ));
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl Plugin for ServiceAccount {
    fn name(&self) -> &str {
        "ServiceAccount"
    }

    async fn admit(&self, a: &mut Attributes, api: &dyn Api) -> Result<(), Denied> {
        if !relevant(a) || a.object.as_ref().is_some_and(is_mirror) {
            return Ok(());
        }
        let pod = a.object.as_mut().expect("checked");
        if !pod["spec"].is_object() {
            return Ok(());
        }
        if str_at(pod, "/spec/serviceAccountName").is_empty() {
            pod["spec"]["serviceAccountName"] = json!(DEFAULT);
        }
        let name = str_at(pod, "/spec/serviceAccountName").to_string();
        let sa = self.lookup(a, &name, api).await?;
        let pod = a.object.as_mut().expect("checked");
        if names(pod["spec"].get("imagePullSecrets")).is_empty() {
            let inherited: Vec<Value> = names(sa.get("imagePullSecrets"))
                .into_iter()
                .map(|n| json!({"name": n}))
                .collect();
            if !inherited.is_empty() {
                pod["spec"]["imagePullSecrets"] = Value::Array(inherited);
            }
        }
        Ok(())
    }

    async fn validate(&self, a: &Attributes, api: &dyn Api) -> Result<(), Denied> {
        if !relevant(a) {
            return Ok(());
        }
        let pod = a.object.as_ref().expect("checked");
        if is_mirror(pod) {
            if !str_at(pod, "/spec/serviceAccountName").is_empty() {
                return Err(Denied::forbidden(
                    a,
                    "mirror pods may not reference service accounts",
                ));
            }
            if references_secrets(pod) {
                return Err(Denied::forbidden(
                    a,
                    "mirror pods may not reference secrets",
                ));
            }
            let projected_token = pod["spec"]["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|v| {
                    v.pointer("/projected/sources")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                })
                .any(|s| s.get("serviceAccountToken").is_some());
            if projected_token {
                return Err(Denied::forbidden(
                    a,
                    "mirror pods may not use service account token volume projection",
                ));
            }
            return Ok(());
        }
        let name = str_at(pod, "/spec/serviceAccountName");
        if name.is_empty() {
            return Err(Denied::forbidden(
                a,
                format!(
                    "no service account specified for pod {}/{}",
                    a.namespace, a.name
                ),
            ));
        }
        let sa = self.lookup(a, name, api).await?;
        let enforce = sa
            .pointer("/metadata/annotations")
            .and_then(|m| m.get(ENFORCE_MOUNTABLE_SECRETS))
            .and_then(Value::as_str)
            == Some("true");
        if enforce {
            limit_secret_references(&sa, pod).map_err(|why| Denied::forbidden(a, why))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::fake_api::FakeApi;
    use crate::plugins::testing::attrs;

    fn plugin() -> ServiceAccount {
        ServiceAccount {
            attempts: 3,
            interval: Duration::from_millis(1),
        }
    }

    fn api_with(accounts: &[Value]) -> FakeApi {
        let api = FakeApi::new();
        for sa in accounts {
            let name = sa["metadata"]["name"].as_str().unwrap();
            api.put(
                &format!("/api/v1/namespaces/ns/serviceaccounts/{name}"),
                sa.clone(),
            );
        }
        api
    }

    fn sa(name: &str, extra: Value) -> Value {
        let mut v = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": "ns"}});
        if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in extra {
                if k == "annotations" {
                    v["metadata"]["annotations"] = x.clone();
                } else {
                    v.insert(k.clone(), x.clone());
                }
            }
        }
        v
    }

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}, "spec": spec})
    }

    #[allow(clippy::type_complexity)] // a test table
    #[tokio::test]
    async fn admit_table() {
        // (name, accounts, pod spec, expected serviceAccountName / imagePullSecrets or error)
        let cases: Vec<(&str, Vec<Value>, Value, Result<(Value, Value), &str>)> = vec![
            ("defaults to default", vec![sa("default", json!({}))], json!({"containers": [{"name": "c", "image": "i"}]}), Ok((json!("default"), Value::Null))),
            ("keeps a named account", vec![sa("robot", json!({}))], json!({"serviceAccountName": "robot", "containers": []}), Ok((json!("robot"), Value::Null))),
            (
                "inherits imagePullSecrets",
                vec![sa("default", json!({"imagePullSecrets": [{"name": "reg"}]}))],
                json!({"containers": []}),
                Ok((json!("default"), json!([{"name": "reg"}]))),
            ),
            (
                "own imagePullSecrets win",
                vec![sa("default", json!({"imagePullSecrets": [{"name": "reg"}]}))],
                json!({"containers": [], "imagePullSecrets": [{"name": "mine"}]}),
                Ok((json!("default"), json!([{"name": "mine"}]))),
            ),
            (
                "missing default",
                vec![],
                json!({"containers": []}),
                Err("pods \"p\" is forbidden: error looking up service account ns/default: serviceaccount \"default\" not found"),
            ),
            (
                "missing named",
                vec![sa("default", json!({}))],
                json!({"serviceAccountName": "ghost", "containers": []}),
                Err("pods \"p\" is forbidden: error looking up service account ns/ghost: serviceaccount \"ghost\" not found"),
            ),
        ];
        for (name, accounts, spec, want) in cases {
            let api = api_with(&accounts);
            let mut a = attrs(Operation::Create, "Pod", "ns", Some(pod(spec)), None);
            let got = plugin().admit(&mut a, &api).await;
            match want {
                Ok((sa_name, pull)) => {
                    assert_eq!(got, Ok(()), "{name}");
                    let obj = a.object.unwrap();
                    assert_eq!(obj["spec"]["serviceAccountName"], sa_name, "{name}");
                    assert_eq!(obj["spec"]["imagePullSecrets"], pull, "{name}");
                }
                Err(msg) => {
                    let d = got.expect_err(name);
                    assert_eq!((d.code, d.message.as_str()), (403, msg), "{name}");
                }
            }
        }
    }

    #[tokio::test]
    async fn waits_for_the_default_account() {
        let api = std::sync::Arc::new(FakeApi::new());
        let later = api.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            later.put(
                "/api/v1/namespaces/ns/serviceaccounts/default",
                sa("default", json!({})),
            );
        });
        let p = ServiceAccount {
            attempts: 10,
            interval: Duration::from_millis(20),
        };
        let mut a = attrs(
            Operation::Create,
            "Pod",
            "ns",
            Some(pod(json!({"containers": []}))),
            None,
        );
        assert_eq!(p.admit(&mut a, api.as_ref()).await, Ok(()));
    }

    #[tokio::test]
    async fn ignores_updates_other_kinds_and_mirror_pods() {
        let api = FakeApi::new();
        let mut a = attrs(
            Operation::Update,
            "Pod",
            "ns",
            Some(pod(json!({}))),
            Some(pod(json!({}))),
        );
        assert_eq!(plugin().admit(&mut a, &api).await, Ok(()));
        let mut a = attrs(
            Operation::Create,
            "ConfigMap",
            "ns",
            Some(json!({"metadata": {"name": "p"}})),
            None,
        );
        assert_eq!(plugin().admit(&mut a, &api).await, Ok(()));
        let mut mirror = pod(json!({"containers": []}));
        mirror["metadata"]["annotations"] = json!({MIRROR_POD_ANNOTATION: "x"});
        let mut a = attrs(Operation::Create, "Pod", "ns", Some(mirror.clone()), None);
        assert_eq!(plugin().admit(&mut a, &api).await, Ok(()));
        assert_eq!(
            a.object.as_ref().unwrap()["spec"].get("serviceAccountName"),
            None
        );
        assert_eq!(plugin().validate(&a, &api).await, Ok(()));
    }

    #[tokio::test]
    async fn validate_table() {
        let enforcing = sa(
            "default",
            json!({"annotations": {ENFORCE_MOUNTABLE_SECRETS: "true"}, "secrets": [{"name": "ok"}], "imagePullSecrets": [{"name": "reg"}]}),
        );
        let mut mirror_sa = pod(json!({"serviceAccountName": "default", "containers": []}));
        mirror_sa["metadata"]["annotations"] = json!({MIRROR_POD_ANNOTATION: "x"});
        let mut mirror_secret = pod(
            json!({"volumes": [{"name": "v", "secret": {"secretName": "s"}}], "containers": []}),
        );
        mirror_secret["metadata"]["annotations"] = json!({MIRROR_POD_ANNOTATION: "x"});
        let cases: Vec<(&str, Value, Option<&str>)> = vec![
            ("no account", pod(json!({"containers": []})), Some("no service account specified for pod ns/p")),
            ("allowed secret", pod(json!({"serviceAccountName": "default", "volumes": [{"name": "v", "secret": {"secretName": "ok"}}], "containers": []})), None),
            (
                "volume secret",
                pod(json!({"serviceAccountName": "default", "volumes": [{"name": "v", "secret": {"secretName": "no"}}], "containers": []})),
                Some("volume with secret.secretName=\"no\" is not allowed because service account default does not reference that secret"),
            ),
            (
                "env secret",
                pod(json!({"serviceAccountName": "default", "containers": [{"name": "c", "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "no", "key": "k"}}}]}]})),
                Some("container c with envVar E referencing secret.secretName=\"no\" is not allowed because service account default does not reference that secret"),
            ),
            (
                "envFrom secret in init container",
                pod(json!({"serviceAccountName": "default", "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "no"}}]}], "containers": []})),
                Some("init container i with envFrom referencing secret.secretName=\"no\" is not allowed because service account default does not reference that secret"),
            ),
            (
                "pull secret",
                pod(json!({"serviceAccountName": "default", "imagePullSecrets": [{"name": "reg"}, {"name": "x"}], "containers": []})),
                Some("imagePullSecrets[1].name=\"x\" is not allowed because service account default does not reference that imagePullSecret"),
            ),
            ("mirror with account", mirror_sa, Some("mirror pods may not reference service accounts")),
            ("mirror with secret", mirror_secret, Some("mirror pods may not reference secrets")),
        ];
        let api = api_with(&[enforcing]);
        for (name, obj, want) in cases {
            let a = attrs(Operation::Create, "Pod", "ns", Some(obj), None);
            let got = plugin().validate(&a, &api).await;
            match want {
                None => assert_eq!(got, Ok(()), "{name}"),
                Some(why) => assert_eq!(
                    got.expect_err(name).message,
                    format!("pods \"p\" is forbidden: {why}"),
                    "{name}"
                ),
            }
        }
    }
}
