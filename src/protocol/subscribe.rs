//! SUBSCRIBE [MQTT-3.8], SUBACK [MQTT-3.9] and UNSUBSCRIBE [MQTT-3.10] bodies: a packet
//! identifier followed by a list. (UNSUBACK is identifier-only, with the acks.)

use super::packet::{field_len, put_binary, put_u16};
use super::reader::Reader;
use super::{DecodeError, QoS, Suback, SubackCode, Subscribe, Unsubscribe};
use crate::topic;

pub(super) fn decode_subscribe<'a>(r: &mut Reader<'a>) -> Result<Subscribe<'a>, DecodeError> {
    let packet_id = r.packet_id()?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = topic_filter(r)?;
        let options = r.u8()?;
        // [MQTT-3.8.3-4]: the upper six bits of the Requested QoS byte are reserved.
        if options & 0xfc != 0 {
            return Err(DecodeError::SubscriptionOptions);
        }
        let qos = QoS::from_u8(options).ok_or(DecodeError::InvalidQos)?;
        filters.push((filter, qos));
    }
    // [MQTT-3.8.3-3]
    if filters.is_empty() {
        return Err(DecodeError::EmptySubscribe);
    }
    Ok(Subscribe { packet_id, filters })
}

pub(super) fn subscribe_body_len(s: &Subscribe<'_>) -> usize {
    2 + s
        .filters
        .iter()
        .map(|(filter, _)| field_len(filter.len()) + 1)
        .sum::<usize>()
}

pub(super) fn encode_subscribe(s: &Subscribe<'_>, out: &mut Vec<u8>) {
    debug_assert!(
        !s.filters.is_empty(),
        "SUBSCRIBE without filters [MQTT-3.8.3-3]"
    );
    put_u16(out, s.packet_id.get());
    for (filter, qos) in &s.filters {
        put_binary(out, filter.as_bytes());
        out.push(*qos as u8);
    }
}

/// An empty list of return codes is accepted: the client side matches the count
/// against its SUBSCRIBE, which is where a mismatch can be reported.
pub(super) fn decode_suback(r: &mut Reader<'_>) -> Result<Suback, DecodeError> {
    let packet_id = r.packet_id()?;
    let codes = r
        .rest()
        .iter()
        .map(|&code| SubackCode::from_u8(code).ok_or(DecodeError::InvalidSubackCode))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Suback { packet_id, codes })
}

pub(super) fn encode_suback(s: &Suback, out: &mut Vec<u8>) {
    put_u16(out, s.packet_id.get());
    out.extend(s.codes.iter().map(|code| code.to_u8()));
}

pub(super) fn decode_unsubscribe<'a>(r: &mut Reader<'a>) -> Result<Unsubscribe<'a>, DecodeError> {
    let packet_id = r.packet_id()?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(topic_filter(r)?);
    }
    // [MQTT-3.10.3-2]
    if filters.is_empty() {
        return Err(DecodeError::EmptyUnsubscribe);
    }
    Ok(Unsubscribe { packet_id, filters })
}

pub(super) fn unsubscribe_body_len(u: &Unsubscribe<'_>) -> usize {
    2 + u
        .filters
        .iter()
        .map(|filter| field_len(filter.len()))
        .sum::<usize>()
}

pub(super) fn encode_unsubscribe(u: &Unsubscribe<'_>, out: &mut Vec<u8>) {
    debug_assert!(
        !u.filters.is_empty(),
        "UNSUBSCRIBE without filters [MQTT-3.10.3-2]"
    );
    put_u16(out, u.packet_id.get());
    for filter in &u.filters {
        put_binary(out, filter.as_bytes());
    }
}

