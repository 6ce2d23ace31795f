//! Core tests: what a fixed header alone decides, packets a client may not send, and the
//! QoS 1/2 acknowledgement flows as Mosquitto answers them.

use super::*;

/// The DISCONNECT an MQTT 5 client is sent before the broker closes.
fn disconnect5(reason: ReasonCode) -> Vec<u8> {
    encode5(&Packet::Disconnect(Disconnect {
        reason,
        properties: Props::default(),
    }))
}

/// An accepted MQTT 5 connection (CONNACK read).
fn connected5(h: &mut Harness, id: u32, client_id: &str) -> ConnId {
    let (c, frames) = h.connect5(id, client_id, true, Properties::default(), None);
    assert_eq!(connack_of(&frames).reason, ReasonCode::SUCCESS);
    c
}

/// [MQTT-3.1.0-1]: the first packet must be CONNECT. The loop asks before it keeps the
/// body of an incomplete packet; a first header of another type closes the connection
/// there, so a client that announces 243 MB is never buffered (Mosquitto closes at the
/// first byte: 01-bad-initial-packets).
#[test]
fn a_first_packet_that_is_not_connect_is_refused_at_its_header() {
    let mut h = Harness::default();
    for (i, first_byte) in [0x20u8, 0x30, 0x40, 0x82, 0xc0, 0xe0, 0xf0]
        .into_iter()
        .enumerate()
    {
        let c = h.open(i as u32 + 1);
        assert!(!h.broker.check_header(c, first_byte, 243_000_000, h.now));
        assert_eq!(h.closed(), [c], "first byte {first_byte:#04x}");
        h.recv_nothing(c);
    }
    let c = h.open(20);
    assert!(
        h.broker.check_header(c, 0x10, 200, h.now),
        "a CONNECT header"
    );
    assert!(h.closed().is_empty());
}

/// A client that has not connected may announce no more than Mosquitto's 100,000-byte
/// CONNECT: the largest thing it can make the loop buffer.
#[test]
fn a_connect_over_100000_bytes_is_refused_at_its_header() {
    let mut h = Harness::default();
    let c = h.open(1);
    assert!(h.broker.check_header(c, 0x10, 100_000, h.now));
    assert!(h.closed().is_empty());
    assert!(!h.broker.check_header(c, 0x10, 100_001, h.now));
    assert_eq!(h.closed(), [c]);
    h.recv_nothing(c);
}

/// [MQTT-3.12.1]: PINGREQ has no variable header and no payload. Mosquitto refuses a
/// Remaining Length other than 0 at the fixed header and closes without DISCONNECT
/// (seq/PINGREQ "C0 long"); the same for PINGRESP.
#[test]
fn a_pingreq_with_a_body_is_closed_without_disconnect() {
    for first_byte in [0xc0u8, 0xd0] {
        let mut h = Harness::default();
        let c = connected5(&mut h, 1, "c");
        h.send_raw(c, &[first_byte, 0x01, 0x00]);
        assert_eq!(h.closed(), [c]);
        h.recv_nothing(c);
    }
}

/// A 3.1.1 acknowledgement is exactly its packet identifier [MQTT-3.4.1]: a PUBACK
/// announcing 3 bytes is refused at its header, before the body is read.
#[test]
fn a_311_ack_of_other_than_two_bytes_is_refused_at_its_header() {
    let mut h = Harness::default();
    let c = h.connect(1, "c", true, 0, None);
    assert!(!h.broker.check_header(c, 0x40, 3, h.now));
    assert_eq!(h.closed(), [c]);
    h.recv_nothing(c);
}

/// culex offers no enhanced authentication, so an AUTH is a Protocol Error (0x82)
/// whatever its flags: the reserved flags are not looked at first (seq/AUTH F1...F8, as
/// Mosquitto answers). [MQTT-4.12.0-1]
#[test]
fn auth_with_any_flags_is_a_protocol_error() {
    for first_byte in [0xf0u8, 0xf1, 0xf2, 0xf4, 0xf8] {
        let mut h = Harness::default();
        let c = connected5(&mut h, 1, "c");
        h.send_raw(c, &[first_byte, 0x00]);
        assert_eq!(h.closed(), [c]);
        assert_eq!(
            h.recv_frames(c),
            [disconnect5(ReasonCode::PROTOCOL_ERROR)],
            "{first_byte:#04x}"
        );
    }
}

