//! CrashLoopBackOff delays, as the kubelet computes them: the first restart of a container is
//! immediate, later ones wait `base`, `2·base`, `4·base`, … up to `max`; a container that ran
//! for longer than `2·max` before it exited starts over with no delay.

use std::collections::HashMap;
use std::time::Duration;

/// Per-container back-off state.
#[derive(Debug)]
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    /// The delay the next restart of each container waits.
    next: HashMap<String, Duration>,
}

impl Backoff {
    pub(crate) fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max: max.max(base),
            next: HashMap::new(),
        }
    }

    /// The delay before restarting container `key`, which just exited after running for
    /// `ran`; advances its state.
    pub(crate) fn delay(&mut self, key: &str, ran: Duration) -> Duration {
        if ran > self.max * 2 {
            self.next.remove(key);
        }
        let delay = self.next.get(key).copied().unwrap_or(Duration::ZERO);
        let following = if delay.is_zero() {
            self.base
        } else {
            (delay * 2).min(self.max)
        };
        self.next.insert(key.to_string(), following);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_base_to_max_after_an_immediate_first_restart() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(300));
        let delays: Vec<u64> = (0..8)
            .map(|_| b.delay("c", Duration::from_secs(1)).as_secs())
            .collect();
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300]);
        // Containers back off independently.
        assert_eq!(b.delay("other", Duration::ZERO), Duration::ZERO);
        assert_eq!(b.delay("other", Duration::ZERO), Duration::from_secs(10));
    }

    #[test]
    fn a_long_run_resets_the_delay() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(300));
        b.delay("c", Duration::ZERO);
        assert_eq!(b.delay("c", Duration::ZERO), Duration::from_secs(10));
        assert_eq!(b.delay("c", Duration::from_secs(601)), Duration::ZERO);
        assert_eq!(b.delay("c", Duration::ZERO), Duration::from_secs(10));
    }
}
