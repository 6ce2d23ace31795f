//! Core tests: MQTT 5.

use super::*;

/// MQTT 5 CONNECT is accepted; CONNACK tells the client our Receive Maximum and Topic
/// Alias Maximum, and assigns an id to an empty one [MQTT-3.1.3-6] [MQTT-3.2.2-16].
#[test]
fn mqtt5_connect_gets_connack_with_limits_and_assigned_id() {
    let mut h = Harness::default();
    let (_, frames) = h.connect5(1, "", true, Properties::default(), None);
    let connack = connack_of(&frames);
    assert_eq!(connack.reason, ReasonCode::SUCCESS);
    assert!(!connack.session_present);
    let assigned = connack
        .properties
        .assigned_client_identifier
        .expect("assigned id");
    assert!(assigned.starts_with("auto-"), "{assigned}");
    assert_eq!(connack.properties.receive_maximum, Some(20));
    assert_eq!(connack.properties.topic_alias_maximum, Some(10));
    assert_eq!(h.broker.clients_connected(), 1);
}

/// A CONNECT with an Authentication Method culex does not support gets 0x8C. [MQTT-4.12.0-1]
#[test]
fn mqtt5_unsupported_authentication_method_is_refused_with_0x8c() {
    let mut h = Harness::default();
    let props = Properties {
        authentication_method: Some("SCRAM-SHA-1"),
        ..Properties::default()
    };
    let (c, frames) = h.connect5(1, "c", true, props, None);
    assert_eq!(
        connack_of(&frames).reason,
        ReasonCode::BAD_AUTHENTICATION_METHOD
    );
    assert_eq!(h.closed(), [c]);
}

/// Session Expiry Interval: the session outlives its connection for that long, with its
/// subscriptions and queued messages, then ends. [MQTT-3.1.2-23]
#[test]
fn mqtt5_session_expiry_keeps_the_session_for_its_interval() {
    let mut h = Harness::default();
    let props = || Properties {
        session_expiry_interval: Some(60),
        ..Properties::default()
    };
    let (sub, _) = h.connect5(1, "s", true, props(), None);
    h.subscribe5(sub, 1, "t", SubscriptionOptions::new(Q1), None);
    h.recv_frames(sub);
    h.send5(sub, &Packet::Disconnect(Disconnect::default()));
    assert_eq!(h.closed(), [sub]);
    let p = h.connect(2, "p", true, 0, None);
    h.send(p, &publish("t", b"kept", Q1, 1));
    h.advance(Duration::from_secs(30));
    let (sub, frames) = h.connect5(1, "s", false, props(), None);
    assert!(connack_of(&frames).session_present);
    assert_eq!(
        decode5(&frames[1]),
        publish5("t", b"kept", Q1, 1, Properties::default())
    );
    h.send5(sub, &Packet::Puback(Ack::new(pid(1))));
    h.send5(sub, &Packet::Disconnect(Disconnect::default()));
    h.closed();
    h.advance(Duration::from_secs(61));
    let (_, frames) = h.connect5(1, "s", false, props(), None);
    assert!(!connack_of(&frames).session_present, "expired after 60 s");
}

/// Message Expiry Interval: a queued message is sent with what is left of its interval
/// [MQTT-3.3.2-6], and not at all once it has expired [MQTT-3.3.2-5].
#[test]
fn mqtt5_message_expiry_counts_down_while_queued() {
    let mut h = Harness::default();
    let props = Properties {
        session_expiry_interval: Some(600),
        ..Properties::default()
    };
    let (sub, _) = h.connect5(1, "s", true, props.clone(), None);
    h.subscribe5(sub, 1, "t", SubscriptionOptions::new(Q1), None);
    h.recv_frames(sub);
    h.send5(sub, &Packet::Disconnect(Disconnect::default()));
    h.closed();
    let (p, _) = h.connect5(2, "p", true, Properties::default(), None);
    let expiring = |secs| Properties {
        message_expiry_interval: Some(secs),
        ..Properties::default()
    };
    h.send5(p, &publish5("t", b"short", Q1, 1, expiring(2)));
    h.send5(p, &publish5("t", b"long", Q1, 2, expiring(10)));
    h.advance(Duration::from_secs(5));
    let (_, frames) = h.connect5(1, "s", false, props, None);
    assert_eq!(frames.len(), 2, "CONNACK and the one message still alive");
    // Packet id 2: the expired message used up 1, as Mosquitto numbers queued messages.
    assert_eq!(
        decode5(&frames[1]),
        publish5("t", b"long", Q1, 2, expiring(5))
    );
}

