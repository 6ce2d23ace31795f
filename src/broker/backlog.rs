//! A bridge outbox's backlog (culex options `bridge_outbox_max_age`, `bridge_latest_only`,
//! `bridge_replay_rate`): the queue of the bridge's local session, shaped while the
//! remote is unreachable and drained at a set pace after it returns.
//!
//! - **Age.** Each queued message carries when it was queued (`Queued::since`, whole
//!   seconds; journaled as wall-clock time, so it survives a restart). One that waited
//!   longer than `max_age` is dropped when it would be sent, and a `Timer::Outbox` drops
//!   those at the front of the queue while the session is offline. The queue is in the
//!   order messages were queued, so the aged ones are always a prefix.
//! - **Latest value per topic.** While the session is offline, a message on a topic a
//!   `latest_only` filter matches replaces the one queued on that topic: the old one
//!   leaves the queue (a `Take` record with no packet id, so a restart keeps the same
//!   set), the new one goes to the end. At most one message per such topic waits, so the
//!   search from the end stops at the first hit.
//! - **Paced replay.** When the session comes online, what is queued is its backlog
//!   (`Outbox::backlog`, the front of the queue). Messages queued after that go first,
//!   taken from behind the backlog (a `Take` record with the packet id), and are sent
//!   at once when the window allows even while the backlog waits; the backlog goes out
//!   at most `replay_rate` per second, the next one due at `Outbox::next_replay`, woken
//!   by the same `Timer::Outbox`.
//!
//! Every drop is counted by cause ([`DropCause`]: `age`, `replaced`, beside `full`; in
//! `$SYS/broker/connection/<bridge>/dropped/<cause>` and /metrics) and in
//! `$SYS/broker/publish/messages/dropped`, and logged at debug level as the queue's
//! other drops are.

use super::bridge::{DropCause, Outbox};
use super::state::{Queued, SessionId, Timer};
use super::Broker;
use crate::persist::record::Record;
use log::debug;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// The whole seconds from `base` to `at`, negative when `at` is before it: a floor
/// after `base`, toward zero before it. A message's age (now's seconds minus its own)
/// is then never more than it waited in whole seconds, so it is dropped only once it is
/// older than the limit (within the following second), and a restart never ages it.
pub(super) fn secs_between(base: Instant, at: Instant) -> i32 {
    match at.checked_duration_since(base) {
        Some(d) => i32::try_from(d.as_secs()).unwrap_or(i32::MAX),
        None => -i32::try_from(base.duration_since(at).as_secs()).unwrap_or(i32::MAX),
    }
}

impl Broker {
    /// The instant of a `Queued::since`.
    pub(super) fn queued_instant(&self, secs: i32) -> Instant {
        let d = Duration::from_secs(u64::from(secs.unsigned_abs()));
        if secs >= 0 {
            self.started + d
        } else {
            self.started.checked_sub(d).unwrap_or(self.started)
        }
    }

    /// The outbox of `sid`, if it is one. Most brokers have none: then no lookup per
    /// message.
    fn outbox(&self, sid: SessionId) -> Option<&Outbox> {
        if self.outboxes.is_empty() {
            return None;
        }
        let session = self.sessions.get(sid.0)?;
        self.outboxes.get(&session.client_id)
    }

    fn outbox_mut(&mut self, sid: SessionId) -> Option<&mut Outbox> {
        if self.outboxes.is_empty() {
            return None;
        }
        let session = self.sessions.get(sid.0)?;
        self.outboxes.get_mut(&session.client_id)
    }

    /// Whether queued messages of `sid` carry their time into the journal: sessions with
    /// their own queue limits (bridge outboxes).
    pub(super) fn is_timed_queue(&self, sid: SessionId) -> bool {
        self.outbox(sid).is_some_and(|o| o.limits.is_some())
    }

    /// Queued messages not counting the paced backlog: what a new message would wait
    /// behind.
    pub(super) fn live_queue_len(&self, sid: SessionId) -> usize {
        let len = self.session(sid).queue.len();
        len - self.outbox(sid).map_or(0, |o| o.backlog.min(len))
    }

