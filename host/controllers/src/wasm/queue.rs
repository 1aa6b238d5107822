//! The work queue of one Wasm controller: keys due now or after a delay, each key at most
//! once (an earlier time wins), and per-key exponential back-off for failures (client-go's
//! `ItemExponentialFailureRateLimiter`: 5 ms doubling up to 5 minutes, reset on success).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use keelson_plugin_host::controller::ObjectRef;
use tokio::sync::Notify;
use tokio::time::Instant;

/// First back-off after a failure.
pub(super) const BASE_DELAY: Duration = Duration::from_millis(5);
/// Longest back-off.
pub(super) const MAX_DELAY: Duration = Duration::from_secs(300);

/// A delaying, de-duplicating queue of object keys.
#[derive(Default)]
pub(super) struct Queue {
    inner: Mutex<Inner>,
    notify: Notify,
}

#[derive(Default)]
struct Inner {
    due: BTreeSet<(Instant, ObjectRef)>,
    at: HashMap<ObjectRef, Instant>,
    failures: HashMap<ObjectRef, u32>,
}

impl Queue {
    /// Queues `key` to be handed out after `after` (or sooner, if it already is).
    pub(super) fn add_after(&self, key: ObjectRef, after: Duration) {
        let when = Instant::now() + after;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = inner.at.get(&key).copied() {
            if old <= when {
                return;
            }
            inner.due.remove(&(old, key.clone()));
        }
        inner.at.insert(key.clone(), when);
        inner.due.insert((when, key));
        drop(inner);
        self.notify.notify_one();
    }

    /// Queues `key` now.
    pub(super) fn add(&self, key: ObjectRef) {
        self.add_after(key, Duration::ZERO);
    }

    /// Counts a failure of `key` and queues it after its back-off; returns the back-off.
    pub(super) fn retry(&self, key: ObjectRef) -> Duration {
        let delay = {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let n = inner.failures.entry(key.clone()).or_default();
            let delay = BASE_DELAY
                .saturating_mul(1u32 << (*n).min(20))
                .min(MAX_DELAY);
            *n = n.saturating_add(1);
            delay
        };
        self.add_after(key, delay);
        delay
    }

    /// Forgets the failures of `key` (it succeeded).
    pub(super) fn forget(&self, key: &ObjectRef) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.failures.remove(key);
    }

    /// The next due key, waiting for one.
    pub(super) async fn next(&self) -> ObjectRef {
        loop {
            let notified = self.notify.notified();
            let wait = {
                let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
                match inner.due.first().cloned() {
                    Some((when, key)) if when <= Instant::now() => {
                        inner.due.remove(&(when, key.clone()));
                        inner.at.remove(&key);
                        return key;
                    }
                    Some((when, _)) => Some(when),
                    None => None,
                }
            };
            match wait {
                Some(when) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(when) => {}
                        () = notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Keys queued.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .at
            .len()
    }

    /// No key queued.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ObjectRef {
        ObjectRef {
            name: name.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn dedups_delays_and_backs_off() {
        let q = Queue::default();
        q.add_after(key("b"), Duration::from_secs(10));
        q.add(key("a"));
        q.add(key("a"));
        q.add_after(key("b"), Duration::from_millis(50));
        assert_eq!(q.len(), 2);
        assert_eq!(q.next().await, key("a"));
        let start = Instant::now();
        assert_eq!(q.next().await, key("b"));
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(40) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
        assert!(q.is_empty());
        assert_eq!(q.retry(key("c")), BASE_DELAY);
        assert_eq!(q.retry(key("c")), BASE_DELAY * 2);
        assert_eq!(q.retry(key("c")), BASE_DELAY * 4);
        q.forget(&key("c"));
        assert_eq!(q.retry(key("c")), BASE_DELAY);
        for _ in 0..40 {
            q.retry(key("d"));
        }
        assert_eq!(q.retry(key("d")), MAX_DELAY);
    }
}