/// Topic aliases from the client: a name sets the alias, an empty name uses it
/// [MQTT-3.3.2-12]; an alias over our maximum is a DISCONNECT 0x94. [MQTT-3.3.2-9]
#[test]
fn mqtt5_inbound_topic_aliases_are_resolved_and_bounded() {
    let mut h = Harness::default();
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("sensors/#", Q0)]);
    let (p, _) = h.connect5(2, "p", true, Properties::default(), None);
    let alias = |a| Properties {
        topic_alias: Some(a),
        ..Properties::default()
    };
    h.send5(p, &publish5("sensors/t1", b"a", Q0, 0, alias(3)));
    h.send5(p, &publish5("", b"b", Q0, 0, alias(3)));
    h.recv(
        s,
        &[
            publish("sensors/t1", b"a", Q0, 0),
            publish("sensors/t1", b"b", Q0, 0),
        ],
    );
    h.send5(p, &publish5("sensors/t1", b"c", Q0, 0, alias(11)));
    assert_eq!(h.closed(), [p]);
    assert_eq!(
        decode5(&h.recv_frames(p)[0]),
        Packet::Disconnect(Disconnect {
            reason: ReasonCode::TOPIC_ALIAS_INVALID,
            properties: Props::default()
        })
    );
}

/// No Local [MQTT-3.8.3-3], Retain As Published [MQTT-3.3.1-12], Retain Handling 2
/// (no retained messages on subscribe), and the Subscription Identifier sent with each
/// matching message [MQTT-3.3.4-3].
#[test]
fn mqtt5_subscription_options_and_identifiers() {
    let mut h = Harness::default();
    let (c, _) = h.connect5(1, "c", true, Properties::default(), None);
    h.send5(
        c,
        &retained(publish5("r/old", b"old", Q0, 0, Properties::default())),
    );
    let options = SubscriptionOptions {
        qos: Q0,
        no_local: true,
        retain_as_published: true,
        retain_handling: 2,
    };
    h.subscribe5(c, 1, "r/#", options, Some(7));
    assert_eq!(
        h.recv_frames(c).len(),
        1,
        "SUBACK only: no retained message, Retain Handling 2"
    );
    h.send5(
        c,
        &retained(publish5("r/new", b"mine", Q0, 0, Properties::default())),
    );
    assert!(
        h.recv_frames(c).is_empty(),
        "No Local: not sent its own message"
    );
    let (o, _) = h.connect5(2, "o", true, Properties::default(), None);
    h.send5(
        o,
        &retained(publish5("r/new", b"theirs", Q0, 0, Properties::default())),
    );
    let frames = h.recv_frames(c);
    let mut ids = Properties::default();
    ids.subscription_identifiers.push(7);
    assert_eq!(
        decode5(&frames[0]),
        retained(publish5("r/new", b"theirs", Q0, 0, ids))
    );
}

/// A topic whose only subscription is the publisher's own with No Local has a
/// subscriber: the message is not sent back [MQTT-3.8.3-3], and the PUBACK says Success,
/// not 0x10, as Mosquitto's does (a bridge's `both` topic is this case: Mosquitto's
/// 06-bridge-b2br-disconnect-qos1 expects the bridge's PUBACK to be Success).
#[test]
fn puback_is_success_when_only_the_publishers_no_local_subscription_matches() {
    let mut h = Harness::default();
    let (p, _) = h.connect5(1, "p", true, Properties::default(), None);
    let mut options = SubscriptionOptions::new(Q1);
    options.no_local = true;
    h.subscribe5(p, 1, "t/#", options, None);
    h.recv_frames(p);
    h.send5(p, &publish5("t/x", b"own", Q1, 2, Properties::default()));
    let frames = h.recv_frames(p);
    assert_eq!(frames.len(), 1, "the PUBACK only, no copy of the message");
    assert_eq!(decode5(&frames[0]), Packet::Puback(Ack::new(pid(2))));
}

