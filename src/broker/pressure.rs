//! Backpressure: a subscriber that is behind holds back the publishers feeding it, so an
//! open-loop burst is delivered instead of dropped; a subscriber that is stalled holds
//! nobody back. Issue #20.
//!
//! # Design
//! culex reads far faster than a subscriber's socket usually drains. Without flow
//! control, a burst fills the subscriber's outbox (`outbox_limit`, 1 MiB) or its QoS 1/2
//! queue (`max_queued_messages`) within one turn of the loop and the rest is dropped,
//! QoS 1 included, after its PUBACK went out. Mosquitto loses nothing there only because
//! it is slow enough for TCP to push back. culex pushes back on purpose, the way
//! RabbitMQ's credit flow does: it stops reading a publisher's socket while a
//! subscriber its messages go to is behind, so the publisher's own TCP buffers do the
//! waiting, at no memory cost to the broker.
//!
//! - **Behind**: a subscriber S is behind when its outbox holds more than the high mark
//!   (`outbox_limit / 4`, 256 KiB by default), or its QoS 1/2 queue more than the message
//!   mark (half of `max_queued_messages`, at most [`QUEUE_HIGH_MAX`]) or more payload
//!   bytes than the byte mark (the high mark, or half of `max_queued_bytes` if smaller).
//!   Its marks are measured in what it has not taken yet, so a fast reader never is.
//! - **Held**: when a delivery from publisher P finds S behind, P is held on S (`hold`).
//!   `net` asks [`Broker::is_held`] after every packet it hands over and stops handing
//!   over P's packets (the rest of that read stays in P's own partial buffer) and stops
//!   reading P's socket. So S's outbox passes its high mark by at most one message per
//!   publisher feeding it, whatever the loop's read budget: the per-turn budget of
//!   `READS_PER_TURN` reads of 64 KiB bounds fairness between clients, the hold bounds
//!   the slack. The QoS 0 `outbox_limit` and the hard limit (16 times it) stay as the
//!   loss of last resort, reached only when very many publishers feed one subscriber.
//! - **Released**: when S drains under the low marks (`outbox_limit / 16`, a quarter of
//!   the queue marks), seen where it drains (`consume_output`, `drain_queue`), every
//!   publisher held on S is released; one held on several subscribers is released when
//!   the last one drains. `net` learns of it through [`Broker::poll_resumed`] and reads it
//!   again at once (mio is edge-triggered: the socket may hold data no new event will
//!   announce). The low mark is a quarter of the high mark so that a publisher is
//!   released in bursts, not once per packet written.
//! - **Stalled**: a subscriber that takes no bytes and acknowledges nothing for
//!   `subscriber_stall_timeout` (2 s by default) while it is behind, or that reaches its
//!   limits (a QoS 0 message dropped at `outbox_limit`, a QoS 1/2 message dropped at
//!   `max_queued_messages`/`bytes`), is stalled: its publishers are released at once, it
//!   holds nobody back any more, and what it cannot take is dropped and counted as
//!   before (`$SYS/broker/publish/messages/dropped`), with one log line per episode,
//!   Mosquitto's "Outgoing messages are being dropped for client X.". It is normal again
//!   once it drains under the low marks. One stalled client therefore costs its
//!   publishers one pause of at most the timeout, never more, and the others nothing.
//!   2 s is longer than a few TCP retransmissions on a lossy link (Linux starts at 200 ms
//!   and doubles), so a subscriber on a poor link is not taken for a stalled one, and
//!   short enough that a client that went away does not stop its publishers for long.
//!   0 turns holding off altogether (every subscriber counts as stalled: the behaviour
//!   before #20).
//!
//! Rules that keep it from deadlocking: a client is never held on itself (it publishes to
//! a topic it subscribes to); bridges' local connections are not held (their socket is
//! the bridge's, read by its own code); a held connection's keep alive does not run out
//! while culex does not read it (`check_conn_deadline`), and it counts as seen when
//! released. Two clients that each publish to the other and write before they read can
//! hold each other; the stall timeout ends that, as it ends any wait.
//!
//! Every protocol version is held alike; MQTT 5's Receive Maximum still bounds the QoS
//! 1/2 messages in flight to a client, and the queue behind that window is what the
//! message marks measure.
//!
//! `$SYS/broker/clients/held` and `$SYS/broker/clients/stalled` are the publishers held
//! and the subscribers stalled at the time; `$SYS/broker/clients/holds` and
//! `$SYS/broker/clients/stalls` count how often either began.

