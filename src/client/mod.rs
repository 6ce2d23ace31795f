//! The MQTT client session as a sans-I/O state machine, used by the command-line tools
//! (`culex_pub`, `culex_sub`, `culex_rr`). The bridge does not use it: it drives a broker
//! session on a virtual connection and relays packets as they are (see [`crate::bridge`]).
//!
//! Like the broker core, it owns no socket and reads no clock: the caller decodes frames
//! from its transport, hands each [`Packet`] to [`Session::handle_packet`] with `now`,
//! calls [`Session::handle_timeout`] at [`Session::next_deadline`], writes what
//! [`Session::take_outgoing`] returns, and reads what happened from
//! [`Session::poll_event`]. Commands ([`Session::connect`], [`Session::publish`],
//! [`Session::subscribe`], ...) queue encoded packets the same way.
//!
//! What it implements: CONNECT/CONNACK for 3.1, 3.1.1 and 5.0 [MQTT-3.1] [MQTT-3.2];
//! QoS 1 and 2 in both directions [MQTT-4.3], with packet identifiers that are never
//! reused while in use [MQTT-2.3.1-2] and an inflight window bounded by our maximum and
//! the server's Receive Maximum [MQTT-3.3.4-7]; keep alive (PINGREQ when nothing was
//! sent for a keep-alive period, failure when its PINGRESP does not come within another)
//! [MQTT-3.1.2-23], honouring a Server Keep Alive; inbound Topic Aliases [MQTT-3.3.2.3.4];
//! on reconnect with a present session, unacknowledged PUBLISH (DUP set) and PUBREL are
//! sent again [MQTT-4.4.0-1].
//!
//! Timing assumption: bytes queued are written promptly by the caller, so "last sent"
//! is when a packet was queued.

pub mod cli;
pub mod format;
mod properties;

pub use properties::OwnedProperties;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use crate::protocol::{
    Ack, Connect, DecodeError, Disconnect, Packet, PacketId, ProtocolVersion, QoS, ReasonCode,
    Subscribe, SubscriptionOptions, Unsubscribe, Will,
};

/// What a client says in CONNECT, and its own limits.
#[derive(Debug, Clone)]
pub struct Options {
    pub version: ProtocolVersion,
    pub client_id: String,
    /// Clean Session (3.1.1) / Clean Start (5.0).
    pub clean_start: bool,
    /// Seconds; 0 turns keep alive off.
    pub keep_alive: u16,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
    pub will: Option<WillMessage>,
    /// CONNECT properties (MQTT 5). A Topic Alias Maximum here is what this client
    /// accepts from the server; a Receive Maximum, how many QoS 1/2 it takes at once.
    pub properties: OwnedProperties,
    /// Our cap on outgoing QoS 1/2 messages in flight (mosquitto's `max_inflight`, 20).
    pub max_inflight: u16,
}

impl Options {
    pub fn new(version: ProtocolVersion, client_id: &str) -> Options {
        Options {
            version,
            client_id: client_id.to_owned(),
            clean_start: true,
            keep_alive: 60,
            username: None,
            password: None,
            will: None,
            properties: OwnedProperties::default(),
            max_inflight: DEFAULT_MAX_INFLIGHT,
        }
    }
}

/// libmosquitto's default `max_inflight_messages`, and MQTT 5's Receive Maximum
/// default is larger (65,535), so the smaller of ours and the server's applies.
pub const DEFAULT_MAX_INFLIGHT: u16 = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WillMessage {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: QoS,
    pub retain: bool,
    pub properties: OwnedProperties,
}

/// A PUBLISH received from the server, its Topic Alias resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: QoS,
    pub retain: bool,
    pub dup: bool,
    pub packet_id: Option<PacketId>,
    pub properties: OwnedProperties,
    /// MQTT 5: the property identifiers in the order they were on the wire (when the
    /// PUBLISH came through [`Session::handle_frame`]), for output that keeps it.
    pub property_order: Vec<u8>,
}

