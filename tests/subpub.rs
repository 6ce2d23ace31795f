//! SUBSCRIBE, PUBLISH routing, UNSUBSCRIBE (MQTT 3.1.1 sections 3.3, 3.8, 3.10, 4.7).

use rumqttc::{QoS, SubscribeReasonCode};

use crate::common::{packet, publish_packet, subscribe_packet, Broker, QUIET};

fn round_trip_at(qos: QoS) {
    let broker = Broker::start("");
    let mut sub = broker.subscriber("sub", "a/b", qos);
    let mut publisher = broker.client("pub");
    publisher.publish("a/b", qos, false, b"hello");
    let got = sub.expect_publish();
    assert_eq!(got.topic, "a/b");
    assert_eq!(&got.payload[..], b"hello");
    assert_eq!(got.qos, qos);
    assert!(!got.retain);
    assert!(!got.dup);
    sub.expect_no_publish();
}

/// A QoS 0 message reaches a QoS 0 subscriber once, unchanged (section 4.3.1).
#[test]
fn qos0_message_is_delivered_end_to_end() {
    round_trip_at(QoS::AtMostOnce);
}

/// A QoS 1 message reaches a QoS 1 subscriber at QoS 1 [MQTT-4.3.2-2] [MQTT-3.8.4-6].
#[test]
fn qos1_message_is_delivered_end_to_end() {
    round_trip_at(QoS::AtLeastOnce);
}

/// A QoS 2 message reaches a QoS 2 subscriber exactly once at QoS 2 [MQTT-4.3.3-2]
/// [MQTT-3.8.4-6].
#[test]
fn qos2_message_is_delivered_end_to_end() {
    round_trip_at(QoS::ExactlyOnce);
}

/// `+` matches exactly one level (section 4.7.1.3): `s/+/t` matches `s/k/t`, not `s/k/h`
/// nor `s/k/x/t`.
#[test]
fn single_level_wildcard_matches_one_level() {
    let broker = Broker::start("");
    let mut sub = broker.subscriber("sub", "s/+/t", QoS::AtMostOnce);
    let mut publisher = broker.client("pub");
    for topic in ["s/k/h", "s/k/x/t", "s/k/t", "s//t"] {
        publisher.publish(topic, QoS::AtLeastOnce, false, topic.as_bytes());
    }
    assert_eq!(sub.expect_publish().topic, "s/k/t");
    assert_eq!(sub.expect_publish().topic, "s//t");
    sub.expect_no_publish();
}

/// `#` matches the parent level and any number of child levels (section 4.7.1.2):
/// `h/#` matches `h`, `h/a` and `h/a/b`, not `hx/a`.
#[test]
fn multi_level_wildcard_matches_parent_and_children() {
    let broker = Broker::start("");
    let mut sub = broker.subscriber("sub", "h/#", QoS::AtMostOnce);
    let mut publisher = broker.client("pub");
    for topic in ["hx/a", "h", "h/a", "h/a/b"] {
        publisher.publish(topic, QoS::AtLeastOnce, false, topic.as_bytes());
    }
    assert_eq!(sub.expect_publish().topic, "h");
    assert_eq!(sub.expect_publish().topic, "h/a");
    assert_eq!(sub.expect_publish().topic, "h/a/b");
    sub.expect_no_publish();
}

/// Topic filters starting with a wildcard do not match topic names starting with `$`
/// [MQTT-4.7.2-1]; a filter starting with `$test/` does.
#[test]
fn wildcard_subscribers_do_not_receive_dollar_topics() {
    let broker = Broker::start("");
    let mut all = broker.subscriber("all", "#", QoS::AtMostOnce);
    let mut plus = broker.subscriber("plus", "+/x", QoS::AtMostOnce);
    let mut dollar = broker.subscriber("dollar", "$test/#", QoS::AtMostOnce);
    let mut publisher = broker.client("pub");
    publisher.publish("$test/x", QoS::AtLeastOnce, false, b"d");
    publisher.publish("plain/x", QoS::AtLeastOnce, false, b"p");

    let got = dollar.expect_publish();
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("$test/x", &b"d"[..])
    );
    // The first message the wildcard subscribers see is the one published second.
    assert_eq!(all.expect_publish().topic, "plain/x");
    assert_eq!(plus.expect_publish().topic, "plain/x");
    all.expect_no_publish();
    plus.expect_no_publish();
}

