//! The watch cache: one backend watch, fanned out to any number of watchers.
//!
//! It keeps the most recent events in a ring buffer so that a watcher starting at a recent
//! revision is served from memory; older (but still retained) revisions are replayed by the
//! backend for that watcher alone. N watchers cost one store watch.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};

use crate::{Backend, Error, Event, Result};

/// Events kept in memory for watchers that resume from a recent revision.
const BUFFER: usize = 8192;

struct Ring {
    events: VecDeque<Arc<Event>>,
    /// Watchers may resume from any revision ≥ this one from memory.
    oldest: i64,
    revision: i64,
}

/// One backend watch fanned out to many watchers.
pub struct WatchCache {
    backend: Arc<dyn Backend>,
    ring: Mutex<Ring>,
    live: broadcast::Sender<Arc<Event>>,
}

/// The events a watcher receives, in revision order.
pub struct WatchStream {
    rx: mpsc::Receiver<Result<Event>>,
}

impl WatchStream {
    /// The next event; `None` when the stream ended, `Some(Err(Expired))` when the watcher fell
    /// too far behind and must re-list.
    pub async fn next(&mut self) -> Option<Result<Event>> {
        self.rx.recv().await
    }
}

impl WatchCache {
    /// Starts the cache at the backend's current revision.
    pub async fn start(backend: Arc<dyn Backend>) -> Result<Arc<Self>> {
        let revision = backend.current_revision().await?;
        let (live, _) = broadcast::channel(BUFFER * 4);
        let cache = Arc::new(Self {
            backend: backend.clone(),
            ring: Mutex::new(Ring {
                events: VecDeque::new(),
                oldest: revision,
                revision,
            }),
            live,
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
            // Resume after the last revision seen; if that is gone, start over at the newest.
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let from = self.revision();
                match self.backend.watch(from).await {
                    Ok(new) => {
                        rx = new;
                        break;
                    }
                    Err(Error::Expired { .. }) => {
                        if let Ok(now) = self.backend.current_revision().await {
                            let mut ring = self.ring();
                            ring.events.clear();
                            ring.oldest = now;
                            ring.revision = now;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "store watch restart failed"),
                }
            }
        }
    }

    fn push(&self, ev: Event) {
        let ev = Arc::new(ev);
        let mut ring = self.ring();
        if ev.kv.mod_revision <= ring.revision {
            return;
        }
        ring.revision = ev.kv.mod_revision;
        ring.events.push_back(ev.clone());
        if ring.events.len() > BUFFER {
            if let Some(old) = ring.events.pop_front() {
                ring.oldest = old.kv.mod_revision;
            }
        }
        // Sent under the lock so that a new watcher's replay and live stream do not overlap.
        let _ = self.live.send(ev);
    }

    /// Watches keys under `prefix` for events with a revision greater than `after`.
    pub async fn watch(&self, prefix: &str, after: i64) -> Result<WatchStream> {
        let (tx, rx) = mpsc::channel(256);
        let prefix = prefix.to_string();
        let too_old = after < self.ring().oldest;
        if too_old {
            return self.watch_backend(prefix, after).await;
        }
        let (replay, mut live, last) = {
            let ring = self.ring();
            let replay: Vec<Arc<Event>> = ring
                .events
                .iter()
                .filter(|e| e.kv.mod_revision > after && e.kv.key.starts_with(&prefix))
                .cloned()
                .collect();
            (replay, self.live.subscribe(), ring.revision.max(after))
        };
        tokio::spawn(async move {
            for ev in replay {
                if tx.send(Ok((*ev).clone())).await.is_err() {
                    return;
                }
            }
            loop {
                match live.recv().await {
                    Ok(ev) => {
                        if ev.kv.mod_revision > last
                            && ev.kv.key.starts_with(&prefix)
                            && tx.send(Ok((*ev).clone())).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx
                            .send(Err(Error::Expired {
                                requested: after,
                                oldest: after + 1,
                            }))
                            .await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(WatchStream { rx })
    }

    /// A watcher older than the buffer: the backend replays its history for this watcher.
    async fn watch_backend(&self, prefix: String, after: i64) -> Result<WatchStream> {
        let mut src = self.backend.watch(after).await?;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            while let Some(item) = src.recv().await {
                let keep = match &item {
                    Ok(ev) => ev.kv.key.starts_with(&prefix),
                    Err(_) => true,
                };
                if keep && tx.send(item).await.is_err() {
                    return;
                }
            }
        });
        Ok(WatchStream { rx })
    }
}
