//! Core tests: $SYS: Mosquitto 2.0 and 2.1 names.

use super::*;

/// The value last published on a $SYS topic.
#[track_caller]
fn sys(h: &Harness, topic: &str) -> String {
    h.broker
        .sys_value(topic)
        .unwrap_or_else(|| panic!("{topic} was never published"))
        .to_string()
}

/// Every counter after a scripted exchange: the per-packet counters of Mosquitto 2.1
/// (`mqtt/{type}/received|sent`), the totals of 2.0 and the payload byte counts.
#[test]
fn sys_counts_every_packet_of_a_scripted_exchange() {
    let mut h = Harness::new(|s| s.sys_interval = Duration::from_secs(1));
    let p = h.connect(1, "p", true, 0, None);
    let s = h.connect(2, "s", true, 0, None);
    h.subscribe(s, 1, &[("t", Q1)]);
    h.send(p, &publish("t", b"abc", Q0, 0));
    h.send(p, &publish("t", b"de", Q1, 1));
    h.send(p, &publish("t", b"f", Q2, 2));
    h.recv(
        p,
        &[
            Packet::Puback(Ack::new(pid(1))),
            Packet::Pubrec(Ack::new(pid(2))),
        ],
    );
    h.send(p, &Packet::Pubrel(Ack::new(pid(2))));
    h.recv(p, &[Packet::Pubcomp(Ack::new(pid(2)))]);
    h.recv(
        s,
        &[
            publish("t", b"abc", Q0, 0),
            publish("t", b"de", Q1, 1),
            publish("t", b"f", Q1, 2),
        ],
    );
    h.send(s, &Packet::Puback(Ack::new(pid(1))));
    h.send(s, &Packet::Puback(Ack::new(pid(2))));
    h.send(p, &Packet::Pingreq);
    h.recv(p, &[Packet::Pingresp]);
    h.send(s, &unsubscribe(2, &["t"]));
    h.recv(s, &[Packet::Unsuback(Unsuback::new(pid(2)))]);
    h.disconnect(p);
    h.advance(Duration::from_secs(1));

    let expected = [
        ("mqtt/connect/received", "2"),
        ("mqtt/connack/sent", "2"),
        ("mqtt/publish/received", "3"),
        ("mqtt/publish/sent", "3"),
        ("mqtt/publish/dropped", "0"),
        ("mqtt/puback/received", "2"),
        ("mqtt/puback/sent", "1"),
        ("mqtt/pubrec/received", "0"),
        ("mqtt/pubrec/sent", "1"),
        ("mqtt/pubrel/received", "1"),
        ("mqtt/pubrel/sent", "0"),
        ("mqtt/pubcomp/received", "0"),
        ("mqtt/pubcomp/sent", "1"),
        ("mqtt/subscribe/received", "1"),
        ("mqtt/suback/sent", "1"),
        ("mqtt/unsubscribe/received", "1"),
        ("mqtt/unsuback/sent", "1"),
        ("mqtt/pingreq/received", "1"),
        ("mqtt/pingresp/sent", "1"),
        ("mqtt/disconnect/received", "1"),
        ("mqtt/disconnect/sent", "0"),
        ("mqtt/auth/received", "0"),
        ("mqtt/auth/sent", "0"),
        ("publish/messages/received", "3"),
        ("publish/messages/sent", "3"),
        ("publish/bytes/received", "6"),
        ("publish/bytes/sent", "6"),
        // 2 CONNECT, SUBSCRIBE, 3 PUBLISH, 2 PUBACK, PUBREL, PINGREQ, UNSUBSCRIBE,
        // DISCONNECT.
        ("messages/received", "12"),
        // 2 CONNACK, SUBACK, 3 PUBLISH, PUBACK, PUBREC, PUBCOMP, PINGRESP, UNSUBACK.
        ("messages/sent", "11"),
        ("connections/socket/count", "2"),
        ("packet/out/count", "0"),
        ("packet/out/bytes", "0"),
        ("clients/connected", "1"),
        ("clients/active", "1"),
        ("clients/disconnected", "0"),
        ("clients/inactive", "0"),
        ("subscriptions/count", "0"),
        ("shared_subscriptions/count", "0"),
    ];
    for (name, value) in expected {
        assert_eq!(sys(&h, &format!("$SYS/broker/{name}")), value, "{name}");
    }
    let bytes_received: usize = [
        encode(&connect("p", true, 0, None)),
        encode(&connect("s", true, 0, None)),
        encode(&subscribe(1, &[("t", Q1)])),
        encode(&publish("t", b"abc", Q0, 0)),
        encode(&publish("t", b"de", Q1, 1)),
        encode(&publish("t", b"f", Q2, 2)),
        encode(&Packet::Puback(Ack::new(pid(1)))),
        encode(&Packet::Puback(Ack::new(pid(2)))),
        encode(&Packet::Pubrel(Ack::new(pid(2)))),
        encode(&Packet::Pingreq),
        encode(&unsubscribe(2, &["t"])),
        encode(&Packet::Disconnect(Disconnect::default())),
    ]
    .iter()
    .map(Vec::len)
    .sum();
    assert_eq!(
        sys(&h, "$SYS/broker/bytes/received"),
        bytes_received.to_string()
    );
    // Shared subscriptions are counted apart, and in the total as before.
    h.subscribe(s, 3, &[("$share/g/t", Q0), ("u", Q0)]);
    h.advance(Duration::from_secs(1));
    assert_eq!(sys(&h, "$SYS/broker/shared_subscriptions/count"), "1");
    assert_eq!(sys(&h, "$SYS/broker/subscriptions/count"), "2");
    // A socket that never sends CONNECT is counted as a socket, not a connection.
    h.open(3);
    h.advance(Duration::from_secs(1));
    assert_eq!(sys(&h, "$SYS/broker/connections/socket/count"), "3");
    assert_eq!(sys(&h, "$SYS/broker/mqtt/connect/received"), "2");
}