/// What happened, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// CONNACK. An error `reason` means the server refused the connection; the session
    /// is then `Disconnected`.
    Connected {
        session_present: bool,
        reason: ReasonCode,
        properties: OwnedProperties,
    },
    Message(Message),
    Subscribed {
        packet_id: PacketId,
        codes: Vec<ReasonCode>,
    },
    Unsubscribed {
        packet_id: PacketId,
        codes: Vec<ReasonCode>,
    },
    /// A message given to [`Session::publish`] is done: QoS 0 once queued, QoS 1 on
    /// PUBACK, QoS 2 on PUBCOMP (or a PUBREC with an error code). `token` is what
    /// `publish` returned.
    Published {
        token: u64,
        packet_id: Option<PacketId>,
        reason: ReasonCode,
    },
    /// The server sent DISCONNECT (MQTT 5).
    Disconnected {
        reason: ReasonCode,
        properties: OwnedProperties,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Nothing sent yet, or the connection was lost.
    Disconnected,
    /// CONNECT sent, waiting for CONNACK.
    Connecting,
    Connected,
}

/// Why the session cannot go on. After one, the caller closes the connection; any
/// DISCONNECT the specification asks for is already queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientError {
    /// The server broke the protocol (a packet it must not send, or one out of turn).
    Protocol(&'static str),
    /// A frame from the server could not be decoded.
    Malformed(DecodeError),
    /// A Topic Alias of 0, above our maximum, or unknown. [MQTT-3.3.2-7] [MQTT-3.3.2-9]
    TopicAliasInvalid(u16),
    /// No PINGRESP within a keep-alive period of our PINGREQ.
    KeepAliveTimeout,
    /// No CONNACK within a keep-alive period of CONNECT (a client may not send PINGREQ
    /// before CONNACK, so the keep alive bounds the wait instead).
    ConnackTimeout,
    /// All 65,535 packet identifiers are in use.
    NoPacketIdentifiers,
    /// A command that needs a connection, while there is none.
    NotConnected,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Protocol(what) => write!(f, "protocol error from the server: {what}"),
            ClientError::Malformed(e) => write!(f, "malformed packet from the server: {e}"),
            ClientError::TopicAliasInvalid(alias) => {
                write!(f, "the server sent an invalid topic alias {alias}")
            }
            ClientError::KeepAliveTimeout => {
                f.write_str("the server did not answer PINGREQ within the keep alive")
            }
            ClientError::ConnackTimeout => {
                f.write_str("the server did not answer CONNECT within the keep alive")
            }
            ClientError::NoPacketIdentifiers => f.write_str("no free packet identifier"),
            ClientError::NotConnected => f.write_str("not connected"),
        }
    }
}

impl std::error::Error for ClientError {}

