//! The broker core: sessions, client-id takeover, the QoS 0/1/2 flows, inflight windows,
//! offline queues, wills, retained messages, keep alive and $SYS.
//!
//! This module contains no networking code, reads no clock and touches no file. It is
//! driven by calls saying what happened and answers through per-connection outboxes and
//! a queue of connections to close:
//!
//! ```text
//! handle_open(conn, peer, listener, now) a socket was accepted
//! set_certificate_username(conn, name)  its TLS handshake ended (listeners that take
//!                                       the username from the client certificate)
//! handle_frame(conn, frame, now)        one whole packet arrived (frame::check said so)
//! handle_closed(conn, now)              the socket is gone (EOF, error, or after poll_close)
//! handle_timeout(now)                   time passed; call when next_deadline() is due
//!
//! poll_dirty() -> Option<ConnId>        a connection whose outbox has bytes to write
//! output(conn) / consume_output(conn,n) the outbox, and how much the socket took
//! poll_close() -> Option<ConnId>        write what is left of the outbox, close, then
//!                                       call handle_closed
//! next_deadline() -> Option<Instant>    when to call handle_timeout next
//! ```
//!
//! The loop calls `handle_*` for everything that happened in one poll iteration, then
//! drains `poll_dirty` (one write per connection per iteration) and `poll_close`.
//!
//! # Persistence seam
//! Every change of durable state goes through a handful of methods: `set_retained`,
//! `add_subscription`/`remove_subscription`, `enqueue`/`remove_inflight` and
//! `create_session`/`remove_session`, and the QoS state changes next to them; each writes
//! a record to the journal (`journal.rs`) when persistence is on.

mod bridge;
mod journal;
mod message;
mod sys;

pub use bridge::{QueueLimits, BRIDGE_LISTENER, BRIDGE_MAX_PACKET_ID};
pub use journal::Journal;
pub use message::{Message, MessageProps};

use crate::auth::{dollar_topic_allowed, Access, Acl, PasswordFile};
use crate::config::Config;
use crate::persist::record::Record;
use crate::protocol::{
    encode_publish, encode_publish_v5, publish_len, publish_v5_len, Ack, Connack, Connect,
    DecodeError, Disconnect, Packet, PacketId, Properties, Props, ProtocolVersion, Publish, QoS,
    ReasonCode, Suback, Subscribe, Unsuback, Unsubscribe,
};
use crate::timer::Timers;
use crate::topic::{parse_shared, RetainedTree, SharedSubscriptions, SubscriptionTree};
use log::{debug, info, warn};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A connection, named by the loop (its slab slot). The loop reuses an id only after
/// `handle_closed` returned for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u32);

/// Who is at the other end of a connection, as log lines name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    Inet(SocketAddr),
    /// A client of a Unix socket listener: the listener's path (the client end has no
    /// name).
    Unix(Rc<str>),
    /// The local side of a bridge (`connection NAME`), opened by the bridge itself.
    Bridge(Rc<str>),
}

impl From<SocketAddr> for Peer {
    fn from(address: SocketAddr) -> Peer {
        Peer::Inet(address)
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Inet(address) => address.fmt(f),
            // Mosquitto's form: the path and port 0.
            Peer::Unix(path) => write!(f, "{path}:0"),
            Peer::Bridge(name) => write!(f, "bridge {name}"),
        }
    }
}

/// A session slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(u32);

/// Mosquitto's `TOPIC_HIERARCHY_LIMIT`: a topic name or filter with more `/` than this
/// is refused (Mosquitto 2.0 closes the connection). Without it a single SUBSCRIBE of a
/// 64 KB filter of 32,000 levels costs the tree 4 MB (measured: 50 such filters took a
/// broker from 3 MB to 200 MB of RSS), and the same holds for retained topics.
pub const MAX_TOPIC_SEPARATORS: usize = 200;

/// Whether a topic name or filter has more levels than [`MAX_TOPIC_SEPARATORS`] allows.
fn is_too_deep(topic: &str) -> bool {
    topic
        .bytes()
        .filter(|&b| b == b'/')
        .nth(MAX_TOPIC_SEPARATORS)
        .is_some()
}

/// The limits and switches the core needs, taken from [`Config`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub allow_anonymous: bool,
    pub allow_zero_length_clientid: bool,
    /// Outgoing QoS 1/2 messages in flight per client (at least 1).
    pub max_inflight_messages: usize,
    /// 0: unlimited.
    pub max_queued_messages: usize,
    /// 0: unlimited.
    pub max_queued_bytes: usize,
    /// 0: unlimited.
    pub max_keepalive: u16,
    /// Largest PUBLISH payload accepted.
    pub message_size_limit: usize,
    /// 0: no $SYS.
    pub sys_interval: Duration,
    /// How long a socket may stay open without sending CONNECT.
    pub connect_timeout: Duration,
    /// Bytes an outbox may hold before QoS 0 messages to that client are dropped (QoS 1/2
    /// wait in the session queue instead).
    pub outbox_limit: usize,
    pub connection_messages: bool,
    /// How long a disconnected persistent session is kept (`persistent_client_expiration`);
    /// `None`: forever, as Mosquitto without the option.
    pub persistent_client_expiration: Option<Duration>,
    /// `max_packet_size`: the largest packet accepted, told to MQTT 5 clients; 0: none.
    pub max_packet_size: u32,
    /// `retain_available`.
    pub retain_available: bool,
    /// Per listener, by the index the loop passes to `handle_open`.
    pub listeners: Vec<ListenerLimits>,
    /// 2.1 `global_max_clients`: sessions, offline persistent ones included; `None`
    /// unlimited.
    pub global_max_clients: Option<usize>,
    /// culex's `max_subscriptions_per_client`: filters one session may hold; 0 unlimited.
    pub max_subscriptions_per_client: usize,
    /// culex's `max_retained_messages` / `max_retained_bytes` (payload bytes): what the
    /// retained store may hold, `$SYS` aside; 0 unlimited.
    pub max_retained_messages: usize,
    pub max_retained_bytes: usize,
}

/// A listener's own password file and ACL, with `per_listener_settings true`.
#[derive(Debug, Default)]
pub struct ListenerAuth {
    pub passwords: Option<PasswordFile>,
    pub acl: Option<Acl>,
}

/// The per-listener options the core enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerLimits {
    /// `max_qos`.
    pub max_qos: QoS,
    /// `max_topic_alias`: aliases an MQTT 5 client may set.
    pub max_topic_alias: u16,
    /// `max_topic_alias_broker`: aliases culex sets toward an MQTT 5 client.
    pub max_topic_alias_broker: u16,
    /// `use_identity_as_username` / `use_subject_as_username` on a TLS listener: the
    /// username is the one the loop passes to `set_certificate_username`; the CONNECT's
    /// username and password are ignored and the password file is not consulted.
    pub username_from_certificate: bool,
    /// `mount_point`: prefixed to every topic and filter this listener's clients send
    /// (wills too, `$SYS` too, as Mosquitto does), and removed from the topics they are
    /// sent. ACLs see the prefixed topic.
    pub mount_point: Option<Rc<str>>,
    /// 2.1 `accept_protocol_versions`: MQTT 3.1, 3.1.1 and 5.0 accepted or not.
    pub accepts_v31: bool,
    pub accepts_v311: bool,
    pub accepts_v5: bool,
    /// 2.1 `listener_allow_anonymous`, overriding `allow_anonymous` for this listener.
    pub allow_anonymous: Option<bool>,
    /// `auto_id_prefix` / 2.1 `listener_auto_id_prefix` for assigned client ids.
    pub auto_id_prefix: Rc<str>,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            max_qos: QoS::ExactlyOnce,
            max_topic_alias: 10,
            max_topic_alias_broker: 10,
            username_from_certificate: false,
            mount_point: None,
            accepts_v31: true,
            accepts_v311: true,
            accepts_v5: true,
            allow_anonymous: None,
            auto_id_prefix: Rc::from("auto-"),
        }
    }
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            allow_anonymous: config.allows_anonymous(),
            allow_zero_length_clientid: config.allow_zero_length_clientid,
            // 0 means unlimited in Mosquitto; packet ids bound it at 65,535.
            max_inflight_messages: match config.max_inflight_messages {
                0 => usize::from(u16::MAX),
                n => usize::from(n),
            },
            max_queued_messages: config.max_queued_messages,
            max_queued_bytes: config.max_queued_bytes,
            max_keepalive: config.max_keepalive,
            message_size_limit: match config.message_size_limit {
                0 => crate::protocol::frame::MAX_REMAINING_LENGTH,
                n => n,
            },
            sys_interval: Duration::from_secs(u64::from(config.sys_interval)),
            connect_timeout: Duration::from_secs(10),
            outbox_limit: 1 << 20,
            connection_messages: config.connection_messages,
            persistent_client_expiration: config.persistent_client_expiration,
            max_packet_size: config.max_packet_size.unwrap_or(0),
            retain_available: config.retain_available,
            listeners: config
                .effective_listeners()
                .iter()
                .map(|l| ListenerLimits {
                    max_qos: QoS::from_u8(l.max_qos).unwrap_or(QoS::ExactlyOnce),
                    max_topic_alias: l.max_topic_alias,
                    max_topic_alias_broker: l.max_topic_alias_broker,
                    username_from_certificate: l.tls.certfile.is_some()
                        && (l.tls.use_identity_as_username || l.tls.use_subject_as_username),
                    mount_point: l.mount_point.as_deref().map(Rc::from),
                    accepts_v31: l.accept_protocol_versions.is_none_or(|v| v.v3),
                    accepts_v311: l.accept_protocol_versions.is_none_or(|v| v.v4),
                    accepts_v5: l.accept_protocol_versions.is_none_or(|v| v.v5),
                    // per_listener_settings: the listener's own security options; 2.1's
                    // listener_* options win over both.
                    allow_anonymous: l.listener_allow_anonymous.or(config
                        .per_listener_settings
                        .then(|| l.security.allow_anonymous.unwrap_or(false))),
                    auto_id_prefix: Rc::from(
                        l.listener_auto_id_prefix
                            .as_deref()
                            .or(config
                                .per_listener_settings
                                .then_some(l.security.auto_id_prefix.as_deref())
                                .flatten())
                            .or(config.auto_id_prefix.as_deref())
                            .unwrap_or("auto-"),
                    ),
                })
                .collect(),
            max_subscriptions_per_client: config.max_subscriptions_per_client,
            max_retained_messages: config.max_retained_messages,
            max_retained_bytes: config.max_retained_bytes,
            global_max_clients: config
                .global_max_clients
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from_config(&Config::default())
    }
}

