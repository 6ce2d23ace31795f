//! Where a publication goes: into the retained store (within its limits), then to every
//! matching subscription once per session and to one member of each matching shared
//! group, with No Local and the ACL's read access applied; `deliver` hands each copy to
//! the outbox (QoS 0) or to the session's QoS 1/2 flow, first holding the publisher back
//! if the subscriber is behind (pressure.rs).

use super::outbox::Outgoing;
use super::state::{ConnState, SessionId};
use super::{Broker, Message};
use crate::auth::Access;
use crate::protocol::QoS;
use log::warn;
use std::rc::Rc;
use std::time::Instant;

/// A publication being routed: borrowed from the inbound frame until something needs to
/// keep it, then stored once.
pub(super) struct Publication<'a> {
    pub(super) topic: &'a str,
    pub(super) payload: &'a [u8],
    pub(super) qos: QoS,
    pub(super) retain: bool,
    /// Stored as soon as it has MQTT 5 properties to pass on; otherwise on first need.
    pub(super) stored: Option<Rc<Message>>,
    /// The publishing session, for No Local.
    pub(super) publisher: Option<SessionId>,
}

impl<'a> Publication<'a> {
    /// A stored message (retained, will, queued) routed again.
    pub(super) fn of(message: &'a Rc<Message>) -> Publication<'a> {
        Publication {
            topic: message.topic(),
            payload: message.payload(),
            qos: message.qos,
            retain: message.retain,
            stored: Some(message.clone()),
            publisher: None,
        }
    }
}

impl Publication<'_> {
    pub(super) fn stored(&mut self) -> Rc<Message> {
        self.stored
            .get_or_insert_with(|| Message::new(self.topic, self.payload, self.qos, self.retain))
            .clone()
    }
}

impl Broker {
    /// Stores or clears the retained message of a topic. [MQTT-3.3.1-5] [MQTT-3.3.1-10]
    /// Returns false if `max_retained_messages` or `max_retained_bytes` kept it out
    /// (the message is still delivered).
    pub(super) fn set_retained(&mut self, publication: &mut Publication<'_>) -> bool {
        let counted = !publication.topic.starts_with("$SYS");
        if counted && !publication.payload.is_empty() && !self.retained_fits(publication) {
            self.stats.retained_refused += 1;
            let n = self.stats.retained_refused;
            // Logged at 1, 2, 4, 8... refusals: visible, never a flood.
            if n.is_power_of_two() {
                warn!(
                    "Not retaining '{}': max_retained_messages ({}) or max_retained_bytes ({}) reached ({n} refused so far).",
                    publication.topic,
                    self.settings.max_retained_messages,
                    self.settings.max_retained_bytes
                );
            }
            return false;
        }
        let old = if publication.payload.is_empty() {
            self.journal_retained(publication.topic, None);
            self.retained.remove(publication.topic)
        } else {
            let message = publication.stored();
            self.stats.hold(&message);
            self.journal_retained(publication.topic, Some(&message));
            self.retained.insert(publication.topic, message)
        };
        if counted {
            if let Some(old) = &old {
                self.retained_count -= 1;
                self.retained_bytes -= old.payload().len();
            }
            if !publication.payload.is_empty() {
                self.retained_count += 1;
                self.retained_bytes += publication.payload.len();
            }
        }
        if let Some(old) = old {
            self.stats.release(&old);
        }
        true
    }

    /// Whether storing `publication` keeps the retained store within its limits (a
    /// replacement counts only its growth).
    fn retained_fits(&self, publication: &Publication<'_>) -> bool {
        let (max_count, max_bytes) = (
            self.settings.max_retained_messages,
            self.settings.max_retained_bytes,
        );
        if max_count == 0 && max_bytes == 0 {
            return true;
        }
        let old = self
            .retained
            .get(publication.topic)
            .map(|m| m.payload().len());
        let count = self.retained_count + usize::from(old.is_none());
        let bytes = self.retained_bytes - old.unwrap_or(0) + publication.payload.len();
        (max_count == 0 || count <= max_count) && (max_bytes == 0 || bytes <= max_bytes)
    }

