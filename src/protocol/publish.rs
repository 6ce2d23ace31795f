//! PUBLISH [MQTT-3.3]: the hot path. Decoding borrows topic and payload; encoding from
//! parts reserves once and allocates nothing else. MQTT 5 adds a property block after
//! the packet identifier, and allows an empty topic name when a Topic Alias stands for it.

use super::frame;
use super::packet::{field_len, put_binary, put_u16};
use super::properties::PUBLISH_ORDER;
use super::reader::Reader;
use super::{
    DecodeError, PacketId, PacketType, Properties, PropertyContext, Props, ProtocolVersion,
    Publish, QoS,
};

const DUP: u8 = 0x08;
const QOS_SHIFT: u8 = 1;
const QOS_MASK: u8 = 0x06;
const RETAIN: u8 = 0x01;

pub(super) fn decode<'a>(
    first_byte: u8,
    r: &mut Reader<'a>,
    version: ProtocolVersion,
) -> Result<Publish<'a>, DecodeError> {
    // [MQTT-3.3.1-4]
    let qos = QoS::from_u8((first_byte & QOS_MASK) >> QOS_SHIFT).ok_or(DecodeError::InvalidQos)?;
    let dup = first_byte & DUP != 0;
    // [MQTT-3.3.1-2]: DUP must be 0 for QoS 0. 3.1 does not say; Mosquitto rejects it for
    // every version and so do we.
    if dup && qos == QoS::AtMostOnce {
        return Err(DecodeError::ReservedFlags(first_byte));
    }
    let is_v5 = version == ProtocolVersion::V5;
    let (topic, has_wildcard) = r.topic_name()?;
    // [MQTT-3.3.2-2]: no wildcards; [MQTT-4.7.3-1]: at least one character, except in
    // MQTT 5 with a Topic Alias (checked below).
    if has_wildcard || topic.is_empty() && !is_v5 {
        return Err(DecodeError::InvalidTopicName);
    }
    // [MQTT-2.3.1-5]: a packet identifier only for QoS 1 and 2, never 0 [MQTT-2.3.1-1].
    let packet_id = match qos {
        QoS::AtMostOnce => None,
        QoS::AtLeastOnce | QoS::ExactlyOnce => Some(r.publish_packet_id()?),
    };
    let properties = if is_v5 {
        Props::decode(r, PropertyContext::Packet(PacketType::Publish))?
    } else {
        Props::default()
    };
    // Section 3.3.2.1: "It is a Protocol Error if the Topic Name is zero length and there
    // is no Topic Alias."
    if topic.is_empty() && properties.topic_alias.is_none() {
        return Err(DecodeError::ProtocolError(
            "empty topic name without Topic Alias",
        ));
    }
    Ok(Publish {
        dup,
        qos,
        retain: first_byte & RETAIN != 0,
        topic,
        packet_id,
        // May be empty. [MQTT-3.3.3]
        payload: r.rest(),
        properties,
    })
}

/// Remaining Length of a PUBLISH without properties (3.1/3.1.1).
pub(super) fn body_len(topic_len: usize, payload_len: usize, qos: QoS) -> usize {
    let packet_id = if qos == QoS::AtMostOnce { 0 } else { 2 };
    field_len(topic_len) + packet_id + payload_len
}

