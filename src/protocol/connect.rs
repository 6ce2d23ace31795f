//! CONNECT [MQTT-3.1] and CONNACK [MQTT-3.2] bodies.
//!
//! CONNECT is the one packet that says which protocol version the connection speaks, so
//! its decoder ignores the connection's version and returns the one it read. An
//! unsupported level is its own error because the broker answers it with CONNACK 0x01
//! (3.1.1 [MQTT-3.1.2-2]) or 0x84 (5.0); an unknown protocol name gets no CONNACK
//! [MQTT-3.1.2-1].
//!
//! MQTT 5 adds CONNECT Properties after the keep alive, Will Properties before the will
//! topic, and CONNACK's reason code and properties; it allows a password without a
//! username. CONNACK's 3.1.1 return codes travel as [`ReasonCode`]s.

use super::packet::reason_code;
use super::packet::{field_len, put_binary, put_u16};
use super::properties::CONNACK_ORDER;
use super::reader::Reader;
use super::{
    Connack, Connect, DecodeError, PacketType, PropertyContext, Props, ProtocolVersion, QoS,
    ReasonCode, Will,
};
use crate::topic;

const NAME_V31: &[u8] = b"MQIsdp";
const NAME_V311: &[u8] = b"MQTT";

// Connect Flags. [MQTT-3.1.2.3]
const RESERVED: u8 = 0x01;
const CLEAN_SESSION: u8 = 0x02;
const WILL: u8 = 0x04;
const WILL_QOS_SHIFT: u8 = 3;
const WILL_QOS_MASK: u8 = 0x18;
const WILL_RETAIN: u8 = 0x20;
const PASSWORD: u8 = 0x40;
const USERNAME: u8 = 0x80;

/// Mosquitto bridges with `try_private true` (the default) set the top bit of the
/// protocol level (0x83, 0x84) to say "I am a bridge"; Mosquitto masks it off and so do
/// we, so such a bridge can connect. [`Connect`] does not record it yet.
const BRIDGE_BIT: u8 = 0x80;

/// Whether a whole CONNECT frame carries Mosquitto's bridge bit (protocol level 0x83 or
/// 0x84, `try_private true`). `false` for anything else, malformed frames included.
pub fn is_bridge_connect(frame: &[u8]) -> bool {
    let mut bytes = frame.iter().copied();
    if bytes.next().map(|b| b >> 4) != Some(super::packet::CONNECT) {
        return false;
    }
    // The Remaining Length: 1 to 4 bytes, the last without the continuation bit.
    let mut length_bytes = 0;
    loop {
        match bytes.next() {
            Some(b) if b & 0x80 == 0 => break,
            Some(_) if length_bytes < 3 => length_bytes += 1,
            _ => return false,
        }
    }
    let (Some(high), Some(low)) = (bytes.next(), bytes.next()) else {
        return false;
    };
    let name_len = usize::from(u16::from_be_bytes([high, low]));
    bytes
        .nth(name_len)
        .is_some_and(|level| level & BRIDGE_BIT != 0 && level & !BRIDGE_BIT != 5)
}

