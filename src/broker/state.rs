//! The core's plain data: connection and session ids, what the core knows of a
//! connection (`Conn`; its `ConnState` changes only through `Broker::set_state`), sessions
//! with their inflight windows and queues, subscription options and timer entries, and
//! the lookups from an id to its data.

use super::settings::ListenerLimits;
use super::{Broker, Message};
use crate::protocol::{PacketId, ProtocolVersion, QoS};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

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
            // Mosquitto's form, `IP:PORT` with an IPv6 address bare as `inet_ntop` writes
            // it (`::ffff:192.0.2.1:40000`): filters written for its log lines
            // (fail2ban's `<HOST>:\d+`) match ours.
            Peer::Inet(address) => write!(f, "{}:{}", address.ip(), address.port()),
            // Mosquitto's form: the path and port 0.
            Peer::Unix(path) => write!(f, "{path}:0"),
            Peer::Bridge(name) => write!(f, "bridge {name}"),
        }
    }
}

/// A session slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub(super) u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConnState {
    /// Accepted, waiting for CONNECT.
    Connecting,
    Active(SessionId),
    /// Asked the loop to close; nothing more is processed.
    Closing,
}

pub(super) struct Conn {
    pub(super) peer: Peer,
    /// Written only by [`Conn::set_state`].
    state: ConnState,
    pub(super) version: ProtocolVersion,
    pub(super) keep_alive: u16,
    pub(super) last_seen: Instant,
    /// The one pending timer entry of this connection (connect timeout or keep alive).
    pub(super) deadline: Option<Instant>,
    pub(super) will: Option<Rc<Message>>,
    pub(super) out: Vec<u8>,
    /// `out` is empty but keeps its capacity, and is on `Broker::kept_buffers`.
    pub(super) keeps_buffer: bool,
    pub(super) is_dirty: bool,
    /// A packet was added while the outbox already held more than
    /// `OUTBOX_HARD_FACTOR * outbox_limit`: the client is disconnected. Judged before each
    /// packet is added, so one message of any accepted size always fits.
    pub(super) is_over_limit: bool,
    /// The password it connected with, kept only while a password file is in use, so a
    /// reload can disconnect clients whose credentials were revoked (as Mosquitto does).
    pub(super) password: Option<Box<[u8]>>,
    /// MQTT 5: Will Delay Interval in seconds. [MQTT-3.1.3.2.2]
    pub(super) will_delay: u32,
    /// MQTT 5: the client's Receive Maximum, which bounds our QoS 1/2 sends. [MQTT-3.3.4-9]
    pub(super) receive_maximum: u16,
    /// MQTT 5: the client's Maximum Packet Size; 0 if it set none. [MQTT-3.1.2-24]
    pub(super) max_packet_size: u32,
    /// MQTT 5: topic aliases the client set, index = alias - 1; allocated on first use.
    pub(super) topic_aliases: Vec<Option<Box<str>>>,
    /// MQTT 5: topics culex gave an alias toward the client, index = alias - 1.
    pub(super) out_aliases: Vec<Box<str>>,
    /// MQTT 5: how many aliases culex may set toward the client (its Topic Alias Maximum
    /// and our max_topic_alias_broker).
    pub(super) out_alias_maximum: u16,
    pub(super) limits: ListenerLimits,
    /// Packets in `out` not yet wholly taken by the socket, and how many bytes of the
    /// first of them are left when the socket took only part of it ($SYS packet/out).
    pub(super) out_packets: u64,
    pub(super) out_head_left: usize,
    /// Its listener's index (`Settings::listeners`).
    pub(super) listener: usize,
    /// The username its client certificate stands for (see `set_certificate_username`).
    pub(super) certificate_username: Option<Box<str>>,
    /// A Mosquitto bridge (`try_private`: protocol level | 0x80): its 3.1/3.1.1
    /// subscriptions get No Local and Retain As Published, as Mosquitto gives them, so
    /// its own messages do not come back to it.
    pub(super) is_bridge: bool,
    /// MQTT 5: packet ids of QoS 2 PUBLISHes this connection already sent again before
    /// their PUBREL. One repeat is answered, as Mosquitto does; a second is a Protocol
    /// Error, since MQTT 5 resends only on reconnect. [MQTT-4.4.0-1]
    pub(super) repeated_qos2: Vec<PacketId>,
    /// A bridge's local session opened only to exist (`Broker::hold_queue`): its queue
    /// is not moved into flight, since nothing will read this connection.
    pub(super) holds_queue: bool,
}

