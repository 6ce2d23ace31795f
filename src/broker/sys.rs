//! $SYS topics with Mosquitto's names, published as retained messages every
//! `sys_interval`; a value is published again only when it changed, as Mosquitto does.

use super::{Broker, Message, Publication, Timer};
use crate::protocol::QoS;
use std::collections::HashMap;
use std::time::Instant;

#[derive(Debug, Default)]
pub(super) struct SysState {
    last: HashMap<&'static str, String>,
}

impl Broker {
    pub(super) fn publish_sys(&mut self, now: Instant) {
        let uptime = now.duration_since(self.started).as_secs();
        let sessions = self.sessions.iter().flatten().count();
        let s = &self.stats;
        let values: [(&'static str, String); 17] = [
            (
                "$SYS/broker/version",
                format!("culex version {}", env!("CARGO_PKG_VERSION")),
            ),
            ("$SYS/broker/uptime", format!("{uptime} seconds")),
            (
                "$SYS/broker/clients/connected",
                s.clients_connected.to_string(),
            ),
            (
                "$SYS/broker/clients/active",
                s.clients_connected.to_string(),
            ),
            (
                "$SYS/broker/clients/disconnected",
                (sessions - s.clients_connected.min(sessions)).to_string(),
            ),
            ("$SYS/broker/clients/total", sessions.to_string()),
            ("$SYS/broker/clients/maximum", s.clients_maximum.to_string()),
            ("$SYS/broker/clients/expired", s.clients_expired.to_string()),
            (
                "$SYS/broker/messages/received",
                s.messages_received.to_string(),
            ),
            ("$SYS/broker/messages/sent", s.messages_sent.to_string()),
            (
                "$SYS/broker/publish/messages/received",
                s.publish_received.to_string(),
            ),
            (
                "$SYS/broker/publish/messages/sent",
                s.publish_sent.to_string(),
            ),
            (
                "$SYS/broker/publish/messages/dropped",
                s.publish_dropped.to_string(),
            ),
            ("$SYS/broker/bytes/received", s.bytes_received.to_string()),
            ("$SYS/broker/bytes/sent", s.bytes_sent.to_string()),
            (
                "$SYS/broker/subscriptions/count",
                self.subscription_count().to_string(),
            ),
            (
                "$SYS/broker/retained messages/count",
                self.retained.len().to_string(),
            ),
        ];
        for (topic, value) in values {
            if self.sys.last.get(topic) == Some(&value) {
                continue;
            }
            let message = Message::new(topic, value.as_bytes(), QoS::AtMostOnce, true);
            let mut publication = Publication::of(&message);
            self.set_retained(&mut publication);
            self.route(&mut publication, now);
            self.sys.last.insert(topic, value);
        }
        if !self.settings.sys_interval.is_zero() {
            self.timers
                .schedule(now + self.settings.sys_interval, Timer::Sys);
        }
    }
}

impl Broker {
    /// Publishes one log line for `log_dest topic` on `topic` (`$SYS/broker/log/N`, ...),
    /// not retained, at QoS 2 as Mosquitto does (subscribers get it at their granted
    /// QoS).
    pub fn publish_log(&mut self, topic: &str, line: &str, now: Instant) {
        let mut publication = Publication {
            topic,
            payload: line.as_bytes(),
            qos: QoS::ExactlyOnce,
            retain: false,
            stored: None,
            publisher: None,
        };
        self.route(&mut publication, now);
    }
}