    /// Delivers to every matching subscription, once per session at the highest granted
    /// QoS of its matching subscriptions (Mosquitto's behaviour without
    /// allow_duplicate_messages), with the identifiers of all of them [MQTT-3.3.4-3];
    /// then to one member of each matching shared group. Live deliveries carry RETAIN 0
    /// [MQTT-3.3.1-9] unless the subscription asked for Retain As Published
    /// [MQTT-3.3.1-12]. Returns the number of matching subscriptions, counting those No
    /// Local or the ACL keep from a delivery: Mosquitto's `sub__messages_queue` answers
    /// "no subscribers" (PUBACK 0x10) only when no subscription matched at all.
    pub(super) fn route(&mut self, publication: &mut Publication<'_>, now: Instant) -> usize {
        let mut matches = std::mem::take(&mut self.matches);
        self.subscriptions
            .for_each_match(publication.topic, |sid, sub| matches.push((sid, *sub)));
        let mut matched = matches.len();
        if let Some(publisher) = publication.publisher {
            // [MQTT-3.8.3-3] No Local.
            matches.retain(|(sid, sub)| !(sub.no_local && *sid == publisher));
        }
        if matches.len() > 1 {
            matches.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.qos.cmp(&a.1.qos)));
        }
        let ordinary = matches.len();
        // One member of each matching shared group, preferring online ones; these copies
        // are in addition to the session's ordinary subscriptions. [MQTT-4.8.2]
        if !self.shared.is_empty() {
            let sessions = &self.sessions;
            self.shared.for_each_match(
                publication.topic,
                |sid| sessions.get(sid.0).is_some_and(|s| s.conn.is_some()),
                |sid, sub| matches.push((sid, *sub)),
            );
            matched += matches.len() - ordinary;
        }
        // `read` access is checked per delivery, as Mosquitto does (subscriptions are not
        // checked against the ACL file).
        let mut ordinary_left = ordinary;
        if self.has_acl() {
            let sessions = &self.sessions;
            let topic = publication.topic;
            let mut index = 0;
            matches.retain(|(sid, _)| {
                let keep = sessions.get(sid.0).is_some_and(|s| {
                    let user = s.username.as_deref();
                    self.is_allowed(&s.client_id, user, topic, Access::Read, s.listener)
                });
                if !keep && index < ordinary {
                    ordinary_left -= 1;
                }
                index += 1;
                keep
            });
        }
        let mut sub_ids = std::mem::take(&mut self.sub_ids);
        let mut i = 0;
        while i < matches.len() {
            // The ordinary subscriptions of one session are merged (sorted by session,
            // highest QoS first); each shared-group pick is a delivery of its own.
            let (sid, first) = matches[i];
            let end = if i < ordinary_left {
                let same = matches[i..ordinary_left]
                    .iter()
                    .take_while(|m| m.0 == sid)
                    .count();
                i + same
            } else {
                i + 1
            };
            sub_ids.clear();
            sub_ids.extend(matches[i..end].iter().map(|m| m.1.id).filter(|id| *id != 0));
            let retain_as_published = matches[i..end].iter().any(|m| m.1.retain_as_published);
            let qos = if self.settings.upgrade_outgoing_qos {
                first.qos
            } else {
                publication.qos.min(first.qos)
            };
            let retain = retain_as_published && publication.retain;
            self.deliver(sid, publication, qos, retain, &sub_ids, now);
            i = end;
        }
        sub_ids.clear();
        self.sub_ids = sub_ids;
        matches.clear();
        self.matches = matches;
        matched
    }

    /// Sends a message to a session now, or queues it.
    pub(super) fn deliver(
        &mut self,
        sid: SessionId,
        publication: &mut Publication<'_>,
        qos: QoS,
        retain: bool,
        sub_ids: &[u32],
        now: Instant,
    ) {
        if publication
            .stored
            .as_ref()
            .is_some_and(|m| m.is_expired(now))
        {
            // [MQTT-3.3.2-5]: an expired message is not delivered.
            return;
        }
        let online = self.session(sid).conn.filter(|c| {
            self.conns
                .get(c.0)
                .is_some_and(|c| c.state() == ConnState::Active(sid))
        });
        if let Some(conn) = online {
            self.apply_pressure(conn, publication.publisher, now);
        }
        match (qos, online) {
            (QoS::AtMostOnce, Some(conn)) => {
                let limit = self.settings.outbox_limit;
                let c = self
                    .conn_mut(conn)
                    .expect("online session has a connection");
                // The outbox limit sheds live QoS 0 traffic to a slow reader. Retained
                // messages sent for a new subscription are a bounded, requested burst
                // (the retained store's size): they are all written, as Mosquitto does.
                if c.out.len() > limit && !retain {
                    self.stats.publish_dropped += 1;
                    let client_id = self.sessions.get(sid.0).map(|s| &s.client_id);
                    if let Some(d) = client_id.and_then(|c| self.outbox_drops.get_mut(c)) {
                        d.count(super::bridge::DropCause::Full);
                    }
                    // Behind this far, it is stalled: it holds nobody back any more.
                    self.note_limit_reached(sid);
                    return;
                }
                let stored = publication.stored.clone();
                let props = stored.as_ref().and_then(|m| m.props.as_deref());
                let (topic, payload) = (publication.topic, publication.payload);
                let out = Outgoing {
                    topic,
                    payload,
                    props,
                    qos: QoS::AtMostOnce,
                    retain,
                    dup: false,
                    packet_id: None,
                    sub_ids,
                };
                self.write_publish(conn, &out, now);
            }
            // Offline: QoS 0 is not queued (Mosquitto's queue_qos0_messages false).
            (QoS::AtMostOnce, None) => {}
            (_, _) => {
                let message = publication.stored();
                // A client that is not reading its output has its QoS 1/2 messages wait
                // in the session queue (bounded by max_queued_messages/bytes), not in
                // its outbox; they move on when the outbox drains.
                // A bridge's paced backlog does not hold live messages back (backlog.rs).
                let full = !online.is_some_and(|c| self.has_inflight_room(sid, c))
                    || self.live_queue_len(sid) != 0
                    || online.is_some_and(|c| self.is_backlogged(c));
                let sub_ids: Box<[u32]> = sub_ids.into();
                match online {
                    Some(conn) if !full => {
                        self.send_inflight(sid, conn, message, qos, retain, sub_ids, None, now)
                    }
                    _ => self.enqueue(sid, message, qos, retain, sub_ids, now),
                }
            }
        }
    }
}
