use super::*;
use crate::config::BridgeTopic;

fn line(
    pattern: Option<&str>,
    direction: Direction,
    local: Option<&str>,
    remote: Option<&str>,
) -> TopicMap {
    TopicMap::new(&BridgeTopic {
        pattern: pattern.map(String::from),
        direction,
        qos: 1,
        local_prefix: local.map(String::from),
        remote_prefix: remote.map(String::from),
    })
}

#[test]
fn prefixes_are_swapped_both_ways() {
    let maps = [line(
        Some("sensors/#"),
        Direction::Both,
        Some("gw/"),
        Some("site7/"),
    )];
    assert_eq!(maps[0].local_filter, "gw/sensors/#");
    assert_eq!(maps[0].remote_filter, "site7/sensors/#");
    assert_eq!(map_out(&maps, "gw/sensors/a/t"), "site7/sensors/a/t");
    assert_eq!(map_in(&maps, "site7/sensors/b"), "gw/sensors/b");
}

#[test]
fn empty_pattern_makes_the_prefix_the_topic() {
    // Mosquitto: `topic "" out 0 local/topic remote/topic` maps one topic to another.
    let maps = [line(
        None,
        Direction::Out,
        Some("local/topic"),
        Some("remote/topic"),
    )];
    assert_eq!(maps[0].local_filter, "local/topic");
    assert_eq!(maps[0].remote_filter, "remote/topic");
    assert_eq!(map_out(&maps, "local/topic"), "remote/topic");
    // An `out` line does not map incoming messages.
    assert_eq!(map_in(&maps, "remote/topic"), "remote/topic");
}

#[test]
fn only_one_side_prefixed() {
    let maps = [
        line(Some("a/#"), Direction::In, None, Some("cloud/")),
        line(Some("b/#"), Direction::Out, Some("here/"), None),
    ];
    assert_eq!(map_in(&maps, "cloud/a/1"), "a/1");
    assert_eq!(map_out(&maps, "here/b/2"), "b/2");
    // The first matching line wins; a topic no line matches is unchanged.
    assert_eq!(map_out(&maps, "c/3"), "c/3");
}

mod link {
    use super::*;
    use crate::broker::Settings;

    fn bridge_config() -> config::Bridge {
        let mut b = config::Bridge::new("cloud");
        b.addresses.push(config::BridgeAddress {
            host: "127.0.0.1".into(),
            port: 1883,
        });
        b.remote_clientid = Some("gw1".into());
        b.topics.push(BridgeTopic {
            pattern: Some("s/#".into()),
            direction: Direction::Out,
            qos: 1,
            local_prefix: Some("gw/".into()),
            remote_prefix: Some("site/".into()),
        });
        b
    }

    fn frames(mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Ok(Some(len)) = frame::check(bytes, usize::MAX) {
            out.push(bytes[..len].to_vec());
            bytes = &bytes[len..];
        }
        assert!(bytes.is_empty(), "a partial frame in the output");
        out
    }

    /// A broker and a 3.1.1 link that is up (its CONNECT checked), with its first
    /// output consumed.
    fn link_up(now: Instant) -> (Broker, Link) {
        let mut broker = Broker::new(Settings::default(), now);
        let mut link = Link::new(&bridge_config(), ConnId(0), Duration::ZERO, now);
        link.start(&mut broker, now);
        // The session exists, offline, before the remote was ever reached.
        assert_eq!(broker.session_backlog("local.gw1"), Some((0, 0)));
        assert!(link.poll_connect(now).is_some());
        link.handle_connected(now);
        let out = frames(link.remote_output());
        // CONNECT 3.1.1 with the bridge bit: level 0x84 (try_private).
        assert_eq!(&out[0][2..9], &[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x84]);
        link.consume_remote(usize::MAX);
        link.handle_remote_data(&mut broker, &[0x20, 0x02, 0x00, 0x00], now)
            .unwrap();
        assert_eq!(link.state(), State::Up);
        link.pump_local(&mut broker, now);
        link.consume_remote(usize::MAX);
        (broker, link)
    }