#[derive(Debug, Clone)]
struct OutMessage {
    topic: String,
    payload: Vec<u8>,
    qos: QoS,
    retain: bool,
    properties: OwnedProperties,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Named for what the flow waits for, as the spec describes each step.
#[allow(clippy::enum_variant_names)]
enum OutState {
    /// QoS 1 PUBLISH sent.
    AwaitingPuback,
    /// QoS 2 PUBLISH sent.
    AwaitingPubrec,
    /// PUBREL sent.
    AwaitingPubcomp,
}

#[derive(Debug)]
struct Inflight {
    token: u64,
    message: OutMessage,
    state: OutState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Subscribe,
    Unsubscribe,
}

/// One client session. See the module documentation for the calling protocol.
#[derive(Debug)]
pub struct Session {
    options: Options,
    state: State,
    outgoing: Vec<u8>,
    events: VecDeque<Event>,
    next_packet_id: u16,
    next_token: u64,
    inflight: BTreeMap<u16, Inflight>,
    /// QoS 1/2 messages waiting for room in the inflight window.
    pending: VecDeque<(u64, OutMessage)>,
    requests: BTreeMap<u16, Request>,
    /// Inbound QoS 2 messages whose PUBREL has not come yet, delivered on PUBREL as
    /// libmosquitto does (so the tools print messages in Mosquitto's order).
    awaiting_pubrel: BTreeMap<u16, Message>,
    /// The wire order of the properties of the PUBLISH being handled by `handle_frame`.
    property_order: Vec<u8>,
    /// The server's Receive Maximum (65,535 when it sends none). [MQTT-3.2.2.3.3]
    server_receive_maximum: u16,
    /// Keep alive in force: ours, or the Server Keep Alive. [MQTT-3.2.2.3.14]
    keep_alive: Duration,
    last_sent: Option<Instant>,
    ping_sent: Option<Instant>,
    /// Inbound Topic Aliases. [MQTT-3.3.2.3.4]
    aliases: HashMap<u16, String>,
    assigned_client_id: Option<String>,
}

impl Session {
    pub fn new(options: Options) -> Session {
        let keep_alive = Duration::from_secs(u64::from(options.keep_alive));
        Session {
            options,
            state: State::Disconnected,
            outgoing: Vec::new(),
            events: VecDeque::new(),
            next_packet_id: 1,
            next_token: 0,
            inflight: BTreeMap::new(),
            pending: VecDeque::new(),
            requests: BTreeMap::new(),
            awaiting_pubrel: BTreeMap::new(),
            property_order: Vec::new(),
            server_receive_maximum: u16::MAX,
            keep_alive,
            last_sent: None,
            ping_sent: None,
            aliases: HashMap::new(),
            assigned_client_id: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn version(&self) -> ProtocolVersion {
        self.options.version
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The client identifier the server assigned in CONNACK (MQTT 5), if any.
    pub fn assigned_client_id(&self) -> Option<&str> {
        self.assigned_client_id.as_deref()
    }

    /// QoS 1/2 messages sent and not yet acknowledged, plus those waiting to be sent.
    pub fn unacknowledged(&self) -> usize {
        self.inflight.len() + self.pending.len()
    }

    /// Subscribe and unsubscribe requests not yet acknowledged.
    pub fn open_requests(&self) -> usize {
        self.requests.len()
    }

    /// The encoded CONNECT for these options.
    pub fn connect_packet(&self) -> Vec<u8> {
        let o = &self.options;
        let will_properties = o.will.as_ref().map(|w| w.properties.as_properties());
        let connect = Connect {
            version: o.version,
            clean_session: o.clean_start,
            keep_alive: o.keep_alive,
            client_id: &o.client_id,
            will: o.will.as_ref().map(|w| Will {
                topic: &w.topic,
                payload: &w.payload,
                qos: w.qos,
                retain: w.retain,
                properties: will_properties.clone().unwrap_or_default().into(),
            }),
            username: o.username.as_deref(),
            password: o.password.as_deref(),
            properties: o.properties.as_properties().into(),
        };
        let mut out = Vec::new();
        Packet::Connect(Box::new(connect)).encode(o.version, &mut out);
        out
    }

    /// Starts a connection: queues CONNECT. Also the first step of a reconnect.
    pub fn connect(&mut self, now: Instant) {
        let packet = self.connect_packet();
        self.outgoing.extend_from_slice(&packet);
        self.set_state(State::Connecting);
        self.aliases.clear();
        self.ping_sent = None;
        self.keep_alive = Duration::from_secs(u64::from(self.options.keep_alive));
        self.last_sent = Some(now);
    }

    /// The transport closed or failed. Unacknowledged messages are kept for a reconnect.
    pub fn handle_connection_lost(&mut self) {
        self.set_state(State::Disconnected);
        self.ping_sent = None;
        self.outgoing.clear();
    }

    /// Bytes to write to the transport, in order.
    pub fn take_outgoing(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.outgoing)
    }

    pub fn has_outgoing(&self) -> bool {
        !self.outgoing.is_empty()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] must be called next: the keep-alive deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.keep_alive.is_zero() || self.state == State::Disconnected {
            return None;
        }
        match self.ping_sent {
            Some(sent) => Some(sent + self.keep_alive),
            None => self.last_sent.map(|t| t + self.keep_alive),
        }
    }

    /// Sends PINGREQ when the keep alive is due; fails when the last one went
    /// unanswered for a whole keep-alive period.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ClientError> {
        let Some(deadline) = self.next_deadline() else {
            return Ok(());
        };
        if now < deadline {
            return Ok(());
        }
        if self.state == State::Connecting {
            return Err(ClientError::ConnackTimeout);
        }
        if self.ping_sent.is_some() {
            return Err(ClientError::KeepAliveTimeout);
        }
        self.queue(&Packet::Pingreq, now);
        self.ping_sent = Some(now);
        Ok(())
    }

