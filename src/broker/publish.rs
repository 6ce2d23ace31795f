//! An inbound PUBLISH: max_qos and retain_available, topic aliases, the mount point and
//! depth limit, the QoS 2 duplicate check, then ACL, size and payload format checks,
//! storing and routing, and the acknowledgement (held in strict persistence mode).

use super::access::is_too_deep;
use super::lifecycle::CloseReason;
use super::route::Publication;
use super::state::{ConnId, ConnState, SessionId};
use super::{Broker, Message, MessageProps};
use crate::auth::Access;
use crate::message::MessageSource;
use crate::persist::record::Record;
use crate::protocol::{PacketId, ProtocolVersion, Publish, QoS, ReasonCode};
use log::{debug, warn};
use std::rc::Rc;
use std::time::Instant;

impl Broker {
    pub(super) fn handle_publish(
        &mut self,
        id: ConnId,
        sid: SessionId,
        publish: &Publish<'_>,
        now: Instant,
    ) {
        self.stats.publish_received += 1;
        self.stats.publish_bytes_received += publish.payload.len() as u64;
        // Whether handling this PUBLISH writes records decides when it is acknowledged
        // in strict persistence mode.
        let mark = self.journal_mark();
        let is_v5 = self.version(id) == ProtocolVersion::V5;
        if publish.qos > self.conn_limits(id).max_qos {
            // [MQTT-3.2.2-11]: more than Maximum QoS is a protocol error (0x9B).
            let why = "QoS above max_qos";
            return self.close(
                id,
                CloseReason::Violation(ReasonCode::QOS_NOT_SUPPORTED, why),
                now,
            );
        }
        if publish.retain && !self.settings.retain_available {
            // [MQTT-3.2.2-14]
            let why = "retained message while retain_available is false";
            return self.close(
                id,
                CloseReason::Violation(ReasonCode::RETAIN_NOT_SUPPORTED, why),
                now,
            );
        }
        // MQTT 5 topic aliases: a name sets the alias, an empty name uses it.
        let aliased: Option<Box<str>>;
        let mut topic = publish.topic;
        if let Some(alias) = publish.properties.topic_alias {
            let maximum = self.conn_limits(id).max_topic_alias;
            if alias == 0 || alias > maximum {
                // [MQTT-3.3.2-9] [MQTT-3.3.2-10]
                let why = "topic alias out of range";
                return self.close(
                    id,
                    CloseReason::Violation(ReasonCode::TOPIC_ALIAS_INVALID, why),
                    now,
                );
            }
            let conn = self
                .conn_mut(id)
                .expect("a packet comes from a live connection");
            let slot = usize::from(alias - 1);
            if conn.topic_aliases.len() <= slot {
                conn.topic_aliases.resize(usize::from(maximum), None);
            }
            if publish.topic.is_empty() {
                aliased = conn.topic_aliases[slot].clone();
                let Some(name) = aliased.as_deref() else {
                    let why = "unknown topic alias";
                    return self.close(
                        id,
                        CloseReason::Violation(ReasonCode::PROTOCOL_ERROR, why),
                        now,
                    );
                };
                topic = name;
            } else {
                conn.topic_aliases[slot] = Some(publish.topic.into());
            }
        }
        let mounted = self.mount(id, topic);
        let topic: &str = &mounted;
        if is_too_deep(topic) {
            // Mosquitto 2.0: "disconnected due to protocol error"; an MQTT 5 client is
            // told Malformed Packet (0x81), as from Mosquitto (03-publish-long-topic).
            let why = "topic name of more than 201 levels";
            return self.close(
                id,
                CloseReason::Violation(ReasonCode::MALFORMED_PACKET, why),
                now,
            );
        }
        let is_duplicate_qos2 = match (publish.qos, publish.packet_id) {
            (QoS::ExactlyOnce, Some(pid)) => {
                let receive_maximum = usize::from(self.receive_maximum());
                let session = self.session_mut(sid);
                if session.awaiting_pubrel.contains(&pid) {
                    if is_v5 && !self.note_qos2_repeat(id, pid) {
                        // Mosquitto answers a second copy and refuses a third.
                        let why = "QoS 2 PUBLISH sent a third time before PUBREL";
                        let reason = ReasonCode::PROTOCOL_ERROR;
                        return self.close(id, CloseReason::Violation(reason, why), now);
                    }
                    true
                } else if is_v5 && session.awaiting_pubrel.len() >= receive_maximum {
                    // [MQTT-3.3.4-7]
                    let why = "more unreleased QoS 2 messages than Receive Maximum";
                    let reason = ReasonCode::RECEIVE_MAXIMUM_EXCEEDED;
                    return self.close(id, CloseReason::Violation(reason, why), now);
                } else {
                    session.awaiting_pubrel.push(pid);
                    let packet_id = pid.get();
                    self.journal_session(sid, |j, sid| {
                        j.record(Record::AwaitRelease { sid, packet_id })
                    });
                    false
                }
            }
            _ => false,
        };
        let refused = self.refuse_publish(sid, publish, topic);
        if refused.is_none() && self.is_control_topic(topic) {
            return self.publish_control(id, sid, publish, topic, is_duplicate_qos2, mark, now);
        }
        let Some(pid) = publish.packet_id.filter(|_| publish.qos != QoS::AtMostOnce) else {
            if refused.is_none() {
                self.accept_publish(sid, publish, topic, is_v5, now);
            }
            return;
        };
        let is_pubrec = publish.qos == QoS::ExactlyOnce;
        if is_pubrec && refused.is_none() && !is_duplicate_qos2 && !self.is_journal_strict() {
            // PUBREC first: the message is this server's once it is acknowledged, and a
            // client subscribed to its own topic reads PUBREC before the copy sent to it,
            // as from Mosquitto (which routes at PUBREL). In strict persistence mode the
            // acknowledgement waits for the records routing writes, so it comes after.
            let mut publication = self.publication(sid, publish, topic, is_v5, now);
            let reason = self.store_if_retained(&mut publication, is_v5);
            self.send_publish_ack(id, true, pid, reason, mark);
            self.end_qos2_on_error(sid, pid, reason);
            self.route(&mut publication, now);
            return;
        }
        let reason = match refused {
            Some(code) => code,
            None if is_duplicate_qos2 => ReasonCode::SUCCESS,
            None => self.accept_publish(sid, publish, topic, is_v5, now),
        };
        // Mosquitto answers QoS 2 with Success whether or not anyone subscribed: 0x10 goes
        // in PUBACK only (PUBREC may carry it, and the publisher needs it for nothing).
        let reason = match reason {
            ReasonCode::NO_MATCHING_SUBSCRIBERS if is_pubrec => ReasonCode::SUCCESS,
            other => other,
        };
        self.send_publish_ack(id, is_pubrec, pid, reason, mark);
        if is_pubrec {
            self.end_qos2_on_error(sid, pid, reason);
        }
    }

