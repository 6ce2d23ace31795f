//! The broker core: sessions, client-id takeover, the QoS 0/1/2 flows, inflight windows,
//! offline queues, wills, retained messages, keep alive, $SYS and the journal of durable
//! changes.
//!
//! This module contains no networking code, reads no clock and touches no file. It is
//! driven by calls saying what happened and answers through per-connection outboxes, a
//! queue of connections to close and a batch of journal records.
//!
//! # Calling protocol
//! ```text
//! At start (persistence on), before any connection:
//! restore(state, now)                   sessions and retained messages the store loaded
//! enable_journal(strict, next, now, wall) start writing records of durable changes
//! set_auth(passwords, acl) / set_listener_auth(per listener); again on reload, then
//! reauthenticate(now)                   disconnects clients no longer allowed
//!
//! Input, for everything that happened in one poll iteration:
//! handle_open(conn, peer, listener, now) a socket was accepted
//! set_certificate_username(conn, name)  its TLS handshake ended (listeners that take
//!                                       the username from the client certificate)
//! handle_frame(conn, frame, now)        one whole packet arrived (frame::check said so)
//! check_header(conn, byte, len, now)    the fixed header of a packet the loop would keep
//!                                       incomplete; false: keep nothing, stop reading
//! handle_framing_error(conn, e, now)    frame::check refused what arrived
//! handle_closed(conn, now)              the socket is gone (EOF, error, or after poll_close)
//! handle_timeout(now)                   time passed; call when next_deadline() is due
//! refill(now)                           sessions whose outbox drained send what waited in
//!                                       their queue; wants_refill() says there is work
//!                                       (the loop then polls without waiting)
//! publish_retained / publish_log        messages of the broker itself (bridge notifications,
//!                                       log lines on $SYS/broker/log)
//!
//! Persistence, after the input and before any output is written:
//! take_journal() -> Option<(batch, bytes)> this iteration's records, for the journal file
//! journal_records() / write_snapshot(out) compaction, when the store asks for it
//! set_durable(batch)                    the store made batches durable: held
//!                                       acknowledgements go out (strict mode)
//! set_persistence_status(status, degraded_since) for $SYS, and since when the store
//!                                       writes nothing (held acknowledgements are
//!                                       refused after REFUSE_AFTER)
//!
//! Output:
//! poll_dirty() -> Option<ConnId>        a connection whose outbox has bytes to write
//! output(conn) / consume_output(conn,n) the outbox, and how much the socket took
//! poll_close() -> Option<ConnId>        write what is left of the outbox, close, then
//!                                       call handle_closed
//!
//! Backpressure (pressure.rs), during input and output alike:
//! is_held(conn) -> bool                 asked after each packet handed over: while true,
//!                                       hand over no more of conn's packets (keep the rest
//!                                       of the read) and do not read its socket
//! poll_resumed() -> Option<ConnId>      after the output: a held connection released;
//!                                       read it in the next turn, event or not
//! take_dropped_output() -> usize        a large outbox buffer was freed (give memory back)
//! next_deadline() -> Option<Instant>    when to call handle_timeout next
//! ```
//!
//! The loop calls the input methods for one poll iteration, persists, then drains
//! `poll_dirty` (one write per connection per iteration), `poll_close` and
//! `poll_resumed`.
//!
//! # Persistence: the journal, and persist before flush
//! Every change of durable state writes a record through the hooks of `journal.rs`
//! (`journal_session`, `journal_retained`, `journal_connected`, `journal_session_params`),
//! called from a handful of places: `set_retained` (route.rs), `add_subscription` and
//! `remove_subscription` (subscribe.rs), `enqueue`, `send_inflight`, `drain_queue` and
//! `remove_inflight` (delivery.rs), the session's start (`take_over_or_create_session`,
//! connect.rs), its end or going offline (`remove_session`, `end_connection`, delayed
//! wills; lifecycle.rs), and the QoS 2 states (publish.rs, ack.rs). Records are written
//! when persistence is on (`enable_journal`), for retained messages outside `$SYS` and for
//! sessions that outlive their connection.
//!
//! The loop hands `take_journal`'s batch to the store before it writes any outbox, so a
//! packet never leaves before the records of what it reveals (an acknowledgement, a
//! delivery) are in the journal; `refill` runs with the input for the same reason. In strict mode (`persistence_sync ack`) an
//! acknowledgement that reports durable state (PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK,
//! a persistent session's CONNACK) is held in the core, with everything after it to that
//! client, until `set_durable` says its batch is on disk (`durable.rs`).
//!
//! # Layout
//! - here: the [`Broker`], the calling protocol above, and `dispatch`;
//! - packet handlers: `connect.rs` (CONNECT, DISCONNECT), `publish.rs`, `subscribe.rs`
//!   (SUBSCRIBE, UNSUBSCRIBE), `ack.rs` (PUBACK, PUBREC, PUBREL, PUBCOMP);
//! - the middle: `lifecycle.rs` (closing, keep alive, sessions, wills), `route.rs`
//!   (retained store and fan-out), `delivery.rs` (QoS 1/2 windows and queues),
//!   `access.rs` (authentication, ACL, mount points), `outbox.rs` (encoding into
//!   outboxes), `pressure.rs` (subscribers behind hold their publishers back; its module
//!   documentation is the design), `journal.rs`, `durable.rs` (acknowledgements held
//!   until durable), `sys.rs`, `bridge.rs`, `backlog.rs` (a bridge outbox's age limit,
//!   latest value per topic and paced replay);
//! - plain data: `state.rs` (connections, sessions), `settings.rs`, `stats.rs`.

