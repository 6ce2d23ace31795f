//! Core tests: More edges.

use super::*;

/// [MQTT-3.1.2-1]: an unknown protocol name gets no CONNACK; the connection is closed.
#[test]
fn unknown_protocol_name_is_closed_without_connack() {
    let mut h = Harness::default();
    let mut bytes = encode(&connect("c", true, 60, None));
    bytes[4..8].copy_from_slice(b"MQTX");
    let c = h.open(1);
    h.send_raw(c, &bytes);
    assert_eq!(h.closed(), [c]);
    h.recv_nothing(c);
}

/// A client may not send packets only a server sends (here CONNACK); the connection is
/// closed as a protocol violation ([MQTT-4.8.0-1]).
#[test]
fn a_server_only_packet_from_a_client_closes_the_connection() {
    let mut h = Harness::default();
    let c = h.connect(1, "c", true, 0, None);
    h.send(c, &connack(false, ReasonCode::SUCCESS));
    assert_eq!(h.closed(), [c]);
    h.recv_nothing(c);
}

/// [MQTT-3.14.4-1]: after DISCONNECT the server processes nothing more from the
/// connection, even if bytes arrive before the socket is closed.
#[test]
fn packets_after_disconnect_are_ignored() {
    let mut h = Harness::default();
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("t", Q0)]);
    let c = h.connect(2, "c", true, 0, None);
    h.send(c, &Packet::Disconnect(Disconnect::default()));
    h.send(c, &publish("t", b"late", Q0, 0));
    h.send(c, &Packet::Pingreq);
    assert_eq!(h.closed(), [c]);
    h.recv_nothing(c);
    h.recv_nothing(s);
}

/// [MQTT-3.1.4-2] with clean session 0 on both sides: the new connection resumes the
/// session (session present 1) and gets the old connection's unacknowledged messages
/// again with DUP set.
#[test]
fn takeover_of_a_persistent_session_resends_its_inflight_messages() {
    let mut h = Harness::default();
    let old = h.connect(1, "c", false, 0, None);
    h.subscribe(old, 1, &[("t", Q1)]);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("t", b"m", Q1, 1));
    h.recv(old, &[publish("t", b"m", Q1, 1)]);

    let new = h.open(3);
    h.send(new, &connect("c", false, 0, None));
    assert_eq!(h.closed(), [old]);
    h.recv_nothing(old);
    h.recv(
        new,
        &[
            connack(true, ReasonCode::SUCCESS),
            dup(publish("t", b"m", Q1, 1)),
        ],
    );
    h.send(p, &publish("t", b"n", Q1, 2));
    h.recv(new, &[publish("t", b"n", Q1, 2)]);
    assert_eq!(h.broker.clients_connected(), 2);
}

/// A message waiting for a free inflight slot when the client goes away is delivered
/// after the resent inflight messages on reconnect, in order [MQTT-4.6.0-6].
#[test]
fn messages_queued_behind_a_full_window_follow_the_resent_ones() {
    let mut h = Harness::new(|s| s.max_inflight_messages = 1);
    let s = h.connect(1, "s", false, 0, None);
    h.subscribe(s, 1, &[("t", Q1)]);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("t", b"1", Q1, 1));
    h.send(p, &publish("t", b"2", Q1, 2));
    h.recv(s, &[publish("t", b"1", Q1, 1)]);
    h.drop_socket(s);
    h.send(p, &publish("t", b"3", Q1, 3));

    let s = h.open(1);
    h.send(s, &connect("s", false, 0, None));
    h.recv(
        s,
        &[
            connack(true, ReasonCode::SUCCESS),
            dup(publish("t", b"1", Q1, 1)),
        ],
    );
    h.send(s, &Packet::Puback(Ack::new(pid(1))));
    h.recv(s, &[publish("t", b"2", Q1, 2)]);
    h.send(s, &Packet::Puback(Ack::new(pid(2))));
    h.recv(s, &[publish("t", b"3", Q1, 3)]);
}

/// message_size_limit: a larger payload is dropped and counted, but its QoS flow is
/// completed (Mosquitto's behaviour), so the client does not resend it forever.
#[test]
fn payload_over_message_size_limit_is_dropped_but_acknowledged() {
    let mut h = Harness::new(|s| s.message_size_limit = 4);
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("t", Q1)]);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("t", b"12345", Q1, 1));
    h.recv(p, &[Packet::Puback(Ack::new(pid(1)))]);
    h.recv_nothing(s);
    assert_eq!(h.broker.dropped_count(), 1);
    h.send(p, &publish("t", b"1234", Q1, 2));
    h.recv(p, &[Packet::Puback(Ack::new(pid(2)))]);
    h.recv(s, &[publish("t", b"1234", Q1, 1)]);
}

