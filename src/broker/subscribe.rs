//! SUBSCRIBE and UNSUBSCRIBE: filters into the subscription tree or a shared group and
//! into the session's own list (journaled), and the retained messages a new
//! subscription is sent.

use super::access::is_too_deep;
use super::lifecycle::CloseReason;
use super::route::Publication;
use super::state::{ConnId, SessionId, Sub};
use super::{journal, Broker};
use crate::auth::Access;
use crate::persist::record::Record;
use crate::protocol::{
    Packet, ProtocolVersion, QoS, ReasonCode, Suback, Subscribe, Unsuback, Unsubscribe,
};
use crate::topic::parse_shared;
use log::debug;
use std::time::Instant;

impl Broker {
    pub(super) fn handle_subscribe(
        &mut self,
        conn: ConnId,
        sid: SessionId,
        subscribe: &Subscribe<'_>,
        now: Instant,
    ) {
        // At most one Subscription Identifier, for every filter of the packet. [MQTT-3.8.2.1.2]
        let id = subscribe
            .properties
            .subscription_identifiers
            .first()
            .copied()
            .unwrap_or(0);
        if subscribe
            .filters
            .iter()
            .any(|&(filter, _)| is_too_deep(filter))
        {
            // Mosquitto 2.0: "Invalid subscription string", the connection is closed,
            // an MQTT 5 client told Malformed Packet (0x81) as from Mosquitto
            // (02-subscribe-long-topic): any DISCONNECT reason code may be used.
            // [MQTT-3.14.2-1]
            let why = "topic filter of more than 201 levels";
            return self.close(
                conn,
                CloseReason::Violation(ReasonCode::MALFORMED_PACKET, why),
                now,
            );
        }
        let mut send_retained = Vec::with_capacity(subscribe.filters.len());
        let max_qos = self.conn_limits(conn).max_qos;
        let is_v5 = self.version(conn) == ProtocolVersion::V5;
        let is_v3_bridge = !is_v5 && self.conns.get(conn.0).is_some_and(|c| c.is_bridge);
        let codes = subscribe
            .filters
            .iter()
            .map(|&(filter, options)| {
                let filter = match self.mount_filter(conn, filter) {
                    Some(f) => f,
                    // A mount point that makes the filter invalid ("a" + "#").
                    None if is_v5 => return ReasonCode::TOPIC_FILTER_INVALID,
                    None => return ReasonCode::UNSPECIFIED_ERROR,
                };
                // Granted QoS is at most the listener's max_qos. [MQTT-3.8.4-6]
                let qos = options.qos.min(max_qos);
                if !self.may_subscribe(sid, &filter, false) {
                    // Dynamic security refused it: MQTT 5 0x87, 3.1.1 0x80 [MQTT-3.9.3];
                    // 3.1 has no failure code, and Mosquitto answers the QoS without
                    // subscribing.
                    debug!("Denied SUBSCRIBE from {} to '{}'.", self.session(sid).client_id, filter);
                    return match self.version(conn) {
                        ProtocolVersion::V5 => ReasonCode::NOT_AUTHORIZED,
                        ProtocolVersion::V311 => ReasonCode::UNSPECIFIED_ERROR,
                        _ => ReasonCode::granted(qos),
                    };
                }
                let limit = self.settings.max_subscriptions_per_client;
                let session = self.session(sid);
                if limit != 0
                    && session.subscriptions.len() >= limit
                    && !session.subscriptions.iter().any(|(f, _)| **f == *filter)
                {
                    // A new filter over max_subscriptions_per_client: refused alone, the
                    // session keeps what it has (3.1.1: the failure code 0x80).
                    debug!("Subscription limit reached for client {}.", session.client_id);
                    return if is_v5 {
                        ReasonCode::QUOTA_EXCEEDED
                    } else {
                        ReasonCode::UNSPECIFIED_ERROR
                    };
                }
                let sub = Sub {
                    qos,
                    no_local: options.no_local || is_v3_bridge,
                    retain_as_published: options.retain_as_published || is_v3_bridge,
                    id,
                };
                let existed = self.add_subscription(sid, &filter, sub);
                log::info!(target: "subscribe", "{} {} {}", self.session(sid).client_id, qos as u8, filter);
                // Retain Handling: 0 always, 1 only for a new subscription, 2 never.
                // [MQTT-3.3.1-9] [MQTT-3.3.1-10] (MQTT 5); 3.1.1 always [MQTT-3.8.4-3].
                if options.retain_handling == 0 || (options.retain_handling == 1 && !existed) {
                    send_retained.push((filter, qos));
                }
                ReasonCode::granted(qos)
            })
            .collect();
        // [MQTT-3.8.4-1] SUBACK with the same packet id, one code per filter [MQTT-3.8.4-5].
        self.send_report(
            conn,
            &Packet::Suback(Suback {
                packet_id: subscribe.packet_id,
                codes,
                properties: Default::default(),
            }),
        );
        for (filter, qos) in send_retained {
            self.send_retained(sid, &filter, qos, now);
        }
    }