/// `first_byte` is the fixed header's: its flags are reserved (0) [MQTT-2.2.2-1], except
/// in 3.1, whose specification reserves nothing there; Mosquitto checks them only for
/// 3.1.1 and 5.0, after the protocol name and level (src/handle_connect.c), and accepts
/// a 3.1 CONNECT with flags set (the suite's seq/ unit "v3.1 CONNECT 14 ok").
pub(super) fn decode_connect<'a>(
    first_byte: u8,
    r: &mut Reader<'a>,
) -> Result<Connect<'a>, DecodeError> {
    let name = r.binary()?;
    let level = r.u8()? & !BRIDGE_BIT;
    let version = match (name, level) {
        (NAME_V31, 3) => ProtocolVersion::V31,
        (NAME_V311, 4) => ProtocolVersion::V311,
        (NAME_V311, 5) => ProtocolVersion::V5,
        (NAME_V31 | NAME_V311, level) => {
            return Err(DecodeError::UnsupportedProtocolVersion(level))
        }
        _ => return Err(DecodeError::InvalidProtocolName),
    };

    if first_byte & 0x0f != 0 && version != ProtocolVersion::V31 {
        return Err(DecodeError::ReservedFlags(first_byte));
    }
    let flags = r.u8()?;
    // [MQTT-3.1.2-3]. 3.1 calls the bit unused and says nothing of a receiver; Mosquitto
    // ignores it there (seq/ unit "v3.1 CONNECT 10 ok" sends flags 0x01), and so does
    // culex.
    if flags & RESERVED != 0 && version != ProtocolVersion::V31 {
        return Err(DecodeError::ConnectReservedFlag);
    }
    let has_will = flags & WILL != 0;
    let will_qos_bits = (flags & WILL_QOS_MASK) >> WILL_QOS_SHIFT;
    let will_retain = flags & WILL_RETAIN != 0;
    // [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15]
    if !has_will && (will_qos_bits != 0 || will_retain) {
        return Err(DecodeError::WillFlags);
    }
    // [MQTT-3.1.2-14]
    let will_qos = QoS::from_u8(will_qos_bits).ok_or(DecodeError::WillFlags)?;
    let has_username = flags & USERNAME != 0;
    let has_password = flags & PASSWORD != 0;
    // [MQTT-3.1.2-22]. 3.1 does not say, but Mosquitto rejects it for 3.1 as well. MQTT 5
    // allows a password without a username (section 3.1.2.9).
    if has_password && !has_username && version != ProtocolVersion::V5 {
        return Err(DecodeError::PasswordWithoutUsername);
    }
    let keep_alive = r.u16()?;
    let is_v5 = version == ProtocolVersion::V5;
    let properties = if is_v5 {
        Props::decode(r, PropertyContext::Packet(PacketType::Connect))?
    } else {
        Props::default()
    };

    // Payload order [MQTT-3.1.3-1]: client id, will topic, will message, username, password.
    let client_id = r.string()?;
    let will = if has_will {
        // MQTT 5: the Will Properties come before the will topic (section 3.1.3.2).
        let properties = if is_v5 {
            Props::decode(r, PropertyContext::Will)?
        } else {
            Props::default()
        };
        let topic = r.string()?;
        if !topic::is_valid_name(topic) {
            return Err(DecodeError::InvalidTopicName);
        }
        let payload = r.binary()?;
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(r.string()?)
    } else {
        None
    };
    let password = if has_password {
        Some(r.binary()?)
    } else {
        None
    };
    Ok(Connect {
        version,
        clean_session: flags & CLEAN_SESSION != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

fn name_and_level(version: ProtocolVersion) -> (&'static [u8], u8) {
    match version {
        ProtocolVersion::V31 => (NAME_V31, 3),
        ProtocolVersion::V311 => (NAME_V311, 4),
        ProtocolVersion::V5 => (NAME_V311, 5),
    }
}

pub(super) fn connect_body_len(c: &Connect<'_>) -> usize {
    let (name, _) = name_and_level(c.version);
    let is_v5 = c.version == ProtocolVersion::V5;
    let will = c.will.as_ref().map_or(0, |w| {
        let properties = if is_v5 { w.properties.encoded_len() } else { 0 };
        properties + field_len(w.topic.len()) + field_len(w.payload.len())
    });
    let properties = if is_v5 { c.properties.encoded_len() } else { 0 };
    // Name, level, flags, keep alive; then the payload.
    field_len(name.len())
        + 1
        + 1
        + 2
        + properties
        + field_len(c.client_id.len())
        + will
        + c.username.map_or(0, |u| field_len(u.len()))
        + c.password.map_or(0, |p| field_len(p.len()))
}

pub(super) fn encode_connect(c: &Connect<'_>, out: &mut Vec<u8>) {
    let is_v5 = c.version == ProtocolVersion::V5;
    debug_assert!(
        c.password.is_none() || c.username.is_some() || is_v5,
        "password without username [MQTT-3.1.2-22]"
    );
    let (name, level) = name_and_level(c.version);
    put_binary(out, name);
    out.push(level);
    let mut flags = 0;
    if c.clean_session {
        flags |= CLEAN_SESSION;
    }
    if let Some(will) = &c.will {
        flags |= WILL | ((will.qos as u8) << WILL_QOS_SHIFT);
        if will.retain {
            flags |= WILL_RETAIN;
        }
    }
    if c.username.is_some() {
        flags |= USERNAME;
    }
    if c.password.is_some() {
        flags |= PASSWORD;
    }
    out.push(flags);
    put_u16(out, c.keep_alive);
    if is_v5 {
        c.properties.encode(out);
    }
    put_binary(out, c.client_id.as_bytes());
    if let Some(will) = &c.will {
        if is_v5 {
            will.properties.encode(out);
        }
        put_binary(out, will.topic.as_bytes());
        put_binary(out, will.payload);
    }
    if let Some(username) = c.username {
        put_binary(out, username.as_bytes());
    }
    if let Some(password) = c.password {
        put_binary(out, password);
    }
}

/// [MQTT-3.2.2]: bit 0 of the acknowledge flags is Session Present, bits 7-1 are
/// reserved. The format is the same for 3.1 (which calls the byte unused); not setting
/// Session Present for a 3.1 client is the broker's job, as in Mosquitto. In MQTT 5 the
/// return code is a reason code CONNACK may carry, followed by properties.
pub(super) fn decode_connack<'a>(
    r: &mut Reader<'a>,
    version: ProtocolVersion,
) -> Result<Connack<'a>, DecodeError> {
    let flags = r.u8()?;
    if flags & 0xfe != 0 {
        return Err(DecodeError::InvalidConnack);
    }
    let session_present = flags & 0x01 != 0;
    if version != ProtocolVersion::V5 {
        let reason = ReasonCode::from_v3_connack(r.u8()?).ok_or(DecodeError::InvalidConnack)?;
        return Ok(Connack::new(session_present, reason));
    }
    let reason = reason_code(r, PacketType::Connack)?;
    let properties = Props::decode(r, PropertyContext::Packet(PacketType::Connack))?;
    Ok(Connack {
        session_present,
        reason,
        properties,
    })
}

