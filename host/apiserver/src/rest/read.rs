//! Reads for the handlers: the matching objects of a scope (in key order, which `continue`
//! tokens page by), served from the watch cache, and the store watch a watch request starts
//! from.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use keelson_store::CachedEvent;

use serde_json::Value;

use super::Scope;
use crate::decoded::{self, Decoded};
use crate::error::ApiResult;

/// Every object of the scope (one namespace, or all) that `keep` selects, each with its store
/// key (an opaque, ordered token for paging), and the revision the list reflects. Served from
/// the watch cache, decoded once per object version and shared with watchers:
/// `min_revision` `None` is a consistent read, `Some(0)` any cached state, `Some(n)` at least
/// revision `n` (see [`keelson_store::Store::list_cached`]).
pub(crate) async fn list(
    scope: &Scope,
    min_revision: Option<i64>,
    keep: &(dyn Fn(&Value) -> bool + Sync),
) -> ApiResult<(Vec<(String, Arc<Decoded>)>, i64)> {
    let prefix = scope.def.prefix_in(scope.namespace());
    let shared = scope.api.shared_reads.load(Ordering::Relaxed);
    let (events, rev) = if shared {
        scope.api.store.list_cached(&prefix, min_revision).await?
    } else {
        let (kvs, rev) = scope.api.store.list(&prefix).await?;
        let events = kvs.into_iter().map(|kv| {
            Arc::new(CachedEvent::new(keelson_store::Event {
                kind: keelson_store::EventKind::Created,
                kv,
                prev: None,
            }))
        });
        (events.collect(), rev)
    };
    let mut out = Vec::with_capacity(events.len());
    for ev in &events {
        let obj = decoded::current(&scope.def, ev, shared)?;
        if keep(&obj.value) {
            out.push((ev.kv().key.clone(), obj));
        }
    }
    Ok((out, rev))
}

/// The store's changes in the scope after revision `after`.
pub(crate) async fn watch(
    scope: &Scope,
    after: i64,
) -> keelson_store::Result<keelson_store::WatchStream> {
    scope
        .api
        .store
        .watch(&scope.def.prefix_in(scope.namespace()), after)
        .await
}
