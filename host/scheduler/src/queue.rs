//! The scheduling queue (Kubernetes' `PriorityQueue`): an active heap ordered by priority then
//! arrival, a back-off heap for pods that failed recently (1 s doubling to 10 s), and the
//! unschedulable pods, which a cluster event (node added or changed, pod deleted) moves back —
//! to back-off if still backing off — and which are retried after 5 minutes regardless.
//! A pod that fails in a cycle during which such an event happened goes to back-off, not to
//! the unschedulable set, so the event is not missed.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::node_info::PodInfo;

/// How long an unschedulable pod waits without any event before it is retried.
const MAX_IN_UNSCHEDULABLE: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Active,
    Backoff(Instant),
    Unschedulable(Instant),
    InFlight,
}

struct Queued {
    info: Arc<PodInfo>,
    attempts: u32,
    place: Place,
    seq: u64,
}

#[derive(PartialEq, Eq)]
struct ActiveEntry {
    priority: i32,
    seq: u64,
    key: String,
}

impl Ord for ActiveEntry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then(other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for ActiveEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Default)]
struct Inner {
    pods: HashMap<String, Queued>,
    active: BinaryHeap<ActiveEntry>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    seq: u64,
    cycle: u64,
    move_request_cycle: u64,
}

/// A pod handed to a scheduling cycle.
pub(crate) struct Popped {
    /// The pod.
    pub(crate) info: Arc<PodInfo>,
    /// The cycle number (for `requeue`).
    pub(crate) cycle: u64,
}

/// The queue, shared by the watch handlers and the scheduling loop.
pub(crate) struct Queue {
    inner: Mutex<Inner>,
    notify: Notify,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl Inner {
    fn push_active(&mut self, key: &str) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(q) = self.pods.get_mut(key) {
            q.place = Place::Active;
            q.seq = seq;
            self.active.push(ActiveEntry {
                priority: q.info.priority,
                seq,
                key: key.to_string(),
            });
        }
    }

    fn push_backoff(&mut self, key: &str, until: Instant) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(q) = self.pods.get_mut(key) {
            q.place = Place::Backoff(until);
            q.seq = seq;
            self.backoff.push(Reverse((until, seq, key.to_string())));
        }
    }
}

impl Queue {
    /// An empty queue with the given back-off bounds.
    pub(crate) fn new(initial_backoff: Duration, max_backoff: Duration) -> Self {
        Queue {
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            initial_backoff,
            max_backoff,
        }
    }

    fn backoff_for(&self, attempts: u32) -> Duration {
        let shift = attempts.saturating_sub(1).min(16);
        (self.initial_backoff * (1u32 << shift)).min(self.max_backoff)
    }

    /// Adds a pending pod, or updates it. An update that changes the pod (not just its status)
    /// makes an unschedulable pod eligible again.
    pub(crate) fn add(&self, info: Arc<PodInfo>) {
        let mut inner = self.inner.lock().unwrap();
        let key = info.key.clone();
        match inner.pods.get_mut(&key) {
            None => {
                inner.pods.insert(
                    key.clone(),
                    Queued {
                        info,
                        attempts: 0,
                        place: Place::Active,
                        seq: 0,
                    },
                );
                inner.push_active(&key);
                drop(inner);
                self.notify.notify_one();
            }
            Some(q) => {
                let changed = q.info.pod.spec != info.pod.spec
                    || q.info.pod.metadata.labels != info.pod.metadata.labels
                    || q.info.pod.metadata.annotations != info.pod.metadata.annotations;
                q.info = info;
                if changed && matches!(q.place, Place::Unschedulable(_)) {
                    inner.push_active(&key);
                    drop(inner);
                    self.notify.notify_one();
                }
            }
        }
    }

    /// Forgets a pod (bound elsewhere, deleted).
    pub(crate) fn delete(&self, key: &str) {
        self.inner.lock().unwrap().pods.remove(key);
    }

    /// Waits for the highest-priority active pod.
    pub(crate) async fn pop(&self) -> Popped {
        loop {
            let notified = self.notify.notified();
            if let Some(p) = self.try_pop() {
                return p;
            }
            notified.await;
        }
    }

    fn try_pop(&self) -> Option<Popped> {
        let mut inner = self.inner.lock().unwrap();
        while let Some(e) = inner.active.pop() {
            let Some(q) = inner.pods.get_mut(&e.key) else {
                continue;
            };
            if q.place != Place::Active || q.seq != e.seq {
                continue;
            }
            q.place = Place::InFlight;
            q.attempts += 1;
            let info = q.info.clone();
            inner.cycle += 1;
            return Some(Popped {
                info,
                cycle: inner.cycle,
            });
        }
        None
    }

    /// The pod was bound: it leaves the queue.
    pub(crate) fn done(&self, key: &str) {
        let mut inner = self.inner.lock().unwrap();
        if inner
            .pods
            .get(key)
            .is_some_and(|q| q.place == Place::InFlight)
        {
            inner.pods.remove(key);
        }
    }