mod access;
mod ack;
mod backlog;
mod bridge;
mod connect;
mod delivery;
mod durable;
mod dynsec;
mod framing;
mod journal;
mod lifecycle;
mod outbox;
mod pressure;
mod publish;
mod route;
mod settings;
mod state;
mod stats;
mod subscribe;
mod sys;
mod trace;

pub use crate::message::{Message, MessageProps};
/// `net` trims its connection slab with it (not yet a [`Slab`]).
pub(crate) use crate::slab::trim_slab;
pub use access::MAX_TOPIC_SEPARATORS;
pub use bridge::{Backlog, DropCause, Drops, QueueLimits, BRIDGE_LISTENER, BRIDGE_MAX_PACKET_ID};
pub use durable::REFUSE_AFTER;
pub use journal::Journal;
pub use settings::{ListenerAuth, ListenerLimits, Settings};
pub use state::{ConnId, Peer, SessionId};
pub use sys::Metrics;

use crate::auth::{Acl, PasswordFile};
use crate::protocol::{DecodeError, Disconnect, Packet, Props, ProtocolVersion, ReasonCode};
use crate::slab::Slab;
use crate::timer::Timers;
use crate::topic::{RetainedTree, SharedSubscriptions, SubscriptionTree};
use lifecycle::CloseReason;
use log::info;
use state::{Conn, ConnState, InflightState, Session, Sub, Timer};
use stats::Stats;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::Instant;

/// See the module documentation for the calling protocol.
pub struct Broker {
    settings: Settings,
    started: Instant,
    /// The `now` of the latest `handle_*` call: the time for work done in `poll_*`.
    last_event: Instant,
    /// By `ConnId`, which the loop assigns.
    conns: Slab<Conn>,
    /// By `SessionId`. Free slots are reused lowest first, so the slab stays compact and
    /// shrinks.
    sessions: Slab<Session>,
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
    /// Connections that kept a large outbox buffer after it was written (outbox.rs).
    kept_buffers: Vec<ConnId>,
    /// The largest outbox buffer too large for the pool dropped since the loop last asked
    /// (see [`Broker::take_dropped_output`]).
    dropped_output: usize,
    /// Sessions whose outbox fell back under `outbox_limit` while QoS 1/2 messages waited
    /// in their queue; [`Broker::refill`] moves them on.
    refill: Vec<SessionId>,
    stats: Stats,
    /// Publishers held on subscribers that are behind (pressure.rs).
    pressure: pressure::Pressure,
    sys: sys::SysState,
    /// `password_file`, loaded by the caller.
    passwords: Option<PasswordFile>,
    /// `acl_file`, loaded by the caller.
    acl: Option<Acl>,
    /// Mosquitto's dynamic-security plugin, built in (dynsec.rs): checked before the
    /// password file and ACL, which answer only what it leaves open.
    dynsec: Option<dynsec::DynSecState>,
    /// With `per_listener_settings true`: each listener's own files (by listener index),
    /// used instead of `passwords` and `acl`.
    listener_auth: Vec<ListenerAuth>,
    next_auto_id: u64,
    /// Secret keys for assigned client ids (std's per-process random SipHash keys), so
    /// another client cannot guess one and take its session over.
    auto_id_keys: std::collections::hash_map::RandomState,
    /// Queue limits of particular sessions (bridges' outboxes) and the state of their
    /// backlog, by client id (bridge.rs, backlog.rs).
    outboxes: HashMap<Box<str>, bridge::Outbox>,
    /// Messages dropped for particular sessions (bridges' outboxes), by cause, by client
    /// id: kept apart from the session, which a clean local session loses on each link.
    outbox_drops: HashMap<Box<str>, bridge::Drops>,
    /// Records of durable changes, when persistence is on.
    journal: Option<Journal>,
    /// With persistence: what the store last reported ($SYS).
    persistence_status: Option<crate::persist::Status>,
    /// Acknowledgements waiting until what they report is durable (`durable.rs`).
    holds: durable::Holds,
}

