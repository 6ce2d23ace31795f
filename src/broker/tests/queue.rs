//! Core tests: Offline queue and resending.

use super::*;

/// A persistent session keeps its subscriptions while offline and queues QoS 1/2
/// messages for it [MQTT-3.1.2-5], delivered on reconnect in order [MQTT-4.6.0-6].
#[test]
fn offline_persistent_session_queues_qos1_and_delivers_in_order_on_reconnect() {
    let mut h = Harness::default();
    let sub = h.connect(1, "sub", false, 0, None);
    h.subscribe(sub, 1, &[("t", Q1)]);
    h.disconnect(sub);

    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("t", b"m1", Q1, 1));
    h.send(p, &publish("t", b"m2", Q2, 2));
    h.send(p, &Packet::Pubrel(Ack::new(pid(2))));
    h.send(p, &publish("t", b"m3", Q1, 3));
    h.recv(
        p,
        &[
            Packet::Puback(Ack::new(pid(1))),
            Packet::Pubrec(Ack::new(pid(2))),
            Packet::Pubcomp(Ack::new(pid(2))),
            Packet::Puback(Ack::new(pid(3))),
        ],
    );

    let sub = h.open(1);
    h.send(sub, &connect("sub", false, 0, None));
    h.recv(
        sub,
        &[
            connack(true, ReasonCode::SUCCESS),
            publish("t", b"m1", Q1, 1),
            publish("t", b"m2", Q1, 2),
            publish("t", b"m3", Q1, 3),
        ],
    );
    assert_eq!(h.broker.dropped_count(), 0);
}

/// Mosquitto's queue_qos0_messages false: QoS 0 messages are not queued for an offline
/// client (3.1.1 section 3.1.2.4 makes it optional).
#[test]
fn qos0_is_not_queued_for_an_offline_session() {
    let mut h = Harness::default();
    let sub = h.connect(1, "sub", false, 0, None);
    h.subscribe(sub, 1, &[("t", Q2)]);
    h.disconnect(sub);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("t", b"lost", Q0, 0));
    h.send(p, &publish("t", b"kept", Q1, 1));
    let sub = h.open(1);
    h.send(sub, &connect("sub", false, 0, None));
    h.recv(
        sub,
        &[
            connack(true, ReasonCode::SUCCESS),
            publish("t", b"kept", Q1, 1),
        ],
    );
}

/// max_queued_messages bounds the offline queue; what does not fit is dropped and
/// counted.
#[test]
fn offline_queue_is_bounded_by_max_queued_messages() {
    let mut h = Harness::new(|s| s.max_queued_messages = 2);
    let sub = h.connect(1, "sub", false, 0, None);
    h.subscribe(sub, 1, &[("t", Q1)]);
    h.disconnect(sub);
    let p = h.connect(2, "pub", true, 0, None);
    for (i, payload) in [b"1", b"2", b"3", b"4"].iter().enumerate() {
        h.send(p, &publish("t", *payload, Q1, i as u16 + 1));
    }
    assert_eq!(h.broker.dropped_count(), 2);
    let sub = h.open(1);
    h.send(sub, &connect("sub", false, 0, None));
    h.recv(
        sub,
        &[
            connack(true, ReasonCode::SUCCESS),
            publish("t", b"1", Q1, 1),
            publish("t", b"2", Q1, 2),
        ],
    );
}

/// max_queued_bytes bounds the payload bytes of the offline queue (Mosquitto counts the
/// payload); a message that would exceed it is dropped, a smaller later one still fits,
/// up to exactly the limit.
#[test]
fn offline_queue_is_bounded_by_max_queued_bytes() {
    let mut h = Harness::new(|s| s.max_queued_bytes = 6);
    let sub = h.connect(1, "sub", false, 0, None);
    h.subscribe(sub, 1, &[("t", Q1)]);
    h.disconnect(sub);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("t", b"aaa", Q1, 1));
    h.send(p, &publish("t", b"bbbb", Q1, 2));
    h.send(p, &publish("t", b"cc", Q1, 3));
    h.send(p, &publish("t", b"d", Q1, 4));
    h.send(p, &publish("t", b"e", Q1, 5));
    assert_eq!(h.broker.dropped_count(), 2);
    let sub = h.open(1);
    h.send(sub, &connect("sub", false, 0, None));
    h.recv(
        sub,
        &[
            connack(true, ReasonCode::SUCCESS),
            publish("t", b"aaa", Q1, 1),
            publish("t", b"cc", Q1, 2),
            publish("t", b"d", Q1, 3),
        ],
    );
}

/// [MQTT-4.4.0-1]: on reconnect with clean session 0, unacknowledged PUBLISH packets are
/// sent again with DUP 1 [MQTT-3.3.1-1] and their original packet ids, and PUBREL again
/// for messages already PUBREC'd, in the original order [MQTT-4.6.0-1]; new messages take
/// ids not in use.
#[test]
fn reconnect_resends_unacknowledged_publish_with_dup_and_pubrel() {
    let mut h = Harness::default();
    let sub = h.connect(1, "sub", false, 0, None);
    h.subscribe(sub, 1, &[("a", Q1), ("b", Q2), ("c", Q2)]);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("a", b"x", Q1, 1));
    h.send(p, &publish("b", b"y", Q2, 2));
    h.send(p, &publish("c", b"z", Q2, 3));
    h.recv(
        sub,
        &[
            publish("a", b"x", Q1, 1),
            publish("b", b"y", Q2, 2),
            publish("c", b"z", Q2, 3),
        ],
    );
    h.send(sub, &Packet::Pubrec(Ack::new(pid(2))));
    h.recv(sub, &[Packet::Pubrel(Ack::new(pid(2)))]);
    h.drop_socket(sub);
    assert_eq!(h.broker.clients_connected(), 1);

    let sub = h.open(1);
    h.send(sub, &connect("sub", false, 0, None));
    h.recv(
        sub,
        &[
            connack(true, ReasonCode::SUCCESS),
            dup(publish("a", b"x", Q1, 1)),
            Packet::Pubrel(Ack::new(pid(2))),
            dup(publish("c", b"z", Q2, 3)),
        ],
    );
    h.send(sub, &Packet::Puback(Ack::new(pid(1))));
    h.send(sub, &Packet::Pubcomp(Ack::new(pid(2))));
    h.send(p, &publish("a", b"new", Q1, 4));
    h.recv(sub, &[publish("a", b"new", Q1, 4)]);
}
