//! Packet types and their decode/encode. [MQTT-2] fixed header, [MQTT-3] control packets.

use std::fmt;
use std::num::NonZeroU16;

use super::reader::Reader;
use super::{connect, frame, publish, subscribe};

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

impl ConnectReturnCode {
    /// `None` for the values 3.1.1 reserves (6 to 255). [MQTT-3.2.2.3]
    pub fn from_u8(v: u8) -> Option<ConnectReturnCode> {
        match v {
            0x00 => Some(ConnectReturnCode::Accepted),
            0x01 => Some(ConnectReturnCode::UnacceptableProtocolVersion),
            0x02 => Some(ConnectReturnCode::IdentifierRejected),
            0x03 => Some(ConnectReturnCode::ServerUnavailable),
            0x04 => Some(ConnectReturnCode::BadUsernameOrPassword),
            0x05 => Some(ConnectReturnCode::NotAuthorized),
            _ => None,
        }
    }
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

impl SubackCode {
    /// `None` for anything but 0x00, 0x01, 0x02 and 0x80. [MQTT-3.9.3-2]
    pub fn from_u8(v: u8) -> Option<SubackCode> {
        match v {
            0x80 => Some(SubackCode::Failure),
            _ => QoS::from_u8(v).map(SubackCode::Granted),
        }
    }

    pub fn to_u8(self) -> u8 {
        match self {
            SubackCode::Granted(qos) => qos as u8,
            SubackCode::Failure => 0x80,
        }
    }
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
        // [MQTT-2.2.2-1] [MQTT-2.2.2-2]: PUBLISH is the only packet whose flags carry data;
        // PUBREL, SUBSCRIBE and UNSUBSCRIBE must have 0b0010, all others 0.
        let reserved_flags = match kind {
            0 | 15 => return Err(DecodeError::InvalidPacketType(kind)),
            PUBLISH => flags,
            PUBREL | SUBSCRIBE | UNSUBSCRIBE => 0b0010,
            _ => 0,
        };
        if flags != reserved_flags {
            return Err(DecodeError::ReservedFlags(first_byte));
        }
        // MQTT 5 adds properties to every packet but PINGREQ/PINGRESP; until they are
        // implemented, a level-5 connection cannot exist (CONNECT is refused below).
        if version == ProtocolVersion::V5 && kind != CONNECT {
            return Err(DecodeError::UnsupportedProtocolVersion(5));
        }
        let mut r = Reader::new(body);
        let packet = match kind {
            CONNECT => Packet::Connect(connect::decode_connect(&mut r)?),
            CONNACK => Packet::Connack(connect::decode_connack(&mut r)?),
            PUBLISH => Packet::Publish(publish::decode(first_byte, &mut r)?),
            PUBACK => Packet::Puback(r.packet_id()?),
            PUBREC => Packet::Pubrec(r.packet_id()?),
            PUBREL => Packet::Pubrel(r.packet_id()?),
            PUBCOMP => Packet::Pubcomp(r.packet_id()?),
            SUBSCRIBE => Packet::Subscribe(subscribe::decode_subscribe(&mut r)?),
            SUBACK => Packet::Suback(subscribe::decode_suback(&mut r)?),
            UNSUBSCRIBE => Packet::Unsubscribe(subscribe::decode_unsubscribe(&mut r)?),
            UNSUBACK => Packet::Unsuback(r.packet_id()?),
            PINGREQ => Packet::Pingreq,
            PINGRESP => Packet::Pingresp,
            DISCONNECT => Packet::Disconnect,
            // 0 and 15 returned above; `kind` is four bits.
            _ => return Err(DecodeError::InvalidPacketType(kind)),
        };
        // Trailing bytes are malformed for every packet type, including the empty ones.
        r.expect_empty()?;
        Ok(packet)
    }

    /// The exact number of bytes [`Packet::encode`] appends.
    pub fn encoded_len(&self, version: ProtocolVersion) -> usize {
        let _ = version;
        match self {
            Packet::Publish(p) => publish_len(p.topic.len(), p.payload.len(), p.qos),
            _ => frame::frame_len(self.body_len()),
        }
    }

