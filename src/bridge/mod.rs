//! Bridges: an outbound MQTT client connection to another broker per `connection` block,
//! relaying messages both ways with Mosquitto's topic mapping.
//!
//! A bridge is two MQTT client connections joined back to back:
//!
//! ```text
//!   local Broker  <-- virtual connection (MQTT 5) -->  Link  <-- socket -->  remote broker
//!   (bridge's session: subscribed to the           (maps topics,        (3.1, 3.1.1 or 5.0,
//!    `out`/`both` topics, No Local)                 relays QoS flows)    subscribed to `in`)
//! ```
//!
//! The local side is an ordinary session of the [`Broker`], opened with
//! [`Broker::handle_open`] under [`BRIDGE_LISTENER`] (no password, no ACL: Mosquitto does
//! not check its bridges either) only while the remote link is up. While the cloud is
//! unreachable the session is offline, so the broker queues its QoS 1/2 messages (and
//! QoS 0 with `queue_qos0_messages`) within `max_queued_messages`/`max_queued_bytes`,
//! exactly as for any persistent client; when the link returns, the broker resends its
//! inflight messages and drains the queue in order.
//!
//! QoS flows are relayed packet for packet and keep their packet identifiers: a local
//! PUBLISH id 7 goes to the remote as id 7, and the remote's PUBACK 7 goes back to the
//! local session as PUBACK 7. So a local message is acknowledged to the local session
//! (and leaves its store) only once the remote acknowledged it: nothing acknowledged is
//! lost, and no second store of messages exists in the bridge. The identifier spaces are
//! disjoint per direction in MQTT ([MQTT-2.2.1-4]), so the one-to-one mapping is sound.
//! The SUBSCRIBE/UNSUBSCRIBE sent to the remote take their identifiers from the local
//! session's counter too (one per topic line, as Mosquitto sends them), so the bridge,
//! like Mosquitto's single bridge client, never has two packets with one identifier in
//! flight [MQTT-2.2.1-3].
//!
//! This module owns no socket, reads no clock and no file: `net` resolves, connects,
//! reads and writes, calls the `handle_*` methods of [`Link`] with `now`, and hands in the
//! host name and the backoff's seed ([`HostFacts`]).

use crate::broker::{Broker, ConnId, Peer, BRIDGE_LISTENER, BRIDGE_MAX_PACKET_ID};
use crate::config::{self, BridgeProtocol, Direction, RestartTimeout, StartType};
use crate::protocol::{
    frame, Ack, Connack, Connect, Disconnect, Packet, PacketId, Properties, Props, ProtocolVersion,
    Publish, QoS, ReasonCode, Subscribe, SubscriptionOptions, Unsubscribe, Will,
};
mod health;

pub use health::Health;
use log::{debug, info, warn};
use std::borrow::Cow;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often a lazy bridge looks at its backlog, and the least interval of its $SYS
/// values.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// `round_robin false`: how often the primary address is tried while the link is up on
/// another (Mosquitto's 5 s).
pub const PRIMARY_RETRY: Duration = Duration::from_secs(5);
/// How long a TCP connect, TLS handshake and CONNACK may take together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes waiting for the remote socket above which the local session's output is left
/// in the broker (whose outbox limits then apply) instead of being moved here.
pub const REMOTE_OUT_HIGH: usize = 256 * 1024;
/// Packet identifier of the SUBSCRIBE the bridge hands its local session (the
/// client-to-broker direction of that session, where no other packet of ours has one).
const LOCAL_SUBSCRIBE_ID: u16 = 1;
/// Packet identifiers of the state notifications "1" (up) and "0" (a clean stop), QoS 1
/// as Mosquitto sends them: above [`BRIDGE_MAX_PACKET_ID`], so the local session, whose
/// ids go to the remote unchanged, never uses them, and a PUBACK with one of them is the
/// notification's.
const NOTIFY_UP_ID: u16 = 0xfffd;
const NOTIFY_DOWN_ID: u16 = 0xfffc;
const _: () = assert!(NOTIFY_DOWN_ID > BRIDGE_MAX_PACKET_ID);

/// One `topic` line, resolved into the filters subscribed on each side and the prefixes
/// swapped on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMap {
    pub direction: Direction,
    pub qos: QoS,
    /// Subscribed locally (`out`, `both`): `local_prefix` + pattern.
    pub local_filter: String,
    /// Subscribed on the remote (`in`, `both`): `remote_prefix` + pattern.
    pub remote_filter: String,
    pub local_prefix: String,
    pub remote_prefix: String,
}

impl TopicMap {
    /// Mosquitto's rules: the pattern with each side's prefix in front; a `""` pattern
    /// makes the prefix itself the topic on that side.
    pub fn new(t: &config::BridgeTopic) -> TopicMap {
        let local_prefix = t.local_prefix.clone().unwrap_or_default();
        let remote_prefix = t.remote_prefix.clone().unwrap_or_default();
        let pattern = t.pattern.as_deref().unwrap_or("");
        TopicMap {
            direction: t.direction,
            qos: QoS::from_u8(t.qos).unwrap_or(QoS::AtMostOnce),
            local_filter: format!("{local_prefix}{pattern}"),
            remote_filter: format!("{remote_prefix}{pattern}"),
            local_prefix,
            remote_prefix,
        }
    }

    fn is_out(&self) -> bool {
        matches!(self.direction, Direction::Out | Direction::Both)
    }

    fn is_in(&self) -> bool {
        matches!(self.direction, Direction::In | Direction::Both)
    }
}

/// The remote topic of a local message: the first `out`/`both` line whose local filter
/// matches has its local prefix taken off and its remote prefix put on (Mosquitto's
/// `send__publish`). A topic no line matches is sent unchanged.
///
/// ```
/// use culex::bridge::{map_out, TopicMap};
/// use culex::config::{BridgeTopic, Direction};
/// let line = BridgeTopic {
///     pattern: Some("sensors/#".into()), direction: Direction::Out, qos: 1,
///     local_prefix: Some("gw/".into()), remote_prefix: Some("site7/".into()),
/// };
/// let maps = [TopicMap::new(&line)];
/// assert_eq!(map_out(&maps, "gw/sensors/t1"), "site7/sensors/t1");
/// ```
pub fn map_out<'t>(maps: &[TopicMap], topic: &'t str) -> Cow<'t, str> {
    for m in maps.iter().filter(|m| m.is_out()) {
        if crate::topic::matches(&m.local_filter, topic) {
            let rest = topic.strip_prefix(m.local_prefix.as_str()).unwrap_or(topic);
            return Cow::Owned(format!("{}{rest}", m.remote_prefix));
        }
    }
    Cow::Borrowed(topic)
}

