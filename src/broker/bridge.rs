//! What the core offers bridges (`crate::bridge`): a bridge's local side is an ordinary
//! session on a virtual connection opened with [`BRIDGE_LISTENER`], which no password
//! file or ACL applies to (Mosquitto does not check its own bridges either), and a way
//! to publish the bridges' retained state notifications.

use super::{Broker, Publication};
use crate::protocol::QoS;
use std::time::Instant;

/// Limits of one session's queue instead of `max_queued_messages`/`max_queued_bytes`
/// (0: unlimited), and which end gives way when it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    pub max_messages: usize,
    pub max_bytes: usize,
    /// `true`: the oldest queued message is dropped for a new one; `false`: the new
    /// one is dropped (Mosquitto's behaviour for every client).
    pub drop_oldest: bool,
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
    pub fn set_queue_limits(&mut self, client_id: &str, limits: Option<QueueLimits>) {
        match limits {
            Some(limits) => self.queue_limits.insert(client_id.into(), limits),
            None => self.queue_limits.remove(client_id),
        };
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
        Some(dropped)
    }

    /// Moves the packet id counter of `client_id`'s session, so that a test can reach the
    /// wrap of the ids without sending 65,000 messages first.
    #[cfg(test)]
    pub(crate) fn set_last_packet_id(&mut self, client_id: &str, id: u16) {
        let sid = self.by_client_id[client_id];
        self.session_mut(sid).last_packet_id = id;
    }

    /// Messages waiting for the session of `client_id` (queued, then inflight), or `None`
    /// if it has no session: a bridge's outbox depth for $SYS and logs.
    pub fn session_backlog(&self, client_id: &str) -> Option<(usize, usize)> {
        let sid = *self.by_client_id.get(client_id)?;
        let session = self.session(sid);
        Some((session.queue.len(), session.inflight.len()))
    }
}