    /// Appends the encoded packet to `out`. The caller has built a valid packet (lengths
    /// fit their fields); a value that cannot be encoded is a bug and panics in debug builds.
    ///
    /// CONNECT is encoded with its own `version` field. In release builds a string longer
    /// than 65,535 bytes is cut to that length, so the frame stays exactly
    /// [`Packet::encoded_len`] bytes and the stream stays in sync.
    pub fn encode(&self, version: ProtocolVersion, out: &mut Vec<u8>) {
        debug_assert!(
            version != ProtocolVersion::V5 || matches!(self, Packet::Connect(_)),
            "MQTT 5 encoding is not implemented yet"
        );
        if let Packet::Publish(p) = self {
            encode_publish(out, p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id);
            return;
        }
        let body_len = self.body_len();
        out.reserve(frame::frame_len(body_len));
        out.push(self.first_byte());
        frame::write_remaining_length(out, body_len);
        match self {
            Packet::Connect(c) => connect::encode_connect(c, out),
            Packet::Connack(c) => connect::encode_connack(c, out),
            Packet::Puback(id)
            | Packet::Pubrec(id)
            | Packet::Pubrel(id)
            | Packet::Pubcomp(id)
            | Packet::Unsuback(id) => put_u16(out, id.get()),
            Packet::Subscribe(s) => subscribe::encode_subscribe(s, out),
            Packet::Suback(s) => subscribe::encode_suback(s, out),
            Packet::Unsubscribe(u) => subscribe::encode_unsubscribe(u, out),
            Packet::Pingreq | Packet::Pingresp | Packet::Disconnect => {}
            Packet::Publish(_) => {}
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
            Packet::Disconnect => "DISCONNECT",
        }
    }

    /// First byte of the fixed header, for every type but PUBLISH (whose flags are data).
    fn first_byte(&self) -> u8 {
        let kind = match self {
            Packet::Connect(_) => CONNECT,
            Packet::Connack(_) => CONNACK,
            Packet::Publish(_) => PUBLISH,
            Packet::Puback(_) => PUBACK,
            Packet::Pubrec(_) => PUBREC,
            Packet::Pubrel(_) => return (PUBREL << 4) | 0b0010,
            Packet::Pubcomp(_) => PUBCOMP,
            Packet::Subscribe(_) => return (SUBSCRIBE << 4) | 0b0010,
            Packet::Suback(_) => SUBACK,
            Packet::Unsubscribe(_) => return (UNSUBSCRIBE << 4) | 0b0010,
            Packet::Unsuback(_) => UNSUBACK,
            Packet::Pingreq => PINGREQ,
            Packet::Pingresp => PINGRESP,
            Packet::Disconnect => DISCONNECT,
        };
        kind << 4
    }

