//! Configured limits (Mosquitto options `message_size_limit`, `max_connections`).

use rumqttc::QoS;

use crate::common::{connect_packet, Broker, Raw};

/// `message_size_limit 100`: a PUBLISH whose payload is larger is not delivered while one
/// of exactly 100 bytes is. Mosquitto 2.0 drops it silently for 3.1.1 clients, still
/// completes the QoS 1 flow (PUBACK) and keeps the publisher connected.
#[test]
fn message_size_limit_drops_larger_publishes() {
    let broker = Broker::start("message_size_limit 100");
    let mut sub = broker.subscriber("sub", "l/t", QoS::AtLeastOnce);
    let mut publisher = broker.client("pub");
    publisher.publish("l/t", QoS::AtLeastOnce, false, &[b'x'; 101]);
    publisher.publish("l/t", QoS::AtLeastOnce, false, &[b'y'; 100]);
    let got = sub.expect_publish();
    assert_eq!(&got.payload[..], &[b'y'; 100][..]);
    sub.expect_no_publish();
}

/// `max_connections 2`: with two clients connected, a third TCP connection is closed
/// without a CONNACK. (Mosquitto 2.0.11 counts every closed connection twice, so after any
/// disconnect it lets extra connections in; the harness's readiness check makes no
/// connection, so this test sees the intended limit.)
#[test]
fn max_connections_refuses_the_connection_over_the_limit() {
    let broker = Broker::start("max_connections 2");
    let _first = broker.raw_connected("first");
    let _second = broker.raw_connected("second");
    let mut third = Raw::connect(broker.port);
    third.try_send(&connect_packet("third", true, 60));
    third.expect_closed();
}
