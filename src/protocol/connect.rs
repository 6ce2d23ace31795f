//! CONNECT [MQTT-3.1] and CONNACK [MQTT-3.2] bodies.
//!
//! CONNECT is the one packet that says which protocol version the connection speaks, so
//! its decoder ignores the connection's version and returns the one it read. An
//! unsupported level is its own error because the broker answers it with CONNACK 0x01
//! [MQTT-3.1.2-2]; an unknown protocol name gets no CONNACK [MQTT-3.1.2-1].

use super::packet::{field_len, put_binary, put_u16};
use super::reader::Reader;
use super::{Connack, Connect, ConnectReturnCode, DecodeError, ProtocolVersion, QoS, Will};
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

pub(super) fn decode_connect<'a>(r: &mut Reader<'a>) -> Result<Connect<'a>, DecodeError> {
    let name = r.binary()?;
    let level = r.u8()? & !BRIDGE_BIT;
    let version = match (name, level) {
        (NAME_V31, 3) => ProtocolVersion::V31,
        (NAME_V311, 4) => ProtocolVersion::V311,
        (NAME_V31 | NAME_V311, level) => {
            return Err(DecodeError::UnsupportedProtocolVersion(level))
        }
        _ => return Err(DecodeError::InvalidProtocolName),
    };

    let flags = r.u8()?;
    // [MQTT-3.1.2-3]; 3.1 calls the bit unused, and no 3.1 client we know sets it.
    if flags & RESERVED != 0 {
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
    // [MQTT-3.1.2-22]. 3.1 does not say, but Mosquitto rejects it for 3.1 as well.
    if has_password && !has_username {
        return Err(DecodeError::PasswordWithoutUsername);
    }
    let keep_alive = r.u16()?;

    // Payload order [MQTT-3.1.3-1]: client id, will topic, will message, username, password.
    let client_id = r.string()?;
    let will = if has_will {
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
    })
}

fn name_and_level(version: ProtocolVersion) -> (&'static [u8], u8) {
    match version {
        ProtocolVersion::V31 => (NAME_V31, 3),
        ProtocolVersion::V311 => (NAME_V311, 4),
        ProtocolVersion::V5 => {
            debug_assert!(false, "MQTT 5 CONNECT encoding is not implemented yet");
            (NAME_V311, 5)
        }
    }
}

pub(super) fn connect_body_len(c: &Connect<'_>) -> usize {
    let (name, _) = name_and_level(c.version);
    let will = c
        .will
        .as_ref()
        .map_or(0, |w| field_len(w.topic.len()) + field_len(w.payload.len()));
    // Name, level, flags, keep alive; then the payload.
    field_len(name.len())
        + 1
        + 1
        + 2
        + field_len(c.client_id.len())
        + will
        + c.username.map_or(0, |u| field_len(u.len()))
        + c.password.map_or(0, |p| field_len(p.len()))
}

pub(super) fn encode_connect(c: &Connect<'_>, out: &mut Vec<u8>) {
    debug_assert!(
        c.password.is_none() || c.username.is_some(),
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
    put_binary(out, c.client_id.as_bytes());
    if let Some(will) = &c.will {
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
/// Session Present for a 3.1 client is the broker's job, as in Mosquitto.
pub(super) fn decode_connack(r: &mut Reader<'_>) -> Result<Connack, DecodeError> {
    let flags = r.u8()?;
    if flags & 0xfe != 0 {
        return Err(DecodeError::InvalidConnack);
    }
    let code = ConnectReturnCode::from_u8(r.u8()?).ok_or(DecodeError::InvalidConnack)?;
    Ok(Connack {
        session_present: flags & 0x01 != 0,
        code,
    })
}

pub(super) fn encode_connack(c: &Connack, out: &mut Vec<u8>) {
    out.push(u8::from(c.session_present));
    out.push(c.code as u8);
}
