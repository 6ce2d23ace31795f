//! QoS 1/2 delivery to one session: the inflight window (max_inflight_messages and the
//! client's Receive Maximum), packet ids, the session queue and its limits, draining it,
//! and resending on a resumed session.
//!
//! A queue over its high mark holds back the publishers feeding it, and one that drains
//! releases them (`apply_pressure` before a delivery, `note_progress` after
//! `drain_queue`): see pressure.rs for the design. What the limits below drop is the
//! loss of last resort, for a subscriber that is stalled.

use super::bridge::DropCause;
use super::outbox::Outgoing;
use super::state::{ConnId, Inflight, InflightState, Queued, Session, SessionId};
use super::{Broker, Message, BRIDGE_LISTENER, BRIDGE_MAX_PACKET_ID};
use crate::persist::record::Record;
use crate::protocol::{Ack, Packet, PacketId, QoS};
use log::debug;
use std::rc::Rc;
use std::time::Instant;

/// The next packet id not in use by an inflight message. [MQTT-2.3.1-2] Terminates: at
/// most 65,534 ids are in flight (`max_inflight_messages` is capped at 65,535 and one id is
/// always free when a new message is sent); a bridge's local session, which keeps the ids
/// above [`BRIDGE_MAX_PACKET_ID`] free, has its window capped below that (`window`).
pub(super) fn next_packet_id(session: &mut Session) -> PacketId {
    let highest = if session.listener == BRIDGE_LISTENER {
        BRIDGE_MAX_PACKET_ID
    } else {
        u16::MAX
    };
    loop {
        session.last_packet_id = if session.last_packet_id >= highest {
            1
        } else {
            session.last_packet_id + 1
        };
        let Some(pid) = PacketId::new(session.last_packet_id) else {
            continue;
        };
        if !session.inflight.iter().any(|i| i.packet_id == pid) {
            return pid;
        }
    }
}

impl Broker {
    /// The connection's outbox holds more than `outbox_limit`.
    pub(super) fn is_backlogged(&self, conn: ConnId) -> bool {
        self.conns
            .get(conn.0)
            .is_some_and(|c| c.out.len() > self.settings.outbox_limit)
    }

    /// QoS 1/2 messages that may be in flight to a connection: max_inflight_messages, and
    /// the client's Receive Maximum. [MQTT-3.3.4-9]
    /// A bridge's local session stays below its free ids (see `next_packet_id`).
    pub(super) fn window(&self, conn: ConnId) -> usize {
        let (receive_maximum, listener) = self
            .conns
            .get(conn.0)
            .map_or((u16::MAX, 0), |c| (c.receive_maximum, c.listener));
        let window = self
            .settings
            .max_inflight_messages
            .min(usize::from(receive_maximum));
        if listener == BRIDGE_LISTENER {
            window.min(usize::from(BRIDGE_MAX_PACKET_ID) - 1)
        } else {
            window
        }
    }

    /// Whether `sid` may put another QoS 1/2 message in flight on `conn`: fewer than its
    /// `window`, and with max_inflight_bytes, fewer payload bytes in flight than that (the
    /// message that goes over it is still sent), as Mosquitto's `db__ready_for_flight`.
    pub(super) fn has_inflight_room(&self, sid: SessionId, conn: ConnId) -> bool {
        let inflight = &self.session(sid).inflight;
        let limit = self.settings.max_inflight_bytes;
        inflight.len() < self.window(conn)
            && (limit == 0
                || inflight
                    .iter()
                    .map(|i| i.message.payload().len())
                    .sum::<usize>()
                    < limit)
    }

