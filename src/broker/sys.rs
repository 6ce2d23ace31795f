//! $SYS topics with Mosquitto's names, published as retained messages every
//! `sys_interval`; a value is published again only when it changed, as Mosquitto does, so
//! the static ones (version) go out once.
//!
//! The names are those of Mosquitto 2.0 (Debian's 2.0.11) and 2.1 (mosquitto(8) of 2.1.2):
//! - clients: `connected` (and the deprecated `active`), `disconnected` (and `inactive`),
//!   `total`, `maximum`, `expired`;
//! - traffic counters: `messages/received|sent` (packets of any type), `bytes/received|sent`,
//!   `publish/messages/received|sent|dropped`, `publish/bytes/received|sent` (payload bytes);
//! - gauges: `subscriptions/count`, `shared_subscriptions/count`, `retained messages/count`,
//!   `store/messages/count` (and the deprecated `messages/stored`), `store/messages/bytes`;
//! - load averages, see [`Load`];
//! - 2.1's per-packet counters `mqtt/{type}/received|sent` (only the directions a broker
//!   has: CONNECT is received, CONNACK sent, and so on), `mqtt/publish/dropped`,
//!   `packet/out/count|bytes` (packets and bytes written into outboxes that the sockets
//!   have not taken yet) and `connections/socket/count` (sockets accepted);
//! - culex's own, with persistence on: `persistence/state` (`ok` or `degraded`),
//!   `persistence/records/recovered|lost`, `persistence/bytes/damaged`,
//!   `persistence/files/set-aside` (what start-up read, lost and moved aside),
//!   `persistence/bytes/written`, `persistence/syncs` (the files' wear since start) and
//!   `persistence/acks/refused` (acknowledgements refused in ack mode, `durable.rs`).
//!
//! culex's own: `retained messages/refused`, `persistence/state|bytes/written`, and for
//! backpressure (pressure.rs) `clients/held` and `clients/stalled` (publishers held and
//! subscribers stalled now) with `clients/holds` and `clients/stalls` (how often either
//! began).
//!
//! Mosquitto 2.1.2 documents the `mqtt/...` counters but does not publish them yet
//! (eclipse-mosquitto/mosquitto#3726); culex publishes them under the documented names.
//! `heap/current|maximum` are left out: Mosquitto measures them with its own allocation
//! wrappers, and culex has no allocator hook (and no unsafe code to ask libc), as
//! Mosquitto built without memory tracking does.
//!
//! The store counts what culex holds for delivery: each entry of a session's queue or
//! inflight window and each retained message (the $SYS ones included), with its payload
//! bytes. A message queued for three offline sessions counts three times, where
//! Mosquitto's store counts its one shared copy once. The counts are kept up to date where
//! entries are added and removed (`Stats::hold`/`release`), never by scanning sessions.

use super::route::Publication;
use super::state::Timer;
use super::{Broker, Message};
use crate::protocol::QoS;
use std::collections::HashMap;
use std::time::Instant;

#[derive(Debug, Default)]
pub(super) struct SysState {
    last: HashMap<&'static str, String>,
    load: Load,
}

/// Packet types by the high nibble of a fixed header's first byte.
const CONNECT: usize = 1;
const CONNACK: usize = 2;
const PUBACK: usize = 4;
const PUBREC: usize = 5;
const PUBREL: usize = 6;
const PUBCOMP: usize = 7;
const SUBSCRIBE: usize = 8;
const SUBACK: usize = 9;
const UNSUBSCRIBE: usize = 10;
const UNSUBACK: usize = 11;
const PINGREQ: usize = 12;
const PINGRESP: usize = 13;
const DISCONNECT: usize = 14;
const AUTH: usize = 15;

/// `$SYS/broker/mqtt/{name}/received`, by packet type (PUBLISH is counted apart).
const RECEIVED: [(&str, usize); 10] = [
    ("$SYS/broker/mqtt/connect/received", CONNECT),
    ("$SYS/broker/mqtt/puback/received", PUBACK),
    ("$SYS/broker/mqtt/pubrec/received", PUBREC),
    ("$SYS/broker/mqtt/pubrel/received", PUBREL),
    ("$SYS/broker/mqtt/pubcomp/received", PUBCOMP),
    ("$SYS/broker/mqtt/subscribe/received", SUBSCRIBE),
    ("$SYS/broker/mqtt/unsubscribe/received", UNSUBSCRIBE),
    ("$SYS/broker/mqtt/pingreq/received", PINGREQ),
    ("$SYS/broker/mqtt/disconnect/received", DISCONNECT),
    ("$SYS/broker/mqtt/auth/received", AUTH),
];