use super::state::{ConnId, ConnState, SessionId, Timer};
use super::{Broker, BRIDGE_LISTENER};
use log::{debug, info};
use std::collections::HashMap;
use std::time::Instant;

/// The QoS 1/2 queue's high mark at most, in messages: enough to keep a window of
/// `max_inflight_messages` refilled for several round trips, and a bound on what a
/// subscriber holds when `max_queued_messages` is very large or 0 (unlimited).
pub(super) const QUEUE_HIGH_MAX: usize = 1000;

/// The outbox high mark is `outbox_limit / HIGH_DIVISOR`, the low mark
/// `outbox_limit / LOW_DIVISOR`: with the default 1 MiB limit, 256 KiB and 64 KiB. The
/// high mark leaves room under the limit for one message from each of many publishers;
/// the low mark keeps enough queued to fill a socket buffer while the released
/// publishers are read again in the next turn.
const HIGH_DIVISOR: usize = 4;
const LOW_DIVISOR: usize = 16;

/// The outbox low mark: under it (and under the queue's), a subscriber has drained.
pub(super) fn low_mark(settings: &super::Settings) -> usize {
    settings.outbox_limit / LOW_DIVISOR
}

/// Who waits on whom, and which subscribers are watched or stalled.
#[derive(Default)]
pub(super) struct Pressure {
    /// Connections taking part: subscribers behind or stalled, publishers held.
    entries: HashMap<ConnId, Entry>,
    /// Publishers held now (entries with a non-empty `waiting_on`).
    held: usize,
    /// By connection slot: held now. `is_held` runs for every packet handed over, so it
    /// is a vector index, not a hash lookup.
    held_slots: Vec<bool>,
    /// Subscribers stalled now.
    stalled: usize,
    /// By connection slot: stalled now. Every message to a stalled subscriber asks
    /// (and is dropped at its limit): a vector index, not two hash lookups.
    stalled_slots: Vec<bool>,
    /// Publishers released since the loop last asked.
    resumed: Vec<ConnId>,
}

#[derive(Default)]
struct Entry {
    /// As a subscriber: the publishers held on it.
    waiters: Vec<ConnId>,
    /// As a publisher: the subscribers it is held on.
    waiting_on: Vec<ConnId>,
    /// As a subscriber that fell behind: when it last made progress, and its one pending
    /// stall check.
    watch: Option<Watch>,
    /// As a subscriber: stalled, holding nobody back until it drains.
    stalled: bool,
}

#[derive(Clone, Copy)]
struct Watch {
    progress: Instant,
    deadline: Instant,
}

impl Pressure {
    fn is_stalled(&self, conn: ConnId) -> bool {
        self.stalled != 0
            && self
                .stalled_slots
                .get(conn.0 as usize)
                .is_some_and(|stalled| *stalled)
    }

    /// The one writer of the stalled gauge and slots (the entry's flag is set with it).
    fn set_stalled(&mut self, conn: ConnId, stalled: bool) {
        let slot = conn.0 as usize;
        if self.stalled_slots.len() <= slot {
            self.stalled_slots.resize(slot + 1, false);
        }
        self.stalled_slots[slot] = stalled;
        if stalled {
            self.stalled += 1;
        } else {
            self.stalled -= 1;
        }
    }

    fn set_held(&mut self, conn: ConnId, held: bool) {
        let slot = conn.0 as usize;
        if self.held_slots.len() <= slot {
            self.held_slots.resize(slot + 1, false);
        }
        self.held_slots[slot] = held;
        if held {
            self.held += 1;
        } else {
            self.held -= 1;
        }
    }
}

impl Entry {
    fn is_idle(&self) -> bool {
        self.waiters.is_empty()
            && self.waiting_on.is_empty()
            && self.watch.is_none()
            && !self.stalled
    }
}

/// What a subscriber has not taken yet.
struct Backlog {
    out_bytes: usize,
    queued: usize,
    queued_bytes: usize,
}