    /// Queues a QoS 1/2 message for later, within max_queued_messages/bytes; what does
    /// not fit is dropped and counted, as Mosquitto does. A bridge's outbox has its own
    /// limits and may first give up the message it holds on the same topic
    /// (`bridge_latest_only`, backlog.rs).
    pub(super) fn enqueue(
        &mut self,
        sid: SessionId,
        message: Rc<Message>,
        qos: QoS,
        retain: bool,
        sub_ids: Box<[u32]>,
        now: Instant,
    ) {
        let (mut max_messages, mut max_bytes) = (
            self.settings.max_queued_messages,
            self.settings.max_queued_bytes,
        );
        let timed = self.is_timed_queue(sid);
        if timed {
            self.replace_latest(sid, message.topic());
        }
        let since = self.secs(now);
        let session = self
            .sessions
            .get_mut(sid.0)
            .expect("a SessionId held by the tree names a live session");
        let size = message.queued_size();
        let mut dropped_oldest = 0;
        if let Some(limits) = self
            .outboxes
            .get(&session.client_id)
            .and_then(|o| o.limits.as_ref())
        {
            (max_messages, max_bytes) = (limits.max_messages, limits.max_bytes);
            if limits.drop_oldest {
                // A bridge's outbox keeps the newest messages: the oldest make room.
                while !session.queue.is_empty()
                    && ((max_messages != 0 && session.queue.len() >= max_messages)
                        || (max_bytes != 0 && session.queued_bytes + size > max_bytes))
                {
                    if let Some(old) = session.queue.pop_front() {
                        session.queued_bytes -= old.message.queued_size();
                        self.stats.release(&old.message);
                        self.stats.publish_dropped += 1;
                        if let Some(d) = self.outbox_drops.get_mut(&session.client_id) {
                            d.count(DropCause::Full);
                        }
                        dropped_oldest += 1;
                        if session.persisted {
                            if let Some(j) = self.journal.as_mut() {
                                j.record(Record::Dequeue { sid: sid.0 });
                            }
                        }
                    }
                }
            }
        }
        for _ in 0..dropped_oldest {
            self.took_queued(sid, 0, false, now);
        }
        let started = self.started;
        let session = self
            .sessions
            .get_mut(sid.0)
            .expect("a SessionId held by the tree names a live session");
        if (max_messages != 0 && session.queue.len() >= max_messages)
            || (max_bytes != 0 && session.queued_bytes + size > max_bytes)
        {
            self.stats.publish_dropped += 1;
            if let Some(d) = self.outbox_drops.get_mut(&session.client_id) {
                d.count(DropCause::Full);
            }
            debug!(
                "Outgoing messages are being dropped for client {}.",
                session.client_id
            );
            // Online, it reached its limits: stalled (logged once, holds nobody back).
            self.note_limit_reached(sid);
            return;
        }
        session.queued_bytes += size;
        self.stats.hold(&message);
        if session.persisted {
            if let Some(j) = self.journal.as_mut() {
                let at = timed.then_some((started, since));
                j.enqueue(sid.0, &message, qos, retain, &sub_ids, at);
            }
        }
        let was_empty = session.queue.is_empty();
        session.queue.push_back(Queued {
            message,
            qos,
            retain,
            sub_ids,
            since,
        });
        if timed && was_empty {
            self.schedule_outbox(sid, now);
        }
    }

    #[allow(clippy::too_many_arguments)] // One delivery's parts.
    pub(super) fn send_inflight(
        &mut self,
        sid: SessionId,
        conn: ConnId,
        message: Rc<Message>,
        qos: QoS,
        retain: bool,
        sub_ids: Box<[u32]>,
        from_queue: Option<(usize, i32)>,
        now: Instant,
    ) {
        // `Some`: the message comes from the session's queue, at that index, where it
        // waited since then.
        let since = from_queue.map_or_else(|| self.secs(now), |(_, since)| since);
        let from_queue = from_queue.map(|(index, _)| index);
        let session = self.session_mut(sid);
        let packet_id = next_packet_id(session);
        let out = Outgoing {
            topic: message.topic(),
            payload: message.payload(),
            props: message.props.as_deref(),
            qos,
            retain,
            dup: false,
            packet_id: Some(packet_id),
            sub_ids: &sub_ids,
        };
        // A message the client cannot take (too large for it, expired) is treated as
        // delivered [MQTT-3.1.2-25]: it does not occupy the window.
        if !self.write_publish(conn, &out, now) {
            if let Some(index) = from_queue {
                self.journal_unqueue(sid, index);
            }
            return;
        }
        self.stats.hold(&message);
        self.journal_session(sid, |j, sid| match from_queue {
            Some(0) => j.record(Record::Send {
                sid,
                packet_id: packet_id.get(),
            }),
            Some(index) => j.record(Record::Take {
                sid,
                index: index as u32,
                packet_id: packet_id.get(),
            }),
            None => j.inflight(sid, packet_id, &message, qos, retain, &sub_ids),
        });
        let session = self.session_mut(sid);
        session.inflight.push_back(Inflight {
            packet_id,
            message: message.clone(),
            qos,
            retain,
            sub_ids,
            state: match qos {
                QoS::ExactlyOnce => InflightState::Pubrec,
                _ => InflightState::Puback,
            },
            since,
        });
    }