/// `$SYS/broker/mqtt/{name}/sent`, by packet type (PUBLISH is counted apart).
const SENT: [(&str, usize); 10] = [
    ("$SYS/broker/mqtt/connack/sent", CONNACK),
    ("$SYS/broker/mqtt/puback/sent", PUBACK),
    ("$SYS/broker/mqtt/pubrec/sent", PUBREC),
    ("$SYS/broker/mqtt/pubrel/sent", PUBREL),
    ("$SYS/broker/mqtt/pubcomp/sent", PUBCOMP),
    ("$SYS/broker/mqtt/suback/sent", SUBACK),
    ("$SYS/broker/mqtt/unsuback/sent", UNSUBACK),
    ("$SYS/broker/mqtt/pingresp/sent", PINGRESP),
    ("$SYS/broker/mqtt/disconnect/sent", DISCONNECT),
    ("$SYS/broker/mqtt/auth/sent", AUTH),
];

/// The counters with load averages, as `$SYS/broker/load/{name}/{1min,5min,15min}`.
const LOADS: [[&str; 3]; 9] = [
    [
        "$SYS/broker/load/connections/1min",
        "$SYS/broker/load/connections/5min",
        "$SYS/broker/load/connections/15min",
    ],
    [
        "$SYS/broker/load/bytes/received/1min",
        "$SYS/broker/load/bytes/received/5min",
        "$SYS/broker/load/bytes/received/15min",
    ],
    [
        "$SYS/broker/load/bytes/sent/1min",
        "$SYS/broker/load/bytes/sent/5min",
        "$SYS/broker/load/bytes/sent/15min",
    ],
    [
        "$SYS/broker/load/messages/received/1min",
        "$SYS/broker/load/messages/received/5min",
        "$SYS/broker/load/messages/received/15min",
    ],
    [
        "$SYS/broker/load/messages/sent/1min",
        "$SYS/broker/load/messages/sent/5min",
        "$SYS/broker/load/messages/sent/15min",
    ],
    [
        "$SYS/broker/load/publish/dropped/1min",
        "$SYS/broker/load/publish/dropped/5min",
        "$SYS/broker/load/publish/dropped/15min",
    ],
    [
        "$SYS/broker/load/publish/received/1min",
        "$SYS/broker/load/publish/received/5min",
        "$SYS/broker/load/publish/received/15min",
    ],
    [
        "$SYS/broker/load/publish/sent/1min",
        "$SYS/broker/load/publish/sent/5min",
        "$SYS/broker/load/publish/sent/15min",
    ],
    [
        "$SYS/broker/load/sockets/1min",
        "$SYS/broker/load/sockets/5min",
        "$SYS/broker/load/sockets/15min",
    ],
];

/// Averaging periods of the load averages, in seconds: 1, 5 and 15 minutes.
const PERIODS: [f64; 3] = [60.0, 300.0, 900.0];

/// Load averages: Mosquitto's exponentially decaying moving averages of a counter's rate,
/// in events per minute (sys_tree.c, `calc_load`). At each update, `dt` seconds after the
/// previous one, for a counter that grew by `delta` and an averaging period `T` (60, 300 or
/// 900 s):
///
/// ```text
/// rate = delta * 60 / dt                   the last interval's rate, per minute
/// new  = rate + exp(-dt / T) * (old - rate)
///      = old * exp(-dt / T) + rate * (1 - exp(-dt / T))
/// ```
///
/// so a steady rate `r` read every second gives `r * (1 - exp(-t / T))` after `t`
/// seconds. `connections` follows CONNECT packets received, `sockets` sockets accepted,
/// the others the counters of the same name. All start at 0 and are printed as "%.2f",
/// like Mosquitto; one is published again when its printed value changed (Mosquitto: when
/// it moved by 0.01 since the previous update, so a slow drift may go unpublished there).
#[derive(Debug, Default)]
struct Load {
    /// When the counters were last read; `None` before the first $SYS publication.
    at: Option<Instant>,
    /// The counters then, in the order of [`LOADS`].
    counters: [u64; LOADS.len()],
    /// The averages, `[counter][period]`.
    values: [[f64; PERIODS.len()]; LOADS.len()],
}

impl Load {
    fn update(&mut self, counters: [u64; LOADS.len()], now: Instant) {
        if let Some(at) = self.at {
            let dt = now.saturating_duration_since(at).as_secs_f64();
            if dt <= 0.0 {
                return;
            }
            for (i, values) in self.values.iter_mut().enumerate() {
                let delta = counters[i].saturating_sub(self.counters[i]) as f64;
                let rate = delta * 60.0 / dt;
                for (value, period) in values.iter_mut().zip(PERIODS) {
                    *value = rate + (-dt / period).exp() * (*value - rate);
                }
            }
        }
        self.at = Some(now);
        self.counters = counters;
    }
}

