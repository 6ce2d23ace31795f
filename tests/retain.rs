//! Retained messages (MQTT 3.1.1 section 3.3.1.3).

use rumqttc::QoS;

use crate::common::Broker;

/// A new subscription receives the last retained message on a matching topic
/// [MQTT-3.3.1-6] with the RETAIN flag set [MQTT-3.3.1-8].
#[test]
fn retained_message_is_delivered_to_new_subscriber_with_retain_flag() {
    let broker = Broker::start("");
    let mut publisher = broker.client("pub");
    publisher.publish("r/a", QoS::AtLeastOnce, true, b"kept");
    let mut sub = broker.subscriber("sub", "r/#", QoS::AtLeastOnce);
    let got = sub.expect_publish();
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("r/a", &b"kept"[..])
    );
    assert!(got.retain);
    assert_eq!(got.qos, QoS::AtLeastOnce);
    sub.expect_no_publish();
}

/// A newer retained message replaces the older one on the same topic [MQTT-3.3.1-5].
#[test]
fn newer_retained_message_replaces_older() {
    let broker = Broker::start("");
    let mut publisher = broker.client("pub");
    publisher.publish("r/v", QoS::AtLeastOnce, true, b"v1");
    publisher.publish("r/v", QoS::AtLeastOnce, true, b"v2");
    let mut sub = broker.subscriber("sub", "r/v", QoS::AtLeastOnce);
    let got = sub.expect_publish();
    assert_eq!(&got.payload[..], b"v2");
    assert!(got.retain);
    sub.expect_no_publish();
}

/// A retained PUBLISH with an empty payload removes the retained message [MQTT-3.3.1-10]
/// and is not itself stored [MQTT-3.3.1-11]: a later subscriber gets nothing.
#[test]
fn empty_retained_payload_clears_retained_message() {
    let broker = Broker::start("");
    let mut publisher = broker.client("pub");
    publisher.publish("r/c", QoS::AtLeastOnce, true, b"old");
    publisher.publish("r/c", QoS::AtLeastOnce, true, b"");
    let mut sub = broker.subscriber("sub", "r/c", QoS::AtLeastOnce);
    sub.expect_no_publish();
}

/// A zero-byte retained PUBLISH is still sent to existing subscribers [MQTT-3.3.1-10],
/// with RETAIN 0 [MQTT-3.3.1-9].
#[test]
fn empty_retained_payload_is_delivered_to_existing_subscribers() {
    let broker = Broker::start("");
    let mut sub = broker.subscriber("sub", "r/e", QoS::AtLeastOnce);
    let mut publisher = broker.client("pub");
    publisher.publish("r/e", QoS::AtLeastOnce, true, b"");
    let got = sub.expect_publish();
    assert_eq!(got.topic, "r/e");
    assert!(got.payload.is_empty());
    assert!(!got.retain);
}

/// A message sent because it matches an established subscription has RETAIN 0, however
/// it was published [MQTT-3.3.1-9].
#[test]
fn live_delivery_of_retained_publish_has_retain_clear() {
    let broker = Broker::start("");
    let mut sub = broker.subscriber("sub", "r/l", QoS::AtLeastOnce);
    let mut publisher = broker.client("pub");
    publisher.publish("r/l", QoS::AtLeastOnce, true, b"live");
    let got = sub.expect_publish();
    assert_eq!(&got.payload[..], b"live");
    assert!(!got.retain);
}
