//! The watch cache: one backend watch, fanned out to any number of watchers, and the current
//! state of every key under `/registry/` that lists can be served from.
//!
//! Every event is held once, as a [`CachedEvent`] behind an `Arc`, and handed to every watcher
//! that receives it; its memo slot keeps what the API server derives from it (the decoded
//! object, its JSON), so that work is done once per event, not once per watcher, as Kubernetes'
//! watch cache does with its caching object. The current state maps each key to the event
//! that wrote its value, so a list served from the cache reuses the same memo.
//!
//! The most recent events stay in a ring buffer, so a watcher starting at a recent revision is
//! served from memory; older (but still retained) revisions are replayed by the backend for that
//! watcher alone. N watchers cost one store watch and no task each.

use std::any::Any;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch};

use crate::{Backend, Error, Event, EventKind, KeyValue, Result};

/// Events kept in memory for watchers that resume from a recent revision.
const BUFFER: usize = 8192;
/// Keys the cache keeps the current state of (every API object).
const STATE_PREFIX: &str = "/registry/";
/// How long a list waits for the cache to reach the revision it must reflect before it reads
/// the backend instead (Kubernetes' consistent reads from cache wait up to 3 s).
const CATCH_UP: Duration = Duration::from_secs(3);

/// One event (or, in the current state, one key's value) as the cache holds it: shared by
/// every watcher and list that sees it.
pub struct CachedEvent {
    /// The change.
    pub event: Event,
    memo: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl CachedEvent {
    /// Wraps an event with an empty memo.
    pub fn new(event: Event) -> Self {
        Self {
            event,
            memo: OnceLock::new(),
        }
    }

    /// The memo of type `T`, created by `init` on first use; `None` when a memo of another
    /// type was created first (one user per process: the API server).
    pub fn memo<T: Any + Send + Sync>(&self, init: impl FnOnce() -> T) -> Option<&T> {
        self.memo.get_or_init(|| Box::new(init())).downcast_ref()
    }

    /// The stored key and value this event leaves behind.
    pub fn kv(&self) -> &KeyValue {
        &self.event.kv
    }
}

impl std::fmt::Debug for CachedEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.event.fmt(f)
    }
}

struct Ring {
    events: VecDeque<Arc<CachedEvent>>,
    /// Watchers may resume from any revision ≥ this one from memory.
    oldest: i64,
    revision: i64,
    /// Every live key under [`STATE_PREFIX`] at `revision`, with the event that wrote it.
    current: BTreeMap<String, Arc<CachedEvent>>,
}

/// One backend watch fanned out to many watchers.
pub struct WatchCache {
    backend: Arc<dyn Backend>,
    ring: Mutex<Ring>,
    live: broadcast::Sender<Arc<CachedEvent>>,
    /// The revision the cache has reached, for lists waiting to be consistent.
    reached: watch::Sender<i64>,
}

/// The events a watcher receives, in revision order.
pub struct WatchStream {
    source: Source,
}

enum Source {
    /// Served from the cache: the replayed part of the ring, then the live broadcast.
    Cache {
        replay: VecDeque<Arc<CachedEvent>>,
        live: broadcast::Receiver<Arc<CachedEvent>>,
        prefix: String,
        /// Live events at or below this revision were in the replay (or before `after`).
        last: i64,
        after: i64,
        ended: bool,
    },
    /// Replayed by the backend for a watcher older than the ring.
    Backend {
        rx: mpsc::Receiver<Result<Event>>,
        prefix: String,
    },
}

impl WatchStream {
    /// The next event; `None` when the stream ended, `Some(Err(Expired))` when the watcher fell
    /// too far behind and must re-list.
    pub async fn next(&mut self) -> Option<Result<Event>> {
        Some(self.next_shared().await?.map(|ev| ev.event.clone()))
    }