/// [MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.3-1]
fn topic_filter<'a>(r: &mut Reader<'a>) -> Result<&'a str, DecodeError> {
    let filter = r.string()?;
    if topic::is_valid_filter(filter) {
        Ok(filter)
    } else {
        Err(DecodeError::InvalidTopicFilter)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_round_trip, encode};
    use super::super::{Packet, PacketId, ProtocolVersion};
    use super::*;

    const V311: ProtocolVersion = ProtocolVersion::V311;

    /// SUBSCRIBE id 10: "a/b" QoS 1, "c/#" QoS 2. [MQTT-3.8.3] (figure 3.22's filters).
    static SUBSCRIBE: [u8; 16] = [
        0x82, 0x0e, 0x00, 0x0a, 0x00, 0x03, b'a', b'/', b'b', 0x01, 0x00, 0x03, b'c', b'/', b'#',
        0x02,
    ];

    fn subscribe() -> Subscribe<'static> {
        Subscribe {
            packet_id: PacketId::new(10).unwrap(),
            filters: vec![("a/b", QoS::AtLeastOnce), ("c/#", QoS::ExactlyOnce)],
        }
    }

    /// SUBACK id 10: granted 0, 1, 2, failure. [MQTT-3.9.3]
    static SUBACK: [u8; 8] = [0x90, 0x06, 0x00, 0x0a, 0x00, 0x01, 0x02, 0x80];

    /// UNSUBSCRIBE id 10: "a/b", "+/x". [MQTT-3.10.3]
    static UNSUBSCRIBE: [u8; 14] = [
        0xa2, 0x0c, 0x00, 0x0a, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x03, b'+', b'/', b'x',
    ];

    #[test]
    fn decode_subscribe() {
        assert_eq!(
            Packet::decode(&SUBSCRIBE, V311),
            Ok(Packet::Subscribe(subscribe()))
        );
    }

    #[test]
    fn encode_subscribe() {
        assert_eq!(encode(&Packet::Subscribe(subscribe()), V311), SUBSCRIBE);
    }

    #[test]
    fn decode_and_encode_suback() {
        let suback = Suback {
            packet_id: PacketId::new(10).unwrap(),
            codes: vec![
                SubackCode::Granted(QoS::AtMostOnce),
                SubackCode::Granted(QoS::AtLeastOnce),
                SubackCode::Granted(QoS::ExactlyOnce),
                SubackCode::Failure,
            ],
        };
        assert_eq!(
            Packet::decode(&SUBACK, V311),
            Ok(Packet::Suback(suback.clone()))
        );
        assert_eq!(encode(&Packet::Suback(suback.clone()), V311), SUBACK);
        assert_round_trip(&Packet::Suback(suback), ProtocolVersion::V31);
    }

    #[test]
    fn decode_and_encode_unsubscribe() {
        let unsubscribe = Unsubscribe {
            packet_id: PacketId::new(10).unwrap(),
            filters: vec!["a/b", "+/x"],
        };
        assert_eq!(
            Packet::decode(&UNSUBSCRIBE, V311),
            Ok(Packet::Unsubscribe(unsubscribe.clone()))
        );
        assert_eq!(
            encode(&Packet::Unsubscribe(unsubscribe.clone()), V311),
            UNSUBSCRIBE
        );
        assert_round_trip(&Packet::Unsubscribe(unsubscribe), ProtocolVersion::V31);
    }

    /// [MQTT-3.8.3-3]
    #[test]
    fn subscribe_without_filters_is_malformed() {
        assert_eq!(
            Packet::decode(&[0x82, 0x02, 0x00, 0x0a], V311),
            Err(DecodeError::EmptySubscribe)
        );
    }

    /// [MQTT-3.8.3-4]
    #[test]
    fn subscribe_with_reserved_option_bits_is_malformed() {
        let mut bytes = SUBSCRIBE;
        bytes[9] = 0x05;
        assert_eq!(
            Packet::decode(&bytes, V311),
            Err(DecodeError::SubscriptionOptions)
        );
    }

    /// [MQTT-3.8.3-4]: QoS 3 is malformed in SUBSCRIBE too.
    #[test]
    fn subscribe_with_qos3_is_malformed() {
        let mut bytes = SUBSCRIBE;
        bytes[15] = 0x03;
        assert_eq!(Packet::decode(&bytes, V311), Err(DecodeError::InvalidQos));
    }

    /// [MQTT-4.7.1-2]: "#" must be last and alone in its level.
    #[test]
    fn subscribe_with_invalid_filter_is_malformed() {
        let mut bytes = SUBSCRIBE;
        bytes[6] = b'#';
        assert_eq!(
            Packet::decode(&bytes, V311),
            Err(DecodeError::InvalidTopicFilter)
        );
    }

    /// A filter without its requested QoS byte.
    #[test]
    fn subscribe_without_qos_byte_is_malformed() {
        let mut bytes = SUBSCRIBE[..15].to_vec();
        bytes[1] = 0x0d;
        assert_eq!(
            Packet::decode(&bytes, V311),
            Err(DecodeError::UnexpectedEnd)
        );
    }

    /// [MQTT-2.3.1-1]
    #[test]
    fn subscribe_with_packet_id_zero_is_malformed() {
        let mut bytes = SUBSCRIBE;
        bytes[3] = 0x00;
        assert_eq!(Packet::decode(&bytes, V311), Err(DecodeError::PacketIdZero));
    }

    /// [MQTT-3.9.3-2]
    #[test]
    fn suback_with_unknown_code_is_malformed() {
        for code in [0x03, 0x7f, 0x81, 0xff] {
            let mut bytes = SUBACK;
            bytes[5] = code;
            assert_eq!(
                Packet::decode(&bytes, V311),
                Err(DecodeError::InvalidSubackCode)
            );
        }
    }

    /// [MQTT-3.10.3-2]
    #[test]
    fn unsubscribe_without_filters_is_malformed() {
        assert_eq!(
            Packet::decode(&[0xa2, 0x02, 0x00, 0x0a], V311),
            Err(DecodeError::EmptyUnsubscribe)
        );
    }

    /// [MQTT-4.7.1-2]: "#" must fill the last level ("+#x").
    #[test]
    fn unsubscribe_with_invalid_filter_is_malformed() {
        let mut bytes = UNSUBSCRIBE;
        bytes[12] = b'#';
        assert_eq!(
            Packet::decode(&bytes, V311),
            Err(DecodeError::InvalidTopicFilter)
        );
    }
}
