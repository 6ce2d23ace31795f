//! A bridge's health as numbers an operator can alert on: what waits for the remote and
//! for how long, what was dropped and why, how often the link was made again, since when
//! it is up, why it last failed, and where it connects. One [`Health`] snapshot feeds both
//! `$SYS/broker/connection/<name>/...` (published here, at `sys_interval` and at once when
//! the link goes up or down) and the Prometheus text of `net`'s http_api listeners.
//!
//! Mosquitto publishes only `$SYS/broker/connection/<remote client id>/state` (the
//! notification topic); the values below are culex's own, next to it under the
//! connection's name.

use super::{Link, State};
use crate::broker::{Backlog, Broker, Drops};
use crate::protocol::QoS;
use std::time::Instant;

/// One bridge's figures at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub name: String,
    pub is_connected: bool,
    /// The link's state in a word: `connected`, `connecting`, `waiting`, `idle`,
    /// `stopped`.
    pub state: &'static str,
    /// What waits in the bridge's local session (queued and in flight).
    pub backlog: Backlog,
    pub drops: Drops,
    /// Connections made (CONNACK accepted) since the link was configured.
    pub connects: u64,
    /// Connections made after the first: how often the link had to be made again.
    pub reconnects: u64,
    /// Unix seconds when the current connection came up; `None` while down.
    pub connected_since: Option<u64>,
    /// Why the last attempt failed or the link last went down (refused with its reason
    /// code, TLS, resolution, timeout, the remote closing); kept after a reconnection.
    pub last_error: Option<String>,
    /// `host:port` of the current attempt or connection (the next one while waiting).
    pub address: String,
    pub messages_sent: u64,
    pub messages_received: u64,
}

impl Health {
    /// The `$SYS/broker/connection/<name>/` values: sub-topic and payload. The older
    /// `messages/queued|inflight` and `connects` stay for existing dashboards.
    pub fn sys_values(&self) -> Vec<(String, String)> {
        let mut values = vec![
            ("connected".into(), u8::from(self.is_connected).to_string()),
            ("messages/sent".into(), self.messages_sent.to_string()),
            (
                "messages/received".into(),
                self.messages_received.to_string(),
            ),
            ("connects".into(), self.connects.to_string()),
            ("reconnects".into(), self.reconnects.to_string()),
            ("backlog/messages".into(), self.backlog.messages.to_string()),
            ("backlog/bytes".into(), self.backlog.bytes.to_string()),
            (
                "backlog/oldest_age".into(),
                self.backlog.oldest_age.as_secs().to_string(),
            ),
            (
                "connected_since".into(),
                self.connected_since.unwrap_or(0).to_string(),
            ),
            (
                "last_error".into(),
                self.last_error.clone().unwrap_or_default(),
            ),
            ("address".into(), self.address.clone()),
        ];
        values.extend(
            self.drops
                .iter()
                .map(|(cause, n)| (format!("dropped/{}", cause.name()), n.to_string())),
        );
        values
    }
}

impl Link {
    /// The link's figures now; the backlog and drops are read from the broker.
    pub fn health(&self, broker: &Broker, now: Instant) -> Health {
        let address = match self.config.addresses.len() {
            0 => String::new(),
            n => {
                let a = &self.config.addresses[self.address % n];
                if a.host.contains(':') {
                    format!("[{}]:{}", a.host, a.port)
                } else {
                    format!("{}:{}", a.host, a.port)
                }
            }
        };
        let (created, unix) = self.created;
        Health {
            name: self.config.name.clone(),
            is_connected: self.state == State::Up,
            state: match self.state {
                State::Up => "connected",
                State::Connecting(_) | State::AwaitingConnack(_) => "connecting",
                State::Waiting(_) => "waiting",
                State::Idle => "idle",
                State::Stopped => "stopped",
            },
            backlog: broker.session_waiting(&self.local_clientid, now),
            drops: broker.drops(&self.local_clientid),
            connects: self.stats.connects,
            reconnects: self.stats.connects.saturating_sub(1),
            connected_since: self
                .up_since
                .map(|t| unix + t.saturating_duration_since(created).as_secs()),
            last_error: self.last_error.clone(),
            address,
            messages_sent: self.stats.messages_sent,
            messages_received: self.stats.messages_received,
        }
    }

    /// `$SYS/broker/connection/<name>/...`, retained, each published when it changed.
    pub(super) fn publish_sys(&mut self, broker: &mut Broker, now: Instant) {
        let health = self.health(broker, now);
        let mut values = health.sys_values();
        // The backlog's split, as before (`backlog/messages` is their sum).
        let (queued, inflight) = broker
            .session_backlog(&self.local_clientid)
            .unwrap_or((0, 0));
        values.push(("messages/queued".into(), queued.to_string()));
        values.push(("messages/inflight".into(), inflight.to_string()));
        if self.last_sys.len() != values.len() {
            self.last_sys = vec![String::new(); values.len()];
        }
        for ((name, value), last) in values.into_iter().zip(self.last_sys.iter_mut()) {
            // An empty retained payload would delete the topic: an empty value (no error
            // yet) is published only to replace an earlier one, which it then clears.
            if *last != value {
                let topic = format!("$SYS/broker/connection/{}/{name}", self.config.name);
                broker.publish_retained(&topic, value.as_bytes(), QoS::AtMostOnce, now);
                *last = value;
            }
        }
    }
}
