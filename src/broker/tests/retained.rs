//! Core tests: Retained messages.

use super::*;

/// [MQTT-3.3.1-5]: a retained message is stored and replaces the previous one;
/// [MQTT-3.3.1-10] [MQTT-3.3.1-11]: an empty retained payload is delivered as normal but
/// removes the stored one and is not stored itself.
#[test]
fn retained_message_is_stored_replaced_and_cleared_by_an_empty_payload() {
    let mut h = Harness::default();
    let p = h.connect(1, "pub", true, 0, None);
    h.send(p, &retained(publish("r", b"first", Q0, 0)));
    h.send(p, &retained(publish("r", b"second", Q1, 1)));
    h.recv(p, &[Packet::Puback(Ack::new(pid(1)))]);
    assert_eq!(h.broker.retained_count(), 1);

    let s = h.connect(2, "s1", true, 0, None);
    h.send(s, &subscribe(1, &[("r", Q2)]));
    h.recv(
        s,
        &[
            Packet::Suback(Suback {
                packet_id: pid(1),
                codes: vec![ReasonCode::granted(Q2)],
                properties: Default::default(),
            }),
            retained(publish("r", b"second", Q1, 1)),
        ],
    );
    h.send(s, &Packet::Puback(Ack::new(pid(1))));

    h.send(p, &retained(publish("r", b"", Q0, 0)));
    h.recv(s, &[publish("r", b"", Q0, 0)]);
    assert_eq!(h.broker.retained_count(), 0);
    let s2 = h.connect(3, "s2", true, 0, None);
    h.subscribe(s2, 1, &[("#", Q2)]);
}

/// [MQTT-3.3.1-8]: messages sent because of a new subscription carry RETAIN 1;
/// [MQTT-3.3.1-9]: messages sent to an existing subscription carry RETAIN 0, even when
/// the publisher set RETAIN.
#[test]
fn retained_message_has_retain_1_on_subscribe_and_retain_0_live() {
    let mut h = Harness::default();
    let p = h.connect(1, "pub", true, 0, None);
    let live = h.connect(2, "live", true, 0, None);
    h.subscribe(live, 1, &[("a/+", Q0)]);
    h.send(p, &retained(publish("a/b", b"v", Q0, 0)));
    h.recv(live, &[publish("a/b", b"v", Q0, 0)]);

    let late = h.connect(3, "late", true, 0, None);
    h.send(late, &subscribe(7, &[("a/#", Q0)]));
    h.recv(
        late,
        &[
            Packet::Suback(Suback {
                packet_id: pid(7),
                codes: vec![ReasonCode::granted(Q0)],
                properties: Default::default(),
            }),
            retained(publish("a/b", b"v", Q0, 0)),
        ],
    );
}

/// [MQTT-3.8.4-3]: a SUBSCRIBE repeating an existing filter replaces the subscription and
/// the retained messages matching it are sent again.
#[test]
fn resubscribing_sends_retained_messages_again() {
    let mut h = Harness::default();
    let p = h.connect(1, "pub", true, 0, None);
    h.send(p, &retained(publish("r", b"v", Q0, 0)));
    let s = h.connect(2, "s", true, 0, None);
    for id in [1, 2] {
        h.send(s, &subscribe(id, &[("r", Q1)]));
        h.recv(
            s,
            &[
                Packet::Suback(Suback {
                    packet_id: pid(id),
                    codes: vec![ReasonCode::granted(Q1)],
                    properties: Default::default(),
                }),
                retained(publish("r", b"v", Q0, 0)),
            ],
        );
    }
    assert_eq!(h.broker.subscription_count(), 1);
}
