//! A container's environment and command line, as the kubelet builds them: `envFrom` sources
//! in order (with `prefix`), then `env` entries (literal values with `$(VAR)` expansion,
//! `configMapKeyRef`, `secretKeyRef`, `fieldRef`, `resourceFieldRef`), later names winning;
//! then `command` and `args` expanded against that environment. `$(VAR)` of an undefined
//! name stays as written and `$$` escapes a `$`, as in Kubernetes.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::Error;

/// ConfigMaps and Secrets of the pod's namespace the container refers to, by name
/// (Secret values already decoded).
#[derive(Debug, Default)]
pub(crate) struct Sources {
    pub(crate) config_maps: HashMap<String, BTreeMap<String, String>>,
    pub(crate) secrets: HashMap<String, BTreeMap<String, String>>,
}

/// The names of the ConfigMaps and Secrets `container` refers to.
pub(crate) fn referenced(container: &Container) -> (Vec<String>, Vec<String>) {
    let (mut cms, mut secrets) = (Vec::new(), Vec::new());
    for from in container.env_from.iter().flatten() {
        if let Some(r) = &from.config_map_ref {
            cms.push(r.name.clone());
        }
        if let Some(r) = &from.secret_ref {
            secrets.push(r.name.clone());
        }
    }
    for var in container.env.iter().flatten() {
        let Some(from) = &var.value_from else {
            continue;
        };
        if let Some(r) = &from.config_map_key_ref {
            cms.push(r.name.clone());
        }
        if let Some(r) = &from.secret_key_ref {
            secrets.push(r.name.clone());
        }
    }
    cms.sort();
    cms.dedup();
    secrets.sort();
    secrets.dedup();
    (cms, secrets)
}

/// Expands `$(NAME)` in `input` from `vars`; `$$` is a literal `$`.
pub(crate) fn expand(input: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str(&rest[i..]);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

pub(crate) fn field(pod: &Pod, path: &str) -> Result<String, Error> {
    let meta = &pod.metadata;
    let status = pod.status.as_ref();
    let map_key = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix("['").or_else(|| r.strip_prefix("[\"")))
            .and_then(|r| r.strip_suffix("']").or_else(|| r.strip_suffix("\"]")))
    };
    if let Some(k) = map_key("metadata.labels") {
        return Ok(meta
            .labels
            .as_ref()
            .and_then(|l| l.get(k))
            .cloned()
            .unwrap_or_default());
    }
    if let Some(k) = map_key("metadata.annotations") {
        return Ok(meta
            .annotations
            .as_ref()
            .and_then(|l| l.get(k))
            .cloned()
            .unwrap_or_default());
    }
    let spec = pod.spec.as_ref();
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()).unwrap_or_default(),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
        "status.hostIPs" | "status.podIPs" => {
            let ips = match path {
                "status.hostIPs" => status
                    .and_then(|s| s.host_ips.as_ref())
                    .map(|v| v.iter().map(|i| i.ip.clone()).collect::<Vec<_>>()),
                _ => status
                    .and_then(|s| s.pod_ips.as_ref())
                    .map(|v| v.iter().map(|i| i.ip.clone()).collect::<Vec<_>>()),
            };
            ips.unwrap_or_default().join(",")
        }
        other => return Err(Error::Config(format!("unsupported fieldRef {other:?}"))),
    })
}

fn resource_field(
    container: &Container,
    resource: &str,
    divisor: Option<&str>,
) -> Result<String, Error> {
    let (kind, name) = resource
        .split_once('.')
        .ok_or_else(|| Error::Config(format!("unsupported resourceFieldRef {resource:?}")))?;
    let resources = container.resources.as_ref();
    let list = match kind {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => {
            return Err(Error::Config(format!(
                "unsupported resourceFieldRef {resource:?}"
            )))
        }
    };
    let value = match list.and_then(|l| l.get(name)) {
        Some(q) => {
            keelson_apimachinery::quantity::parse(&q.0).map_err(|e| Error::Config(e.to_string()))?
        }
        // Unset limits read as the node's allocatable in Kubernetes; 0 here.
        None => 0,
    };
    let divisor = match divisor {
        Some(d) => {
            keelson_apimachinery::quantity::parse(d).map_err(|e| Error::Config(e.to_string()))?
        }
        None => 1000,
    };
    if divisor <= 0 {
        return Err(Error::Config(
            "resourceFieldRef divisor must be positive".into(),
        ));
    }
    // Kubernetes rounds up.
    Ok(((value + divisor - 1) / divisor).to_string())
}

