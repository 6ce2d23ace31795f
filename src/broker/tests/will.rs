//! Core tests: Wills.

use super::*;

/// Two clients: a watcher subscribed to `w` at QoS 0 and one with a will on `w`.
fn with_will(h: &mut Harness, keep_alive: u16) -> (ConnId, ConnId) {
    let watcher = h.connect(1, "watcher", true, 0, None);
    h.subscribe(watcher, 1, &[("w", Q0)]);
    let c = h.connect(2, "c", true, keep_alive, will("w", b"gone", Q1, false));
    (watcher, c)
}

/// [MQTT-3.1.2-8]: the will is published when the network connection closes without
/// DISCONNECT.
#[test]
fn will_is_published_when_the_socket_closes_without_disconnect() {
    let mut h = Harness::default();
    let (watcher, c) = with_will(&mut h, 60);
    h.recv_nothing(watcher);
    h.drop_socket(c);
    h.recv(watcher, &[publish("w", b"gone", Q0, 0)]);
    assert_eq!(h.broker.clients_connected(), 1);
}

/// [MQTT-3.1.2-10]: DISCONNECT removes the will without publishing it.
#[test]
fn will_is_not_published_after_disconnect() {
    let mut h = Harness::default();
    let (watcher, c) = with_will(&mut h, 60);
    h.disconnect(c);
    h.recv_nothing(watcher);
}

/// [MQTT-3.1.2-24]: without a packet within one and a half times the keep alive the
/// server disconnects; the will is published ([MQTT-3.1.2-8]).
#[test]
fn will_is_published_on_keep_alive_timeout() {
    let mut h = Harness::default();
    let (watcher, c) = with_will(&mut h, 10);
    h.advance(Duration::from_secs(14));
    assert!(h.closed().is_empty(), "closed at 1.4 x keep alive");
    h.recv_nothing(watcher);
    h.advance(Duration::from_secs(1));
    assert_eq!(h.closed(), [c]);
    h.recv_nothing(c);
    h.recv(watcher, &[publish("w", b"gone", Q0, 0)]);
}

/// [MQTT-3.1.2-8]: a protocol error (here a PUBLISH with QoS 3, [MQTT-3.3.1-4]) closes
/// the connection and publishes the will.
#[test]
fn will_is_published_on_a_protocol_error() {
    let mut h = Harness::default();
    let (watcher, c) = with_will(&mut h, 60);
    // PUBLISH, QoS bits 11, topic "a", no payload.
    h.send_raw(c, &[0x36, 0x03, 0x00, 0x01, b'a']);
    assert_eq!(h.closed(), [c]);
    h.recv_nothing(c);
    h.recv(watcher, &[publish("w", b"gone", Q0, 0)]);
}

/// A framing error reported by the loop also counts as a protocol error.
#[test]
fn will_is_published_on_a_framing_error() {
    let mut h = Harness::default();
    let (watcher, c) = with_will(&mut h, 60);
    h.broker
        .handle_framing_error(c, DecodeError::MalformedRemainingLength, h.now);
    assert_eq!(h.closed(), [c]);
    h.recv(watcher, &[publish("w", b"gone", Q0, 0)]);
}

/// [MQTT-3.1.4-2]: a second connection with the same client id closes the first; the
/// first connection ended without DISCONNECT, so its will is published.
#[test]
fn takeover_closes_the_old_connection_and_publishes_its_will() {
    let mut h = Harness::default();
    let (watcher, old) = with_will(&mut h, 60);
    let new = h.connect(3, "c", true, 60, None);
    assert_eq!(h.closed(), [old]);
    h.recv_nothing(old);
    h.recv(watcher, &[publish("w", b"gone", Q0, 0)]);
    assert_eq!(h.broker.clients_connected(), 2);
    // The new connection is the one that works, and the old one's end did not take the
    // new one's session with it.
    h.send(new, &Packet::Pingreq);
    h.recv(new, &[Packet::Pingresp]);
    h.subscribe(new, 1, &[("x", Q1)]);
    let p = h.connect(4, "pub", true, 0, None);
    h.send(p, &publish("x", b"1", Q1, 1));
    h.recv(new, &[publish("x", b"1", Q1, 1)]);
}

/// A will with RETAIN 1 is stored as the retained message of its topic [MQTT-3.1.2-17].
#[test]
fn will_with_retain_is_stored() {
    let mut h = Harness::default();
    let c = h.connect(1, "c", true, 60, will("status/c", b"offline", Q1, true));
    h.drop_socket(c);
    assert_eq!(h.broker.retained_count(), 1);
    let s = h.connect(2, "s", true, 0, None);
    h.send(s, &subscribe(1, &[("status/+", Q1)]));
    h.recv(
        s,
        &[
            Packet::Suback(Suback {
                packet_id: pid(1),
                codes: vec![ReasonCode::granted(Q1)],
                properties: Default::default(),
            }),
            retained(publish("status/c", b"offline", Q1, 1)),
        ],
    );
}

/// MQTT 5 CONNECT properties with `expiry` as Session Expiry Interval.
fn will5_props(expiry: u32) -> Properties<'static> {
    Properties {
        session_expiry_interval: Some(expiry),
        ..Properties::default()
    }
}

/// A QoS 0 will "gone" to `w`, with `delay` as Will Delay Interval.
fn will5(delay: Option<u32>) -> Option<Will<'static>> {
    Some(Will {
        topic: "w",
        payload: b"gone",
        qos: Q0,
        retain: false,
        properties: Properties {
            will_delay_interval: delay,
            ..Properties::default()
        }
        .into(),
    })
}