pub(super) fn encode_connack(c: &Connack<'_>, version: ProtocolVersion, out: &mut Vec<u8>) {
    out.push(u8::from(c.session_present));
    if version == ProtocolVersion::V5 {
        out.push(c.reason.0);
        c.properties.encode_in_order(CONNACK_ORDER, out);
    } else {
        out.push(c.reason.to_v3_connack());
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_round_trip, encode};
    use super::super::Packet;
    use super::*;
    use crate::protocol::Properties;

    const V311: ProtocolVersion = ProtocolVersion::V311;

    /// CONNECT 3.1.1 with every field: flags 0xce (username, password, will QoS 1, will,
    /// clean session), keep alive 10. Layout of [MQTT-3.1.2] figure 3.6.
    static CONNECT_V311: [u8; 33] = [
        0x10, 0x1f, // fixed header
        0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0xce, 0x00, 0x0a, // variable header
        0x00, 0x02, b'c', b'1', // client id
        0x00, 0x03, b'w', b'/', b't', // will topic
        0x00, 0x03, b'b', b'y', b'e', // will message
        0x00, 0x01, b'u', // username
        0x00, 0x02, b'p', b'w', // password
    ];

    fn connect_v311() -> Connect<'static> {
        Connect {
            version: ProtocolVersion::V311,
            clean_session: true,
            keep_alive: 10,
            client_id: "c1",
            will: Some(Will {
                topic: "w/t",
                payload: b"bye",
                qos: QoS::AtLeastOnce,
                retain: false,
                properties: Props::default(),
            }),
            username: Some("u"),
            password: Some(b"pw"),
            properties: Props::default(),
        }
    }

    /// CONNECT 3.1: "MQIsdp", level 3, clean session, keep alive 60, client id "abc".
    static CONNECT_V31: [u8; 19] = [
        0x10, 0x11, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0x02, 0x00, 0x3c, 0x00,
        0x03, b'a', b'b', b'c',
    ];

    fn connect_v31() -> Connect<'static> {
        Connect {
            version: ProtocolVersion::V31,
            clean_session: true,
            keep_alive: 60,
            client_id: "abc",
            will: None,
            username: None,
            password: None,
            properties: Props::default(),
        }
    }

    /// CONNACK, session present, accepted.
    static CONNACK: [u8; 4] = [0x20, 0x02, 0x01, 0x00];

    /// `CONNECT_V311` with byte `index` replaced.
    fn connect_with(index: usize, value: u8) -> Vec<u8> {
        let mut bytes = CONNECT_V311.to_vec();
        bytes[index] = value;
        bytes
    }

    /// A CONNECT 3.1.1 frame with these flags and payload (keep alive 0).
    fn connect_frame(flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut body = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, flags, 0x00, 0x00];
        body.extend_from_slice(payload);
        let mut frame = vec![0x10];
        crate::protocol::frame::write_remaining_length(&mut frame, body.len());
        frame.extend_from_slice(&body);
        frame
    }

    #[test]
    fn decode_connect_v311() {
        assert_eq!(
            Packet::decode(&CONNECT_V311, ProtocolVersion::V31),
            Ok(Packet::Connect(Box::new(connect_v311())))
        );
    }

    #[test]
    fn encode_connect_v311() {
        assert_eq!(
            encode(&Packet::Connect(Box::new(connect_v311())), V311),
            CONNECT_V311
        );
    }

    #[test]
    fn decode_connect_v31() {
        assert_eq!(
            Packet::decode(&CONNECT_V31, V311),
            Ok(Packet::Connect(Box::new(connect_v31())))
        );
    }

    #[test]
    fn encode_connect_v31() {
        assert_eq!(
            encode(&Packet::Connect(Box::new(connect_v31())), V311),
            CONNECT_V31
        );
    }

    #[test]
    fn decode_connack() {
        let connack = Connack::new(true, ReasonCode::SUCCESS);
        assert_eq!(
            Packet::decode(&CONNACK, V311),
            Ok(Packet::Connack(connack.clone()))
        );
        assert_eq!(encode(&Packet::Connack(connack), V311), CONNACK);
    }

    #[test]
    fn connack_return_codes_round_trip() {
        for code in 0..=5 {
            let code = ReasonCode::from_v3_connack(code).unwrap();
            for session_present in [false, true] {
                for version in [ProtocolVersion::V31, V311] {
                    let connack = Connack::new(session_present, code);
                    assert_round_trip(&Packet::Connack(connack), version);
                }
            }
        }
    }

    #[test]
    fn the_bridge_bit_is_seen_only_on_a_3_1_1_or_3_1_connect() {
        let mut frame = connect_with(8, 0x84);
        assert!(is_bridge_connect(&frame));
        frame = connect_with(8, 0x04);
        assert!(!is_bridge_connect(&frame));
        assert!(!is_bridge_connect(&frame[..8]));
        assert!(!is_bridge_connect(&[0x30, 0x00]));
        assert!(!is_bridge_connect(&[]));
    }

    /// Mosquitto bridges (`try_private true`) send level 0x84; accepted as 3.1.1.
    #[test]
    fn connect_with_bridge_bit_is_accepted() {
        let bytes = connect_with(8, 0x84);
        assert_eq!(
            Packet::decode(&bytes, V311),
            Ok(Packet::Connect(Box::new(connect_v311())))
        );
    }

    /// [MQTT-3.1.2-1]: an unknown protocol name; the broker closes without CONNACK.
    #[test]
    fn connect_with_unknown_protocol_name_is_malformed() {
        let bytes = connect_with(5, b'X');
        assert_eq!(
            Packet::decode(&bytes, V311),
            Err(DecodeError::InvalidProtocolName)
        );
    }

    /// [MQTT-3.1.2-2]: an unsupported level is answered with CONNACK 0x01.
    #[test]
    fn connect_with_unsupported_level_is_refused() {
        for level in [0, 1, 2, 3, 6, 0x7f] {
            assert_eq!(
                Packet::decode(&connect_with(8, level), V311),
                Err(DecodeError::UnsupportedProtocolVersion(level))
            );
        }
        // "MQIsdp" only goes with level 3.
        let mut v31 = CONNECT_V31;
        v31[10] = 4;
        assert_eq!(
            Packet::decode(&v31, V311),
            Err(DecodeError::UnsupportedProtocolVersion(4))
        );
    }

    /// Level 5 is MQTT 5: the 3.1.1 body is read with MQTT 5's layout, where the byte
    /// after the keep alive is a Property Length, so the rest no longer fits.
    #[test]
    fn connect_level_5_is_read_as_mqtt5() {
        assert_eq!(
            Packet::decode(&connect_with(8, 5), V311),
            Err(DecodeError::UnexpectedEnd)
        );
    }

    /// [MQTT-3.1.2-3]
    #[test]
    fn connect_with_reserved_flag_is_malformed() {
        assert_eq!(
            Packet::decode(&connect_with(9, 0xcf), V311),
            Err(DecodeError::ConnectReservedFlag)
        );
    }

    /// MQTT 3.1 reserves neither the fixed-header flags of CONNECT nor bit 0 of its
    /// connect flags: Mosquitto accepts both set (seq/ units "v3.1 CONNECT 10 ok" and
    /// "v3.1 CONNECT 14 ok"), and so does culex. 3.1.1 refuses both [MQTT-2.2.2-2]
    /// [MQTT-3.1.2-3].
    #[test]
    fn connect_v31_ignores_reserved_bits() {
        let mut v31 = CONNECT_V31;
        v31[11] |= 0x01;
        let Ok(Packet::Connect(connect)) = Packet::decode(&v31, V311) else {
            panic!("{:?}", Packet::decode(&v31, V311));
        };
        assert_eq!(connect.version, ProtocolVersion::V31);
        v31[0] = 0x14;
        assert!(Packet::decode(&v31, V311).is_ok());
        let mut v311 = CONNECT_V311.to_vec();
        v311[0] = 0x14;
        assert_eq!(
            Packet::decode(&v311, V311),
            Err(DecodeError::ReservedFlags(0x14))
        );
    }

    /// [MQTT-3.1.2-11] [MQTT-3.1.2-13]: will QoS must be 0 without the will flag.
    #[test]
    fn connect_with_will_qos_but_no_will_is_malformed() {
        let bytes = connect_frame(0x08, &[0x00, 0x01, b'c']);
        assert_eq!(Packet::decode(&bytes, V311), Err(DecodeError::WillFlags));
    }

    /// [MQTT-3.1.2-15]: will retain must be 0 without the will flag.
    #[test]
    fn connect_with_will_retain_but_no_will_is_malformed() {
        let bytes = connect_frame(0x20, &[0x00, 0x01, b'c']);
        assert_eq!(Packet::decode(&bytes, V311), Err(DecodeError::WillFlags));
    }

    /// [MQTT-3.1.2-14]
    #[test]
    fn connect_with_will_qos3_is_malformed() {
        assert_eq!(
            Packet::decode(&connect_with(9, 0xde), V311),
            Err(DecodeError::WillFlags)
        );
    }

    /// [MQTT-3.1.2-22]; rejected for 3.1 as well, as Mosquitto does.
    #[test]
    fn connect_with_password_without_username_is_malformed() {
        let bytes = connect_frame(0x40, &[0x00, 0x01, b'c', 0x00, 0x01, b'p']);
        assert_eq!(
            Packet::decode(&bytes, V311),
            Err(DecodeError::PasswordWithoutUsername)
        );
        let v31 = [
            0x10, 0x12, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0x42, 0x00, 0x3c,
            0x00, 0x01, b'c', 0x00, 0x01, b'p',
        ];
        assert_eq!(
            Packet::decode(&v31, V311),
            Err(DecodeError::PasswordWithoutUsername)
        );
    }

    /// [MQTT-3.1.3-10] / [MQTT-3.3.2-2]: the will topic is a topic name, no wildcards.
    #[test]
    fn connect_with_wildcard_will_topic_is_malformed() {
        let bytes = connect_with(20, b'#');
        assert_eq!(
            Packet::decode(&bytes, V311),
            Err(DecodeError::InvalidTopicName)
        );
    }

    /// [MQTT-1.5.3-2]
    #[test]
    fn connect_with_nul_in_client_id_is_malformed() {
        let bytes = connect_with(15, 0x00);
        assert_eq!(Packet::decode(&bytes, V311), Err(DecodeError::InvalidUtf8));
    }

    /// [MQTT-1.5.3-1]
    #[test]
    fn connect_with_invalid_utf8_username_is_malformed() {
        let bytes = connect_with(28, 0xff);
        assert_eq!(Packet::decode(&bytes, V311), Err(DecodeError::InvalidUtf8));
    }

    /// The payload must hold what the flags announce. [MQTT-3.1.3-1]
    #[test]
    fn connect_missing_password_is_malformed() {
        let mut bytes = CONNECT_V311[..29].to_vec();
        bytes[1] = 27;
        assert_eq!(
            Packet::decode(&bytes, V311),
            Err(DecodeError::UnexpectedEnd)
        );
    }

    /// Bytes after the password.
    #[test]
    fn connect_with_trailing_bytes_is_malformed() {
        let mut bytes = CONNECT_V311.to_vec();
        bytes.push(0x00);
        bytes[1] += 1;
        assert_eq!(
            Packet::decode(&bytes, V311),
            Err(DecodeError::TrailingBytes)
        );
    }

    /// [MQTT-3.2.2-1]: bits 7-1 of the acknowledge flags are reserved.
    #[test]
    fn connack_with_reserved_flags_is_malformed() {
        assert_eq!(
            Packet::decode(&[0x20, 0x02, 0x02, 0x00], V311),
            Err(DecodeError::InvalidConnack)
        );
    }

    /// [MQTT-3.2.2.3]: return codes 6-255 are reserved.
    #[test]
    fn connack_with_unknown_return_code_is_malformed() {
        assert_eq!(
            Packet::decode(&[0x20, 0x02, 0x00, 0x06], V311),
            Err(DecodeError::InvalidConnack)
        );
    }

    #[test]
    fn connack_of_wrong_length_is_malformed() {
        assert_eq!(
            Packet::decode(&[0x20, 0x01, 0x00], V311),
            Err(DecodeError::UnexpectedEnd)
        );
        assert_eq!(
            Packet::decode(&[0x20, 0x03, 0x00, 0x00, 0x00], V311),
            Err(DecodeError::TrailingBytes)
        );
    }

    /// MQTT 5 CONNECT (section 3.1): level 5, flags 0xc6 (username, password, will QoS 0,
    /// will, clean start), keep alive 10, Session Expiry Interval 10, then client id "c",
    /// Will Properties (Will Delay Interval 5), will topic "w", payload "x", username "u",
    /// password "p".
    static CONNECT_V5: [u8; 39] = [
        0x10, 0x25, // fixed header
        0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0xc6, 0x00, 0x0a, // variable header
        0x05, 0x11, 0x00, 0x00, 0x00, 0x0a, // properties
        0x00, 0x01, b'c', // client id
        0x05, 0x18, 0x00, 0x00, 0x00, 0x05, // will properties
        0x00, 0x01, b'w', 0x00, 0x01, b'x', // will topic, payload
        0x00, 0x01, b'u', 0x00, 0x01, b'p', // username, password
    ];

    fn connect_v5() -> Connect<'static> {
        Connect {
            version: ProtocolVersion::V5,
            clean_session: true,
            keep_alive: 10,
            client_id: "c",
            will: Some(Will {
                topic: "w",
                payload: b"x",
                qos: QoS::AtMostOnce,
                retain: false,
                properties: Properties {
                    will_delay_interval: Some(5),
                    ..Properties::default()
                }
                .into(),
            }),
            username: Some("u"),
            password: Some(b"p"),
            properties: Properties {
                session_expiry_interval: Some(10),
                ..Properties::default()
            }
            .into(),
        }
    }

    #[test]
    fn decode_and_encode_connect_v5() {
        assert_eq!(
            Packet::decode(&CONNECT_V5, V311),
            Ok(Packet::Connect(Box::new(connect_v5())))
        );
        assert_eq!(
            encode(
                &Packet::Connect(Box::new(connect_v5())),
                ProtocolVersion::V5
            ),
            CONNECT_V5
        );
    }

    /// Section 3.1.2.9: MQTT 5 allows a password without a username.
    #[test]
    fn connect_v5_with_password_without_username_is_accepted() {
        let mut c = connect_v5();
        c.username = None;
        c.will = None;
        assert_round_trip(&Packet::Connect(Box::new(c)), ProtocolVersion::V5);
    }

    /// Will Properties hold only will properties; CONNECT's hold CONNECT's.
    #[test]
    fn connect_v5_with_will_delay_in_connect_properties_is_malformed() {
        let mut bytes = CONNECT_V5;
        bytes[13] = 0x18;
        assert_eq!(
            Packet::decode(&bytes, V311),
            Err(DecodeError::InvalidProperty(0x18))
        );
        let mut bytes = CONNECT_V5;
        bytes[22] = 0x11;
        assert_eq!(
            Packet::decode(&bytes, V311),
            Err(DecodeError::InvalidProperty(0x11))
        );
    }

    /// Section 3.2.2: MQTT 5 CONNACK carries a reason code and properties.
    #[test]
    fn decode_and_encode_connack_v5() {
        let bytes = [0x20, 0x06, 0x00, 0x85, 0x03, 0x21, 0x00, 0x14];
        let connack = Connack {
            session_present: false,
            reason: ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            properties: Properties {
                receive_maximum: Some(20),
                ..Properties::default()
            }
            .into(),
        };
        assert_eq!(
            Packet::decode(&bytes, ProtocolVersion::V5),
            Ok(Packet::Connack(connack.clone()))
        );
        assert_eq!(
            encode(&Packet::Connack(connack.clone()), ProtocolVersion::V5),
            bytes
        );
        // The same CONNACK to a 3.1.1 client: return code 2, no properties.
        assert_eq!(
            encode(&Packet::Connack(connack), V311),
            [0x20, 0x02, 0x00, 0x02]
        );
        // 0x10 is not a CONNACK code (section 3.2.2.2).
        assert_eq!(
            Packet::decode(&[0x20, 0x03, 0x00, 0x10, 0x00], ProtocolVersion::V5),
            Err(DecodeError::InvalidReasonCode(0x10))
        );
    }

    /// Section 2.2.2.2 gives no order for properties; culex writes CONNACK's in
    /// Mosquitto 2.0's order (its test suite compares the bytes): Server Keep Alive,
    /// Topic Alias Maximum, Assigned Client Identifier, Authentication Method and Data,
    /// Retain Available, Maximum Packet Size, Receive Maximum, Maximum QoS.
    #[test]
    fn connack_v5_properties_are_in_mosquittos_order() {
        let v5 = ProtocolVersion::V5;
        // What Mosquitto's 02-subpub-qos1.py expects: Topic Alias Maximum 10 before
        // Receive Maximum 20.
        let connack = Connack {
            properties: Properties {
                receive_maximum: Some(20),
                topic_alias_maximum: Some(10),
                ..Properties::default()
            }
            .into(),
            ..Connack::new(false, ReasonCode::SUCCESS)
        };
        let expected = [
            0x20, 0x09, 0x00, 0x00, 0x06, 0x22, 0x00, 0x0a, 0x21, 0x00, 0x14,
        ];
        assert_eq!(encode(&Packet::Connack(connack.clone()), v5), expected);
        assert_eq!(Packet::decode(&expected, v5), Ok(Packet::Connack(connack)));
        // Every property Mosquitto sends, then two it never sends (identifier order).
        let all = Connack {
            properties: Properties {
                session_expiry_interval: Some(1),
                reason_string: Some("r"),
                assigned_client_identifier: Some("c"),
                server_keep_alive: Some(5),
                authentication_method: Some("m"),
                authentication_data: Some(b"d"),
                receive_maximum: Some(20),
                topic_alias_maximum: Some(10),
                maximum_qos: Some(1),
                retain_available: Some(0),
                maximum_packet_size: Some(1000),
                ..Properties::default()
            }
            .into(),
            ..Connack::new(true, ReasonCode::SUCCESS)
        };
        let bytes = encode(&Packet::Connack(all.clone()), v5);
        let ids: &[u8] = &[
            0x13, 0x22, 0x12, 0x15, 0x16, 0x25, 0x27, 0x21, 0x24, 0x11, 0x1f,
        ];
        let body = &bytes[5..];
        let mut seen = Vec::new();
        let mut r = Reader::new(body);
        while !r.is_empty() {
            let id = r.u8().unwrap();
            seen.push(id);
            let skip = match id {
                0x24 | 0x25 => 1,
                0x13 | 0x21 | 0x22 => 2,
                0x11 | 0x27 => 4,
                _ => usize::from(r.u16().unwrap()),
            };
            r.take(skip).unwrap();
        }
        assert_eq!(seen, ids);
        assert_eq!(bytes.len(), Packet::Connack(all.clone()).encoded_len(v5));
        assert_eq!(Packet::decode(&bytes, v5), Ok(Packet::Connack(all)));
    }

    /// CONNACK codes for 3.1.1 clients map to the closest return code.
    #[test]
    fn v5_connack_codes_encode_as_closest_v3_code() {
        for (reason, v3) in [
            (ReasonCode::BAD_AUTHENTICATION_METHOD, 5),
            (ReasonCode::BANNED, 5),
            (ReasonCode::SERVER_BUSY, 3),
            (ReasonCode::UNSUPPORTED_PROTOCOL_VERSION, 1),
        ] {
            assert_eq!(
                encode(&Packet::Connack(Connack::new(false, reason)), V311),
                [0x20, 0x02, 0x00, v3]
            );
        }
    }
}