/// [MQTT-4.13.1]/Table 2-1: SUBACK, UNSUBACK, CONNACK and PINGRESP go from server to
/// client only; from a client they are a Protocol Error (0x82), even when their body
/// would be malformed too (seq/SUBACK, seq/UNSUBACK, seq/CONNACK, seq/PINGRESP).
#[test]
fn server_only_packets_from_a_client_are_a_protocol_error() {
    for bytes in [
        &[0x90u8, 0x03, 0x00, 0x01, 0x00][..],
        &[0xb0, 0x02, 0x00, 0x01],
        &[0x20, 0x02, 0x00, 0x00],
        &[0x20, 0x01, 0x00],
        &[0xd0, 0x00],
    ] {
        let mut h = Harness::default();
        let c = connected5(&mut h, 1, "c");
        h.send_raw(c, bytes);
        assert_eq!(h.closed(), [c]);
        assert_eq!(
            h.recv_frames(c),
            [disconnect5(ReasonCode::PROTOCOL_ERROR)],
            "{bytes:02x?}"
        );
    }
}

/// A v5 client's QoS 2 PUBLISH to `topic` with packet id `id`.
fn qos2_publish(h: &mut Harness, c: ConnId, topic: &str, id: u16) {
    h.send5(c, &publish(topic, b"m", QoS::ExactlyOnce, id));
}

/// PUBREC may carry 0x10 (No matching subscribers), but Mosquitto always answers an
/// accepted QoS 2 PUBLISH with Success, rl=2 (02-subpub-qos2-1322, 03-publish-qos2): the
/// publisher has no use for it before PUBREL. [MQTT-3.5.2.1] PUBACK keeps 0x10.
#[test]
fn pubrec_is_success_without_subscribers() {
    let mut h = Harness::default();
    let c = connected5(&mut h, 1, "c");
    qos2_publish(&mut h, c, "nobody/listens", 7);
    assert_eq!(h.recv_frames(c), [vec![0x50, 0x02, 0x00, 0x07]]);
    h.send5(c, &Packet::Pubrel(Ack::new(pid(7))));
    assert_eq!(h.recv_frames(c), [vec![0x70, 0x02, 0x00, 0x07]]);
    h.send5(c, &publish("nobody/listens", b"m", QoS::AtLeastOnce, 8));
    assert_eq!(h.recv_frames(c), [vec![0x40, 0x03, 0x00, 0x08, 0x10]]);
}

/// A client subscribed to its own topic reads the PUBREC of its QoS 2 PUBLISH before the
/// copy sent to it, as from Mosquitto, which routes at PUBREL (02-subpub-qos2).
/// [MQTT-4.3.3] lets the receiver deliver at either point.
#[test]
fn pubrec_comes_before_the_publishers_own_copy() {
    let mut h = Harness::default();
    let c = h.connect(1, "c", true, 0, None);
    h.subscribe(c, 1, &[("self/t", QoS::ExactlyOnce)]);
    h.send(c, &publish("self/t", b"m", QoS::ExactlyOnce, 301));
    h.recv(
        c,
        &[
            Packet::Pubrec(Ack::new(pid(301))),
            publish("self/t", b"m", QoS::ExactlyOnce, 1),
        ],
    );
}

