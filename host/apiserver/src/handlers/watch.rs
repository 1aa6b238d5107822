//! Watch: newline-delimited JSON events over a chunked response, starting from a
//! resourceVersion (or with synthetic ADDED events for the current state), with bookmarks,
//! `sendInitialEvents`, `timeoutSeconds`, selectors, Table rows, and an ERROR event with
//! 410 Expired when the requested revision is gone.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use futures::StreamExt;
use keelson_store::{CachedEvent, EventKind};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::read::{list_objects, Filter};
use super::Ctx;
use crate::codec::{representation, Representation};
use crate::decoded::{self, Decoded};
use crate::error::{ApiError, ApiResult};
use crate::registry::ResourceDef;
use crate::table;

/// How often an idle watch with `allowWatchBookmarks` gets a BOOKMARK.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);
/// Longest watch before the server closes it (clients re-watch), like Kubernetes' min-request-timeout.
const MAX_WATCH: Duration = Duration::from_secs(1800);

fn event(kind: &str, mut object: Value) -> bytes::Bytes {
    crate::protobuf::kubernetes_order(&mut object);
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    line.into()
}

/// An event line around an object's shared JSON encoding (stored objects are in Kubernetes'
/// field order already): the same bytes [`event`] writes, without re-encoding the object.
fn event_as_stored(kind: &str, object: &Decoded) -> bytes::Bytes {
    let mut line = Vec::with_capacity(object.json.len() + 32);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(&object.json);
    line.extend_from_slice(b"}\n");
    line.into()
}

/// What a watcher with selectors sees of a store event, as Kubernetes' watch cache decides it:
/// an update that brings an object into the selection is ADDED, one that takes it out is
/// DELETED (with the previous content at the new resourceVersion); `None` when unseen. The
/// decoded objects are the event's shared ones: each is decoded once for all watchers.
fn selected(
    def: &ResourceDef,
    ev: &CachedEvent,
    shared: bool,
    keep: &impl Fn(&Value) -> bool,
) -> Option<(&'static str, Arc<Decoded>)> {
    let obj = decoded::current(def, ev, shared).ok()?;
    let now = keep(&obj.value);
    match ev.event.kind {
        EventKind::Created => now.then_some(("ADDED", obj)),
        EventKind::Deleted => now.then_some(("DELETED", obj)),
        EventKind::Updated => {
            let before = decoded::previous(def, ev, shared);
            match (before.as_ref().map(|b| keep(&b.value)).unwrap_or(now), now) {
                (true, true) => Some(("MODIFIED", obj)),
                (false, true) => Some(("ADDED", obj)),
                (true, false) => before.map(|b| ("DELETED", b)),
                (false, false) => None,
            }
        }
    }
}

pub(crate) async fn watch(ctx: Ctx) -> ApiResult<Response> {
    let rep = representation(&ctx.headers)?;
    let filter = Filter::from_ctx(&ctx)?;
    let only_name = ctx.info.name.clone();
    let rv_param = ctx
        .query
        .get("resourceVersion")
        .unwrap_or_default()
        .to_string();
    let send_initial = match ctx.query.get("sendInitialEvents") {
        Some("true") => true,
        Some(_) => false,
        None => rv_param.is_empty() || rv_param == "0",
    };
    let bookmarks = ctx.query.flag("allowWatchBookmarks");
    let timeout = ctx
        .query
        .number("timeoutSeconds")
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t as u64))
        .unwrap_or(MAX_WATCH)
        .min(MAX_WATCH);
    let (tx, rx) = mpsc::channel::<bytes::Bytes>(64);
    let def = ctx.def.clone();
    let render = move |kind: &str, obj: &Decoded| -> bytes::Bytes {
        match rep {
            Representation::Object => event_as_stored(kind, obj),
            Representation::Table => event(
                kind,
                table::to_table(
                    &def,
                    std::slice::from_ref(&obj.value),
                    crate::objects::meta_str(&obj.value, "resourceVersion").unwrap_or_default(),
                    None,
                ),
            ),
            Representation::Metadata => event(kind, crate::objects::partial_metadata(&obj.value)),
        }
    };
    let keep = move |obj: &Value| {
        filter.matches(obj)
            && only_name
                .as_deref()
                .is_none_or(|n| crate::objects::name(obj) == n)
    };

    // Initial state (synthetic ADDED events), then everything after its revision.
    let mut after = match rv_param.parse::<i64>() {
        Ok(rv) if rv > 0 && !send_initial => rv,
        Ok(_) | Err(_) if !rv_param.is_empty() && rv_param != "0" => {
            return Err(ApiError::bad_request(format!(
                "invalid resourceVersion {rv_param:?}"
            )));
        }
        _ => 0,
    };
    let mut initial = Vec::new();
    if send_initial {
        let (items, rev) = list_objects(&ctx).await?;
        initial = items
            .into_iter()
            .map(|(_, o)| o)
            .filter(|o| keep(&o.value))
            .collect();
        after = rev;
    }
    let bookmark_proto = json!({"kind": ctx.def.kind, "apiVersion": ctx.def.api_version(), "metadata": {"resourceVersion": ""}});
    let explicit_initial = ctx.query.get("sendInitialEvents") == Some("true");
    let stream = crate::rest::watch(&ctx, after).await;
    let def = ctx.def.clone();
    let stopping = ctx.api.stopping.clone();
    let shared = ctx
        .api
        .shared_reads
        .load(std::sync::atomic::Ordering::Relaxed);
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        for obj in initial {
            if tx.send(render("ADDED", &obj)).await.is_err() {
                return;
            }
        }
        let mut last_rv = after;
        if explicit_initial && bookmarks {
            let mut b = bookmark_proto.clone();
            b["metadata"] = json!({"resourceVersion": last_rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}});
            if tx.send(event("BOOKMARK", b)).await.is_err() {
                return;
            }
        }
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(event("ERROR", ApiError::from(e).status())).await;
                return;
            }
        };
        let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = stopping.cancelled() => return,
                _ = tx.closed() => return,
                _ = ticker.tick(), if bookmarks => {
                    let mut b = bookmark_proto.clone();
                    b["metadata"]["resourceVersion"] = json!(last_rv.to_string());
                    if tx.send(event("BOOKMARK", b)).await.is_err() { return; }
                }
                next = stream.next_shared() => {
                    let ev = match next {
                        None => return,
                        Some(Err(e)) => {
                            let _ = tx.send(event("ERROR", ApiError::from(e).status())).await;
                            return;
                        }
                        Some(Ok(ev)) => ev,
                    };
                    last_rv = ev.kv().mod_revision;
                    let Some((kind, obj)) = selected(&def, &ev, shared, &keep) else { continue };
                    if tx.send(render(kind, &obj)).await.is_err() { return; }
                }
            }
        }
    });
    let body = Body::from_stream(
        tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>),
    );
    Ok(Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CACHE_CONTROL, "no-cache, private")
        .body(body)
        .unwrap_or_default())
}
