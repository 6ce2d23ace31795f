//! Malformed packets and protocol violations close that one connection, and nothing else
//! is disturbed (MQTT 3.1.1 section 4.8 [MQTT-4.8.0-1]; DESIGN.md "What bad input gets").
//! Each test sends the bad packet from a fresh client while another client, connected
//! before, keeps being served.

use rumqttc::QoS;

use crate::common::{field, packet, publish_packet, Broker};

/// Sends `bad` after a valid CONNECT, expects the connection closed without a reply,
/// then checks that a client connected before still publishes and receives.
fn closes_and_spares_others(bad: &[u8]) {
    let broker = Broker::start("");
    let mut bystander = broker.subscriber("bystander", "b/t", QoS::AtLeastOnce);
    let mut raw = broker.raw_connected("offender");
    raw.send(bad);
    raw.expect_closed();
    bystander.publish("b/t", QoS::AtLeastOnce, false, b"still here");
    let got = bystander.expect_publish();
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("b/t", &b"still here"[..])
    );
}

/// A PUBLISH with both QoS bits set closes the connection [MQTT-3.3.1-4].
#[test]
fn publish_with_qos3_closes_the_connection() {
    let mut bad = publish_packet(b"a", 1, false, false, 1, b"x");
    bad[0] = 0x36;
    closes_and_spares_others(&bad);
}

/// A Topic Name with a wildcard character is a protocol violation [MQTT-3.3.2-2].
#[test]
fn publish_topic_with_wildcard_closes_the_connection() {
    closes_and_spares_others(&publish_packet(b"a/+", 0, false, false, 0, b"x"));
}

/// A topic containing U+0000 closes the connection [MQTT-1.5.3-2].
#[test]
fn topic_with_null_character_closes_the_connection() {
    closes_and_spares_others(&publish_packet(b"a\x00b", 0, false, false, 0, b"x"));
}

/// Ill-formed UTF-8 in a topic closes the connection [MQTT-1.5.3-1].
#[test]
fn topic_with_invalid_utf8_closes_the_connection() {
    closes_and_spares_others(&publish_packet(b"a/\xff", 0, false, false, 0, b"x"));
}

/// A UTF-16 surrogate encoded in UTF-8 (U+D800 as ED A0 80) is ill-formed UTF-8
/// [MQTT-1.5.3-1].
#[test]
fn topic_with_encoded_surrogate_closes_the_connection() {
    closes_and_spares_others(&publish_packet(b"a/\xed\xa0\x80", 0, false, false, 0, b"x"));
}

/// SUBSCRIBE fixed-header flags other than 0010 are malformed [MQTT-3.8.1-1].
#[test]
fn subscribe_with_wrong_reserved_flags_closes_the_connection() {
    let mut body = vec![0x00, 0x01];
    body.extend_from_slice(&field(b"a/b"));
    body.push(0x00);
    closes_and_spares_others(&packet(0x80, &body));
}

/// A SUBSCRIBE without any Topic Filter is a protocol violation [MQTT-3.8.3-3].
#[test]
fn empty_subscribe_closes_the_connection() {
    closes_and_spares_others(&packet(0x82, &[0x00, 0x01]));
}

/// A QoS 1 PUBLISH must carry a non-zero Packet Identifier [MQTT-2.3.1-1].
#[test]
fn qos1_publish_with_packet_id_0_closes_the_connection() {
    closes_and_spares_others(&publish_packet(b"a", 1, false, false, 0, b"x"));
}

/// Remaining Length takes at most four bytes (section 2.2.3); a fifth continuation byte
/// is malformed.
#[test]
fn remaining_length_of_five_bytes_closes_the_connection() {
    closes_and_spares_others(&[0x30, 0x80, 0x80, 0x80, 0x80, 0x01]);
}