/// How many packets of an outbox the socket finished when it took its first `n` bytes.
/// The outbox holds whole packets, except that its first `head_left` bytes may be the rest
/// of a packet the socket took only part of before; `head_left` is updated for the next
/// call. Walks the fixed headers of the packets written, no more.
pub(super) fn packets_written(out: &[u8], n: usize, head_left: &mut usize) -> u64 {
    let n = n.min(out.len());
    let mut done = 0;
    let mut pos = 0;
    if *head_left > 0 {
        if n < *head_left {
            *head_left -= n;
            return 0;
        }
        pos = *head_left;
        done = 1;
    }
    while pos < n {
        let len = packet_len(&out[pos..]);
        if pos + len > n {
            *head_left = pos + len - n;
            return done;
        }
        pos += len;
        done += 1;
    }
    *head_left = 0;
    done
}

/// The length of the packet at the start of `bytes` (fixed header included), from its
/// Remaining Length; at most `bytes.len()`.
fn packet_len(bytes: &[u8]) -> usize {
    let mut remaining = 0usize;
    let mut header = 1;
    for (i, byte) in bytes.iter().skip(1).take(4).enumerate() {
        remaining |= usize::from(byte & 0x7f) << (7 * i);
        header += 1;
        if byte & 0x80 == 0 {
            break;
        }
    }
    (header + remaining).clamp(1, bytes.len().max(1))
}

impl Broker {
    /// Every `$SYS` topic's current value but the load averages (which advance only as
    /// they are published): what `sys_interval` publishes and an http_api listener's
    /// `/api/v1/systree` reads.
    pub fn sys_values(&self, now: Instant) -> Vec<(&'static str, String)> {
        let uptime = now.duration_since(self.started).as_secs();
        let sessions = self.sessions.len();
        let s = &self.stats;
        let disconnected = sessions - s.clients_connected.min(sessions);
        let shared = self.shared.len();
        let (held, stalled) = self.pressure_gauges();
        let mut values: Vec<(&'static str, String)> = vec![
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
            ("$SYS/broker/clients/disconnected", disconnected.to_string()),
            ("$SYS/broker/clients/inactive", disconnected.to_string()),
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
            (
                "$SYS/broker/publish/bytes/received",
                s.publish_bytes_received.to_string(),
            ),
            (
                "$SYS/broker/publish/bytes/sent",
                s.publish_bytes_sent.to_string(),
            ),
            ("$SYS/broker/bytes/received", s.bytes_received.to_string()),
            ("$SYS/broker/bytes/sent", s.bytes_sent.to_string()),
            (
                "$SYS/broker/subscriptions/count",
                self.subscription_count().to_string(),
            ),
            ("$SYS/broker/shared_subscriptions/count", shared.to_string()),
            (
                "$SYS/broker/retained messages/count",
                self.retained.len().to_string(),
            ),
            (
                "$SYS/broker/store/messages/count",
                s.stored_messages.to_string(),
            ),
            ("$SYS/broker/messages/stored", s.stored_messages.to_string()),
            (
                "$SYS/broker/store/messages/bytes",
                s.stored_bytes.to_string(),
            ),
            (
                "$SYS/broker/mqtt/publish/received",
                s.publish_received.to_string(),
            ),
            ("$SYS/broker/mqtt/publish/sent", s.publish_sent.to_string()),
            (
                "$SYS/broker/mqtt/publish/dropped",
                s.publish_dropped.to_string(),
            ),
            // culex's own: retained messages kept out by max_retained_messages/bytes.
            (
                "$SYS/broker/retained messages/refused",
                s.retained_refused.to_string(),
            ),
            // culex's own (backpressure, pressure.rs): publishers not being read and
            // subscribers stalled now, and how often either began.
            ("$SYS/broker/clients/held", held.to_string()),
            ("$SYS/broker/clients/holds", s.holds.to_string()),
            ("$SYS/broker/clients/stalled", stalled.to_string()),
            ("$SYS/broker/clients/stalls", s.stalls.to_string()),
            ("$SYS/broker/packet/out/count", s.out_packets.to_string()),
            ("$SYS/broker/packet/out/bytes", s.out_bytes.to_string()),
            (
                "$SYS/broker/connections/socket/count",
                s.sockets.to_string(),
            ),
        ];
        if let Some(p) = &self.persistence_status {
            // culex's own: "degraded" after a write error until a snapshot succeeds;
            // what start-up recovered and lost; the files' wear.
            let state = if p.healthy { "ok" } else { "degraded" };
            values.extend([
                ("$SYS/broker/persistence/state", state.to_string()),
                (
                    "$SYS/broker/persistence/records/recovered",
                    p.records_recovered.to_string(),
                ),
                (
                    "$SYS/broker/persistence/records/lost",
                    p.records_lost.to_string(),
                ),
                (
                    "$SYS/broker/persistence/bytes/damaged",
                    p.damaged_bytes.to_string(),
                ),
                (
                    "$SYS/broker/persistence/files/set-aside",
                    p.files_set_aside.to_string(),
                ),
                (
                    "$SYS/broker/persistence/bytes/written",
                    p.bytes_written.to_string(),
                ),
                ("$SYS/broker/persistence/syncs", p.syncs.to_string()),
                (
                    "$SYS/broker/persistence/acks/refused",
                    self.holds.refused.to_string(),
                ),
            ]);
        }
        for (topic, kind) in RECEIVED {
            values.push((topic, s.packets_received[kind].to_string()));
        }
        for (topic, kind) in SENT {
            values.push((topic, s.packets_sent[kind].to_string()));
        }
        values
    }