    /// The session came online: what waits in its queue is the backlog, paced with a
    /// replay rate.
    pub(super) fn outbox_online(&mut self, sid: SessionId) {
        let session = self.session(sid);
        let held = session
            .conn
            .and_then(|c| self.conns.get(c.0))
            .is_some_and(|c| c.holds_queue);
        if held {
            return;
        }
        let len = session.queue.len();
        if let Some(o) = self.outbox_mut(sid) {
            let paced = o.limits.as_ref().is_some_and(|l| l.replay_rate != 0);
            o.backlog = if paced { len } else { 0 };
            o.next_replay = None;
            if paced && len > 0 {
                debug!(
                    "Outbox of {}: {len} messages waiting are replayed at the replay rate.",
                    self.session(sid).client_id
                );
            }
        }
    }

    /// The index in `sid`'s queue of the message to send next: the first one queued
    /// since the session came online, else the backlog's head if the replay rate allows
    /// it now. `None`: nothing may go now (the outbox timer is set for when it may).
    pub(super) fn next_queued(&mut self, sid: SessionId) -> Option<usize> {
        let len = self.session(sid).queue.len();
        if len == 0 {
            return None;
        }
        let Some(o) = self.outbox(sid) else {
            return Some(0);
        };
        if o.backlog == 0 {
            return Some(0);
        }
        if len > o.backlog {
            return Some(o.backlog);
        }
        match o.next_replay {
            Some(due) if due > self.last_event => {
                self.arm_outbox(sid, due);
                None
            }
            _ => Some(0),
        }
    }

    /// The queued message at `index` left the queue; `sent` if it went out (with a
    /// replay rate, the next backlog message is due one interval later).
    pub(super) fn took_queued(&mut self, sid: SessionId, index: usize, sent: bool, now: Instant) {
        if let Some(o) = self.outbox_mut(sid) {
            if index < o.backlog {
                o.backlog -= 1;
                let rate = o.limits.as_ref().map_or(0, |l| l.replay_rate);
                if sent && rate != 0 {
                    o.next_replay = Some(now + Duration::from_secs(1) / rate);
                }
                if o.backlog == 0 {
                    debug!("Outbox: the backlog is replayed.");
                }
            }
        }
    }

    /// Whether `q` waited longer than its outbox's `max_age` at `now`.
    pub(super) fn is_aged(&self, sid: SessionId, q: &Queued, now: Instant) -> bool {
        let Some(max_age) = self
            .outbox(sid)
            .and_then(|o| o.limits.as_ref())
            .and_then(|l| l.max_age)
        else {
            return false;
        };
        i64::from(self.secs(now)) - i64::from(q.since) > max_age.as_secs() as i64
    }

    /// Counts a message dropped for its age (it has left the queue).
    pub(super) fn count_aged(&mut self, sid: SessionId, q: &Queued) {
        self.stats.publish_dropped += 1;
        let Some(session) = self.sessions.get(sid.0) else {
            return;
        };
        debug!(
            "Outgoing message on {} dropped for client {}: older than the outbox's maximum age.",
            q.message.topic(),
            session.client_id
        );
        if let Some(d) = self.outbox_drops.get_mut(&session.client_id) {
            d.count(DropCause::Age);
        }
    }

    /// Records that the queued message at `index` left the queue unsent.
    pub(super) fn journal_unqueue(&mut self, sid: SessionId, index: usize) {
        self.journal_session(sid, |j, sid| {
            j.record(match index {
                0 => Record::Dequeue { sid },
                _ => Record::Take {
                    sid,
                    index: index as u32,
                    packet_id: 0,
                },
            })
        });
    }

    /// Drops the aged messages at the front of `sid`'s queue.
    fn sweep_aged(&mut self, sid: SessionId, now: Instant) {
        while self
            .session(sid)
            .queue
            .front()
            .is_some_and(|front| self.is_aged(sid, front, now))
        {
            let session = self.session_mut(sid);
            let Some(q) = session.queue.pop_front() else {
                break;
            };
            session.queued_bytes -= q.message.queued_size();
            self.stats.release(&q.message);
            self.journal_unqueue(sid, 0);
            self.took_queued(sid, 0, false, now);
            self.count_aged(sid, &q);
        }
    }