/// PUBACK says 0x10 when nobody was subscribed (as Mosquitto), and user properties,
/// content type and correlation data reach an MQTT 5 subscriber unchanged
/// [MQTT-3.3.2-17] [MQTT-3.3.2-20]; an MQTT 3.1.1 subscriber gets the message without.
#[test]
fn mqtt5_properties_are_forwarded_and_puback_reports_no_subscribers() {
    let mut h = Harness::default();
    let (p, _) = h.connect5(1, "p", true, Properties::default(), None);
    h.send5(p, &publish5("x", b"nobody", Q1, 1, Properties::default()));
    let frames = h.recv_frames(p);
    let ack = decode5(&frames[0]);
    assert_eq!(
        ack,
        Packet::Puback(Ack {
            packet_id: pid(1),
            reason: ReasonCode::NO_MATCHING_SUBSCRIBERS,
            properties: Props::default()
        })
    );

    let (s5, _) = h.connect5(2, "s5", true, Properties::default(), None);
    h.subscribe5(s5, 1, "x", SubscriptionOptions::new(Q0), None);
    h.recv_frames(s5);
    let s3 = h.connect(3, "s3", true, 0, None);
    h.subscribe(s3, 1, &[("x", Q0)]);
    let mut props = Properties {
        content_type: Some("text/plain"),
        correlation_data: Some(b"42"),
        response_topic: Some("reply/p"),
        ..Properties::default()
    };
    props.user_properties.push(("site", "north"));
    h.send5(p, &publish5("x", b"hello", Q0, 0, props.clone()));
    assert_eq!(
        decode5(&h.recv_frames(s5)[0]),
        publish5("x", b"hello", Q0, 0, props)
    );
    h.recv(s3, &[publish("x", b"hello", Q0, 0)]);
}

/// Will Delay Interval: the will waits, and is not sent if the session comes back in
/// time [MQTT-3.1.3-9]; otherwise it goes out when the delay passes.
#[test]
fn mqtt5_will_delay_waits_and_is_cancelled_by_a_reconnect() {
    let mut h = Harness::default();
    let w = h.connect(9, "watcher", true, 0, None);
    h.subscribe(w, 1, &[("wills/#", Q0)]);
    let session = || Properties {
        session_expiry_interval: Some(100),
        ..Properties::default()
    };
    let delayed_will = || {
        Some(Will {
            topic: "wills/c",
            payload: b"gone",
            qos: Q0,
            retain: false,
            properties: Properties {
                will_delay_interval: Some(5),
                ..Properties::default()
            }
            .into(),
        })
    };
    let (c, _) = h.connect5(1, "c", true, session(), delayed_will());
    h.drop_socket(c);
    h.advance(Duration::from_secs(3));
    h.recv_nothing(w);
    let (c, frames) = h.connect5(1, "c", false, session(), delayed_will());
    assert!(connack_of(&frames).session_present);
    h.advance(Duration::from_secs(10));
    h.recv_nothing(w);
    h.drop_socket(c);
    h.advance(Duration::from_secs(4));
    h.recv_nothing(w);
    h.advance(Duration::from_secs(2));
    h.recv(w, &[publish("wills/c", b"gone", Q0, 0)]);
}

