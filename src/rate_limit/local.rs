//! The in-process backend: one theoretical arrival time per subject in a map, bounded so a flood
//! of made-up subjects cannot grow it without end.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use super::{Mode, Quota};

/// Subjects kept before the ones whose bucket is full again are dropped.
const MAX_TRACKED: usize = 100_000;

/// Per-subject GCRA state of one limit.
#[derive(Debug)]
pub(super) struct LocalCells {
    interval: Duration,
    tolerance: Duration,
    cells: Mutex<HashMap<String, Instant>>,
}

impl LocalCells {
    pub(super) fn new(quota: Quota) -> Self {
        Self {
            interval: quota.interval(),
            tolerance: quota.tolerance(),
            cells: Mutex::new(HashMap::new()),
        }
    }

    /// Applies `mode` to `subject`'s bucket; `Some(wait)` when a request is (would be) refused.
    pub(super) fn run(&self, subject: &str, mode: Mode) -> Option<Duration> {
        let now = Instant::now();
        // A poisoned lock only means another request panicked mid-update: the map is still sound.
        let mut cells = self
            .cells
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tat = cells.get(subject).copied().unwrap_or(now).max(now);
        let ahead = tat - now;
        let wait = ahead.checked_sub(self.tolerance).filter(|w| !w.is_zero());
        let next = match mode {
            Mode::Peek => return wait,
            Mode::Take if wait.is_some() => return wait,
            Mode::Take => tat + self.interval,
            // Never more than a whole burst (plus the one counted now) ahead: an empty bucket.
            Mode::Drain => (tat + self.interval).min(now + self.tolerance + self.interval),
        };
        if cells.len() >= MAX_TRACKED && !cells.contains_key(subject) {
            cells.retain(|_, tat| *tat > now);
            if cells.len() >= MAX_TRACKED {
                // Every tracked subject is draining: admit rather than grow (as before).
                return None;
            }
        }
        cells.insert(subject.to_owned(), next);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_refuses_past_the_burst_and_says_the_refill_time() {
        let cells = LocalCells::new(Quota::new(60, 2));
        assert_eq!(cells.run("a", Mode::Take), None);
        assert_eq!(cells.run("a", Mode::Take), None);
        let wait = cells.run("a", Mode::Take).unwrap();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::from_millis(900));
        assert_eq!(cells.run("b", Mode::Take), None);
    }

    #[test]
    fn drain_counts_past_empty_without_going_below_it() {
        let cells = LocalCells::new(Quota::new(60, 2));
        for _ in 0..10 {
            assert_eq!(cells.run("a", Mode::Drain), None);
        }
        let wait = cells.run("a", Mode::Peek).unwrap();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
    }
}
