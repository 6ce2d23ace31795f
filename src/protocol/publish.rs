//! PUBLISH [MQTT-3.3]: the hot path. Decoding borrows topic and payload; encoding from
//! parts reserves once and allocates nothing else.

use super::frame;
use super::packet::{field_len, put_binary, put_u16};
use super::reader::Reader;
use super::{DecodeError, PacketId, Publish, QoS};
use crate::topic;

const DUP: u8 = 0x08;
const QOS_SHIFT: u8 = 1;
const QOS_MASK: u8 = 0x06;
const RETAIN: u8 = 0x01;

pub(super) fn decode<'a>(first_byte: u8, r: &mut Reader<'a>) -> Result<Publish<'a>, DecodeError> {
    // [MQTT-3.3.1-4]
    let qos = QoS::from_u8((first_byte & QOS_MASK) >> QOS_SHIFT).ok_or(DecodeError::InvalidQos)?;
    let dup = first_byte & DUP != 0;
    // [MQTT-3.3.1-2]: DUP must be 0 for QoS 0. 3.1 does not say; Mosquitto rejects it for
    // every version and so do we.
    if dup && qos == QoS::AtMostOnce {
        return Err(DecodeError::ReservedFlags(first_byte));
    }
    let topic = r.string()?;
    // [MQTT-3.3.2-2]: no wildcards; [MQTT-4.7.3-1]: at least one character.
    if !topic::is_valid_name(topic) {
        return Err(DecodeError::InvalidTopicName);
    }
    // [MQTT-2.3.1-5]: a packet identifier only for QoS 1 and 2, never 0 [MQTT-2.3.1-1].
    let packet_id = match qos {
        QoS::AtMostOnce => None,
        QoS::AtLeastOnce | QoS::ExactlyOnce => Some(r.packet_id()?),
    };
    Ok(Publish {
        dup,
        qos,
        retain: first_byte & RETAIN != 0,
        topic,
        packet_id,
        // May be empty. [MQTT-3.3.3]
        payload: r.rest(),
    })
}

/// Remaining Length of a PUBLISH.
pub(super) fn body_len(topic_len: usize, payload_len: usize, qos: QoS) -> usize {
    let packet_id = if qos == QoS::AtMostOnce { 0 } else { 2 };
    field_len(topic_len) + packet_id + payload_len
}

pub(super) fn encode(
    out: &mut Vec<u8>,
    topic: &str,
    payload: &[u8],
    qos: QoS,
    retain: bool,
    dup: bool,
    packet_id: Option<PacketId>,
) {
    debug_assert!(
        !(dup && qos == QoS::AtMostOnce),
        "DUP with QoS 0 [MQTT-3.3.1-2]"
    );
    debug_assert_eq!(
        packet_id.is_some(),
        qos != QoS::AtMostOnce,
        "packet id present iff QoS > 0 [MQTT-2.3.1-5]"
    );
    let body_len = body_len(topic.len(), payload.len(), qos);
    out.reserve(frame::frame_len(body_len));
    let mut first_byte = 0x30 | ((qos as u8) << QOS_SHIFT);
    if dup {
        first_byte |= DUP;
    }
    if retain {
        first_byte |= RETAIN;
    }
    out.push(first_byte);
    frame::write_remaining_length(out, body_len);
    put_binary(out, topic.as_bytes());
    if qos != QoS::AtMostOnce {
        // Zero only if the caller broke the invariant asserted above.
        put_u16(out, packet_id.map_or(0, PacketId::get));
    }
    out.extend_from_slice(payload);
}
