//! Will messages (MQTT 3.1.1 section 3.1.2.5).

use std::time::{Duration, Instant};

use rumqttc::QoS;

use crate::common::{connect_packet_with, Broker, Will};

const WILL: Will = Will {
    topic: "w/gone",
    payload: b"bye",
    qos: 1,
    retain: false,
};

fn connect_with_will(
    broker: &Broker,
    client_id: &str,
    keep_alive: u16,
    will: &Will,
) -> crate::common::Raw {
    let mut raw = broker.raw();
    raw.send(&connect_packet_with(
        client_id,
        true,
        keep_alive,
        Some(will),
    ));
    raw.expect(&[0x20, 0x02, 0x00, 0x00]);
    raw
}

/// The Will Message is published when the Network Connection is closed without DISCONNECT
/// [MQTT-3.1.2-8], at the will QoS, not retained [MQTT-3.1.2-16].
#[test]
fn will_is_published_when_socket_closes_without_disconnect() {
    let broker = Broker::start("");
    let mut watcher = broker.subscriber("watcher", "w/#", QoS::AtLeastOnce);
    let raw = connect_with_will(&broker, "dying", 60, &WILL);
    drop(raw);
    let got = watcher.expect_publish();
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("w/gone", &b"bye"[..])
    );
    assert_eq!(got.qos, QoS::AtLeastOnce);
    assert!(!got.retain);
    watcher.expect_no_publish();
}

/// The Will Message is removed without being published when the Server receives
/// DISCONNECT [MQTT-3.1.2-10].
#[test]
fn will_is_not_published_after_disconnect() {
    let broker = Broker::start("");
    let mut watcher = broker.subscriber("watcher", "w/#", QoS::AtLeastOnce);
    let mut raw = connect_with_will(&broker, "polite", 60, &WILL);
    raw.send(&[0xe0, 0x00]);
    raw.expect_closed();
    watcher.expect_no_publish();
}

/// A keep-alive timeout closes the connection "as if the network had failed"
/// [MQTT-3.1.2-24], so the will is published [MQTT-3.1.2-8]: keep alive 1 s, silent client,
/// will within 1.5 s plus slack (see `Broker::keep_alive_1s_close_limit` for Mosquitto).
#[test]
fn will_is_published_on_keep_alive_timeout() {
    let broker = Broker::start("");
    let mut watcher = broker.subscriber("watcher", "w/#", QoS::AtLeastOnce);
    let start = Instant::now();
    let _raw = connect_with_will(&broker, "silent", 1, &WILL);
    let got = watcher
        .next_publish(Broker::keep_alive_1s_close_limit())
        .expect("the will after a 1 s keep alive ran out");
    let elapsed = start.elapsed();
    assert_eq!(&got.payload[..], b"bye");
    assert!(
        elapsed >= Duration::from_millis(900),
        "will after only {elapsed:?}"
    );
}

/// Closing the connection because of a protocol error publishes the will (section
/// 3.1.2.5, "the Server closes the Network Connection because of a protocol error").
#[test]
fn will_is_published_on_protocol_error() {
    let broker = Broker::start("");
    let mut watcher = broker.subscriber("watcher", "w/#", QoS::AtLeastOnce);
    let mut raw = connect_with_will(&broker, "garbled", 60, &WILL);
    // Packet type 0 is reserved [MQTT-2.2.1]: a protocol violation.
    raw.send(&[0x00, 0x00]);
    raw.expect_closed();
    let got = watcher.expect_publish();
    assert_eq!(&got.payload[..], b"bye");
}

/// With Will Retain 1 the will is published as a retained message [MQTT-3.1.2-17]: a later
/// subscriber gets it with RETAIN 1.
#[test]
fn will_retain_is_honoured() {
    let broker = Broker::start("");
    let mut watcher = broker.subscriber("watcher", "w/#", QoS::AtLeastOnce);
    let will = Will {
        retain: true,
        ..WILL
    };
    drop(connect_with_will(&broker, "retainer", 60, &will));
    // Live delivery to the existing subscriber has RETAIN 0 [MQTT-3.3.1-9].
    assert!(!watcher.expect_publish().retain);
    let mut late = broker.subscriber("late", "w/gone", QoS::AtLeastOnce);
    let got = late.expect_publish();
    assert_eq!(&got.payload[..], b"bye");
    assert!(got.retain);
}