/// Messages and payload bytes held by sessions: the store minus the retained messages.
fn held_by_sessions(h: &Harness) -> (u64, u64) {
    let (mut count, mut bytes) = (0, 0);
    for filter in ["#", "$SYS/#"] {
        h.broker.retained.for_each_match(filter, |_, m| {
            count += 1;
            bytes += m.payload().len() as u64;
        });
    }
    let stats = &h.broker.stats;
    (stats.stored_messages - count, stats.stored_bytes - bytes)
}

/// `store/messages/count|bytes` (and 2.0's `messages/stored`) count the messages held in
/// offline queues, inflight windows and the retained store, with their payload bytes,
/// and go down again as they are delivered, acknowledged, replaced or discarded.
#[test]
fn sys_store_counts_queued_inflight_and_retained_messages() {
    let mut h = Harness::new(|s| {
        s.sys_interval = Duration::from_secs(1);
        s.max_inflight_messages = 2;
    });
    // What the first $SYS publication stored (its own retained messages).
    let (base_count, base_bytes) = (h.broker.stats.stored_messages, h.broker.stats.stored_bytes);
    let sub = h.connect(1, "sub", false, 0, None);
    h.subscribe(sub, 1, &[("q", Q1)]);
    h.disconnect(sub);
    let p = h.connect(2, "p", true, 0, None);
    for (i, payload) in [&[1u8; 10][..], &[2; 20], &[3; 30]].iter().enumerate() {
        h.send(p, &publish("q", payload, Q1, i as u16 + 1));
    }
    h.send(p, &retained(publish("r", b"12345", Q0, 0)));
    h.advance(Duration::from_secs(1));
    assert_eq!(
        sys(&h, "$SYS/broker/store/messages/count"),
        (base_count + 4).to_string()
    );
    assert_eq!(
        sys(&h, "$SYS/broker/messages/stored"),
        (base_count + 4).to_string()
    );
    assert_eq!(
        sys(&h, "$SYS/broker/store/messages/bytes"),
        (base_bytes + 65).to_string()
    );
    assert_eq!(held_by_sessions(&h), (3, 60));

    // Back online: two in flight, one still queued; all three are held.
    let sub = h.open(1);
    h.send(sub, &connect("sub", false, 0, None));
    let frames = h.recv_frames(sub);
    assert_eq!(frames.len(), 3, "CONNACK and two PUBLISH");
    assert_eq!(held_by_sessions(&h), (3, 60));
    // The first acknowledged: the third moves into the window.
    h.send(sub, &Packet::Puback(Ack::new(pid(1))));
    assert_eq!(h.recv_frames(sub).len(), 1);
    assert_eq!(held_by_sessions(&h), (2, 50));
    h.send(sub, &Packet::Puback(Ack::new(pid(2))));
    assert_eq!(held_by_sessions(&h), (1, 30));

    // A retained message replaced and cleared.
    let before = (h.broker.stats.stored_messages, h.broker.stats.stored_bytes);
    h.send(p, &retained(publish("r", b"1234567", Q0, 0)));
    assert_eq!(
        (h.broker.stats.stored_messages, h.broker.stats.stored_bytes),
        (before.0, before.1 + 2)
    );
    h.send(p, &retained(publish("r", b"", Q0, 0)));
    assert_eq!(
        (h.broker.stats.stored_messages, h.broker.stats.stored_bytes),
        (before.0 - 1, before.1 - 5)
    );

    // A clean session discards the session and what it held.
    h.drop_socket(sub);
    h.connect(3, "sub", true, 0, None);
    assert_eq!(held_by_sessions(&h), (0, 0));
}

