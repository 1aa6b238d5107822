//! What a plugin sees of a request (Kubernetes' `admission.Attributes`).

use serde_json::Value;

/// The operation being admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// POST, or an apply that creates.
    Create,
    /// PUT or PATCH.
    Update,
    /// DELETE.
    Delete,
    /// exec, attach, port-forward, proxy.
    Connect,
}

impl Operation {
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`, as webhook rules and AdmissionReview spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

pub use keelson_apimachinery::UserInfo;

/// One admission request.
#[derive(Debug, Clone)]
pub struct Attributes {
    /// The operation.
    pub operation: Operation,
    /// API group ("" for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind of the object.
    pub kind: String,
    /// Plural resource.
    pub resource: String,
    /// Subresource ("" for the main resource).
    pub subresource: String,
    /// Namespace ("" for cluster-scoped).
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// The new object (create/update), which mutating plugins may change.
    pub object: Option<Value>,
    /// The stored object (update/delete).
    pub old_object: Option<Value>,
    /// Who asks.
    pub user: UserInfo,
    /// `dryRun=All`: plugins must not have side effects.
    pub dry_run: bool,
}

impl Attributes {
    /// Is this the main resource (not a subresource) of the given group/kind?
    pub fn is(&self, group: &str, kind: &str) -> bool {
        self.group == group && self.kind == kind && self.subresource.is_empty()
    }
}
