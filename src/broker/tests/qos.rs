//! Core tests: QoS flows.

use super::*;

/// [MQTT-4.3.1]: QoS 0 is sent once, without packet id or acknowledgement.
#[test]
fn qos0_publish_is_delivered_once_without_acknowledgement() {
    let mut h = Harness::default();
    let sub = h.connect(1, "sub", true, 0, None);
    h.subscribe(sub, 1, &[("a/b", Q2)]);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("a/b", b"hello", Q0, 0));
    h.recv_nothing(p);
    h.recv(sub, &[publish("a/b", b"hello", Q0, 0)]);
}

/// [MQTT-4.3.2-2]: the receiver of a QoS 1 PUBLISH answers PUBACK with its packet id; the
/// broker sends it on with its own packet id [MQTT-2.3.1-2] and waits for PUBACK.
#[test]
fn qos1_publish_is_acknowledged_with_puback_in_both_directions() {
    let mut h = Harness::default();
    let sub = h.connect(1, "sub", true, 0, None);
    h.subscribe(sub, 1, &[("a/b", Q1)]);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("a/b", b"one", Q1, 77));
    h.recv(p, &[Packet::Puback(Ack::new(pid(77)))]);
    h.recv(sub, &[publish("a/b", b"one", Q1, 1)]);
    h.send(sub, &Packet::Puback(Ack::new(pid(1))));
    h.recv_nothing(sub);
    h.recv_nothing(p);
    // The next message gets the next id.
    h.send(p, &publish("a/b", b"two", Q1, 78));
    h.recv(p, &[Packet::Puback(Ack::new(pid(78)))]);
    h.recv(sub, &[publish("a/b", b"two", Q1, 2)]);
}

/// [MQTT-4.3.3-1] [MQTT-4.3.3-2]: PUBLISH, PUBREC, PUBREL, PUBCOMP with the same packet
/// id, on the publishing and on the subscribing side.
#[test]
fn qos2_publish_goes_through_pubrec_pubrel_pubcomp() {
    let mut h = Harness::default();
    let sub = h.connect(1, "sub", true, 0, None);
    h.subscribe(sub, 1, &[("a/b", Q2)]);
    let p = h.connect(2, "pub", true, 0, None);

    h.send(p, &publish("a/b", b"once", Q2, 300));
    h.recv(p, &[Packet::Pubrec(Ack::new(pid(300)))]);
    h.recv(sub, &[publish("a/b", b"once", Q2, 1)]);

    h.send(sub, &Packet::Pubrec(Ack::new(pid(1))));
    h.recv(sub, &[Packet::Pubrel(Ack::new(pid(1)))]);
    h.send(sub, &Packet::Pubcomp(Ack::new(pid(1))));
    h.recv_nothing(sub);

    h.send(p, &Packet::Pubrel(Ack::new(pid(300))));
    h.recv(p, &[Packet::Pubcomp(Ack::new(pid(300)))]);
    h.recv_nothing(sub);
}

/// [MQTT-3.8.4-6]: the QoS of a delivered message is the minimum of the published QoS
/// and the granted QoS.
#[test]
fn delivery_qos_is_downgraded_to_the_granted_qos() {
    let mut h = Harness::default();
    let s1 = h.connect(1, "s1", true, 0, None);
    h.subscribe(s1, 1, &[("t", Q1)]);
    let s0 = h.connect(2, "s0", true, 0, None);
    h.subscribe(s0, 1, &[("t", Q0)]);
    let p = h.connect(3, "pub", true, 0, None);

    h.send(p, &publish("t", b"x", Q2, 1));
    h.recv(p, &[Packet::Pubrec(Ack::new(pid(1)))]);
    h.recv(s1, &[publish("t", b"x", Q1, 1)]);
    h.recv(s0, &[publish("t", b"x", Q0, 0)]);

    h.send(p, &publish("t", b"y", Q1, 2));
    h.recv(p, &[Packet::Puback(Ack::new(pid(2)))]);
    h.recv(s1, &[publish("t", b"y", Q1, 2)]);
    h.recv(s0, &[publish("t", b"y", Q0, 0)]);
}