/// The local topic of a remote message: as [`map_out`], the other way.
pub fn map_in<'t>(maps: &[TopicMap], topic: &'t str) -> Cow<'t, str> {
    for m in maps.iter().filter(|m| m.is_in()) {
        if crate::topic::matches(&m.remote_filter, topic) {
            let rest = topic
                .strip_prefix(m.remote_prefix.as_str())
                .unwrap_or(topic);
            return Cow::Owned(format!("{}{rest}", m.local_prefix));
        }
    }
    Cow::Borrowed(topic)
}

/// What a bridge takes from the host, handed in by `net` so that this module reads no
/// file and no clock (tests pass fixed values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// This machine's host name, for the default remote client id (Mosquitto's
    /// `<hostname>.<connection name>`).
    pub hostname: String,
    /// Seed of the restart backoff's jitter (not security): it differs between
    /// processes and starts, so gateways restarted together do not retry in step.
    pub seed: u64,
    /// The wall clock (Unix seconds) at the `now` the link is made with: the base of
    /// `connected_since` in $SYS and /metrics.
    pub unix_time: u64,
}

/// Where the link is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not connected; the next attempt is due then.
    Waiting(Instant),
    /// `net` is resolving and connecting (TCP, TLS), until the deadline.
    Connecting(Instant),
    /// CONNECT sent; CONNACK due by the deadline.
    AwaitingConnack(Instant),
    /// Connected: messages flow.
    Up,
    /// `start_type once` after its one connection ended: never again.
    Stopped,
    /// `start_type lazy`: not connected until `threshold` messages wait for the remote.
    Idle,
}

/// For the log, in words (no instants: when the next attempt is due is logged where it
/// is planned).
impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Waiting(_) => "waiting for the next attempt",
            State::Connecting(_) => "connecting",
            State::AwaitingConnack(_) => "waiting for CONNACK",
            State::Up => "connected",
            State::Stopped => "stopped",
            State::Idle => "idle (start_type lazy)",
        })
    }
}

/// Why the local session is opened.
#[derive(Debug, Clone, Copy)]
enum LocalOpen {
    /// The remote link is up; the remote's Receive Maximum (less the notification's
    /// slot) bounds the session's messages in flight.
    LinkUp { receive_maximum: Option<u16> },
    /// Before the first connection, only so that the session and its subscriptions
    /// exist and keep messages for the remote.
    KeepMessages,
}

/// Why the link to the remote ends, from [`Link::handle_remote_data`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError {
    /// For the log.
    pub why: String,
    /// The remote broke the protocol (a malformed or unexpected packet): the connection
    /// is reset, not closed, as Mosquitto's is (it closes with the rest of the remote's
    /// data unread, which makes the kernel send RST), so the remote sees an error.
    pub is_protocol_error: bool,
}

impl RemoteError {
    fn protocol(why: String) -> RemoteError {
        RemoteError {
            why,
            is_protocol_error: true,
        }
    }

    fn closed(why: String) -> RemoteError {
        RemoteError {
            why,
            is_protocol_error: false,
        }
    }
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.why)
    }
}

/// Counters published under `$SYS/broker/connection/<name>/`.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinkStats {
    pub messages_sent: u64,
    pub messages_received: u64,
    pub connects: u64,
}

/// One bridge's MQTT state on both sides.
pub struct Link {
    config: config::Bridge,
    pub maps: Vec<TopicMap>,
    pub remote_clientid: String,
    pub local_clientid: String,
    notification_topic: String,
    version: ProtocolVersion,
    /// The virtual connection of the local session (a slot `net` reserved).
    local: ConnId,
    state: State,
    is_local_open: bool,
    /// Index into the configured addresses of the current or next attempt.
    address: usize,
    /// The current backoff (restart_timeout BASE CAP), seconds.
    sleep: u32,
    rng: u64,
    up_since: Option<Instant>,
    remote_partial: Vec<u8>,
    /// Bytes for the remote socket; `net` writes them and calls [`Link::consume_remote`].
    remote_out: Vec<u8>,
    last_sent: Instant,
    ping_sent: Option<Instant>,
    /// The remote's limits (MQTT 5 CONNACK) and ours.
    max_packet_size: u32,
    /// The keep alive in use: `keepalive_interval`, or an MQTT 5 Server Keep Alive.
    /// [MQTT-3.2.2-22]
    keep_alive: u16,
    /// MQTT 5 Retain Available 0 from the remote: retain flags are cleared toward it.
    /// [MQTT-3.2.2-14]
    is_retain_available: bool,
    /// MQTT 5 Maximum QoS from the remote: messages go to it at most at this QoS
    /// [MQTT-3.2.2-11] (AWS IoT Core says 1).
    remote_max_qos: QoS,
    /// Local QoS 2 messages sent to the remote at a lower QoS: the remote's PUBACK
    /// becomes the local PUBREC, and the local PUBREL is answered here.
    downgraded: Vec<u16>,
    /// The "1" notification is in flight: the "0" of a clean stop then goes at QoS 0
    /// (after it on the same connection) so as not to exceed the remote's Receive Maximum.
    is_notify_up_unacked: bool,
    scratch: Vec<u8>,
    pub stats: LinkStats,
    /// When a message last crossed (lazy bridges stop after `idle_timeout` without).
    last_activity: Instant,
    /// The link is being ended because it was idle: back to `Idle`, not to a retry.
    is_stopping_idle: bool,
    /// The next backlog check of a lazy bridge, and the next $SYS update.
    next_check: Instant,
    /// `sys_interval`; zero: no $SYS values.
    sys_interval: Duration,
    next_sys: Instant,
    /// The $SYS values last published, to publish only changes.
    last_sys: Vec<String>,
    /// `round_robin false` on a secondary address: when to try the primary next.
    next_primary_retry: Option<Instant>,
    /// The last packet id used toward the remote while the local session did not exist
    /// (clean local session): its next session goes on from here, as Mosquitto's one
    /// bridge client does.
    last_packet_id: u16,
    /// SUBSCRIBEs sent to the remote and not yet acknowledged: packet id and topic line.
    pending_subscribes: Vec<(u16, usize)>,
    /// The link is being ended to go back to the primary: reconnect at once.
    is_falling_back: bool,
    /// `bridge_azure_sas_key`: when the link is made again with a fresh SAS token.
    sas_renew_at: Option<Instant>,
    /// Why the last attempt failed or the link last went down ($SYS `last_error`).
    last_error: Option<String>,
    /// When the link was made, and the wall clock then (Unix seconds).
    created: (Instant, u64),
}