    /// Queues a message. QoS 0 is sent at once (and reported `Published`); QoS 1/2 is
    /// sent when the inflight window has room, and reported when acknowledged.
    pub fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        properties: &OwnedProperties,
        now: Instant,
    ) -> Result<u64, ClientError> {
        let token = self.next_token;
        self.next_token += 1;
        let message = OutMessage {
            topic: topic.to_owned(),
            payload: payload.to_vec(),
            qos,
            retain,
            properties: properties.clone(),
        };
        if qos == QoS::AtMostOnce {
            if self.state != State::Connected {
                return Err(ClientError::NotConnected);
            }
            self.send_publish(&message, None, false, now);
            self.events.push_back(Event::Published {
                token,
                packet_id: None,
                reason: ReasonCode::SUCCESS,
            });
        } else {
            self.pending.push_back((token, message));
            self.fill_window(now)?;
        }
        Ok(token)
    }

    pub fn subscribe(
        &mut self,
        filters: &[(&str, SubscriptionOptions)],
        properties: &OwnedProperties,
        now: Instant,
    ) -> Result<PacketId, ClientError> {
        if self.state != State::Connected {
            return Err(ClientError::NotConnected);
        }
        let packet_id = self.allocate_packet_id()?;
        self.requests.insert(packet_id.get(), Request::Subscribe);
        let packet = Packet::Subscribe(Subscribe {
            packet_id,
            filters: filters.to_vec(),
            properties: properties.as_properties().into(),
        });
        self.queue(&packet, now);
        Ok(packet_id)
    }

    pub fn unsubscribe(
        &mut self,
        filters: &[&str],
        properties: &OwnedProperties,
        now: Instant,
    ) -> Result<PacketId, ClientError> {
        if self.state != State::Connected {
            return Err(ClientError::NotConnected);
        }
        let packet_id = self.allocate_packet_id()?;
        self.requests.insert(packet_id.get(), Request::Unsubscribe);
        let packet = Packet::Unsubscribe(Unsubscribe {
            packet_id,
            filters: filters.to_vec(),
            properties: properties.as_properties().into(),
        });
        self.queue(&packet, now);
        Ok(packet_id)
    }

    /// Queues DISCONNECT (the will is discarded [MQTT-3.14.4-3]); the caller closes
    /// the connection once it is written.
    pub fn disconnect(&mut self, reason: ReasonCode, properties: &OwnedProperties, now: Instant) {
        if self.state == State::Disconnected {
            return;
        }
        let packet = Packet::Disconnect(Disconnect {
            reason,
            properties: properties.as_properties().into(),
        });
        self.queue(&packet, now);
        self.set_state(State::Disconnected);
    }

    /// A frame from the server could not be decoded: queues the MQTT 5 DISCONNECT with
    /// the matching reason code [MQTT-4.13.1-1] and returns the error to close with.
    pub fn handle_decode_error(&mut self, error: DecodeError, now: Instant) -> ClientError {
        self.violation(ReasonCode::from(error), now);
        ClientError::Malformed(error)
    }

    /// Decodes one whole frame (as [`crate::protocol::frame::check`] delimited it) and handles it; a
    /// frame that does not decode queues the DISCONNECT it calls for (MQTT 5).
    pub fn handle_frame(&mut self, frame: &[u8], now: Instant) -> Result<(), ClientError> {
        let packet = match Packet::decode(frame, self.options.version) {
            Ok(packet) => packet,
            Err(e) => return Err(self.handle_decode_error(e, now)),
        };
        if matches!(packet, Packet::Publish(_)) && self.options.version == ProtocolVersion::V5 {
            self.property_order = publish_property_order(frame);
        }
        let result = self.handle_packet(&packet, now);
        self.property_order.clear();
        result
    }