/// DISCONNECT with 0x04 publishes the will [MQTT-3.14.2.1]; the server tells an MQTT 5
/// client why it closes: keep alive timeout 0x8D.
#[test]
fn mqtt5_disconnect_with_will_and_server_disconnect_reasons() {
    let mut h = Harness::default();
    let w = h.connect(9, "watcher", true, 0, None);
    h.subscribe(w, 1, &[("wills/#", Q0)]);
    let will = Some(Will {
        topic: "wills/a",
        payload: b"bye",
        qos: Q0,
        retain: false,
        properties: Props::default(),
    });
    let (a, _) = h.connect5(1, "a", true, Properties::default(), will);
    h.send5(
        a,
        &Packet::Disconnect(Disconnect {
            reason: ReasonCode::DISCONNECT_WITH_WILL_MESSAGE,
            properties: Props::default(),
        }),
    );
    assert_eq!(h.closed(), [a]);
    h.recv(w, &[publish("wills/a", b"bye", Q0, 0)]);

    let (b, _) = h.connect5(2, "b", true, Properties::default(), None);
    h.advance(Duration::from_secs(46));
    assert_eq!(h.closed(), [b]);
    assert_eq!(
        decode5(&h.recv_frames(b)[0]),
        Packet::Disconnect(Disconnect {
            reason: ReasonCode::KEEP_ALIVE_TIMEOUT,
            properties: Props::default()
        })
    );
}

/// The client's Receive Maximum bounds the QoS 1/2 messages in flight to it
/// [MQTT-3.3.4-9], and its Maximum Packet Size the packets sent to it: a larger one is
/// dropped as if delivered [MQTT-3.1.2-25].
#[test]
fn mqtt5_client_receive_maximum_and_maximum_packet_size_are_honoured() {
    let mut h = Harness::default();
    let props = Properties {
        receive_maximum: Some(1),
        maximum_packet_size: Some(64),
        ..Properties::default()
    };
    let (s, _) = h.connect5(1, "s", true, props, None);
    h.subscribe5(s, 1, "t", SubscriptionOptions::new(Q1), None);
    h.recv_frames(s);
    let p = h.connect(2, "p", true, 0, None);
    h.send(p, &publish("t", &[b'x'; 100], Q1, 1));
    h.send(p, &publish("t", b"m1", Q1, 2));
    h.send(p, &publish("t", b"m2", Q1, 3));
    let frames = h.recv_frames(s);
    assert_eq!(
        frames.len(),
        1,
        "the 100-byte message is dropped; one in flight"
    );
    // Packet id 1 went to the dropped message.
    assert_eq!(
        decode5(&frames[0]),
        publish5("t", b"m1", Q1, 2, Properties::default())
    );
    h.send5(s, &Packet::Puback(Ack::new(pid(2))));
    assert_eq!(
        decode5(&h.recv_frames(s)[0]),
        publish5("t", b"m2", Q1, 3, Properties::default())
    );
    assert!(h.broker.dropped_count() >= 1);
}

/// Outbound topic aliases: to a client that allows them, the first message on a topic
/// sets an alias and later ones send an empty topic name with it [MQTT-3.3.2-8]
/// [MQTT-3.3.2-12]; never more aliases than the client's Topic Alias Maximum.
#[test]
fn mqtt5_outbound_topic_aliases_save_the_topic_name() {
    let mut h = Harness::default();
    let props = Properties {
        topic_alias_maximum: Some(1),
        ..Properties::default()
    };
    let (s, _) = h.connect5(1, "s", true, props, None);
    h.subscribe5(s, 1, "#", SubscriptionOptions::new(Q0), None);
    h.recv_frames(s);
    let p = h.connect(2, "p", true, 0, None);
    for (topic, payload) in [
        ("sensors/long/name", b"1"),
        ("sensors/long/name", b"2"),
        ("other", b"3"),
    ] {
        h.send(p, &publish(topic, payload, Q0, 0));
    }
    let frames = h.recv_frames(s);
    let alias = |a| Properties {
        topic_alias: Some(a),
        ..Properties::default()
    };
    assert_eq!(
        decode5(&frames[0]),
        publish5("sensors/long/name", b"1", Q0, 0, alias(1))
    );
    assert_eq!(decode5(&frames[1]), publish5("", b"2", Q0, 0, alias(1)));
    assert_eq!(
        decode5(&frames[2]),
        publish5("other", b"3", Q0, 0, Properties::default())
    );
}