/// MQTT 5 take-over: a connection that resumes the session (Clean Start 0, the old
/// session has an expiry) is "a new Network Connection for the ClientID opened before
/// the Will Delay Interval has elapsed", so the old connection's will is not published
/// [MQTT-3.1.2-8]; with Clean Start 1, or when the old session ends with its connection
/// (expiry 0), it is (Mosquitto does the same; suite 07-will-takeover).
#[test]
fn mqtt5_takeover_publishes_the_will_only_when_the_session_ends() {
    for (old_expiry, clean_start, published) in [
        (60, false, false),
        (60, true, true),
        (0, false, true),
        (0, true, true),
    ] {
        let mut h = Harness::default();
        let watcher = h.connect(1, "watcher", true, 0, None);
        h.subscribe(watcher, 1, &[("w", Q0)]);
        let (old, _) = h.connect5(2, "c", true, will5_props(old_expiry), will5(None));
        let (new, frames) = h.connect5(3, "c", clean_start, will5_props(60), None);
        assert_eq!(connack_of(&frames).reason, ReasonCode::SUCCESS);
        assert_eq!(h.closed(), [old]);
        let expected: &[Packet<'_>] = if published {
            &[publish("w", b"gone", Q0, 0)]
        } else {
            &[]
        };
        h.recv(watcher, expected);
        // Nor later, when the new connection ends with DISCONNECT.
        h.send5(new, &Packet::Disconnect(Disconnect::default()));
        h.advance(Duration::from_secs(120));
        h.recv_nothing(watcher);
    }
}

/// 3.1.1 take-over of a persistent session by a persistent connection: the old
/// connection closed without DISCONNECT, so its will is published (3.1.1
/// [MQTT-3.1.2-8] knows no exception; Mosquitto skips it: a deviation kept on purpose).
#[test]
fn v311_takeover_of_a_persistent_session_publishes_the_will() {
    let mut h = Harness::default();
    let watcher = h.connect(1, "watcher", true, 0, None);
    h.subscribe(watcher, 1, &[("w", Q0)]);
    let old = h.connect(2, "c", false, 60, will("w", b"gone", Q0, false));
    let new = h.open(3);
    h.send(new, &connect("c", false, 60, None));
    h.recv(new, &[connack(true, ReasonCode::SUCCESS)]);
    assert_eq!(h.closed(), [old]);
    h.recv(watcher, &[publish("w", b"gone", Q0, 0)]);
}

/// A delayed will is not published when a new connection for the client id arrives
/// before the delay elapsed, even with Clean Start 1, which ends the old session
/// [MQTT-3.1.2-8] [MQTT-3.1.3-9] (suite 07-will-delay-recover).
#[test]
fn delayed_will_is_dropped_by_a_clean_start_reconnect_in_time() {
    let mut h = Harness::default();
    let watcher = h.connect(1, "watcher", true, 0, None);
    h.subscribe(watcher, 1, &[("w", Q0)]);
    let (c, _) = h.connect5(2, "c", true, will5_props(30), will5(Some(3)));
    h.drop_socket(c);
    h.advance(Duration::from_secs(1));
    let (c, frames) = h.connect5(2, "c", true, will5_props(30), None);
    assert!(!connack_of(&frames).session_present);
    h.advance(Duration::from_secs(10));
    h.recv_nothing(watcher);
    h.send5(c, &Packet::Pingreq);
    assert_eq!(h.recv_frames(c), [encode5(&Packet::Pingresp)]);
}

/// A will to `$CONTROL/...` (a broker plugin's control topic) refuses the connection
/// without CONNACK, as Mosquitto does ([MQTT-3.1.4-3]: the server MAY send a CONNACK
/// first); nothing is published (suite 07-will-control).
#[test]
fn will_to_a_control_topic_closes_the_connection_without_connack() {
    let mut h = Harness::default();
    let watcher = h.connect(1, "watcher", true, 0, None);
    h.subscribe(watcher, 1, &[("#", Q0)]);
    let c = h.open(2);
    h.send(
        c,
        &connect(
            "c",
            true,
            60,
            will("$CONTROL/dynamic-security/v1", b"x", Q0, false),
        ),
    );
    assert_eq!(h.closed(), [c]);
    h.recv_nothing(c);
    h.recv_nothing(watcher);
    assert_eq!(h.broker.clients_connected(), 1);
}

/// A will payload over message_size_limit refuses the connection as Mosquitto does:
/// 3.1.1 0x05, MQTT 5 0x95 Packet too large; a will within the limit is accepted (suite
/// 07-will-oversize-payload).
#[test]
fn will_over_message_size_limit_is_refused() {
    let mut h = Harness::new(|s| s.message_size_limit = 1);
    let c = h.open(1);
    h.send(c, &connect("c", true, 60, will("w", b"AB", Q0, false)));
    assert_eq!(h.closed(), [c]);
    h.recv(c, &[connack(false, ReasonCode::NOT_AUTHORIZED)]);
    let (c5, frames) = h.connect5(2, "c", true, Properties::default(), will5(None));
    assert_eq!(h.closed(), [c5]);
    assert_eq!(connack_of(&frames).reason, ReasonCode::PACKET_TOO_LARGE);
    h.connect(3, "c", true, 60, will("w", b"A", Q0, false));
}