    /// Like [`WatchStream::next`], without copying: the event as the cache holds it, shared
    /// with every other watcher (and its memo with them). Cancel-safe.
    pub async fn next_shared(&mut self) -> Option<Result<Arc<CachedEvent>>> {
        match &mut self.source {
            Source::Cache {
                replay,
                live,
                prefix,
                last,
                after,
                ended,
            } => {
                if *ended {
                    return None;
                }
                if let Some(ev) = replay.pop_front() {
                    return Some(Ok(ev));
                }
                loop {
                    match live.recv().await {
                        Ok(ev) => {
                            if ev.event.kv.mod_revision > *last
                                && ev.event.kv.key.starts_with(prefix.as_str())
                            {
                                return Some(Ok(ev));
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            *ended = true;
                            return Some(Err(Error::Expired {
                                requested: *after,
                                oldest: *after + 1,
                            }));
                        }
                        Err(broadcast::error::RecvError::Closed) => {
                            *ended = true;
                            return None;
                        }
                    }
                }
            }
            Source::Backend { rx, prefix } => loop {
                let item = rx.recv().await?;
                match item {
                    Ok(ev) if !ev.kv.key.starts_with(prefix.as_str()) => continue,
                    Ok(ev) => return Some(Ok(Arc::new(CachedEvent::new(ev)))),
                    Err(e) => return Some(Err(e)),
                }
            },
        }
    }
}

impl WatchCache {
    /// Loads the current state from the backend and follows its changes from there.
    pub async fn start(backend: Arc<dyn Backend>) -> Result<Arc<Self>> {
        let (current, revision) = load_state(backend.as_ref()).await?;
        let (live, _) = broadcast::channel(BUFFER * 4);
        let cache = Arc::new(Self {
            backend: backend.clone(),
            ring: Mutex::new(Ring {
                events: VecDeque::new(),
                oldest: revision,
                revision,
                current,
            }),
            live,
            reached: watch::Sender::new(revision),
        });
        let rx = backend.watch(revision).await?;
        tokio::spawn(cache.clone().pump(rx));
        Ok(cache)
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest revision the cache has seen.
    pub fn revision(&self) -> i64 {
        self.ring().revision
    }

    async fn pump(self: Arc<Self>, mut rx: mpsc::Receiver<Result<Event>>) {
        loop {
            while let Some(item) = rx.recv().await {
                match item {
                    Ok(ev) => self.push(ev),
                    Err(e) => {
                        tracing::warn!(error = %e, "store watch failed; restarting");
                        break;
                    }
                }
            }
            // Resume after the last revision seen; if that is gone, reload the state.
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let from = self.revision();
                match self.backend.watch(from).await {
                    Ok(new) => {
                        rx = new;
                        break;
                    }
                    Err(Error::Expired { .. }) => match load_state(self.backend.as_ref()).await {
                        Ok((current, now)) => {
                            {
                                let mut ring = self.ring();
                                ring.events.clear();
                                ring.oldest = now;
                                ring.revision = now;
                                ring.current = current;
                            }
                            self.reached.send_replace(now);
                        }
                        Err(e) => tracing::warn!(error = %e, "reloading the watch cache failed"),
                    },
                    Err(e) => tracing::warn!(error = %e, "store watch restart failed"),
                }
            }
        }
    }

    fn push(&self, ev: Event) {
        let ev = Arc::new(CachedEvent::new(ev));
        let revision = ev.event.kv.mod_revision;
        {
            let mut ring = self.ring();
            if revision <= ring.revision {
                return;
            }
            ring.revision = revision;
            let key = &ev.event.kv.key;
            if key.starts_with(STATE_PREFIX) {
                match ev.event.kind {
                    EventKind::Deleted => {
                        ring.current.remove(key);
                    }
                    EventKind::Created | EventKind::Updated => {
                        ring.current.insert(key.clone(), ev.clone());
                    }
                }
            }
            ring.events.push_back(ev.clone());
            if ring.events.len() > BUFFER {
                if let Some(old) = ring.events.pop_front() {
                    ring.oldest = old.event.kv.mod_revision;
                }
            }
            // Sent under the lock so that a new watcher's replay and live stream do not overlap.
            let _ = self.live.send(ev);
        }
        self.reached.send_replace(revision);
    }

    /// Watches keys under `prefix` for events with a revision greater than `after`.
    pub async fn watch(&self, prefix: &str, after: i64) -> Result<WatchStream> {
        let prefix = prefix.to_string();
        let too_old = after < self.ring().oldest;
        if too_old {
            let rx = self.backend.watch(after).await?;
            return Ok(WatchStream {
                source: Source::Backend { rx, prefix },
            });
        }
        let ring = self.ring();
        let replay = ring
            .events
            .iter()
            .filter(|e| e.event.kv.mod_revision > after && e.event.kv.key.starts_with(&prefix))
            .cloned()
            .collect();
        Ok(WatchStream {
            source: Source::Cache {
                replay,
                live: self.live.subscribe(),
                last: ring.revision.max(after),
                prefix,
                after,
                ended: false,
            },
        })
    }

    /// The current values under `prefix` (sorted by key) at the cache's revision, once that
    /// revision is at least `min_revision`; `None` when the cache did not get there in time.
    pub async fn list(
        &self,
        prefix: &str,
        min_revision: i64,
    ) -> Option<(Vec<Arc<CachedEvent>>, i64)> {
        if *self.reached.borrow() < min_revision {
            let mut rx = self.reached.subscribe();
            let caught_up = tokio::time::timeout(CATCH_UP, rx.wait_for(|r| *r >= min_revision));
            if !matches!(caught_up.await, Ok(Ok(_))) {
                return None;
            }
        }
        if !prefix.starts_with(STATE_PREFIX) {
            return None;
        }
        let ring = self.ring();
        let items = ring
            .current
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect();
        Some((items, ring.revision))
    }
}

/// Every key under [`STATE_PREFIX`] and the revision of that read.
async fn load_state(backend: &dyn Backend) -> Result<(BTreeMap<String, Arc<CachedEvent>>, i64)> {
    let (kvs, revision) = backend.list(STATE_PREFIX).await?;
    let current = kvs
        .into_iter()
        .map(|kv| {
            let key = kv.key.clone();
            let ev = Event {
                kind: EventKind::Created,
                kv,
                prev: None,
            };
            (key, Arc::new(CachedEvent::new(ev)))
        })
        .collect();
    Ok((current, revision))
}