impl Broker {
    /// True while `conn` is held: the loop hands over none of its packets and does not
    /// read its socket until [`Broker::poll_resumed`] names it.
    pub fn is_held(&self, conn: ConnId) -> bool {
        self.pressure.held != 0
            && self
                .pressure
                .held_slots
                .get(conn.0 as usize)
                .is_some_and(|held| *held)
    }

    /// The subscribers `conn` is held on, into `out` (cleared first).
    pub fn waited_on(&self, conn: ConnId, out: &mut Vec<ConnId>) {
        out.clear();
        if let Some(entry) = self.pressure.entries.get(&conn) {
            out.extend_from_slice(&entry.waiting_on);
        }
    }

    /// `publisher` was held in the read just handed over, and the loop then wrote the
    /// output of the subscribers it is held on at once (`net::Server::relieve`). Returns
    /// true if that drained them (under their low marks: the usual release, see
    /// [`Broker::consume_output`]) and it is held no more: the loop reads on, and the
    /// hold, which never left its socket unread, is not counted in
    /// `$SYS/broker/clients/holds`. A subscriber the write took only under its high mark
    /// keeps it held: releasing it there was measured to cost a tenth of the closed-loop
    /// fan-in figure (a hold, a write and a release for every few messages).
    pub fn relieved(&mut self, publisher: ConnId) -> bool {
        if self.is_held(publisher) {
            return false;
        }
        self.stats.holds = self.stats.holds.saturating_sub(1);
        self.pressure.resumed.retain(|c| *c != publisher);
        true
    }

    /// A held connection that may be read again (its subscribers drained, stalled or
    /// left). The loop reads it in its next turn, whether or not an event says it is
    /// readable.
    pub fn poll_resumed(&mut self) -> Option<ConnId> {
        self.pressure.resumed.pop()
    }

    /// Publishers held now, and subscribers stalled now ($SYS).
    pub(super) fn pressure_gauges(&self) -> (usize, usize) {
        (self.pressure.held, self.pressure.stalled)
    }

    fn backlog(&self, conn: ConnId) -> Option<Backlog> {
        let c = self.conns.get(conn.0)?;
        let ConnState::Active(sid) = c.state() else {
            return None;
        };
        let session = self.sessions.get(sid.0)?;
        Some(Backlog {
            out_bytes: c.out.len(),
            queued: session.queue.len(),
            queued_bytes: session.queued_bytes,
        })
    }

    /// The high marks: outbox bytes, queued messages, queued payload bytes.
    fn high_marks(&self) -> (usize, usize, usize) {
        let s = &self.settings;
        let bytes = s.outbox_limit / HIGH_DIVISOR;
        let messages = match s.max_queued_messages {
            0 => QUEUE_HIGH_MAX,
            n => (n / 2).clamp(1, QUEUE_HIGH_MAX),
        };
        let queued_bytes = match s.max_queued_bytes {
            0 => bytes,
            n => (n / 2).min(bytes),
        };
        (bytes, messages, queued_bytes)
    }

    fn is_behind(&self, conn: ConnId) -> bool {
        let (bytes, messages, queued_bytes) = self.high_marks();
        self.backlog(conn).is_some_and(|b| {
            b.out_bytes > bytes || b.queued > messages || b.queued_bytes > queued_bytes
        })
    }

    /// Under the low marks (or gone).
    fn is_drained(&self, conn: ConnId) -> bool {
        let (_, messages, queued_bytes) = self.high_marks();
        let low_bytes = low_mark(&self.settings);
        self.backlog(conn).is_none_or(|b| {
            b.out_bytes <= low_bytes
                && b.queued <= messages / 4
                && b.queued_bytes <= queued_bytes / 4
        })
    }