/// Why a connection ends; each has one log sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CloseReason {
    /// The client sent DISCONNECT: no will. [MQTT-3.14.4-3]
    Disconnected,
    /// MQTT 5 DISCONNECT with reason 0x04: the will is published. [MQTT-3.14.2.1]
    DisconnectedWithWill,
    /// The socket closed or failed without DISCONNECT.
    SocketLost,
    /// Keep alive expired. [MQTT-3.1.2-24]
    KeepAliveTimeout,
    /// No CONNECT in time.
    ConnectTimeout,
    ProtocolError(DecodeError),
    /// A packet that is well formed but not allowed now (a second CONNECT, a CONNACK from
    /// a client, anything before CONNECT).
    UnexpectedPacket(&'static str),
    /// Another connection took this client id over. [MQTT-3.1.4-2]
    TakenOver,
    /// CONNACK refused the connection.
    Refused,
    /// A reload revoked the client's access.
    Revoked,
    /// An MQTT 5 rule broken by a well-formed packet (topic alias, receive maximum...):
    /// the reason code sent in DISCONNECT, and what happened.
    Violation(ReasonCode, &'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    /// Accepted, waiting for CONNECT.
    Connecting,
    Active(SessionId),
    /// Asked the loop to close; nothing more is processed.
    Closing,
}

struct Conn {
    peer: Peer,
    state: ConnState,
    version: ProtocolVersion,
    keep_alive: u16,
    last_seen: Instant,
    /// The one pending timer entry of this connection (connect timeout or keep alive).
    deadline: Option<Instant>,
    will: Option<Rc<Message>>,
    out: Vec<u8>,
    is_dirty: bool,
    /// A packet was added while the outbox already held more than
    /// `OUTBOX_HARD_FACTOR * outbox_limit`: the client is disconnected. Judged before each
    /// packet is added, so one message of any accepted size always fits.
    is_over_limit: bool,
    /// The password it connected with, kept only while a password file is in use, so a
    /// reload can disconnect clients whose credentials were revoked (as Mosquitto does).
    password: Option<Box<[u8]>>,
    /// MQTT 5: Will Delay Interval in seconds. [MQTT-3.1.3.2.2]
    will_delay: u32,
    /// MQTT 5: the client's Receive Maximum, which bounds our QoS 1/2 sends. [MQTT-3.3.4-9]
    receive_maximum: u16,
    /// MQTT 5: the client's Maximum Packet Size; 0 if it set none. [MQTT-3.1.2-24]
    max_packet_size: u32,
    /// MQTT 5: topic aliases the client set, index = alias - 1; allocated on first use.
    topic_aliases: Vec<Option<Box<str>>>,
    /// MQTT 5: topics culex gave an alias toward the client, index = alias - 1.
    out_aliases: Vec<Box<str>>,
    /// MQTT 5: how many aliases culex may set toward the client (its Topic Alias Maximum
    /// and our max_topic_alias_broker).
    out_alias_maximum: u16,
    limits: ListenerLimits,
    /// Packets in `out` not yet wholly taken by the socket, and how many bytes of the
    /// first of them are left when the socket took only part of it ($SYS packet/out).
    out_packets: u64,
    out_head_left: usize,
    /// Its listener's index (`Settings::listeners`).
    listener: usize,
    /// The username its client certificate stands for (see `set_certificate_username`).
    certificate_username: Option<Box<str>>,
    /// A Mosquitto bridge (`try_private`: protocol level | 0x80): its 3.1/3.1.1
    /// subscriptions get No Local and Retain As Published, as Mosquitto gives them, so
    /// its own messages do not come back to it.
    is_bridge: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// What an inflight message waits for.
enum InflightState {
    /// QoS 1 PUBLISH sent, waiting for PUBACK.
    Puback,
    /// QoS 2 PUBLISH sent, waiting for PUBREC.
    Pubrec,
    /// PUBREL sent, waiting for PUBCOMP.
    Pubcomp,
}

struct Inflight {
    packet_id: PacketId,
    message: Rc<Message>,
    qos: QoS,
    retain: bool,
    /// MQTT 5 Subscription Identifiers of the matching subscriptions (empty: none).
    sub_ids: Box<[u32]>,
    state: InflightState,
}

struct Queued {
    message: Rc<Message>,
    qos: QoS,
    retain: bool,
    sub_ids: Box<[u32]>,
}

/// A subscription's options, as the trees store them (8 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sub {
    qos: QoS,
    /// MQTT 5 No Local: not sent the subscriber's own messages. [MQTT-3.8.3-3]
    no_local: bool,
    /// MQTT 5 Retain As Published. [MQTT-3.3.1-12]
    retain_as_published: bool,
    /// MQTT 5 Subscription Identifier; 0 for none.
    id: u32,
}

struct Session {
    client_id: Box<str>,
    conn: Option<ConnId>,
    /// Seconds the session outlives its connection: 0 ends it with the connection (3.1.1
    /// clean session), u32::MAX never (3.1.1 persistent). [MQTT-3.1.2-23]
    expiry_interval: u32,
    subscriptions: Vec<(Box<str>, Sub)>,
    /// Outgoing QoS 1/2 messages, in the order they were sent.
    inflight: VecDeque<Inflight>,
    /// Waiting for a free inflight slot or for the client to come back.
    queue: VecDeque<Queued>,
    queued_bytes: usize,
    last_packet_id: u16,
    /// Incoming QoS 2 packet ids delivered but not yet released. [MQTT-4.3.3-2]
    awaiting_pubrel: Vec<PacketId>,
    /// When this disconnected session ends; its one pending timer entry.
    expires_at: Option<Instant>,
    /// The username of its (last) connection, for ACL checks on delivery.
    username: Option<Box<str>>,
    /// MQTT 5: a will waiting for its Will Delay Interval, and when it is due.
    pending_will: Option<(Rc<Message>, Instant)>,
    /// The listener of its (last) connection: whose ACL applies with per-listener settings.
    listener: usize,
    /// Written to the journal: it outlived (or will outlive) a connection.
    persisted: bool,
}

/// A publication being routed: borrowed from the inbound frame until something needs to
/// keep it, then stored once.
struct Publication<'a> {
    topic: &'a str,
    payload: &'a [u8],
    qos: QoS,
    retain: bool,
    /// Stored as soon as it has MQTT 5 properties to pass on; otherwise on first need.
    stored: Option<Rc<Message>>,
    /// The publishing session, for No Local.
    publisher: Option<SessionId>,
}