/// [MQTT-4.3.3-2] (method A: store the packet id until PUBREL): a QoS 2 PUBLISH sent
/// again with DUP and the same id before PUBREL is answered with PUBREC but not delivered
/// again; after PUBREL the same id starts a new message.
#[test]
fn duplicate_qos2_publish_before_pubrel_is_delivered_once() {
    let mut h = Harness::default();
    let sub = h.connect(1, "sub", true, 0, None);
    h.subscribe(sub, 1, &[("t", Q0)]);
    let p = h.connect(2, "pub", true, 0, None);

    h.send(p, &publish("t", b"m", Q2, 5));
    h.recv(p, &[Packet::Pubrec(Ack::new(pid(5)))]);
    h.recv(sub, &[publish("t", b"m", Q0, 0)]);

    h.send(p, &dup(publish("t", b"m", Q2, 5)));
    h.recv(p, &[Packet::Pubrec(Ack::new(pid(5)))]);
    h.recv_nothing(sub);

    h.send(p, &Packet::Pubrel(Ack::new(pid(5))));
    h.recv(p, &[Packet::Pubcomp(Ack::new(pid(5)))]);

    h.send(p, &publish("t", b"n", Q2, 5));
    h.recv(p, &[Packet::Pubrec(Ack::new(pid(5)))]);
    h.recv(sub, &[publish("t", b"n", Q0, 0)]);
}

/// [MQTT-4.3.3-2]: PUBREL is answered with PUBCOMP with the same id, even when the id is
/// not (or no longer) known.
#[test]
fn pubrel_of_an_unknown_packet_id_is_answered_with_pubcomp() {
    let mut h = Harness::default();
    let c = h.connect(1, "c", true, 0, None);
    h.send(c, &Packet::Pubrel(Ack::new(pid(4242))));
    h.recv(c, &[Packet::Pubcomp(Ack::new(pid(4242)))]);
    assert!(h.closed().is_empty());
}

/// [MQTT-3.3.5-1]: with overlapping subscriptions the message is delivered respecting the
/// maximum QoS of all matching ones; further copies are allowed, but Mosquitto (without
/// allow_duplicate_messages) and culex send exactly one.
#[test]
fn overlapping_subscriptions_deliver_one_copy_at_the_highest_qos() {
    let mut h = Harness::default();
    let sub = h.connect(1, "sub", true, 0, None);
    h.subscribe(sub, 1, &[("a/+", Q0), ("a/#", Q1), ("a/b", Q0)]);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("a/b", b"x", Q2, 1));
    h.recv(p, &[Packet::Pubrec(Ack::new(pid(1)))]);
    h.recv(sub, &[publish("a/b", b"x", Q1, 1)]);
    assert_eq!(h.broker.subscription_count(), 3);
}

/// [MQTT-4.7.2-1]: filters starting with `#` or `+` do not match topic names starting
/// with `$`, neither for live messages nor for retained ones; `$SYS/#` does.
#[test]
fn dollar_topics_are_not_matched_by_wildcards_at_the_first_level() {
    let mut h = Harness::new(|s| s.sys_interval = Duration::from_secs(1));
    let all = h.connect(1, "all", true, 0, None);
    h.subscribe(all, 1, &[("#", Q0), ("+/broker/version", Q0), ("+/#", Q0)]);
    let sys = h.connect(2, "sys", true, 0, None);
    h.send(sys, &subscribe(1, &[("$SYS/broker/version", Q0)]));
    let version = format!("culex version {}", env!("CARGO_PKG_VERSION"));
    h.recv(
        sys,
        &[
            Packet::Suback(Suback {
                packet_id: pid(1),
                codes: vec![ReasonCode::granted(Q0)],
                properties: Default::default(),
            }),
            retained(publish("$SYS/broker/version", version.as_bytes(), Q0, 0)),
        ],
    );
    h.advance(Duration::from_secs(3));
    h.recv_nothing(all);
    assert!(h.broker.retained_count() > 0);
}