    /// The pod fit nowhere in cycle `cycle`: park it until a cluster event, or back it off if
    /// an event already happened during that cycle.
    pub(crate) fn unschedulable(&self, key: &str, cycle: u64) {
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap();
        let moved = inner.move_request_cycle >= cycle;
        let Some(q) = inner.pods.get_mut(key) else {
            return;
        };
        if q.place != Place::InFlight {
            return;
        }
        if moved {
            let until = now + self.backoff_for(q.attempts);
            inner.push_backoff(key, until);
        } else {
            q.place = Place::Unschedulable(now);
        }
    }

    /// The attempt failed for another reason (binding error): retry after the back-off.
    pub(crate) fn backoff(&self, key: &str) {
        let mut inner = self.inner.lock().unwrap();
        let Some(q) = inner.pods.get(key) else {
            return;
        };
        let until = Instant::now() + self.backoff_for(q.attempts);
        inner.push_backoff(key, until);
    }

    /// A cluster event that may make unschedulable pods fit: move them all back.
    pub(crate) fn move_all(&self) {
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap();
        inner.move_request_cycle = inner.cycle;
        let parked: Vec<(String, Instant)> = inner
            .pods
            .iter()
            .filter_map(|(k, q)| match q.place {
                Place::Unschedulable(at) => Some((k.clone(), at + self.backoff_for(q.attempts))),
                _ => None,
            })
            .collect();
        let any = !parked.is_empty();
        for (key, until) in parked {
            if until > now {
                inner.push_backoff(&key, until);
            } else {
                inner.push_active(&key);
            }
        }
        drop(inner);
        if any {
            self.notify.notify_one();
        }
    }

    /// Moves pods whose back-off expired to active, and pods unschedulable for 5 minutes back.
    pub(crate) fn flush(&self) {
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap();
        let mut moved = false;
        while let Some(Reverse((until, seq, key))) = inner.backoff.peek().cloned() {
            if until > now {
                break;
            }
            inner.backoff.pop();
            if inner
                .pods
                .get(&key)
                .is_some_and(|q| q.seq == seq && q.place == Place::Backoff(until))
            {
                inner.push_active(&key);
                moved = true;
            }
        }
        let stale: Vec<String> = inner
            .pods
            .iter()
            .filter(|(_, q)| matches!(q.place, Place::Unschedulable(at) if now - at >= MAX_IN_UNSCHEDULABLE))
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            inner.push_active(&key);
            moved = true;
        }
        drop(inner);
        if moved {
            self.notify.notify_one();
        }
    }

    /// (active, backoff, unschedulable, in flight) counts.
    #[cfg(test)]
    pub(crate) fn lengths(&self) -> (usize, usize, usize, usize) {
        let inner = self.inner.lock().unwrap();
        let mut n = (0, 0, 0, 0);
        for q in inner.pods.values() {
            match q.place {
                Place::Active => n.0 += 1,
                Place::Backoff(_) => n.1 += 1,
                Place::Unschedulable(_) => n.2 += 1,
                Place::InFlight => n.3 += 1,
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::pod;

    fn queue() -> Queue {
        Queue::new(Duration::from_millis(1), Duration::from_millis(10))
    }

    #[tokio::test]
    async fn higher_priority_first_then_arrival_order() {
        let q = queue();
        q.add(pod("low").priority(1).info());
        q.add(pod("high").priority(10).info());
        q.add(pod("low2").priority(1).info());
        let order: Vec<String> = [q.pop().await, q.pop().await, q.pop().await]
            .iter()
            .map(|p| p.info.key.clone())
            .collect();
        assert_eq!(order, ["default/high", "default/low", "default/low2"]);
    }

    #[tokio::test]
    async fn unschedulable_pods_wait_for_an_event() {
        let q = queue();
        q.add(pod("p").info());
        let p = q.pop().await;
        q.unschedulable(&p.info.key, p.cycle);
        assert_eq!(q.lengths(), (0, 0, 1, 0));
        std::thread::sleep(Duration::from_millis(5));
        q.flush();
        assert_eq!(q.lengths(), (0, 0, 1, 0), "no event, no retry");
        q.move_all();
        q.flush();
        assert_eq!(q.lengths(), (1, 0, 0, 0));
    }

    #[tokio::test]
    async fn an_event_during_the_cycle_means_backoff_not_parking() {
        let q = queue();
        q.add(pod("p").info());
        let p = q.pop().await;
        q.move_all();
        q.unschedulable(&p.info.key, p.cycle);
        assert_eq!(q.lengths(), (0, 1, 0, 0));
        std::thread::sleep(Duration::from_millis(5));
        q.flush();
        assert_eq!(q.lengths(), (1, 0, 0, 0));
    }

    #[tokio::test]
    async fn status_only_updates_do_not_wake_parked_pods() {
        let q = queue();
        q.add(pod("p").info());
        let p = q.pop().await;
        q.unschedulable(&p.info.key, p.cycle);
        q.add(pod("p").info());
        assert_eq!(q.lengths(), (0, 0, 1, 0));
        q.add(pod("p").label("x", "y").info());
        assert_eq!(q.lengths(), (1, 0, 0, 0));
    }
}
