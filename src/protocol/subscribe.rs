//! SUBSCRIBE [MQTT-3.8], SUBACK [MQTT-3.9], UNSUBSCRIBE [MQTT-3.10] and UNSUBACK
//! [MQTT-3.11] bodies: a packet identifier followed by a list. MQTT 5 puts a property
//! block between the two, widens the requested QoS byte into [`SubscriptionOptions`],
//! gives UNSUBACK codes of its own, and defines shared subscriptions
//! (`$share/{ShareName}/{filter}`, section 4.8.2), which are validated here for MQTT 5.
//! A 3.1.1 client may send such a filter too (Mosquitto accepts it); there it is only an
//! ordinary filter to the codec.

use super::packet::{field_len, put_binary, put_u16, reason_code};
use super::reader::Reader;
use super::{
    DecodeError, PacketType, Properties, PropertyContext, Props, ProtocolVersion, QoS, ReasonCode,
    Suback, Subscribe, SubscriptionOptions, Unsuback, Unsubscribe,
};
use crate::topic;

// The Subscription Options byte. [MQTT-3.8.3.1]
const QOS_MASK: u8 = 0x03;
const NO_LOCAL: u8 = 0x04;
const RETAIN_AS_PUBLISHED: u8 = 0x08;
const RETAIN_HANDLING_SHIFT: u8 = 4;
const RETAIN_HANDLING_MASK: u8 = 0x30;
/// Bits 6-7 in MQTT 5 [MQTT-3.8.3-5]; bits 2-7 in 3.1.1 [MQTT-3.8.3-4] (3.1.1).
const RESERVED_V5: u8 = 0xc0;
const RESERVED_V3: u8 = 0xfc;

const SHARE_PREFIX: &str = "$share/";

/// A shared subscription's share name and filter: `Some(("group", "a/+"))` for
/// `$share/group/a/+`, `None` for a filter that does not start with `$share/`. The parts
/// are not validated; see [`is_valid_shared_filter`].
pub fn split_shared_filter(filter: &str) -> Option<(&str, &str)> {
    let rest = filter.strip_prefix(SHARE_PREFIX)?;
    Some(rest.split_once('/').unwrap_or((rest, "")))
}

/// Section 4.8.2: after `$share/`, a ShareName of at least one character without `/`,
/// `+` or `#` [MQTT-4.8.2-1] [MQTT-4.8.2-2], then `/` and a valid topic filter.
pub fn is_valid_shared_filter(filter: &str) -> bool {
    match filter.strip_prefix(SHARE_PREFIX) {
        Some(rest) => match rest.split_once('/') {
            Some((name, filter)) => {
                !name.is_empty()
                    && !name.bytes().any(|b| b == b'+' || b == b'#')
                    && topic::is_valid_filter(filter)
            }
            None => false,
        },
        None => false,
    }
}

impl SubscriptionOptions {
    /// Decodes the options byte of one filter.
    fn decode(byte: u8, version: ProtocolVersion) -> Result<SubscriptionOptions, DecodeError> {
        if version != ProtocolVersion::V5 {
            // [MQTT-3.8.3-4] (3.1.1): the upper six bits of the Requested QoS byte are
            // reserved.
            if byte & RESERVED_V3 != 0 {
                return Err(DecodeError::SubscriptionOptions);
            }
            return QoS::from_u8(byte)
                .map(SubscriptionOptions::new)
                .ok_or(DecodeError::InvalidQos);
        }
        // [MQTT-3.8.3-5]
        if byte & RESERVED_V5 != 0 {
            return Err(DecodeError::SubscriptionOptions);
        }
        // Section 3.8.3.1: Maximum QoS 3 and Retain Handling 3 are Protocol Errors.
        let qos = QoS::from_u8(byte & QOS_MASK).ok_or(DecodeError::ProtocolError(
            "Maximum QoS 3 in subscription options",
        ))?;
        let retain_handling = (byte & RETAIN_HANDLING_MASK) >> RETAIN_HANDLING_SHIFT;
        if retain_handling == 3 {
            return Err(DecodeError::ProtocolError("Retain Handling 3"));
        }
        Ok(SubscriptionOptions {
            qos,
            no_local: byte & NO_LOCAL != 0,
            retain_as_published: byte & RETAIN_AS_PUBLISHED != 0,
            retain_handling,
        })
    }

