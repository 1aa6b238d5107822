//! The audit log (`--audit-policy-file`, `--audit-log-path`): each request is matched against
//! Kubernetes' audit `Policy` (first rule wins: users, userGroups, verbs, resources,
//! namespaces, nonResourceURLs) to a level — None, Metadata, Request (plus the request body)
//! or RequestResponse (plus the response body, except for watches) — and written when its
//! response completes as one JSON line in `audit.k8s.io/v1` `Event` form.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use keelson_auth::Attributes;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::UserInfo;

/// How much of a request is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub(crate) enum Level {
    /// Not logged.
    None,
    /// User, verb, resource, code, timestamps.
    Metadata,
    /// Metadata and the request body.
    Request,
    /// Metadata, request and response bodies.
    RequestResponse,
}

#[derive(Debug, Deserialize)]
struct GroupResources {
    #[serde(default)]
    group: String,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default, rename = "resourceNames")]
    resource_names: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    level: Level,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    user_groups: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
    #[serde(default)]
    resources: Vec<GroupResources>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    non_resource_urls: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Policy {
    kind: Option<String>,
    rules: Vec<Rule>,
}

impl Rule {
    fn matches(&self, user: &UserInfo, a: &Attributes) -> bool {
        let any = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        if !any(&self.users, &user.name)
            || !(self.user_groups.is_empty()
                || user.groups.iter().any(|g| self.user_groups.contains(g)))
            || !any(&self.verbs, &a.verb)
        {
            return false;
        }
        if !a.resource_request {
            return self.resources.is_empty()
                && self.namespaces.is_empty()
                && (self.non_resource_urls.is_empty()
                    || self.non_resource_urls.iter().any(|u| {
                        u == &a.path || u.strip_suffix('*').is_some_and(|p| a.path.starts_with(p))
                    }));
        }
        if !self.non_resource_urls.is_empty() || !any(&self.namespaces, &a.namespace) {
            return false;
        }
        self.resources.is_empty()
            || self.resources.iter().any(|g| {
                g.group == a.group
                    && (g.resources.is_empty()
                        || g.resources.iter().any(|r| {
                            r == "*"
                                || *r == a.qualified_resource()
                                || (r == &a.resource && a.subresource.is_empty())
                                || r.strip_suffix("/*").is_some_and(|p| p == a.resource)
                        }))
                    && (g.resource_names.is_empty() || g.resource_names.contains(&a.name))
            })
    }
}

/// Why the audit configuration was refused.
#[derive(Debug, thiserror::Error)]
#[error("audit: {0}")]
pub struct AuditError(String);

/// The audit log: a policy and the file it appends to.
pub(crate) struct Audit {
    policy: Policy,
    out: Mutex<std::fs::File>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("rules", &self.policy.rules.len())
            .finish()
    }
}

/// One request being audited.
#[derive(Debug)]
pub(crate) struct Record {
    /// The level it was matched to.
    pub(crate) level: Level,
    event: Value,
}