    /// Moves queued messages into free inflight slots of an online session. Called after
    /// an acknowledgement and when the outbox drained: progress, which may release the
    /// publishers held on it.
    pub(super) fn drain_queue(&mut self, sid: SessionId, now: Instant) {
        let Some(conn) = self.session(sid).conn else {
            return;
        };
        self.move_queue(sid, conn, now);
        self.note_progress(conn, now);
    }

    fn move_queue(&mut self, sid: SessionId, conn: ConnId, now: Instant) {
        if self.conns.get(conn.0).is_some_and(|c| c.holds_queue) {
            return;
        }
        loop {
            if self.is_backlogged(conn) || !self.has_inflight_room(sid, conn) {
                return;
            }
            // The head, or for a bridge's paced outbox what may go now (backlog.rs).
            let Some(index) = self.next_queued(sid) else {
                return;
            };
            let session = self.session_mut(sid);
            let Some(q) = session.queue.remove(index) else {
                return;
            };
            session.queued_bytes -= q.message.queued_size();
            self.stats.release(&q.message);
            if q.message.is_expired(now) || !self.may_read_queued(sid, q.message.topic()) {
                // Expired, or no longer allowed by the ACL. Mosquitto numbered it when it
                // was queued: its packet id stays used.
                next_packet_id(self.session_mut(sid));
                self.journal_unqueue(sid, index);
                self.took_queued(sid, index, false, now);
                continue;
            }
            if self.is_aged(sid, &q, now) {
                // A bridge's outbox: older than bridge_outbox_max_age.
                self.journal_unqueue(sid, index);
                self.took_queued(sid, index, false, now);
                self.count_aged(sid, &q);
                continue;
            }
            self.took_queued(sid, index, true, now);
            let (message, qos, retain, sub_ids) = (q.message, q.qos, q.retain, q.sub_ids);
            let from_queue = Some((index, q.since));
            self.send_inflight(sid, conn, message, qos, retain, sub_ids, from_queue, now);
        }
    }

    /// On a resumed session: PUBLISH again with DUP for unacknowledged messages, PUBREL
    /// again for released ones, in their original order. [MQTT-4.4.0-1]
    pub(super) fn resend_inflight(&mut self, conn: ConnId, sid: SessionId, now: Instant) {
        let session = self.session(sid);
        type Resend = (Rc<Message>, QoS, bool, PacketId, InflightState, Box<[u32]>);
        let resend: Vec<Resend> = session
            .inflight
            .iter()
            .map(|i| {
                (
                    i.message.clone(),
                    i.qos,
                    i.retain,
                    i.packet_id,
                    i.state,
                    i.sub_ids.clone(),
                )
            })
            .collect();
        for (message, qos, retain, pid, state, sub_ids) in resend {
            match state {
                InflightState::Pubcomp => self.send(conn, &Packet::Pubrel(Ack::new(pid))),
                _ => {
                    let out = Outgoing {
                        topic: message.topic(),
                        payload: message.payload(),
                        props: message.props.as_deref(),
                        qos,
                        retain,
                        dup: true,
                        packet_id: Some(pid),
                        sub_ids: &sub_ids,
                    };
                    self.write_publish(conn, &out, now);
                }
            }
        }
    }

    pub(super) fn remove_inflight(&mut self, sid: SessionId, pos: usize) {
        if let Some(inflight) = self.session_mut(sid).inflight.remove(pos) {
            self.stats.release(&inflight.message);
            let packet_id = inflight.packet_id.get();
            self.journal_session(sid, |j, sid| j.record(Record::Acked { sid, packet_id }));
        }
    }
}
