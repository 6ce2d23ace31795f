//! CONNECT and CONNACK (MQTT 3.1.1 section 3.1, 3.2).

use crate::common::{connect_packet, field, packet, Broker};

/// The Server answers a valid 3.1.1 CONNECT with CONNACK "accepted", session present 0
/// [MQTT-3.2.0-1] [MQTT-3.2.2-1].
#[test]
fn connect_311_is_accepted_with_exact_connack() {
    let broker = Broker::start("");
    let mut raw = broker.raw();
    raw.send(&connect_packet("c1", true, 60));
    raw.expect(&[0x20, 0x02, 0x00, 0x00]);
    raw.expect_silence(std::time::Duration::from_millis(200));
}

/// MQTT 3.1 clients (protocol name "MQIsdp", level 3) are accepted (MQTT 3.1 section 3.1;
/// Mosquitto accepts both versions on one listener).
#[test]
fn connect_31_mqisdp_is_accepted() {
    let broker = Broker::start("");
    let mut raw = broker.raw();
    let mut body = field(b"MQIsdp");
    body.extend_from_slice(&[0x03, 0x02, 0x00, 0x3c]);
    body.extend_from_slice(&field(b"c31"));
    raw.send(&packet(0x10, &body));
    raw.expect(&[0x20, 0x02, 0x00, 0x00]);
}

/// An unsupported Protocol Level gets CONNACK 0x01 "unacceptable protocol version" and
/// then the connection is closed [MQTT-3.1.2-2].
#[test]
fn unknown_protocol_level_gets_connack_1_then_close() {
    let broker = Broker::start("");
    let mut raw = broker.raw();
    let mut body = field(b"MQTT");
    body.extend_from_slice(&[0x06, 0x02, 0x00, 0x3c]);
    body.extend_from_slice(&field(b"c6"));
    raw.send(&packet(0x10, &body));
    raw.expect(&[0x20, 0x02, 0x00, 0x01]);
    raw.expect_closed();
}

/// A second CONNECT on the same connection is a protocol violation: the Server
/// disconnects the Client [MQTT-3.1.0-2].
#[test]
fn second_connect_closes_the_connection() {
    let broker = Broker::start("");
    let mut raw = broker.raw_connected("twice");
    raw.send(&connect_packet("twice", true, 60));
    raw.expect_closed();
}

/// The first packet from a Client must be CONNECT [MQTT-3.1.0-1]; the Server closes the
/// connection otherwise (here: PINGREQ first) [MQTT-4.8.0-1].
#[test]
fn first_packet_other_than_connect_closes_the_connection() {
    let broker = Broker::start("");
    let mut raw = broker.raw();
    raw.send(&[0xc0, 0x00]);
    raw.expect_closed();
}

/// The reserved bit 0 of the Connect Flags must be zero; otherwise the Server disconnects
/// the Client [MQTT-3.1.2-3], without a CONNACK [MQTT-3.1.4-1].
#[test]
fn reserved_connect_flag_closes_the_connection() {
    let broker = Broker::start("");
    let mut raw = broker.raw();
    let mut body = field(b"MQTT");
    body.extend_from_slice(&[0x04, 0x03, 0x00, 0x3c]);
    body.extend_from_slice(&field(b"reserved"));
    raw.send(&packet(0x10, &body));
    raw.expect_closed();
}

/// A zero-length Client Identifier with CleanSession 0 gets CONNACK 0x02 "identifier
/// rejected" and the connection is closed [MQTT-3.1.3-8] [MQTT-3.2.2-5].
#[test]
fn empty_client_id_with_persistent_session_is_rejected() {
    let broker = Broker::start("");
    let mut raw = broker.raw();
    raw.send(&connect_packet("", false, 60));
    raw.expect(&[0x20, 0x02, 0x00, 0x02]);
    raw.expect_closed();
}

/// A zero-length Client Identifier with CleanSession 1 is accepted; the Server assigns a
/// unique identifier [MQTT-3.1.3-6].
#[test]
fn empty_client_id_with_clean_session_is_accepted() {
    let broker = Broker::start("");
    let mut raw = broker.raw();
    raw.send(&connect_packet("", true, 60));
    raw.expect(&[0x20, 0x02, 0x00, 0x00]);
    // Two such clients get different identifiers: the first is not taken over.
    let mut second = broker.raw();
    second.send(&connect_packet("", true, 60));
    second.expect(&[0x20, 0x02, 0x00, 0x00]);
    raw.send(&[0xc0, 0x00]);
    raw.expect(&[0xd0, 0x00]);
}

/// A CONNECT with the Client Identifier of a connected Client makes the Server disconnect
/// the existing Client [MQTT-3.1.4-2]; the new one is accepted.
#[test]
fn same_client_id_takes_over_and_closes_the_first_connection() {
    let broker = Broker::start("");
    let mut first = broker.raw_connected("same-id");
    let mut second = broker.raw();
    second.send(&connect_packet("same-id", true, 60));
    second.expect(&[0x20, 0x02, 0x00, 0x00]);
    first.expect_closed();
    second.send(&[0xc0, 0x00]);
    second.expect(&[0xd0, 0x00]);
}

/// If the User Name Flag is 0, the Password Flag must be 0 [MQTT-3.1.2-22]; a CONNECT with
/// a password but no user name is malformed and the connection is closed [MQTT-3.1.4-1].
#[test]
fn password_without_username_closes_the_connection() {
    let broker = Broker::start("");
    let mut raw = broker.raw();
    let mut body = field(b"MQTT");
    body.extend_from_slice(&[0x04, 0x42, 0x00, 0x3c]);
    body.extend_from_slice(&field(b"pw-only"));
    body.extend_from_slice(&field(b"secret"));
    raw.send(&packet(0x10, &body));
    raw.expect_closed();
}