impl Audit {
    /// Reads the policy and opens (appends to) the log.
    pub(crate) fn open(policy: &Path, log: &Path) -> Result<Self, AuditError> {
        let text = std::fs::read_to_string(policy)
            .map_err(|e| AuditError(format!("{}: {e}", policy.display())))?;
        let policy: Policy = serde_saphyr::from_str(&text)
            .map_err(|e| AuditError(format!("{}: {e}", policy.display())))?;
        if policy.kind.as_deref().is_some_and(|k| k != "Policy") {
            return Err(AuditError(format!("kind {:?} is not Policy", policy.kind)));
        }
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| AuditError(format!("{}: {e}", log.display())))?;
        Ok(Self {
            policy,
            out: Mutex::new(out),
        })
    }

    /// The level of a request (None when no rule matches).
    pub(crate) fn level(&self, user: &UserInfo, a: &Attributes) -> Level {
        self.policy
            .rules
            .iter()
            .find(|r| r.matches(user, a))
            .map(|r| r.level)
            .unwrap_or(Level::None)
    }

    /// Starts the record of a request.
    pub(crate) fn begin(
        &self,
        user: &UserInfo,
        a: &Attributes,
        uri: &str,
        user_agent: &str,
        decision: &keelson_auth::Decision,
    ) -> Option<Record> {
        let level = self.level(user, a);
        if level == Level::None {
            return None;
        }
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let mut event = json!({
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": format!("{level:?}"),
            "auditID": uuid::Uuid::new_v4().to_string(),
            "stage": "ResponseComplete",
            "requestURI": uri,
            "verb": a.verb,
            "user": {"username": user.name, "groups": user.groups},
            "userAgent": user_agent,
            "requestReceivedTimestamp": now,
            "annotations": {
                "authorization.k8s.io/decision": if decision.allowed() { "allow" } else { "forbid" },
                "authorization.k8s.io/reason": decision.reason(),
            },
        });
        if a.resource_request {
            let mut object = json!({"resource": a.resource, "apiGroup": a.group});
            for (k, v) in [
                ("namespace", &a.namespace),
                ("name", &a.name),
                ("subresource", &a.subresource),
            ] {
                if !v.is_empty() {
                    object[k] = json!(v);
                }
            }
            event["objectRef"] = object;
        }
        Some(Record { level, event })
    }

    /// Completes and writes a record.
    pub(crate) fn finish(
        &self,
        mut record: Record,
        code: u16,
        request: Option<&[u8]>,
        response: Option<&[u8]>,
    ) {
        let body = |b: Option<&[u8]>| b.and_then(|b| serde_json::from_slice::<Value>(b).ok());
        if record.level >= Level::Request {
            if let Some(obj) = body(request) {
                record.event["requestObject"] = obj;
            }
        }
        if record.level >= Level::RequestResponse {
            if let Some(obj) = body(response) {
                record.event["responseObject"] = obj;
            }
        }
        record.event["responseStatus"] = json!({"metadata": {}, "code": code});
        record.event["stageTimestamp"] =
            json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
        let mut line = record.event.to_string();
        line.push('\n');
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = out.write_all(line.as_bytes()) {
            tracing::warn!(error = %e, "writing the audit log failed");
        }
    }
}

/// Runs a request, recording it in `record` (bodies buffered only at the levels that log them;
/// a watch's stream is never buffered).
pub(crate) async fn around(
    audit: &Audit,
    record: Record,
    req: axum::extract::Request,
    next: axum::middleware::Next,
    watching: bool,
) -> axum::response::Response {
    use axum::body::{to_bytes, Body};
    let limit = crate::handlers::MAX_BODY;
    let (req, request_body) = match record.level >= Level::Request {
        true => {
            let (parts, body) = req.into_parts();
            let bytes = to_bytes(body, limit).await.unwrap_or_default();
            (
                axum::extract::Request::from_parts(parts, Body::from(bytes.clone())),
                Some(bytes),
            )
        }
        false => (req, None),
    };
    let response = next.run(req).await;
    let code = response.status().as_u16();
    if record.level < Level::RequestResponse || watching {
        audit.finish(record, code, request_body.as_deref(), None);
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    audit.finish(record, code, request_body.as_deref(), Some(&bytes));
    axum::response::Response::from_parts(parts, Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_rule_sets_the_level() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.yaml");
        std::fs::write(
            &policy,
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  users: [system:kube-scheduler]\n- level: RequestResponse\n  resources: [{group: '', resources: [secrets]}]\n- level: Metadata\n  nonResourceURLs: ['/version']\n- level: Request\n  verbs: [create]\n",
        )
        .unwrap();
        let audit = Audit::open(&policy, &dir.path().join("audit.log")).unwrap();
        let alice = UserInfo::new("alice", &[]);
        let secret = Attributes::resource("get", "d", "", "secrets", "s");
        assert_eq!(audit.level(&alice, &secret), Level::RequestResponse);
        assert_eq!(audit.level(&UserInfo::scheduler(), &secret), Level::None);
        assert_eq!(
            audit.level(&alice, &Attributes::path("get", "/version")),
            Level::Metadata
        );
        assert_eq!(
            audit.level(&alice, &Attributes::resource("create", "d", "", "pods", "")),
            Level::Request
        );
        assert_eq!(
            audit.level(&alice, &Attributes::resource("get", "d", "", "pods", "p")),
            Level::None
        );
        let record = audit
            .begin(
                &alice,
                &secret,
                "/api/v1/namespaces/d/secrets/s",
                "kubectl",
                &keelson_auth::Decision::Allow("RBAC: x".into()),
            )
            .unwrap();
        audit.finish(record, 200, None, Some(br#"{"kind":"Secret"}"#));
        let log = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
        let event: Value = serde_json::from_str(log.trim()).unwrap();
        assert_eq!(event["apiVersion"], "audit.k8s.io/v1");
        assert_eq!(event["objectRef"]["resource"], "secrets");
        assert_eq!(event["responseObject"]["kind"], "Secret");
        assert_eq!(event["responseStatus"]["code"], 200);
    }
}