/// max_qos, retain_available and max_packet_size: told in CONNACK [MQTT-3.2.2-9]
/// [MQTT-3.2.2-13]; a subscription is granted at most max_qos; a PUBLISH above it is a
/// DISCONNECT 0x9B [MQTT-3.2.2-11], a retained one without retain support 0x9A
/// [MQTT-3.2.2-14].
#[test]
fn mqtt5_max_qos_retain_available_and_max_packet_size_options() {
    let mut h = Harness::new(|s| {
        s.listeners = vec![ListenerLimits {
            max_qos: Q1,
            ..ListenerLimits::default()
        }];
        s.retain_available = false;
        s.max_packet_size = 1000;
    });
    assert_eq!(h.broker.max_packet_size(), 1000);
    let (c, frames) = h.connect5(1, "c", true, Properties::default(), None);
    let connack = connack_of(&frames);
    assert_eq!(connack.properties.maximum_qos, Some(1));
    assert_eq!(connack.properties.retain_available, Some(0));
    assert_eq!(connack.properties.maximum_packet_size, Some(1000));
    h.subscribe5(c, 1, "t", SubscriptionOptions::new(Q2), None);
    match decode5(&h.recv_frames(c)[0]) {
        Packet::Suback(s) => assert_eq!(s.codes, [ReasonCode::granted(Q1)]),
        other => panic!("{other:?}"),
    }
    h.send5(
        c,
        &retained(publish5("t", b"r", Q0, 0, Properties::default())),
    );
    assert_eq!(h.closed(), [c]);
    let disconnect = |reason| {
        Packet::Disconnect(Disconnect {
            reason,
            properties: Props::default(),
        })
    };
    assert_eq!(
        decode5(&h.recv_frames(c)[0]),
        disconnect(ReasonCode::RETAIN_NOT_SUPPORTED)
    );
    let (c, _) = h.connect5(2, "c2", true, Properties::default(), None);
    h.send5(c, &publish5("t", b"q2", Q2, 1, Properties::default()));
    assert_eq!(h.closed(), [c]);
    assert_eq!(
        decode5(&h.recv_frames(c)[0]),
        disconnect(ReasonCode::QOS_NOT_SUPPORTED)
    );
}

/// A will above the listener's max_qos is refused with 0x9B [MQTT-3.2.2-12], and the
/// refusing CONNACK still tells the Maximum QoS, as Mosquitto's send__connack does for
/// every reason code; the success-only limits (Receive Maximum, Maximum Packet Size) are
/// left out of it.
#[test]
fn mqtt5_refusing_connack_tells_the_maximum_qos() {
    let mut h = Harness::new(|s| {
        s.listeners = vec![ListenerLimits {
            max_qos: Q1,
            ..ListenerLimits::default()
        }];
        s.max_packet_size = 1000;
    });
    let will = Some(Will {
        topic: "wills/c",
        payload: b"gone",
        qos: Q2,
        retain: false,
        properties: Props::default(),
    });
    let (_, frames) = h.connect5(1, "c", true, Properties::default(), will);
    let connack = connack_of(&frames);
    assert_eq!(connack.reason, ReasonCode::QOS_NOT_SUPPORTED);
    assert_eq!(connack.properties.maximum_qos, Some(1));
    assert_eq!(connack.properties.maximum_packet_size, None);
    assert_eq!(connack.properties.receive_maximum, None);
    // On a listener allowing QoS 2 the refusal carries no Maximum QoS [MQTT-3.2.2-9].
    let mut h = Harness::new(|s| s.allow_zero_length_clientid = false);
    let (_, frames) = h.connect5(1, "", true, Properties::default(), None);
    let connack = connack_of(&frames);
    // 0x80, as Mosquitto refuses an empty client id in MQTT 5.
    assert_eq!(connack.reason, ReasonCode::UNSPECIFIED_ERROR);
    assert_eq!(connack.properties.maximum_qos, None);
}

/// Stopping: MQTT 5 clients get DISCONNECT 0x8B (Server shutting down); 3.1.1 clients,
/// which have no such packet, get nothing.
#[test]
fn mqtt5_clients_are_told_when_the_server_shuts_down() {
    let mut h = Harness::default();
    let (c5, _) = h.connect5(1, "c5", true, Properties::default(), None);
    let c3 = h.connect(2, "c3", true, 0, None);
    h.broker.shutdown();
    assert_eq!(
        decode5(&h.recv_frames(c5)[0]),
        Packet::Disconnect(Disconnect {
            reason: ReasonCode::SERVER_SHUTTING_DOWN,
            properties: Props::default()
        })
    );
    h.recv_nothing(c3);
}