/// `packet/out/count|bytes`: packets and bytes written into outboxes that the sockets
/// have not taken yet, also across partial writes.
#[test]
fn sys_packet_out_counts_what_the_sockets_have_not_taken() {
    let mut h = Harness::default();
    let c = h.connect(1, "c", true, 0, None);
    assert_eq!(
        (h.broker.stats.out_packets, h.broker.stats.out_bytes),
        (0, 0)
    );
    h.send(c, &Packet::Pingreq);
    h.send(c, &subscribe(1, &[("a", Q0)]));
    h.send(c, &Packet::Pingreq);
    // PINGRESP (2 bytes), SUBACK (5 bytes), PINGRESP.
    assert_eq!(h.broker.output(c).len(), 9);
    assert_eq!(
        (h.broker.stats.out_packets, h.broker.stats.out_bytes),
        (3, 9)
    );
    h.broker.consume_output(c, 1);
    assert_eq!(
        (h.broker.stats.out_packets, h.broker.stats.out_bytes),
        (3, 8)
    );
    h.broker.consume_output(c, 1);
    assert_eq!(
        (h.broker.stats.out_packets, h.broker.stats.out_bytes),
        (2, 7)
    );
    h.broker.consume_output(c, 6);
    assert_eq!(
        (h.broker.stats.out_packets, h.broker.stats.out_bytes),
        (1, 1)
    );
    h.broker.consume_output(c, 1);
    assert_eq!(
        (h.broker.stats.out_packets, h.broker.stats.out_bytes),
        (0, 0)
    );
    // What a closed connection never wrote is no longer counted.
    h.send(c, &Packet::Pingreq);
    assert_eq!(
        (h.broker.stats.out_packets, h.broker.stats.out_bytes),
        (1, 2)
    );
    h.drop_socket(c);
    assert_eq!(
        (h.broker.stats.out_packets, h.broker.stats.out_bytes),
        (0, 0)
    );
}

