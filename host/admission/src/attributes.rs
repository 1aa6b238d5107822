//! What a plugin sees of a request (Kubernetes' `admission.Attributes`).

use std::sync::{Arc, OnceLock};

use serde::ser::{Serialize, SerializeMap, Serializer};
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
    /// The objects as JSON, encoded once per admission pass for every plugin that needs them
    /// (the chain forgets them whenever a mutating plugin may have changed the object).
    pub encoded: Encoded,
}

/// JSON encodings of a request's objects, made on first use and shared by every plugin of the
/// pass: `metadata.managedFields` left out (what Wasm plugins get unless they ask for it), or
/// kept.
#[derive(Debug, Clone, Default)]
pub struct Encoded {
    slots: [OnceLock<Arc<str>>; 4],
}

impl Encoded {
    /// The new object as JSON (empty when there is none), with or without managedFields.
    pub fn object(&self, a: &Attributes, managed_fields: bool) -> Arc<str> {
        self.get(
            usize::from(managed_fields),
            a.object.as_ref(),
            managed_fields,
        )
    }

    /// The old object as JSON (empty when there is none), with or without managedFields.
    pub fn old_object(&self, a: &Attributes, managed_fields: bool) -> Arc<str> {
        self.get(
            2 + usize::from(managed_fields),
            a.old_object.as_ref(),
            managed_fields,
        )
    }

    fn get(&self, slot: usize, value: Option<&Value>, managed_fields: bool) -> Arc<str> {
        self.slots[slot]
            .get_or_init(|| match value {
                None => Arc::from(""),
                Some(v) if managed_fields => Arc::from(v.to_string()),
                Some(v) => {
                    Arc::from(serde_json::to_string(&WithoutManagedFields(v)).unwrap_or_default())
                }
            })
            .clone()
    }
}

/// Serializes an object without `metadata.managedFields`, without copying it.
struct WithoutManagedFields<'a>(&'a Value);

impl Serialize for WithoutManagedFields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Some(map) = self.0.as_object() else {
            return self.0.serialize(s);
        };
        let mut out = s.serialize_map(Some(map.len()))?;
        for (k, v) in map {
            match v.as_object() {
                Some(meta) if k == "metadata" && meta.contains_key("managedFields") => {
                    out.serialize_entry(k, &MetadataWithout(meta))?
                }
                _ => out.serialize_entry(k, v)?,
            }
        }
        out.end()
    }
}

struct MetadataWithout<'a>(&'a serde_json::Map<String, Value>);

impl Serialize for MetadataWithout<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_map(Some(self.0.len() - 1))?;
        for (k, v) in self.0 {
            if k != "managedFields" {
                out.serialize_entry(k, v)?;
            }
        }
        out.end()
    }
}

impl Attributes {
    /// Is this the main resource (not a subresource) of the given group/kind?
    pub fn is(&self, group: &str, kind: &str) -> bool {
        self.group == group && self.kind == kind && self.subresource.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_leave_out_managed_fields_unless_asked() {
        let a = Attributes {
            operation: Operation::Create,
            group: String::new(),
            version: "v1".into(),
            kind: "Pod".into(),
            resource: "pods".into(),
            subresource: String::new(),
            namespace: "default".into(),
            name: "p".into(),
            object: Some(
                serde_json::json!({"kind": "Pod", "metadata": {"name": "p", "managedFields": [{"manager": "kubectl"}], "labels": {"a": "b"}}, "spec": {}}),
            ),
            old_object: None,
            user: UserInfo::default(),
            dry_run: false,
            encoded: Encoded::default(),
        };
        let lean = a.encoded.object(&a, false);
        assert_eq!(
            &*lean,
            r#"{"kind":"Pod","metadata":{"name":"p","labels":{"a":"b"}},"spec":{}}"#
        );
        assert!(Arc::ptr_eq(&lean, &a.encoded.object(&a, false)));
        assert!(a.encoded.object(&a, true).contains("managedFields"));
        assert_eq!(&*a.encoded.old_object(&a, false), "");
    }
}