    /// Handles one packet from the server.
    pub fn handle_packet(&mut self, packet: &Packet<'_>, now: Instant) -> Result<(), ClientError> {
        match (self.state, packet) {
            (State::Connecting, Packet::Connack(connack)) => {
                let properties = OwnedProperties::from_properties(&connack.properties);
                if connack.reason.is_error() {
                    self.set_state(State::Disconnected);
                } else {
                    self.set_state(State::Connected);
                    let p = &connack.properties;
                    self.server_receive_maximum = p.receive_maximum.unwrap_or(u16::MAX);
                    if let Some(keep_alive) = p.server_keep_alive {
                        self.keep_alive = Duration::from_secs(u64::from(keep_alive));
                    }
                    self.assigned_client_id = p.assigned_client_identifier.map(str::to_owned);
                    self.resume(connack.session_present, now)?;
                }
                self.events.push_back(Event::Connected {
                    session_present: connack.session_present,
                    reason: connack.reason,
                    properties,
                });
                Ok(())
            }
            (State::Connected, Packet::Publish(publish)) => {
                let topic = self.resolve_topic(publish, now)?;
                let message = Message {
                    topic,
                    payload: publish.payload.to_vec(),
                    qos: publish.qos,
                    retain: publish.retain,
                    dup: publish.dup,
                    packet_id: publish.packet_id,
                    properties: OwnedProperties::from_properties(&publish.properties),
                    property_order: std::mem::take(&mut self.property_order),
                };
                match (publish.qos, publish.packet_id) {
                    (QoS::AtMostOnce, _) => self.events.push_back(Event::Message(message)),
                    (QoS::AtLeastOnce, Some(id)) => {
                        self.events.push_back(Event::Message(message));
                        self.queue(&Packet::Puback(Ack::new(id)), now);
                    }
                    (QoS::ExactlyOnce, Some(id)) => {
                        // Kept until PUBREL and delivered then, once; a resent PUBLISH
                        // (its PUBREL not seen yet) only gets its PUBREC again.
                        // [MQTT-4.3.3-9] (Method A of 4.3.3's figure.)
                        self.awaiting_pubrel.entry(id.get()).or_insert(message);
                        self.queue(&Packet::Pubrec(Ack::new(id)), now);
                    }
                    // The codec gives QoS 1/2 a packet id. [MQTT-2.3.1-5]
                    (_, None) => return Err(self.protocol_error("PUBLISH without packet id", now)),
                }
                Ok(())
            }
            (State::Connected, Packet::Puback(ack)) => {
                self.complete(ack, OutState::AwaitingPuback, now)
            }
            (State::Connected, Packet::Pubrec(ack)) => {
                let id = ack.packet_id.get();
                match self.inflight.get_mut(&id).map(|i| i.state) {
                    Some(OutState::AwaitingPubrec) if ack.reason.is_error() => {
                        // MQTT 5: the flow ends here. [MQTT-4.3.3-4]
                        self.complete(ack, OutState::AwaitingPubrec, now)?;
                    }
                    Some(OutState::AwaitingPubrec | OutState::AwaitingPubcomp) => {
                        if let Some(inflight) = self.inflight.get_mut(&id) {
                            inflight.state = OutState::AwaitingPubcomp;
                        }
                        self.queue(&Packet::Pubrel(Ack::new(ack.packet_id)), now);
                    }
                    _ => {
                        let mut pubrel = Ack::new(ack.packet_id);
                        if self.options.version == ProtocolVersion::V5 {
                            pubrel.reason = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
                        }
                        self.queue(&Packet::Pubrel(pubrel), now);
                    }
                }
                Ok(())
            }
            (State::Connected, Packet::Pubrel(ack)) => {
                let mut pubcomp = Ack::new(ack.packet_id);
                match self.awaiting_pubrel.remove(&ack.packet_id.get()) {
                    Some(message) => self.events.push_back(Event::Message(message)),
                    None if self.options.version == ProtocolVersion::V5 => {
                        pubcomp.reason = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
                    }
                    None => {}
                }
                self.queue(&Packet::Pubcomp(pubcomp), now);
                Ok(())
            }
            (State::Connected, Packet::Pubcomp(ack)) => {
                self.complete(ack, OutState::AwaitingPubcomp, now)
            }
            (State::Connected, Packet::Suback(suback)) => {
                let id = suback.packet_id.get();
                if self.requests.get(&id) != Some(&Request::Subscribe) {
                    return Err(self.protocol_error("SUBACK for no SUBSCRIBE", now));
                }
                self.requests.remove(&id);
                self.events.push_back(Event::Subscribed {
                    packet_id: suback.packet_id,
                    codes: suback.codes.clone(),
                });
                Ok(())
            }
            (State::Connected, Packet::Unsuback(unsuback)) => {
                let id = unsuback.packet_id.get();
                if self.requests.get(&id) != Some(&Request::Unsubscribe) {
                    return Err(self.protocol_error("UNSUBACK for no UNSUBSCRIBE", now));
                }
                self.requests.remove(&id);
                self.events.push_back(Event::Unsubscribed {
                    packet_id: unsuback.packet_id,
                    codes: unsuback.codes.clone(),
                });
                Ok(())
            }
            (State::Connected, Packet::Pingresp) => {
                self.ping_sent = None;
                Ok(())
            }
            (State::Connected | State::Connecting, Packet::Disconnect(disconnect)) => {
                self.set_state(State::Disconnected);
                self.events.push_back(Event::Disconnected {
                    reason: disconnect.reason,
                    properties: OwnedProperties::from_properties(&disconnect.properties),
                });
                Ok(())
            }
            (State::Connecting, _) => Err(self.protocol_error("a packet before CONNACK", now)),
            (State::Connected, Packet::Connack(_)) => {
                Err(self.protocol_error("a second CONNACK", now))
            }
            (State::Disconnected, _) => Ok(()),
            (_, Packet::Auth(_)) => Err(self.protocol_error("AUTH without authentication", now)),
            (_, _) => Err(self.protocol_error("a packet only clients send", now)),
        }
    }