/// Load averages follow Mosquitto's formula: at a steady rate `r` per minute read every
/// second, `r * (1 - exp(-t / T))` after `t` seconds for the 1, 5 and 15 minute periods,
/// then an exponential decay once the traffic stops.
#[test]
fn sys_load_averages_follow_a_steady_rate() {
    let mut h = Harness::new(|s| s.sys_interval = Duration::from_secs(1));
    for name in ["publish/received", "connections", "sockets", "bytes/sent"] {
        for period in ["1min", "5min", "15min"] {
            assert_eq!(
                sys(&h, &format!("$SYS/broker/load/{name}/{period}")),
                "0.00"
            );
        }
    }
    let p = h.connect(1, "p", true, 0, None);
    // One PUBLISH a second for a minute: 60 a minute.
    for _ in 0..60 {
        h.send(p, &publish("t", b"x", Q0, 0));
        h.advance(Duration::from_secs(1));
    }
    let load =
        |h: &Harness, period: &str| sys(h, &format!("$SYS/broker/load/publish/received/{period}"));
    let steady = |t: f64, period: f64| 60.0 * (1.0 - (-t / period).exp());
    assert_eq!(load(&h, "1min"), "37.93");
    assert_eq!(load(&h, "1min"), format!("{:.2}", steady(60.0, 60.0)));
    assert_eq!(load(&h, "5min"), format!("{:.2}", steady(60.0, 300.0)));
    assert_eq!(load(&h, "15min"), format!("{:.2}", steady(60.0, 900.0)));
    // One CONNECT and one socket in the first second: 60 a minute for one second.
    let once = 60.0 * (1.0 - (-1.0f64 / 60.0).exp()) * (-59.0f64 / 60.0).exp();
    assert_eq!(
        sys(&h, "$SYS/broker/load/connections/1min"),
        format!("{once:.2}")
    );
    assert_eq!(
        sys(&h, "$SYS/broker/load/sockets/1min"),
        format!("{once:.2}")
    );
    // Silence for a minute: the 1 minute average falls by a factor e.
    h.advance(Duration::from_secs(60));
    let decayed = steady(60.0, 60.0) * (-1.0f64).exp();
    assert_eq!(load(&h, "1min"), format!("{decayed:.2}"));
    assert_eq!(load(&h, "1min"), "13.95");
}

/// mount_point: the clients of listener 1 ("m/") publish, subscribe (shared subscriptions
/// too) and receive retained messages under the prefix, and see topics without it; a
/// filter the prefix makes invalid is refused (0x80).
#[test]
fn mount_point_prefixes_topics_and_filters_of_its_listener() {
    let mut h = Harness::new(|s| {
        s.listeners = vec![
            ListenerLimits::default(),
            ListenerLimits {
                mount_point: Some("m/".into()),
                ..ListenerLimits::default()
            },
        ];
    });
    let outside = h.connect(1, "outside", true, 0, None);
    h.subscribe(outside, 1, &[("#", Q0)]);
    h.send(outside, &retained(publish("m/r", b"kept", Q0, 0)));
    h.recv(outside, &[publish("m/r", b"kept", Q0, 0)]);

    let inside = ConnId(2);
    h.broker
        .handle_open(inside, SocketAddr::from(([192, 0, 2, 9], 1)), 1, h.now);
    h.send(inside, &connect("inside", true, 0, None));
    h.recv(inside, &[connack(false, ReasonCode::SUCCESS)]);
    h.send(inside, &subscribe(1, &[("r", Q0), ("$share/g/t", Q0)]));
    h.recv(
        inside,
        &[
            Packet::Suback(Suback {
                packet_id: pid(1),
                codes: vec![ReasonCode::granted(Q0), ReasonCode::granted(Q0)],
                properties: Default::default(),
            }),
            retained(publish("r", b"kept", Q0, 0)),
        ],
    );
    h.send(outside, &publish("m/t", b"shared", Q0, 0));
    h.recv(outside, &[publish("m/t", b"shared", Q0, 0)]);
    h.recv(inside, &[publish("t", b"shared", Q0, 0)]);
    h.send(inside, &publish("up", b"x", Q0, 0));
    h.recv(outside, &[publish("m/up", b"x", Q0, 0)]);

    let mut h = Harness::new(|s| {
        s.listeners = vec![ListenerLimits {
            mount_point: Some("m".into()),
            ..ListenerLimits::default()
        }];
    });
    let c = h.connect(1, "c", true, 0, None);
    h.send(c, &subscribe(1, &[("#", Q0)]));
    h.recv(
        c,
        &[Packet::Suback(Suback {
            packet_id: pid(1),
            codes: vec![ReasonCode::UNSPECIFIED_ERROR],
            properties: Default::default(),
        })],
    );
}