    /// A table: every `$SYS` topic and its value, one entry each, published every
    /// `sys_interval`.
    pub(super) fn publish_sys(&mut self, now: Instant) {
        let mut values = self.sys_values(now);
        let s = &self.stats;

        // The order of LOADS.
        let counters = [
            s.packets_received[CONNECT],
            s.bytes_received,
            s.bytes_sent,
            s.messages_received,
            s.messages_sent,
            s.publish_dropped,
            s.publish_received,
            s.publish_sent,
            s.sockets,
        ];
        self.sys.load.update(counters, now);
        for (topics, averages) in LOADS.iter().zip(&self.sys.load.values) {
            for (topic, value) in topics.iter().zip(averages) {
                values.push((topic, format!("{value:.2}")));
            }
        }

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

    /// The value last published on a $SYS topic.
    #[cfg(test)]
    pub(super) fn sys_value(&self, topic: &str) -> Option<&str> {
        self.sys.last.get(topic).map(String::as_str)
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

/// The broker's figures for the Prometheus text of an http_api listener (`net`), read
/// where $SYS reads them.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub uptime_seconds: u64,
    pub clients_connected: u64,
    pub clients_maximum: u64,
    pub clients_expired: u64,
    /// Sessions, connected or not.
    pub sessions: u64,
    pub subscriptions: u64,
    pub shared_subscriptions: u64,
    pub retained_messages: u64,
    pub retained_refused: u64,
    /// Control packets of any type.
    pub packets_received: u64,
    pub packets_sent: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub publish_received: u64,
    pub publish_sent: u64,
    pub publish_dropped: u64,
    pub publish_bytes_received: u64,
    pub publish_bytes_sent: u64,
    pub stored_messages: u64,
    pub stored_bytes: u64,
    pub sockets_accepted: u64,
    pub clients_held: u64,
    pub clients_stalled: u64,
    /// With persistence on: what the store last reported, and acknowledgements refused.
    pub persistence: Option<(crate::persist::Status, u64)>,
}

impl Broker {
    pub fn metrics(&self, now: Instant) -> Metrics {
        let s = &self.stats;
        let (held, stalled) = self.pressure_gauges();
        Metrics {
            uptime_seconds: now.duration_since(self.started).as_secs(),
            clients_connected: s.clients_connected as u64,
            clients_maximum: s.clients_maximum as u64,
            clients_expired: s.clients_expired,
            sessions: self.sessions.len() as u64,
            subscriptions: self.subscription_count() as u64,
            shared_subscriptions: self.shared.len() as u64,
            retained_messages: self.retained.len() as u64,
            retained_refused: s.retained_refused,
            packets_received: s.messages_received,
            packets_sent: s.messages_sent,
            bytes_received: s.bytes_received,
            bytes_sent: s.bytes_sent,
            publish_received: s.publish_received,
            publish_sent: s.publish_sent,
            publish_dropped: s.publish_dropped,
            publish_bytes_received: s.publish_bytes_received,
            publish_bytes_sent: s.publish_bytes_sent,
            stored_messages: s.stored_messages,
            stored_bytes: s.stored_bytes,
            sockets_accepted: s.sockets,
            clients_held: held as u64,
            clients_stalled: stalled as u64,
            persistence: self
                .persistence_status
                .clone()
                .map(|p| (p, self.holds.refused)),
        }
    }
}