impl Link {
    pub fn new(
        config: &config::Bridge,
        local: ConnId,
        sys_interval: Duration,
        host: &HostFacts,
        now: Instant,
    ) -> Link {
        let remote_clientid = config
            .remote_clientid
            .clone()
            .unwrap_or_else(|| format!("{}.{}", host.hostname, config.name));
        let local_clientid = config
            .local_clientid
            .clone()
            .unwrap_or_else(|| format!("local.{remote_clientid}"));
        let notification_topic = config
            .notification_topic
            .clone()
            .unwrap_or_else(|| format!("$SYS/broker/connection/{remote_clientid}/state"));
        let base = match config.restart_timeout {
            RestartTimeout::Constant(n) => n,
            RestartTimeout::Backoff { base, .. } => base,
        };
        if config.start_type == StartType::Lazy
            && config.local_cleansession.unwrap_or(config.cleansession)
        {
            // With a clean local session nothing would wait while the bridge is stopped,
            // so `threshold` would never be reached and the bridge never start.
            warn!(
                "Bridge {}: start_type lazy keeps its local session (local_cleansession \
                 false): messages for the remote wait in it while the bridge is stopped.",
                config.name
            );
        }
        let seed = host.seed ^ u64::from(local.0);
        Link {
            maps: config.topics.iter().map(TopicMap::new).collect(),
            remote_clientid,
            local_clientid,
            notification_topic,
            version: match config.bridge_protocol_version {
                BridgeProtocol::Mqtt31 => ProtocolVersion::V31,
                BridgeProtocol::Mqtt311 => ProtocolVersion::V311,
                BridgeProtocol::Mqtt50 => ProtocolVersion::V5,
            },
            local,
            state: State::Waiting(now),
            is_local_open: false,
            address: 0,
            sleep: base,
            rng: seed | 1,
            up_since: None,
            remote_partial: Vec::new(),
            remote_out: Vec::new(),
            last_sent: now,
            ping_sent: None,
            max_packet_size: config.bridge_max_packet_size,
            keep_alive: config.keepalive_interval,
            is_retain_available: true,
            remote_max_qos: QoS::ExactlyOnce,
            downgraded: Vec::new(),
            is_notify_up_unacked: false,
            scratch: Vec::new(),
            stats: LinkStats::default(),
            last_activity: now,
            is_stopping_idle: false,
            next_check: now,
            sys_interval,
            next_sys: now,
            last_sys: Vec::new(),
            next_primary_retry: None,
            is_falling_back: false,
            sas_renew_at: None,
            last_packet_id: 0,
            pending_subscribes: Vec::new(),
            last_error: None,
            created: (now, host.unix_time),
            config: config.clone(),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The `connection` block it was made from.
    pub fn config(&self) -> &config::Bridge {
        &self.config
    }

    /// No more attempts (its `connection` block was removed). Call when it is down.
    pub fn stop(&mut self) {
        self.set_state(State::Stopped);
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn local_conn(&self) -> ConnId {
        self.local
    }

    pub fn is_local_open(&self) -> bool {
        self.is_local_open
    }

    /// The bytes to write to the remote socket.
    pub fn remote_output(&self) -> &[u8] {
        &self.remote_out
    }

    /// The socket took `n` bytes of [`Link::remote_output`].
    pub fn consume_remote(&mut self, n: usize) {
        if n >= self.remote_out.len() {
            self.remote_out = Vec::new();
        } else {
            self.remote_out.drain(..n);
        }
    }

    /// Whether the local session's output may be moved here now.
    pub fn has_room(&self) -> bool {
        self.remote_out.len() < REMOTE_OUT_HIGH
    }

    pub fn notification_topic(&self) -> &str {
        &self.notification_topic
    }

    /// Local start-up: the state notification says "not connected" until the link is up
    /// (Mosquitto publishes "0" locally before each attempt).
    ///
    /// With a persistent local session (`local_cleansession false`, the default), the
    /// session and its subscriptions are created now and left offline, so messages for
    /// the remote are kept from the start, even if the remote is not reachable yet.
    pub fn start(&mut self, broker: &mut Broker, now: Instant) {
        broker.track_drops(&self.local_clientid);
        self.notify_local(broker, false, now);
        if !self.is_local_clean() {
            self.open_local(broker, LocalOpen::KeepMessages, now);
            self.close_local(broker, now);
        }
        if self.config.start_type == StartType::Lazy {
            self.set_state(State::Idle);
        }
    }

    /// If an attempt is due: the address to connect to, and the link is `Connecting`.
    pub fn poll_connect(&mut self, now: Instant) -> Option<config::BridgeAddress> {
        match self.state {
            State::Waiting(at) if at <= now && !self.config.addresses.is_empty() => {
                let address =
                    self.config.addresses[self.address % self.config.addresses.len()].clone();
                info!(
                    "Connecting bridge {} ({}:{})",
                    self.config.name, address.host, address.port
                );
                self.set_state(State::Connecting(now + CONNECT_TIMEOUT));
                Some(address)
            }
            _ => None,
        }
    }

    /// `round_robin false` while up on a secondary address: the primary to try now, if a
    /// try is due (`net` tries a TCP connection to it off the loop and calls
    /// [`Link::handle_primary_reachable`] if it worked).
    pub fn poll_primary_retry(&mut self, now: Instant) -> Option<config::BridgeAddress> {
        match self.next_primary_retry {
            Some(at) if at <= now && self.state == State::Up => {
                self.next_primary_retry = Some(now + PRIMARY_RETRY);
                self.config.addresses.first().cloned()
            }
            _ => None,
        }
    }

    /// The primary address answers again: the link is ended (cleanly) and made again to
    /// the primary at once, as Mosquitto does with `round_robin false`. The caller writes
    /// the output, closes the socket and calls [`Link::handle_lost`].
    pub fn handle_primary_reachable(&mut self) -> bool {
        if self.state != State::Up || self.next_primary_retry.is_none() {
            return false;
        }
        info!(
            "Bridge {}: the primary address is reachable again; reconnecting to it.",
            self.config.name
        );
        self.send_disconnect();
        self.is_falling_back = true;
        true
    }

    /// The TCP connection is established (TLS may still be handshaking; rustls holds the
    /// CONNECT until it is done): CONNECT goes out.
    pub fn handle_connected(&mut self, broker: &Broker, now: Instant) {
        let token = self.sas_token(now);
        let will_payload = [b'0'];
        let will =
            (self.config.notifications && !self.config.notifications_local_only).then(|| Will {
                topic: &self.notification_topic,
                payload: &will_payload,
                qos: QoS::AtLeastOnce,
                retain: true,
                properties: Props::default(),
            });
        let mut properties = Properties::default();
        if self.version == ProtocolVersion::V5 {
            if self.config.bridge_session_expiry_interval != 0 {
                properties.session_expiry_interval =
                    Some(self.config.bridge_session_expiry_interval);
            }
            // Mosquitto always announces one: `bridge_receive_maximum`, or else
            // max_inflight_messages (20 by default), as for its own clients.
            properties.receive_maximum = Some(
                self.config
                    .bridge_receive_maximum
                    .unwrap_or_else(|| broker.receive_maximum()),
            );
            if self.config.bridge_max_packet_size != 0 {
                properties.maximum_packet_size = Some(self.config.bridge_max_packet_size);
            }
        }
        let connect = Connect {
            version: self.version,
            clean_session: self.config.cleansession,
            keep_alive: self.config.keepalive_interval,
            client_id: &self.remote_clientid,
            will,
            username: self.config.remote_username.as_deref(),
            password: token
                .as_deref()
                .or(self.config.remote_password.as_deref())
                .map(str::as_bytes),
            properties: properties.into(),
        };
        let start = self.remote_out.len();
        debug!("Bridge {} sending CONNECT", self.remote_clientid);
        Packet::Connect(Box::new(connect)).encode(self.version, &mut self.remote_out);
        if self.config.try_private && self.version != ProtocolVersion::V5 {
            // Mosquitto's bridge bit: protocol level | 0x80, so a Mosquitto remote treats
            // us as a bridge (no echo of our own messages, retain as published).
            // Fixed header (1 byte + Remaining Length), name (2 + 4 or 6 bytes), level.
            let header = 1 + frame::remaining_length_len(self.remote_out.len() - start - 2);
            let name_len = if self.version == ProtocolVersion::V31 {
                6
            } else {
                4
            };
            let level = start + header + 2 + name_len;
            if let Some(byte) = self.remote_out.get_mut(level) {
                *byte |= 0x80;
            }
        }
        self.last_sent = now;
        self.keep_alive = self.config.keepalive_interval;
        self.max_packet_size = self.config.bridge_max_packet_size;
        self.is_retain_available = true;
        self.set_state(State::AwaitingConnack(now + CONNECT_TIMEOUT));
    }

    /// `bridge_azure_sas_key`: a SAS token for this connection (its password), valid for
    /// `bridge_azure_sas_ttl` seconds from `now`; the link is made again with a fresh one
    /// when four fifths of that have passed.
    fn sas_token(&mut self, now: Instant) -> Option<String> {
        let key = self.config.azure_sas_key.as_deref()?;
        let (at, unix) = self.created;
        let unix_now = unix + now.saturating_duration_since(at).as_secs();
        let ttl = u64::from(self.config.azure_sas_ttl);
        let host = self
            .config
            .addresses
            .get(self.address % self.config.addresses.len().max(1))
            .map_or("", |a| a.host.as_str());
        let resource = format!("{host}/devices/{}", self.remote_clientid);
        self.sas_renew_at = Some(now + Duration::from_secs((ttl * 4 / 5).max(1)));
        sas::token(&resource, key, unix_now + ttl)
    }

    /// Bytes from the remote socket. `Err` (with why, for the log) ends the link; the
    /// caller then calls [`Link::handle_lost`].
    pub fn handle_remote_data(
        &mut self,
        broker: &mut Broker,
        data: &[u8],
        now: Instant,
    ) -> Result<(), RemoteError> {
        // As the loop does for clients: only an incomplete packet's bytes are kept, and
        // nothing larger than the local broker would accept is buffered.
        if self.remote_partial.is_empty() {
            let consumed = self.deframe(broker, data, now)?;
            self.remote_partial.extend_from_slice(&data[consumed..]);
            return Ok(());
        }
        let mut buf = std::mem::take(&mut self.remote_partial);
        buf.extend_from_slice(data);
        let consumed = self.deframe(broker, &buf, now)?;
        if consumed < buf.len() {
            buf.drain(..consumed);
            self.remote_partial = buf;
        }
        Ok(())
    }

    /// Handles every whole packet of `data`; returns how many bytes they took.
    fn deframe(
        &mut self,
        broker: &mut Broker,
        data: &[u8],
        now: Instant,
    ) -> Result<usize, RemoteError> {
        let max = broker.max_packet_size();
        let mut pos = 0;
        loop {
            match frame::check(&data[pos..], max) {
                Ok(Some(len)) => {
                    self.handle_remote_frame(broker, &data[pos..pos + len], now)?;
                    pos += len;
                }
                Ok(None) => return Ok(pos),
                Err(e) => {
                    return Err(RemoteError::protocol(format!(
                        "packet from the remote refused: {e}"
                    )))
                }
            }
        }
    }

    fn handle_remote_frame(
        &mut self,
        broker: &mut Broker,
        bytes: &[u8],
        now: Instant,
    ) -> Result<(), RemoteError> {
        self.ping_sent = None;
        let packet = Packet::decode(bytes, self.version)
            .map_err(|e| RemoteError::protocol(format!("malformed packet from the remote: {e}")))?;
        match (self.state, packet) {
            (State::AwaitingConnack(_), Packet::Connack(connack)) => {
                self.handle_connack(broker, connack, now)
            }
            (State::Up, Packet::Publish(publish)) => {
                self.stats.messages_received += 1;
                self.last_activity = now;
                let topic = map_in(&self.maps, publish.topic);
                let properties = relayed_properties(&publish.properties);
                let local = Publish {
                    topic: &topic,
                    properties: properties.into(),
                    ..publish
                };
                self.send_local(broker, &Packet::Publish(local), now);
                Ok(())
            }
            (State::Up, Packet::Puback(ack)) => {
                let id = ack.packet_id.get();
                if id == NOTIFY_UP_ID || id == NOTIFY_DOWN_ID {
                    self.is_notify_up_unacked &= id != NOTIFY_UP_ID;
                    if ack.reason.0 >= 0x80 {
                        warn!(
                            "Bridge {}: the remote refused the state notification on {} (0x{:02x}).",
                            self.config.name, self.notification_topic, ack.reason.0
                        );
                    }
                    return Ok(());
                }
                // A local QoS 2 message the remote took at QoS 1: received, for the
                // local session (which then releases it, answered in relay_out).
                if self.downgraded.contains(&id) {
                    self.send_local(broker, &Packet::Pubrec(Ack::new(ack.packet_id)), now);
                } else {
                    self.send_local(broker, &Packet::Puback(local_ack(&ack)), now);
                }
                Ok(())
            }
            (State::Up, Packet::Pubrec(ack)) => {
                self.send_local(broker, &Packet::Pubrec(local_ack(&ack)), now);
                Ok(())
            }
            (State::Up, Packet::Pubrel(ack)) => {
                self.send_local(broker, &Packet::Pubrel(local_ack(&ack)), now);
                Ok(())
            }
            (State::Up, Packet::Pubcomp(ack)) => {
                self.send_local(broker, &Packet::Pubcomp(local_ack(&ack)), now);
                Ok(())
            }
            (State::Up, Packet::Suback(suback)) => {
                let id = suback.packet_id.get();
                let Some(at) = self.pending_subscribes.iter().position(|(i, _)| *i == id) else {
                    return Ok(());
                };
                let (_, index) = self.pending_subscribes.swap_remove(at);
                if let Some(code) = suback.codes.iter().find(|c| c.0 >= 0x80) {
                    warn!(
                        "Bridge {}: the remote refused the subscription to {} (0x{:02x}).",
                        self.config.name, self.maps[index].remote_filter, code.0
                    );
                }
                Ok(())
            }
            (State::Up, Packet::Unsuback(_) | Packet::Pingresp) => Ok(()),
            // Not a packet a server sends, but Mosquitto's bridge answers it (its bridge
            // is a client of the broker's own packet handling), and a peer that sends
            // one expects the answer: harmless, so answered as Mosquitto does.
            (State::Up, Packet::Pingreq) => {
                Packet::Pingresp.encode(self.version, &mut self.remote_out);
                Ok(())
            }
            (_, Packet::Disconnect(d)) => Err(RemoteError::closed(format!(
                "the remote disconnected (reason 0x{:02x})",
                d.reason.0
            ))),
            (_, packet) => Err(RemoteError::protocol(format!(
                "unexpected {} from the remote",
                packet.name()
            ))),
        }
    }

    fn handle_connack(
        &mut self,
        broker: &mut Broker,
        connack: Connack<'_>,
        now: Instant,
    ) -> Result<(), RemoteError> {
        if connack.reason != ReasonCode::SUCCESS {
            return Err(RemoteError::closed(format!(
                "connection refused by the remote (0x{:02x})",
                connack.reason.0
            )));
        }
        info!(
            "Bridge {} connected to the remote as {}.",
            self.config.name, self.remote_clientid
        );
        self.stats.connects += 1;
        if let Some(max) = connack.properties.maximum_packet_size {
            self.max_packet_size = match self.max_packet_size {
                0 => max,
                ours => ours.min(max),
            };
        }
        let mut remote_receive_maximum = connack.properties.receive_maximum;
        if let Some(k) = connack.properties.server_keep_alive {
            self.keep_alive = k;
        }
        self.is_retain_available = connack.properties.retain_available != Some(0);
        self.remote_max_qos = connack
            .properties
            .maximum_qos
            .and_then(QoS::from_u8)
            .unwrap_or(QoS::ExactlyOnce);
        self.set_state(State::Up);
        self.up_since = Some(now);
        self.next_primary_retry = (!self.config.round_robin
            && !self
                .address
                .is_multiple_of(self.config.addresses.len().max(1)))
        .then(|| now + PRIMARY_RETRY);
        self.last_activity = now;

        let mut out = std::mem::take(&mut self.remote_out);
        if self.config.notifications && !self.config.notifications_local_only {
            // QoS 1, as Mosquitto: a monitor on the remote with a persistent session
            // gets the change even if it was offline. It takes one of the remote's
            // Receive Maximum slots, so the local session gets one fewer; with a Receive
            // Maximum of 1 or a Maximum QoS of 0 it goes at QoS 0.
            let qos = match remote_receive_maximum {
                Some(1) => QoS::AtMostOnce,
                _ => self.remote_max_qos.min(QoS::AtLeastOnce),
            };
            if qos == QoS::AtLeastOnce {
                remote_receive_maximum = remote_receive_maximum.map(|r| r - 1);
            }
            self.is_notify_up_unacked = qos == QoS::AtLeastOnce;
            self.notification(b"1", qos, NOTIFY_UP_ID)
                .encode(self.version, &mut out);
        }
        self.remote_out = out;
        self.subscribe_remote(broker);
        self.last_sent = now;

        self.open_local(
            broker,
            LocalOpen::LinkUp {
                receive_maximum: remote_receive_maximum,
            },
            now,
        );
        self.notify_local(broker, true, now);
        Ok(())
    }

    /// Toward the remote, in the order of the `topic` lines, as Mosquitto: one SUBSCRIBE
    /// per `in`/`both` line, and with `bridge_attempt_unsubscribe` one UNSUBSCRIBE per
    /// `out` line (a subscription left from an earlier configuration would echo our
    /// messages back). Each takes the next packet id of the local session.
    fn subscribe_remote(&mut self, broker: &mut Broker) {
        let v5 = self.version == ProtocolVersion::V5;
        self.pending_subscribes.clear();
        for index in 0..self.maps.len() {
            let m = &self.maps[index];
            let is_unsubscribe = m.direction == Direction::Out;
            if is_unsubscribe && !self.config.bridge_attempt_unsubscribe {
                continue;
            }
            let id = self.take_packet_id(broker);
            let m = &self.maps[index];
            let filter = m.remote_filter.as_str();
            let packet = if is_unsubscribe {
                Packet::Unsubscribe(Unsubscribe {
                    packet_id: id,
                    filters: vec![filter],
                    properties: Props::default(),
                })
            } else {
                self.pending_subscribes.push((id.get(), index));
                let options = SubscriptionOptions {
                    qos: m.qos,
                    no_local: v5,
                    retain_as_published: v5,
                    retain_handling: 0,
                };
                Packet::Subscribe(Subscribe {
                    packet_id: id,
                    filters: vec![(filter, options)],
                    properties: Props::default(),
                })
            };
            if is_unsubscribe {
                debug!(
                    "Bridge {} sending UNSUBSCRIBE (Mid: {}, Topic: {filter})",
                    self.local_clientid,
                    id.get()
                );
            } else {
                debug!(
                    "Bridge {} sending SUBSCRIBE (Mid: {}, Topic: {filter}, QoS: {}, Options: 0x{:02x})",
                    self.local_clientid,
                    id.get(),
                    m.qos as u8,
                    if v5 { 0x0c } else { 0 }
                );
            }
            packet.encode(self.version, &mut self.remote_out);
        }
    }

    /// The next packet id toward the remote: the local session's, or while it does not
    /// exist (a clean local session is made after the SUBSCRIBEs), the bridge's own
    /// counter, which that session then goes on from.
    fn take_packet_id(&mut self, broker: &mut Broker) -> PacketId {
        if let Some(id) = broker.take_packet_id(&self.local_clientid) {
            self.last_packet_id = id.get();
            return id;
        }
        self.last_packet_id = if self.last_packet_id >= BRIDGE_MAX_PACKET_ID {
            1
        } else {
            self.last_packet_id + 1
        };
        packet_id(self.last_packet_id)
    }

    /// `local_cleansession`, which defaults to `cleansession`. A lazy bridge always keeps
    /// a persistent local session: while it is stopped, the messages that will start it
    /// must be kept somewhere (see [`Link::new`]).
    fn is_local_clean(&self) -> bool {
        self.config.start_type != StartType::Lazy
            && self
                .config
                .local_cleansession
                .unwrap_or(self.config.cleansession)
    }

    /// The local session: open, CONNECT, SUBSCRIBE to the `out` topics.
    fn open_local(&mut self, broker: &mut Broker, why: LocalOpen, now: Instant) {
        let receive_maximum = match why {
            LocalOpen::LinkUp { receive_maximum } => receive_maximum,
            LocalOpen::KeepMessages => None,
        };
        let local_clean = self.is_local_clean();
        let is_new_session = broker.last_packet_id(&self.local_clientid).is_none();
        broker.handle_open(
            self.local,
            Peer::Bridge(Rc::from(self.config.name.as_str())),
            BRIDGE_LISTENER,
            now,
        );
        if let LocalOpen::KeepMessages = why {
            // Opened only to exist: what waits stays queued (not put in flight toward
            // a remote that is not there), under the outbox's rules.
            broker.hold_queue(self.local);
        }
        self.is_local_open = true;
        let properties = Properties {
            session_expiry_interval: Some(if local_clean { 0 } else { u32::MAX }),
            receive_maximum,
            ..Properties::default()
        };
        let connect = Connect {
            version: ProtocolVersion::V5,
            clean_session: local_clean,
            keep_alive: 0,
            client_id: &self.local_clientid,
            will: None,
            username: self.config.local_username.as_deref(),
            password: None,
            properties: properties.into(),
        };
        let frame = encode_v5(&Packet::Connect(Box::new(connect)));
        broker.handle_frame(self.local, &frame, now);
        if is_new_session {
            // Its packet ids go on after those the bridge used without it.
            broker.set_last_packet_id(&self.local_clientid, self.last_packet_id);
        }
        // Mosquitto sends the retained messages of the `out` topics to the remote on
        // every connection (its retain__queue in bridge__on_connect), not before one.
        let retain_handling = match why {
            LocalOpen::LinkUp { .. } => 0,
            LocalOpen::KeepMessages => 2,
        };
        let filters: Vec<(&str, SubscriptionOptions)> = self
            .maps
            .iter()
            .filter(|m| m.is_out())
            .map(|m| {
                (
                    m.local_filter.as_str(),
                    SubscriptionOptions {
                        qos: m.qos,
                        // Not our own messages from `in` topics [MQTT-3.8.3-3]; the
                        // retain flag as published, for bridge_outgoing_retain.
                        no_local: true,
                        retain_as_published: true,
                        retain_handling,
                    },
                )
            })
            .collect();
        if !filters.is_empty() {
            let subscribe = Packet::Subscribe(Subscribe {
                packet_id: packet_id(LOCAL_SUBSCRIBE_ID),
                filters,
                properties: Props::default(),
            });
            let frame = encode_v5(&subscribe);
            broker.handle_frame(self.local, &frame, now);
        }
    }

    /// Encodes `packet` as MQTT 5 and hands it to the local session.
    fn send_local(&mut self, broker: &mut Broker, packet: &Packet<'_>, now: Instant) {
        if !self.is_local_open {
            return;
        }
        self.scratch.clear();
        packet.encode(ProtocolVersion::V5, &mut self.scratch);
        broker.handle_frame(self.local, &self.scratch, now);
    }

    /// Moves what the local session sent (its output) to the remote, mapped. Call when
    /// `poll_dirty` names the local connection, and when the remote took its output.
    pub fn pump_local(&mut self, broker: &mut Broker, now: Instant) {
        if !self.is_local_open || self.state != State::Up {
            return;
        }
        let mut consumed = 0;
        let mut dropped = Vec::new();
        {
            let out = broker.output(self.local);
            while consumed < out.len() && self.remote_out.len() < REMOTE_OUT_HIGH {
                let Ok(Some(len)) = frame::check(&out[consumed..], usize::MAX) else {
                    // The broker's own output is always whole, valid packets.
                    break;
                };
                let bytes = &out[consumed..consumed + len];
                consumed += len;
                match Packet::decode(bytes, ProtocolVersion::V5) {
                    Ok(packet) => {
                        let remote = RemoteLimits {
                            version: self.version,
                            max_packet_size: self.max_packet_size,
                            is_retain_available: self.is_retain_available,
                            max_qos: self.remote_max_qos,
                        };
                        if let Some(ack) = relay_out(
                            &self.maps,
                            &self.config,
                            remote,
                            &mut self.stats,
                            &mut self.remote_out,
                            &mut self.downgraded,
                            packet,
                        ) {
                            dropped.push(ack);
                        }
                    }
                    Err(e) => debug!("Bridge {}: local packet not relayed: {e}", self.name()),
                }
            }
        }
        if consumed > 0 {
            broker.consume_output(self.local, consumed);
            self.last_sent = now;
            self.last_activity = now;
        }
        // A message the remote cannot take is done with: the local session is told so,
        // or it would hold its window slot and be sent again on every reconnect.
        for packet in dropped {
            self.send_local(broker, &packet, now);
        }
    }

    /// The remote connection failed or ended (or could not be made): the local session
    /// goes offline (its messages now wait in the broker) and the next attempt is planned.
    pub fn handle_lost(&mut self, broker: &mut Broker, why: &str, now: Instant) {
        let was_up = self.state == State::Up;
        match self.state {
            State::Up => info!("Bridge {} disconnected: {why}.", self.config.name),
            State::Stopped | State::Waiting(_) | State::Idle => return,
            _ => info!("Bridge {}: connection failed: {why}.", self.config.name),
        }
        if !self.is_stopping_idle && !self.is_falling_back {
            self.last_error = Some(why.to_owned());
        }
        self.close_local(broker, now);
        self.remote_partial = Vec::new();
        self.remote_out = Vec::new();
        self.ping_sent = None;
        if was_up {
            self.notify_local(broker, false, now);
            let stable = match self.config.restart_timeout {
                RestartTimeout::Backoff {
                    stable: Some(s), ..
                } => Duration::from_secs(u64::from(s)),
                _ => Duration::ZERO,
            };
            if self.up_since.is_some_and(|t| now >= t + stable) {
                self.sleep = match self.config.restart_timeout {
                    RestartTimeout::Constant(n) => n,
                    RestartTimeout::Backoff { base, .. } => base,
                };
            }
            if !self.config.round_robin {
                // The first address is the primary: go back to it.
                self.address = 0;
            }
        } else {
            // Failover: the next address on the next attempt.
            self.address = self.address.wrapping_add(1);
        }
        self.up_since = None;
        self.next_primary_retry = None;
        if std::mem::take(&mut self.is_falling_back) {
            self.address = 0;
            self.set_state(State::Waiting(now));
            return;
        }
        if std::mem::take(&mut self.is_stopping_idle) {
            self.address = 0;
            self.next_check = now + CHECK_INTERVAL;
            self.set_state(State::Idle);
            return;
        }
        if self.config.start_type == StartType::Once && was_up {
            self.set_state(State::Stopped);
            return;
        }
        let delay = self.next_delay();
        debug!("Bridge {}: next attempt in {delay} s.", self.config.name);
        self.set_state(State::Waiting(now + Duration::from_secs(u64::from(delay))));
    }

    /// The state notification for the remote: `payload` "1" or "0", retained where the
    /// remote allows it, with `id` at QoS 1.
    fn notification<'p>(&'p self, payload: &'p [u8], qos: QoS, id: u16) -> Packet<'p> {
        Packet::Publish(Publish {
            dup: false,
            qos,
            retain: self.is_retain_available,
            topic: &self.notification_topic,
            packet_id: (qos == QoS::AtLeastOnce).then(|| packet_id(id)),
            payload,
            properties: Props::default(),
        })
    }

    /// A clean stop: the remote is told "0" on the state topic (DISCONNECT discards the
    /// will that would say it) and DISCONNECT.
    pub fn send_disconnect(&mut self) {
        if self.state != State::Up {
            return;
        }
        if self.config.notifications && !self.config.notifications_local_only {
            let qos = if self.is_notify_up_unacked {
                QoS::AtMostOnce
            } else {
                self.remote_max_qos.min(QoS::AtLeastOnce)
            };
            let mut out = std::mem::take(&mut self.remote_out);
            self.notification(b"0", qos, NOTIFY_DOWN_ID)
                .encode(self.version, &mut out);
            self.remote_out = out;
        }
        debug!("Bridge {} sending DISCONNECT", self.local_clientid);
        Packet::Disconnect(Disconnect::default()).encode(self.version, &mut self.remote_out);
    }

    fn close_local(&mut self, broker: &mut Broker, now: Instant) {
        if let Some(last) = broker.last_packet_id(&self.local_clientid) {
            // A clean local session ends here: the next one goes on from its ids.
            self.last_packet_id = last;
        }
        if self.is_local_open {
            self.send_local(broker, &Packet::Disconnect(Disconnect::default()), now);
            self.is_local_open = false;
            broker.handle_closed(self.local, now);
        }
    }

    /// The broker closed the local session's connection itself (a client took its id
    /// over, or a protocol error): the remote link ends with it.
    pub fn handle_local_closed(&mut self, broker: &mut Broker, now: Instant) -> bool {
        if !self.is_local_open {
            return false;
        }
        self.is_local_open = false;
        broker.handle_closed(self.local, now);
        self.handle_lost(broker, "its local session was closed", now);
        true
    }

    /// Restart delay: constant, or Mosquitto's "decorrelated jitter" backoff between
    /// BASE and CAP (sleep = min(cap, random(base, sleep * 3))).
    fn next_delay(&mut self) -> u32 {
        match self.config.restart_timeout {
            RestartTimeout::Constant(n) => n,
            RestartTimeout::Backoff { base, cap, .. } => {
                let high = self.sleep.saturating_mul(3).max(base + 1);
                let span = u64::from(high - base);
                let delay = base + (self.random() % span) as u32;
                self.sleep = delay.min(cap);
                self.sleep
            }
        }
    }

    fn random(&mut self) -> u64 {
        // xorshift64: jitter only, not security.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// When [`Link::handle_timeout`] is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            State::Waiting(at) | State::Connecting(at) | State::AwaitingConnack(at) => Some(at),
            State::Up => {
                let keep_alive = Duration::from_secs(u64::from(self.keep_alive));
                // An MQTT 5 Server Keep Alive of 0 turns keep alive off.
                let ping = (self.keep_alive != 0).then(|| match self.ping_sent {
                    Some(sent) => sent + keep_alive,
                    None => self.last_sent + keep_alive,
                });
                let idle = (self.config.start_type == StartType::Lazy)
                    .then(|| self.last_activity + self.idle_timeout());
                ping.into_iter().chain(idle).chain(self.sas_renew_at).min()
            }
            State::Idle => Some(self.next_check),
            State::Stopped => None,
        }
        .into_iter()
        .chain((!self.sys_interval.is_zero()).then_some(self.next_sys))
        .chain(self.next_primary_retry)
        .min()
    }

    fn idle_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.config.idle_timeout))
    }

    /// Time passed: keep alive (PINGREQ; no answer within another keep-alive period ends
    /// the link) and connect timeouts. `Err` means the link is dead; the caller closes the
    /// socket and calls [`Link::handle_lost`].
    pub fn handle_timeout(&mut self, broker: &mut Broker, now: Instant) -> Result<(), String> {
        if !self.sys_interval.is_zero() && now >= self.next_sys {
            self.next_sys = now + self.sys_interval.max(CHECK_INTERVAL);
            self.publish_sys(broker, now);
        }
        let keep_alive = Duration::from_secs(u64::from(self.keep_alive));
        match self.state {
            State::Idle if now >= self.next_check => {
                self.next_check = now + CHECK_INTERVAL;
                let backlog = broker
                    .session_backlog(&self.local_clientid)
                    .map_or(0, |(queued, inflight)| queued + inflight);
                if backlog >= self.config.threshold as usize {
                    info!(
                        "Bridge {}: {backlog} messages waiting, starting (start_type lazy).",
                        self.config.name
                    );
                    self.set_state(State::Waiting(now));
                }
                Ok(())
            }
            State::Up
                if self.config.start_type == StartType::Lazy
                    && now >= self.last_activity + self.idle_timeout() =>
            {
                self.send_disconnect();
                self.is_stopping_idle = true;
                Err(format!(
                    "no messages for {} s, stopping (start_type lazy)",
                    self.config.idle_timeout
                ))
            }
            State::Up if self.sas_renew_at.is_some_and(|at| now >= at) => {
                info!(
                    "Bridge {}: its SAS token expires soon; connecting again with a fresh one.",
                    self.config.name
                );
                self.sas_renew_at = None;
                self.send_disconnect();
                self.is_falling_back = true;
                Err("renewing its SAS token".to_string())
            }
            State::Connecting(at) | State::AwaitingConnack(at) if at <= now => {
                Err("timed out".to_string())
            }
            State::Up if self.keep_alive == 0 => Ok(()),
            State::Up => match self.ping_sent {
                Some(sent) if now >= sent + keep_alive => {
                    Err("no answer from the remote within the keep alive".to_string())
                }
                None if now >= self.last_sent + keep_alive => {
                    Packet::Pingreq.encode(self.version, &mut self.remote_out);
                    self.last_sent = now;
                    self.ping_sent = Some(now);
                    Ok(())
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// The state notification on the local broker (retained "1"/"0").
    fn notify_local(&mut self, broker: &mut Broker, is_up: bool, now: Instant) {
        if self.config.notifications {
            let payload: &[u8] = if is_up { b"1" } else { b"0" };
            broker.publish_retained(&self.notification_topic, payload, QoS::AtLeastOnce, now);
        }
    }

    fn set_state(&mut self, state: State) {
        if state != self.state {
            debug!("Bridge {}: {state}.", self.config.name);
        }
        if (state == State::Up) != (self.state == State::Up) {
            // Up or down: the $SYS values go out at once, not at the next interval.
            self.next_sys = self.created.0;
        }
        self.state = state;
    }
}

/// A local packet of the bridge session, sent on to the remote. A QoS 1/2 message too
/// large for the remote is dropped; the acknowledgement to give the local session for it
/// is returned.
/// What the remote accepts, for [`relay_out`].
#[derive(Debug, Clone, Copy)]
struct RemoteLimits {
    version: ProtocolVersion,
    /// 0: no limit.
    max_packet_size: u32,
    is_retain_available: bool,
    max_qos: QoS,
}

/// Relays one packet of the local session to the remote; returns what the local session
/// is to be told at once (a message the remote cannot take, or the end of a downgraded
/// QoS 2 exchange).
fn relay_out(
    maps: &[TopicMap],
    config: &config::Bridge,
    remote: RemoteLimits,
    stats: &mut LinkStats,
    out: &mut Vec<u8>,
    downgraded: &mut Vec<u16>,
    packet: Packet<'_>,
) -> Option<Packet<'static>> {
    let RemoteLimits {
        version,
        max_packet_size,
        is_retain_available,
        max_qos,
    } = remote;
    let v5 = version == ProtocolVersion::V5;
    fn ack<'a>(a: &Ack<'a>, v5: bool) -> Ack<'a> {
        if v5 {
            local_ack(a)
        } else {
            Ack::new(a.packet_id)
        }
    }
    let packet = match packet {
        Packet::Publish(p) => {
            let topic = map_out(maps, p.topic);
            // Above the remote's Maximum QoS: sent at it. [MQTT-3.2.2-11]
            let qos = p.qos.min(max_qos);
            let mut done = None;
            let mut packet_id = p.packet_id;
            if let (true, Some(id)) = (qos < p.qos, p.packet_id) {
                if p.qos == QoS::ExactlyOnce && !downgraded.contains(&id.get()) {
                    downgraded.push(id.get());
                }
                if qos == QoS::AtMostOnce {
                    // Nothing will come back: the local exchange goes on at once.
                    packet_id = None;
                    done = Some(match p.qos {
                        QoS::ExactlyOnce => Packet::Pubrec(Ack::new(id)),
                        _ => Packet::Puback(Ack::new(id)),
                    });
                }
            }
            let publish = Publish {
                qos,
                packet_id,
                retain: p.retain && config.bridge_outgoing_retain && is_retain_available,
                topic: &topic,
                properties: if v5 {
                    relayed_properties(&p.properties).into()
                } else {
                    Props::default()
                },
                ..p
            };
            let packet = Packet::Publish(publish);
            if max_packet_size != 0 && packet.encoded_len(version) > max_packet_size as usize {
                warn!(
                    "Bridge {}: a message on {topic} is larger than the remote's maximum packet size; dropped.",
                    config.name
                );
                return match (p.qos, p.packet_id) {
                    (QoS::AtLeastOnce, Some(id)) => Some(Packet::Puback(Ack::new(id))),
                    (QoS::ExactlyOnce, Some(id)) => {
                        // Its PUBREL is answered here too.
                        if !downgraded.contains(&id.get()) {
                            downgraded.push(id.get());
                        }
                        Some(Packet::Pubrec(Ack::new(id)))
                    }
                    _ => None,
                };
            }
            stats.messages_sent += 1;
            packet.encode(version, out);
            return done;
        }
        // The release of a downgraded message ends here: the remote never saw QoS 2.
        Packet::Pubrel(a) if downgraded.contains(&a.packet_id.get()) => {
            downgraded.retain(|id| *id != a.packet_id.get());
            return Some(Packet::Pubcomp(Ack::new(a.packet_id)));
        }
        Packet::Puback(a) => Packet::Puback(ack(&a, v5)),
        Packet::Pubrec(a) => Packet::Pubrec(ack(&a, v5)),
        Packet::Pubrel(a) => Packet::Pubrel(ack(&a, v5)),
        Packet::Pubcomp(a) => Packet::Pubcomp(ack(&a, v5)),
        // CONNACK, SUBACK, UNSUBACK, DISCONNECT of the local session: nothing for the
        // remote.
        _ => return None,
    };
    packet.encode(version, out);
    None
}

/// An acknowledgement from the remote, for the (MQTT 5) local session.
fn local_ack<'a>(a: &Ack<'a>) -> Ack<'a> {
    Ack {
        packet_id: a.packet_id,
        reason: a.reason,
        properties: relayed_properties(&a.properties).into(),
    }
}

/// The properties that travel on with a message: everything but those that belong to
/// one connection (Topic Alias, Subscription Identifiers).
fn relayed_properties<'a>(p: &Properties<'a>) -> Properties<'a> {
    Properties {
        topic_alias: None,
        subscription_identifiers: Vec::new(),
        ..p.clone()
    }
}

fn encode_v5(packet: &Packet<'_>) -> Vec<u8> {
    let mut frame = Vec::with_capacity(packet.encoded_len(ProtocolVersion::V5));
    packet.encode(ProtocolVersion::V5, &mut frame);
    frame
}

fn packet_id(id: u16) -> PacketId {
    PacketId::new(id).unwrap_or(PacketId(std::num::NonZeroU16::MIN))
}

pub mod sas;

#[cfg(test)]
mod tests;
