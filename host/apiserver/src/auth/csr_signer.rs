//! The CertificateSigningRequest signer (Kubernetes' csrsigning controller, run by the API
//! server because it holds the CA keys): an approved, unsigned request for
//! `kubernetes.io/kube-apiserver-client` (any subject) or
//! `kubernetes.io/kube-apiserver-client-kubelet` (a `system:node:<n>` in `system:nodes`) is
//! signed by the client CA, so the certificate authenticates here; one for
//! `kubernetes.io/kubelet-serving` by the serving CA. A request that cannot be signed gets the
//! `Failed` condition. Other signers' requests are left alone.

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use futures::TryStreamExt;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use serde_json::json;

use crate::ApiServer;

/// Kubernetes' default `--cluster-signing-duration`: one year.
const DEFAULT_SECONDS: i64 = 365 * 24 * 3600;

fn has_condition(csr: &CertificateSigningRequest, kind: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == kind && c.status == "True"))
}

/// The subject CN of a PEM certificate request.
fn common_name(pem: &str) -> Result<String, String> {
    use x509_parser::prelude::FromDer;
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
    let (_, req) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&pem.contents)
            .map_err(|e| e.to_string())?;
    let cn = req
        .certification_request_info
        .subject
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or_default()
        .to_string();
    Ok(cn)
}

/// Signs one request; `Err` is the reason for the Failed condition, `Ok(None)` another
/// signer's request.
fn sign(tls: &std::path::Path, csr: &CertificateSigningRequest) -> Result<Option<String>, String> {
    let spec = &csr.spec;
    let pem = String::from_utf8(spec.request.0.clone())
        .map_err(|_| "the request is not PEM".to_string())?;
    let seconds =
        i64::from(spec.expiration_seconds.unwrap_or(DEFAULT_SECONDS as i32)).min(DEFAULT_SECONDS);
    let read =
        |name: &str| std::fs::read_to_string(tls.join(name)).map_err(|e| format!("{name}: {e}"));
    let (ca, server) = match spec.signer_name.as_str() {
        "kubernetes.io/kube-apiserver-client" => ("client-ca", false),
        "kubernetes.io/kube-apiserver-client-kubelet" => ("client-ca", false),
        "kubernetes.io/kubelet-serving" => ("ca", true),
        _ => return Ok(None),
    };
    if spec.signer_name != "kubernetes.io/kube-apiserver-client" {
        // Node certificates name a node: CN system:node:<name>, O system:nodes.
        let cn = common_name(&pem)?;
        if !cn.starts_with("system:node:") {
            return Err(format!("subject CN {cn:?} is not system:node:<name>"));
        }
    }
    let cert = keelson_auth::authn::x509::sign_request(
        &read(&format!("{ca}.crt"))?,
        &read(&format!("{ca}.key"))?,
        &pem,
        seconds,
        server,
    )
    .map_err(|e| e.to_string())?;
    Ok(Some(cert))
}

async fn handle(
    tls: &std::path::Path,
    api: &Api<CertificateSigningRequest>,
    csr: CertificateSigningRequest,
) {
    let name = csr.metadata.name.clone().unwrap_or_default();
    let signed = csr
        .status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty());
    if signed
        || !has_condition(&csr, "Approved")
        || has_condition(&csr, "Denied")
        || has_condition(&csr, "Failed")
    {
        return;
    }
    let _span = tracing::info_span!("csr-signer", csr = %name).entered();
    let patch = match sign(tls, &csr) {
        Ok(None) => return,
        Ok(Some(cert)) => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_bytes());
            json!({"status": {"certificate": b64}})
        }
        Err(why) => {
            tracing::info!(%why, "cannot sign");
            let conditions = csr.status.and_then(|s| s.conditions).unwrap_or_default();
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let mut list = serde_json::to_value(&conditions).unwrap_or_else(|_| json!([]));
            if let Some(list) = list.as_array_mut() {
                list.push(json!({"type": "Failed", "status": "True", "reason": "SignerValidationFailure", "message": why, "lastUpdateTime": now, "lastTransitionTime": now}));
            }
            json!({"status": {"conditions": list}})
        }
    };
    drop(_span);
    if let Err(e) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::warn!(csr = %name, error = %e, "writing the CSR status failed");
    }
}

/// Runs the signer until the server stops.
pub(crate) fn start(api: &Arc<ApiServer>, client: kube::Client, data_dir: PathBuf) {
    let stopping = api.stopping.clone();
    tokio::spawn(async move {
        let csrs: Api<CertificateSigningRequest> = Api::all(client);
        let tls = data_dir.join("tls");
        let events = watcher(csrs.clone(), Default::default())
            .default_backoff()
            .applied_objects();
        let mut events = std::pin::pin!(events);
        loop {
            let next = tokio::select! {
                () = stopping.cancelled() => return,
                next = events.try_next() => next,
            };
            match next {
                Ok(Some(csr)) => handle(&tls, &csrs, csr).await,
                Ok(None) => return,
                Err(e) => tracing::warn!(error = %e, "CSR watch failed; retrying"),
            }
        }
    });
}
