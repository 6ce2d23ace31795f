//! Packet types and their decode/encode. [MQTT-2] fixed header, [MQTT-3] control packets.

use std::fmt;
use std::num::NonZeroU16;

use super::properties::property_name;
use super::reader::Reader;
use super::{ack, connect, frame, publish, subscribe, Properties, Props, ReasonCode};

/// The protocol level byte of CONNECT. [MQTT-3.1.2-2]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolVersion {
    /// MQTT 3.1, protocol name "MQIsdp", level 3.
    V31,
    /// MQTT 3.1.1, protocol name "MQTT", level 4.
    V311,
    /// MQTT 5.0, protocol name "MQTT", level 5.
    V5,
}

impl ProtocolVersion {
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V31 => 3,
            ProtocolVersion::V311 => 4,
            ProtocolVersion::V5 => 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QoS {
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    /// `None` for 3, which is malformed everywhere. [MQTT-3.3.1-4]
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// A packet identifier; zero is not a valid one. [MQTT-2.3.1-1]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PacketId(pub NonZeroU16);

impl PacketId {
    pub fn new(v: u16) -> Option<PacketId> {
        NonZeroU16::new(v).map(PacketId)
    }
    pub fn get(self) -> u16 {
        self.0.get()
    }
}

/// Why a packet could not be decoded. Small and `Copy`: it travels to the log line and,
/// for MQTT 5, to a reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The packet ended before a field it announced.
    UnexpectedEnd,
    /// Bytes left after the last field the packet type defines.
    TrailingBytes,
    /// Remaining Length longer than 4 bytes. [MQTT-2.2.3] (Non-minimal encodings are accepted.)
    MalformedRemainingLength,
    /// Remaining Length over the configured maximum packet size.
    PacketTooLarge,
    /// Packet type 0, or 15 (AUTH) outside MQTT 5.
    InvalidPacketType(u8),
    /// Fixed-header flags that the packet type reserves. [MQTT-2.2.2-1] [MQTT-2.2.2-2]
    ReservedFlags(u8),
    /// QoS 3 in PUBLISH, a will, or a subscription. [MQTT-3.3.1-4]
    InvalidQos,
    /// Packet identifier 0. [MQTT-2.3.1-1]
    PacketIdZero,
    /// Not well-formed UTF-8, or contains U+0000. [MQTT-1.5.3-1] [MQTT-1.5.3-2]
    InvalidUtf8,
    /// A topic name that is empty or contains `+` or `#`. [MQTT-3.3.2-2] [MQTT-4.7.3-1]
    InvalidTopicName,
    /// A topic filter that is empty or misuses a wildcard. [MQTT-4.7.1-2] [MQTT-4.7.1-3]
    InvalidTopicFilter,
    /// SUBSCRIBE without any filter. [MQTT-3.8.3-3]
    EmptySubscribe,
    /// UNSUBSCRIBE without any filter. [MQTT-3.10.3-2]
    EmptyUnsubscribe,
    /// Reserved bits of a SUBSCRIBE's requested QoS byte are set. [MQTT-3.8.3-4]
    SubscriptionOptions,
    /// The protocol name is neither "MQTT" nor "MQIsdp", or does not fit the level. [MQTT-3.1.2-1]
    InvalidProtocolName,
    /// A protocol level this codec does not speak. [MQTT-3.1.2-2]
    UnsupportedProtocolVersion(u8),
    /// The reserved bit of the CONNECT flags is set. [MQTT-3.1.2-3]
    ConnectReservedFlag,
    /// Will QoS or will retain set without the will flag, or will QoS 3. [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15]
    WillFlags,
    /// Password flag without username flag (3.1.1). [MQTT-3.1.2-22]
    PasswordWithoutUsername,
    /// CONNACK flags with reserved bits set, or an unknown return code. [MQTT-3.2.2-1]
    InvalidConnack,
    /// A SUBACK return code other than 0x00, 0x01, 0x02 or 0x80. [MQTT-3.9.3-2]
    InvalidSubackCode,
    /// A Variable Byte Integer (other than the Remaining Length) longer than 4 bytes
    /// [MQTT-1.5.5], or in more bytes than its value needs [MQTT-1.5.5-1].
    MalformedVarInt,
    /// MQTT 5: a property identifier that is unknown or not allowed in this packet type
    /// (section 2.2.2.2: a Malformed Packet).
    InvalidProperty(u8),
    /// MQTT 5: a property that may appear once appears again (a Protocol Error).
    DuplicateProperty(u8),
    /// MQTT 5: a property value out of its range, such as a Receive Maximum of 0 or a
    /// Maximum QoS of 2 (a Protocol Error).
    PropertyValue(u8),
    /// MQTT 5: a reason code this packet type may not carry. [MQTT-2.4]
    InvalidReasonCode(u8),
    /// MQTT 5: another violation the specification calls a Protocol Error.
    ProtocolError(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnexpectedEnd => f.write_str("packet ends before a field it announces"),
            DecodeError::TrailingBytes => f.write_str("unexpected bytes after the last field"),
            DecodeError::MalformedRemainingLength => f.write_str("malformed remaining length"),
            DecodeError::PacketTooLarge => f.write_str("packet larger than the maximum size"),
            DecodeError::InvalidPacketType(t) => write!(f, "invalid packet type {t}"),
            DecodeError::ReservedFlags(b) => {
                write!(f, "reserved fixed-header flags set (first byte 0x{b:02x})")
            }
            DecodeError::InvalidQos => f.write_str("invalid QoS 3"),
            DecodeError::PacketIdZero => f.write_str("packet identifier 0"),
            DecodeError::InvalidUtf8 => f.write_str("string is not valid UTF-8 or contains U+0000"),
            DecodeError::InvalidTopicName => f.write_str("invalid topic name"),
            DecodeError::InvalidTopicFilter => f.write_str("invalid topic filter"),
            DecodeError::EmptySubscribe => f.write_str("SUBSCRIBE without topic filters"),
            DecodeError::EmptyUnsubscribe => f.write_str("UNSUBSCRIBE without topic filters"),
            DecodeError::SubscriptionOptions => {
                f.write_str("reserved subscription option bits set")
            }
            DecodeError::InvalidProtocolName => f.write_str("invalid protocol name"),
            DecodeError::UnsupportedProtocolVersion(v) => {
                write!(f, "unsupported protocol version {v}")
            }
            DecodeError::ConnectReservedFlag => f.write_str("reserved CONNECT flag set"),
            DecodeError::WillFlags => f.write_str("will QoS/retain inconsistent with will flag"),
            DecodeError::PasswordWithoutUsername => {
                f.write_str("password flag without username flag")
            }
            DecodeError::InvalidConnack => f.write_str("invalid CONNACK"),
            DecodeError::InvalidSubackCode => f.write_str("invalid SUBACK return code"),
            DecodeError::MalformedVarInt => {
                f.write_str("variable byte integer longer than 4 bytes or than its value needs")
            }
            DecodeError::InvalidProperty(id) => match property_name(*id) {
                Some(name) => write!(f, "property {name} (0x{id:02x}) not allowed in this packet"),
                None => write!(f, "unknown property identifier 0x{id:02x}"),
            },
            DecodeError::DuplicateProperty(id) => write!(
                f,
                "property {} (0x{id:02x}) appears more than once",
                property_name(*id).unwrap_or("?")
            ),
            DecodeError::PropertyValue(id) => write!(
                f,
                "property {} (0x{id:02x}) has a value out of range",
                property_name(*id).unwrap_or("?")
            ),
            DecodeError::InvalidReasonCode(code) => {
                write!(f, "reason code 0x{code:02x} not allowed in this packet")
            }
            DecodeError::ProtocolError(what) => write!(f, "protocol error: {what}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Control packet types, the high nibble of the first byte. [MQTT-2.1.2]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    Connect = 1,
    Connack = 2,
    Publish = 3,
    Puback = 4,
    Pubrec = 5,
    Pubrel = 6,
    Pubcomp = 7,
    Subscribe = 8,
    Suback = 9,
    Unsubscribe = 10,
    Unsuback = 11,
    Pingreq = 12,
    Pingresp = 13,
    Disconnect = 14,
    /// MQTT 5 only.
    Auth = 15,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub qos: QoS,
    pub retain: bool,
    /// MQTT 5 Will Properties [MQTT-3.1.3.2]; empty in 3.1/3.1.1.
    pub properties: Props<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect<'a> {
    pub version: ProtocolVersion,
    /// Clean Session in 3.1.1, Clean Start in 5.0: the same bit. [MQTT-3.1.2.4]
    pub clean_session: bool,
    pub keep_alive: u16,
    /// May be empty; whether that is allowed is the broker's decision. [MQTT-3.1.3-6]
    pub client_id: &'a str,
    pub will: Option<Will<'a>>,
    pub username: Option<&'a str>,
    /// Without a username only in MQTT 5. [MQTT-3.1.2-22] (3.1.1)
    pub password: Option<&'a [u8]>,
    /// MQTT 5 CONNECT Properties; empty in 3.1/3.1.1.
    pub properties: Props<'a>,
}

impl<'a> Connect<'a> {
    /// A clean-session CONNECT without keep alive, will, credentials or properties: what
    /// tests and the load generator send (keep alive 0 is valid [MQTT-3.1.2-23]).
    pub fn minimal(version: ProtocolVersion, client_id: &'a str) -> Connect<'a> {
        Connect {
            version,
            clean_session: true,
            keep_alive: 0,
            client_id,
            will: None,
            username: None,
            password: None,
            properties: Props::default(),
        }
    }
}

/// CONNACK. In 3.1/3.1.1 `reason` travels as the return code it maps to
/// ([`ReasonCode::to_v3_connack`]) and `properties` are not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connack<'a> {
    pub session_present: bool,
    pub reason: ReasonCode,
    pub properties: Props<'a>,
}

impl Connack<'_> {
    /// A CONNACK without properties.
    pub fn new(session_present: bool, reason: ReasonCode) -> Connack<'static> {
        Connack {
            session_present,
            reason,
            properties: Props::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish<'a> {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Empty only in MQTT 5, with a Topic Alias in `properties`. [MQTT-3.3.2-1]
    pub topic: &'a str,
    /// `Some` exactly when `qos` is 1 or 2.
    pub packet_id: Option<PacketId>,
    pub payload: &'a [u8],
    /// MQTT 5 PUBLISH Properties; empty in 3.1/3.1.1.
    pub properties: Props<'a>,
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP. In 3.1/3.1.1 only the packet id is on the wire; in
/// MQTT 5 the reason code and properties are left out when they are 0x00 and empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack<'a> {
    pub packet_id: PacketId,
    pub reason: ReasonCode,
    pub properties: Props<'a>,
}

impl Ack<'_> {
    /// A successful acknowledgement without properties: the 3.1.1 form.
    pub fn new(packet_id: PacketId) -> Ack<'static> {
        Ack {
            packet_id,
            reason: ReasonCode::SUCCESS,
            properties: Props::default(),
        }
    }
}

/// The options byte of each SUBSCRIBE filter: the requested QoS in 3.1/3.1.1, plus No
/// Local, Retain As Published and Retain Handling in MQTT 5. [MQTT-3.8.3.1]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionOptions {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    /// 0: send retained messages on subscribe; 1: only for a new subscription; 2: never.
    pub retain_handling: u8,
}