    /// A command for dynamic security (`$CONTROL/...`), never routed (Mosquitto's
    /// control__process); a repeated QoS 2 copy is not run twice. The flow completes
    /// with Success, unless the command closed the publisher's own connection.
    #[allow(clippy::too_many_arguments)]
    fn publish_control(
        &mut self,
        id: ConnId,
        sid: SessionId,
        publish: &Publish<'_>,
        topic: &str,
        is_duplicate_qos2: bool,
        mark: Option<usize>,
        now: Instant,
    ) {
        if !is_duplicate_qos2 {
            self.handle_control(sid, topic, publish.payload, now);
        }
        let is_open = self
            .conns
            .get(id.0)
            .is_some_and(|c| matches!(c.state(), ConnState::Active(_)));
        let pid = publish.packet_id.filter(|_| publish.qos != QoS::AtMostOnce);
        if let Some(pid) = pid.filter(|_| is_open) {
            let is_pubrec = publish.qos == QoS::ExactlyOnce;
            self.send_publish_ack(id, is_pubrec, pid, ReasonCode::SUCCESS, mark);
        }
    }

    /// An error PUBREC ends the exchange: no PUBREL will come. [MQTT-4.3.3]
    fn end_qos2_on_error(&mut self, sid: SessionId, pid: PacketId, reason: ReasonCode) {
        if reason.is_error() {
            self.session_mut(sid).awaiting_pubrel.retain(|p| *p != pid);
            let packet_id = pid.get();
            self.journal_session(sid, |j, sid| j.record(Record::Released { sid, packet_id }));
        }
    }

    /// MQTT 5: a QoS 2 PUBLISH came again before its PUBREL. False if it had already come
    /// again once on this connection.
    fn note_qos2_repeat(&mut self, id: ConnId, pid: PacketId) -> bool {
        let Some(conn) = self.conn_mut(id) else {
            return true;
        };
        if conn.repeated_qos2.contains(&pid) {
            return false;
        }
        conn.repeated_qos2.push(pid);
        true
    }