    /// Adds or replaces a subscription; returns whether one existed for this filter.
    pub(super) fn add_subscription(&mut self, sid: SessionId, filter: &str, sub: Sub) -> bool {
        match parse_shared(filter) {
            Some((name, inner)) => self.shared.subscribe(name, inner, sid, sub),
            None => self.subscriptions.subscribe(filter, sid, sub),
        };
        self.journal_session(sid, |j, sid| {
            j.record(journal::subscribe_record(sid, filter, sub))
        });
        let session = self.session_mut(sid);
        match session
            .subscriptions
            .iter_mut()
            .find(|(f, _)| &**f == filter)
        {
            Some(existing) => {
                existing.1 = sub;
                true
            }
            None => {
                session.subscriptions.push((filter.into(), sub));
                false
            }
        }
    }

    /// Takes `sid`'s subscription to `filter` out of the subscription tree or its shared
    /// group; the session's own list is the caller's.
    pub(super) fn unsubscribe_in_trees(&mut self, filter: &str, sid: SessionId) {
        match parse_shared(filter) {
            Some((name, inner)) => self.shared.unsubscribe(name, inner, sid),
            None => self.subscriptions.unsubscribe(filter, sid),
        };
    }

    /// Removes a subscription; returns whether it existed.
    pub(super) fn remove_subscription(&mut self, sid: SessionId, filter: &str) -> bool {
        self.unsubscribe_in_trees(filter, sid);
        let subscriptions = &mut self.session_mut(sid).subscriptions;
        let before = subscriptions.len();
        subscriptions.retain(|(f, _)| &**f != filter);
        let existed = subscriptions.len() != before;
        if existed {
            self.journal_session(sid, |j, sid| j.record(Record::Unsubscribe { sid, filter }));
        }
        existed
    }

    fn send_retained(&mut self, sid: SessionId, filter: &str, granted: QoS, now: Instant) {
        if parse_shared(filter).is_some() {
            // MQTT 5.0 section 4.8.2: retained messages are not sent when a session
            // subscribes to a shared subscription (Mosquitto does the same for 3.1.1).
            return;
        }
        let mut found = Vec::new();
        self.retained
            .for_each_match(filter, |_, m| found.push(m.clone()));
        if self.has_acl() {
            let session = self.session(sid);
            let (client_id, username) = (session.client_id.clone(), session.username.clone());
            let listener = session.listener;
            let check_source = self.settings.check_retain_source;
            found.retain(|m| {
                let user = username.as_deref();
                self.is_allowed(&client_id, user, m.topic(), Access::Read, listener)
                    && !(check_source
                        && m.source.as_ref().is_some_and(|s| {
                            let user = s.username.as_deref();
                            !self.is_allowed(
                                &s.client_id,
                                user,
                                m.topic(),
                                Access::Write,
                                s.listener,
                            )
                        }))
            });
        }
        let id = self
            .session(sid)
            .subscriptions
            .iter()
            .find(|(f, _)| &**f == filter)
            .map_or(0, |(_, sub)| sub.id);
        let ids: &[u32] = if id == 0 { &[] } else { &[id] };
        for message in found {
            let qos = if self.settings.upgrade_outgoing_qos {
                granted
            } else {
                message.qos.min(granted)
            };
            let mut publication = Publication::of(&message);
            // [MQTT-3.3.1-8]: RETAIN 1 on messages sent because of a new subscription.
            self.deliver(sid, &mut publication, qos, true, ids, now);
        }
    }

    pub(super) fn handle_unsubscribe(
        &mut self,
        conn: ConnId,
        sid: SessionId,
        unsubscribe: &Unsubscribe<'_>,
    ) {
        let mut unsuback = Unsuback::new(unsubscribe.packet_id);
        for filter in &unsubscribe.filters {
            let mounted = self.mount_filter(conn, filter);
            if mounted
                .as_ref()
                .is_some_and(|f| !self.may_subscribe(sid, f, true))
            {
                // Dynamic security refused it: the subscription stays (MQTT 5 is told).
                debug!(
                    "Denied UNSUBSCRIBE from {} to '{}'.",
                    self.session(sid).client_id,
                    filter
                );
                unsuback.codes.push(ReasonCode::NOT_AUTHORIZED);
                continue;
            }
            let existed = mounted.is_some_and(|filter| self.remove_subscription(sid, &filter));
            log::info!(target: "unsubscribe", "{} {}", self.session(sid).client_id, filter);
            // MQTT 5: one code per filter. [MQTT-3.11.3-1]
            unsuback.codes.push(if existed {
                ReasonCode::SUCCESS
            } else {
                ReasonCode::NO_SUBSCRIPTION_EXISTED
            });
        }
        // [MQTT-3.10.4-4], even if no filter matched [MQTT-3.10.4-5].
        self.send_report(conn, &Packet::Unsuback(unsuback));
    }
}
