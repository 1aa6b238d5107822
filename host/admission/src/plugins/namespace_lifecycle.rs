//! NamespaceLifecycle: objects can only be created in namespaces that exist and are not
//! terminating; the system namespaces cannot be deleted.

use crate::{Api, Attributes, Denied, Operation, Plugin};

/// Namespaces that may never be deleted.
const IMMORTAL: [&str; 3] = ["default", "kube-system", "kube-public"];

/// The NamespaceLifecycle plugin.
pub(crate) struct NamespaceLifecycle;

#[async_trait::async_trait]
impl Plugin for NamespaceLifecycle {
    fn name(&self) -> &str {
        "NamespaceLifecycle"
    }

    async fn validate(&self, a: &Attributes, api: &dyn Api) -> Result<(), Denied> {
        if a.operation == Operation::Delete
            && a.is("", "Namespace")
            && IMMORTAL.contains(&a.name.as_str())
        {
            return Err(Denied::forbidden(a, "this namespace may not be deleted"));
        }
        if a.operation != Operation::Create || a.namespace.is_empty() {
            return Ok(());
        }
        let ns = api
            .get(&format!("/api/v1/namespaces/{}", a.namespace))
            .await
            .map_err(|e| Denied {
                code: 500,
                reason: crate::Reason::InternalError,
                message: e.to_string(),
            })?;
        match ns {
            None => Err(Denied { code: 404, reason: crate::Reason::NotFound, message: format!("namespaces \"{}\" not found", a.namespace) }),
            Some(ns) if ns.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null()) => Err(Denied::forbidden(
                a,
                format!("unable to create new content in namespace {} because it is being terminated", a.namespace),
            )),
            Some(_) => Ok(()),
        }
    }
}