    fn set_state(&mut self, state: State) {
        if self.state != state {
            log::debug!("client session state={:?}=>{:?}", self.state, state);
            self.state = state;
        }
    }

    fn queue(&mut self, packet: &Packet<'_>, now: Instant) {
        packet.encode(self.options.version, &mut self.outgoing);
        self.last_sent = Some(now);
    }

    fn send_publish(
        &mut self,
        message: &OutMessage,
        packet_id: Option<PacketId>,
        dup: bool,
        now: Instant,
    ) {
        let properties = message.properties.as_properties();
        let packet = Packet::Publish(crate::protocol::Publish {
            dup,
            qos: message.qos,
            retain: message.retain,
            topic: &message.topic,
            packet_id,
            payload: &message.payload,
            properties: properties.into(),
        });
        self.queue(&packet, now);
    }

    /// The inflight window: ours and the server's Receive Maximum. [MQTT-4.9.0-2]
    fn window(&self) -> usize {
        usize::from(self.options.max_inflight.min(self.server_receive_maximum)).max(1)
    }

    fn fill_window(&mut self, now: Instant) -> Result<(), ClientError> {
        while self.state == State::Connected && self.inflight.len() < self.window() {
            let Some((token, message)) = self.pending.pop_front() else {
                break;
            };
            let packet_id = match self.allocate_packet_id() {
                Ok(id) => id,
                Err(e) => {
                    self.pending.push_front((token, message));
                    return Err(e);
                }
            };
            self.send_publish(&message, Some(packet_id), false, now);
            let state = if message.qos == QoS::AtLeastOnce {
                OutState::AwaitingPuback
            } else {
                OutState::AwaitingPubrec
            };
            self.inflight.insert(
                packet_id.get(),
                Inflight {
                    token,
                    message,
                    state,
                },
            );
        }
        Ok(())
    }

    /// After CONNACK: resend what a present session still expects [MQTT-4.4.0-1]; with a
    /// new session, what was in flight is sent again as new messages.
    fn resume(&mut self, session_present: bool, now: Instant) -> Result<(), ClientError> {
        if !session_present {
            self.awaiting_pubrel.clear();
            let inflight = std::mem::take(&mut self.inflight);
            for (_, i) in inflight.into_iter().rev() {
                self.pending.push_front((i.token, i.message));
            }
        } else {
            let resend: Vec<(u16, OutState)> =
                self.inflight.iter().map(|(id, i)| (*id, i.state)).collect();
            for (id, state) in resend {
                let Some(packet_id) = PacketId::new(id) else {
                    continue;
                };
                if state == OutState::AwaitingPubcomp {
                    self.queue(&Packet::Pubrel(Ack::new(packet_id)), now);
                } else if let Some(message) = self.inflight.get(&id).map(|i| i.message.clone()) {
                    self.send_publish(&message, Some(packet_id), true, now);
                }
            }
        }
        self.fill_window(now)
    }

    fn complete(
        &mut self,
        ack: &Ack<'_>,
        expected: OutState,
        now: Instant,
    ) -> Result<(), ClientError> {
        let id = ack.packet_id.get();
        match self.inflight.get(&id) {
            Some(inflight) if inflight.state == expected => {
                let token = inflight.token;
                self.inflight.remove(&id);
                self.events.push_back(Event::Published {
                    token,
                    packet_id: Some(ack.packet_id),
                    reason: ack.reason,
                });
                self.fill_window(now)
            }
            // A late duplicate acknowledgement: nothing to do.
            _ => {
                log::debug!("ignoring an acknowledgement for unknown packet id {id}");
                Ok(())
            }
        }
    }

