//! The packets whose MQTT 5 body is "maybe a reason code, maybe properties": PUBACK,
//! PUBREC, PUBREL, PUBCOMP [MQTT-3.4] to [MQTT-3.7] (after a packet identifier),
//! DISCONNECT [MQTT-3.14] and AUTH [MQTT-3.15].
//!
//! MQTT 5 lets a sender leave out a Success reason code and an empty property block:
//! an ack is then 2 bytes long, DISCONNECT and AUTH 0 bytes. With a reason code but no
//! properties, the Property Length may be left out too (an ack of 3 bytes, a DISCONNECT
//! of 1). Decoding accepts every form; encoding writes the shortest. In 3.1/3.1.1 an ack
//! is exactly its packet identifier and DISCONNECT is empty.

use super::packet::{put_u16, reason_code};
use super::reader::Reader;
use super::{
    Ack, Auth, DecodeError, Disconnect, PacketType, Properties, PropertyContext, Props,
    ProtocolVersion, ReasonCode,
};

/// Reads what is left of a body: a reason code valid for `packet` (Success when absent)
/// and properties (none when absent).
fn reason_and_properties<'a>(
    r: &mut Reader<'a>,
    packet: PacketType,
) -> Result<(ReasonCode, Props<'a>), DecodeError> {
    if r.is_empty() {
        return Ok((ReasonCode::SUCCESS, Props::default()));
    }
    let reason = reason_code(r, packet)?;
    let properties = if r.is_empty() {
        Props::default()
    } else {
        Props::decode(r, PropertyContext::Packet(packet))?
    };
    Ok((reason, properties))
}

/// Bytes of the reason code and properties in their shortest form.
fn reason_and_properties_len(reason: ReasonCode, properties: &Properties<'_>) -> usize {
    if !properties.is_empty() {
        1 + properties.encoded_len()
    } else if reason != ReasonCode::SUCCESS {
        1
    } else {
        0
    }
}

fn put_reason_and_properties(reason: ReasonCode, properties: &Properties<'_>, out: &mut Vec<u8>) {
    if !properties.is_empty() {
        out.push(reason.0);
        properties.encode(out);
    } else if reason != ReasonCode::SUCCESS {
        out.push(reason.0);
    }
}

/// [MQTT-3.4.2] to [MQTT-3.7.2]: "If the Remaining Length is less than 4 there is no
/// Property Length and the value of 0 is used"; 2 means Success without properties.
pub(super) fn decode_ack<'a>(
    r: &mut Reader<'a>,
    version: ProtocolVersion,
    packet: PacketType,
) -> Result<Ack<'a>, DecodeError> {
    let packet_id = r.publish_packet_id()?;
    if version != ProtocolVersion::V5 {
        return Ok(Ack::new(packet_id));
    }
    let (reason, properties) = reason_and_properties(r, packet)?;
    Ok(Ack {
        packet_id,
        reason,
        properties,
    })
}

pub(super) fn ack_body_len(a: &Ack<'_>, version: ProtocolVersion) -> usize {
    match version {
        ProtocolVersion::V5 => 2 + reason_and_properties_len(a.reason, &a.properties),
        _ => 2,
    }
}

pub(super) fn encode_ack(a: &Ack<'_>, version: ProtocolVersion, out: &mut Vec<u8>) {
    put_u16(out, a.packet_id.get());
    if version == ProtocolVersion::V5 {
        put_reason_and_properties(a.reason, &a.properties, out);
    }
}

/// [MQTT-3.14.2]: Remaining Length 0 is a Normal disconnection without properties; "if
/// the Remaining Length is less than 2, a value of 0 is used" for the Property Length.
pub(super) fn decode_disconnect<'a>(
    r: &mut Reader<'a>,
    version: ProtocolVersion,
) -> Result<Disconnect<'a>, DecodeError> {
    if version != ProtocolVersion::V5 {
        // The caller's `expect_empty` rejects a body. [MQTT-3.14]
        return Ok(Disconnect::default());
    }
    let (reason, properties) = reason_and_properties(r, PacketType::Disconnect)?;
    Ok(Disconnect { reason, properties })
}

pub(super) fn disconnect_body_len(d: &Disconnect<'_>, version: ProtocolVersion) -> usize {
    match version {
        ProtocolVersion::V5 => reason_and_properties_len(d.reason, &d.properties),
        _ => 0,
    }
}

pub(super) fn encode_disconnect(d: &Disconnect<'_>, version: ProtocolVersion, out: &mut Vec<u8>) {
    if version == ProtocolVersion::V5 {
        put_reason_and_properties(d.reason, &d.properties, out);
    }
}