impl<'a> Publication<'a> {
    /// A stored message (retained, will, queued) routed again.
    fn of(message: &'a Rc<Message>) -> Publication<'a> {
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
    fn stored(&mut self) -> Rc<Message> {
        self.stored
            .get_or_insert_with(|| Message::new(self.topic, self.payload, self.qos, self.retain))
            .clone()
    }
}

#[derive(Debug, Default, Clone)]
struct Stats {
    messages_received: u64,
    messages_sent: u64,
    publish_received: u64,
    publish_sent: u64,
    publish_dropped: u64,
    /// Retained messages kept out by `max_retained_messages` / `max_retained_bytes`.
    retained_refused: u64,
    bytes_received: u64,
    bytes_sent: u64,
    clients_connected: usize,
    clients_maximum: usize,
    clients_expired: u64,
    /// PUBLISH payload bytes received and sent.
    publish_bytes_received: u64,
    publish_bytes_sent: u64,
    /// Control packets received and sent, by packet type (the first byte's high nibble).
    packets_received: [u64; 16],
    packets_sent: [u64; 16],
    /// Sockets accepted.
    sockets: u64,
    /// Packets and bytes in outboxes, not yet taken by the sockets.
    out_packets: u64,
    out_bytes: u64,
    /// Messages held in session queues, inflight windows and the retained store (each
    /// entry once), and their payload bytes. See `sys.rs`.
    stored_messages: u64,
    stored_bytes: u64,
}

/// See the module documentation for the calling protocol.
pub struct Broker {
    settings: Settings,
    started: Instant,
    /// The `now` of the latest `handle_*` call: the time for work done in `poll_*`.
    last_event: Instant,
    conns: Vec<Option<Conn>>,
    sessions: Vec<Option<Session>>,
    /// Free session slots, lowest first, so the slab stays compact and shrinks.
    free_sessions: BinaryHeap<Reverse<u32>>,
    by_client_id: HashMap<Box<str>, SessionId>,
    subscriptions: SubscriptionTree<SessionId, Sub>,
    /// `$share/{name}/{filter}` groups.
    shared: SharedSubscriptions<SessionId, Sub>,
    retained: RetainedTree<Rc<Message>>,
    /// Retained messages outside `$SYS`, and their payload bytes (the limits' measure).
    retained_count: usize,
    retained_bytes: usize,
    timers: Timers<Timer>,
    dirty: Vec<ConnId>,
    closing: VecDeque<ConnId>,
    /// Scratch space for routing, kept to avoid an allocation per message.
    matches: Vec<(SessionId, Sub)>,
    /// Scratch space for the subscription identifiers of one delivery.
    sub_ids: Vec<u32>,
    /// Drained outbox buffers, lent to the next connection that writes.
    pool: Vec<Vec<u8>>,
    /// The largest outbox buffer too large for the pool dropped since the loop last asked
    /// (see [`Broker::take_dropped_output`]).
    dropped_output: usize,
    /// Sessions whose outbox fell back under `outbox_limit` while QoS 1/2 messages waited
    /// in their queue; [`Broker::refill`] moves them on.
    refill: Vec<SessionId>,
    stats: Stats,
    sys: sys::SysState,
    /// `password_file`, loaded by the caller.
    passwords: Option<PasswordFile>,
    /// `acl_file`, loaded by the caller.
    acl: Option<Acl>,
    /// With `per_listener_settings true`: each listener's own files (by listener index),
    /// used instead of `passwords` and `acl`.
    listener_auth: Vec<ListenerAuth>,
    next_auto_id: u64,
    /// Queue limits of particular sessions (bridges' outboxes), by client id.
    queue_limits: HashMap<Box<str>, QueueLimits>,
    /// Records of durable changes, when persistence is on.
    journal: Option<Journal>,
    /// With persistence: whether the files are being written, and bytes written ($SYS).
    persistence_status: Option<(bool, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// Connect timeout or keep alive of a connection; see `Conn::deadline`.
    Conn(ConnId),
    /// Publish $SYS.
    Sys,
    /// A disconnected session's expiry; see `Session::expires_at`.
    SessionExpiry(SessionId),
    /// A delayed will; see `Session::pending_will`.
    WillDelay(SessionId),
}

/// Outbox buffers kept for reuse, and the largest capacity worth keeping: an idle
/// connection owns no buffer, and the pool does not hoard a burst's memory.
const POOL_BUFFERS: usize = 16;
/// An outbox may hold this many times `outbox_limit` (reached only by what the limit does
/// not shed: retained bursts, QoS 1/2) before its client is disconnected.
const OUTBOX_HARD_FACTOR: usize = 16;
const POOL_BUFFER_MAX: usize = 64 * 1024;

impl Broker {
    pub fn new(settings: Settings, now: Instant) -> Broker {
        let mut broker = Broker {
            settings,
            started: now,
            last_event: now,
            conns: Vec::new(),
            sessions: Vec::new(),
            free_sessions: BinaryHeap::new(),
            by_client_id: HashMap::new(),
            subscriptions: SubscriptionTree::new(),
            shared: SharedSubscriptions::new(),
            retained: RetainedTree::new(),
            retained_count: 0,
            retained_bytes: 0,
            timers: Timers::default(),
            dirty: Vec::new(),
            closing: VecDeque::new(),
            matches: Vec::new(),
            sub_ids: Vec::new(),
            pool: Vec::new(),
            dropped_output: 0,
            refill: Vec::new(),
            stats: Stats::default(),
            sys: sys::SysState::default(),
            passwords: None,
            acl: None,
            listener_auth: Vec::new(),
            next_auto_id: 0,
            queue_limits: HashMap::new(),
            journal: None,
            persistence_status: None,
        };
        if !broker.settings.sys_interval.is_zero() {
            broker.publish_sys(now);
        }
        broker
    }

    /// The largest packet the loop should buffer for one connection: a PUBLISH with the
    /// largest accepted payload and the longest topic. Anything larger is refused by
    /// `frame::check` before it is buffered.
    pub fn max_packet_size(&self) -> usize {
        let for_payload = self
            .settings
            .message_size_limit
            .saturating_add(2 + 65_535 + 2 + 5);
        match self.settings.max_packet_size {
            0 => for_payload,
            limit => for_payload.min(limit as usize),
        }
    }

    /// The broker is stopping: MQTT 5 clients are told so (0x8B) before the loop closes
    /// their sockets. [MQTT-3.14.1]
    pub fn shutdown(&mut self) {
        let v5: Vec<ConnId> = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(slot, c)| {
                c.as_ref()
                    .filter(|c| {
                        c.version == ProtocolVersion::V5 && matches!(c.state, ConnState::Active(_))
                    })
                    .map(|_| ConnId(slot as u32))
            })
            .collect();
        for id in v5 {
            self.send(
                id,
                &Packet::Disconnect(Disconnect {
                    reason: ReasonCode::SERVER_SHUTTING_DOWN,
                    properties: Props::default(),
                }),
            );
        }
    }

    // ---- handle_* ------------------------------------------------------------------

    /// A socket was accepted on the loop's listener number `listener` (the index of
    /// `Settings::listeners`).
    pub fn handle_open(
        &mut self,
        conn: ConnId,
        peer: impl Into<Peer>,
        listener: usize,
        now: Instant,
    ) {
        self.last_event = now;
        let peer = peer.into();
        let slot = conn.0 as usize;
        if self.conns.len() <= slot {
            self.conns.resize_with(slot + 1, || None);
        }
        let deadline = now + self.settings.connect_timeout;
        self.conns[slot] = Some(Conn {
            peer,
            state: ConnState::Connecting,
            version: ProtocolVersion::V311,
            keep_alive: 0,
            last_seen: now,
            deadline: Some(deadline),
            will: None,
            out: Vec::new(),
            is_dirty: false,
            is_over_limit: false,
            password: None,
            will_delay: 0,
            receive_maximum: u16::MAX,
            max_packet_size: 0,
            topic_aliases: Vec::new(),
            out_aliases: Vec::new(),
            out_alias_maximum: 0,
            limits: self
                .settings
                .listeners
                .get(listener)
                .cloned()
                .unwrap_or_default(),
            out_packets: 0,
            out_head_left: 0,
            certificate_username: None,
            listener,
            is_bridge: false,
        });
        self.stats.sockets += 1;
        self.timers.schedule(deadline, Timer::Conn(conn));
    }

    /// The TLS handshake of `conn` ended: `username` is what its client certificate
    /// stands for on this listener (common name or subject), `None` if it presented no
    /// certificate or one without a common name. Called before any packet is handed over.
    pub fn set_certificate_username(&mut self, conn: ConnId, username: Option<Box<str>>) {
        if let Some(conn) = self.conn_mut(conn) {
            conn.certificate_username = username;
        }
    }

    /// One whole packet, as `frame::check` delimited it.
    pub fn handle_frame(&mut self, id: ConnId, frame: &[u8], now: Instant) {
        self.last_event = now;
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if conn.state == ConnState::Closing {
            return;
        }
        conn.last_seen = now;
        if conn.state == ConnState::Connecting && crate::protocol::is_bridge_connect(frame) {
            conn.is_bridge = true;
        }
        let (version, state) = (conn.version, conn.state);
        self.stats.messages_received += 1;
        self.stats.bytes_received += frame.len() as u64;
        if let Some(first) = frame.first() {
            self.stats.packets_received[usize::from(first >> 4)] += 1;
        }
        match Packet::decode(frame, version) {
            Ok(packet) => self.dispatch(id, state, &packet, now),
            Err(DecodeError::UnsupportedProtocolVersion(level))
                if state == ConnState::Connecting =>
            {
                // [MQTT-3.1.2-2]: answer 0x01 and disconnect.
                self.send_connack(id, false, ReasonCode::UNSUPPORTED_PROTOCOL_VERSION);
                info!(
                    "Client from {} refused: unsupported protocol version {level}.",
                    self.peer(id)
                );
                self.close(id, CloseReason::Refused, now);
            }
            Err(e) => self.close(id, CloseReason::ProtocolError(e), now),
        }
    }

    /// The loop found a frame it cannot delimit (bad Remaining Length, too large).
    pub fn handle_framing_error(&mut self, id: ConnId, error: DecodeError, now: Instant) {
        if self
            .conn_mut(id)
            .is_some_and(|c| c.state != ConnState::Closing)
        {
            self.close(id, CloseReason::ProtocolError(error), now);
        }
    }

    fn conn_limits(&self, id: ConnId) -> ListenerLimits {
        self.conns
            .get(id.0 as usize)
            .and_then(Option::as_ref)
            .map_or_else(ListenerLimits::default, |c| c.limits.clone())
    }

    /// The connection's protocol version (3.1.1 until its CONNECT says otherwise).
    fn version(&self, id: ConnId) -> ProtocolVersion {
        self.conns
            .get(id.0 as usize)
            .and_then(Option::as_ref)
            .map_or(ProtocolVersion::V311, |c| c.version)
    }

    /// The socket is gone. Publishes the will if the client did not DISCONNECT, and frees
    /// the connection; `id` may be reused afterwards.
    pub fn handle_closed(&mut self, id: ConnId, now: Instant) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if conn.state != ConnState::Closing {
            self.end_connection(id, CloseReason::SocketLost, now);
        }
        self.forget_held_acks(id);
        if let Some(conn) = self.conns.get_mut(id.0 as usize).and_then(Option::take) {
            self.stats.discard_output(conn.out.len(), conn.out_packets);
            self.recycle(conn.out);
            trim_slab(&mut self.conns);
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_event = now;
        while let Some((at, timer)) = self.timers.pop_expired(now) {
            match timer {
                Timer::Sys => self.publish_sys(now),
                Timer::Conn(id) => self.check_conn_deadline(id, at, now),
                Timer::SessionExpiry(sid) => self.expire_session(sid, at, now),
                Timer::WillDelay(sid) => self.publish_delayed_will(sid, at, now),
            }
        }
    }

    // ---- poll_* --------------------------------------------------------------------

    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    pub fn poll_dirty(&mut self) -> Option<ConnId> {
        while let Some(id) = self.dirty.pop() {
            if let Some(conn) = self.conn_mut(id) {
                conn.is_dirty = false;
                if conn.is_over_limit && matches!(conn.state, ConnState::Active(_)) {
                    // A client that lets its output pile up this far (retained bursts,
                    // large QoS 1/2 messages it does not read) is disconnected rather than
                    // allowed to grow the process: MQTT 5 is told Quota Exceeded (0x97).
                    let why = "unread output over its limit";
                    let now = self.last_event;
                    self.close(
                        id,
                        CloseReason::Violation(ReasonCode::QUOTA_EXCEEDED, why),
                        now,
                    );
                    return Some(id);
                }
                if !conn.out.is_empty() {
                    return Some(id);
                }
            }
        }
        None
    }

    pub fn poll_close(&mut self) -> Option<ConnId> {
        self.closing.pop_front()
    }

    /// The capacity of the largest outbox buffer freed since the last call (a burst of
    /// retained messages to a new `#` subscriber, a slow reader's backlog): worth handing
    /// back to the system when it was many megabytes, since the allocator keeps it
    /// otherwise. 0 if none was freed.
    pub fn take_dropped_output(&mut self) -> usize {
        std::mem::take(&mut self.dropped_output)
    }

    /// The bytes waiting to be written to `id`.
    pub fn output(&self, id: ConnId) -> &[u8] {
        self.conns
            .get(id.0 as usize)
            .and_then(Option::as_ref)
            .map_or(&[], |c| &c.out)
    }

    /// The socket took `n` bytes of [`Broker::output`].
    pub fn consume_output(&mut self, id: ConnId, n: usize) {
        self.stats.bytes_sent += n as u64;
        let Some(conn) = self.conns.get_mut(id.0 as usize).and_then(Option::as_mut) else {
            return;
        };
        let written = sys::packets_written(&conn.out, n, &mut conn.out_head_left);
        conn.out_packets = conn.out_packets.saturating_sub(written);
        self.stats.discard_output(n.min(conn.out.len()), written);
        let was_over = conn.out.len() > self.settings.outbox_limit;
        let emptied = if n >= conn.out.len() {
            Some(std::mem::take(&mut conn.out))
        } else {
            conn.out.drain(..n);
            None
        };
        let (state, left) = (conn.state, conn.out.len());
        if let Some(buf) = emptied {
            self.recycle(buf);
        }
        if let ConnState::Active(sid) = state {
            if was_over && left <= self.settings.outbox_limit {
                let waiting = self
                    .sessions
                    .get(sid.0 as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|s| !s.queue.is_empty());
                if waiting {
                    self.refill.push(sid);
                }
            }
        }
    }

    /// True when [`Broker::refill`] has work: the loop then calls it without waiting for
    /// an event.
    pub fn wants_refill(&self) -> bool {
        !self.refill.is_empty()
    }

    /// Sends the queued QoS 1/2 messages of sessions whose outbox drained (see
    /// [`Broker::consume_output`]). Called by the loop with the other input, before the
    /// journal is persisted, so what it sends is journaled before it leaves.
    pub fn refill(&mut self, now: Instant) {
        self.last_event = now;
        for sid in std::mem::take(&mut self.refill) {
            if self
                .sessions
                .get(sid.0 as usize)
                .is_some_and(Option::is_some)
            {
                self.drain_queue(sid, now);
            }
        }
    }

    /// Installs the password file and ACL (at start and on reload). Connected clients keep
    /// their connection; the new rules apply to what they do next, as in Mosquitto.
    pub fn set_auth(&mut self, passwords: Option<PasswordFile>, acl: Option<Acl>) {
        self.passwords = passwords;
        self.acl = acl;
    }

    /// After a reload: every connected client is checked again against anonymous access
    /// and the password file; those no longer allowed are disconnected (Mosquitto's
    /// security apply on SIGHUP).
    pub fn reauthenticate(&mut self, now: Instant) {
        let mut revoked = Vec::new();
        for (slot, conn) in self.conns.iter().enumerate() {
            let Some(Conn {
                state: ConnState::Active(sid),
                version,
                password,
                limits,
                listener,
                ..
            }) = conn
            else {
                continue;
            };
            if limits.username_from_certificate {
                // Its certificate was verified in the handshake; nothing to check again.
                continue;
            }
            let session = self.session(*sid);
            let connect = Connect {
                version: *version,
                clean_session: session.expiry_interval == 0,
                keep_alive: 0,
                client_id: &session.client_id,
                will: None,
                username: session.username.as_deref(),
                password: password.as_deref(),
                properties: Default::default(),
            };
            if self
                .authenticate(&connect, limits.allow_anonymous, *listener)
                .is_some()
            {
                revoked.push(ConnId(slot as u32));
            }
        }
        for id in revoked {
            self.close(id, CloseReason::Revoked, now);
        }
    }

    /// With `per_listener_settings true`: each listener's password file and ACL, by
    /// listener index (empty: the global ones apply everywhere).
    pub fn set_listener_auth(&mut self, auth: Vec<ListenerAuth>) {
        self.listener_auth = auth;
    }

    /// The password file and ACL that apply to clients of `listener`.
    fn auth_for(&self, listener: usize) -> (Option<&PasswordFile>, Option<&Acl>) {
        match self.listener_auth.get(listener) {
            Some(auth) => (auth.passwords.as_ref(), auth.acl.as_ref()),
            None if !self.listener_auth.is_empty() => (None, None),
            None => (self.passwords.as_ref(), self.acl.as_ref()),
        }
    }

    fn has_acl(&self) -> bool {
        self.acl.is_some() || self.listener_auth.iter().any(|a| a.acl.is_some())
    }

    /// Replaces the settings that can change on reload.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn set_settings(&mut self, settings: Settings) {
        self.settings = settings;
    }

    // ---- getters -------------------------------------------------------------------

    pub fn clients_connected(&self) -> usize {
        self.stats.clients_connected
    }

    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len() + self.shared.len()
    }