/// QoS 0 messages to a client whose outbox is over outbox_limit are dropped and counted
/// (the socket is not keeping up); QoS 1 messages are kept.
#[test]
fn qos0_is_dropped_when_the_outbox_is_over_its_limit() {
    let mut h = Harness::new(|s| s.outbox_limit = 10);
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("t", Q1)]);
    let p = h.connect(2, "pub", true, 0, None);
    let payload = [b'x'; 20];
    h.send(p, &publish("t", &payload, Q0, 0));
    h.send(p, &publish("t", &payload, Q0, 0));
    h.send(p, &publish("t", &payload, Q1, 1));
    assert_eq!(h.broker.dropped_count(), 1);
    h.recv(
        s,
        &[publish("t", &payload, Q0, 0), publish("t", &payload, Q1, 1)],
    );
    h.send(p, &publish("t", &payload, Q0, 0));
    h.recv(s, &[publish("t", &payload, Q0, 0)]);
}

/// A connection id the loop reuses after `handle_closed` starts fresh: the old
/// connection's keep alive does not close the new one.
#[test]
fn a_reused_connection_id_does_not_inherit_the_old_keep_alive() {
    let mut h = Harness::default();
    let c = h.connect(1, "a", true, 10, None);
    h.advance(Duration::from_secs(5));
    h.drop_socket(c);
    let c = h.connect(1, "b", true, 100, None);
    h.advance(Duration::from_secs(100));
    assert!(h.closed().is_empty());
    h.send(c, &Packet::Pingreq);
    h.recv(c, &[Packet::Pingresp]);
}

/// [MQTT-3.1.3-6]: a client id the server assigns is unique, whatever the clock says
/// between the two connections.
#[test]
fn assigned_client_ids_are_unique() {
    for gap in 0..8 {
        let mut h = Harness::default();
        h.connect(1, "", true, 0, None);
        h.advance(Duration::from_nanos(gap));
        h.connect(2, "", true, 0, None);
        assert!(h.closed().is_empty(), "gap {gap} ns: assigned id reused");
        assert_eq!(h.broker.clients_connected(), 2);
    }
}

/// MQTT 3.1 clients get 3.1 packets: the CONNACK and a QoS 1 exchange are the same bytes.
/// A message to the publisher's own subscription is routed before the PUBACK is written
/// (either order is allowed; Mosquitto does the same).
#[test]
fn mqtt_3_1_client_can_publish_and_subscribe() {
    let mut h = Harness::default();
    let c = h.open(1);
    h.send(
        c,
        &Packet::Connect(Box::new(Connect {
            version: ProtocolVersion::V31,
            clean_session: true,
            keep_alive: 60,
            client_id: "old",
            will: None,
            username: None,
            password: None,
            properties: Props::default(),
        })),
    );
    h.recv(c, &[connack(false, ReasonCode::SUCCESS)]);
    h.subscribe(c, 1, &[("t", Q1)]);
    h.send(c, &publish("t", b"self", Q1, 9));
    h.recv(
        c,
        &[
            publish("t", b"self", Q1, 1),
            Packet::Puback(Ack::new(pid(9))),
        ],
    );
}

/// The will goes out at the lower of its QoS and the subscription's [MQTT-3.8.4-6]; a
/// QoS 2 will to a QoS 2 subscriber starts a QoS 2 exchange.
#[test]
fn will_is_delivered_at_the_granted_qos() {
    let mut h = Harness::default();
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("w", Q2)]);
    let c = h.connect(2, "c", true, 0, will("w", b"bye", Q2, false));
    h.drop_socket(c);
    h.recv(s, &[publish("w", b"bye", Q2, 1)]);
    h.send(s, &Packet::Pubrec(Ack::new(pid(1))));
    h.recv(s, &[Packet::Pubrel(Ack::new(pid(1)))]);
}

/// A refused CONNECT creates nothing: its will is never published and a connected
/// client with the same id is not taken over (the refusal comes before [MQTT-3.1.4-2]).
#[test]
fn a_refused_connect_neither_takes_over_nor_publishes_its_will() {
    let mut h = Harness::new(|s| s.max_keepalive = 60);
    let watcher = h.connect(1, "watcher", true, 0, None);
    h.subscribe(watcher, 1, &[("w", Q0)]);
    let c = h.connect(2, "c", true, 60, None);
    let refused = h.open(3);
    h.send(refused, &connect("c", true, 61, will("w", b"x", Q0, false)));
    assert_eq!(h.closed(), [refused]);
    h.recv(
        refused,
        &[connack(false, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID)],
    );
    h.recv_nothing(watcher);
    h.send(c, &Packet::Pingreq);
    h.recv(c, &[Packet::Pingresp]);
    assert_eq!(h.broker.clients_connected(), 2);
}

/// [MQTT-3.8.4-5]: one SUBACK return code per filter, in order, with the SUBSCRIBE's
/// packet id [MQTT-3.8.4-2]; the granted QoS is the requested one.
#[test]
fn suback_has_one_code_per_filter_in_order() {
    let mut h = Harness::default();
    let c = h.connect(1, "c", true, 0, None);
    h.send(
        c,
        &subscribe(0xabcd, &[("a", Q2), ("b/#", Q0), ("+/c", Q1)]),
    );
    h.recv(
        c,
        &[Packet::Suback(Suback {
            packet_id: pid(0xabcd),
            codes: vec![
                ReasonCode::granted(Q2),
                ReasonCode::granted(Q0),
                ReasonCode::granted(Q1),
            ],
            properties: Default::default(),
        })],
    );
    // 0x90 = SUBACK, remaining length 5, id 0xabcd, codes 2, 0, 1.
    h.send(
        c,
        &subscribe(0xabcd, &[("a", Q2), ("b/#", Q0), ("+/c", Q1)]),
    );
    assert_eq!(
        h.recv_frames(c),
        [vec![0x90, 0x05, 0xab, 0xcd, 0x02, 0x00, 0x01]]
    );
}