    /// Whether a PUBLISH the connection may send, on its final (unaliased, mounted)
    /// `topic`, is refused by the ACL, message_size_limit or its payload format: the
    /// reason code of its acknowledgement if so (it is then dropped).
    fn refuse_publish(
        &mut self,
        sid: SessionId,
        publish: &Publish<'_>,
        topic: &str,
    ) -> Option<ReasonCode> {
        let session = self.session(sid);
        let is_denied = !self.is_allowed(
            &session.client_id,
            session.username.as_deref(),
            topic,
            Access::Write,
            session.listener,
        );
        if is_denied {
            // Mosquitto (3.1.1): dropped, but the QoS flow completes so the client does
            // not resend it forever; MQTT 5 is told why.
            debug!(
                "Denied PUBLISH from {} (q{}, r{}, '{}').",
                session.client_id,
                publish.qos as u8,
                u8::from(publish.retain),
                topic
            );
            Some(ReasonCode::NOT_AUTHORIZED)
        } else if publish.payload.len() > self.settings.message_size_limit {
            // Mosquitto drops it but still completes the QoS flow (0x83 for MQTT 5).
            self.stats.publish_dropped += 1;
            warn!(
                "Dropped PUBLISH to '{}' from {}: payload of {} bytes exceeds message_size_limit.",
                topic,
                self.session(sid).client_id,
                publish.payload.len()
            );
            Some(ReasonCode::IMPLEMENTATION_SPECIFIC_ERROR)
        } else if publish.properties.payload_format_indicator == Some(1)
            && std::str::from_utf8(publish.payload).is_err()
        {
            // [MQTT-3.3.2-4] allows the check; the answer is 0x99. [MQTT-3.3.2.3.2]
            Some(ReasonCode::PAYLOAD_FORMAT_INVALID)
        } else {
            None
        }
    }

    /// The publisher `sid` as its retained messages record it: made once and shared,
    /// made again when the session's username or listener changed.
    fn retain_source(&mut self, sid: SessionId) -> Rc<MessageSource> {
        let session = self.session_mut(sid);
        let is_current = session
            .retain_source
            .as_ref()
            .is_some_and(|s| s.username == session.username && s.listener == session.listener);
        if !is_current {
            session.retain_source = None;
        }
        let (client_id, username, listener) =
            (&session.client_id, &session.username, session.listener);
        session
            .retain_source
            .get_or_insert_with(|| {
                Rc::new(MessageSource {
                    client_id: client_id.clone(),
                    username: username.clone(),
                    listener,
                })
            })
            .clone()
    }

    /// The message of an accepted PUBLISH: its properties kept when it has some, and
    /// with `check_retain_source` its publisher when it is to be retained.
    fn publication<'a>(
        &mut self,
        sid: SessionId,
        publish: &'a Publish<'_>,
        topic: &'a str,
        is_v5: bool,
        now: Instant,
    ) -> Publication<'a> {
        let props = is_v5
            .then(|| MessageProps::from_properties(&publish.properties, now))
            .flatten();
        let source =
            (publish.retain && self.settings.check_retain_source).then(|| self.retain_source(sid));
        let stored = (props.is_some() || source.is_some()).then(|| {
            Message::with_source(
                topic,
                publish.payload,
                publish.qos,
                publish.retain,
                props,
                source,
            )
        });
        Publication {
            topic,
            payload: publish.payload,
            qos: publish.qos,
            retain: publish.retain,
            stored,
            publisher: Some(sid),
        }
    }

    /// Stores an accepted PUBLISH as retained if it asks to be, before it is routed.
    /// QUOTA_EXCEEDED when an MQTT 5 client is to be told the retained store is full (the
    /// message is still delivered), SUCCESS otherwise.
    fn store_if_retained(&mut self, publication: &mut Publication<'_>, is_v5: bool) -> ReasonCode {
        if publication.retain && !self.set_retained(publication) && is_v5 {
            ReasonCode::QUOTA_EXCEEDED
        } else {
            ReasonCode::SUCCESS
        }
    }

    /// Stores (if retained) and routes an accepted PUBLISH. Returns the reason code of
    /// its acknowledgement.
    fn accept_publish(
        &mut self,
        sid: SessionId,
        publish: &Publish<'_>,
        topic: &str,
        is_v5: bool,
        now: Instant,
    ) -> ReasonCode {
        let mut publication = self.publication(sid, publish, topic, is_v5, now);
        let retained = self.store_if_retained(&mut publication, is_v5);
        match self.route(&mut publication, now) {
            _ if retained.is_error() => retained,
            0 => ReasonCode::NO_MATCHING_SUBSCRIBERS,
            _ => ReasonCode::SUCCESS,
        }
    }
}