/// Encodes a whole PUBLISH; `properties` is `Some` exactly on an MQTT 5 connection.
#[allow(clippy::too_many_arguments)] // The parts of a PUBLISH; see `encode_publish`.
pub(super) fn encode(
    out: &mut Vec<u8>,
    topic: &str,
    payload: &[u8],
    qos: QoS,
    retain: bool,
    dup: bool,
    packet_id: Option<PacketId>,
    properties: Option<&Properties<'_>>,
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
    let body_len =
        body_len(topic.len(), payload.len(), qos) + properties.map_or(0, Properties::encoded_len);
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
    if let Some(properties) = properties {
        properties.encode_in_order(PUBLISH_ORDER, out);
    }
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_round_trip, encode};
    use super::super::{encode_publish, publish_len, Packet, ProtocolVersion};
    use super::*;

    const V311: ProtocolVersion = ProtocolVersion::V311;

    /// PUBLISH QoS 1, retain, topic "a/b", packet id 10, payload "hi". [MQTT-3.3]
    static PUBLISH_QOS1: [u8; 11] = [
        0x33, 0x09, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0a, b'h', b'i',
    ];

    fn publish_qos1() -> Publish<'static> {
        Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: true,
            topic: "a/b",
            packet_id: PacketId::new(10),
            payload: b"hi",
            properties: Props::default(),
        }
    }

    /// PUBLISH QoS 0, topic "t", empty payload: no packet id. [MQTT-2.3.1-5] [MQTT-3.3.3]
    static PUBLISH_QOS0_EMPTY: [u8; 5] = [0x30, 0x03, 0x00, 0x01, b't'];

    #[test]
    fn decode_publish() {
        assert_eq!(
            Packet::decode(&PUBLISH_QOS1, V311),
            Ok(Packet::Publish(publish_qos1()))
        );
        let empty = Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "t",
            packet_id: None,
            payload: b"",
            properties: Props::default(),
        };
        assert_eq!(
            Packet::decode(&PUBLISH_QOS0_EMPTY, V311),
            Ok(Packet::Publish(empty))
        );
    }

    #[test]
    fn encode_publish_from_parts() {
        let mut out = vec![0xa5];
        encode_publish(
            &mut out,
            "a/b",
            b"hi",
            QoS::AtLeastOnce,
            true,
            false,
            PacketId::new(10),
        );
        assert_eq!(out[0], 0xa5);
        assert_eq!(out[1..], PUBLISH_QOS1);
        assert_eq!(publish_len(3, 2, QoS::AtLeastOnce), PUBLISH_QOS1.len());
        assert_eq!(encode(&Packet::Publish(publish_qos1()), V311), PUBLISH_QOS1);
    }

    /// The fan-out path grows the buffer at most once.
    #[test]
    fn encode_publish_reserves_exactly() {
        let payload = vec![0x42; 200_000];
        let mut out = Vec::new();
        encode_publish(
            &mut out,
            "x",
            &payload,
            QoS::ExactlyOnce,
            false,
            true,
            PacketId::new(7),
        );
        let len = publish_len(1, payload.len(), QoS::ExactlyOnce);
        assert_eq!(out.len(), len);
        assert_eq!(out.capacity(), len);
        // 200_005 = 0x45 + 0x1a << 7 + 0x0c << 14.
        assert_eq!(out[..4], [0x3c, 0xc5, 0x9a, 0x0c]);
    }

    #[test]
    fn publish_round_trips_every_flag_combination() {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            for retain in [false, true] {
                for dup in [false, true] {
                    if dup && qos == QoS::AtMostOnce {
                        continue;
                    }
                    let p = Publish {
                        dup,
                        qos,
                        retain,
                        topic: "sensors/€/temp",
                        packet_id: (qos != QoS::AtMostOnce)
                            .then(|| PacketId::new(65_535))
                            .flatten(),
                        payload: &[0x00, 0xff],
                        properties: Props::default(),
                    };
                    for version in [ProtocolVersion::V31, V311] {
                        assert_round_trip(&Packet::Publish(p.clone()), version);
                    }
                }
            }
        }
    }

    /// [MQTT-3.3.1-4]
    #[test]
    fn publish_with_qos3_is_malformed() {
        let mut bytes = PUBLISH_QOS1;
        bytes[0] = 0x36;
        assert_eq!(Packet::decode(&bytes, V311), Err(DecodeError::InvalidQos));
    }

    /// [MQTT-3.3.1-2]
    #[test]
    fn publish_with_dup_and_qos0_is_malformed() {
        let mut bytes = PUBLISH_QOS0_EMPTY;
        bytes[0] = 0x38;
        assert_eq!(
            Packet::decode(&bytes, V311),
            Err(DecodeError::ReservedFlags(0x38))
        );
    }

    /// [MQTT-2.3.1-1]: a PUBLISH with packet identifier 0 is refused, as a Protocol
    /// Error (0x82) as Mosquitto does (seq/ unit "PUBLISH 32 QoS 1 Mid 0").
    #[test]
    fn publish_with_packet_id_zero_is_a_protocol_error() {
        let mut bytes = PUBLISH_QOS1;
        bytes[8] = 0x00;
        let err = Packet::decode(&bytes, V311).unwrap_err();
        assert_eq!(err, DecodeError::ProtocolError("packet identifier 0"));
        assert_eq!(
            crate::protocol::ReasonCode::from(err),
            crate::protocol::ReasonCode::PROTOCOL_ERROR
        );
    }

    /// QoS 1 announces a packet id the frame does not have. [MQTT-2.3.1-5]
    #[test]
    fn publish_qos1_without_packet_id_is_malformed() {
        let bytes = [0x32, 0x03, 0x00, 0x01, b't'];
        assert_eq!(
            Packet::decode(&bytes, V311),
            Err(DecodeError::UnexpectedEnd)
        );
    }

    /// [MQTT-1.5.3-2]
    #[test]
    fn topic_with_nul_is_malformed() {
        let mut bytes = PUBLISH_QOS1;
        bytes[5] = 0x00;
        assert_eq!(Packet::decode(&bytes, V311), Err(DecodeError::InvalidUtf8));
    }

    /// [MQTT-1.5.3-1]: 0xc0 0xaf is an overlong encoding of '/'.
    #[test]
    fn topic_with_invalid_utf8_is_malformed() {
        let bytes = [0x30, 0x05, 0x00, 0x03, b'a', 0xc0, 0xaf];
        assert_eq!(Packet::decode(&bytes, V311), Err(DecodeError::InvalidUtf8));
    }

    /// [MQTT-3.3.2-2]
    #[test]
    fn topic_with_wildcard_is_malformed() {
        for wildcard in [b'+', b'#'] {
            let mut bytes = PUBLISH_QOS1;
            bytes[6] = wildcard;
            assert_eq!(
                Packet::decode(&bytes, V311),
                Err(DecodeError::InvalidTopicName)
            );
        }
    }

    /// [MQTT-4.7.3-1]
    #[test]
    fn empty_topic_is_malformed() {
        let bytes = [0x30, 0x03, 0x00, 0x00, b'x'];
        assert_eq!(
            Packet::decode(&bytes, V311),
            Err(DecodeError::InvalidTopicName)
        );
    }

    /// The topic length runs past the end of the packet.
    #[test]
    fn topic_longer_than_packet_is_malformed() {
        let bytes = [0x30, 0x03, 0x00, 0x05, b'x'];
        assert_eq!(
            Packet::decode(&bytes, V311),
            Err(DecodeError::UnexpectedEnd)
        );
    }

    /// MQTT 5 PUBLISH QoS 1, topic "a", id 1, Topic Alias 2, payload "p". Section 3.3.2.
    static PUBLISH_V5: [u8; 11] = [
        0x32, 0x09, 0x00, 0x01, b'a', 0x00, 0x01, 0x03, 0x23, 0x00, 0x02,
    ];

    #[test]
    fn decode_and_encode_publish_v5() {
        let mut bytes = PUBLISH_V5.to_vec();
        bytes.push(b'p');
        bytes[1] += 1;
        let publish = Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "a",
            packet_id: PacketId::new(1),
            payload: b"p",
            properties: Properties {
                topic_alias: Some(2),
                ..Properties::default()
            }
            .into(),
        };
        let v5 = ProtocolVersion::V5;
        assert_eq!(
            Packet::decode(&bytes, v5),
            Ok(Packet::Publish(publish.clone()))
        );
        assert_eq!(encode(&Packet::Publish(publish.clone()), v5), bytes);
        let mut out = Vec::new();
        super::super::encode_publish_v5(
            &mut out,
            "a",
            b"p",
            QoS::AtLeastOnce,
            false,
            false,
            PacketId::new(1),
            &publish.properties,
        );
        assert_eq!(out, bytes);
        assert_eq!(
            super::super::publish_v5_len(1, 1, QoS::AtLeastOnce, &publish.properties),
            bytes.len()
        );
    }

    /// Section 2.2.2.2 gives no order for properties; a PUBLISH culex sends has them in
    /// Mosquitto 2.0's order: Subscription Identifiers, then the publisher's properties
    /// (Payload Format Indicator, Content Type, Response Topic, Correlation Data, User
    /// Property), then the Message Expiry Interval, then the Topic Alias.
    #[test]
    fn publish_v5_properties_are_in_mosquittos_order() {
        let properties = Properties {
            topic_alias: Some(1),
            message_expiry_interval: Some(9),
            user_properties: vec![("k", "v")],
            correlation_data: Some(b"c"),
            response_topic: Some("r"),
            content_type: Some("t"),
            payload_format_indicator: Some(1),
            subscription_identifiers: vec![53],
            ..Properties::default()
        };
        let mut out = Vec::new();
        super::super::encode_publish_v5(
            &mut out,
            "a",
            b"",
            QoS::AtMostOnce,
            false,
            false,
            None,
            &properties,
        );
        #[rustfmt::skip]
        let expected_properties: &[u8] = &[
            0x0b, 53,
            0x01, 1,
            0x03, 0, 1, b't',
            0x08, 0, 1, b'r',
            0x09, 0, 1, b'c',
            0x26, 0, 1, b'k', 0, 1, b'v',
            0x02, 0, 0, 0, 9,
            0x23, 0, 1,
        ];
        assert_eq!(&out[..5], [0x30, 0x23, 0x00, 0x01, b'a']);
        assert_eq!(usize::from(out[5]), expected_properties.len());
        assert_eq!(&out[6..], expected_properties);
        assert_eq!(
            super::super::publish_v5_len(1, 0, QoS::AtMostOnce, &properties),
            out.len()
        );
        // The Subscription Identifier (0x0b) comes before the Payload Format Indicator
        // (0x01), which identifier order would put first.
        let properties = Properties {
            payload_format_indicator: Some(1),
            subscription_identifiers: vec![1],
            ..Properties::default()
        };
        let mut out = Vec::new();
        super::super::encode_publish_v5(
            &mut out,
            "a",
            b"",
            QoS::AtMostOnce,
            false,
            false,
            None,
            &properties,
        );
        assert_eq!(&out[5..], [0x04, 0x0b, 0x01, 0x01, 0x01]);
    }

    /// Section 3.3.2.1: an empty topic needs a Topic Alias.
    #[test]
    fn publish_v5_empty_topic_needs_topic_alias() {
        let with_alias = [0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x02];
        assert!(Packet::decode(&with_alias, ProtocolVersion::V5).is_ok());
        let without = [0x30, 0x03, 0x00, 0x00, 0x00];
        assert_eq!(
            Packet::decode(&without, ProtocolVersion::V5),
            Err(DecodeError::ProtocolError(
                "empty topic name without Topic Alias"
            ))
        );
        // [MQTT-3.3.2-8]
        let alias_0 = [0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x00];
        assert_eq!(
            Packet::decode(&alias_0, ProtocolVersion::V5),
            Err(DecodeError::PropertyValue(0x23))
        );
    }

    /// Section 2.2.2.2: a CONNECT-only property in PUBLISH is malformed.
    #[test]
    fn publish_v5_with_connect_property_is_malformed() {
        let bytes = [0x30, 0x06, 0x00, 0x01, b'a', 0x02, 0x17, 0x01];
        assert_eq!(
            Packet::decode(&bytes, ProtocolVersion::V5),
            Err(DecodeError::InvalidProperty(0x17))
        );
    }
}