    /// A local 3.1.1 client, connected as "c".
    fn local_client(broker: &mut Broker, now: Instant) -> ConnId {
        let client = ConnId(1);
        broker.handle_open(client, Peer::Unix(Rc::from("test")), 0, now);
        let mut bytes = Vec::new();
        Packet::Connect(Box::new(Connect::minimal(ProtocolVersion::V311, "c")))
            .encode(ProtocolVersion::V311, &mut bytes);
        broker.handle_frame(client, &bytes, now);
        client
    }

    /// `client` publishes `topic` at QoS 1 with packet id `id`.
    fn publish_qos1(broker: &mut Broker, client: ConnId, id: u16, topic: &str, now: Instant) {
        let mut bytes = Vec::new();
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic,
            packet_id: PacketId::new(id),
            payload: b"v",
            properties: Props::default(),
        })
        .encode(ProtocolVersion::V311, &mut bytes);
        broker.handle_frame(client, &bytes, now);
    }

    /// A local client's QoS 1 PUBLISH reaches the remote mapped, with the packet id of
    /// the bridge's local session; the remote's PUBACK for that id is what frees it.
    #[test]
    fn a_local_message_is_relayed_and_acknowledged_by_the_remote_only() {
        let now = Instant::now();
        let (mut broker, mut link) = link_up(now);

        // A client publishes gw/s/t at QoS 1.
        let client = local_client(&mut broker, now);
        publish_qos1(&mut broker, client, 9, "gw/s/t", now);
        link.pump_local(&mut broker, now);
        let out = frames(link.remote_output());
        assert_eq!(out.len(), 1);
        let Ok(Packet::Publish(p)) = Packet::decode(&out[0], ProtocolVersion::V311) else {
            panic!("not a PUBLISH: {:02x?}", out[0]);
        };
        assert_eq!(
            (p.topic, p.qos, p.payload),
            ("site/s/t", QoS::AtLeastOnce, &b"v"[..])
        );
        let id = p.packet_id.expect("QoS 1 has a packet id");
        assert_eq!(broker.session_backlog("local.gw1"), Some((0, 1)));
        link.consume_remote(usize::MAX);

        // The remote acknowledges: the local session lets go of it.
        let mut ack = Vec::new();
        Packet::Puback(Ack::new(id)).encode(ProtocolVersion::V311, &mut ack);
        link.handle_remote_data(&mut broker, &ack, now).unwrap();
        assert_eq!(broker.session_backlog("local.gw1"), Some((0, 0)));

        // The link drops: the session stays, offline.
        link.handle_lost(&mut broker, "test", now);
        assert!(matches!(link.state(), State::Waiting(_)));
        assert_eq!(broker.session_backlog("local.gw1"), Some((0, 0)));
    }

    /// The local session's packet ids, which go to the remote unchanged, stay at or below
    /// BRIDGE_MAX_PACKET_ID where they wrap: the ids above are the notifications'.
    #[test]
    fn local_packet_ids_wrap_below_the_notification_ids() {
        let now = Instant::now();
        let (mut broker, mut link) = link_up(now);
        let client = local_client(&mut broker, now);
        broker.set_last_packet_id("local.gw1", BRIDGE_MAX_PACKET_ID - 8);
        let mut seen_max = 0;
        let mut wrapped = false;
        for n in 1..=16 {
            publish_qos1(&mut broker, client, n, "gw/s/t", now);
            link.pump_local(&mut broker, now);
            let out = frames(link.remote_output());
            let Ok(Packet::Publish(p)) = Packet::decode(&out[0], ProtocolVersion::V311) else {
                panic!("not a PUBLISH: {:02x?}", out[0]);
            };
            let id = p.packet_id.expect("QoS 1 has a packet id");
            assert!(
                id.get() <= BRIDGE_MAX_PACKET_ID,
                "message {n} has id {id:?}"
            );
            wrapped |= id.get() < seen_max;
            seen_max = seen_max.max(id.get());
            link.consume_remote(usize::MAX);
            let mut ack = Vec::new();
            Packet::Puback(Ack::new(id)).encode(ProtocolVersion::V311, &mut ack);
            link.handle_remote_data(&mut broker, &ack, now).unwrap();
            link.pump_local(&mut broker, now);
            link.consume_remote(usize::MAX);
        }
        assert_eq!(seen_max, BRIDGE_MAX_PACKET_ID);
        assert!(wrapped, "the ids went round");
    }

    /// MQTT 5: the remote's Server Keep Alive replaces keepalive_interval
    /// [MQTT-3.2.2-22], and with Retain Available 0 no retain flag is sent to it
    /// [MQTT-3.2.2-14].
    #[test]
    fn an_mqtt5_remote_sets_the_keep_alive_and_forbids_retain() {
        let now = Instant::now();
        let mut broker = Broker::new(Settings::default(), now);
        let mut cfg = bridge_config();
        cfg.bridge_protocol_version = config::BridgeProtocol::Mqtt50;
        let mut link = Link::new(&cfg, ConnId(0), Duration::ZERO, now);
        link.start(&mut broker, now);
        link.poll_connect(now);
        link.handle_connected(now);
        link.consume_remote(usize::MAX);
        let mut connack = Vec::new();
        Packet::Connack(Connack {
            session_present: false,
            reason: ReasonCode::SUCCESS,
            properties: Properties {
                server_keep_alive: Some(7),
                retain_available: Some(0),
                ..Properties::default()
            }
            .into(),
        })
        .encode(ProtocolVersion::V5, &mut connack);
        link.handle_remote_data(&mut broker, &connack, now).unwrap();
        assert_eq!(link.state(), State::Up);
        let frames_out = frames(link.remote_output());
        let state = frames_out
            .iter()
            .find_map(|f| match Packet::decode(f, ProtocolVersion::V5) {
                Ok(Packet::Publish(p)) => Some((p.topic.to_string(), p.retain)),
                _ => None,
            })
            .expect("the state notification");
        assert_eq!(
            state,
            ("$SYS/broker/connection/gw1/state".to_string(), false)
        );
        link.consume_remote(usize::MAX);
        link.pump_local(&mut broker, now);
        link.consume_remote(usize::MAX);
        assert_eq!(link.next_deadline(), Some(now + Duration::from_secs(7)));
        broker.publish_retained("gw/s/r", b"kept", QoS::AtLeastOnce, now);
        link.pump_local(&mut broker, now);
        let out = frames(link.remote_output());
        let Ok(Packet::Publish(p)) = Packet::decode(&out[0], ProtocolVersion::V5) else {
            panic!("not a PUBLISH: {:02x?}", out[0]);
        };
        assert_eq!((p.topic, p.retain), ("site/s/r", false));
    }

    /// restart_timeout BASE CAP: every delay lies between base and cap.
    #[test]
    fn backoff_stays_between_base_and_cap() {
        let now = Instant::now();
        let mut cfg = bridge_config();
        cfg.restart_timeout = RestartTimeout::Backoff {
            base: 2,
            cap: 40,
            stable: None,
        };
        let mut link = Link::new(&cfg, ConnId(0), Duration::ZERO, now);
        let delays: Vec<u32> = (0..200).map(|_| link.next_delay()).collect();
        assert!(delays.iter().all(|d| (2..=40).contains(d)), "{delays:?}");
        assert!(delays.contains(&40), "the cap is reached: {delays:?}");
        cfg.restart_timeout = RestartTimeout::Constant(7);
        let mut link = Link::new(&cfg, ConnId(0), Duration::ZERO, now);
        assert!((0..10).all(|_| link.next_delay() == 7));
    }
}
