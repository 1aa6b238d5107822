//! What a Wasm controller's `cache` import reads: the reflector stores of the kinds its
//! WasmPlugin declares, and nothing else (another kind is `kind-not-allowed`).

use keelson_apimachinery::selector::LabelSelector;
use keelson_plugin_host::controller::{CacheError, ControllerCache, GroupVersionKind};
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::{ObjectRef, Store};

/// One watched kind's store.
pub(super) struct Kind {
    /// The kind as declared.
    pub(super) gvk: GroupVersionKind,
    /// Its resource, from discovery.
    pub(super) resource: ApiResource,
    /// Its objects.
    pub(super) store: Store<DynamicObject>,
}

/// The stores of one plugin's watched kinds and its config.
pub(super) struct Stores {
    /// The watched kinds.
    pub(super) kinds: Vec<Kind>,
    /// `spec.config` as JSON.
    pub(super) config: String,
}

impl Stores {
    fn kind(&self, gvk: &GroupVersionKind) -> Result<&Kind, CacheError> {
        self.kinds
            .iter()
            .find(|k| k.gvk == *gvk)
            .ok_or(CacheError::KindNotAllowed)
    }
}

fn to_json(obj: &DynamicObject) -> String {
    serde_json::to_string(obj).unwrap_or_else(|_| "{}".into())
}

impl ControllerCache for Stores {
    fn get(
        &self,
        kind: &GroupVersionKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>, CacheError> {
        let k = self.kind(kind)?;
        let mut key = ObjectRef::<DynamicObject>::new_with(name, k.resource.clone());
        if !namespace.is_empty() {
            key = key.within(namespace);
        }
        Ok(k.store.get(&key).map(|o| to_json(&o)))
    }

    fn list(
        &self,
        kind: &GroupVersionKind,
        namespace: Option<&str>,
        label_selector: &str,
    ) -> Result<Vec<String>, CacheError> {
        let k = self.kind(kind)?;
        let selector = LabelSelector::parse(label_selector).map_err(|_| CacheError::BadSelector)?;
        Ok(k.store
            .state()
            .iter()
            .filter(|o| namespace.is_none_or(|ns| o.metadata.namespace.as_deref() == Some(ns)))
            .filter_map(|o| {
                let v = serde_json::to_value(&**o).ok()?;
                selector.matches_object(&v).then(|| v.to_string())
            })
            .collect())
    }

    fn config(&self) -> String {
        self.config.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::store;
    use kube::runtime::watcher::Event;

    #[test]
    fn reads_only_declared_kinds() {
        let resource = ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            plural: "configmaps".into(),
        };
        let mut writer2 = store::Writer::<DynamicObject>::new(resource.clone());
        let reader2 = writer2.as_reader();
        for (ns, name, team) in [("a", "one", "x"), ("b", "two", "y")] {
            let mut o = DynamicObject::new(name, &resource).within(ns);
            o.metadata.labels = Some([("team".to_string(), team.to_string())].into());
            writer2.apply_watcher_event(&Event::Apply(o));
        }
        let stores = Stores {
            kinds: vec![Kind {
                gvk: GroupVersionKind {
                    group: String::new(),
                    version: "v1".into(),
                    kind: "ConfigMap".into(),
                },
                resource,
                store: reader2,
            }],
            config: "{}".into(),
        };
        let cm = stores.kinds[0].gvk.clone();
        assert!(stores
            .get(&cm, "a", "one")
            .unwrap()
            .unwrap()
            .contains("\"one\""));
        assert_eq!(stores.get(&cm, "b", "one").unwrap(), None);
        assert_eq!(stores.list(&cm, None, "").unwrap().len(), 2);
        assert_eq!(stores.list(&cm, Some("b"), "").unwrap().len(), 1);
        assert_eq!(stores.list(&cm, None, "team=x").unwrap().len(), 1);
        assert_eq!(
            stores.list(&cm, None, "team in ("),
            Err(CacheError::BadSelector)
        );
        let pod = GroupVersionKind {
            kind: "Pod".into(),
            ..cm
        };
        assert_eq!(stores.get(&pod, "a", "x"), Err(CacheError::KindNotAllowed));
    }
}