impl Conn {
    /// A socket just accepted on `listener`, waiting for CONNECT until `deadline`.
    pub(super) fn new(
        peer: Peer,
        listener: usize,
        limits: ListenerLimits,
        now: Instant,
        deadline: Instant,
    ) -> Conn {
        Conn {
            peer,
            state: ConnState::Connecting,
            version: ProtocolVersion::V311,
            keep_alive: 0,
            last_seen: now,
            deadline: Some(deadline),
            will: None,
            out: Vec::new(),
            keeps_buffer: false,
            is_dirty: false,
            is_over_limit: false,
            holds_queue: false,
            password: None,
            will_delay: 0,
            receive_maximum: u16::MAX,
            max_packet_size: 0,
            topic_aliases: Vec::new(),
            out_aliases: Vec::new(),
            out_alias_maximum: 0,
            limits,
            out_packets: 0,
            out_head_left: 0,
            certificate_username: None,
            listener,
            is_bridge: false,
            repeated_qos2: Vec::new(),
        }
    }

    pub(super) fn state(&self) -> ConnState {
        self.state
    }

    /// The one writer of the connection's state: Connecting at `new`, Active when CONNECT
    /// is accepted, Closing when the connection ends. Returns the state it had.
    pub(super) fn set_state(&mut self, state: ConnState) -> ConnState {
        std::mem::replace(&mut self.state, state)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// What an inflight message waits for.
pub(super) enum InflightState {
    /// QoS 1 PUBLISH sent, waiting for PUBACK.
    Puback,
    /// QoS 2 PUBLISH sent, waiting for PUBREC.
    Pubrec,
    /// PUBREL sent, waiting for PUBCOMP.
    Pubcomp,
}

pub(super) struct Inflight {
    pub(super) packet_id: PacketId,
    pub(super) message: Rc<Message>,
    pub(super) qos: QoS,
    pub(super) retain: bool,
    /// MQTT 5 Subscription Identifiers of the matching subscriptions (empty: none).
    pub(super) sub_ids: Box<[u32]>,
    pub(super) state: InflightState,
    /// When the session took the message ([`super::Broker::secs`]): a bridge's backlog
    /// age ($SYS `backlog/oldest_age`).
    pub(super) since: i32,
}

pub(super) struct Queued {
    pub(super) message: Rc<Message>,
    pub(super) qos: QoS,
    pub(super) retain: bool,
    pub(super) sub_ids: Box<[u32]>,
    /// When the session took the message: whole seconds since the broker started
    /// ([`super::Broker::secs`]), negative for what a restart restored from before it
    /// (a bridge outbox's journaled time). 4 bytes that fit in the struct's padding (an
    /// `Instant` would add 16 to every entry).
    pub(super) since: i32,
}

/// A subscription's options, as the trees store them (8 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sub {
    pub(super) qos: QoS,
    /// MQTT 5 No Local: not sent the subscriber's own messages. [MQTT-3.8.3-3]
    pub(super) no_local: bool,
    /// MQTT 5 Retain As Published. [MQTT-3.3.1-12]
    pub(super) retain_as_published: bool,
    /// MQTT 5 Subscription Identifier; 0 for none.
    pub(super) id: u32,
}

pub(super) struct Session {
    pub(super) client_id: Box<str>,
    pub(super) conn: Option<ConnId>,
    /// Seconds the session outlives its connection: 0 ends it with the connection (3.1.1
    /// clean session), u32::MAX never (3.1.1 persistent). [MQTT-3.1.2-23]
    pub(super) expiry_interval: u32,
    pub(super) subscriptions: Vec<(Box<str>, Sub)>,
    /// Outgoing QoS 1/2 messages, in the order they were sent.
    pub(super) inflight: VecDeque<Inflight>,
    /// Waiting for a free inflight slot or for the client to come back.
    pub(super) queue: VecDeque<Queued>,
    pub(super) queued_bytes: usize,
    pub(super) last_packet_id: u16,
    /// Incoming QoS 2 packet ids delivered but not yet released. [MQTT-4.3.3-2]
    pub(super) awaiting_pubrel: Vec<PacketId>,
    /// When this disconnected session ends; its one pending timer entry.
    pub(super) expires_at: Option<Instant>,
    /// The username of its (last) connection, for ACL checks on delivery.
    pub(super) username: Option<Box<str>>,
    /// MQTT 5: a will waiting for its Will Delay Interval, and when it is due.
    pub(super) pending_will: Option<(Rc<Message>, Instant)>,
    /// The listener of its (last) connection: whose ACL applies with per-listener settings.
    pub(super) listener: usize,
    /// Written to the journal: it outlived (or will outlive) a connection.
    pub(super) persisted: bool,
    /// What its retained messages record of their publisher (`check_retain_source`),
    /// made on first need and shared by them.
    pub(super) retain_source: Option<Rc<crate::message::MessageSource>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    /// Connect timeout or keep alive of a connection; see `Conn::deadline`.
    Conn(ConnId),
    /// Publish $SYS.
    Sys,
    /// A disconnected session's expiry; see `Session::expires_at`.
    SessionExpiry(SessionId),
    /// A delayed will; see `Session::pending_will`.
    WillDelay(SessionId),
    /// Whether a subscriber that is behind made progress (pressure.rs).
    Stall(ConnId),
    /// A bridge outbox's aged messages and paced replay (backlog.rs).
    Outbox(SessionId),
    /// Outbox buffers kept after they were written are given back if still empty
    /// (outbox.rs).
    KeptBuffers,
}

impl Session {
    pub(super) fn new(client_id: Box<str>) -> Session {
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
            retain_source: None,
        }
    }
}