impl SubscriptionOptions {
    /// Options with this maximum QoS and the MQTT 5 bits 0: all a 3.1.1 SUBSCRIBE holds.
    pub fn new(qos: QoS) -> SubscriptionOptions {
        SubscriptionOptions {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe<'a> {
    pub packet_id: PacketId,
    /// At least one. Each filter is valid ([`crate::topic::is_valid_filter`]); in MQTT 5
    /// a `$share/{ShareName}/{filter}` one is a valid shared subscription.
    pub filters: Vec<(&'a str, SubscriptionOptions)>,
    pub properties: Props<'a>,
}

/// SUBACK: one code per filter. In 3.1/3.1.1 only 0x00, 0x01, 0x02 and 0x80 exist;
/// another error code is encoded there as 0x80. [MQTT-3.9.3]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suback<'a> {
    pub packet_id: PacketId,
    pub codes: Vec<ReasonCode>,
    pub properties: Props<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe<'a> {
    pub packet_id: PacketId,
    pub filters: Vec<&'a str>,
    pub properties: Props<'a>,
}

/// UNSUBACK. In 3.1/3.1.1 it carries no codes: they are not encoded and decode as none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsuback<'a> {
    pub packet_id: PacketId,
    pub codes: Vec<ReasonCode>,
    pub properties: Props<'a>,
}

impl Unsuback<'_> {
    /// The 3.1.1 form: no codes, no properties.
    pub fn new(packet_id: PacketId) -> Unsuback<'static> {
        Unsuback {
            packet_id,
            codes: Vec::new(),
            properties: Props::default(),
        }
    }
}

/// DISCONNECT. Empty in 3.1/3.1.1; in MQTT 5 the reason code and properties are left out
/// when they are 0x00 and empty. [MQTT-3.14.2]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Disconnect<'a> {
    pub reason: ReasonCode,
    pub properties: Props<'a>,
}

