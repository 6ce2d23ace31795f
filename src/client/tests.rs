//! The session on a virtual clock, bytes compared exactly.

use super::*;
use crate::protocol::{frame, Properties};

const V311: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn t0() -> Instant {
    Instant::now()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Feeds raw server bytes (one or more whole frames) to the session.
fn feed(session: &mut Session, bytes: &[u8], now: Instant) -> Result<(), ClientError> {
    let mut rest = bytes;
    while !rest.is_empty() {
        let len = frame::check(rest, usize::MAX).unwrap().unwrap();
        let packet = Packet::decode(&rest[..len], session.version()).unwrap();
        session.handle_packet(&packet, now)?;
        rest = &rest[len..];
    }
    Ok(())
}

fn events(session: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

fn connected(version: ProtocolVersion, now: Instant) -> Session {
    let mut options = Options::new(version, "c");
    options.keep_alive = 10;
    connected_with(options, now)
}

fn connected_with(options: Options, now: Instant) -> Session {
    let v5 = options.version == V5;
    let mut s = Session::new(options);
    s.connect(now);
    s.take_outgoing();
    let connack: &[u8] = if v5 {
        &[0x20, 0x03, 0x00, 0x00, 0x00]
    } else {
        &[0x20, 0x02, 0x00, 0x00]
    };
    feed(&mut s, connack, now).unwrap();
    assert_eq!(s.state(), State::Connected);
    events(&mut s);
    s
}

/// CONNECT 3.1.1: clean session, keep alive 10, client id "c", will QoS 1 "w" -> "x",
/// username "u", password "p".
#[test]
fn connect_packet_v311_is_exact() {
    let mut options = Options::new(V311, "c");
    options.keep_alive = 10;
    options.username = Some("u".into());
    options.password = Some(b"p".to_vec());
    options.will = Some(WillMessage {
        topic: "w".into(),
        payload: b"x".to_vec(),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: OwnedProperties::default(),
    });
    let s = Session::new(options);
    assert_eq!(
        s.connect_packet(),
        [
            0x10, 0x19, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0xee, 0x00, 0x0a, 0x00, 0x01,
            b'c', 0x00, 0x01, b'w', 0x00, 0x01, b'x', 0x00, 0x01, b'u', 0x00, 0x01, b'p'
        ]
    );
}

/// CONNECT 5.0 with Session Expiry Interval 60 and Topic Alias Maximum 10.
#[test]
fn connect_packet_v5_carries_properties() {
    let mut options = Options::new(V5, "c");
    options.clean_start = false;
    options.properties.session_expiry_interval = Some(60);
    options.properties.topic_alias_maximum = Some(10);
    let s = Session::new(options);
    assert_eq!(
        s.connect_packet(),
        [
            0x10, 0x16, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x00, 0x00, 0x3c, 0x08, 0x11,
            0x00, 0x00, 0x00, 0x3c, 0x22, 0x00, 0x0a, 0x00, 0x01, b'c'
        ]
    );
}

#[test]
fn refused_connack_is_reported_and_disconnects() {
    let now = t0();
    let mut s = Session::new(Options::new(V311, "c"));
    s.connect(now);
    feed(&mut s, &[0x20, 0x02, 0x00, 0x05], now).unwrap();
    assert_eq!(s.state(), State::Disconnected);
    assert_eq!(
        events(&mut s),
        [Event::Connected {
            session_present: false,
            reason: ReasonCode::NOT_AUTHORIZED,
            properties: OwnedProperties::default(),
        }]
    );
}

#[test]
fn a_packet_before_connack_is_a_protocol_error() {
    let now = t0();
    let mut s = Session::new(Options::new(V5, "c"));
    s.connect(now);
    s.take_outgoing();
    assert_eq!(
        feed(&mut s, &[0xd0, 0x00], now),
        Err(ClientError::Protocol("a packet before CONNACK"))
    );
    // MQTT 5: DISCONNECT 0x82 Protocol Error.
    assert_eq!(s.take_outgoing(), [0xe0, 0x01, 0x82]);
}

#[test]
fn qos1_publish_completes_on_puback() {
    let now = t0();
    let mut s = connected(V311, now);
    let token = s
        .publish("t", b"m", QoS::AtLeastOnce, false, &Default::default(), now)
        .unwrap();
    assert_eq!(
        s.take_outgoing(),
        [0x32, 0x06, 0x00, 0x01, b't', 0x00, 0x01, b'm']
    );
    assert_eq!(events(&mut s), []);
    feed(&mut s, &[0x40, 0x02, 0x00, 0x01], now).unwrap();
    assert_eq!(
        events(&mut s),
        [Event::Published {
            token,
            packet_id: PacketId::new(1),
            reason: ReasonCode::SUCCESS
        }]
    );
    assert_eq!(s.unacknowledged(), 0);
}

#[test]
fn qos2_publish_goes_through_pubrec_pubrel_pubcomp() {
    let now = t0();
    let mut s = connected(V311, now);
    let token = s
        .publish("t", b"m", QoS::ExactlyOnce, true, &Default::default(), now)
        .unwrap();
    assert_eq!(
        s.take_outgoing(),
        [0x35, 0x06, 0x00, 0x01, b't', 0x00, 0x01, b'm']
    );
    feed(&mut s, &[0x50, 0x02, 0x00, 0x01], now).unwrap();
    assert_eq!(s.take_outgoing(), [0x62, 0x02, 0x00, 0x01]);
    assert_eq!(events(&mut s), []);
    feed(&mut s, &[0x70, 0x02, 0x00, 0x01], now).unwrap();
    assert_eq!(
        events(&mut s),
        [Event::Published {
            token,
            packet_id: PacketId::new(1),
            reason: ReasonCode::SUCCESS
        }]
    );
}

#[test]
fn qos0_publish_is_done_when_queued() {
    let now = t0();
    let mut s = connected(V311, now);
    let token = s
        .publish("t", b"", QoS::AtMostOnce, false, &Default::default(), now)
        .unwrap();
    assert_eq!(s.take_outgoing(), [0x30, 0x03, 0x00, 0x01, b't']);
    assert_eq!(
        events(&mut s),
        [Event::Published {
            token,
            packet_id: None,
            reason: ReasonCode::SUCCESS
        }]
    );
}

/// [MQTT-4.3.3-9]: a resent QoS 2 PUBLISH is acknowledged again but delivered once, on
/// PUBREL (as libmosquitto does).
#[test]
fn inbound_qos2_is_delivered_once_on_pubrel() {
    let now = t0();
    let mut s = connected(V311, now);
    let publish = [0x34, 0x06, 0x00, 0x01, b't', 0x00, 0x07, b'x'];
    feed(&mut s, &publish, now).unwrap();
    let mut dup = publish;
    dup[0] |= 0x08;
    feed(&mut s, &dup, now).unwrap();
    assert_eq!(
        s.take_outgoing(),
        [0x50, 0x02, 0x00, 0x07, 0x50, 0x02, 0x00, 0x07]
    );
    assert_eq!(events(&mut s), []);
    feed(&mut s, &[0x62, 0x02, 0x00, 0x07], now).unwrap();
    assert_eq!(s.take_outgoing(), [0x70, 0x02, 0x00, 0x07]);
    let got = events(&mut s);
    assert_eq!(got.len(), 1);
    let Event::Message(m) = &got[0] else {
        panic!("{got:?}")
    };
    assert_eq!((m.topic.as_str(), &m.payload[..]), ("t", &b"x"[..]));
    // A PUBREL for nothing is still answered, and delivers nothing.
    feed(&mut s, &[0x62, 0x02, 0x00, 0x07], now).unwrap();
    assert_eq!(s.take_outgoing(), [0x70, 0x02, 0x00, 0x07]);
    assert_eq!(events(&mut s), []);
    // After PUBREL the id is free: the same id is a new message.
    feed(&mut s, &publish, now).unwrap();
    feed(&mut s, &[0x62, 0x02, 0x00, 0x07], now).unwrap();
    assert_eq!(events(&mut s).len(), 1);
}

/// The wire order of a PUBLISH's properties is kept for the output formats.
#[test]
fn handle_frame_records_the_property_order() {
    let now = t0();
    let mut s = connected(V5, now);
    // PUBLISH "t": User Property ("k","v"), Content Type "c", Message Expiry 5.
    let frame = [
        0x30, 0x15, 0x00, 0x01, b't', 0x10, 0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', 0x03, 0x00,
        0x01, b'c', 0x02, 0x00, 0x00, 0x00, 0x05, b'p',
    ];
    s.handle_frame(&frame, now).unwrap();
    let got = events(&mut s);
    let [Event::Message(m)] = &got[..] else {
        panic!("{got:?}")
    };
    assert_eq!(m.property_order, [0x26, 0x03, 0x02]);
    assert_eq!(m.properties.content_type.as_deref(), Some("c"));
    assert_eq!(m.payload, b"p");
    // A frame that does not decode: DISCONNECT 0x81 Malformed Packet.
    assert_eq!(
        s.handle_frame(&[0x30, 0x02, 0x00, 0x05], now),
        Err(ClientError::Malformed(DecodeError::UnexpectedEnd))
    );
    assert_eq!(s.take_outgoing(), [0xe0, 0x01, 0x81]);
}

#[test]
fn inbound_qos1_is_acknowledged() {
    let now = t0();
    let mut s = connected(V311, now);
    feed(
        &mut s,
        &[0x33, 0x06, 0x00, 0x01, b't', 0x12, 0x34, b'x'],
        now,
    )
    .unwrap();
    assert_eq!(s.take_outgoing(), [0x40, 0x02, 0x12, 0x34]);
    let got = events(&mut s);
    assert!(
        matches!(&got[..], [Event::Message(m)] if m.retain && m.qos == QoS::AtLeastOnce),
        "{got:?}"
    );
}

/// [MQTT-2.3.1-2]: an identifier in use by an unacknowledged PUBLISH or SUBSCRIBE is
/// skipped when the counter wraps round.
#[test]
fn packet_ids_in_use_are_not_reused() {
    let now = t0();
    let mut s = connected(V311, now);
    s.publish("t", b"", QoS::AtLeastOnce, false, &Default::default(), now)
        .unwrap(); // id 1, never acknowledged
    let sub = s
        .subscribe(
            &[("a", SubscriptionOptions::new(QoS::AtMostOnce))],
            &Default::default(),
            now,
        )
        .unwrap();
    assert_eq!(sub.get(), 2);
    s.next_packet_id = u16::MAX;
    s.take_outgoing();
    let a = s
        .unsubscribe(&["a"], &Default::default(), now)
        .unwrap()
        .get();
    let b = s
        .unsubscribe(&["b"], &Default::default(), now)
        .unwrap()
        .get();
    assert_eq!((a, b), (u16::MAX, 3));
}

#[test]
fn inflight_window_is_the_smaller_of_ours_and_receive_maximum() {
    let now = t0();
    let mut s = Session::new(Options::new(V5, "c"));
    s.connect(now);
    // CONNACK with Receive Maximum 2.
    feed(
        &mut s,
        &[0x20, 0x06, 0x00, 0x00, 0x03, 0x21, 0x00, 0x02],
        now,
    )
    .unwrap();
    s.take_outgoing();
    for _ in 0..3 {
        s.publish("t", b"", QoS::AtLeastOnce, false, &Default::default(), now)
            .unwrap();
    }
    // Two PUBLISH (ids 1 and 2), the third waits.
    let sent = s.take_outgoing();
    assert_eq!(
        sent,
        [
            0x32, 0x06, 0x00, 0x01, b't', 0x00, 0x01, 0x00, 0x32, 0x06, 0x00, 0x01, b't', 0x00,
            0x02, 0x00
        ]
    );
    feed(&mut s, &[0x40, 0x02, 0x00, 0x01], now).unwrap();
    assert_eq!(
        s.take_outgoing(),
        [0x32, 0x06, 0x00, 0x01, b't', 0x00, 0x03, 0x00]
    );
}

#[test]
fn keep_alive_sends_pingreq_then_times_out() {
    let now = t0();
    let mut s = connected(V311, now);
    assert_eq!(s.next_deadline(), Some(now + secs(10)));
    s.handle_timeout(now + secs(9)).unwrap();
    assert!(!s.has_outgoing());
    s.handle_timeout(now + secs(10)).unwrap();
    assert_eq!(s.take_outgoing(), [0xc0, 0x00]);
    assert_eq!(s.next_deadline(), Some(now + secs(20)));
    // PINGRESP clears it; the next ping is a keep alive after the last one.
    feed(&mut s, &[0xd0, 0x00], now + secs(11)).unwrap();
    assert_eq!(s.next_deadline(), Some(now + secs(20)));
    s.handle_timeout(now + secs(20)).unwrap();
    assert_eq!(s.take_outgoing(), [0xc0, 0x00]);
    assert_eq!(
        s.handle_timeout(now + secs(30)),
        Err(ClientError::KeepAliveTimeout)
    );
}

/// No PINGREQ before CONNACK: the keep alive bounds the wait for it instead.
#[test]
fn connack_that_never_comes_times_out() {
    let now = t0();
    let mut options = Options::new(V311, "c");
    options.keep_alive = 5;
    let mut s = Session::new(options);
    s.connect(now);
    s.take_outgoing();
    assert_eq!(s.next_deadline(), Some(now + secs(5)));
    assert_eq!(
        s.handle_timeout(now + secs(5)),
        Err(ClientError::ConnackTimeout)
    );
    assert!(!s.has_outgoing());
}

#[test]
fn server_keep_alive_replaces_ours() {
    let now = t0();
    let mut s = Session::new(Options::new(V5, "c"));
    s.connect(now);
    feed(
        &mut s,
        &[0x20, 0x06, 0x00, 0x00, 0x03, 0x13, 0x00, 0x05],
        now,
    )
    .unwrap();
    assert_eq!(s.next_deadline(), Some(now + secs(5)));
}

/// [MQTT-3.3.2.3.4]: the first PUBLISH sets an alias, the next ones use it.
#[test]
fn inbound_topic_aliases_are_resolved() {
    let now = t0();
    let mut options = Options::new(V5, "c");
    options.properties.topic_alias_maximum = Some(5);
    let mut s = connected_with(options, now);
    // "a/b" with alias 3, then "" with alias 3.
    feed(
        &mut s,
        &[
            0x30, 0x0a, 0x00, 0x03, b'a', b'/', b'b', 0x03, 0x23, 0x00, 0x03, b'1',
        ],
        now,
    )
    .unwrap();
    feed(
        &mut s,
        &[0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x03, b'2'],
        now,
    )
    .unwrap();
    let topics: Vec<(String, Vec<u8>)> = events(&mut s)
        .into_iter()
        .map(|e| match e {
            Event::Message(m) => (m.topic, m.payload),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        topics,
        [("a/b".into(), b"1".to_vec()), ("a/b".into(), b"2".to_vec())]
    );
}

/// [MQTT-3.3.2-9]: an alias above our Topic Alias Maximum closes with 0x94.
#[test]
fn topic_alias_above_maximum_is_refused() {
    let now = t0();
    let mut s = connected(V5, now);
    assert_eq!(
        feed(
            &mut s,
            &[0x30, 0x08, 0x00, 0x01, b'a', 0x03, 0x23, 0x00, 0x01, b'1'],
            now
        ),
        Err(ClientError::TopicAliasInvalid(1))
    );
    assert_eq!(s.take_outgoing(), [0xe0, 0x01, 0x94]);
}

#[test]
fn unacknowledged_messages_are_resent_with_dup_on_a_present_session() {
    let now = t0();
    let mut options = Options::new(V311, "c");
    options.clean_start = false;
    let mut s = connected_with(options, now);
    s.publish("t", b"1", QoS::AtLeastOnce, false, &Default::default(), now)
        .unwrap();
    s.publish("t", b"2", QoS::ExactlyOnce, false, &Default::default(), now)
        .unwrap();
    feed(&mut s, &[0x50, 0x02, 0x00, 0x02], now).unwrap();
    s.handle_connection_lost();
    s.connect(now);
    s.take_outgoing();
    feed(&mut s, &[0x20, 0x02, 0x01, 0x00], now).unwrap();
    assert_eq!(
        s.take_outgoing(),
        [
            0x3a, 0x06, 0x00, 0x01, b't', 0x00, 0x01, b'1', // PUBLISH DUP id 1
            0x62, 0x02, 0x00, 0x02, // PUBREL id 2
        ]
    );
}

#[test]
fn suback_codes_are_reported() {
    let now = t0();
    let mut s = connected(V311, now);
    let id = s
        .subscribe(
            &[
                ("a", SubscriptionOptions::new(QoS::ExactlyOnce)),
                ("b", SubscriptionOptions::new(QoS::AtMostOnce)),
            ],
            &Default::default(),
            now,
        )
        .unwrap();
    assert_eq!(
        s.take_outgoing(),
        [0x82, 0x0a, 0x00, 0x01, 0x00, 0x01, b'a', 0x02, 0x00, 0x01, b'b', 0x00]
    );
    feed(&mut s, &[0x90, 0x04, 0x00, 0x01, 0x02, 0x80], now).unwrap();
    assert_eq!(
        events(&mut s),
        [Event::Subscribed {
            packet_id: id,
            codes: vec![ReasonCode::GRANTED_QOS_2, ReasonCode::UNSPECIFIED_ERROR]
        }]
    );
    // A SUBACK nobody asked for.
    assert!(feed(&mut s, &[0x90, 0x03, 0x00, 0x09, 0x00], now).is_err());
}

#[test]
fn server_disconnect_is_reported() {
    let now = t0();
    let mut s = connected(V5, now);
    feed(&mut s, &[0xe0, 0x01, 0x8b], now).unwrap();
    assert_eq!(s.state(), State::Disconnected);
    assert_eq!(
        events(&mut s),
        [Event::Disconnected {
            reason: ReasonCode::SERVER_SHUTTING_DOWN,
            properties: OwnedProperties::default()
        }]
    );
}

#[test]
fn v5_publish_carries_its_properties() {
    let now = t0();
    let mut s = connected(V5, now);
    let properties = OwnedProperties {
        message_expiry_interval: Some(30),
        ..OwnedProperties::default()
    };
    s.publish("t", b"m", QoS::AtMostOnce, false, &properties, now)
        .unwrap();
    assert_eq!(
        s.take_outgoing(),
        [0x30, 0x0a, 0x00, 0x01, b't', 0x05, 0x02, 0x00, 0x00, 0x00, 0x1e, b'm']
    );
    let _ = Properties::default();
}
