//! Persistent sessions: CleanSession, session present, offline queues, redelivery
//! (MQTT 3.1.1 sections 3.1.2.4, 3.2.2.2, 4.4).

use rumqttc::QoS;

use crate::common::{connect_packet, publish_packet, subscribe_packet, Broker, Raw, QUIET};

/// Connects with CleanSession 0 and subscribes to `filter` at QoS 1.
fn persistent_subscriber(broker: &Broker, client_id: &str, filter: &str) -> Raw {
    let mut raw = broker.raw();
    raw.send(&connect_packet(client_id, false, 60));
    raw.expect(&[0x20, 0x02, 0x00, 0x00]);
    raw.send(&subscribe_packet(1, filter, 1));
    raw.expect(&[0x90, 0x03, 0x00, 0x01, 0x01]);
    raw
}

fn packet_id(publish: &[u8]) -> u16 {
    // Topic length at 2..4 for these short packets (one Remaining Length byte).
    let topic_len = usize::from(u16::from_be_bytes([publish[2], publish[3]]));
    u16::from_be_bytes([publish[4 + topic_len], publish[5 + topic_len]])
}

/// Messages published while a CleanSession 0 client is away are stored [MQTT-3.1.2-5];
/// on reconnection CONNACK says session present 1 [MQTT-3.2.2-2] and they are delivered.
#[test]
fn persistent_session_queues_messages_while_offline() {
    let broker = Broker::start("");
    let mut raw = persistent_subscriber(&broker, "keeper", "s/q");
    raw.send(&[0xe0, 0x00]);
    raw.expect_closed();
    let mut publisher = broker.client("pub");
    publisher.publish("s/q", QoS::AtLeastOnce, false, b"offline");

    let mut raw = broker.raw();
    raw.send(&connect_packet("keeper", false, 60));
    raw.expect(&[0x20, 0x02, 0x01, 0x00]);
    let got = raw.read_packet();
    let id = packet_id(&got);
    assert_eq!(got, publish_packet(b"s/q", 1, false, false, id, b"offline"));
}

/// CleanSession 1 discards the previous session [MQTT-3.1.2-6]: session present 0
/// [MQTT-3.2.2-1] and nothing queued is delivered.
#[test]
fn clean_session_discards_queued_messages() {
    let broker = Broker::start("");
    let mut raw = persistent_subscriber(&broker, "forgetful", "s/c");
    raw.send(&[0xe0, 0x00]);
    raw.expect_closed();
    let mut publisher = broker.client("pub");
    publisher.publish("s/c", QoS::AtLeastOnce, false, b"lost");

    let mut raw = broker.raw();
    raw.send(&connect_packet("forgetful", true, 60));
    raw.expect(&[0x20, 0x02, 0x00, 0x00]);
    raw.expect_silence(QUIET);
}

/// `max_queued_messages 3` bounds an offline client's queue (Mosquitto option; the
/// spec lets the Server limit what it stores). Mosquitto 2.0 keeps the oldest messages and
/// silently drops new ones once the queue is full: of m0..m9, m0, m1 and m2 arrive, in
/// order (the same with `max_inflight_messages` 1, 5 or the default 20).
#[test]
fn max_queued_messages_bounds_the_offline_queue() {
    let broker = Broker::start("max_queued_messages 3");
    let mut raw = persistent_subscriber(&broker, "bounded", "s/b");
    raw.send(&[0xe0, 0x00]);
    raw.expect_closed();
    let mut publisher = broker.client("pub");
    for n in 0..10 {
        publisher.publish("s/b", QoS::AtLeastOnce, false, format!("m{n}").as_bytes());
    }

    let mut raw = broker.raw();
    raw.send(&connect_packet("bounded", false, 60));
    raw.expect(&[0x20, 0x02, 0x01, 0x00]);
    let mut payloads = Vec::new();
    while let Some(got) = raw.try_read_packet(QUIET) {
        let id = packet_id(&got);
        payloads.push(String::from_utf8_lossy(&got[got.len() - 2..]).into_owned());
        let [hi, lo] = id.to_be_bytes();
        raw.send(&[0x40, 0x02, hi, lo]);
    }
    assert_eq!(payloads, ["m0", "m1", "m2"]);
}

/// An unacknowledged QoS 1 message is sent again on reconnection with CleanSession 0
/// [MQTT-4.4.0-1], with the same Packet Identifier and DUP 1 [MQTT-3.3.1-1]. Exact bytes.
#[test]
fn unacknowledged_qos1_message_is_resent_with_dup_on_reconnect() {
    let broker = Broker::start("");
    let mut raw = persistent_subscriber(&broker, "flaky", "s/d");
    let mut publisher = broker.client("pub");
    publisher.publish("s/d", QoS::AtLeastOnce, false, b"again");
    let first = raw.read_packet();
    let id = packet_id(&first);
    assert_eq!(first, publish_packet(b"s/d", 1, false, false, id, b"again"));
    drop(raw); // No PUBACK, no DISCONNECT.

    let mut raw = broker.raw();
    raw.send(&connect_packet("flaky", false, 60));
    raw.expect(&[0x20, 0x02, 0x01, 0x00]);
    raw.expect(&publish_packet(b"s/d", 1, false, true, id, b"again"));
}
