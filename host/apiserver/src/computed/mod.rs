//! Read-only kinds computed on each request rather than stored: `apiregistration.k8s.io/v1`
//! APIServices (one `Local` service per served group/version, so they always match discovery)
//! and core `componentstatuses` (the health of the store, the scheduler and the controller
//! manager), and `metrics.k8s.io/v1beta1` NodeMetrics and PodMetrics from the agents
//! ([`metrics`]). `get` and `list` are served, as objects, Tables or metadata; nothing else is.

mod apiservices;
mod componentstatuses;
pub(crate) mod metrics;

use std::collections::BTreeSet;
use std::sync::Mutex;

use axum::response::Response;
use http::Method;
use serde_json::{json, Value};

use crate::codec::{representation, Representation};
use crate::error::{ApiError, ApiResult};
use crate::handlers::{respond, Ctx};
use crate::registry::ResourceDef;
use crate::{objects, table};

pub(crate) use apiservices::table_cells as apiservice_cells;
pub(crate) use componentstatuses::table_cells as componentstatus_cells;

/// A computed kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `apiregistration.k8s.io/v1` APIService.
    ApiService,
    /// Core `v1` ComponentStatus.
    ComponentStatus,
    /// `metrics.k8s.io/v1beta1` NodeMetrics.
    NodeMetrics,
    /// `metrics.k8s.io/v1beta1` PodMetrics.
    PodMetrics,
}

/// The verbs discovery lists for computed kinds.
pub(crate) const VERBS: [&str; 2] = ["get", "list"];

/// The computed kind a resource is, if it is one.
pub(crate) fn kind_of(def: &ResourceDef) -> Option<Kind> {
    match (def.group.as_str(), def.plural.as_str()) {
        ("apiregistration.k8s.io", "apiservices") => Some(Kind::ApiService),
        ("", "componentstatuses") => Some(Kind::ComponentStatus),
        ("metrics.k8s.io", "nodes") => Some(Kind::NodeMetrics),
        ("metrics.k8s.io", "pods") => Some(Kind::PodMetrics),
        _ => None,
    }
}

/// Components running inside this server process, which report themselves so that
/// `componentstatuses` can tell a running one from an absent one when it holds no Lease.
#[derive(Debug, Default)]
pub struct InProcessComponents {
    running: Mutex<BTreeSet<String>>,
}

impl InProcessComponents {
    /// Records that `name` (`scheduler`, `controller-manager`) runs in this process.
    pub fn set_running(&self, name: &str) {
        self.lock().insert(name.to_string());
    }

    /// Does `name` run in this process?
    pub fn is_running(&self, name: &str) -> bool {
        self.lock().contains(name)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Serves `get` and `list` of a computed kind.
pub(crate) async fn serve(ctx: Ctx, kind: Kind, method: Method) -> ApiResult<Response> {
    let watching = ctx.info.legacy_watch || ctx.query.flag("watch");
    if method != Method::GET || watching || ctx.info.subresource.is_some() {
        let verb = if watching { "watch" } else { method.as_str() };
        return Err(ApiError::method_not_allowed(verb, &ctx.def.plural));
    }
    let rep = representation(&ctx.headers)?;
    let rv = ctx.api.store.current_revision().await?.to_string();
    let objects = match kind {
        Kind::ApiService => apiservices::all(&ctx.api).await?,
        Kind::ComponentStatus => componentstatuses::all(&ctx.api).await,
        Kind::NodeMetrics => metrics::nodes(&ctx).await,
        Kind::PodMetrics => metrics::pods(&ctx).await,
    };
    let filter = crate::handlers::Filter::from_ctx(&ctx)?;
    let out = match ctx.info.name.as_deref() {
        Some(name) => {
            let obj = objects
                .into_iter()
                .find(|o| objects::name(o) == name)
                .ok_or_else(|| ctx.not_found())?;
            match rep {
                Representation::Object => obj,
                Representation::Metadata => objects::partial_metadata(&obj),
                Representation::Table => {
                    table::to_table(&ctx.def, &[obj], &rv, ctx.query.get("includeObject"))
                }
            }
        }
        None => {
            let items: Vec<Value> = objects.into_iter().filter(|o| filter.matches(o)).collect();
            match rep {
                Representation::Table => {
                    table::to_table(&ctx.def, &items, &rv, ctx.query.get("includeObject"))
                }
                Representation::Metadata => crate::codec::to_metadata(list(&ctx.def, &rv, items)),
                Representation::Object => list(&ctx.def, &rv, items),
            }
        }
    };
    Ok(respond(200, &out))
}

fn list(def: &ResourceDef, rv: &str, items: Vec<Value>) -> Value {
    json!({
        "kind": objects::list_kind(def),
        "apiVersion": def.api_version(),
        "metadata": {"resourceVersion": rv},
        "items": items,
    })
}
