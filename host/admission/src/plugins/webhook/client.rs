//! Calling one webhook: the AdmissionReview request built from the attributes, the endpoint
//! (`clientConfig.url`, or `clientConfig.service` through the Service's clusterIP), an HTTPS
//! client that trusts `clientConfig.caBundle` (rustls, cached per bundle), and the response.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use keelson_apimachinery::status::error_chain;
use serde_json::{json, Value};

use crate::{Api, Attributes, Operation};

/// Default and maximum `timeoutSeconds` (Kubernetes' v1 defaults).
const DEFAULT_TIMEOUT: u64 = 10;
const MAX_TIMEOUT: u64 = 30;
/// Clients kept; beyond this the cache is cleared (bundles rarely change).
const MAX_CLIENTS: usize = 64;

/// What a webhook answered.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    /// `response.allowed`.
    pub(crate) allowed: bool,
    /// `response.status` (code, reason, message) for a denial.
    pub(crate) status: Option<Value>,
    /// Decoded `response.patch`.
    pub(crate) patch: Option<Vec<u8>>,
    /// `response.patchType`.
    pub(crate) patch_type: Option<String>,
}

/// A host name pinned to an address (a service's DNS name → its clusterIP).
type Pin = Option<(String, SocketAddr)>;

/// HTTPS clients by (CA bundle, pinned address).
#[derive(Default)]
pub(crate) struct Clients {
    cache: Mutex<HashMap<(String, Pin), reqwest::Client>>,
}

impl Clients {
    fn client(
        &self,
        ca_bundle: &str,
        pin: Option<(String, SocketAddr)>,
    ) -> Result<reqwest::Client, String> {
        let key = (ca_bundle.to_string(), pin.clone());
        if let Some(c) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(c.clone());
        }
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .no_proxy()
            .connect_timeout(Duration::from_secs(DEFAULT_TIMEOUT))
            .pool_idle_timeout(Duration::from_secs(30));
        if !ca_bundle.is_empty() {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(ca_bundle.trim())
                .map_err(|e| format!("invalid clientConfig.caBundle: {e}"))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("invalid clientConfig.caBundle: {e}"))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some((host, addr)) = &pin {
            builder = builder.resolve(host, *addr);
        }
        let client = builder
            .build()
            .map_err(|e| format!("building the webhook client: {e}"))?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CLIENTS {
            cache.clear();
        }
        cache.insert(key, client.clone());
        Ok(client)
    }
}

