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