    /// The options byte; in 3.1/3.1.1 only the QoS.
    fn to_byte(self, version: ProtocolVersion) -> u8 {
        let mut byte = self.qos as u8;
        if version == ProtocolVersion::V5 {
            debug_assert!(self.retain_handling < 3, "Retain Handling 0 to 2");
            if self.no_local {
                byte |= NO_LOCAL;
            }
            if self.retain_as_published {
                byte |= RETAIN_AS_PUBLISHED;
            }
            byte |= (self.retain_handling << RETAIN_HANDLING_SHIFT) & RETAIN_HANDLING_MASK;
        }
        byte
    }
}

fn properties<'a>(
    r: &mut Reader<'a>,
    version: ProtocolVersion,
    packet: PacketType,
) -> Result<Props<'a>, DecodeError> {
    if version == ProtocolVersion::V5 {
        Props::decode(r, PropertyContext::Packet(packet))
    } else {
        Ok(Props::default())
    }
}

fn properties_len(properties: &Properties<'_>, version: ProtocolVersion) -> usize {
    if version == ProtocolVersion::V5 {
        properties.encoded_len()
    } else {
        0
    }
}

fn put_properties(properties: &Properties<'_>, version: ProtocolVersion, out: &mut Vec<u8>) {
    if version == ProtocolVersion::V5 {
        properties.encode(out);
    }
}

pub(super) fn decode_subscribe<'a>(
    r: &mut Reader<'a>,
    version: ProtocolVersion,
) -> Result<Subscribe<'a>, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = properties(r, version, PacketType::Subscribe)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = topic_filter(r, version)?;
        let options = SubscriptionOptions::decode(r.u8()?, version)?;
        // [MQTT-3.8.3-4]
        if options.no_local && version == ProtocolVersion::V5 && filter.starts_with(SHARE_PREFIX) {
            return Err(DecodeError::ProtocolError(
                "No Local on a shared subscription",
            ));
        }
        filters.push((filter, options));
    }
    // [MQTT-3.8.3-3] (3.1.1), [MQTT-3.8.3-2] (5.0)
    if filters.is_empty() {
        return Err(DecodeError::EmptySubscribe);
    }
    Ok(Subscribe {
        packet_id,
        filters,
        properties,
    })
}

pub(super) fn subscribe_body_len(s: &Subscribe<'_>, version: ProtocolVersion) -> usize {
    2 + properties_len(&s.properties, version)
        + s.filters
            .iter()
            .map(|(filter, _)| field_len(filter.len()) + 1)
            .sum::<usize>()
}

pub(super) fn encode_subscribe(s: &Subscribe<'_>, version: ProtocolVersion, out: &mut Vec<u8>) {
    debug_assert!(
        !s.filters.is_empty(),
        "SUBSCRIBE without filters [MQTT-3.8.3-3]"
    );
    put_u16(out, s.packet_id.get());
    put_properties(&s.properties, version, out);
    for (filter, options) in &s.filters {
        put_binary(out, filter.as_bytes());
        out.push(options.to_byte(version));
    }
}

/// An empty list of return codes is accepted: the client side matches the count
/// against its SUBSCRIBE, which is where a mismatch can be reported.
pub(super) fn decode_suback<'a>(
    r: &mut Reader<'a>,
    version: ProtocolVersion,
) -> Result<Suback<'a>, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = properties(r, version, PacketType::Suback)?;
    let mut codes = Vec::new();
    while !r.is_empty() {
        codes.push(if version == ProtocolVersion::V5 {
            reason_code(r, PacketType::Suback)?
        } else {
            // [MQTT-3.9.3-2] (3.1.1)
            match r.u8()? {
                code @ (0x00..=0x02 | 0x80) => ReasonCode(code),
                _ => return Err(DecodeError::InvalidSubackCode),
            }
        });
    }
    Ok(Suback {
        packet_id,
        codes,
        properties,
    })
}

pub(super) fn suback_body_len(s: &Suback<'_>, version: ProtocolVersion) -> usize {
    2 + properties_len(&s.properties, version) + s.codes.len()
}

pub(super) fn encode_suback(s: &Suback<'_>, version: ProtocolVersion, out: &mut Vec<u8>) {
    put_u16(out, s.packet_id.get());
    put_properties(&s.properties, version, out);
    if version == ProtocolVersion::V5 {
        out.extend(s.codes.iter().map(|code| code.0));
    } else {
        // 3.1.1 has one failure code for every error.
        out.extend(
            s.codes
                .iter()
                .map(|code| if code.is_error() { 0x80 } else { code.0 }),
        );
    }
}