    /// A message from `publisher` is about to be delivered to the online connection
    /// `sub`: if `sub` is behind and not stalled, the publisher's connection is held on it.
    pub(super) fn apply_pressure(
        &mut self,
        sub: ConnId,
        publisher: Option<SessionId>,
        now: Instant,
    ) {
        let Some(psid) = publisher else {
            return;
        };
        if self.settings.subscriber_stall_timeout.is_zero()
            || self.pressure.is_stalled(sub)
            || !self.is_behind(sub)
        {
            return;
        }
        let Some(pconn) = self.sessions.get(psid.0).and_then(|s| s.conn) else {
            return;
        };
        let holdable = self
            .conns
            .get(pconn.0)
            .is_some_and(|c| c.listener != BRIDGE_LISTENER && c.state() == ConnState::Active(psid));
        if pconn == sub || !holdable {
            return;
        }
        self.hold(pconn, sub, now);
    }

    fn hold(&mut self, publisher: ConnId, sub: ConnId, now: Instant) {
        let timeout = self.settings.subscriber_stall_timeout;
        let entry = self.pressure.entries.entry(sub).or_default();
        if entry.stalled {
            return;
        }
        if entry.watch.is_none() {
            let deadline = now + timeout;
            entry.watch = Some(Watch {
                progress: now,
                deadline,
            });
            self.timers.schedule(deadline, Timer::Stall(sub));
        }
        if entry.waiters.contains(&publisher) {
            return;
        }
        entry.waiters.push(publisher);
        let p = self.pressure.entries.entry(publisher).or_default();
        p.waiting_on.push(sub);
        if p.waiting_on.len() == 1 {
            self.pressure.set_held(publisher, true);
            self.stats.holds += 1;
        }
    }

    /// `sub` took bytes or acknowledged a message: its stall clock starts again, and if
    /// it drained under its low marks, its publishers are released and a stalled
    /// subscriber is normal again.
    pub(super) fn note_progress(&mut self, sub: ConnId, now: Instant) {
        let Some(entry) = self.pressure.entries.get_mut(&sub) else {
            return;
        };
        if let Some(watch) = entry.watch.as_mut() {
            watch.progress = now;
        }
        if (entry.watch.is_some() || entry.stalled) && self.is_drained(sub) {
            self.settle(sub, now);
        }
    }

    /// `sub` drained: nobody waits on it, and it is watched no more.
    fn settle(&mut self, sub: ConnId, now: Instant) {
        self.release_waiters(sub, now);
        let Some(entry) = self.pressure.entries.get_mut(&sub) else {
            return;
        };
        entry.watch = None;
        if entry.stalled {
            entry.stalled = false;
            self.pressure.set_stalled(sub, false);
            debug!("Client on connection {} caught up.", sub.0);
        }
        self.forget_if_idle(sub);
    }

    /// A QoS 0 message to `sub` was dropped at `outbox_limit`, or a QoS 1/2 message at the
    /// queue's limits, while it is online: it is stalled.
    pub(super) fn note_limit_reached(&mut self, sid: SessionId) {
        if let Some(conn) = self.sessions.get(sid.0).and_then(|s| s.conn) {
            if !self.pressure.is_stalled(conn) {
                let now = self.last_event;
                self.mark_stalled(conn, now);
            }
        }
    }

    fn mark_stalled(&mut self, sub: ConnId, now: Instant) {
        let Some(c) = self.conns.get(sub.0) else {
            return;
        };
        let ConnState::Active(sid) = c.state() else {
            return;
        };
        let entry = self.pressure.entries.entry(sub).or_default();
        if entry.stalled {
            return;
        }
        entry.stalled = true;
        entry.watch = None;
        self.pressure.set_stalled(sub, true);
        self.stats.stalls += 1;
        // Mosquitto's line (database.c), once per episode rather than once per
        // connection: a client that caught up and fell behind again is news.
        info!(
            "Outgoing messages are being dropped for client {}.",
            self.session(sid).client_id
        );
        self.release_waiters(sub, now);
    }

    /// The stall check of `sub`, due at `at`.
    pub(super) fn check_stall(&mut self, sub: ConnId, at: Instant, now: Instant) {
        let Some(watch) = self.pressure.entries.get(&sub).and_then(|e| e.watch) else {
            return;
        };
        if watch.deadline != at {
            return;
        }
        if self.is_drained(sub) {
            return self.settle(sub, now);
        }
        let has_waiters = self
            .pressure
            .entries
            .get(&sub)
            .is_some_and(|e| !e.waiters.is_empty());
        if !has_waiters && !self.is_behind(sub) {
            // Between its marks and holding nobody: nothing to watch for.
            if let Some(e) = self.pressure.entries.get_mut(&sub) {
                e.watch = None;
            }
            return self.forget_if_idle(sub);
        }
        let due = watch.progress + self.settings.subscriber_stall_timeout;
        if due <= now {
            return self.mark_stalled(sub, now);
        }
        if let Some(w) = self
            .pressure
            .entries
            .get_mut(&sub)
            .and_then(|e| e.watch.as_mut())
        {
            w.deadline = due;
        }
        self.timers.schedule(due, Timer::Stall(sub));
    }

