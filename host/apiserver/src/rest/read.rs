//! Reads for the handlers: the matching objects of a scope (in key order, which `continue`
//! tokens page by), and the store watch a watch request starts from.

use serde_json::Value;

use super::Scope;
use crate::error::ApiResult;
use crate::objects::from_store;

/// Every object of the scope (one namespace, or all) that `keep` selects, each with its
/// position (an opaque, ordered token for paging), and the revision of the read.
pub(crate) async fn list(
    scope: &Scope,
    keep: &(dyn Fn(&Value) -> bool + Sync),
) -> ApiResult<(Vec<(String, Value)>, i64)> {
    let (kvs, rev) = scope
        .api
        .store
        .list(&scope.def.prefix_in(scope.namespace()))
        .await?;
    let mut out = Vec::with_capacity(kvs.len());
    for kv in &kvs {
        let obj = from_store(&scope.def, kv)?;
        if keep(&obj) {
            out.push((kv.key.clone(), obj));
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