    /// While `sid` is offline, a message on `topic` is about to be queued: if a
    /// `latest_only` filter matches it, the message queued on that topic leaves.
    pub(super) fn replace_latest(&mut self, sid: SessionId, topic: &str) {
        let session = self.session(sid);
        if session.conn.is_some() {
            return;
        }
        let Some(limits) = self
            .outboxes
            .get(&session.client_id)
            .and_then(|o| o.limits.as_ref())
        else {
            return;
        };
        if !limits
            .latest_only
            .iter()
            .any(|f| crate::topic::matches(f, topic))
        {
            return;
        }
        let Some(index) = session
            .queue
            .iter()
            .rposition(|q| q.message.topic() == topic)
        else {
            return;
        };
        self.remove_replaced(sid, index);
    }

    fn remove_replaced(&mut self, sid: SessionId, index: usize) {
        let session = self.session_mut(sid);
        let Some(old) = session.queue.remove(index) else {
            return;
        };
        session.queued_bytes -= old.message.queued_size();
        let client_id = session.client_id.clone();
        self.stats.release(&old.message);
        self.stats.publish_dropped += 1;
        self.journal_unqueue(sid, index);
        self.took_queued(sid, index, false, self.last_event);
        debug!(
            "Outgoing message on {} replaced for client {client_id} by a newer one (latest only).",
            old.message.topic()
        );
        if let Some(d) = self.outbox_drops.get_mut(&client_id) {
            d.count(DropCause::Replaced);
        }
    }

    /// New `latest_only` filters (a reload) apply to what waits: of the messages queued
    /// on a matching topic, the newest stays. Only while the session is offline.
    pub(super) fn compact_latest(&mut self, sid: SessionId) {
        let session = self.session(sid);
        let Some(limits) = self
            .outboxes
            .get(&session.client_id)
            .and_then(|o| o.limits.as_ref())
        else {
            return;
        };
        if session.conn.is_some() || limits.latest_only.is_empty() {
            return;
        }
        let mut seen = HashSet::new();
        let mut older = Vec::new();
        for (i, q) in session.queue.iter().enumerate().rev() {
            let topic = q.message.topic();
            if limits
                .latest_only
                .iter()
                .any(|f| crate::topic::matches(f, topic))
                && !seen.insert(topic)
            {
                older.push(i);
            }
        }
        // From the highest index down: the lower ones stay where they are.
        for i in older {
            self.remove_replaced(sid, i);
        }
    }

    /// Sets the outbox timer of `sid` for `due` unless it is set for earlier.
    fn arm_outbox(&mut self, sid: SessionId, due: Instant) {
        let now = self.last_event;
        let Some(o) = self.outbox_mut(sid) else {
            return;
        };
        let old = o.timer;
        match old {
            // A timer in the past was lost with its session slot: it no longer counts.
            Some(at) if at <= due && at >= now => return,
            _ => o.timer = Some(due),
        }
        if let Some(at) = old {
            self.timers.cancel(at, Timer::Outbox(sid));
        }
        self.timers.schedule(due, Timer::Outbox(sid));
    }

    /// Sets the outbox timer for when the head of `sid`'s queue ages out (now, if it
    /// has).
    pub(super) fn schedule_outbox(&mut self, sid: SessionId, now: Instant) {
        let Some(max_age) = self
            .outbox(sid)
            .and_then(|o| o.limits.as_ref())
            .and_then(|l| l.max_age)
        else {
            return;
        };
        let Some(front) = self.session(sid).queue.front() else {
            return;
        };
        let secs = i64::from(front.since) + max_age.as_secs() as i64 + 1;
        let due = self
            .queued_instant(i32::try_from(secs).unwrap_or(i32::MAX))
            .max(now);
        self.arm_outbox(sid, due);
    }

    /// `Timer::Outbox`: aged messages leave, a paced backlog goes on, and the timer is
    /// set again.
    pub(super) fn check_outbox(&mut self, sid: SessionId, at: Instant, now: Instant) {
        let Some(o) = self.outbox_mut(sid) else {
            return;
        };
        if o.timer == Some(at) {
            o.timer = None;
        }
        self.sweep_aged(sid, now);
        // Online: a paced backlog goes on, and the publishers held on the queue may.
        self.drain_queue(sid, now);
        self.schedule_outbox(sid, now);
    }
}