/// A client whose unread output grows past 16 x outbox_limit (here through retained
/// messages, which the limit does not shed) is disconnected; an MQTT 5 client is told
/// Quota Exceeded (0x97). Other clients are not affected.
#[test]
fn mqtt5_client_with_runaway_output_is_disconnected_with_quota_exceeded() {
    let mut h = Harness::new(|s| s.outbox_limit = 64);
    let p = h.connect(1, "p", true, 0, None);
    for i in 0..40 {
        h.send(p, &retained(publish(&format!("r/{i}"), &[b'v'; 40], Q0, 0)));
    }
    let (c, _) = h.connect5(2, "c", true, Properties::default(), None);
    h.subscribe5(c, 1, "r/#", SubscriptionOptions::new(Q0), None);
    // The loop learns of it when it collects the connections to write (poll_dirty).
    let frames = h.recv_frames(c);
    assert_eq!(h.closed(), [c]);
    let last = frames.last().expect("output before the close");
    assert_eq!(
        decode5(last),
        Packet::Disconnect(Disconnect {
            reason: ReasonCode::QUOTA_EXCEEDED,
            properties: Props::default()
        })
    );
    h.send(p, &Packet::Pingreq);
    h.recv(p, &[Packet::Pingresp]);
}

/// One message larger than 16 x outbox_limit reaches a client whose outbox was empty,
/// at QoS 0 and 1: the limit is judged before a packet is added, so a 50 MB message the
/// broker accepted is delivered (it disconnected the subscriber before, found with
/// mosquitto_sub receiving 50 MB over TLS).
#[test]
fn a_message_larger_than_the_hard_outbox_limit_is_delivered() {
    let mut h = Harness::new(|s| s.outbox_limit = 64);
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("t", Q1)]);
    let p = h.connect(2, "p", true, 0, None);
    let big = vec![b'x'; 64 * 16 * 4];
    h.send(p, &publish("t", &big, Q0, 0));
    h.recv(s, &[publish("t", &big, Q0, 0)]);
    h.send(p, &publish("t", &big, Q1, 1));
    h.recv(p, &[Packet::Puback(Ack::new(pid(1)))]);
    assert!(h.closed().is_empty(), "the subscriber stays connected");
    h.recv(s, &[publish("t", &big, Q1, 1)]);
}

/// QoS 1/2 messages to a client that does not read its output wait in its session queue
/// (bounded by max_queued_messages) instead of piling up in its outbox; they are sent, in
/// order, as the outbox drains, and the client is never disconnected for them.
#[test]
fn qos1_waits_in_the_session_queue_while_the_outbox_is_backlogged() {
    let mut h = Harness::new(|s| {
        s.outbox_limit = 64;
        s.max_inflight_messages = 100;
    });
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("t", Q1)]);
    let p = h.connect(2, "p", true, 0, None);
    let payload = [b'y'; 100];
    let mut expected = Vec::new();
    for i in 1..=40u16 {
        h.send(p, &publish("t", &payload, Q1, i));
        expected.push(publish("t", &payload, Q1, i));
    }
    // Without the queue, 40 x 107 bytes would be past 16 x 64 and the client cut off.
    assert_eq!(
        h.outbox(s).len(),
        107,
        "only the first message is in the outbox"
    );
    assert!(h.closed().is_empty());
    h.recv(s, &expected);
    assert!(h.closed().is_empty());
}

/// Operation sequences (quinn's streams fuzz target, in miniature): seeded random clients
/// of all three versions connect, subscribe, publish at every QoS, acknowledge, drop,
/// send garbage and time out, on a virtual clock. The core must never panic, and its
/// connection count must match the connections the harness holds open.
#[test]
fn random_operation_sequences_keep_the_core_consistent() {
    for seed in 1..=12u64 {
        random_operation_sequence(seed, random_sequence_harness(), |_, _| {});
    }
}