impl Broker {
    pub fn new(settings: Settings, now: Instant) -> Broker {
        let mut broker = Broker {
            settings,
            started: now,
            last_event: now,
            conns: Slab::new(),
            sessions: Slab::new(),
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
            kept_buffers: Vec::new(),
            dropped_output: 0,
            refill: Vec::new(),
            stats: Stats::default(),
            pressure: pressure::Pressure::default(),
            sys: sys::SysState::default(),
            passwords: None,
            acl: None,
            dynsec: None,
            listener_auth: Vec::new(),
            next_auto_id: 0,
            auto_id_keys: Default::default(),
            outboxes: HashMap::new(),
            outbox_drops: HashMap::new(),
            journal: None,
            persistence_status: None,
            holds: durable::Holds::default(),
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
        // Where each connected persistent session's packet identifiers stand: the next
        // start goes on from there, as Mosquitto's does from its database.
        let connected: Vec<(u32, u16)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.persisted && s.conn.is_some() && s.last_packet_id != 0)
            .map(|(slot, s)| (slot, s.last_packet_id))
            .collect();
        if let Some(j) = self.journal.as_mut() {
            for (sid, last) in connected {
                j.record(crate::persist::record::Record::PacketId { sid, last });
            }
        }
        let v5: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.version == ProtocolVersion::V5 && matches!(c.state(), ConnState::Active(_))
            })
            .map(|(slot, _)| ConnId(slot))
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
        let deadline = now + self.settings.connect_timeout;
        let limits = self
            .settings
            .listeners
            .get(listener)
            .cloned()
            .unwrap_or_default();
        self.conns
            .insert_at(conn.0, Conn::new(peer, listener, limits, now, deadline));
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
        if conn.state() == ConnState::Closing {
            return;
        }
        conn.last_seen = now;
        if conn.state() == ConnState::Connecting && crate::protocol::is_bridge_connect(frame) {
            conn.is_bridge = true;
        }
        let (version, state) = (conn.version, conn.state());
        self.stats.messages_received += 1;
        self.stats.bytes_received += frame.len() as u64;
        if let Some(first) = frame.first() {
            self.stats.packets_received[usize::from(first >> 4)] += 1;
        }
        // A PUBLISH of a connected client has no header rule (`header_verdict`): the
        // common packet skips reading its header twice.
        let is_publish = frame
            .first()
            .is_some_and(|b| b >> 4 == crate::protocol::PUBLISH);
        let checked = !(is_publish && matches!(state, ConnState::Active(_)));
        if let Some(Ok(Some(header))) = checked.then(|| crate::protocol::frame::parse_header(frame))
        {
            let verdict =
                framing::header_verdict(state, version, header.first_byte, header.remaining);
            if let Err(reason) = verdict {
                return self.close(id, reason, now);
            }
        }
        match Packet::decode_from_client(frame, version) {
            Ok(packet) => {
                if log::log_enabled!(log::Level::Debug) {
                    if let Some(client_id) = self.trace_id(id) {
                        trace::received(client_id, &packet);
                    }
                }
                self.dispatch(id, state, &packet, now)
            }
            Err(DecodeError::UnsupportedProtocolVersion(level))
                if state == ConnState::Connecting =>
            {
                // [MQTT-3.1.2-2]: answer 0x01 and disconnect.
                self.send_connack(id, false, ReasonCode::UNSUPPORTED_PROTOCOL_VERSION);
                if self.settings.connection_messages {
                    // Mosquitto 2.0's lines (handle_connect.c, loop.c).
                    info!(
                        target: "information",
                        "Invalid protocol version {level} in CONNECT from {}.",
                        self.peer_address(id)
                    );
                    info!("Client <unknown> disconnected due to protocol error.");
                }
                self.close(id, CloseReason::Refused, now);
            }
            Err(e) => self.close(id, CloseReason::ProtocolError(e), now),
        }
    }

    /// The loop found a frame it cannot delimit (bad Remaining Length, too large).
    pub fn handle_framing_error(&mut self, id: ConnId, error: DecodeError, now: Instant) {
        if self
            .conn_mut(id)
            .is_some_and(|c| c.state() != ConnState::Closing)
        {
            self.close(id, CloseReason::ProtocolError(error), now);
        }
    }

    /// The socket is gone. Publishes the will if the client did not DISCONNECT, and frees
    /// the connection; `id` may be reused afterwards.
    pub fn handle_closed(&mut self, id: ConnId, now: Instant) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if conn.state() != ConnState::Closing {
            self.end_connection(id, CloseReason::SocketLost, now);
        }
        self.forget_held_acks(id);
        self.forget_pressure(id, now);
        if let Some(conn) = self.conns.remove(id.0) {
            self.stats.discard_output(conn.out.len(), conn.out_packets);
            self.recycle(conn.out);
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
                Timer::Stall(id) => self.check_stall(id, at, now),
                Timer::Outbox(sid) => self.check_outbox(sid, at, now),
                Timer::KeptBuffers => self.release_kept_buffers(now),
            }
        }
        self.refuse_overdue_acks(now);
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let timers = self.timers.next_deadline();
        match self.refusal_deadline() {
            Some(at) => Some(timers.map_or(at, |t| t.min(at))),
            None => timers,
        }
    }

    pub fn poll_dirty(&mut self) -> Option<ConnId> {
        while let Some(id) = self.dirty.pop() {
            if let Some(conn) = self.conns.get_mut(id.0) {
                conn.is_dirty = false;
                if conn.is_over_limit && matches!(conn.state(), ConnState::Active(_)) {
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
                // Output held until durable is not written yet (`durable.rs`).
                if self.holds.visible(id, conn.out.len()) > 0 {
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

    /// The bytes waiting to be written to `id` (up to an acknowledgement held until
    /// durable).
    pub fn output(&self, id: ConnId) -> &[u8] {
        self.conns
            .get(id.0)
            .map_or(&[], |c| &c.out[..self.holds.visible(id, c.out.len())])
    }

    /// The socket took `n` bytes of [`Broker::output`].
    pub fn consume_output(&mut self, id: ConnId, n: usize) {
        self.stats.bytes_sent += n as u64;
        self.holds.consumed(id, n);
        let Some(conn) = self.conns.get_mut(id.0) else {
            return;
        };
        let written = sys::packets_written(&conn.out, n, &mut conn.out_head_left);
        conn.out_packets = conn.out_packets.saturating_sub(written);
        self.stats.discard_output(n.min(conn.out.len()), written);
        let was_over = conn.out.len() > self.settings.outbox_limit;
        let was_behind = conn.out.len() > pressure::low_mark(&self.settings);
        let emptied = if n >= conn.out.len() {
            outbox::Emptied::of(conn, self.settings.outbox_limit)
        } else {
            conn.out.drain(..n);
            outbox::Emptied::No
        };
        let (state, left) = (conn.state(), conn.out.len());
        match emptied {
            outbox::Emptied::No => {}
            outbox::Emptied::Free(buf) => self.recycle(buf),
            outbox::Emptied::Kept => self.note_kept_buffer(id),
        }
        if n > 0 && was_behind {
            // Bytes of a backlog taken: progress (a PINGRESP to a client that leaves its
            // QoS 1/2 queue unacknowledged is not).
            self.note_progress(id, self.last_event);
        }
        if let ConnState::Active(sid) = state {
            if was_over && left <= self.settings.outbox_limit {
                let waiting = self
                    .sessions
                    .get(sid.0)
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
            if self.sessions.contains(sid.0) {
                self.drain_queue(sid, now);
            }
        }
    }

    /// Replaces the settings that can change on reload.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn set_settings(&mut self, settings: Settings) {
        self.settings = settings;
    }

    pub fn clients_connected(&self) -> usize {
        self.stats.clients_connected
    }

    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len() + self.shared.len()
    }

    pub fn retained_count(&self) -> usize {
        self.retained.len()
    }

    /// The payload of the retained message on `topic`, if any.
    pub fn retained_payload(&self, topic: &str) -> Option<Vec<u8>> {
        self.retained.get(topic).map(|m| m.payload().to_vec())
    }

    pub fn dropped_count(&self) -> u64 {
        self.stats.publish_dropped
    }

    // The packet is borrowed, not moved: a move of a `Packet` is a copy of the whole
    // enum, and several per frame were 14% of the broker's instructions (callgrind on the
    // static musl build, whose memcpy is slow for small copies).
    /// The client id a connected client's packets are traced under (Mosquitto's
    /// per-packet debug lines); `None` before CONNECT is accepted.
    fn trace_id(&self, id: ConnId) -> Option<&str> {
        match self.conns.get(id.0)?.state() {
            ConnState::Active(sid) => self.sessions.get(sid.0).map(|s| &*s.client_id),
            _ => None,
        }
    }

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
            Packet::Puback(ack) => {
                self.handle_ack(id, sid, ack.packet_id, InflightState::Puback, now)
            }
            Packet::Pubrec(ack) => self.handle_pubrec(id, sid, ack, now),
            Packet::Pubrel(ack) => self.handle_pubrel(id, sid, ack.packet_id),
            Packet::Pubcomp(ack) => {
                self.handle_ack(id, sid, ack.packet_id, InflightState::Pubcomp, now)
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
}

#[cfg(test)]
mod tests;