/// [MQTT-3.15.2]: Remaining Length 0 is Success without properties. (The caller refuses
/// AUTH outside MQTT 5.) A reason code without a Property Length is accepted as for
/// DISCONNECT, but never sent: the encoder writes the Property Length after a code.
pub(super) fn decode_auth<'a>(r: &mut Reader<'a>) -> Result<Auth<'a>, DecodeError> {
    let (reason, properties) = reason_and_properties(r, PacketType::Auth)?;
    Ok(Auth { reason, properties })
}

pub(super) fn auth_body_len(a: &Auth<'_>) -> usize {
    if a.reason == ReasonCode::SUCCESS && a.properties.is_empty() {
        0
    } else {
        1 + a.properties.encoded_len()
    }
}

pub(super) fn encode_auth(a: &Auth<'_>, out: &mut Vec<u8>) {
    if a.reason != ReasonCode::SUCCESS || !a.properties.is_empty() {
        out.push(a.reason.0);
        a.properties.encode(out);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::encode;
    use super::super::{Packet, PacketId};
    use super::*;

    const V5: ProtocolVersion = ProtocolVersion::V5;

    fn id(v: u16) -> PacketId {
        PacketId::new(v).unwrap()
    }

    /// Sections 3.4.2.1 to 3.7.2.1: "The Reason Code and Property Length can be omitted
    /// if the Reason Code is 0x00 (Success) and there are no Properties"; "If the
    /// Remaining Length is less than 4 there is no Property Length".
    #[test]
    fn ack_short_forms_decode_and_the_shortest_is_encoded() {
        for first in [0x40, 0x50, 0x62, 0x70] {
            let success = Ack::new(id(7));
            let short: [u8; 4] = [first, 0x02, 0x00, 0x07];
            let with_code: [u8; 5] = [first, 0x03, 0x00, 0x07, 0x00];
            let with_length: [u8; 6] = [first, 0x04, 0x00, 0x07, 0x00, 0x00];
            for bytes in [&short[..], &with_code, &with_length] {
                let packet = Packet::decode(bytes, V5).unwrap();
                let (Packet::Puback(ack)
                | Packet::Pubrec(ack)
                | Packet::Pubrel(ack)
                | Packet::Pubcomp(ack)) = &packet
                else {
                    panic!("{packet:?}");
                };
                assert_eq!(ack, &success, "{bytes:02x?}");
                assert_eq!(encode(&packet, V5), short);
            }
        }
        // A failure code without properties: remaining length 3.
        let bytes = [0x40, 0x03, 0x00, 0x07, 0x10];
        let puback = Ack {
            reason: ReasonCode::NO_MATCHING_SUBSCRIBERS,
            ..Ack::new(id(7))
        };
        assert_eq!(
            Packet::decode(&bytes, V5),
            Ok(Packet::Puback(puback.clone()))
        );
        assert_eq!(encode(&Packet::Puback(puback), V5), bytes);
        // PUBREL with Packet Identifier not found and a Reason String.
        let bytes = [0x62, 0x08, 0x00, 0x07, 0x92, 0x04, 0x1f, 0x00, 0x01, b'x'];
        let pubrel = Ack {
            reason: ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
            properties: Properties {
                reason_string: Some("x"),
                ..Properties::default()
            }
            .into(),
            ..Ack::new(id(7))
        };
        assert_eq!(
            Packet::decode(&bytes, V5),
            Ok(Packet::Pubrel(pubrel.clone()))
        );
        assert_eq!(encode(&Packet::Pubrel(pubrel), V5), bytes);
    }

    /// [MQTT-3.4.2-1] and its siblings: only the codes listed for the packet.
    #[test]
    fn ack_with_a_code_not_allowed_is_rejected() {
        // 0x92 belongs to PUBREL/PUBCOMP, 0x10 to PUBACK/PUBREC, 0x04 to DISCONNECT.
        let cases: [(&[u8], u8); 4] = [
            (&[0x40, 0x03, 0x00, 0x01, 0x92], 0x92),
            (&[0x62, 0x03, 0x00, 0x01, 0x10], 0x10),
            (&[0x70, 0x03, 0x00, 0x01, 0x04], 0x04),
            (&[0x50, 0x03, 0x00, 0x01, 0x05], 0x05),
        ];
        for (bytes, code) in cases {
            assert_eq!(
                Packet::decode(bytes, V5),
                Err(DecodeError::InvalidReasonCode(code))
            );
        }
    }

    /// [MQTT-2.2.1-3]: packet identifier 0 in PUBACK, PUBREC, PUBREL or PUBCOMP is
    /// refused as a Protocol Error, as Mosquitto does (seq/ units "PUBACK 40 unsolicited
    /// mid 0" and siblings expect DISCONNECT 0x82).
    #[test]
    fn ack_with_packet_id_zero_is_a_protocol_error() {
        for first in [0x40, 0x50, 0x62, 0x70] {
            for version in [V5, ProtocolVersion::V311] {
                let err = Packet::decode(&[first, 0x02, 0x00, 0x00], version).unwrap_err();
                assert_eq!(err, DecodeError::ProtocolError("packet identifier 0"));
                assert_eq!(ReasonCode::from(err), ReasonCode::PROTOCOL_ERROR);
            }
        }
    }

    /// Section 3.14.2: Remaining Length 0 is Normal disconnection; 1 is a reason code
    /// without properties.
    #[test]
    fn disconnect_short_forms() {
        assert_eq!(
            Packet::decode(&[0xe0, 0x00], V5),
            Ok(Packet::Disconnect(Disconnect::default()))
        );
        let with_will = Disconnect {
            reason: ReasonCode::DISCONNECT_WITH_WILL_MESSAGE,
            properties: Props::default(),
        };
        assert_eq!(
            Packet::decode(&[0xe0, 0x01, 0x04], V5),
            Ok(Packet::Disconnect(with_will.clone()))
        );
        assert_eq!(
            encode(&Packet::Disconnect(with_will), V5),
            [0xe0, 0x01, 0x04]
        );
        assert_eq!(
            Packet::decode(&[0xe0, 0x02, 0x00, 0x00], V5),
            Ok(Packet::Disconnect(Disconnect::default()))
        );
        assert_eq!(
            encode(&Packet::Disconnect(Disconnect::default()), V5),
            [0xe0, 0x00]
        );
        // 0x10 is not a DISCONNECT code; Session Expiry Interval is a DISCONNECT property.
        assert_eq!(
            Packet::decode(&[0xe0, 0x01, 0x10], V5),
            Err(DecodeError::InvalidReasonCode(0x10))
        );
        assert_eq!(
            Packet::decode(&[0xe0, 0x07, 0x00, 0x05, 0x11, 0, 0, 0, 9], V5),
            Ok(Packet::Disconnect(Disconnect {
                reason: ReasonCode::NORMAL_DISCONNECTION,
                properties: Properties {
                    session_expiry_interval: Some(9),
                    ..Properties::default()
                }
                .into(),
            }))
        );
    }

    /// Section 3.15: AUTH is MQTT 5 only; flags reserved; Remaining Length 0 is Success.
    #[test]
    fn auth_decodes_only_in_v5() {
        assert_eq!(
            Packet::decode(&[0xf0, 0x00], V5),
            Ok(Packet::Auth(Auth::default()))
        );
        assert_eq!(
            Packet::decode(&[0xf0, 0x00], ProtocolVersion::V311),
            Err(DecodeError::InvalidPacketType(15))
        );
        assert_eq!(
            Packet::decode(&[0xf1, 0x00], V5),
            Err(DecodeError::ReservedFlags(0xf1))
        );
        let bytes = [0xf0, 0x08, 0x18, 0x06, 0x15, 0x00, 0x03, b'S', b'C', b'R'];
        let auth = Auth {
            reason: ReasonCode::CONTINUE_AUTHENTICATION,
            properties: Properties {
                authentication_method: Some("SCR"),
                ..Properties::default()
            }
            .into(),
        };
        assert_eq!(Packet::decode(&bytes, V5), Ok(Packet::Auth(auth.clone())));
        assert_eq!(encode(&Packet::Auth(auth), V5), bytes);
        assert_eq!(
            Packet::decode(&[0xf0, 0x02, 0x80, 0x00], V5),
            Err(DecodeError::InvalidReasonCode(0x80))
        );
    }

    /// In 3.1.1 the MQTT 5 parts are not on the wire.
    #[test]
    fn v3_acks_and_disconnect_ignore_mqtt5_parts() {
        let puback = Ack {
            reason: ReasonCode::QUOTA_EXCEEDED,
            ..Ack::new(id(1))
        };
        assert_eq!(
            encode(&Packet::Puback(puback), ProtocolVersion::V311),
            [0x40, 0x02, 0x00, 0x01]
        );
        let disconnect = Disconnect {
            reason: ReasonCode::SERVER_SHUTTING_DOWN,
            properties: Props::default(),
        };
        assert_eq!(
            encode(&Packet::Disconnect(disconnect), ProtocolVersion::V311),
            [0xe0, 0x00]
        );
    }
}
