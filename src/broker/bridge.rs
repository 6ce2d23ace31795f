//! What the core offers bridges (`crate::bridge`): a bridge's local side is an ordinary
//! session on a virtual connection opened with [`BRIDGE_LISTENER`], which no password
//! file or ACL applies to (Mosquitto does not check its own bridges either), and a way
//! to publish the bridges' retained state notifications.

use super::route::Publication;
use super::Broker;
use crate::protocol::{PacketId, QoS};
use std::time::{Duration, Instant};

/// Why a message waiting for a bridge's remote was dropped: the `dropped/<name>` counters
/// of `$SYS/broker/connection/<bridge>/` and the `cause` label of
/// `culex_bridge_dropped_messages_total`. A new cause is a variant, its entry in
/// [`DropCause::ALL`] and its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropCause {
    /// The outbox was at its limits (`bridge_outbox_max_*`, else
    /// `max_queued_messages`/`max_queued_bytes`; the new message or, with drop-oldest,
    /// the oldest one), or a QoS 0 message met `outbox_limit` while the link was up.
    Full,
    /// It waited longer than `bridge_outbox_max_age` (backlog.rs).
    Age,
    /// A newer message on its topic replaced it (`bridge_latest_only`, backlog.rs).
    Replaced,
}

impl DropCause {
    pub const ALL: [DropCause; 3] = [DropCause::Full, DropCause::Age, DropCause::Replaced];

    pub fn name(self) -> &'static str {
        match self {
            DropCause::Full => "full",
            DropCause::Age => "age",
            DropCause::Replaced => "replaced",
        }
    }
}

/// Messages dropped for one session, by cause (the order of [`DropCause::ALL`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drops([u64; DropCause::ALL.len()]);

impl Drops {
    pub(super) fn count(&mut self, cause: DropCause) {
        self.0[cause as usize] += 1;
    }

    pub fn get(&self, cause: DropCause) -> u64 {
        self.0[cause as usize]
    }

    /// Every cause with its count, in the order of [`DropCause::ALL`].
    pub fn iter(&self) -> impl Iterator<Item = (DropCause, u64)> + '_ {
        DropCause::ALL.iter().map(|&c| (c, self.get(c)))
    }
}

/// What waits for a bridge's remote: its local session's queue and inflight window.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub messages: usize,
    /// Payload bytes, as `max_queued_bytes` counts them
    /// ([`crate::message::Message::queued_size`]).
    pub bytes: usize,
    /// How long the oldest of them has waited (whole seconds); zero when none waits.
    pub oldest_age: Duration,
}

/// Whole seconds from `started` to `now`: the broker's cheap timestamp of queue
/// entries (negative for what a restart restored from before it; see
/// [`super::backlog::secs_between`]).
pub(super) fn secs_since(started: Instant, now: Instant) -> i32 {
    super::backlog::secs_between(started, now)
}

/// Limits of one session's queue instead of `max_queued_messages`/`max_queued_bytes`
/// (0: unlimited), and which end gives way when it is full: a bridge's outbox, with the
/// culex options that shape its backlog (age, latest value per topic, paced replay).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueLimits {
    pub max_messages: usize,
    pub max_bytes: usize,
    /// `true`: the oldest queued message is dropped for a new one; `false`: the new
    /// one is dropped (Mosquitto's behaviour for every client).
    pub drop_oldest: bool,
    /// A queued message older than this (whole seconds) is dropped, not sent: checked
    /// when it would be sent and, by a timer, while the session is offline.
    pub max_age: Option<Duration>,
    /// Topic filters: while the session is offline, a new message on a topic one of
    /// them matches replaces the one queued on that topic (the new one goes to the end;
    /// the others keep their order).
    pub latest_only: Vec<String>,
    /// Messages per second of what was queued when the session came online, sent
    /// behind messages queued after that; 0: unlimited (no distinction).
    pub replay_rate: u32,
}

/// A session's own queue limits and the state of its backlog.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    /// `None`: the global limits (a bridge being reconfigured keeps its counters).
    pub(super) limits: Option<QueueLimits>,
    /// With a replay rate: how many messages at the front of the queue were waiting when
    /// the session came online (the paced backlog).
    pub(super) backlog: usize,
    /// With a replay rate: when the next backlog message may go.
    pub(super) next_replay: Option<Instant>,
    /// The `Timer::Outbox` scheduled for this session, if any.
    pub(super) timer: Option<Instant>,
}

/// The listener index of bridges' local connections: no listener's limits, no
/// authentication, no ACL.
pub const BRIDGE_LISTENER: usize = usize::MAX;

/// The highest packet id a bridge's local session uses. The ids above it are the bridge's
/// own toward the remote (its state notifications, which are QoS 1 as Mosquitto's): the
/// local session's ids go to the remote unchanged, so the two sets must not meet, or a
/// PUBACK for a notification would acknowledge a local message.
pub const BRIDGE_MAX_PACKET_ID: u16 = 0xfffb;

impl Broker {
    /// Publishes a retained message from the broker itself (bridge state notifications):
    /// stored as retained and routed to subscribers.
    pub fn publish_retained(&mut self, topic: &str, payload: &[u8], qos: QoS, now: Instant) {
        self.last_event = now;
        let mut publication = Publication {
            topic,
            payload,
            qos,
            retain: true,
            stored: None,
            publisher: None,
        };
        self.set_retained(&mut publication);
        self.route(&mut publication, now);
    }

