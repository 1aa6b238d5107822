//! Objects decoded once per stored version and shared: the memo the API server keeps on each
//! watch-cache event ([`keelson_store::CachedEvent`]). Every watcher that receives an event and
//! every list served from the cache reads the same decoded object and the same JSON bytes,
//! instead of parsing and re-encoding the stored value per watcher (Kubernetes' cachingObject).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use keelson_store::{CachedEvent, KeyValue};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::objects::from_store;
use crate::registry::ResourceDef;

/// One stored object version as served under one API version.
pub(crate) struct Decoded {
    /// The object, with `apiVersion` and `metadata.resourceVersion` set.
    pub(crate) value: Value,
    /// `value` as compact JSON (stored objects keep Kubernetes' field order), no newline.
    pub(crate) json: Bytes,
}

impl Decoded {
    fn new(def: &ResourceDef, kv: &KeyValue) -> ApiResult<Self> {
        let value = from_store(def, kv)?;
        let json = serde_json::to_vec(&value)
            .map_err(ApiError::internal)?
            .into();
        Ok(Self { value, json })
    }
}

/// Per event: the decoded value and previous value, per API version (usually one).
#[derive(Default)]
struct Memo {
    current: Mutex<Vec<(String, Arc<Decoded>)>>,
    previous: Mutex<Vec<(String, Option<Arc<Decoded>>)>>,
}

/// The event's memo; `None` (decode afresh) when sharing is off ([`crate::Config::shared_reads`]).
fn memo(ev: &CachedEvent, shared: bool) -> Option<&Memo> {
    shared.then(|| ev.memo(Memo::default)).flatten()
}

/// The value an event left behind, decoded for `def` (once per event and API version when
/// `shared`).
pub(crate) fn current(
    def: &ResourceDef,
    ev: &CachedEvent,
    shared: bool,
) -> ApiResult<Arc<Decoded>> {
    let Some(memo) = memo(ev, shared) else {
        return Decoded::new(def, ev.kv()).map(Arc::new);
    };
    let version = def.api_version();
    let mut slots = memo.current.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, d)) = slots.iter().find(|(v, _)| *v == version) {
        return Ok(d.clone());
    }
    let d = Arc::new(Decoded::new(def, ev.kv())?);
    slots.push((version, d.clone()));
    Ok(d)
}

/// For an update: the value before it (at the update's revision), decoded for `def`.
pub(crate) fn previous(def: &ResourceDef, ev: &CachedEvent, shared: bool) -> Option<Arc<Decoded>> {
    let prev = ev.event.prev.as_ref()?;
    let decode = || {
        let now = ev.kv();
        let kv = KeyValue {
            key: now.key.clone(),
            value: prev.clone(),
            create_revision: now.create_revision,
            mod_revision: now.mod_revision,
        };
        Decoded::new(def, &kv).ok().map(Arc::new)
    };
    let Some(memo) = memo(ev, shared) else {
        return decode();
    };
    let version = def.api_version();
    let mut slots = memo.previous.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, d)) = slots.iter().find(|(v, _)| *v == version) {
        return d.clone();
    }
    let d = decode();
    slots.push((version, d.clone()));
    d
}