/// [MQTT-4.4.0-1]: MQTT 5 resends only on reconnect. Mosquitto answers a QoS 2 PUBLISH
/// repeated once before PUBREL with PUBREC and a third copy with DISCONNECT 0x82
/// (03-publish-qos2-dup); the copies are not delivered again [MQTT-4.3.3-10].
#[test]
fn a_third_copy_of_a_qos2_publish_is_a_protocol_error_in_mqtt5() {
    let mut h = Harness::default();
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("dup/t", Q0)]);
    let c = connected5(&mut h, 2, "c");
    let copy = publish5("dup/t", b"m", QoS::ExactlyOnce, 1, Properties::default());
    let Packet::Publish(first) = copy else {
        unreachable!("publish5 builds a PUBLISH")
    };
    let again = Packet::Publish(Publish {
        dup: true,
        ..first.clone()
    });
    h.send5(c, &Packet::Publish(first));
    assert_eq!(h.recv_frames(c), [vec![0x50, 0x02, 0x00, 0x01]]);
    h.send5(c, &again);
    assert_eq!(h.recv_frames(c), [vec![0x50, 0x02, 0x00, 0x01]]);
    h.recv(s, &[publish("dup/t", b"m", Q0, 0)]);
    h.send5(c, &again);
    assert_eq!(h.closed(), [c]);
    assert_eq!(h.recv_frames(c), [disconnect5(ReasonCode::PROTOCOL_ERROR)]);
    h.recv_nothing(s);
}

/// After PUBREL the packet id is free again: the same id may carry new messages, each
/// repeated once, without a Protocol Error.
#[test]
fn pubrel_resets_the_count_of_repeated_qos2_copies() {
    let mut h = Harness::default();
    let c = connected5(&mut h, 1, "c");
    for _ in 0..3 {
        qos2_publish(&mut h, c, "t", 1);
        qos2_publish(&mut h, c, "t", 1);
        h.send5(c, &Packet::Pubrel(Ack::new(pid(1))));
        assert_eq!(
            h.recv_frames(c),
            [
                vec![0x50, 0x02, 0x00, 0x01],
                vec![0x50, 0x02, 0x00, 0x01],
                vec![0x70, 0x02, 0x00, 0x01]
            ]
        );
    }
    assert!(h.closed().is_empty());
}

/// MQTT 3.1.1 allows resending on the same connection, and [MQTT-4.3.3-2] says every
/// copy before PUBREL is answered with PUBREC and not delivered again. Mosquitto closes
/// at the third copy; culex keeps the specification (mosquitto-suite-deviations.txt).
#[test]
fn every_copy_of_a_qos2_publish_gets_pubrec_in_311() {
    let mut h = Harness::default();
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("dup/t", Q0)]);
    let c = h.connect(2, "c", true, 0, None);
    for _ in 0..4 {
        h.send(c, &dup(publish("dup/t", b"m", QoS::ExactlyOnce, 1)));
        h.recv(c, &[Packet::Pubrec(Ack::new(pid(1)))]);
    }
    assert!(h.closed().is_empty());
    h.recv(s, &[publish("dup/t", b"m", Q0, 0)]);
}

/// A PUBREL for a packet id the server does not know (it was released already, or the
/// session is new) is answered with PUBCOMP Success, rl=2, as Mosquitto does: MQTT 5
/// allows 0x92 there but does not require it. [MQTT-4.3.3-11] (seq/PUBREL)
#[test]
fn pubrel_for_an_unknown_packet_id_gets_pubcomp_success() {
    let mut h = Harness::default();
    let c = connected5(&mut h, 1, "c");
    h.send_raw(c, &[0x62, 0x02, 0x00, 0x01]);
    h.send_raw(c, &[0x62, 0x03, 0x00, 0x01, 0x92]);
    assert_eq!(
        h.recv_frames(c),
        [vec![0x70, 0x02, 0x00, 0x01], vec![0x70, 0x02, 0x00, 0x01]]
    );
    assert!(h.closed().is_empty());
}

/// PUBACK says 0x10 (No matching subscribers) only when no subscription matched at all:
/// a subscription No Local keeps from the publisher still matched, as in Mosquitto's
/// `sub__messages_queue` (02-subpub-qos1-nolocal). [MQTT-3.4.2.1]
#[test]
fn puback_is_success_when_only_a_no_local_subscription_matched() {
    let mut h = Harness::default();
    let c = connected5(&mut h, 1, "c");
    let mut options = SubscriptionOptions::new(QoS::AtLeastOnce);
    options.no_local = true;
    h.subscribe5(c, 1, "nl/t", options, None);
    assert_eq!(h.recv_frames(c).len(), 1, "SUBACK");
    h.send5(c, &publish("nl/t", b"m", QoS::AtLeastOnce, 300));
    assert_eq!(h.recv_frames(c), [vec![0x40, 0x02, 0x01, 0x2c]]);
}