impl Broker {
    pub(super) fn conn_limits(&self, id: ConnId) -> ListenerLimits {
        self.conns
            .get(id.0)
            .map_or_else(ListenerLimits::default, |c| c.limits.clone())
    }

    /// The connection's protocol version (3.1.1 until its CONNECT says otherwise).
    pub(super) fn version(&self, id: ConnId) -> ProtocolVersion {
        self.conns
            .get(id.0)
            .map_or(ProtocolVersion::V311, |c| c.version)
    }

    pub(super) fn session(&self, sid: SessionId) -> &Session {
        self.sessions
            .get(sid.0)
            .expect("a SessionId held by a connection or the tree names a live session")
    }

    pub(super) fn session_mut(&mut self, sid: SessionId) -> &mut Session {
        self.sessions
            .get_mut(sid.0)
            .expect("a SessionId held by a connection or the tree names a live session")
    }

    pub(super) fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.get_mut(id.0)
    }

    /// The client's address as Mosquitto writes it in log lines: `IP:PORT`, with an IPv6
    /// address bare (`::ffff:192.0.2.1:40000`, as `inet_ntop` gives it), so that filters
    /// written for Mosquitto's lines (fail2ban's `<HOST>:\d+`) match.
    /// The client's address without its port, as Mosquitto's `context->address`.
    pub(super) fn peer_address(&self, id: ConnId) -> String {
        match self.conns.get(id.0).map(|c| &c.peer) {
            Some(Peer::Inet(address)) => address.ip().to_string(),
            Some(Peer::Unix(path)) => path.to_string(),
            Some(peer @ Peer::Bridge(_)) => peer.to_string(),
            None => "?".to_string(),
        }
    }

    pub(super) fn peer(&self, id: ConnId) -> String {
        self.conns
            .get(id.0)
            .map_or_else(|| "?".to_string(), |c| c.peer.to_string())
    }
}
