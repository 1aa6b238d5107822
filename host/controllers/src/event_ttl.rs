//! Event TTL: an Event is deleted once it has gone [`Config::ttl`] without an update (one hour by
//! default, Kubernetes' `--event-ttl=1h`), so Events no longer grow without bound.
//!
//! Kubernetes attaches an etcd lease to every Event write at the storage layer. Keelson has two
//! stores — the embedded SQLite revision log, which has no notion of expiry, and etcd — and a
//! store-level TTL would mean a lease/expiry column in the `Backend` trait, a sweeper in the
//! SQLite engine that emits delete events into the revision log and watch cache, lease handling
//! in the etcd engine and pass-through in the encrypting wrapper, migration and snapshots. That
//! is disproportionate for one resource, so expiry is a controller instead: it watches Events
//! and deletes each one through the API when its last update (the newest of `series
//! .lastObservedTime`, `lastTimestamp`, `eventTime`, its managedFields times and its creation)
//! is older than the TTL, requeueing a not-yet-due Event for the moment it is due. The delete is
//! conditional on the resourceVersion it judged, so an Event updated meanwhile is kept. Keelson
//! stores `v1` and `events.k8s.io/v1` Events separately, so each group is watched.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::api::events::v1::Event as EventV1;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::Resource;
use serde::de::DeserializeOwned;

use crate::error::{is_conflict, is_not_found, Error};

/// How long Events live.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Time after an Event's last update at which it is deleted (Kubernetes' `--event-ttl`).
    pub ttl: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(3600),
        }
    }
}

/// Runs the Event TTL controller (both Event API groups) until the process ends.
pub async fn run(client: kube::Client, config: Config) {
    tokio::join!(
        run_for::<Event>(client.clone(), config, last_update),
        run_for::<EventV1>(client, config, last_update_v1),
    );
}

/// When an object of `K` was last written.
type LastUpdate<K> = fn(&K) -> Option<Timestamp>;

struct Ctx<K> {
    client: kube::Client,
    config: Config,
    last_update: LastUpdate<K>,
}

async fn run_for<K>(client: kube::Client, config: Config, last_update: LastUpdate<K>)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let events: Api<K> = Api::all(client.clone());
    let ctx = Arc::new(Ctx {
        client,
        config,
        last_update,
    });
    Controller::new(events, watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

fn error_policy<K>(_ev: Arc<K>, e: &Error, _ctx: Arc<Ctx<K>>) -> Action {
    tracing::warn!(error = %e, "deleting an expired Event failed; will retry");
    Action::requeue(Duration::from_secs(5))
}

/// The newest of the object's creation and its managedFields times.
fn meta_times(meta: &ObjectMeta) -> impl Iterator<Item = Timestamp> + '_ {
    meta.managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.time.as_ref().map(|t| t.0))
        .chain(meta.creation_timestamp.as_ref().map(|t| t.0))
}

/// When a `v1` Event was last written, as far as its fields tell.
pub fn last_update(ev: &Event) -> Option<Timestamp> {
    let series = ev
        .series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref())
        .map(|t| t.0);
    [
        series,
        ev.last_timestamp.as_ref().map(|t| t.0),
        ev.event_time.as_ref().map(|t| t.0),
    ]
    .into_iter()
    .flatten()
    .chain(meta_times(&ev.metadata))
    .max()
}

/// When an `events.k8s.io/v1` Event was last written.
pub fn last_update_v1(ev: &EventV1) -> Option<Timestamp> {
    let series = ev.series.as_ref().map(|s| s.last_observed_time.0);
    [
        series,
        ev.deprecated_last_timestamp.as_ref().map(|t| t.0),
        ev.event_time.as_ref().map(|t| t.0),
    ]
    .into_iter()
    .flatten()
    .chain(meta_times(&ev.metadata))
    .max()
}

/// How long until an Event last written at `last` expires (zero once it has).
pub fn remaining(last: Option<Timestamp>, ttl: Duration, now: Timestamp) -> Option<Duration> {
    let ttl = jiff::SignedDuration::try_from(ttl).ok()?;
    let due = last?.checked_add(ttl).ok()?;
    Some(Duration::try_from(now.duration_until(due)).unwrap_or(Duration::ZERO))
}

#[tracing::instrument(skip_all, fields(controller = "event-ttl", namespace = ev.meta().namespace.as_deref().unwrap_or_default(), event = ev.meta().name.as_deref().unwrap_or_default()))]
async fn reconcile<K>(ev: Arc<K>, ctx: Arc<Ctx<K>>) -> Result<Action, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned,
{
    let Some(left) = remaining((ctx.last_update)(&ev), ctx.config.ttl, Timestamp::now()) else {
        return Ok(Action::await_change());
    };
    if !left.is_zero() {
        return Ok(Action::requeue(left + Duration::from_millis(100)));
    }
    let meta = ev.meta();
    let ns = meta.namespace.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
        }),
        ..Default::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => tracing::debug!("deleted expired Event"),
        Err(e) if is_not_found(&e) || is_conflict(&e) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(v: serde_json::Value) -> Event {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn expiry_counts_from_the_newest_write() {
        let now: Timestamp = "2026-12-07T12:00:00Z".parse().unwrap();
        let hour = Duration::from_secs(3600);
        let old = event(serde_json::json!({
            "metadata": {"name": "e", "namespace": "default", "creationTimestamp": "2026-12-07T10:00:00Z"},
            "involvedObject": {},
            "lastTimestamp": "2026-12-07T10:30:00Z",
        }));
        assert_eq!(
            remaining(last_update(&old), hour, now),
            Some(Duration::ZERO)
        );
        let repeated = event(serde_json::json!({
            "metadata": {"name": "e", "namespace": "default", "creationTimestamp": "2026-12-07T10:00:00Z"},
            "involvedObject": {},
            "lastTimestamp": "2026-12-07T11:50:00Z",
        }));
        assert_eq!(
            remaining(last_update(&repeated), hour, now),
            Some(Duration::from_secs(50 * 60))
        );
        let series = event(serde_json::json!({
            "metadata": {"name": "e", "namespace": "default", "creationTimestamp": "2026-12-07T10:00:00Z"},
            "involvedObject": {},
            "eventTime": "2026-12-07T10:00:00.000000Z",
            "series": {"count": 3, "lastObservedTime": "2026-12-07T11:59:00.000000Z"},
        }));
        assert_eq!(
            remaining(last_update(&series), hour, now),
            Some(Duration::from_secs(59 * 60))
        );
        let timeless = event(serde_json::json!({"metadata": {"name": "e"}, "involvedObject": {}}));
        assert_eq!(remaining(last_update(&timeless), hour, now), None);
    }
}