/// The webhook's timeout (`timeoutSeconds`, default 10, at most 30).
pub(crate) fn timeout(hook: &Value) -> Duration {
    let secs = hook
        .get("timeoutSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_TIMEOUT);
    Duration::from_secs(secs.clamp(1, MAX_TIMEOUT))
}

/// Where to POST: the URL and, for a service reference, the address its DNS name stands for.
async fn endpoint(hook: &Value, api: &dyn Api) -> Result<(reqwest::Url, Pin), String> {
    let config = hook.get("clientConfig").cloned().unwrap_or_default();
    if let Some(url) = config.get("url").and_then(Value::as_str) {
        let url = reqwest::Url::parse(url)
            .map_err(|e| format!("invalid clientConfig.url {url:?}: {e}"))?;
        if url.scheme() != "https" {
            return Err(format!("clientConfig.url {url} must use https"));
        }
        return Ok((url, None));
    }
    let Some(svc) = config.get("service") else {
        return Err("clientConfig has neither url nor service".into());
    };
    let name = svc.get("name").and_then(Value::as_str).unwrap_or_default();
    let namespace = svc
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let port = svc.get("port").and_then(Value::as_u64).unwrap_or(443);
    let path = svc.get("path").and_then(Value::as_str).unwrap_or("/");
    let host = format!("{name}.{namespace}.svc");
    // Keelson has no cluster DNS: the service's name is pinned to its clusterIP, and the
    // certificate is still checked against `<name>.<namespace>.svc` as Kubernetes does.
    let service = api
        .get(&format!("/api/v1/namespaces/{namespace}/services/{name}"))
        .await
        .map_err(|e| e.0)?
        .ok_or_else(|| format!("service \"{namespace}/{name}\" not found"))?;
    let ip: IpAddr = service
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .and_then(|ip| ip.parse().ok())
        .ok_or_else(|| format!("service \"{namespace}/{name}\" has no cluster IP"))?;
    let port = u16::try_from(port).map_err(|_| format!("invalid service port {port}"))?;
    let url =
        reqwest::Url::parse(&format!("https://{host}:{port}{path}")).map_err(|e| e.to_string())?;
    Ok((url, Some((host, SocketAddr::new(ip, port)))))
}

/// The `AdmissionReview` request for `a` (`admission.k8s.io/v1`, or `v1beta1` when the webhook
/// only accepts that).
pub(crate) fn review(hook: &Value, a: &Attributes, uid: &str) -> Result<Value, String> {
    let versions: Vec<&str> = hook
        .get("admissionReviewVersions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let version = if versions.is_empty() || versions.contains(&"v1") {
        "v1"
    } else if versions.contains(&"v1beta1") {
        "v1beta1"
    } else {
        return Err(format!(
            "webhook does not accept v1 or v1beta1 AdmissionReview requests (accepts {versions:?})"
        ));
    };
    let kind = json!({"group": a.group, "version": a.version, "kind": a.kind});
    let resource = json!({"group": a.group, "version": a.version, "resource": a.resource});
    let options = match a.operation {
        Operation::Create => json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}),
        Operation::Update => json!({"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"}),
        Operation::Delete => json!({"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"}),
        Operation::Connect => Value::Null,
    };
    let mut request = json!({
        "uid": uid,
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "name": a.name,
        "namespace": a.namespace,
        "operation": a.operation.as_str(),
        "userInfo": {"username": a.user.name, "groups": a.user.groups},
        "object": a.object.clone().unwrap_or(Value::Null),
        "oldObject": a.old_object.clone().unwrap_or(Value::Null),
        "dryRun": a.dry_run,
        "options": options,
    });
    if !a.subresource.is_empty() {
        request["subResource"] = json!(a.subresource);
        request["requestSubResource"] = json!(a.subresource);
    }
    Ok(
        json!({"apiVersion": format!("admission.k8s.io/{version}"), "kind": "AdmissionReview", "request": request}),
    )
}

/// Reads `response` out of an AdmissionReview answer.
pub(crate) fn verdict(body: &Value, uid: &str) -> Result<Verdict, String> {
    let response = body
        .get("response")
        .filter(|r| r.is_object())
        .ok_or("webhook response was absent")?;
    let got = response
        .get("uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if got != uid {
        return Err(format!("expected response.uid={uid:?}, got {got:?}"));
    }
    let patch = match response
        .get("patch")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
    {
        Some(p) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(p)
                .map_err(|e| format!("invalid response.patch: {e}"))?,
        ),
        None => None,
    };
    Ok(Verdict {
        allowed: response
            .get("allowed")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        status: response.get("status").filter(|s| s.is_object()).cloned(),
        patch,
        patch_type: response
            .get("patchType")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// Calls the webhook; `Err` is a call failure, handled by the webhook's failurePolicy.
pub(crate) async fn call(
    clients: &Clients,
    hook: &Value,
    a: &Attributes,
    api: &dyn Api,
) -> Result<Verdict, String> {
    let uid = uuid::Uuid::new_v4().to_string();
    let body = review(hook, a, &uid)?;
    let (mut url, pin) = endpoint(hook, api).await?;
    let timeout = timeout(hook);
    url.query_pairs_mut()
        .append_pair("timeout", &format!("{}s", timeout.as_secs()));
    let ca = hook
        .pointer("/clientConfig/caBundle")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let client = clients.client(ca, pin)?;
    // reqwest's own message repeats the URL; its causes say what went wrong.
    let post = |e: &reqwest::Error| {
        let why = match std::error::Error::source(e) {
            Some(cause) if !e.is_timeout() => error_chain(cause),
            _ => error_chain(e),
        };
        format!("failed to call webhook: Post \"{url}\": {why}")
    };
    let resp = client
        .post(url.clone())
        .json(&body)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| post(&e))?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| post(&e))?;
    if !status.is_success() {
        return Err(format!(
            "failed to call webhook: the server responded with status {status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(512)])
        ));
    }
    let answer: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("received invalid webhook response: {e}"))?;
    verdict(&answer, &uid)
}