/// The QoS 1 and QoS 2 flows of [MQTT-4.3.2] and [MQTT-4.3.3]: a client acknowledging a
/// delivery with the wrong packet (PUBREC or PUBCOMP for QoS 1, PUBACK or an early
/// PUBCOMP for QoS 2, PUBACK after PUBREL) commits a Protocol Error: DISCONNECT 0x82 in
/// MQTT 5, a close in 3.1.1, as Mosquitto answers (seq/FLOW).
#[test]
fn an_acknowledgement_of_the_wrong_kind_is_a_protocol_error() {
    // (QoS of the delivery, whether the client sends PUBREC first, the wrong ack).
    let cases: [(QoS, bool, u8); 5] = [
        (QoS::AtLeastOnce, false, 0x50),
        (QoS::AtLeastOnce, false, 0x70),
        (QoS::ExactlyOnce, false, 0x40),
        (QoS::ExactlyOnce, false, 0x70),
        (QoS::ExactlyOnce, true, 0x40),
    ];
    for is_v5 in [false, true] {
        for (qos, pubrec_first, wrong) in cases {
            let mut h = Harness::default();
            let s = if is_v5 {
                let s = connected5(&mut h, 1, "s");
                h.subscribe5(s, 1, "f/t", SubscriptionOptions::new(qos), None);
                h.recv_frames(s);
                s
            } else {
                let s = h.connect(1, "s", true, 0, None);
                h.subscribe(s, 1, &[("f/t", qos)]);
                s
            };
            let p = h.connect(2, "p", true, 0, None);
            h.send(p, &publish("f/t", b"m", qos, 9));
            let frames = h.recv_frames(s);
            assert_eq!(frames.len(), 1, "the QoS {} delivery", qos as u8);
            if pubrec_first {
                h.send_raw(s, &[0x50, 0x02, 0x00, 0x01]);
                assert_eq!(h.recv_frames(s), [vec![0x62, 0x02, 0x00, 0x01]]);
            }
            h.send_raw(s, &[wrong, 0x02, 0x00, 0x01]);
            let case = format!("v5 {is_v5}, QoS {}, {wrong:#04x}", qos as u8);
            assert_eq!(h.closed(), [s], "{case}");
            let expected = if is_v5 {
                vec![disconnect5(ReasonCode::PROTOCOL_ERROR)]
            } else {
                Vec::new()
            };
            assert_eq!(h.recv_frames(s), expected, "{case}");
        }
    }
}

/// A PUBREC repeated after PUBREL is answered with PUBREL again, not an error
/// [MQTT-4.3.3] (seq/FLOW "PUBLISH-PUBREC-PUBREL-PUBREC").
#[test]
fn a_repeated_pubrec_gets_pubrel_again() {
    let mut h = Harness::default();
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("f/t", QoS::ExactlyOnce)]);
    let p = h.connect(2, "p", true, 0, None);
    h.send(p, &publish("f/t", b"m", QoS::ExactlyOnce, 9));
    h.recv(s, &[publish("f/t", b"m", QoS::ExactlyOnce, 1)]);
    for _ in 0..2 {
        h.send_raw(s, &[0x50, 0x02, 0x00, 0x01]);
        h.recv(s, &[Packet::Pubrel(Ack::new(pid(1)))]);
    }
    h.send_raw(s, &[0x70, 0x02, 0x00, 0x01]);
    assert!(h.closed().is_empty());
}