    pub fn retained_count(&self) -> usize {
        self.retained.len()
    }

    pub fn dropped_count(&self) -> u64 {
        self.stats.publish_dropped
    }

    // ---- dispatch ------------------------------------------------------------------

    // The packet is borrowed, not moved: a move of a `Packet` is a copy of the whole
    // enum, and several per frame were 14% of the broker's instructions (callgrind on the
    // static musl build, whose memcpy is slow for small copies).
    fn dispatch(&mut self, id: ConnId, state: ConnState, packet: &Packet<'_>, now: Instant) {
        let sid = match (state, packet) {
            (ConnState::Connecting, Packet::Connect(connect)) => {
                return self.handle_connect(id, connect, now);
            }
            // [MQTT-3.1.0-1]: the first packet must be CONNECT.
            (ConnState::Connecting, _) => {
                return self.close(
                    id,
                    CloseReason::UnexpectedPacket("a packet before CONNECT"),
                    now,
                );
            }
            // [MQTT-3.1.0-2]: a second CONNECT is a protocol violation.
            (ConnState::Active(_), Packet::Connect(_)) => {
                return self.close(id, CloseReason::UnexpectedPacket("a second CONNECT"), now);
            }
            (ConnState::Active(sid), _) => sid,
            (ConnState::Closing, _) => return,
        };
        match packet {
            Packet::Publish(publish) => self.handle_publish(id, sid, publish, now),
            Packet::Puback(ack) => self.handle_ack(sid, ack.packet_id, InflightState::Puback, now),
            Packet::Pubrec(ack) => self.handle_pubrec(id, sid, ack, now),
            Packet::Pubrel(ack) => self.handle_pubrel(id, sid, ack.packet_id),
            Packet::Pubcomp(ack) => {
                self.handle_ack(sid, ack.packet_id, InflightState::Pubcomp, now)
            }
            Packet::Subscribe(subscribe) => self.handle_subscribe(id, sid, subscribe, now),
            Packet::Unsubscribe(unsubscribe) => self.handle_unsubscribe(id, sid, unsubscribe),
            Packet::Pingreq => self.send(id, &Packet::Pingresp),
            Packet::Disconnect(disconnect) => self.handle_disconnect(id, sid, disconnect, now),
            Packet::Connect(_) => {}
            // Enhanced authentication is not supported: a CONNECT with an Authentication
            // Method was refused with 0x8C, so an AUTH now is a protocol error.
            // [MQTT-4.12.0-1]
            Packet::Auth(_) => self.close(
                id,
                CloseReason::UnexpectedPacket("AUTH without an authentication method"),
                now,
            ),
            Packet::Connack(_) | Packet::Suback(_) | Packet::Unsuback(_) | Packet::Pingresp => self
                .close(
                    id,
                    CloseReason::UnexpectedPacket("a packet only a server sends"),
                    now,
                ),
        }
    }

    // ---- CONNECT -------------------------------------------------------------------