    /// Remaining Length: bytes after the fixed header.
    fn body_len(&self) -> usize {
        match self {
            Packet::Connect(c) => connect::connect_body_len(c),
            Packet::Connack(_) => 2,
            Packet::Publish(p) => publish::body_len(p.topic.len(), p.payload.len(), p.qos),
            Packet::Puback(_)
            | Packet::Pubrec(_)
            | Packet::Pubrel(_)
            | Packet::Pubcomp(_)
            | Packet::Unsuback(_) => 2,
            Packet::Subscribe(s) => subscribe::subscribe_body_len(s),
            Packet::Suback(s) => 2 + s.codes.len(),
            Packet::Unsubscribe(u) => subscribe::unsubscribe_body_len(u),
            Packet::Pingreq | Packet::Pingresp | Packet::Disconnect => 0,
        }
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
    publish::encode(out, topic, payload, qos, retain, dup, packet_id);
}

/// Encoded length of a PUBLISH with these sizes (fixed header included).
pub fn publish_len(topic_len: usize, payload_len: usize, qos: QoS) -> usize {
    frame::frame_len(publish::body_len(topic_len, payload_len, qos))
}

// Control packet types, the high nibble of the first byte. [MQTT-2.2.1]
const CONNECT: u8 = 1;
const CONNACK: u8 = 2;
const PUBLISH: u8 = 3;
const PUBACK: u8 = 4;
const PUBREC: u8 = 5;
const PUBREL: u8 = 6;
const PUBCOMP: u8 = 7;
const SUBSCRIBE: u8 = 8;
const SUBACK: u8 = 9;
const UNSUBSCRIBE: u8 = 10;
const UNSUBACK: u8 = 11;
const PINGREQ: u8 = 12;
const PINGRESP: u8 = 13;
const DISCONNECT: u8 = 14;

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

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_round_trip, encode};
    use super::*;

    const V31: ProtocolVersion = ProtocolVersion::V31;
    const V311: ProtocolVersion = ProtocolVersion::V311;

    fn id(v: u16) -> PacketId {
        PacketId::new(v).unwrap()
    }

    /// One value of every packet type.
    fn one_of_each() -> Vec<Packet<'static>> {
        vec![
            Packet::Connect(Connect {
                version: V311,
                clean_session: false,
                keep_alive: 65_535,
                client_id: "",
                will: Some(Will {
                    topic: "$SYS/ü",
                    payload: b"",
                    qos: QoS::ExactlyOnce,
                    retain: true,
                }),
                username: Some(""),
                password: Some(b"\x00\xff"),
            }),
            Packet::Connack(Connack {
                session_present: false,
                code: ConnectReturnCode::NotAuthorized,
            }),
            Packet::Publish(Publish {
                dup: true,
                qos: QoS::ExactlyOnce,
                retain: false,
                topic: "/",
                packet_id: Some(id(1)),
                payload: &[0xa5; 300],
            }),
            Packet::Puback(id(1)),
            Packet::Pubrec(id(2)),
            Packet::Pubrel(id(3)),
            Packet::Pubcomp(id(65_535)),
            Packet::Subscribe(Subscribe {
                packet_id: id(4),
                filters: vec![("#", QoS::AtMostOnce)],
            }),
            Packet::Suback(Suback {
                packet_id: id(4),
                codes: vec![SubackCode::Granted(QoS::ExactlyOnce)],
            }),
            Packet::Unsubscribe(Unsubscribe {
                packet_id: id(5),
                filters: vec!["+"],
            }),
            Packet::Unsuback(id(5)),
            Packet::Pingreq,
            Packet::Pingresp,
            Packet::Disconnect,
        ]
    }

    #[test]
    fn every_packet_type_round_trips_in_3_1_and_3_1_1() {
        for packet in one_of_each() {
            for version in [V31, V311] {
                let packet = match packet.clone() {
                    Packet::Connect(c) => Packet::Connect(Connect { version, ..c }),
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
            (&[0x40, 0x02, 0x12, 0x34], Packet::Puback(id(0x1234))),
            (&[0x50, 0x02, 0x00, 0x01], Packet::Pubrec(id(1))),
            (&[0x62, 0x02, 0xff, 0xff], Packet::Pubrel(id(0xffff))),
            (&[0x70, 0x02, 0x00, 0x02], Packet::Pubcomp(id(2))),
            (&[0xb0, 0x02, 0x00, 0x03], Packet::Unsuback(id(3))),
            (&[0xc0, 0x00], Packet::Pingreq),
            (&[0xd0, 0x00], Packet::Pingresp),
            (&[0xe0, 0x00], Packet::Disconnect),
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
            &[0x11, 0x00],
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

    /// [MQTT-2.3.1-1]
    #[test]
    fn ack_with_packet_id_zero_is_malformed() {
        for first in [0x40, 0x50, 0x62, 0x70, 0xb0] {
            assert_eq!(
                Packet::decode(&[first, 0x02, 0x00, 0x00], V311),
                Err(DecodeError::PacketIdZero)
            );
        }
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

    /// MQTT 5 is not implemented: nothing decodes on a level-5 connection yet.
    #[test]
    fn v5_connection_is_unsupported_for_now() {
        assert_eq!(
            Packet::decode(&[0xc0, 0x00], ProtocolVersion::V5),
            Err(DecodeError::UnsupportedProtocolVersion(5))
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

    /// xorshift64*: small, seeded, good enough to spread values over the fields.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn bool(&mut self) -> bool {
            self.next() & 1 == 1
        }
        fn qos(&mut self) -> QoS {
            [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce][self.below(3)]
        }
        fn id(&mut self) -> PacketId {
            id(1 + self.below(65_535) as u16)
        }
        fn bytes(&mut self, max: usize) -> &'static [u8] {
            let len = self.below(max + 1);
            let bytes: Vec<u8> = (0..len).map(|_| self.next() as u8).collect();
            // Test values borrow for 'static, like decoded ones borrow the input.
            Box::leak(bytes.into_boxed_slice())
        }
        /// A string of 0..=max characters, multi-byte ones included, without U+0000.
        fn string(&mut self, max: usize, alphabet: &[&str]) -> &'static str {
            let len = self.below(max + 1);
            let s: String = (0..len)
                .map(|_| alphabet[self.below(alphabet.len())])
                .collect();
            Box::leak(s.into_boxed_str())
        }
        fn topic_name(&mut self) -> &'static str {
            let name = self.string(12, &["a", "/", "$", "é", "€", "😀", " ", "\u{ffff}"]);
            if name.is_empty() {
                "t"
            } else {
                name
            }
        }
        fn topic_filter(&mut self) -> &'static str {
            let levels = 1 + self.below(4);
            let mut filter = String::new();
            for i in 0..levels {
                if i > 0 {
                    filter.push('/');
                }
                match self.below(5) {
                    0 => filter.push('+'),
                    1 if i + 1 == levels => filter.push('#'),
                    _ => filter.push_str(self.string(4, &["x", "ß", "😀"])),
                }
            }
            if filter.is_empty() {
                filter.push('#');
            }
            Box::leak(filter.into_boxed_str())
        }
        fn packet(&mut self, version: ProtocolVersion) -> Packet<'static> {
            match self.below(14) {
                0 => {
                    let username = self.bool().then(|| self.string(8, &["u", "ü"]));
                    Packet::Connect(Connect {
                        version,
                        clean_session: self.bool(),
                        keep_alive: self.next() as u16,
                        client_id: self.string(23, &["c", "-", "ł"]),
                        will: self.bool().then(|| Will {
                            topic: self.topic_name(),
                            payload: self.bytes(20),
                            qos: self.qos(),
                            retain: self.bool(),
                        }),
                        username,
                        password: username.and_then(|_| self.bool().then(|| self.bytes(10))),
                    })
                }
                1 => Packet::Connack(Connack {
                    session_present: self.bool(),
                    code: ConnectReturnCode::from_u8(self.below(6) as u8).unwrap(),
                }),
                2 => {
                    let qos = self.qos();
                    Packet::Publish(Publish {
                        dup: qos != QoS::AtMostOnce && self.bool(),
                        qos,
                        retain: self.bool(),
                        topic: self.topic_name(),
                        packet_id: (qos != QoS::AtMostOnce).then(|| self.id()),
                        // Up to three Remaining Length bytes.
                        payload: {
                            let max = [0, 10, 200, 20_000][self.below(4)];
                            self.bytes(max)
                        },
                    })
                }
                3 => Packet::Puback(self.id()),
                4 => Packet::Pubrec(self.id()),
                5 => Packet::Pubrel(self.id()),
                6 => Packet::Pubcomp(self.id()),
                7 => Packet::Subscribe(Subscribe {
                    packet_id: self.id(),
                    filters: (0..1 + self.below(5))
                        .map(|_| (self.topic_filter(), self.qos()))
                        .collect(),
                }),
                8 => Packet::Suback(Suback {
                    packet_id: self.id(),
                    codes: (0..self.below(6))
                        .map(|_| SubackCode::from_u8([0, 1, 2, 0x80][self.below(4)]).unwrap())
                        .collect(),
                }),
                9 => Packet::Unsubscribe(Unsubscribe {
                    packet_id: self.id(),
                    filters: (0..1 + self.below(5))
                        .map(|_| self.topic_filter())
                        .collect(),
                }),
                10 => Packet::Unsuback(self.id()),
                11 => Packet::Pingreq,
                12 => Packet::Pingresp,
                _ => Packet::Disconnect,
            }
        }
    }

    /// decode(encode(x)) == x and encoded_len is exact, over generated packets.
    #[test]
    fn generated_packets_round_trip() {
        for seed in 1..=2_000u64 {
            let mut rng = Rng(seed);
            for version in [V31, V311] {
                let packet = rng.packet(version);
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
}