/// MQTT 3.1's CONNACK has no Session Present flag (the byte is reserved): Mosquitto
/// writes 0 even when the session was resumed (seq/CONNECT "v3.1 CONNECT 14 ok").
#[test]
fn mqtt31_connack_never_says_session_present() {
    let mut h = Harness::default();
    let connect31 = |h: &mut Harness, id| {
        let c = h.open(id);
        let mut packet = connect("p31", false, 60, None);
        if let Packet::Connect(c) = &mut packet {
            c.version = ProtocolVersion::V31;
        }
        let mut bytes = Vec::new();
        packet.encode(ProtocolVersion::V31, &mut bytes);
        h.send_raw(c, &bytes);
        c
    };
    let c = connect31(&mut h, 1);
    assert_eq!(h.recv_frames(c), [vec![0x20, 0x02, 0x00, 0x00]]);
    h.drop_socket(c);
    let c = connect31(&mut h, 2);
    assert_eq!(h.recv_frames(c), [vec![0x20, 0x02, 0x00, 0x00]]);
}

/// [MQTT-3.1.2-24]: the server sends nothing larger than the client's Maximum Packet
/// Size, not even the CONNACK: a client allowing 2 bytes is closed without one, as
/// Mosquitto does (seq/CONNECT "tiny max packet").
#[test]
fn a_client_too_small_for_its_connack_is_closed_without_one() {
    let mut h = Harness::default();
    let props = Properties {
        maximum_packet_size: Some(2),
        ..Properties::default()
    };
    let (c, frames) = h.connect5(1, "tiny", true, props, None);
    assert!(frames.is_empty(), "{frames:02x?}");
    assert_eq!(h.closed(), [c]);
    h.recv_nothing(c);
}

/// A topic name or filter deeper than Mosquitto's 201 levels closes the connection;
/// MQTT 5 is told Malformed Packet (0x81), as Mosquitto tells it (03-publish-long-topic,
/// 02-subscribe-long-topic). [MQTT-3.14.2-1] allows any DISCONNECT reason code.
#[test]
fn a_topic_of_more_than_201_levels_is_answered_0x81_in_mqtt5() {
    let deep = "/".repeat(201);
    let mut h = Harness::default();
    let c = connected5(&mut h, 1, "p");
    h.send5(c, &publish(&deep, b"m", QoS::AtLeastOnce, 19));
    assert_eq!(h.closed(), [c]);
    assert_eq!(
        h.recv_frames(c),
        [disconnect5(ReasonCode::MALFORMED_PACKET)]
    );
    let c = connected5(&mut h, 2, "s");
    h.subscribe5(c, 1, &deep, SubscriptionOptions::new(Q0), None);
    assert_eq!(h.closed(), [c]);
    assert_eq!(
        h.recv_frames(c),
        [disconnect5(ReasonCode::MALFORMED_PACKET)]
    );
}

/// A queued message that expired before it could be sent used up a packet identifier
/// all the same, as Mosquitto numbers messages when it queues them: the next one goes
/// out with the identifier after it (02-subpub-qos1-message-expiry). [MQTT-3.3.2-5]
#[test]
fn an_expired_queued_message_uses_up_its_packet_id() {
    let mut h = Harness::default();
    let props = Properties {
        session_expiry_interval: Some(60),
        ..Properties::default()
    };
    let (s, _) = h.connect5(1, "s", true, props.clone(), None);
    h.subscribe5(
        s,
        1,
        "e/t",
        SubscriptionOptions::new(QoS::AtLeastOnce),
        None,
    );
    h.recv_frames(s);
    h.drop_socket(s);
    let p = connected5(&mut h, 2, "p");
    for (id, expiry) in [(1, 1), (2, 10)] {
        let properties = Properties {
            message_expiry_interval: Some(expiry),
            ..Properties::default()
        };
        h.send5(p, &publish5("e/t", b"m", QoS::AtLeastOnce, id, properties));
    }
    h.recv_frames(p);
    h.advance(Duration::from_secs(2));
    let (s, frames) = h.connect5(3, "s", false, props, None);
    assert!(connack_of(&frames).session_present);
    let Packet::Publish(delivered) = decode5(&frames[1]) else {
        panic!("expected the second message, got {:02x?}", frames[1]);
    };
    assert_eq!(delivered.packet_id, Some(pid(2)));
    assert_eq!(frames.len(), 2);
    let _ = s;
}