/// AUTH, MQTT 5 only. [MQTT-3.15]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Auth<'a> {
    pub reason: ReasonCode,
    pub properties: Props<'a>,
}

impl Default for ReasonCode {
    fn default() -> ReasonCode {
        ReasonCode::SUCCESS
    }
}

// A CONNECT holds two property blocks (its own and the will's) and is twice the size of
// any other variant. It is boxed: one allocation per connection, against a copy of the
// whole enum at every move of every packet (a profile of the fan-through benchmark found
// up to five such moves per frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    Connect(Box<Connect<'a>>),
    Connack(Connack<'a>),
    Publish(Publish<'a>),
    Puback(Ack<'a>),
    Pubrec(Ack<'a>),
    Pubrel(Ack<'a>),
    Pubcomp(Ack<'a>),
    Subscribe(Subscribe<'a>),
    Suback(Suback<'a>),
    Unsubscribe(Unsubscribe<'a>),
    Unsuback(Unsuback<'a>),
    Pingreq,
    Pingresp,
    Disconnect(Disconnect<'a>),
    Auth(Auth<'a>),
}

impl<'a> Packet<'a> {
    /// Decodes one whole frame (fixed header included, exactly as long as
    /// [`crate::protocol::frame::check`] said). `version` is the connection's protocol
    /// version; CONNECT carries its own and ignores it.
    pub fn decode(frame: &'a [u8], version: ProtocolVersion) -> Result<Packet<'a>, DecodeError> {
        let header = frame::parse_header(frame)?.ok_or(DecodeError::UnexpectedEnd)?;
        let body = frame.get(header.header_len..).unwrap_or_default();
        if body.len() < header.remaining {
            return Err(DecodeError::UnexpectedEnd);
        }
        if body.len() > header.remaining {
            return Err(DecodeError::TrailingBytes);
        }
        let first_byte = header.first_byte;
        let kind = first_byte >> 4;
        let flags = first_byte & 0x0f;
        let is_v5 = version == ProtocolVersion::V5;
        // [MQTT-2.2.2-1] [MQTT-2.2.2-2] (3.1.1), [MQTT-2.1.3-1] (5.0): PUBLISH is the only
        // packet whose flags carry data; PUBREL, SUBSCRIBE and UNSUBSCRIBE must have
        // 0b0010, all others 0. Type 15 is AUTH in MQTT 5 and reserved before.
        let reserved_flags = match kind {
            0 => return Err(DecodeError::InvalidPacketType(kind)),
            AUTH if !is_v5 => return Err(DecodeError::InvalidPacketType(kind)),
            // CONNECT's depend on the protocol level it carries: `decode_connect`.
            PUBLISH | CONNECT => flags,
            // MQTT 3.1 gave every packet DUP, QoS and RETAIN bits (a resent PUBREL is
            // 0x6a there) and reserved none: Mosquitto checks none but PUBLISH's.
            _ if version == ProtocolVersion::V31 => flags,
            PUBREL | SUBSCRIBE | UNSUBSCRIBE => 0b0010,
            _ => 0,
        };
        if flags != reserved_flags {
            return Err(DecodeError::ReservedFlags(first_byte));
        }
        let mut r = Reader::new(body);
        let packet = match kind {
            CONNECT => Packet::Connect(Box::new(connect::decode_connect(first_byte, &mut r)?)),
            CONNACK => Packet::Connack(connect::decode_connack(&mut r, version)?),
            PUBLISH => Packet::Publish(publish::decode(first_byte, &mut r, version)?),
            PUBACK => Packet::Puback(ack::decode_ack(&mut r, version, PacketType::Puback)?),
            PUBREC => Packet::Pubrec(ack::decode_ack(&mut r, version, PacketType::Pubrec)?),
            PUBREL => Packet::Pubrel(ack::decode_ack(&mut r, version, PacketType::Pubrel)?),
            PUBCOMP => Packet::Pubcomp(ack::decode_ack(&mut r, version, PacketType::Pubcomp)?),
            SUBSCRIBE => Packet::Subscribe(subscribe::decode_subscribe(&mut r, version)?),
            SUBACK => Packet::Suback(subscribe::decode_suback(&mut r, version)?),
            UNSUBSCRIBE => Packet::Unsubscribe(subscribe::decode_unsubscribe(&mut r, version)?),
            UNSUBACK => Packet::Unsuback(subscribe::decode_unsuback(&mut r, version)?),
            PINGREQ => Packet::Pingreq,
            PINGRESP => Packet::Pingresp,
            DISCONNECT => Packet::Disconnect(ack::decode_disconnect(&mut r, version)?),
            AUTH => Packet::Auth(ack::decode_auth(&mut r)?),
            // 0 returned above; `kind` is four bits.
            _ => return Err(DecodeError::InvalidPacketType(kind)),
        };
        // Trailing bytes are malformed for every packet type, including the empty ones.
        r.expect_empty()?;
        Ok(packet)
    }

    /// [`Packet::decode`] for a server: decodes a frame a client sent, with the checks
    /// that depend on the direction.
    ///
    /// - CONNACK and PINGRESP, and SUBACK and UNSUBACK with their fixed-header flags
    ///   right, are a Protocol Error whatever their body: a client never sends them
    ///   (sections 3.2, 3.9, 3.11, 3.13 name the Server as their sender). Mosquitto's
    ///   broker refuses them so before reading the body (src/handle_connack.c,
    ///   lib/handle_suback.c, lib/handle_unsuback.c, lib/handle_ping.c: 0x82); SUBACK and
    ///   UNSUBACK with other flags stay malformed, as there.
    /// - A PUBLISH from a client "MUST NOT contain a Subscription Identifier"
    ///   [MQTT-3.3.4-6]; one is ignored (Mosquitto drops it too), two are a duplicate
    ///   property, a Protocol Error, as in Mosquitto (`mosquitto_property_check_all`).
    ///   A PUBLISH from a server may carry several (section 3.3.2.3.8), which is why
    ///   [`Packet::decode`] accepts them.
    pub fn decode_from_client(
        frame: &'a [u8],
        version: ProtocolVersion,
    ) -> Result<Packet<'a>, DecodeError> {
        if let Some(&first_byte) = frame.first() {
            let from_server_only = match first_byte >> 4 {
                CONNACK | PINGRESP => true,
                SUBACK | UNSUBACK => first_byte & 0x0f == 0,
                _ => false,
            };
            if from_server_only {
                return Err(DecodeError::ProtocolError("a packet only a server sends"));
            }
        }
        let packet = Packet::decode(frame, version)?;
        if let Packet::Publish(p) = &packet {
            if p.properties.subscription_identifiers.len() > 1 {
                return Err(DecodeError::DuplicateProperty(0x0b));
            }
        }
        Ok(packet)
    }

    /// The exact number of bytes [`Packet::encode`] appends.
    pub fn encoded_len(&self, version: ProtocolVersion) -> usize {
        frame::frame_len(self.body_len(version))
    }

    /// Appends the encoded packet to `out`. The caller has built a valid packet (lengths
    /// fit their fields); a value that cannot be encoded is a bug and panics in debug builds.
    ///
    /// CONNECT is encoded with its own `version` field. In 3.1/3.1.1 the MQTT 5 parts
    /// (properties, reason codes other than CONNACK's and SUBACK's) are not encoded; AUTH
    /// has no 3.1.1 form and is a caller bug there. In release builds a string longer
    /// than 65,535 bytes is cut to that length, so the frame stays exactly
    /// [`Packet::encoded_len`] bytes and the stream stays in sync.
    pub fn encode(&self, version: ProtocolVersion, out: &mut Vec<u8>) {
        debug_assert!(
            version == ProtocolVersion::V5 || !matches!(self, Packet::Auth(_)),
            "AUTH exists only in MQTT 5"
        );
        if let Packet::Publish(p) = self {
            let properties = (version == ProtocolVersion::V5).then_some(&*p.properties);
            publish::encode(
                out,
                p.topic,
                p.payload,
                p.qos,
                p.retain,
                p.dup,
                p.packet_id,
                properties,
            );
            return;
        }
        let body_len = self.body_len(version);
        out.reserve(frame::frame_len(body_len));
        out.push(self.first_byte());
        frame::write_remaining_length(out, body_len);
        match self {
            Packet::Connect(c) => connect::encode_connect(c, out),
            Packet::Connack(c) => connect::encode_connack(c, version, out),
            Packet::Puback(a) | Packet::Pubrec(a) | Packet::Pubrel(a) | Packet::Pubcomp(a) => {
                ack::encode_ack(a, version, out)
            }
            Packet::Subscribe(s) => subscribe::encode_subscribe(s, version, out),
            Packet::Suback(s) => subscribe::encode_suback(s, version, out),
            Packet::Unsubscribe(u) => subscribe::encode_unsubscribe(u, version, out),
            Packet::Unsuback(u) => subscribe::encode_unsuback(u, version, out),
            Packet::Disconnect(d) => ack::encode_disconnect(d, version, out),
            Packet::Auth(a) => ack::encode_auth(a, out),
            Packet::Pingreq | Packet::Pingresp | Packet::Publish(_) => {}
        }
    }

    /// The packet type's name as the specification writes it, for log lines.
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::Connack(_) => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::Puback(_) => "PUBACK",
            Packet::Pubrec(_) => "PUBREC",
            Packet::Pubrel(_) => "PUBREL",
            Packet::Pubcomp(_) => "PUBCOMP",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::Suback(_) => "SUBACK",
            Packet::Unsubscribe(_) => "UNSUBSCRIBE",
            Packet::Unsuback(_) => "UNSUBACK",
            Packet::Pingreq => "PINGREQ",
            Packet::Pingresp => "PINGRESP",
            Packet::Disconnect(_) => "DISCONNECT",
            Packet::Auth(_) => "AUTH",
        }
    }

    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::Connack(_) => PacketType::Connack,
            Packet::Publish(_) => PacketType::Publish,
            Packet::Puback(_) => PacketType::Puback,
            Packet::Pubrec(_) => PacketType::Pubrec,
            Packet::Pubrel(_) => PacketType::Pubrel,
            Packet::Pubcomp(_) => PacketType::Pubcomp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::Suback(_) => PacketType::Suback,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::Unsuback(_) => PacketType::Unsuback,
            Packet::Pingreq => PacketType::Pingreq,
            Packet::Pingresp => PacketType::Pingresp,
            Packet::Disconnect(_) => PacketType::Disconnect,
            Packet::Auth(_) => PacketType::Auth,
        }
    }

    /// First byte of the fixed header, for every type but PUBLISH (whose flags are data).
    fn first_byte(&self) -> u8 {
        let kind = self.packet_type() as u8;
        match kind {
            PUBREL | SUBSCRIBE | UNSUBSCRIBE => (kind << 4) | 0b0010,
            _ => kind << 4,
        }
    }

    /// Remaining Length: bytes after the fixed header.
    fn body_len(&self, version: ProtocolVersion) -> usize {
        let v5 = version == ProtocolVersion::V5;
        match self {
            Packet::Connect(c) => connect::connect_body_len(c),
            Packet::Connack(c) => 2 + if v5 { c.properties.encoded_len() } else { 0 },
            Packet::Publish(p) => {
                publish::body_len(p.topic.len(), p.payload.len(), p.qos)
                    + if v5 { p.properties.encoded_len() } else { 0 }
            }
            Packet::Puback(a) | Packet::Pubrec(a) | Packet::Pubrel(a) | Packet::Pubcomp(a) => {
                ack::ack_body_len(a, version)
            }
            Packet::Subscribe(s) => subscribe::subscribe_body_len(s, version),
            Packet::Suback(s) => subscribe::suback_body_len(s, version),
            Packet::Unsubscribe(u) => subscribe::unsubscribe_body_len(u, version),
            Packet::Unsuback(u) => subscribe::unsuback_body_len(u, version),
            Packet::Disconnect(d) => ack::disconnect_body_len(d, version),
            Packet::Auth(a) => ack::auth_body_len(a),
            Packet::Pingreq | Packet::Pingresp => 0,
        }
    }
}

/// Encodes a 3.1/3.1.1 PUBLISH from parts without building a [`Publish`]: the broker's
/// fan-out path. Appends exactly `publish_len(topic.len(), payload.len(), qos)` bytes.
pub fn encode_publish(
    out: &mut Vec<u8>,
    topic: &str,
    payload: &[u8],
    qos: QoS,
    retain: bool,
    dup: bool,
    packet_id: Option<PacketId>,
) {
    publish::encode(out, topic, payload, qos, retain, dup, packet_id, None);
}

/// Encoded length of a 3.1/3.1.1 PUBLISH with these sizes (fixed header included).
pub fn publish_len(topic_len: usize, payload_len: usize, qos: QoS) -> usize {
    frame::frame_len(publish::body_len(topic_len, payload_len, qos))
}

/// [`encode_publish`] for an MQTT 5 connection: the same, with a property block after
/// the packet identifier. Appends exactly [`publish_v5_len`] bytes.
#[allow(clippy::too_many_arguments)] // The parts of a PUBLISH, as in `encode_publish`.
pub fn encode_publish_v5(
    out: &mut Vec<u8>,
    topic: &str,
    payload: &[u8],
    qos: QoS,
    retain: bool,
    dup: bool,
    packet_id: Option<PacketId>,
    properties: &Properties<'_>,
) {
    publish::encode(
        out,
        topic,
        payload,
        qos,
        retain,
        dup,
        packet_id,
        Some(properties),
    );
}

/// Encoded length of an MQTT 5 PUBLISH with these sizes and properties.
pub fn publish_v5_len(
    topic_len: usize,
    payload_len: usize,
    qos: QoS,
    properties: &Properties<'_>,
) -> usize {
    frame::frame_len(publish::body_len(topic_len, payload_len, qos) + properties.encoded_len())
}

// Control packet types, the high nibble of the first byte. [MQTT-2.2.1]
pub(crate) const CONNECT: u8 = 1;
pub(crate) const CONNACK: u8 = 2;
pub(crate) const PUBLISH: u8 = 3;
pub(crate) const PUBACK: u8 = 4;
pub(crate) const PUBREC: u8 = 5;
pub(crate) const PUBREL: u8 = 6;
pub(crate) const PUBCOMP: u8 = 7;
pub(crate) const SUBSCRIBE: u8 = 8;
pub(crate) const SUBACK: u8 = 9;
pub(crate) const UNSUBSCRIBE: u8 = 10;
pub(crate) const UNSUBACK: u8 = 11;
pub(crate) const PINGREQ: u8 = 12;
pub(crate) const PINGRESP: u8 = 13;
pub(crate) const DISCONNECT: u8 = 14;
pub(crate) const AUTH: u8 = 15;

/// Bytes a Two Byte length prefix plus `len` bytes take once encoded; see [`put_binary`].
pub(crate) fn field_len(len: usize) -> usize {
    2 + len.min(usize::from(u16::MAX))
}

pub(crate) fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends Binary Data or a UTF-8 string: two-byte length, then the bytes. A value over
/// 65,535 bytes is a caller bug: it panics in debug builds and is cut in release builds,
/// consistently with [`field_len`], so the frame length stays right.
pub(crate) fn put_binary(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).unwrap_or_else(|_| {
        debug_assert!(
            false,
            "field of {} bytes does not fit a u16 length",
            bytes.len()
        );
        u16::MAX
    });
    put_u16(out, len);
    out.extend_from_slice(bytes.get(..usize::from(len)).unwrap_or(bytes));
}

/// A reason code that `packet` may carry, or [`DecodeError::InvalidReasonCode`].
pub(crate) fn reason_code(
    r: &mut Reader<'_>,
    packet: PacketType,
) -> Result<ReasonCode, DecodeError> {
    let code = ReasonCode(r.u8()?);
    if code.is_valid_for(packet) {
        Ok(code)
    } else {
        Err(DecodeError::InvalidReasonCode(code.0))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_round_trip, encode, Rng};
    use super::super::PropertyContext;
    use super::*;

    const V31: ProtocolVersion = ProtocolVersion::V31;
    const V311: ProtocolVersion = ProtocolVersion::V311;
    const V5: ProtocolVersion = ProtocolVersion::V5;

    fn id(v: u16) -> PacketId {
        PacketId::new(v).unwrap()
    }

    /// One value of every packet type.
    fn one_of_each() -> Vec<Packet<'static>> {
        vec![
            Packet::Connect(Box::new(Connect {
                version: V311,
                clean_session: false,
                keep_alive: 65_535,
                client_id: "",
                will: Some(Will {
                    topic: "$SYS/ü",
                    payload: b"",
                    qos: QoS::ExactlyOnce,
                    retain: true,
                    properties: Props::default(),
                }),
                username: Some(""),
                password: Some(b"\x00\xff"),
                properties: Props::default(),
            })),
            Packet::Connack(Connack::new(false, ReasonCode::NOT_AUTHORIZED)),
            Packet::Publish(Publish {
                dup: true,
                qos: QoS::ExactlyOnce,
                retain: false,
                topic: "/",
                packet_id: Some(id(1)),
                payload: &[0xa5; 300],
                properties: Props::default(),
            }),
            Packet::Puback(Ack::new(id(1))),
            Packet::Pubrec(Ack::new(id(2))),
            Packet::Pubrel(Ack::new(id(3))),
            Packet::Pubcomp(Ack::new(id(65_535))),
            Packet::Subscribe(Subscribe {
                packet_id: id(4),
                filters: vec![("#", SubscriptionOptions::new(QoS::AtMostOnce))],
                properties: Props::default(),
            }),
            Packet::Suback(Suback {
                packet_id: id(4),
                codes: vec![ReasonCode::GRANTED_QOS_2],
                properties: Props::default(),
            }),
            Packet::Unsubscribe(Unsubscribe {
                packet_id: id(5),
                filters: vec!["+"],
                properties: Props::default(),
            }),
            Packet::Unsuback(Unsuback::new(id(5))),
            Packet::Pingreq,
            Packet::Pingresp,
            Packet::Disconnect(Disconnect::default()),
        ]
    }

    #[test]
    fn every_packet_type_round_trips_in_3_1_and_3_1_1() {
        for packet in one_of_each() {
            for version in [V31, V311] {
                let packet = match packet.clone() {
                    Packet::Connect(c) => Packet::Connect(Box::new(Connect { version, ..*c })),
                    p => p,
                };
                assert_round_trip(&packet, version);
            }
        }
    }

    /// Packets with nothing but a fixed header, or a packet identifier. [MQTT-3.4] to
    /// [MQTT-3.7], [MQTT-3.11] to [MQTT-3.14]
    #[test]
    fn decode_and_encode_short_packets() {
        let cases: [(&[u8], Packet<'_>); 8] = [
            (
                &[0x40, 0x02, 0x12, 0x34],
                Packet::Puback(Ack::new(id(0x1234))),
            ),
            (&[0x50, 0x02, 0x00, 0x01], Packet::Pubrec(Ack::new(id(1)))),
            (
                &[0x62, 0x02, 0xff, 0xff],
                Packet::Pubrel(Ack::new(id(0xffff))),
            ),
            (&[0x70, 0x02, 0x00, 0x02], Packet::Pubcomp(Ack::new(id(2)))),
            (
                &[0xb0, 0x02, 0x00, 0x03],
                Packet::Unsuback(Unsuback::new(id(3))),
            ),
            (&[0xc0, 0x00], Packet::Pingreq),
            (&[0xd0, 0x00], Packet::Pingresp),
            (&[0xe0, 0x00], Packet::Disconnect(Disconnect::default())),
        ];
        for (bytes, packet) in cases {
            assert_eq!(Packet::decode(bytes, V311).as_ref(), Ok(&packet));
            assert_eq!(encode(&packet, V311), bytes);
        }
    }

    /// [MQTT-2.2.1]: types 0 and 15 are reserved.
    #[test]
    fn reserved_packet_types_are_malformed() {
        assert_eq!(
            Packet::decode(&[0x00, 0x00], V311),
            Err(DecodeError::InvalidPacketType(0))
        );
        assert_eq!(
            Packet::decode(&[0xf0, 0x00], V311),
            Err(DecodeError::InvalidPacketType(15))
        );
    }

    /// [MQTT-2.2.2-1] [MQTT-2.2.2-2]: PUBREL, SUBSCRIBE and UNSUBSCRIBE need flags 0b0010,
    /// every other type but PUBLISH needs 0.
    #[test]
    fn reserved_fixed_header_flags_are_malformed() {
        let frames: [&[u8]; 13] = [
            // A whole 3.1.1 CONNECT: its flags are checked once its level is known.
            &[
                0x11, 0x0d, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x0a, 0x00, 0x01,
                b'p',
            ],
            &[0x21, 0x02, 0x00, 0x00],
            &[0x42, 0x02, 0x00, 0x01],
            &[0x58, 0x02, 0x00, 0x01],
            &[0x60, 0x02, 0x00, 0x01],
            &[0x63, 0x02, 0x00, 0x01],
            &[0x71, 0x02, 0x00, 0x01],
            &[0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00],
            &[0x94, 0x03, 0x00, 0x01, 0x00],
            &[0xa0, 0x05, 0x00, 0x01, 0x00, 0x01, b'a'],
            &[0xb2, 0x02, 0x00, 0x01],
            &[0xcf, 0x00],
            &[0xe2, 0x00],
        ];
        for bytes in frames {
            assert_eq!(
                Packet::decode(bytes, V311),
                Err(DecodeError::ReservedFlags(bytes[0])),
                "{bytes:02x?}"
            );
        }
    }

    /// MQTT 3.1 has no reserved fixed-header flags: a PUBLISH resent after a reconnect is
    /// released with DUP and QoS 1 set (0x6a), as Mosquitto accepts it
    /// (03-publish-c2b-disconnect-qos2).
    #[test]
    fn mqtt31_fixed_header_flags_are_not_reserved() {
        let v31 = ProtocolVersion::V31;
        for (bytes, kind) in [
            (&[0x6a, 0x02, 0x00, 0x01][..], PUBREL),
            (&[0x4f, 0x02, 0x00, 0x01], PUBACK),
            (&[0x8a, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00], SUBSCRIBE),
            (&[0xc8, 0x00], PINGREQ),
        ] {
            let packet = Packet::decode(bytes, v31).unwrap_or_else(|e| panic!("{bytes:02x?}: {e}"));
            assert_eq!(packet.packet_type() as u8, kind, "{bytes:02x?}");
            assert_eq!(
                Packet::decode(bytes, V311),
                Err(DecodeError::ReservedFlags(bytes[0]))
            );
        }
    }

    /// [MQTT-3.12] [MQTT-3.13] [MQTT-3.14]: no variable header, no payload.
    #[test]
    fn pingreq_with_body_is_malformed() {
        for first in [0xc0, 0xd0, 0xe0] {
            assert_eq!(
                Packet::decode(&[first, 0x01, 0x00], V311),
                Err(DecodeError::TrailingBytes)
            );
        }
    }

    /// [MQTT-3.4.2] and the other acks: exactly a two-byte packet identifier.
    #[test]
    fn ack_of_wrong_length_is_malformed() {
        for first in [0x40, 0x50, 0x62, 0x70, 0xb0] {
            assert_eq!(
                Packet::decode(&[first, 0x01, 0x01], V311),
                Err(DecodeError::UnexpectedEnd)
            );
            assert_eq!(
                Packet::decode(&[first, 0x03, 0x00, 0x01, 0x00], V311),
                Err(DecodeError::TrailingBytes)
            );
        }
    }

    /// Sections 3.2, 3.9, 3.11, 3.13: CONNACK, SUBACK, UNSUBACK and PINGRESP come from a
    /// server; from a client they are a Protocol Error before their body is read, as in
    /// Mosquitto (seq/ units "CONNACK 20 short 0", "SUBACK 90 short 1", "PINGRESP D1",
    /// "CONNACK 20 CAF=0x02", "CONNACK PROPERTIES 20 with ...": DISCONNECT 0x82).
    #[test]
    fn server_only_packets_from_a_client_are_a_protocol_error() {
        let v5 = ProtocolVersion::V5;
        let from_server = DecodeError::ProtocolError("a packet only a server sends");
        let frames: [&[u8]; 9] = [
            &[0x20, 0x03, 0x00, 0x00, 0x00],
            &[0x20, 0x00],
            &[0x20, 0x03, 0x02, 0x00, 0x00],
            &[0x20, 0x05, 0x00, 0x00, 0x02, 0x18, 0x01],
            &[0x90, 0x01, 0x00],
            &[0x90, 0x04, 0x00, 0x01, 0x00, 0x00],
            &[0xb0, 0x00],
            &[0xd0, 0x00],
            &[0xd1, 0x00],
        ];
        for frame in frames {
            for version in [v5, V311] {
                let err = Packet::decode_from_client(frame, version).unwrap_err();
                assert_eq!(err, from_server, "{frame:02x?}");
                assert_eq!(ReasonCode::from(err), ReasonCode::PROTOCOL_ERROR);
            }
        }
        // With reserved flags set, SUBACK and UNSUBACK stay malformed.
        assert_eq!(
            Packet::decode_from_client(&[0x92, 0x03, 0x00, 0x01, 0x00], V311),
            Err(DecodeError::ReservedFlags(0x92))
        );
        // Everything a client may send decodes as with `decode`.
        let pingreq = [0xc0, 0x00];
        assert_eq!(
            Packet::decode_from_client(&pingreq, v5),
            Ok(Packet::Pingreq)
        );
        // A client's PUBLISH with one Subscription Identifier decodes; with two it is
        // a duplicate property [MQTT-3.3.4-6] (seq/ unit "PUBLISH ALLOWED PROPERTIES
        // 2*subscription-identifier=1").
        let one = [0x30, 0x06, 0x00, 0x01, b't', 0x02, 0x0b, 0x01];
        assert!(Packet::decode_from_client(&one, v5).is_ok());
        let two = [0x30, 0x08, 0x00, 0x01, b't', 0x04, 0x0b, 0x01, 0x0b, 0x01];
        assert!(Packet::decode(&two, v5).is_ok(), "from a server: allowed");
        assert_eq!(
            Packet::decode_from_client(&two, v5),
            Err(DecodeError::DuplicateProperty(0x0b))
        );
    }

    /// [MQTT-2.3.1-1]: UNSUBACK with packet identifier 0 is malformed. (PUBACK to
    /// PUBCOMP with 0 are a Protocol Error: `ack.rs`.)
    #[test]
    fn unsuback_with_packet_id_zero_is_malformed() {
        assert_eq!(
            Packet::decode(&[0xb0, 0x02, 0x00, 0x00], V311),
            Err(DecodeError::PacketIdZero)
        );
    }

    /// A frame must be exactly what its Remaining Length says.
    #[test]
    fn frame_length_must_match_remaining_length() {
        assert_eq!(Packet::decode(&[], V311), Err(DecodeError::UnexpectedEnd));
        assert_eq!(
            Packet::decode(&[0xc0], V311),
            Err(DecodeError::UnexpectedEnd)
        );
        assert_eq!(
            Packet::decode(&[0x40, 0x02, 0x00], V311),
            Err(DecodeError::UnexpectedEnd)
        );
        assert_eq!(
            Packet::decode(&[0xc0, 0x00, 0x00], V311),
            Err(DecodeError::TrailingBytes)
        );
        assert_eq!(
            Packet::decode(&[0xc0, 0x80, 0x80, 0x80, 0x80, 0x00], V311),
            Err(DecodeError::MalformedRemainingLength)
        );
    }

    /// Packets without a body are the same in MQTT 5. [MQTT-3.12] [MQTT-3.13]
    #[test]
    fn pingreq_and_pingresp_decode_in_v5() {
        assert_eq!(
            Packet::decode(&[0xc0, 0x00], ProtocolVersion::V5),
            Ok(Packet::Pingreq)
        );
        assert_eq!(
            Packet::decode(&[0xd0, 0x00], ProtocolVersion::V5),
            Ok(Packet::Pingresp)
        );
    }

    #[test]
    fn packet_names() {
        let names: Vec<_> = one_of_each().iter().map(Packet::name).collect();
        assert_eq!(names[0], "CONNECT");
        assert_eq!(names[13], "DISCONNECT");
    }

    #[test]
    fn decode_error_display_is_a_sentence() {
        assert_eq!(
            DecodeError::ReservedFlags(0x63).to_string(),
            "reserved fixed-header flags set (first byte 0x63)"
        );
        assert_eq!(
            DecodeError::UnsupportedProtocolVersion(6).to_string(),
            "unsupported protocol version 6"
        );
    }

    /// The MQTT 5 parts only where `version` has them, so 3.1/3.1.1 values round-trip.
    fn props(rng: &mut Rng, version: ProtocolVersion, packet: PacketType) -> Properties<'static> {
        if version == V5 {
            rng.properties(PropertyContext::Packet(packet), false)
        } else {
            Properties::default()
        }
    }

    fn ack(rng: &mut Rng, version: ProtocolVersion, packet: PacketType) -> Ack<'static> {
        let packet_id = rng.id();
        if version != V5 {
            return Ack::new(packet_id);
        }
        Ack {
            packet_id,
            reason: rng.reason(packet),
            properties: props(rng, version, packet).into(),
        }
    }

    /// A packet of any type `version` has; every field and property generated.
    fn packet(rng: &mut Rng, version: ProtocolVersion) -> Packet<'static> {
        let is_v5 = version == V5;
        match rng.below(if is_v5 { 15 } else { 14 }) {
            0 => {
                let username = rng.bool().then(|| rng.string(8, &["u", "ü"]));
                // MQTT 5 allows a password without a username (section 3.1.2.9).
                let password = (username.is_some() || is_v5)
                    .then(|| rng.bool().then(|| rng.bytes(10)))
                    .flatten();
                let will = rng.bool().then(|| Will {
                    topic: rng.topic_name(),
                    payload: rng.bytes(20),
                    qos: rng.qos(),
                    retain: rng.bool(),
                    properties: if is_v5 {
                        rng.properties(PropertyContext::Will, false).into()
                    } else {
                        Props::default()
                    },
                });
                Packet::Connect(Box::new(Connect {
                    version,
                    clean_session: rng.bool(),
                    keep_alive: rng.next() as u16,
                    client_id: rng.string(23, &["c", "-", "ł"]),
                    will,
                    username,
                    password,
                    properties: props(rng, version, PacketType::Connect).into(),
                }))
            }
            1 => Packet::Connack(Connack {
                session_present: rng.bool(),
                reason: if is_v5 {
                    rng.reason(PacketType::Connack)
                } else {
                    ReasonCode::from_v3_connack(rng.below(6) as u8).unwrap()
                },
                properties: props(rng, version, PacketType::Connack).into(),
            }),
            2 => {
                let qos = rng.qos();
                let mut properties = props(rng, version, PacketType::Publish);
                // MQTT 5: a Topic Alias may stand for the topic. [MQTT-3.3.2-1]
                let topic = if is_v5 && rng.below(4) == 0 {
                    properties.topic_alias = Some(1 + rng.below(65_535) as u16);
                    ""
                } else {
                    rng.topic_name()
                };
                Packet::Publish(Publish {
                    dup: qos != QoS::AtMostOnce && rng.bool(),
                    qos,
                    retain: rng.bool(),
                    topic,
                    packet_id: (qos != QoS::AtMostOnce).then(|| rng.id()),
                    // Up to three Remaining Length bytes.
                    payload: {
                        let max = [0, 10, 200, 20_000][rng.below(4)];
                        rng.bytes(max)
                    },
                    properties: properties.into(),
                })
            }
            3 => Packet::Puback(ack(rng, version, PacketType::Puback)),
            4 => Packet::Pubrec(ack(rng, version, PacketType::Pubrec)),
            5 => Packet::Pubrel(ack(rng, version, PacketType::Pubrel)),
            6 => Packet::Pubcomp(ack(rng, version, PacketType::Pubcomp)),
            7 => Packet::Subscribe(Subscribe {
                packet_id: rng.id(),
                filters: (0..1 + rng.below(5))
                    .map(|_| {
                        let qos = rng.qos();
                        if !is_v5 {
                            return (rng.topic_filter(), SubscriptionOptions::new(qos));
                        }
                        let shared = rng.below(4) == 0;
                        let filter = if shared {
                            let name = rng.string(4, &["g", "é"]);
                            let name = if name.is_empty() { "g" } else { name };
                            let filter = format!("$share/{name}/{}", rng.topic_filter());
                            Box::leak(filter.into_boxed_str())
                        } else {
                            rng.topic_filter()
                        };
                        let options = SubscriptionOptions {
                            qos,
                            // [MQTT-3.8.3-4]: never on a shared subscription.
                            no_local: !shared && rng.bool(),
                            retain_as_published: rng.bool(),
                            retain_handling: rng.below(3) as u8,
                        };
                        (filter, options)
                    })
                    .collect(),
                properties: props(rng, version, PacketType::Subscribe).into(),
            }),
            8 => Packet::Suback(Suback {
                packet_id: rng.id(),
                codes: (0..rng.below(6))
                    .map(|_| {
                        if is_v5 {
                            rng.reason(PacketType::Suback)
                        } else {
                            ReasonCode([0, 1, 2, 0x80][rng.below(4)])
                        }
                    })
                    .collect(),
                properties: props(rng, version, PacketType::Suback).into(),
            }),
            9 => Packet::Unsubscribe(Unsubscribe {
                packet_id: rng.id(),
                filters: (0..1 + rng.below(5)).map(|_| rng.topic_filter()).collect(),
                properties: props(rng, version, PacketType::Unsubscribe).into(),
            }),
            10 if is_v5 => Packet::Unsuback(Unsuback {
                packet_id: rng.id(),
                codes: (0..rng.below(6))
                    .map(|_| rng.reason(PacketType::Unsuback))
                    .collect(),
                properties: props(rng, version, PacketType::Unsuback).into(),
            }),
            10 => Packet::Unsuback(Unsuback::new(rng.id())),
            11 => Packet::Pingreq,
            12 => Packet::Pingresp,
            13 if is_v5 => Packet::Disconnect(Disconnect {
                reason: rng.reason(PacketType::Disconnect),
                properties: props(rng, version, PacketType::Disconnect).into(),
            }),
            13 => Packet::Disconnect(Disconnect::default()),
            _ => Packet::Auth(Auth {
                reason: rng.reason(PacketType::Auth),
                properties: props(rng, version, PacketType::Auth).into(),
            }),
        }
    }

    /// decode(encode(x)) == x and encoded_len is exact, over generated packets of every
    /// version. The seed is in the failure message.
    #[test]
    fn generated_packets_round_trip() {
        for seed in 1..=3_000u64 {
            let mut rng = Rng(seed);
            for version in [V31, V311, V5] {
                let packet = packet(&mut rng, version);
                let bytes = encode(&packet, version);
                assert_eq!(
                    Packet::decode(&bytes, version).as_ref(),
                    Ok(&packet),
                    "seed {seed}, {version:?}"
                );
                assert_eq!(
                    frame::check(&bytes, bytes.len()),
                    Ok(Some(bytes.len())),
                    "seed {seed}"
                );
            }
        }
    }

    /// Every MQTT 5 packet type with every property it allows, all at once.
    #[test]
    fn every_v5_packet_round_trips_with_every_property_it_allows() {
        let seed = 0x5eed_0005;
        let mut rng = Rng(seed);
        let full = |rng: &mut Rng, t: PacketType| rng.properties(PropertyContext::Packet(t), true);
        let packets = vec![
            Packet::Connect(Box::new(Connect {
                version: V5,
                clean_session: true,
                keep_alive: 30,
                client_id: "c",
                will: Some(Will {
                    topic: "w",
                    payload: b"x",
                    qos: QoS::AtLeastOnce,
                    retain: true,
                    properties: rng.properties(PropertyContext::Will, true).into(),
                }),
                username: None,
                password: Some(b"p"),
                properties: full(&mut rng, PacketType::Connect).into(),
            })),
            Packet::Connack(Connack {
                session_present: true,
                reason: ReasonCode::SUCCESS,
                properties: full(&mut rng, PacketType::Connack).into(),
            }),
            Packet::Publish(Publish {
                dup: false,
                qos: QoS::ExactlyOnce,
                retain: false,
                topic: "a/b",
                packet_id: Some(id(9)),
                payload: b"hi",
                properties: full(&mut rng, PacketType::Publish).into(),
            }),
            Packet::Puback(Ack {
                properties: full(&mut rng, PacketType::Puback).into(),
                ..Ack::new(id(1))
            }),
            Packet::Pubrec(Ack {
                properties: full(&mut rng, PacketType::Pubrec).into(),
                ..Ack::new(id(2))
            }),
            Packet::Pubrel(Ack {
                properties: full(&mut rng, PacketType::Pubrel).into(),
                ..Ack::new(id(3))
            }),
            Packet::Pubcomp(Ack {
                properties: full(&mut rng, PacketType::Pubcomp).into(),
                ..Ack::new(id(4))
            }),
            Packet::Subscribe(Subscribe {
                packet_id: id(5),
                filters: vec![("a/#", SubscriptionOptions::new(QoS::AtLeastOnce))],
                properties: full(&mut rng, PacketType::Subscribe).into(),
            }),
            Packet::Suback(Suback {
                packet_id: id(5),
                codes: vec![ReasonCode::GRANTED_QOS_1],
                properties: full(&mut rng, PacketType::Suback).into(),
            }),
            Packet::Unsubscribe(Unsubscribe {
                packet_id: id(6),
                filters: vec!["a/#"],
                properties: full(&mut rng, PacketType::Unsubscribe).into(),
            }),
            Packet::Unsuback(Unsuback {
                packet_id: id(6),
                codes: vec![ReasonCode::NO_SUBSCRIPTION_EXISTED],
                properties: full(&mut rng, PacketType::Unsuback).into(),
            }),
            Packet::Disconnect(Disconnect {
                reason: ReasonCode::SERVER_MOVED,
                properties: full(&mut rng, PacketType::Disconnect).into(),
            }),
            Packet::Auth(Auth {
                reason: ReasonCode::CONTINUE_AUTHENTICATION,
                properties: full(&mut rng, PacketType::Auth).into(),
            }),
        ];
        for packet in &packets {
            let properties = match packet {
                Packet::Connect(c) => &c.properties,
                Packet::Connack(c) => &c.properties,
                Packet::Publish(p) => &p.properties,
                Packet::Puback(a) | Packet::Pubrec(a) | Packet::Pubrel(a) | Packet::Pubcomp(a) => {
                    &a.properties
                }
                Packet::Subscribe(s) => &s.properties,
                Packet::Suback(s) => &s.properties,
                Packet::Unsubscribe(u) => &u.properties,
                Packet::Unsuback(u) => &u.properties,
                Packet::Disconnect(d) => &d.properties,
                Packet::Auth(a) => &a.properties,
                Packet::Pingreq | Packet::Pingresp => unreachable!(),
            };
            assert!(!properties.is_empty(), "seed {seed}: {}", packet.name());
            assert_round_trip(packet, V5);
        }
    }
}