/// persistent_client_expiration: a disconnected persistent session is discarded after
/// the configured time (and not before); a reconnect in time keeps it.
#[test]
fn persistent_session_expires_after_persistent_client_expiration() {
    let mut h = Harness::new(|s| s.persistent_client_expiration = Some(Duration::from_secs(60)));
    let sub = h.connect(1, "sub", false, 0, None);
    h.subscribe(sub, 1, &[("t", Q1)]);
    h.disconnect(sub);
    h.advance(Duration::from_secs(59));
    // Back in time: the session is resumed and its expiry cancelled.
    let sub = h.open(1);
    h.send(sub, &connect("sub", false, 0, None));
    h.recv(sub, &[connack(true, ReasonCode::SUCCESS)]);
    h.advance(Duration::from_secs(120));
    h.disconnect(sub);
    assert_eq!(h.broker.subscription_count(), 1);
    h.advance(Duration::from_secs(61));
    assert_eq!(
        h.broker.subscription_count(),
        0,
        "the expired session's subscription is gone"
    );
    let sub = h.open(1);
    h.send(sub, &connect("sub", false, 0, None));
    h.recv(sub, &[connack(false, ReasonCode::SUCCESS)]);
}

/// Shared subscriptions ($share/{name}/{filter}, MQTT 5.0 section 4.8.2, accepted from
/// 3.1.1 clients as Mosquitto does): each message goes to one member of the group, round
/// robin; ordinary subscribers still get every message; no retained message on subscribe.
#[test]
fn shared_subscription_delivers_each_message_to_one_member() {
    let mut h = Harness::default();
    let p = h.connect(1, "pub", true, 0, None);
    h.send(p, &retained(publish("jobs/1", b"old", Q0, 0)));
    let a = h.connect(2, "a", true, 0, None);
    let b = h.connect(3, "b", true, 0, None);
    let watcher = h.connect(4, "w", true, 0, None);
    h.subscribe(a, 1, &[("$share/workers/jobs/+", Q0)]);
    h.subscribe(b, 1, &[("$share/workers/jobs/+", Q0)]);
    h.recv_nothing(a);
    h.recv_nothing(b);
    h.send(watcher, &subscribe(1, &[("jobs/#", Q0)]));
    h.recv(
        watcher,
        &[
            Packet::Suback(Suback {
                packet_id: pid(1),
                codes: vec![ReasonCode::granted(Q0)],
                properties: Default::default(),
            }),
            retained(publish("jobs/1", b"old", Q0, 0)),
        ],
    );
    for payload in [b"j1", b"j2", b"j3", b"j4"] {
        h.send(p, &publish("jobs/1", payload, Q0, 0));
    }
    h.recv(
        a,
        &[
            publish("jobs/1", b"j1", Q0, 0),
            publish("jobs/1", b"j3", Q0, 0),
        ],
    );
    h.recv(
        b,
        &[
            publish("jobs/1", b"j2", Q0, 0),
            publish("jobs/1", b"j4", Q0, 0),
        ],
    );
    assert_eq!(h.recv_frames(watcher).len(), 4);
    assert_eq!(h.broker.subscription_count(), 3);
    // A member that leaves no longer gets messages; the group lives on.
    h.send(a, &unsubscribe(2, &["$share/workers/jobs/+"]));
    h.recv_frames(a);
    h.send(p, &publish("jobs/1", b"j5", Q0, 0));
    h.send(p, &publish("jobs/1", b"j6", Q0, 0));
    h.recv_nothing(a);
    h.recv(
        b,
        &[
            publish("jobs/1", b"j5", Q0, 0),
            publish("jobs/1", b"j6", Q0, 0),
        ],
    );
}

/// Regression (found by culex_bench's retained scenario): retained messages sent for a
/// new subscription are not cut off by outbox_limit; all of them arrive.
#[test]
fn all_retained_messages_reach_a_new_subscriber_beyond_the_outbox_limit() {
    let mut h = Harness::new(|s| s.outbox_limit = 64);
    let p = h.connect(1, "pub", true, 0, None);
    let topics: Vec<String> = (0..50).map(|i| format!("r/{i}")).collect();
    for topic in &topics {
        h.send(p, &retained(publish(topic, &[b'v'; 32], Q0, 0)));
    }
    assert_eq!(h.broker.retained_count(), 50);
    let s = h.connect(2, "s", true, 0, None);
    h.send(s, &subscribe(1, &[("r/#", Q0)]));
    let frames = h.recv_frames(s);
    assert_eq!(frames.len(), 51, "SUBACK and every retained message");
    assert_eq!(h.broker.dropped_count(), 0);
}