/// `max_inflight_bytes 16`: QoS 1/2 messages go out while fewer than 16 payload bytes are
/// in flight (the one that crosses the limit is still sent), the rest wait in the queue
/// until an acknowledgement frees room, as Mosquitto's `db__ready_for_flight`
/// (02-subpub-qos2-max-inflight-bytes).
#[test]
fn max_inflight_bytes_holds_messages_back_until_bytes_are_acknowledged() {
    let mut h = Harness::new(|s| s.max_inflight_bytes = 16);
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("b/t", QoS::AtLeastOnce)]);
    let p = h.connect(2, "p", true, 0, None);
    for (i, payload) in [b"message1", b"message2", b"message3"]
        .into_iter()
        .enumerate()
    {
        h.send(p, &publish("b/t", payload, QoS::AtLeastOnce, i as u16 + 1));
    }
    h.recv_frames(p);
    h.recv(
        s,
        &[
            publish("b/t", b"message1", QoS::AtLeastOnce, 1),
            publish("b/t", b"message2", QoS::AtLeastOnce, 2),
        ],
    );
    h.send(s, &Packet::Puback(Ack::new(pid(1))));
    h.recv(s, &[publish("b/t", b"message3", QoS::AtLeastOnce, 3)]);
    // Small messages: many fit under the byte limit at once.
    for i in 0..5u16 {
        h.send(p, &publish("b/t", b"x", QoS::AtLeastOnce, 10 + i));
    }
    h.send(s, &Packet::Puback(Ack::new(pid(2))));
    h.send(s, &Packet::Puback(Ack::new(pid(3))));
    assert_eq!(h.recv_frames(s).len(), 5);
}

/// `upgrade_outgoing_qos true`: messages are delivered at the subscription's QoS, even
/// above the publication's, retained ones included (04-retain-upgrade-outgoing-qos).
/// Non-standard ([MQTT-3.8.4-8] says the minimum), so off by default, as in Mosquitto.
#[test]
fn upgrade_outgoing_qos_delivers_at_the_subscription_qos() {
    let mut h = Harness::new(|s| s.upgrade_outgoing_qos = true);
    let c = h.connect(1, "c", true, 0, None);
    h.send(c, &retained(publish("u/t", b"kept", Q0, 0)));
    h.send(c, &subscribe(16, &[("u/t", QoS::AtLeastOnce)]));
    h.recv(
        c,
        &[
            Packet::Suback(Suback {
                packet_id: pid(16),
                codes: vec![ReasonCode::GRANTED_QOS_1],
                properties: Default::default(),
            }),
            retained(publish("u/t", b"kept", QoS::AtLeastOnce, 1)),
        ],
    );
    h.send(c, &publish("u/t", b"live", Q0, 0));
    h.recv(c, &[publish("u/t", b"live", QoS::AtLeastOnce, 2)]);
}

/// `check_retain_source` (on by default, as in Mosquitto): a retained message is served
/// to a new subscriber only while its publisher may still publish to its topic. After a
/// reload takes that access away it is no longer served (04-retain-check-source; the
/// CVE-2018-12546 fix). With the option off it still is.
#[test]
fn check_retain_source_stops_serving_a_message_its_publisher_may_no_longer_write() {
    use crate::auth::Acl;
    for check in [true, false] {
        let mut h = Harness::new(|s| s.check_retain_source = check);
        let acl = |text: &str| Some(Acl::parse_str(text).expect("a valid ACL"));
        h.broker.set_auth(None, acl("topic readwrite test/topic\n"));
        let c = h.connect(1, "retain-check", true, 0, None);
        h.send(c, &retained(publish("test/topic", b"kept", Q0, 0)));
        h.disconnect(c);
        let c = h.connect(2, "retain-check", true, 0, None);
        h.send(c, &subscribe(1, &[("test/topic", Q0)]));
        assert_eq!(h.recv_frames(c).len(), 2, "SUBACK and the retained message");
        h.disconnect(c);
        h.broker.set_auth(None, acl("topic read test/topic\n"));
        let c = h.connect(3, "retain-check", true, 0, None);
        h.send(c, &subscribe(1, &[("test/topic", Q0)]));
        let expected = if check { 1 } else { 2 };
        assert_eq!(
            h.recv_frames(c).len(),
            expected,
            "check_retain_source {check}"
        );
    }
}