pub(super) fn decode_unsubscribe<'a>(
    r: &mut Reader<'a>,
    version: ProtocolVersion,
) -> Result<Unsubscribe<'a>, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = properties(r, version, PacketType::Unsubscribe)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(topic_filter(r, version)?);
    }
    // [MQTT-3.10.3-2]
    if filters.is_empty() {
        return Err(DecodeError::EmptyUnsubscribe);
    }
    Ok(Unsubscribe {
        packet_id,
        filters,
        properties,
    })
}

pub(super) fn unsubscribe_body_len(u: &Unsubscribe<'_>, version: ProtocolVersion) -> usize {
    2 + properties_len(&u.properties, version)
        + u.filters
            .iter()
            .map(|filter| field_len(filter.len()))
            .sum::<usize>()
}

pub(super) fn encode_unsubscribe(u: &Unsubscribe<'_>, version: ProtocolVersion, out: &mut Vec<u8>) {
    debug_assert!(
        !u.filters.is_empty(),
        "UNSUBSCRIBE without filters [MQTT-3.10.3-2]"
    );
    put_u16(out, u.packet_id.get());
    put_properties(&u.properties, version, out);
    for filter in &u.filters {
        put_binary(out, filter.as_bytes());
    }
}

/// 3.1/3.1.1: the packet identifier only [MQTT-3.11]. MQTT 5: properties and a code per
/// filter [MQTT-3.11.3].
pub(super) fn decode_unsuback<'a>(
    r: &mut Reader<'a>,
    version: ProtocolVersion,
) -> Result<Unsuback<'a>, DecodeError> {
    let packet_id = r.packet_id()?;
    if version != ProtocolVersion::V5 {
        return Ok(Unsuback::new(packet_id));
    }
    let properties = properties(r, version, PacketType::Unsuback)?;
    let mut codes = Vec::new();
    while !r.is_empty() {
        codes.push(reason_code(r, PacketType::Unsuback)?);
    }
    Ok(Unsuback {
        packet_id,
        codes,
        properties,
    })
}

pub(super) fn unsuback_body_len(u: &Unsuback<'_>, version: ProtocolVersion) -> usize {
    match version {
        ProtocolVersion::V5 => 2 + u.properties.encoded_len() + u.codes.len(),
        _ => 2,
    }
}

pub(super) fn encode_unsuback(u: &Unsuback<'_>, version: ProtocolVersion, out: &mut Vec<u8>) {
    put_u16(out, u.packet_id.get());
    if version == ProtocolVersion::V5 {
        u.properties.encode(out);
        out.extend(u.codes.iter().map(|code| code.0));
    }
}

/// [MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.3-1]; in MQTT 5 a `$share/` filter must be a
/// valid shared subscription [MQTT-4.8.2-1] [MQTT-4.8.2-2].
///
/// A `$share/` filter that is a well-formed filter but has no topic filter after its
/// ShareName (`$share/g`, `$share/g/`) breaks [MQTT-4.8.2-2] ("MUST be followed by a
/// Topic Filter"), which says neither Malformed Packet nor Protocol Error; it is a
/// Protocol Error, as in Mosquitto (src/subs.c `sub__topic_tokenise`). Any other bad
/// filter is malformed (Mosquitto's `mosquitto_sub_topic_check` comes first there too).
fn topic_filter<'a>(r: &mut Reader<'a>, version: ProtocolVersion) -> Result<&'a str, DecodeError> {
    let filter = r.string()?;
    let is_valid = if version == ProtocolVersion::V5 && filter.starts_with(SHARE_PREFIX) {
        if topic::is_valid_filter(filter)
            && split_shared_filter(filter).is_some_and(|(_, inner)| inner.is_empty())
        {
            return Err(DecodeError::ProtocolError(
                "shared subscription without a topic filter",
            ));
        }
        is_valid_shared_filter(filter)
    } else {
        topic::is_valid_filter(filter)
    };
    if is_valid {
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
            filters: vec![
                ("a/b", SubscriptionOptions::new(QoS::AtLeastOnce)),
                ("c/#", SubscriptionOptions::new(QoS::ExactlyOnce)),
            ],
            properties: Props::default(),
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
                ReasonCode::GRANTED_QOS_0,
                ReasonCode::GRANTED_QOS_1,
                ReasonCode::GRANTED_QOS_2,
                ReasonCode::UNSPECIFIED_ERROR,
            ],
            properties: Props::default(),
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
            properties: Props::default(),
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