    fn release_waiters(&mut self, sub: ConnId, now: Instant) {
        let Some(entry) = self.pressure.entries.get_mut(&sub) else {
            return;
        };
        for publisher in std::mem::take(&mut entry.waiters) {
            let Some(p) = self.pressure.entries.get_mut(&publisher) else {
                continue;
            };
            p.waiting_on.retain(|s| *s != sub);
            if p.waiting_on.is_empty() {
                self.pressure.set_held(publisher, false);
                self.pressure.resumed.push(publisher);
                // Its packets waited in its socket, not on the client: the hold does not
                // count against its keep alive.
                if let Some(c) = self.conns.get_mut(publisher.0) {
                    c.last_seen = now;
                }
                self.forget_if_idle(publisher);
            }
        }
    }

    fn forget_if_idle(&mut self, conn: ConnId) {
        if self
            .pressure
            .entries
            .get(&conn)
            .is_some_and(|e| e.is_idle())
        {
            self.pressure.entries.remove(&conn);
        }
    }

    /// Connections taking part (tests: nothing is left behind).
    #[cfg(test)]
    pub(super) fn pressure_entries(&self) -> usize {
        self.pressure.entries.len()
    }

    /// Every relation recorded both ways, the gauges true, nothing left of closed
    /// connections (the operation-sequence tests check it after every step).
    #[cfg(test)]
    pub(super) fn assert_pressure_consistent(&self) {
        let p = &self.pressure;
        let held = p.entries.values().filter(|e| !e.waiting_on.is_empty());
        assert_eq!(p.held, held.count(), "held gauge");
        assert_eq!(
            p.held,
            p.held_slots.iter().filter(|h| **h).count(),
            "held slots"
        );
        for (id, e) in &p.entries {
            assert_eq!(self.is_held(*id), !e.waiting_on.is_empty(), "{id:?} held");
        }
        let stalled = p.entries.values().filter(|e| e.stalled);
        assert_eq!(p.stalled, stalled.count(), "stalled gauge");
        assert_eq!(
            p.stalled,
            p.stalled_slots.iter().filter(|s| **s).count(),
            "stalled slots"
        );
        for (id, e) in &p.entries {
            assert_eq!(p.is_stalled(*id), e.stalled, "{id:?} stalled");
        }
        for (id, e) in &p.entries {
            assert!(
                self.conns.contains(id.0),
                "{id:?}: entry of a closed connection"
            );
            assert!(!e.is_idle(), "{id:?}: idle entry kept");
            for w in &e.waiters {
                assert!(p.entries.get(w).is_some_and(|x| x.waiting_on.contains(id)));
            }
            for s in &e.waiting_on {
                assert!(p.entries.get(s).is_some_and(|x| x.waiters.contains(id)));
            }
        }
    }

    /// `conn` is gone: publishers held on it are released, and it waits on nobody.
    pub(super) fn forget_pressure(&mut self, conn: ConnId, now: Instant) {
        if !self.pressure.entries.contains_key(&conn) {
            return;
        }
        self.release_waiters(conn, now);
        let Some(entry) = self.pressure.entries.remove(&conn) else {
            return;
        };
        if entry.stalled {
            self.pressure.set_stalled(conn, false);
        }
        if !entry.waiting_on.is_empty() {
            self.pressure.set_held(conn, false);
        }
        for sub in entry.waiting_on {
            if let Some(s) = self.pressure.entries.get_mut(&sub) {
                s.waiters.retain(|p| *p != conn);
            }
            self.forget_if_idle(sub);
        }
        self.pressure.resumed.retain(|c| *c != conn);
    }
}