/// With overlapping subscriptions the Client gets the message once, at the maximum QoS of
/// the matching subscriptions [MQTT-3.3.5-1]. (Sending one copy is what Mosquitto 2.0 does
/// with its default `allow_duplicate_messages false`; the spec also allows one per
/// subscription.)
#[test]
fn overlapping_subscriptions_deliver_one_copy_at_max_qos() {
    let broker = Broker::start("");
    let mut sub = broker.client("sub");
    for (filter, qos) in [("o/#", QoS::AtLeastOnce), ("o/+", QoS::ExactlyOnce)] {
        assert_eq!(
            sub.subscribe(filter, qos),
            SubscribeReasonCode::Success(qos)
        );
    }
    let mut publisher = broker.client("pub");
    publisher.publish("o/x", QoS::ExactlyOnce, false, b"once");
    let got = sub.expect_publish();
    assert_eq!(got.topic, "o/x");
    assert_eq!(got.qos, QoS::ExactlyOnce);
    sub.expect_no_publish();
}

/// The QoS of the one copy is the maximum of all matching subscriptions whatever their
/// kind (exact, `+`, `#`) [MQTT-3.3.5-1].
///
/// Spec over Mosquitto: Mosquitto 2.0.11 delivers at the QoS of the first subscription its
/// tree walk meets (exact level before `+` before `#`), here the QoS 0 exact subscription.
/// culex follows the spec; the Mosquitto branch pins down the known difference.
#[test]
fn overlapping_subscriptions_use_max_qos_whatever_the_filter_kind() {
    let broker = Broker::start("");
    let mut sub = broker.client("sub");
    for (filter, qos) in [
        ("o/x", QoS::AtMostOnce),
        ("o/+", QoS::AtLeastOnce),
        ("o/#", QoS::ExactlyOnce),
    ] {
        assert_eq!(
            sub.subscribe(filter, qos),
            SubscribeReasonCode::Success(qos)
        );
    }
    let mut publisher = broker.client("pub");
    publisher.publish("o/x", QoS::ExactlyOnce, false, b"once");
    let got = sub.expect_publish();
    assert_eq!(got.topic, "o/x");
    if Broker::is_mosquitto() {
        assert_eq!(got.qos, QoS::AtMostOnce, "Mosquitto 2.0: first match wins");
    } else {
        assert_eq!(got.qos, QoS::ExactlyOnce);
    }
    sub.expect_no_publish();
}

/// A message is delivered at the minimum of its QoS and the granted QoS [MQTT-3.8.4-6]:
/// published at QoS 2, received at QoS 1 by a QoS 1 subscriber.
#[test]
fn delivery_qos_is_downgraded_to_granted_qos() {
    let broker = Broker::start("");
    let mut sub1 = broker.subscriber("sub1", "d/t", QoS::AtLeastOnce);
    let mut sub0 = broker.subscriber("sub0", "d/t", QoS::AtMostOnce);
    let mut publisher = broker.client("pub");
    publisher.publish("d/t", QoS::ExactlyOnce, false, b"down");
    assert_eq!(sub1.expect_publish().qos, QoS::AtLeastOnce);
    assert_eq!(sub0.expect_publish().qos, QoS::AtMostOnce);
}

/// UNSUBSCRIBE gets UNSUBACK with its Packet Identifier [MQTT-3.10.4-4], and the Server
/// stops adding new messages for the Client [MQTT-3.10.4-2]. Exact bytes.
#[test]
fn unsubscribe_gets_unsuback_and_stops_delivery() {
    let broker = Broker::start("");
    let mut raw = broker.raw_connected("raw-sub");
    raw.send(&subscribe_packet(0x0007, "u/t", 0));
    raw.expect(&[0x90, 0x03, 0x00, 0x07, 0x00]);
    let mut publisher = broker.client("pub");
    publisher.publish("u/t", QoS::AtMostOnce, false, b"one");
    raw.expect(&publish_packet(b"u/t", 0, false, false, 0, b"one"));

    let mut unsubscribe = vec![0x00, 0x08];
    unsubscribe.extend_from_slice(&crate::common::field(b"u/t"));
    raw.send(&packet(0xa2, &unsubscribe));
    raw.expect(&[0xb0, 0x02, 0x00, 0x08]);
    publisher.publish("u/t", QoS::AtLeastOnce, false, b"two");
    raw.expect_silence(QUIET);
}
