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
    Ack, Auth, DecodeError, Disconnect, PacketType, Properties, PropertyContext, ProtocolVersion,
    ReasonCode,
};

/// Reads what is left of a body: a reason code valid for `packet` (Success when absent)
/// and properties (none when absent).
fn reason_and_properties<'a>(
    r: &mut Reader<'a>,
    packet: PacketType,
) -> Result<(ReasonCode, Properties<'a>), DecodeError> {
    if r.is_empty() {
        return Ok((ReasonCode::SUCCESS, Properties::default()));
    }
    let reason = reason_code(r, packet)?;
    let properties = if r.is_empty() {
        Properties::default()
    } else {
        Properties::decode(r, PropertyContext::Packet(packet))?
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
    let packet_id = r.packet_id()?;
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