    fn handle_connect(&mut self, id: ConnId, connect: &Connect<'_>, now: Instant) {
        let peer = self.peer(id);
        let from_certificate = self.conn_limits(id).username_from_certificate;
        let mut certificate_username = None;
        if let Some(conn) = self.conn_mut(id) {
            conn.version = connect.version;
            certificate_username = conn.certificate_username.take();
        }
        // Mosquitto: with use_identity_as_username or use_subject_as_username the
        // CONNECT's username and password are dropped; the certificate's name is the
        // username, for ACLs too, and the password file is not consulted.
        // One copy per connection: the will's topic is mounted in it below.
        let mut connect = connect.clone();
        if from_certificate {
            connect.username = certificate_username.as_deref();
            connect.password = None;
        }
        let mounted_will_topic = connect
            .will
            .as_ref()
            .and_then(|w| self.mount(id, w.topic).ok());
        if let (Some(will), Some(topic)) = (connect.will.as_mut(), mounted_will_topic.as_ref()) {
            will.topic = topic;
        }
        let is_v5 = connect.version == ProtocolVersion::V5;
        let refuse = |code| Some(code);
        let limits = self.conn_limits(id);
        let listener = self
            .conns
            .get(id.0 as usize)
            .and_then(Option::as_ref)
            .map_or(0, |c| c.listener);
        let is_accepted_version = match connect.version {
            ProtocolVersion::V31 => limits.accepts_v31,
            ProtocolVersion::V311 => limits.accepts_v311,
            ProtocolVersion::V5 => limits.accepts_v5,
        };
        let is_new_session = !self.by_client_id.contains_key(connect.client_id);
        let refusal = if !is_accepted_version {
            // 2.1 accept_protocol_versions: as an unsupported level. [MQTT-3.1.2-2]
            refuse(ReasonCode::UNSUPPORTED_PROTOCOL_VERSION)
        } else if is_new_session
            && self
                .settings
                .global_max_clients
                .is_some_and(|max| self.by_client_id.len() >= max)
        {
            // 2.1 global_max_clients: no room for another session.
            refuse(ReasonCode::SERVER_UNAVAILABLE)
        } else if is_v5 && connect.properties.authentication_method.is_some() {
            // Enhanced authentication is not supported. [MQTT-4.12.0-1]
            refuse(ReasonCode::BAD_AUTHENTICATION_METHOD)
        } else if connect.client_id.is_empty()
            && ((!connect.clean_session && !is_v5)
                || !self.settings.allow_zero_length_clientid
                || connect.version == ProtocolVersion::V31)
        {
            // [MQTT-3.1.3-8] (3.1.1): an empty id needs clean session; 3.1 requires 1-23
            // bytes. MQTT 5 lets the server assign one either way [MQTT-3.1.3-6].
            refuse(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID)
        } else if !is_v5
            && self.settings.max_keepalive != 0
            && connect.keep_alive > self.settings.max_keepalive
        {
            // Mosquitto: a 3.1/3.1.1 client cannot be told a shorter keep alive.
            refuse(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID)
        } else if connect
            .will
            .as_ref()
            .is_some_and(|w| w.qos > self.conn_limits(id).max_qos)
        {
            // [MQTT-3.2.2-12]
            refuse(ReasonCode::QOS_NOT_SUPPORTED)
        } else if connect.will.as_ref().is_some_and(|w| is_too_deep(w.topic)) {
            // A will is published like a PUBLISH, so its topic has the same depth limit.
            refuse(ReasonCode::TOPIC_NAME_INVALID)
        } else if connect.will.as_ref().is_some_and(|w| w.retain) && !self.settings.retain_available
        {
            // [MQTT-3.2.2-13]
            refuse(ReasonCode::RETAIN_NOT_SUPPORTED)
        } else if from_certificate && connect.username.is_none() {
            // Mosquitto: no certificate, or one without a common name, is a bad username.
            refuse(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
        } else if let Some(code) = (!from_certificate)
            .then(|| self.authenticate(&connect, limits.allow_anonymous, listener))
            .flatten()
        {
            refuse(code)
        } else if connect.will.as_ref().is_some_and(|w| {
            !self.is_allowed(
                connect.client_id,
                connect.username,
                w.topic,
                Access::Write,
                listener,
            )
        }) {
            // Mosquitto 2: a will the client may not publish refuses the connection.
            refuse(ReasonCode::NOT_AUTHORIZED)
        } else {
            None
        };
        if let Some(code) = refusal {
            info!(
                "Client {} from {peer} refused: {}.",
                display_id(connect.client_id),
                match code {
                    ReasonCode::NOT_AUTHORIZED => "not authorised",
                    ReasonCode::BAD_USER_NAME_OR_PASSWORD => "bad user name or password",
                    ReasonCode::BAD_AUTHENTICATION_METHOD => "unsupported authentication method",
                    ReasonCode::UNSUPPORTED_PROTOCOL_VERSION => "protocol version not accepted",
                    ReasonCode::SERVER_UNAVAILABLE => "global_max_clients reached",
                    _ => "identifier rejected",
                }
            );
            self.send_connack(id, false, code);
            return self.close(id, CloseReason::Refused, now);
        }

        let is_assigned = connect.client_id.is_empty();
        let client_id: Box<str> = if connect.client_id.is_empty() {
            // [MQTT-3.1.3-6]: unique. Counter and clock mixed can repeat (counter 1 at t,
            // counter 2 at t + 3 ns), and a client may have chosen such an id itself.
            loop {
                self.next_auto_id += 1;
                let id = format!(
                    "{}{:016X}",
                    limits.auto_id_prefix,
                    self.next_auto_id
                        ^ (now - self.started).as_nanos() as u64
                        ^ 0x9e37_79b9_7f4a_7c15
                );
                if !self.by_client_id.contains_key(id.as_str()) {
                    break id.into();
                }
            }
        } else {
            connect.client_id.into()
        };

        // 3.1.1: clean session 0 keeps the session forever (or persistent_client_expiration);
        // MQTT 5: Session Expiry Interval, absent = 0. [MQTT-3.1.2-23]
        let expiry_interval = match (is_v5, connect.clean_session) {
            (true, _) => connect.properties.session_expiry_interval.unwrap_or(0),
            (false, true) => 0,
            (false, false) => u32::MAX,
        };
        // Takeover [MQTT-3.1.4-2]; clean session / clean start discards the old state
        // [MQTT-3.1.2-6] [MQTT-3.1.2-4].
        let mut session_present = false;
        let sid = match self.by_client_id.get(&client_id).copied() {
            Some(old) => {
                if let Some(old_conn) = self.session(old).conn {
                    info!("Client {client_id} already connected, closing old connection.");
                    self.close(old_conn, CloseReason::TakenOver, now);
                }
                // close() may have ended a session that expires with its connection.
                match self.by_client_id.get(&client_id).copied() {
                    Some(old) if connect.clean_session => {
                        // The old session ends: a will it still holds goes out now.
                        self.publish_pending_will(old, now);
                        self.remove_session(old);
                        self.create_session(client_id.clone())
                    }
                    Some(old) => {
                        session_present = true;
                        old
                    }
                    None => self.create_session(client_id.clone()),
                }
            }
            None => self.create_session(client_id.clone()),
        };
        let session = self.session_mut(sid);
        session.conn = Some(id);
        session.expiry_interval = expiry_interval;
        session.username = connect.username.map(Box::from);
        session.listener = listener;
        let expires_at = session.expires_at.take();
        // A delayed will is not sent if the session is resumed in time. [MQTT-3.1.3-9]
        let pending_will = session.pending_will.take();
        if let Some(at) = expires_at {
            self.timers.cancel(at, Timer::SessionExpiry(sid));
        }
        if let Some((_, at)) = pending_will {
            self.timers.cancel(at, Timer::WillDelay(sid));
        }
        self.journal_connected(sid, pending_will.is_some());

        let password = self
            .auth_for(listener)
            .0
            .and(connect.password)
            .map(Box::from);
        let will = connect.will.as_ref().map(|w| {
            let props = MessageProps::from_properties(&w.properties, now);
            Message::with_props(w.topic, w.payload, w.qos, w.retain, props)
        });
        let will_delay = connect
            .will
            .as_ref()
            .and_then(|w| w.properties.will_delay_interval)
            .unwrap_or(0);
        // MQTT 5: a keep alive over max_keepalive (or none) is replaced by the server's,
        // told in CONNACK. [MQTT-3.2.2-21]
        let max_keepalive = self.settings.max_keepalive;
        // A bridge's local side is in-process: no keep alive (its link has its own).
        let server_keep_alive = (is_v5
            && listener != BRIDGE_LISTENER
            && max_keepalive != 0
            && (connect.keep_alive == 0 || connect.keep_alive > max_keepalive))
            .then_some(max_keepalive);
        let keep_alive = server_keep_alive.unwrap_or(connect.keep_alive);
        let conn = self
            .conn_mut(id)
            .expect("handle_connect runs for a live connection");
        conn.state = ConnState::Active(sid);
        conn.keep_alive = keep_alive;
        conn.password = password;
        conn.will = will;
        conn.will_delay = will_delay;
        if is_v5 {
            conn.receive_maximum = connect.properties.receive_maximum.unwrap_or(u16::MAX);
            conn.max_packet_size = connect.properties.maximum_packet_size.unwrap_or(0);
            conn.out_alias_maximum = connect
                .properties
                .topic_alias_maximum
                .unwrap_or(0)
                .min(conn.limits.max_topic_alias_broker);
        }
        self.arm_conn_timer(id, now);

        self.stats.clients_connected += 1;
        self.stats.clients_maximum = self.stats.clients_maximum.max(self.stats.clients_connected);
        if self.settings.connection_messages {
            let user = connect
                .username
                .map(|u| format!(", u'{u}'"))
                .unwrap_or_default();
            // Mosquitto's wording and its protocol numbers (p1 3.1, p2 3.1.1, p5 5.0),
            // which users grep for.
            let p = match connect.version {
                ProtocolVersion::V31 => 1,
                ProtocolVersion::V311 => 2,
                ProtocolVersion::V5 => 5,
            };
            info!(
                "New client connected from {peer} as {client_id} (p{p}, c{}, k{keep_alive}{user}).",
                u8::from(connect.clean_session),
            );
        }
        let limits = self.conn_limits(id);
        let mut connack = Connack::new(session_present, ReasonCode::SUCCESS);
        if is_v5 {
            let p = &mut connack.properties;
            if is_assigned {
                p.assigned_client_identifier = Some(&client_id);
            }
            // Our Receive Maximum: QoS 2 messages the client may have unreleased at once.
            let receive_maximum = self.receive_maximum();
            if receive_maximum != u16::MAX {
                p.receive_maximum = Some(receive_maximum);
            }
            p.topic_alias_maximum = Some(limits.max_topic_alias).filter(|n| *n != 0);
            p.server_keep_alive = server_keep_alive;
            if limits.max_qos != QoS::ExactlyOnce {
                p.maximum_qos = Some(limits.max_qos as u8);
            }
            if !self.settings.retain_available {
                p.retain_available = Some(0);
            }
            if self.settings.max_packet_size != 0 {
                p.maximum_packet_size = Some(self.settings.max_packet_size);
            }
        }
        self.send(id, &Packet::Connack(connack));
        if session_present {
            self.resend_inflight(id, sid, now);
        }
        self.drain_queue(sid, now);
    }

    /// The Receive Maximum culex announces: max_inflight_messages, as Mosquitto.
    fn receive_maximum(&self) -> u16 {
        u16::try_from(self.settings.max_inflight_messages).unwrap_or(u16::MAX)
    }

    /// MQTT 5 DISCONNECT from the client: its reason decides the will, and it may change
    /// the Session Expiry Interval, except from 0. [MQTT-3.14.2-2]
    fn handle_disconnect(&mut self, id: ConnId, sid: SessionId, d: &Disconnect<'_>, now: Instant) {
        if let Some(expiry) = d.properties.session_expiry_interval {
            let session = self.session_mut(sid);
            if session.expiry_interval == 0 && expiry != 0 {
                return self.close(
                    id,
                    CloseReason::Violation(
                        ReasonCode::PROTOCOL_ERROR,
                        "session expiry set on DISCONNECT after 0 on CONNECT",
                    ),
                    now,
                );
            }
            session.expiry_interval = expiry;
            self.journal_session_params(sid);
        }
        let reason = if d.reason == ReasonCode::DISCONNECT_WITH_WILL_MESSAGE {
            CloseReason::DisconnectedWithWill
        } else {
            CloseReason::Disconnected
        };
        self.close(id, reason, now);
    }

    /// Username and password against `password_file` and `allow_anonymous`; `None` when
    /// the client may connect.
    fn authenticate(
        &self,
        connect: &Connect<'_>,
        listener_allow_anonymous: Option<bool>,
        listener: usize,
    ) -> Option<ReasonCode> {
        if listener == BRIDGE_LISTENER {
            return None;
        }
        let allow_anonymous = listener_allow_anonymous.unwrap_or(self.settings.allow_anonymous);
        match (connect.username, self.auth_for(listener).0) {
            (None, _) if allow_anonymous => None,
            (None, _) => Some(ReasonCode::NOT_AUTHORIZED),
            (Some(user), Some(passwords)) => {
                if passwords.check(user, connect.password.unwrap_or_default()) {
                    None
                } else if connect.version == ProtocolVersion::V5 {
                    Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
                } else {
                    // Mosquitto answers a wrong password with 0x05 in 3.1/3.1.1: 0x04
                    // there means "malformed" user name or password (3.2.2.3).
                    Some(ReasonCode::NOT_AUTHORIZED)
                }
            }
            // A username without a password file is not checked (Mosquitto), but without
            // anonymous access there is nothing to check it against.
            (Some(_), None) if allow_anonymous => None,
            (Some(_), None) => Some(ReasonCode::NOT_AUTHORIZED),
        }
    }

    /// ACL check: Mosquitto's `$` topic rules always, the acl_file's rules if one is set.
    fn is_allowed(
        &self,
        client_id: &str,
        username: Option<&str>,
        topic: &str,
        access: Access,
        listener: usize,
    ) -> bool {
        if listener == BRIDGE_LISTENER {
            return true;
        }
        match self.auth_for(listener).1 {
            Some(acl) => acl.check(client_id, username, topic, access),
            None => dollar_topic_allowed(topic, access),
        }
    }

    /// A topic name a client sent, with its listener's mount point: `Ok` if prefixed,
    /// `Err` (the name as it is) without a mount point.
    fn mount<'t>(&self, id: ConnId, topic: &'t str) -> Result<String, &'t str> {
        match self.conns.get(id.0 as usize).and_then(Option::as_ref) {
            Some(Conn {
                limits:
                    ListenerLimits {
                        mount_point: Some(mount_point),
                        ..
                    },
                ..
            }) => Ok(format!("{mount_point}{topic}")),
            _ => Err(topic),
        }
    }

    /// A topic filter a client sent, with its listener's mount point; for a shared
    /// subscription the prefix goes before its filter (`$share/g/MOUNTf`; Mosquitto
    /// prefixes the whole string, which makes it an ordinary subscription that matches
    /// nothing). `None` if the prefixed filter is not valid.
    fn mount_filter<'f>(&self, id: ConnId, filter: &'f str) -> Option<std::borrow::Cow<'f, str>> {
        let mounted = match parse_shared(filter) {
            Some((name, inner)) => match self.mount(id, inner) {
                Ok(inner) => std::borrow::Cow::Owned(format!("$share/{name}/{inner}")),
                Err(_) => std::borrow::Cow::Borrowed(filter),
            },
            None => match self.mount(id, filter) {
                Ok(mounted) => std::borrow::Cow::Owned(mounted),
                Err(_) => std::borrow::Cow::Borrowed(filter),
            },
        };
        let inner = parse_shared(&mounted).map_or(&*mounted, |(_, inner)| inner);
        crate::topic::is_valid_filter(inner).then_some(mounted)
    }

    fn send_connack(&mut self, id: ConnId, session_present: bool, reason: ReasonCode) {
        self.send(id, &Packet::Connack(Connack::new(session_present, reason)));
    }

    // ---- PUBLISH -------------------------------------------------------------------

    fn handle_publish(&mut self, id: ConnId, sid: SessionId, publish: &Publish<'_>, now: Instant) {
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
        let topic: &str = match &mounted {
            Ok(t) => t,
            Err(t) => t,
        };
        if is_too_deep(topic) {
            // Mosquitto 2.0: "disconnected due to protocol error".
            let why = "topic name of more than 201 levels";
            return self.close(
                id,
                CloseReason::Violation(ReasonCode::TOPIC_NAME_INVALID, why),
                now,
            );
        }
        let is_duplicate_qos2 = match (publish.qos, publish.packet_id) {
            (QoS::ExactlyOnce, Some(pid)) => {
                let receive_maximum = usize::from(self.receive_maximum());
                let session = self.session_mut(sid);
                if session.awaiting_pubrel.contains(&pid) {
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
        let session = self.session(sid);
        let is_denied = !self.is_allowed(
            &session.client_id,
            session.username.as_deref(),
            topic,
            Access::Write,
            session.listener,
        );
        let reason = if is_denied {
            // Mosquitto (3.1.1): dropped, but the QoS flow completes so the client does
            // not resend it forever; MQTT 5 is told why.
            debug!(
                "Denied PUBLISH from {} (q{}, r{}, '{}').",
                session.client_id,
                publish.qos as u8,
                u8::from(publish.retain),
                topic
            );
            ReasonCode::NOT_AUTHORIZED
        } else if publish.payload.len() > self.settings.message_size_limit {
            // Mosquitto drops it but still completes the QoS flow (0x83 for MQTT 5).
            self.stats.publish_dropped += 1;
            warn!(
                "Dropped PUBLISH to '{}' from {}: payload of {} bytes exceeds message_size_limit.",
                topic,
                self.session(sid).client_id,
                publish.payload.len()
            );
            ReasonCode::IMPLEMENTATION_SPECIFIC_ERROR
        } else if publish.properties.payload_format_indicator == Some(1)
            && std::str::from_utf8(publish.payload).is_err()
        {
            // [MQTT-3.3.2-4] allows the check; the answer is 0x99. [MQTT-3.3.2.3.2]
            ReasonCode::PAYLOAD_FORMAT_INVALID
        } else if is_duplicate_qos2 {
            ReasonCode::SUCCESS
        } else {
            let stored = is_v5
                .then(|| MessageProps::from_properties(&publish.properties, now))
                .flatten()
                .map(|props| {
                    Message::with_props(
                        topic,
                        publish.payload,
                        publish.qos,
                        publish.retain,
                        Some(props),
                    )
                });
            let mut publication = Publication {
                topic,
                payload: publish.payload,
                qos: publish.qos,
                retain: publish.retain,
                stored,
                publisher: Some(sid),
            };
            let not_retained = publish.retain && !self.set_retained(&mut publication);
            match self.route(&mut publication, now) {
                // MQTT 5 is told that the retained store is full (it was delivered).
                _ if not_retained && is_v5 => ReasonCode::QUOTA_EXCEEDED,
                0 => ReasonCode::NO_MATCHING_SUBSCRIBERS,
                _ => ReasonCode::SUCCESS,
            }
        };
        match (publish.qos, publish.packet_id) {
            (QoS::AtLeastOnce, Some(pid)) => self.send_publish_ack(id, false, pid, reason, mark),
            (QoS::ExactlyOnce, Some(pid)) => {
                if reason.is_error() {
                    // An error PUBREC ends the exchange: no PUBREL will come. [MQTT-4.3.3]
                    self.session_mut(sid).awaiting_pubrel.retain(|p| *p != pid);
                    let packet_id = pid.get();
                    self.journal_session(sid, |j, sid| {
                        j.record(Record::Released { sid, packet_id })
                    });
                }
                self.send_publish_ack(id, true, pid, reason, mark)
            }
            _ => {}
        }
    }

    /// Stores or clears the retained message of a topic. [MQTT-3.3.1-5] [MQTT-3.3.1-10]
    /// Returns false if `max_retained_messages` or `max_retained_bytes` kept it out
    /// (the message is still delivered).
    fn set_retained(&mut self, publication: &mut Publication<'_>) -> bool {
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
    /// [MQTT-3.3.1-12]. Returns the number of deliveries.
    fn route(&mut self, publication: &mut Publication<'_>, now: Instant) -> usize {
        let mut matches = std::mem::take(&mut self.matches);
        self.subscriptions
            .for_each_match(publication.topic, |sid, sub| matches.push((sid, *sub)));
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
                |sid| {
                    sessions[sid.0 as usize]
                        .as_ref()
                        .is_some_and(|s| s.conn.is_some())
                },
                |sid, sub| matches.push((sid, *sub)),
            );
        }
        // `read` access is checked per delivery, as Mosquitto does (subscriptions are not
        // checked against the ACL file).
        let mut ordinary_left = ordinary;
        if self.has_acl() {
            let sessions = &self.sessions;
            let topic = publication.topic;
            let mut index = 0;
            matches.retain(|(sid, _)| {
                let keep = sessions[sid.0 as usize].as_ref().is_some_and(|s| {
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
        let mut deliveries = 0;
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
            let qos = publication.qos.min(first.qos);
            let retain = retain_as_published && publication.retain;
            self.deliver(sid, publication, qos, retain, &sub_ids, now);
            deliveries += 1;
            i = end;
        }
        sub_ids.clear();
        self.sub_ids = sub_ids;
        matches.clear();
        self.matches = matches;
        deliveries
    }

    /// Sends a message to a session now, or queues it.
    fn deliver(
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
        let session = self.session(sid);
        let online = session.conn.filter(|c| {
            self.conns
                .get(c.0 as usize)
                .and_then(Option::as_ref)
                .is_some_and(|c| c.state == ConnState::Active(sid))
        });
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
                let window = online.map_or(0, |c| self.window(c));
                // A client that is not reading its output has its QoS 1/2 messages wait
                // in the session queue (bounded by max_queued_messages/bytes), not in
                // its outbox; they move on when the outbox drains.
                let full = session.inflight.len() >= window
                    || !session.queue.is_empty()
                    || online.is_some_and(|c| self.is_backlogged(c));
                let sub_ids: Box<[u32]> = sub_ids.into();
                match online {
                    Some(conn) if !full => {
                        self.send_inflight(sid, conn, message, qos, retain, sub_ids, false, now)
                    }
                    _ => self.enqueue(sid, message, qos, retain, sub_ids),
                }
            }
        }
    }

    /// The connection's outbox holds more than `outbox_limit`.
    fn is_backlogged(&self, conn: ConnId) -> bool {
        self.conns
            .get(conn.0 as usize)
            .and_then(Option::as_ref)
            .is_some_and(|c| c.out.len() > self.settings.outbox_limit)
    }

    /// QoS 1/2 messages that may be in flight to a connection: max_inflight_messages, and
    /// the client's Receive Maximum. [MQTT-3.3.4-9]
    /// A bridge's local session stays below its free ids (see `next_packet_id`).
    fn window(&self, conn: ConnId) -> usize {
        let (receive_maximum, listener) = self
            .conns
            .get(conn.0 as usize)
            .and_then(Option::as_ref)
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

    /// Queues a QoS 1/2 message for later, within max_queued_messages/bytes; what does
    /// not fit is dropped and counted, as Mosquitto does.
    fn enqueue(
        &mut self,
        sid: SessionId,
        message: Rc<Message>,
        qos: QoS,
        retain: bool,
        sub_ids: Box<[u32]>,
    ) {
        let (mut max_messages, mut max_bytes) = (
            self.settings.max_queued_messages,
            self.settings.max_queued_bytes,
        );
        let session = self.sessions[sid.0 as usize]
            .as_mut()
            .expect("a SessionId held by the tree names a live session");
        let size = message.queued_size();
        if let Some(limits) = self.queue_limits.get(&session.client_id) {
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
                        if session.persisted {
                            if let Some(j) = self.journal.as_mut() {
                                j.record(Record::Dequeue { sid: sid.0 });
                            }
                        }
                    }
                }
            }
        }
        if (max_messages != 0 && session.queue.len() >= max_messages)
            || (max_bytes != 0 && session.queued_bytes + size > max_bytes)
        {
            self.stats.publish_dropped += 1;
            debug!(
                "Outgoing messages are being dropped for client {}.",
                session.client_id
            );
            return;
        }
        session.queued_bytes += size;
        self.stats.hold(&message);
        if session.persisted {
            if let Some(j) = self.journal.as_mut() {
                j.enqueue(sid.0, &message, qos, retain, &sub_ids);
            }
        }
        session.queue.push_back(Queued {
            message,
            qos,
            retain,
            sub_ids,
        });
    }

    #[allow(clippy::too_many_arguments)] // One delivery's parts.
    fn send_inflight(
        &mut self,
        sid: SessionId,
        conn: ConnId,
        message: Rc<Message>,
        qos: QoS,
        retain: bool,
        sub_ids: Box<[u32]>,
        from_queue: bool,
        now: Instant,
    ) {
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
            if from_queue {
                self.journal_session(sid, |j, sid| j.record(Record::Dequeue { sid }));
            }
            return;
        }
        self.stats.hold(&message);
        self.journal_session(sid, |j, sid| match from_queue {
            true => j.record(Record::Send {
                sid,
                packet_id: packet_id.get(),
            }),
            false => j.inflight(sid, packet_id, &message, qos, retain, &sub_ids),
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
        });
    }

    /// Moves queued messages into free inflight slots of an online session.
    fn drain_queue(&mut self, sid: SessionId, now: Instant) {
        let Some(conn) = self.session(sid).conn else {
            return;
        };
        let window = self.window(conn);
        loop {
            if self.is_backlogged(conn) {
                return;
            }
            let session = self.session_mut(sid);
            if session.inflight.len() >= window {
                return;
            }
            let Some(q) = session.queue.pop_front() else {
                return;
            };
            session.queued_bytes -= q.message.queued_size();
            self.stats.release(&q.message);
            if q.message.is_expired(now) {
                self.journal_session(sid, |j, sid| j.record(Record::Dequeue { sid }));
                continue;
            }
            self.send_inflight(sid, conn, q.message, q.qos, q.retain, q.sub_ids, true, now);
        }
    }

    /// On a resumed session: PUBLISH again with DUP for unacknowledged messages, PUBREL
    /// again for released ones, in their original order. [MQTT-4.4.0-1]
    fn resend_inflight(&mut self, conn: ConnId, sid: SessionId, now: Instant) {
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

    // ---- acknowledgements ----------------------------------------------------------

    /// PUBACK or PUBCOMP: the message leaves the inflight window.
    fn handle_ack(&mut self, sid: SessionId, pid: PacketId, expected: InflightState, now: Instant) {
        let session = self.session_mut(sid);
        if let Some(pos) = session
            .inflight
            .iter()
            .position(|i| i.packet_id == pid && i.state == expected)
        {
            self.remove_inflight(sid, pos);
            self.drain_queue(sid, now);
        } else {
            debug!(
                "Client {} acknowledged unknown packet id {}.",
                session.client_id,
                pid.get()
            );
        }
    }

    fn remove_inflight(&mut self, sid: SessionId, pos: usize) {
        if let Some(inflight) = self.session_mut(sid).inflight.remove(pos) {
            self.stats.release(&inflight.message);
            let packet_id = inflight.packet_id.get();
            self.journal_session(sid, |j, sid| j.record(Record::Acked { sid, packet_id }));
        }
    }

    fn handle_pubrec(&mut self, conn: ConnId, sid: SessionId, ack: &Ack<'_>, now: Instant) {
        let pid = ack.packet_id;
        let session = self.session_mut(sid);
        let found = session
            .inflight
            .iter()
            .position(|i| i.packet_id == pid && i.state != InflightState::Puback);
        if ack.reason.is_error() {
            // MQTT 5: the subscriber refused the message; the exchange ends here.
            if let Some(pos) = found {
                self.remove_inflight(sid, pos);
                self.drain_queue(sid, now);
            }
            return;
        }
        if let Some(pos) = found {
            session.inflight[pos].state = InflightState::Pubcomp;
            let packet_id = pid.get();
            self.journal_session(sid, |j, sid| j.record(Record::Pubrec { sid, packet_id }));
        }
        // [MQTT-4.3.3-1]: PUBREL answers PUBREC (again, if the PUBREC was repeated).
        self.send(conn, &Packet::Pubrel(Ack::new(pid)));
    }

    fn handle_pubrel(&mut self, conn: ConnId, sid: SessionId, pid: PacketId) {
        let session = self.session_mut(sid);
        let was_known = session.awaiting_pubrel.contains(&pid);
        session.awaiting_pubrel.retain(|p| *p != pid);
        if was_known {
            let packet_id = pid.get();
            self.journal_session(sid, |j, sid| j.record(Record::Released { sid, packet_id }));
        }
        // [MQTT-4.3.3-2]: PUBCOMP answers PUBREL, even for an id no longer known (MQTT 5
        // says so with 0x92).
        let mut ack = Ack::new(pid);
        if !was_known {
            ack.reason = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
        }
        self.send(conn, &Packet::Pubcomp(ack));
    }

    // ---- SUBSCRIBE / UNSUBSCRIBE ---------------------------------------------------

    fn handle_subscribe(
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
            // Mosquitto 2.0: "Invalid subscription string", the connection is closed.
            let why = "topic filter of more than 201 levels";
            return self.close(
                conn,
                CloseReason::Violation(ReasonCode::TOPIC_FILTER_INVALID, why),
                now,
            );
        }
        let mut send_retained = Vec::with_capacity(subscribe.filters.len());
        let max_qos = self.conn_limits(conn).max_qos;
        let is_v5 = self.version(conn) == ProtocolVersion::V5;
        let is_v3_bridge = !is_v5
            && self
                .conns
                .get(conn.0 as usize)
                .and_then(Option::as_ref)
                .is_some_and(|c| c.is_bridge);
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
                // Granted QoS is at most the listener's max_qos. [MQTT-3.8.4-6]
                let qos = options.qos.min(max_qos);
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
        self.send(
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
    fn add_subscription(&mut self, sid: SessionId, filter: &str, sub: Sub) -> bool {
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
    fn unsubscribe_in_trees(&mut self, filter: &str, sid: SessionId) {
        match parse_shared(filter) {
            Some((name, inner)) => self.shared.unsubscribe(name, inner, sid),
            None => self.subscriptions.unsubscribe(filter, sid),
        };
    }

    /// Removes a subscription; returns whether it existed.
    fn remove_subscription(&mut self, sid: SessionId, filter: &str) -> bool {
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
            found.retain(|m| {
                let user = username.as_deref();
                self.is_allowed(&client_id, user, m.topic(), Access::Read, listener)
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
            let qos = message.qos.min(granted);
            let mut publication = Publication::of(&message);
            // [MQTT-3.3.1-8]: RETAIN 1 on messages sent because of a new subscription.
            self.deliver(sid, &mut publication, qos, true, ids, now);
        }
    }

    fn handle_unsubscribe(&mut self, conn: ConnId, sid: SessionId, unsubscribe: &Unsubscribe<'_>) {
        let mut unsuback = Unsuback::new(unsubscribe.packet_id);
        for filter in &unsubscribe.filters {
            let existed = self
                .mount_filter(conn, filter)
                .is_some_and(|filter| self.remove_subscription(sid, &filter));
            log::info!(target: "unsubscribe", "{} {}", self.session(sid).client_id, filter);
            // MQTT 5: one code per filter. [MQTT-3.11.3-1]
            unsuback.codes.push(if existed {
                ReasonCode::SUCCESS
            } else {
                ReasonCode::NO_SUBSCRIPTION_EXISTED
            });
        }
        // [MQTT-3.10.4-4], even if no filter matched [MQTT-3.10.4-5].
        self.send(conn, &Packet::Unsuback(unsuback));
    }

    // ---- sessions ------------------------------------------------------------------

    fn create_session(&mut self, client_id: Box<str>) -> SessionId {
        let session = Session::new(client_id.clone());
        let sid = match self.free_sessions.pop() {
            Some(Reverse(slot)) => {
                self.sessions[slot as usize] = Some(session);
                SessionId(slot)
            }
            None => {
                self.sessions.push(Some(session));
                SessionId((self.sessions.len() - 1) as u32)
            }
        };
        self.by_client_id.insert(client_id, sid);
        sid
    }
}

impl Session {
    fn new(client_id: Box<str>) -> Session {
        Session {
            client_id,
            conn: None,
            expiry_interval: 0,
            subscriptions: Vec::new(),
            inflight: VecDeque::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            last_packet_id: 0,
            awaiting_pubrel: Vec::new(),
            expires_at: None,
            username: None,
            pending_will: None,
            listener: 0,
            persisted: false,
        }
    }
}

impl Broker {
    fn remove_session(&mut self, sid: SessionId) {
        self.journal_session(sid, |j, sid| j.record(Record::SessionEnd { sid }));
        let Some(session) = self.sessions.get_mut(sid.0 as usize).and_then(Option::take) else {
            return;
        };
        self.stats.release_session(&session);
        for (filter, _) in &session.subscriptions {
            self.unsubscribe_in_trees(filter, sid);
        }
        self.by_client_id.remove(&session.client_id);
        self.free_sessions.push(Reverse(sid.0));
        if trim_slab(&mut self.sessions) {
            let len = self.sessions.len() as u32;
            self.free_sessions.retain(|Reverse(slot)| *slot < len);
        }
        if self.by_client_id.capacity() > 64
            && self.by_client_id.len() < self.by_client_id.capacity() / 4
        {
            self.by_client_id.shrink_to_fit();
        }
    }

    /// A disconnected session reached its expiry: its delayed will goes out, and it and
    /// its queue are discarded. [MQTT-3.1.2-23]
    fn expire_session(&mut self, sid: SessionId, at: Instant, now: Instant) {
        let Some(session) = self.sessions.get(sid.0 as usize).and_then(Option::as_ref) else {
            return;
        };
        if session.conn.is_none() && session.expires_at == Some(at) {
            info!("Expiring client {}.", session.client_id);
            self.stats.clients_expired += 1;
            self.publish_pending_will(sid, now);
            self.remove_session(sid);
        }
    }

    /// The Will Delay Interval of a disconnected session passed. [MQTT-3.1.3-9]
    fn publish_delayed_will(&mut self, sid: SessionId, at: Instant, now: Instant) {
        let is_due = self
            .sessions
            .get(sid.0 as usize)
            .and_then(Option::as_ref)
            .and_then(|s| s.pending_will.as_ref())
            .is_some_and(|(_, due)| *due == at);
        if is_due {
            self.publish_pending_will(sid, now);
        }
    }

    fn publish_pending_will(&mut self, sid: SessionId, now: Instant) {
        let Some((will, at)) = self
            .sessions
            .get_mut(sid.0 as usize)
            .and_then(Option::as_mut)
            .and_then(|s| s.pending_will.take())
        else {
            return;
        };
        self.timers.cancel(at, Timer::WillDelay(sid));
        self.journal_session(sid, |j, sid| j.record(Record::WillDone { sid }));
        self.publish_will(&will, now);
    }

    /// Publishes a will as if its client had sent it (retained if it asked).
    fn publish_will(&mut self, will: &Rc<Message>, now: Instant) {
        let mut publication = Publication::of(will);
        if will.retain {
            self.set_retained(&mut publication);
        }
        self.route(&mut publication, now);
    }

    fn session(&self, sid: SessionId) -> &Session {
        self.sessions[sid.0 as usize]
            .as_ref()
            .expect("a SessionId held by a connection or the tree names a live session")
    }

    fn session_mut(&mut self, sid: SessionId) -> &mut Session {
        self.sessions[sid.0 as usize]
            .as_mut()
            .expect("a SessionId held by a connection or the tree names a live session")
    }

    // ---- connections ---------------------------------------------------------------

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.get_mut(id.0 as usize).and_then(Option::as_mut)
    }

    fn peer(&self, id: ConnId) -> String {
        self.conns
            .get(id.0 as usize)
            .and_then(Option::as_ref)
            .map_or_else(|| "?".to_string(), |c| c.peer.to_string())
    }

    /// Ends the connection's part in the broker and asks the loop to close the socket
    /// once its outbox is written.
    fn close(&mut self, id: ConnId, reason: CloseReason, now: Instant) {
        // MQTT 5: the server says why before it closes. [MQTT-4.13.1-1]
        let is_active_v5 = self
            .conns
            .get(id.0 as usize)
            .and_then(Option::as_ref)
            .is_some_and(|c| {
                c.version == ProtocolVersion::V5 && matches!(c.state, ConnState::Active(_))
            });
        if let Some(code) = disconnect_reason(reason).filter(|_| is_active_v5) {
            self.send(
                id,
                &Packet::Disconnect(Disconnect {
                    reason: code,
                    properties: Props::default(),
                }),
            );
        }
        self.end_connection(id, reason, now);
        self.closing.push_back(id);
    }

    /// The one place a connection ends: log line, will, session detached or removed.
    fn end_connection(&mut self, id: ConnId, reason: CloseReason, now: Instant) {
        let peer = self.peer(id);
        let Some(conn) = self.conns.get_mut(id.0 as usize).and_then(Option::as_mut) else {
            return;
        };
        let state = std::mem::replace(&mut conn.state, ConnState::Closing);
        let will = conn.will.take();
        let will_delay = conn.will_delay;
        if let Some(at) = conn.deadline.take() {
            self.timers.cancel(at, Timer::Conn(id));
        }
        let ConnState::Active(sid) = state else {
            match reason {
                CloseReason::Refused | CloseReason::SocketLost => {}
                _ => info!(
                    "Client <unknown> from {peer} disconnected: {}.",
                    describe(reason)
                ),
            }
            return;
        };
        self.stats.clients_connected -= 1;
        let client_id = self.session(sid).client_id.clone();
        if self.settings.connection_messages {
            match reason {
                CloseReason::Disconnected | CloseReason::DisconnectedWithWill => {
                    info!("Client {client_id} disconnected.")
                }
                CloseReason::SocketLost => info!("Client {client_id} closed its connection."),
                CloseReason::TakenOver => {}
                _ => info!("Client {client_id} disconnected: {}.", describe(reason)),
            }
        }
        let expiry_interval = self.session(sid).expiry_interval;
        if let Some(will) = will.filter(|_| reason != CloseReason::Disconnected) {
            // [MQTT-3.1.2-8]: the will is published when the connection ends without
            // DISCONNECT; [MQTT-3.1.2-10]: DISCONNECT discards it. MQTT 5 may delay it
            // until the Will Delay Interval or the session's end. [MQTT-3.1.3-9]
            if will_delay == 0 || expiry_interval == 0 {
                self.publish_will(&will, now);
            } else {
                let delay = will_delay.min(expiry_interval);
                let at = now + Duration::from_secs(u64::from(delay));
                self.journal_session(sid, |j, sid| j.will(sid, &will, at));
                self.session_mut(sid).pending_will = Some((will, at));
                self.timers.schedule(at, Timer::WillDelay(sid));
            }
        }
        // 3.1.1 persistent sessions, and MQTT 5's "never" (0xFFFFFFFF), last until
        // persistent_client_expiration if it is set; a bridge's outbox does not expire.
        let is_bridge = self.session(sid).listener == BRIDGE_LISTENER;
        let expires_after = match expiry_interval {
            0 => Some(Duration::ZERO),
            u32::MAX if is_bridge => None,
            u32::MAX => self.settings.persistent_client_expiration,
            secs => Some(Duration::from_secs(u64::from(secs))),
        };
        let session = self.session_mut(sid);
        session.conn = None;
        match expires_after {
            // [MQTT-3.1.2-6] / [MQTT-3.1.2-23]: the session ends with its connection.
            Some(after) if after.is_zero() => self.remove_session(sid),
            Some(after) => {
                let at = now + after;
                session.expires_at = Some(at);
                self.timers.schedule(at, Timer::SessionExpiry(sid));
                self.journal_session(sid, |j, sid| j.offline(sid, Some(at)));
            }
            None => self.journal_session(sid, |j, sid| j.offline(sid, None)),
        }
    }

    fn arm_conn_timer(&mut self, id: ConnId, now: Instant) {
        let Some(conn) = self.conns.get_mut(id.0 as usize).and_then(Option::as_mut) else {
            return;
        };
        if let Some(at) = conn.deadline.take() {
            self.timers.cancel(at, Timer::Conn(id));
        }
        if conn.keep_alive == 0 {
            return;
        }
        let at = now + keep_alive_grace(conn.keep_alive);
        conn.deadline = Some(at);
        self.timers.schedule(at, Timer::Conn(id));
    }

    fn check_conn_deadline(&mut self, id: ConnId, at: Instant, now: Instant) {
        let Some(conn) = self.conns.get_mut(id.0 as usize).and_then(Option::as_mut) else {
            return;
        };
        if conn.deadline != Some(at) {
            return;
        }
        conn.deadline = None;
        match conn.state {
            ConnState::Connecting => self.close(id, CloseReason::ConnectTimeout, now),
            ConnState::Active(_) => {
                // [MQTT-3.1.2-24]: one and a half times the keep alive without a packet.
                let due = conn.last_seen + keep_alive_grace(conn.keep_alive);
                if due <= now {
                    self.close(id, CloseReason::KeepAliveTimeout, now);
                } else {
                    conn.deadline = Some(due);
                    self.timers.schedule(due, Timer::Conn(id));
                }
            }
            ConnState::Closing => {}
        }
    }

    // ---- output --------------------------------------------------------------------

    fn hard_outbox_limit(&self) -> usize {
        self.settings
            .outbox_limit
            .saturating_mul(OUTBOX_HARD_FACTOR)
    }

    fn send(&mut self, id: ConnId, packet: &Packet<'_>) {
        let hard_limit = self.hard_outbox_limit();
        let pool = &mut self.pool;
        let Some(conn) = self.conns.get_mut(id.0 as usize).and_then(Option::as_mut) else {
            return;
        };
        let version = conn.version;
        conn.is_over_limit |= conn.out.len() > hard_limit;
        let out = outbox(&mut conn.out, pool);
        out.reserve(packet.encoded_len(version));
        let start = out.len();
        packet.encode(version, out);
        conn.out_packets += 1;
        self.stats.count_out(&out[start..]);
        self.mark_dirty(id);
    }

    /// Writes a PUBLISH in the connection's protocol version. Returns false if it was not
    /// written: expired [MQTT-3.3.2-5], or larger than the client's Maximum Packet Size
    /// (discarded as if sent [MQTT-3.1.2-25]).
    fn write_publish(&mut self, id: ConnId, m: &Outgoing<'_>, now: Instant) -> bool {
        let hard_limit = self.hard_outbox_limit();
        let pool = &mut self.pool;
        let Some(conn) = self.conns.get_mut(id.0 as usize).and_then(Option::as_mut) else {
            return false;
        };
        let start = conn.out.len();
        conn.is_over_limit |= start > hard_limit;
        // The client sees its topics without its mount point; it only subscribed to
        // topics under it.
        let m = &Outgoing {
            topic: match &conn.limits.mount_point {
                Some(mount_point) => m.topic.strip_prefix(&**mount_point).unwrap_or(m.topic),
                None => m.topic,
            },
            ..*m
        };
        if conn.version == ProtocolVersion::V5 {
            let mut properties = match m.props.map(|p| p.to_properties(now)) {
                Some(Some(p)) => p,
                Some(None) => return false,
                None => Properties::default(),
            };
            properties.subscription_identifiers = m.sub_ids.to_vec();
            // Outbound topic aliases [MQTT-3.3.2-8]: the first message on a topic sets
            // one, later ones send an empty topic name with it. No eviction: once the
            // client's maximum is used, other topics go out in full.
            let mut topic = m.topic;
            if conn.out_alias_maximum != 0 {
                match conn.out_aliases.iter().position(|t| **t == *m.topic) {
                    Some(i) => {
                        properties.topic_alias = Some(i as u16 + 1);
                        topic = "";
                    }
                    None if conn.out_aliases.len() < usize::from(conn.out_alias_maximum) => {
                        conn.out_aliases.push(m.topic.into());
                        properties.topic_alias = Some(conn.out_aliases.len() as u16);
                    }
                    None => {}
                }
            }
            let len = publish_v5_len(topic.len(), m.payload.len(), m.qos, &properties);
            if conn.max_packet_size != 0 && len > conn.max_packet_size as usize {
                self.stats.publish_dropped += 1;
                return false;
            }
            let out = outbox(&mut conn.out, pool);
            out.reserve(len);
            encode_publish_v5(
                out,
                topic,
                m.payload,
                m.qos,
                m.retain,
                m.dup,
                m.packet_id,
                &properties,
            );
        } else {
            let out = outbox(&mut conn.out, pool);
            out.reserve(publish_len(m.topic.len(), m.payload.len(), m.qos));
            encode_publish(out, m.topic, m.payload, m.qos, m.retain, m.dup, m.packet_id);
        }
        conn.out_packets += 1;
        self.stats.count_out(&conn.out[start..]);
        self.stats.publish_sent += 1;
        self.stats.publish_bytes_sent += m.payload.len() as u64;
        self.mark_dirty(id);
        true
    }

    fn mark_dirty(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(id.0 as usize).and_then(Option::as_mut) {
            if !conn.is_dirty {
                conn.is_dirty = true;
                self.dirty.push(id);
            }
        }
    }

    fn recycle(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() > 0 && buf.capacity() <= POOL_BUFFER_MAX && self.pool.len() < POOL_BUFFERS
        {
            buf.clear();
            self.pool.push(buf);
        } else if buf.capacity() > POOL_BUFFER_MAX {
            self.dropped_output = self.dropped_output.max(buf.capacity());
        }
    }
}

/// One PUBLISH to write.
struct Outgoing<'a> {
    topic: &'a str,
    payload: &'a [u8],
    props: Option<&'a MessageProps>,
    qos: QoS,
    retain: bool,
    dup: bool,
    packet_id: Option<PacketId>,
    sub_ids: &'a [u32],
}

/// The reason code an MQTT 5 client is sent in DISCONNECT when the server closes.
fn disconnect_reason(reason: CloseReason) -> Option<ReasonCode> {
    match reason {
        CloseReason::ProtocolError(e) => Some(ReasonCode::from(e)),
        CloseReason::UnexpectedPacket(_) => Some(ReasonCode::PROTOCOL_ERROR),
        CloseReason::KeepAliveTimeout => Some(ReasonCode::KEEP_ALIVE_TIMEOUT),
        CloseReason::TakenOver => Some(ReasonCode::SESSION_TAKEN_OVER),
        CloseReason::Revoked => Some(ReasonCode::NOT_AUTHORIZED),
        CloseReason::Violation(code, _) => Some(code),
        CloseReason::Disconnected
        | CloseReason::DisconnectedWithWill
        | CloseReason::SocketLost
        | CloseReason::ConnectTimeout
        | CloseReason::Refused => None,
    }
}

/// Drops the free slots at the end of a slab and gives memory back when most of it is
/// unused, so memory returns to near idle after many clients leave. Returns whether the
/// slab got shorter.
pub(crate) fn trim_slab<T>(slab: &mut Vec<Option<T>>) -> bool {
    let before = slab.len();
    while slab.last().is_some_and(Option::is_none) {
        slab.pop();
    }
    if slab.capacity() > 64 && slab.len() < slab.capacity() / 4 {
        slab.shrink_to_fit();
    }
    slab.len() != before
}

/// The outbox of a connection, taking a pooled buffer if it has none.
fn outbox<'a>(out: &'a mut Vec<u8>, pool: &mut Vec<Vec<u8>>) -> &'a mut Vec<u8> {
    if out.capacity() == 0 {
        if let Some(buf) = pool.pop() {
            *out = buf;
        }
    }
    out
}