#[cfg(test)]
mod v5_tests {
    use super::super::testing::encode;
    use super::super::{Packet, PacketId};
    use super::*;

    const V5: ProtocolVersion = ProtocolVersion::V5;

    /// SUBSCRIBE id 1, no properties, one filter with these options.
    fn subscribe_frame(filter: &[u8], options: u8) -> Vec<u8> {
        let mut bytes = vec![0x82, 0x00, 0x00, 0x01, 0x00, 0x00, filter.len() as u8];
        bytes.extend_from_slice(filter);
        bytes.push(options);
        bytes[1] = (bytes.len() - 2) as u8;
        bytes
    }

    fn options_of(bytes: &[u8]) -> Result<SubscriptionOptions, DecodeError> {
        match Packet::decode(bytes, V5)? {
            Packet::Subscribe(s) => Ok(s.filters[0].1),
            p => panic!("{p:?}"),
        }
    }

    /// Section 3.8.3.1: bits 0-1 Maximum QoS, 2 No Local, 3 Retain As Published, 4-5
    /// Retain Handling.
    #[test]
    fn subscription_options_bits() {
        assert_eq!(
            options_of(&subscribe_frame(b"a", 0x2e)),
            Ok(SubscriptionOptions {
                qos: QoS::ExactlyOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: 2,
            })
        );
        assert_eq!(
            options_of(&subscribe_frame(b"a", 0x11)),
            Ok(SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                no_local: false,
                retain_as_published: false,
                retain_handling: 1,
            })
        );
        for byte in 0..=0x3fu8 {
            let bytes = subscribe_frame(b"a", byte);
            match options_of(&bytes) {
                Ok(options) => {
                    let packet = Packet::decode(&bytes, V5).unwrap();
                    assert_eq!(encode(&packet, V5), bytes, "0x{byte:02x}");
                    assert_eq!(options.to_byte(V5), byte);
                }
                Err(_) => assert!(byte & 0x03 == 3 || byte & 0x30 == 0x30, "0x{byte:02x}"),
            }
        }
    }

    /// [MQTT-3.8.3-5]: reserved bits 6-7; section 3.8.3.1: Retain Handling 3 and
    /// Maximum QoS 3 are Protocol Errors.
    #[test]
    fn subscription_options_reserved_bits_and_values() {
        for byte in [0x40, 0x80, 0xc1] {
            assert_eq!(
                options_of(&subscribe_frame(b"a", byte)),
                Err(DecodeError::SubscriptionOptions)
            );
        }
        assert_eq!(
            options_of(&subscribe_frame(b"a", 0x30)),
            Err(DecodeError::ProtocolError("Retain Handling 3"))
        );
        assert_eq!(
            options_of(&subscribe_frame(b"a", 0x03)),
            Err(DecodeError::ProtocolError(
                "Maximum QoS 3 in subscription options"
            ))
        );
        // In 3.1.1 the MQTT 5 bits are reserved. [MQTT-3.8.3-4] (3.1.1)
        let mut v3 = subscribe_frame(b"a", 0x04);
        v3.remove(4);
        v3[1] -= 1;
        assert_eq!(
            Packet::decode(&v3, ProtocolVersion::V311),
            Err(DecodeError::SubscriptionOptions)
        );
    }

    /// [MQTT-4.8.2-1] [MQTT-4.8.2-2]: `$share/` + a ShareName of one or more characters
    /// without `/`, `+`, `#` + `/` + a valid filter.
    #[test]
    fn shared_subscription_validation() {
        for valid in ["$share/g/a", "$share/g/#", "$share/group/+/x", "$share/é//"] {
            assert!(is_valid_shared_filter(valid), "{valid}");
            assert!(options_of(&subscribe_frame(valid.as_bytes(), 0x01)).is_ok());
        }
        assert_eq!(split_shared_filter("$share/g/a/b"), Some(("g", "a/b")));
        assert_eq!(split_shared_filter("$SYS/a"), None);
        for invalid in [
            "$share//a",
            "$share/+/a",
            "$share/#/a",
            "$share/g",
            "$share/g/",
            "$share/g/a#",
            "$share/a+b/x",
        ] {
            assert!(!is_valid_shared_filter(invalid), "{invalid}");
            // Without a topic filter after the ShareName: a Protocol Error (see
            // `shared_subscription_without_topic_filter_is_a_protocol_error`).
            let expected = if invalid.ends_with("/g") || invalid.ends_with("/g/") {
                DecodeError::ProtocolError("shared subscription without a topic filter")
            } else {
                DecodeError::InvalidTopicFilter
            };
            assert_eq!(
                options_of(&subscribe_frame(invalid.as_bytes(), 0x01)),
                Err(expected),
                "{invalid}"
            );
        }
        // Mosquitto accepts $share from 3.1.1 clients; the codec treats it as a filter.
        let mut v3 = subscribe_frame(b"$share/g/a", 0x01);
        v3.remove(4);
        v3[1] -= 1;
        assert!(Packet::decode(&v3, ProtocolVersion::V311).is_ok());
    }

    /// [MQTT-3.8.3-4]: "It is a Protocol Error to set the No Local bit to 1 on a Shared
    /// Subscription".
    #[test]
    fn shared_subscription_without_topic_filter_is_a_protocol_error() {
        // [MQTT-4.8.2-2]; Mosquitto's seq/ units "SUBSCRIBE 82 shared sub with no topic
        // part 1" and "2" expect DISCONNECT 0x82.
        for filter in [&b"$share/p/"[..], b"$share/p"] {
            let frame = subscribe_frame(filter, 0x00);
            let err = Packet::decode(&frame, ProtocolVersion::V5).unwrap_err();
            assert_eq!(
                err,
                DecodeError::ProtocolError("shared subscription without a topic filter")
            );
            assert_eq!(ReasonCode::from(err), ReasonCode::PROTOCOL_ERROR);
        }
        // A malformed filter stays malformed.
        let frame = subscribe_frame(b"$share/a#", 0x00);
        assert_eq!(
            Packet::decode(&frame, ProtocolVersion::V5),
            Err(DecodeError::InvalidTopicFilter)
        );
    }

    #[test]
    fn no_local_on_shared_subscription_is_a_protocol_error() {
        assert_eq!(
            options_of(&subscribe_frame(b"$share/g/a", 0x04)),
            Err(DecodeError::ProtocolError(
                "No Local on a shared subscription"
            ))
        );
    }

    /// Section 3.9.3: SUBACK codes; in 3.1.1 any error is sent as 0x80.
    #[test]
    fn suback_codes_per_version() {
        let suback = Suback {
            packet_id: PacketId::new(3).unwrap(),
            codes: vec![
                ReasonCode::GRANTED_QOS_1,
                ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
            ],
            properties: Props::default(),
        };
        let v5 = [0x90, 0x05, 0x00, 0x03, 0x00, 0x01, 0x9e];
        assert_eq!(encode(&Packet::Suback(suback.clone()), V5), v5);
        assert_eq!(Packet::decode(&v5, V5), Ok(Packet::Suback(suback.clone())));
        assert_eq!(
            encode(&Packet::Suback(suback), ProtocolVersion::V311),
            [0x90, 0x04, 0x00, 0x03, 0x01, 0x80]
        );
        // 0x11 is an UNSUBACK code, not a SUBACK one.
        assert_eq!(
            Packet::decode(&[0x90, 0x04, 0x00, 0x03, 0x00, 0x11], V5),
            Err(DecodeError::InvalidReasonCode(0x11))
        );
    }

    /// Section 3.11.3: UNSUBACK has codes in MQTT 5, none in 3.1.1.
    #[test]
    fn unsuback_codes_per_version() {
        let v5 = [0xb0, 0x05, 0x00, 0x03, 0x00, 0x00, 0x11];
        let unsuback = Unsuback {
            packet_id: PacketId::new(3).unwrap(),
            codes: vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED],
            properties: Props::default(),
        };
        assert_eq!(
            Packet::decode(&v5, V5),
            Ok(Packet::Unsuback(unsuback.clone()))
        );
        assert_eq!(encode(&Packet::Unsuback(unsuback.clone()), V5), v5);
        assert_eq!(
            encode(&Packet::Unsuback(unsuback), ProtocolVersion::V311),
            [0xb0, 0x02, 0x00, 0x03]
        );
        assert_eq!(
            Packet::decode(&[0xb0, 0x04, 0x00, 0x03, 0x00, 0x10], V5),
            Err(DecodeError::InvalidReasonCode(0x10))
        );
    }
}
