//! Packet types and their decode/encode. [MQTT-2] fixed header, [MQTT-3] control packets.

use std::fmt;
use std::num::NonZeroU16;

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
    /// Remaining Length longer than 4 bytes or not minimally encoded [MQTT-1.5.3] / [MQTT-2.2.3].
    MalformedRemainingLength,
    /// Remaining Length over the configured maximum packet size.
    PacketTooLarge,
    /// Packet type 0 or 15 (reserved in 3.1.1).
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
            DecodeError::SubscriptionOptions => f.write_str("reserved subscription option bits set"),
            DecodeError::InvalidProtocolName => f.write_str("invalid protocol name"),
            DecodeError::UnsupportedProtocolVersion(v) => {
                write!(f, "unsupported protocol version {v}")
            }
            DecodeError::ConnectReservedFlag => f.write_str("reserved CONNECT flag set"),
            DecodeError::WillFlags => f.write_str("will QoS/retain inconsistent with will flag"),
            DecodeError::PasswordWithoutUsername => f.write_str("password flag without username flag"),
            DecodeError::InvalidConnack => f.write_str("invalid CONNACK"),
            DecodeError::InvalidSubackCode => f.write_str("invalid SUBACK return code"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// CONNACK return codes of 3.1/3.1.1. [MQTT-3.2.2.3]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectReturnCode {
    Accepted = 0x00,
    UnacceptableProtocolVersion = 0x01,
    IdentifierRejected = 0x02,
    ServerUnavailable = 0x03,
    BadUsernameOrPassword = 0x04,
    NotAuthorized = 0x05,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub qos: QoS,
    pub retain: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect<'a> {
    pub version: ProtocolVersion,
    pub clean_session: bool,
    pub keep_alive: u16,
    /// May be empty; whether that is allowed is the broker's decision. [MQTT-3.1.3-6]
    pub client_id: &'a str,
    pub will: Option<Will<'a>>,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connack {
    pub session_present: bool,
    pub code: ConnectReturnCode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish<'a> {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    pub topic: &'a str,
    /// `Some` exactly when `qos` is 1 or 2.
    pub packet_id: Option<PacketId>,
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe<'a> {
    pub packet_id: PacketId,
    /// At least one. Each filter is valid ([`crate::topic::is_valid_filter`]).
    pub filters: Vec<(&'a str, QoS)>,
}

/// SUBACK return code: granted QoS or failure (0x80). [MQTT-3.9.3]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubackCode {
    Granted(QoS),
    Failure,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suback {
    pub packet_id: PacketId,
    pub codes: Vec<SubackCode>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe<'a> {
    pub packet_id: PacketId,
    pub filters: Vec<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    Connect(Connect<'a>),
    Connack(Connack),
    Publish(Publish<'a>),
    Puback(PacketId),
    Pubrec(PacketId),
    Pubrel(PacketId),
    Pubcomp(PacketId),
    Subscribe(Subscribe<'a>),
    Suback(Suback),
    Unsubscribe(Unsubscribe<'a>),
    Unsuback(PacketId),
    Pingreq,
    Pingresp,
    Disconnect,
}

impl<'a> Packet<'a> {
    /// Decodes one whole frame (fixed header included, exactly as long as
    /// [`crate::protocol::frame::check`] said). `version` is the connection's protocol
    /// version; CONNECT carries its own and ignores it.
    pub fn decode(frame: &'a [u8], version: ProtocolVersion) -> Result<Packet<'a>, DecodeError> {
        let _ = (frame, version);
        Err(DecodeError::UnexpectedEnd)
    }

    /// The exact number of bytes [`Packet::encode`] appends.
    pub fn encoded_len(&self, version: ProtocolVersion) -> usize {
        let _ = version;
        0
    }

    /// Appends the encoded packet to `out`. The caller has built a valid packet (lengths
    /// fit their fields); a value that cannot be encoded is a bug and panics in debug builds.
    pub fn encode(&self, version: ProtocolVersion, out: &mut Vec<u8>) {
        let _ = (version, out);
    }
}

/// Encodes a PUBLISH from parts without building a [`Publish`]: the broker's fan-out path.
/// Appends exactly `publish_len(topic.len(), payload.len(), qos)` bytes.
pub fn encode_publish(
    out: &mut Vec<u8>,
    topic: &str,
    payload: &[u8],
    qos: QoS,
    retain: bool,
    dup: bool,
    packet_id: Option<PacketId>,
) {
    let _ = (out, topic, payload, qos, retain, dup, packet_id);
}

/// Encoded length of a PUBLISH with these sizes (fixed header included).
pub fn publish_len(topic_len: usize, payload_len: usize, qos: QoS) -> usize {
    let _ = (topic_len, payload_len, qos);
    0
}