/// The container's environment, in definition order with later duplicates replacing earlier
/// ones in place.
pub(crate) fn build(
    pod: &Pod,
    container: &Container,
    sources: &Sources,
) -> Result<Vec<(String, String)>, Error> {
    let mut order: Vec<String> = Vec::new();
    let mut vars: HashMap<String, String> = HashMap::new();
    let mut set = |name: String, value: String, vars: &mut HashMap<String, String>| {
        if vars.insert(name.clone(), value).is_none() {
            order.push(name);
        }
    };
    let missing = |what: &str, name: &str| Error::Config(format!("{what} {name:?} not found"));
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (data, optional, what, name) = if let Some(r) = &from.config_map_ref {
            (
                sources.config_maps.get(&r.name),
                r.optional,
                "configmap",
                &r.name,
            )
        } else if let Some(r) = &from.secret_ref {
            (sources.secrets.get(&r.name), r.optional, "secret", &r.name)
        } else {
            continue;
        };
        match data {
            Some(data) => {
                for (k, v) in data {
                    set(format!("{prefix}{k}"), v.clone(), &mut vars);
                }
            }
            None if optional == Some(true) => {}
            None => return Err(missing(what, name)),
        }
    }
    for var in container.env.iter().flatten() {
        let value = match &var.value_from {
            None => expand(var.value.as_deref().unwrap_or_default(), &vars),
            Some(from) => {
                if let Some(r) = &from.config_map_key_ref {
                    match sources.config_maps.get(&r.name).and_then(|d| d.get(&r.key)) {
                        Some(v) => v.clone(),
                        None if r.optional == Some(true) => continue,
                        None => {
                            return Err(missing("configmap key", &format!("{}/{}", r.name, r.key)))
                        }
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    match sources.secrets.get(&r.name).and_then(|d| d.get(&r.key)) {
                        Some(v) => v.clone(),
                        None if r.optional == Some(true) => continue,
                        None => {
                            return Err(missing("secret key", &format!("{}/{}", r.name, r.key)))
                        }
                    }
                } else if let Some(f) = &from.field_ref {
                    field(pod, &f.field_path)?
                } else if let Some(r) = &from.resource_field_ref {
                    resource_field(
                        container,
                        &r.resource,
                        r.divisor.as_ref().map(|d| d.0.as_str()),
                    )?
                } else {
                    String::new()
                }
            }
        };
        set(var.name.clone(), value, &mut vars);
    }
    Ok(order
        .into_iter()
        .map(|k| {
            let v = vars.remove(&k).unwrap_or_default();
            (k, v)
        })
        .collect())
}

/// `command` and `args`, expanded against `env`.
pub(crate) fn command_line(
    container: &Container,
    env: &[(String, String)],
) -> (Vec<String>, Vec<String>) {
    let vars: HashMap<String, String> = env.iter().cloned().collect();
    let expand_all = |list: &Option<Vec<String>>| {
        list.iter()
            .flatten()
            .map(|a| expand(a, &vars))
            .collect::<Vec<_>>()
    };
    (expand_all(&container.command), expand_all(&container.args))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expansion_follows_kubernetes() {
        let v = vars(&[("A", "1"), ("B", "two")]);
        for (input, want) in [
            ("$(A)", "1"),
            ("x-$(A)-$(B)-y", "x-1-two-y"),
            ("$(MISSING)", "$(MISSING)"),
            ("$$(A)", "$(A)"),
            ("$$", "$"),
            ("cost $5", "cost $5"),
            ("$(A", "$(A"),
            ("", ""),
        ] {
            assert_eq!(expand(input, &v), want, "{input}");
        }
    }

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{
                "name": "c", "image": "demo",
                "command": ["demo", "--print", "$(GREETING) $(POD)"],
                "args": ["$(SIZE)", "$$(GREETING)"],
                "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
                "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}, {"secretRef": {"name": "gone", "optional": true}}],
                "env": [
                    {"name": "GREETING", "value": "hello $(CM_who)"},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
                    {"name": "SIZE", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                    {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                    {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "nope", "optional": true}}},
                ]
            }]},
            "status": {"podIP": "10.0.0.9"}
        }))
        .unwrap()
    }

    #[test]
    fn env_and_argv_from_all_sources() {
        let pod = pod();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        assert_eq!(
            referenced(c),
            (vec!["cm".into()], vec!["gone".into(), "s".into()])
        );
        let mut sources = Sources::default();
        sources
            .config_maps
            .insert("cm".into(), [("who".into(), "world".into())].into());
        sources
            .secrets
            .insert("s".into(), [("pw".into(), "hunter2".into())].into());
        let env = build(&pod, c, &sources).unwrap();
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            ["CM_who", "GREETING", "POD", "APP", "PASS", "SIZE", "CPU"]
        );
        let map: HashMap<_, _> = env.iter().cloned().collect();
        assert_eq!(map["GREETING"], "hello world");
        assert_eq!(map["POD"], "p");
        assert_eq!(map["APP"], "web");
        assert_eq!(map["PASS"], "hunter2");
        assert_eq!(map["SIZE"], "64");
        assert_eq!(map["CPU"], "1");
        let (command, args) = command_line(c, &env);
        assert_eq!(command, ["demo", "--print", "hello world p"]);
        assert_eq!(args, ["64", "$(GREETING)"]);
    }

    #[test]
    fn a_missing_required_source_is_a_config_error() {
        let pod = pod();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let err = build(&pod, c, &Sources::default()).unwrap_err();
        assert_eq!(err.to_string(), "configmap \"cm\" not found");
    }
}