/// The next packet id not in use by an inflight message. [MQTT-2.3.1-2] Terminates: at
/// most 65,534 ids are in flight (`max_inflight_messages` is capped at 65,535 and one id is
/// always free when a new message is sent); a bridge's local session, which keeps the ids
/// above [`BRIDGE_MAX_PACKET_ID`] free, has its window capped below that (`window`).
fn next_packet_id(session: &mut Session) -> PacketId {
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

fn keep_alive_grace(keep_alive: u16) -> Duration {
    Duration::from_millis(u64::from(keep_alive) * 1500)
}

fn display_id(id: &str) -> &str {
    if id.is_empty() {
        "<empty>"
    } else {
        id
    }
}

fn describe(reason: CloseReason) -> String {
    match reason {
        CloseReason::Disconnected => "client sent DISCONNECT".into(),
        CloseReason::DisconnectedWithWill => "client sent DISCONNECT with will".into(),
        CloseReason::Violation(code, what) => format!("protocol error ({what}, {code})"),
        CloseReason::SocketLost => "connection lost".into(),
        CloseReason::KeepAliveTimeout => "exceeded keep alive timeout".into(),
        CloseReason::ConnectTimeout => "no CONNECT in time".into(),
        CloseReason::ProtocolError(e) => format!("protocol error ({e})"),
        CloseReason::UnexpectedPacket(what) => format!("protocol error ({what})"),
        CloseReason::TakenOver => "taken over by a new connection".into(),
        CloseReason::Refused => "connection refused".into(),
        CloseReason::Revoked => "no longer authorised after a reload".into(),
    }
}

#[cfg(test)]
mod tests;