    /// Gives the session of `client_id` (existing or future) its own queue limits (a
    /// bridge's outbox), or with `None` the global ones again.
    /// New limits apply to what waits at the next check, which is due at once.
    pub fn set_queue_limits(&mut self, client_id: &str, limits: Option<QueueLimits>) {
        let outbox = self.outboxes.entry(client_id.into()).or_default();
        outbox.limits = limits;
        if outbox.limits.as_ref().is_none_or(|l| l.replay_rate == 0) {
            outbox.backlog = 0;
        }
        if let Some(&sid) = self.by_client_id.get(client_id) {
            let now = self.last_event;
            self.compact_latest(sid);
            self.schedule_outbox(sid, now);
        }
    }

    /// The connection `id` (a bridge's local session, opened only so that the session
    /// and its subscriptions exist while the remote is away) leaves its session's queue
    /// alone: queued messages are not put in flight on a connection nothing reads, so
    /// they stay subject to the outbox's age limit, latest-only rule and replay pace.
    /// Call after `handle_open`, before its CONNECT.
    pub fn hold_queue(&mut self, id: super::ConnId) {
        if let Some(conn) = self.conns.get_mut(id.0) {
            conn.holds_queue = true;
        }
    }

    /// Discards the offline session of `client_id` and the messages waiting in it (a
    /// bridge whose `connection` block was removed: nothing can take them any more).
    /// Returns how many messages were dropped, or `None` if there is no such offline
    /// session.
    pub fn discard_session(&mut self, client_id: &str) -> Option<usize> {
        let sid = *self.by_client_id.get(client_id)?;
        let session = self.session(sid);
        if session.conn.is_some() {
            return None;
        }
        let dropped = session.queue.len() + session.inflight.len();
        self.remove_session(sid);
        self.outboxes.remove(client_id);
        Some(dropped)
    }

    /// A packet id for a packet a bridge sends to its remote on behalf of its local
    /// session `client_id` (SUBSCRIBE, UNSUBSCRIBE): the session's next one, so that the
    /// ids of the bridge's own packets and of the messages it relays come from one
    /// counter, as in Mosquitto, where the bridge is one client. [MQTT-2.2.1-3] `None` if
    /// the session does not exist (a clean local session while the bridge is down).
    pub fn take_packet_id(&mut self, client_id: &str) -> Option<PacketId> {
        let sid = *self.by_client_id.get(client_id)?;
        Some(super::delivery::next_packet_id(self.session_mut(sid)))
    }

    /// The last packet id the session of `client_id` used, if it exists.
    pub fn last_packet_id(&self, client_id: &str) -> Option<u16> {
        let sid = *self.by_client_id.get(client_id)?;
        Some(self.session(sid).last_packet_id)
    }

    /// Moves the packet id counter of `client_id`'s session: a bridge's new clean local
    /// session goes on from the ids the bridge used before it (and a test reaches the
    /// wrap of the ids without sending 65,000 messages first).
    pub fn set_last_packet_id(&mut self, client_id: &str, id: u16) {
        if let Some(&sid) = self.by_client_id.get(client_id) {
            self.session_mut(sid).last_packet_id = id;
        }
    }

    /// Counts the messages dropped for `client_id`'s session by cause, from now on (a
    /// bridge's local session; the counts outlive the session).
    pub fn track_drops(&mut self, client_id: &str) {
        self.outbox_drops.entry(client_id.into()).or_default();
    }

    /// The messages dropped for `client_id`'s session since [`Broker::track_drops`].
    pub fn drops(&self, client_id: &str) -> Drops {
        self.outbox_drops
            .get(client_id)
            .copied()
            .unwrap_or_default()
    }

    /// What waits in the session of `client_id`, queued and in flight: a bridge's
    /// backlog. Nothing waits for a session that does not exist.
    pub fn session_waiting(&self, client_id: &str, now: Instant) -> Backlog {
        let Some(&sid) = self.by_client_id.get(client_id) else {
            return Backlog::default();
        };
        let session = self.session(sid);
        let inflight_bytes: usize = session
            .inflight
            .iter()
            .map(|i| i.message.queued_size())
            .sum();
        // Both are in arrival order, so their fronts are the oldest.
        let oldest = [
            session.queue.front().map(|q| q.since),
            session.inflight.iter().map(|i| i.since).min(),
        ]
        .into_iter()
        .flatten()
        .min();
        let age = oldest.map_or(0, |since| {
            (i64::from(self.secs(now)) - i64::from(since)).max(0) as u64
        });
        Backlog {
            messages: session.queue.len() + session.inflight.len(),
            bytes: session.queued_bytes + inflight_bytes,
            oldest_age: Duration::from_secs(age),
        }
    }

    /// `now` as the broker's queue timestamp: whole seconds since it started.
    pub(super) fn secs(&self, now: Instant) -> i32 {
        secs_since(self.started, now)
    }

    /// Messages waiting for the session of `client_id` (queued, then inflight), or `None`
    /// if it has no session: a bridge's outbox depth for $SYS and logs.
    pub fn session_backlog(&self, client_id: &str) -> Option<(usize, usize)> {
        let sid = *self.by_client_id.get(client_id)?;
        let session = self.session(sid);
        Some((session.queue.len(), session.inflight.len()))
    }
}