    fn resolve_topic(
        &mut self,
        publish: &crate::protocol::Publish<'_>,
        now: Instant,
    ) -> Result<String, ClientError> {
        let Some(alias) = publish.properties.topic_alias else {
            return Ok(publish.topic.to_owned());
        };
        let maximum = self.options.properties.topic_alias_maximum.unwrap_or(0);
        if alias == 0 || alias > maximum {
            self.violation(ReasonCode::TOPIC_ALIAS_INVALID, now);
            return Err(ClientError::TopicAliasInvalid(alias));
        }
        if publish.topic.is_empty() {
            match self.aliases.get(&alias) {
                Some(topic) => Ok(topic.clone()),
                None => {
                    self.violation(ReasonCode::PROTOCOL_ERROR, now);
                    Err(ClientError::TopicAliasInvalid(alias))
                }
            }
        } else {
            self.aliases.insert(alias, publish.topic.to_owned());
            Ok(publish.topic.to_owned())
        }
    }

    fn protocol_error(&mut self, what: &'static str, now: Instant) -> ClientError {
        self.violation(ReasonCode::PROTOCOL_ERROR, now);
        ClientError::Protocol(what)
    }

    /// MQTT 5: tell the server why we close. [MQTT-4.13.2-1]
    fn violation(&mut self, reason: ReasonCode, now: Instant) {
        if self.options.version == ProtocolVersion::V5 && self.state != State::Disconnected {
            let packet = Packet::Disconnect(Disconnect {
                reason,
                properties: Default::default(),
            });
            self.queue(&packet, now);
        }
        self.set_state(State::Disconnected);
    }

    /// The next packet identifier not in use by an outgoing PUBLISH or a request.
    /// [MQTT-2.3.1-2]
    fn allocate_packet_id(&mut self) -> Result<PacketId, ClientError> {
        for _ in 0..u16::MAX {
            let candidate = self.next_packet_id;
            self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
            if !self.inflight.contains_key(&candidate) && !self.requests.contains_key(&candidate) {
                if let Some(id) = PacketId::new(candidate) {
                    return Ok(id);
                }
            }
        }
        Err(ClientError::NoPacketIdentifiers)
    }
}

/// The property identifiers of an MQTT 5 PUBLISH frame, in wire order (the codec's
/// [`crate::protocol::Properties`] keeps values, not their order). The frame has been
/// decoded successfully, so its layout is known to be valid; bounds are checked anyway.
fn publish_property_order(frame: &[u8]) -> Vec<u8> {
    let mut order = Vec::new();
    let Some(&first) = frame.first() else {
        return order;
    };
    let mut i = 1;
    // Remaining Length, then the topic and (QoS 1/2) the packet id.
    let Some((_, n)) = var_int(frame.get(i..).unwrap_or_default()) else {
        return order;
    };
    i += n;
    let topic_len = two_bytes(frame, i);
    i += 2 + topic_len;
    if first & 0x06 != 0 {
        i += 2;
    }
    let Some((len, n)) = var_int(frame.get(i..).unwrap_or_default()) else {
        return order;
    };
    i += n;
    let end = (i + len).min(frame.len());
    while i < end {
        let id = frame[i];
        i += 1;
        order.push(id);
        i += match id {
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2a => 1,
            0x13 | 0x21 | 0x22 | 0x23 => 2,
            0x02 | 0x11 | 0x18 | 0x27 => 4,
            0x0b => var_int(frame.get(i..).unwrap_or_default()).map_or(end, |(_, n)| n),
            0x26 => {
                let k = 2 + two_bytes(frame, i);
                k + 2 + two_bytes(frame, i + k)
            }
            _ => 2 + two_bytes(frame, i),
        };
    }
    order
}

fn two_bytes(frame: &[u8], i: usize) -> usize {
    match (frame.get(i), frame.get(i + 1)) {
        (Some(&hi), Some(&lo)) => usize::from(u16::from_be_bytes([hi, lo])),
        _ => frame.len(),
    }
}

/// A Variable Byte Integer and its length in bytes.
fn var_int(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (n, &b) in bytes.iter().take(4).enumerate() {
        value |= usize::from(b & 0x7f) << (7 * n);
        if b & 0x80 == 0 {
            return Some((value, n + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests;
