//! The one ordered set of deadlines (mini-redis `db.rs`, quinn-proto `timer.rs`): a
//! `BTreeSet<(Instant, K)>`. Scheduling is O(log n); the loop's poll timeout is
//! [`Timers::next_deadline`]; nothing scans all connections on a tick.
//!
//! Entries are not cancelled eagerly: a keep-alive deadline that activity has pushed
//! back is checked when it fires and rescheduled, so a busy connection costs no timer
//! work per packet.

use std::collections::BTreeSet;
use std::time::Instant;

#[derive(Debug)]
pub struct Timers<K> {
    set: BTreeSet<(Instant, K)>,
}

impl<K: Ord + Copy> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            set: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Copy> Timers<K> {
    pub fn schedule(&mut self, at: Instant, key: K) {
        self.set.insert((at, key));
    }

    pub fn cancel(&mut self, at: Instant, key: K) {
        self.set.remove(&(at, key));
    }

    /// Removes and returns the earliest entry due at or before `now`.
    pub fn pop_expired(&mut self, now: Instant) -> Option<(Instant, K)> {
        let first = *self.set.first()?;
        if first.0 <= now {
            self.set.pop_first()
        } else {
            None
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.set.first().map(|(at, _)| *at)
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn entries_expire_in_deadline_order() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.schedule(t0 + Duration::from_secs(3), 'c');
        timers.schedule(t0 + Duration::from_secs(1), 'a');
        timers.schedule(t0 + Duration::from_secs(2), 'b');
        assert_eq!(timers.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(timers.pop_expired(t0), None);
        let now = t0 + Duration::from_secs(2);
        assert_eq!(timers.pop_expired(now).map(|e| e.1), Some('a'));
        assert_eq!(timers.pop_expired(now).map(|e| e.1), Some('b'));
        assert_eq!(timers.pop_expired(now), None);
        timers.cancel(t0 + Duration::from_secs(3), 'c');
        assert!(timers.is_empty());
    }
}
