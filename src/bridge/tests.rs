//! Tests of the bridge: topic mapping, and a [`Link`] driven against a [`Broker`] on a
//! virtual clock with fixed [`HostFacts`], its remote side played with encoded bytes.

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

    /// Fixed host facts: the tests read no file and no clock either.
    fn host() -> HostFacts {
        HostFacts {
            hostname: "gw-host".into(),
            seed: 0x5eed,
            unix_time: 1_700_000_000,
        }
    }

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
        let mut link = Link::new(&bridge_config(), ConnId(0), Duration::ZERO, &host(), now);
        link.start(&mut broker, now);
        // The session exists, offline, before the remote was ever reached.
        assert_eq!(broker.session_backlog("local.gw1"), Some((0, 0)));
        assert!(link.poll_connect(now).is_some());
        link.handle_connected(&broker, now);
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

    /// The password of the CONNECT in `out`.
    fn connect_password(out: &[u8]) -> String {
        let frame = &frames(out)[0];
        let Ok(Packet::Connect(c)) = Packet::decode(frame, ProtocolVersion::V311) else {
            panic!("not a CONNECT: {frame:02x?}");
        };
        String::from_utf8(c.password.expect("a password").to_vec()).unwrap()
    }

    /// bridge_azure_sas_key: the CONNECT's password is a SAS token for
    /// HOST/devices/DEVICE expiring bridge_azure_sas_ttl seconds after the connection
    /// (the wall clock handed in); four fifths into it the link ends cleanly and is made
    /// again at once, with a fresh token, and again after that.
    #[test]
    fn a_sas_token_is_signed_per_connection_and_renewed_before_it_expires() {
        let key = "Y3VsZXggdGVzdCBrZXk6IDMyIGJ5dGVzIGxvbmchISE=";
        let mut config = bridge_config();
        config.azure_sas_key = Some(key.into());
        config.azure_sas_ttl = 10;
        config.remote_username = Some("h/gw1/?api-version=2021-04-12".into());
        let start = Instant::now();
        let mut broker = Broker::new(Settings::default(), start);
        let mut link = Link::new(&config, ConnId(0), Duration::ZERO, &host(), start);
        link.start(&mut broker, start);
        let mut now = start;
        for round in 0..3u64 {
            assert!(link.poll_connect(now).is_some(), "round {round}");
            link.handle_connected(&broker, now);
            let expiry = 1_700_000_000 + 8 * round + 10;
            assert_eq!(
                connect_password(link.remote_output()),
                sas::token("127.0.0.1/devices/gw1", key, expiry).unwrap()
            );
            link.consume_remote(usize::MAX);
            link.handle_remote_data(&mut broker, &[0x20, 0x02, 0x00, 0x00], now)
                .unwrap();
            assert_eq!(link.state(), State::Up);
            link.pump_local(&mut broker, now);
            link.consume_remote(usize::MAX);
            let renew = now + Duration::from_secs(8);
            assert_eq!(link.next_deadline(), Some(renew));
            assert!(link
                .handle_timeout(&mut broker, renew - Duration::from_millis(1))
                .is_ok());
            let Err(why) = link.handle_timeout(&mut broker, renew) else {
                panic!("no renewal in round {round}");
            };
            // A clean end: the "0" notification and DISCONNECT.
            let out = frames(link.remote_output());
            assert_eq!(out.last().map(|f| f[0]), Some(0xe0));
            link.consume_remote(usize::MAX);
            link.handle_lost(&mut broker, &why, renew);
            assert_eq!(link.state(), State::Waiting(renew));
            now = renew;
        }
    }

    /// A link started on a session that already holds messages (culex restarted during
    /// an outage) leaves them queued: not put in flight on the local connection that is
    /// opened only so that the session exists, where they would escape the outbox's age
    /// limit and replay pace, and be resent first.
    #[test]
    fn starting_over_a_waiting_outbox_leaves_it_queued() {
        let now = Instant::now();
        let mut broker = Broker::new(Settings::default(), now);
        let limits = crate::broker::QueueLimits {
            max_age: Some(Duration::from_secs(60)),
            ..crate::broker::QueueLimits::default()
        };
        broker.set_queue_limits("local.gw1", Some(limits));
        let mut link = Link::new(&bridge_config(), ConnId(0), Duration::ZERO, &host(), now);
        link.start(&mut broker, now);
        let client = local_client(&mut broker, now);
        publish_qos1(&mut broker, client, 1, "gw/s/a", now);
        publish_qos1(&mut broker, client, 2, "gw/s/b", now);
        assert_eq!(broker.session_backlog("local.gw1"), Some((2, 0)));
        // The bridge is made again (a restart restored the session, or a reload).
        let mut link = Link::new(&bridge_config(), ConnId(0), Duration::ZERO, &host(), now);
        link.start(&mut broker, now);
        assert_eq!(broker.session_backlog("local.gw1"), Some((2, 0)));
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
        let mut link = Link::new(&cfg, ConnId(0), Duration::ZERO, &host(), now);
        link.start(&mut broker, now);
        link.poll_connect(now);
        link.handle_connected(&broker, now);
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
        let mut link = Link::new(&cfg, ConnId(0), Duration::ZERO, &host(), now);
        let delays: Vec<u32> = (0..200).map(|_| link.next_delay()).collect();
        assert!(delays.iter().all(|d| (2..=40).contains(d)), "{delays:?}");
        assert!(delays.contains(&40), "the cap is reached: {delays:?}");
        cfg.restart_timeout = RestartTimeout::Constant(7);
        let mut link = Link::new(&cfg, ConnId(0), Duration::ZERO, &host(), now);
        assert!((0..10).all(|_| link.next_delay() == 7));
    }

    /// Without `remote_clientid`, the remote client id is `<hostname>.<connection name>`
    /// (Mosquitto's default), from the host name `net` hands in; the local client id and
    /// the state topic follow from it.
    #[test]
    fn default_client_ids_use_the_host_name_handed_in() {
        let mut cfg = bridge_config();
        cfg.remote_clientid = None;
        let link = Link::new(&cfg, ConnId(0), Duration::ZERO, &host(), Instant::now());
        assert_eq!(link.remote_clientid, "gw-host.cloud");
        assert_eq!(link.local_clientid, "local.gw-host.cloud");
        assert_eq!(
            link.notification_topic(),
            "$SYS/broker/connection/gw-host.cloud/state"
        );
    }

    /// The backoff's jitter comes only from the seed handed in (and the bridge's slot):
    /// the same seed gives the same delays, another seed other delays.
    #[test]
    fn backoff_jitter_follows_the_seed_handed_in() {
        let now = Instant::now();
        let mut cfg = bridge_config();
        cfg.restart_timeout = RestartTimeout::Backoff {
            base: 1,
            cap: 3_600,
            stable: None,
        };
        let delays = |seed: u64| {
            let host = HostFacts { seed, ..host() };
            let mut link = Link::new(&cfg, ConnId(3), Duration::ZERO, &host, now);
            (0..20).map(|_| link.next_delay()).collect::<Vec<u32>>()
        };
        assert_eq!(delays(7), delays(7));
        assert_ne!(delays(7), delays(8));
    }

    /// The link up with `cfg` against a remote that says CONNACK Success (in the version
    /// of `cfg`): returns what the bridge sent after the CONNACK, decoded.
    fn connack_and_output(
        broker: &mut Broker,
        link: &mut Link,
        version: ProtocolVersion,
        now: Instant,
    ) -> Vec<Vec<u8>> {
        assert!(link.poll_connect(now).is_some());
        link.handle_connected(broker, now);
        link.consume_remote(usize::MAX);
        let mut connack = Vec::new();
        Packet::Connack(Connack {
            session_present: false,
            reason: ReasonCode::SUCCESS,
            properties: Props::default(),
        })
        .encode(version, &mut connack);
        link.handle_remote_data(broker, &connack, now).unwrap();
        assert_eq!(link.state(), State::Up);
        link.pump_local(broker, now);
        let out = frames(link.remote_output());
        link.consume_remote(usize::MAX);
        out
    }

    /// What a SUBSCRIBE or UNSUBSCRIBE frame says: (packet type, packet id, filters).
    fn sub_or_unsub(frame: &[u8]) -> (&'static str, u16, Vec<String>) {
        match Packet::decode(frame, ProtocolVersion::V311) {
            Ok(Packet::Subscribe(s)) => (
                "SUBSCRIBE",
                s.packet_id.get(),
                s.filters.iter().map(|(f, _)| f.to_string()).collect(),
            ),
            Ok(Packet::Unsubscribe(u)) => (
                "UNSUBSCRIBE",
                u.packet_id.get(),
                u.filters.iter().map(|f| f.to_string()).collect(),
            ),
            other => panic!("not a SUBSCRIBE/UNSUBSCRIBE: {other:?}"),
        }
    }

    /// As Mosquitto (bridge__on_connect, send__subscribe): one SUBSCRIBE per `in`/`both`
    /// line and one UNSUBSCRIBE per `out` line, in the order of the lines, each with the
    /// next packet id of the bridge's one counter, which its relayed messages use too: no
    /// two packets in flight share an id [MQTT-2.2.1-3]. On the next connection the
    /// counter goes on past the message still in flight (Mosquitto's
    /// 06-bridge-br2b-disconnect-qos1: SUBSCRIBE 1, PUBLISH 2, SUBSCRIBE 3, PUBLISH 2 DUP).
    #[test]
    fn one_subscribe_per_topic_line_with_ids_from_the_local_sessions_counter() {
        let now = Instant::now();
        let mut broker = Broker::new(Settings::default(), now);
        let mut cfg = bridge_config();
        cfg.notifications = false;
        for (pattern, direction) in [("in/#", Direction::In), ("both/#", Direction::Both)] {
            cfg.topics.push(BridgeTopic {
                pattern: Some(pattern.into()),
                direction,
                qos: 1,
                local_prefix: None,
                remote_prefix: None,
            });
        }
        let mut link = Link::new(&cfg, ConnId(0), Duration::ZERO, &host(), now);
        link.start(&mut broker, now);
        let out = connack_and_output(&mut broker, &mut link, ProtocolVersion::V311, now);
        let got: Vec<_> = out.iter().map(|f| sub_or_unsub(f)).collect();
        assert_eq!(
            got,
            [
                ("UNSUBSCRIBE", 1, vec!["site/s/#".to_string()]),
                ("SUBSCRIBE", 2, vec!["in/#".to_string()]),
                ("SUBSCRIBE", 3, vec!["both/#".to_string()]),
            ]
        );
        // A local message takes the next id, and stays in flight.
        let client = local_client(&mut broker, now);
        publish_qos1(&mut broker, client, 9, "gw/s/t", now);
        link.pump_local(&mut broker, now);
        let out = frames(link.remote_output());
        let Ok(Packet::Publish(p)) = Packet::decode(&out[0], ProtocolVersion::V311) else {
            panic!("not a PUBLISH: {:02x?}", out[0]);
        };
        assert_eq!(p.packet_id.map(PacketId::get), Some(4));
        link.consume_remote(usize::MAX);

        // The link drops and comes back: the ids go on; the message is resent as it was.
        link.handle_lost(&mut broker, "test", now);
        let later = now + Duration::from_secs(60);
        let out = connack_and_output(&mut broker, &mut link, ProtocolVersion::V311, later);
        let ids: Vec<u16> = out[..3].iter().map(|f| sub_or_unsub(f).1).collect();
        assert_eq!(ids, [5, 6, 7]);
        let Ok(Packet::Publish(p)) = Packet::decode(&out[3], ProtocolVersion::V311) else {
            panic!("not a PUBLISH: {:02x?}", out[3]);
        };
        assert_eq!((p.packet_id.map(PacketId::get), p.dup), (Some(4), true));
        // SUBACKs are matched by id; nothing reaches the local session.
        let mut suback = Vec::new();
        Packet::Suback(crate::protocol::Suback {
            packet_id: packet_id(6),
            codes: vec![ReasonCode(0x80)],
            properties: Props::default(),
        })
        .encode(ProtocolVersion::V311, &mut suback);
        link.handle_remote_data(&mut broker, &suback, later)
            .unwrap();
        assert_eq!(link.state(), State::Up);
    }

    /// A clean local session is made only once the remote answered, after the SUBSCRIBEs
    /// took their ids: its messages go on from those ids (no PUBLISH 1 beside SUBSCRIBE
    /// 1 [MQTT-2.2.1-3]), and the next connection goes on from the ended session's.
    #[test]
    fn a_clean_local_session_goes_on_from_the_bridges_ids() {
        let now = Instant::now();
        let mut broker = Broker::new(Settings::default(), now);
        let mut cfg = bridge_config();
        cfg.notifications = false;
        cfg.local_cleansession = Some(true);
        let mut link = Link::new(&cfg, ConnId(0), Duration::ZERO, &host(), now);
        link.start(&mut broker, now);
        assert_eq!(broker.session_backlog("local.gw1"), None);
        let out = connack_and_output(&mut broker, &mut link, ProtocolVersion::V311, now);
        assert_eq!(sub_or_unsub(&out[0]).1, 1);
        let client = local_client(&mut broker, now);
        publish_qos1(&mut broker, client, 9, "gw/s/t", now);
        link.pump_local(&mut broker, now);
        let out = frames(link.remote_output());
        let Ok(Packet::Publish(p)) = Packet::decode(&out[0], ProtocolVersion::V311) else {
            panic!("not a PUBLISH: {:02x?}", out[0]);
        };
        assert_eq!(p.packet_id.map(PacketId::get), Some(2));
        link.consume_remote(usize::MAX);
        link.handle_lost(&mut broker, "test", now);
        assert_eq!(broker.session_backlog("local.gw1"), None, "clean: gone");
        let later = now + Duration::from_secs(60);
        let out = connack_and_output(&mut broker, &mut link, ProtocolVersion::V311, later);
        assert_eq!(sub_or_unsub(&out[0]).1, 3);
    }

    /// An MQTT 5 bridge's CONNECT carries its client id and a Receive Maximum:
    /// max_inflight_messages (20 by default) as Mosquitto's, or bridge_receive_maximum.
    #[test]
    fn an_mqtt5_connect_announces_a_receive_maximum() {
        let now = Instant::now();
        let connect_of = |cfg: &config::Bridge, settings: Settings| {
            let mut broker = Broker::new(settings, now);
            let mut link = Link::new(cfg, ConnId(0), Duration::ZERO, &host(), now);
            link.start(&mut broker, now);
            link.poll_connect(now);
            link.handle_connected(&broker, now);
            let out = frames(link.remote_output());
            let Ok(Packet::Connect(c)) = Packet::decode(&out[0], ProtocolVersion::V5) else {
                panic!("not a CONNECT: {:02x?}", out[0]);
            };
            (c.client_id.to_string(), c.properties.receive_maximum)
        };
        let mut cfg = bridge_config();
        cfg.bridge_protocol_version = config::BridgeProtocol::Mqtt50;
        assert_eq!(
            connect_of(&cfg, Settings::default()),
            ("gw1".to_string(), Some(20))
        );
        let settings = Settings {
            max_inflight_messages: 7,
            ..Settings::default()
        };
        assert_eq!(connect_of(&cfg, settings), ("gw1".to_string(), Some(7)));
        cfg.bridge_receive_maximum = Some(100);
        assert_eq!(
            connect_of(&cfg, Settings::default()),
            ("gw1".to_string(), Some(100))
        );
    }

    /// Mosquitto's bridge answers a PINGREQ from the remote (06-bridge-br2b-remapping
    /// pings it); a malformed packet ends the link as a protocol error (the connection
    /// is reset), a DISCONNECT from the remote as a plain close.
    #[test]
    fn pingreq_is_answered_and_a_malformed_packet_is_a_protocol_error() {
        let now = Instant::now();
        let (mut broker, mut link) = link_up(now);
        link.handle_remote_data(&mut broker, &[0xc0, 0x00], now)
            .unwrap();
        assert_eq!(link.remote_output(), [0xd0, 0x00], "PINGRESP");
        link.consume_remote(usize::MAX);
        // PUBLISH with the topic name "++++++" [MQTT-3.3.2-2].
        let bad = [0x30, 0x08, 0x00, 0x06, b'+', b'+', b'+', b'+', b'+', b'+'];
        let e = link.handle_remote_data(&mut broker, &bad, now).unwrap_err();
        assert!(e.is_protocol_error, "{e}");
        link.handle_lost(&mut broker, &e.why, now);

        let (mut broker, mut link) = link_up(now);
        let e = link
            .handle_remote_data(&mut broker, &[0xe0, 0x00], now)
            .unwrap_err();
        assert!(!e.is_protocol_error, "{e}");
    }

    /// The retained messages of the `out` topics go to the remote on every connection,
    /// fresh (DUP 0), as Mosquitto's retain__queue in bridge__on_connect sends them; none
    /// is put in the offline session before the first connection (where it was sent
    /// later as a resend, DUP 1: 06-bridge-b2br-late-connection-retain).
    #[test]
    fn retained_messages_go_out_on_each_connection() {
        let now = Instant::now();
        let mut broker = Broker::new(Settings::default(), now);
        broker.publish_retained("gw/s/r", b"kept", QoS::AtLeastOnce, now);
        let mut cfg = bridge_config();
        cfg.notifications = false;
        let mut link = Link::new(&cfg, ConnId(0), Duration::ZERO, &host(), now);
        link.start(&mut broker, now);
        assert_eq!(broker.session_backlog("local.gw1"), Some((0, 0)));
        for n in 0..2u64 {
            let at = now + Duration::from_secs(60 * n);
            let out = connack_and_output(&mut broker, &mut link, ProtocolVersion::V311, at);
            let publishes: Vec<_> = out
                .iter()
                .filter_map(|f| match Packet::decode(f, ProtocolVersion::V311) {
                    Ok(Packet::Publish(p)) => Some((p.topic.to_string(), p.retain, p.dup)),
                    _ => None,
                })
                .collect();
            assert_eq!(
                publishes,
                [("site/s/r".to_string(), true, false)],
                "connection {n}"
            );
            let Some(Ok(Packet::Publish(p))) = out
                .iter()
                .map(|f| Packet::decode(f, ProtocolVersion::V311))
                .find(|p| matches!(p, Ok(Packet::Publish(_))))
            else {
                unreachable!()
            };
            let mut ack = Vec::new();
            Packet::Puback(Ack::new(p.packet_id.unwrap())).encode(ProtocolVersion::V311, &mut ack);
            link.handle_remote_data(&mut broker, &ack, at).unwrap();
            link.handle_lost(&mut broker, "test", at);
        }
    }

    /// While the remote is down, the health shows the backlog growing and ageing, the
    /// drops at the outbox's limit by cause, and why the link failed; once it is up and
    /// the remote acknowledged, the backlog is back to nothing, `connected_since` is set
    /// and the error stays as the last one seen. The $SYS values say the same.
    #[test]
    fn health_shows_backlog_age_drops_and_last_error() {
        let t0 = Instant::now();
        let mut broker = Broker::new(Settings::default(), t0);
        let mut link = Link::new(
            &bridge_config(),
            ConnId(0),
            Duration::from_secs(10),
            &host(),
            t0,
        );
        broker.set_queue_limits(
            "local.gw1",
            Some(crate::broker::QueueLimits {
                max_messages: 2,
                max_bytes: 0,
                drop_oldest: false,
                ..Default::default()
            }),
        );
        link.start(&mut broker, t0);
        assert!(link.poll_connect(t0).is_some());
        link.handle_lost(&mut broker, "connection refused by the remote (0x87)", t0);
        let client = local_client(&mut broker, t0);
        publish_qos1(&mut broker, client, 1, "gw/s/a", t0);
        let t5 = t0 + Duration::from_secs(5);
        publish_qos1(&mut broker, client, 2, "gw/s/b", t5);
        publish_qos1(&mut broker, client, 3, "gw/s/c", t5); // over max_messages 2

        let t30 = t0 + Duration::from_secs(30);
        let h = link.health(&broker, t30);
        assert_eq!((h.is_connected, h.state), (false, "waiting"));
        assert_eq!(h.backlog.messages, 2);
        // Payload bytes, as max_queued_bytes counts them: "v" and "v".
        assert_eq!(h.backlog.bytes, 2);
        assert_eq!(h.backlog.oldest_age, Duration::from_secs(30));
        assert_eq!(h.drops.get(crate::broker::DropCause::Full), 1);
        assert_eq!(
            h.last_error.as_deref(),
            Some("connection refused by the remote (0x87)")
        );
        assert_eq!(h.address, "127.0.0.1:1883");
        assert_eq!((h.connects, h.reconnects, h.connected_since), (0, 0, None));

        // $SYS at the interval.
        link.handle_timeout(&mut broker, t30).unwrap();
        let sys = |broker: &Broker, name: &str| {
            broker
                .retained_payload(&format!("$SYS/broker/connection/cloud/{name}"))
                .map(|p| String::from_utf8(p).unwrap())
        };
        assert_eq!(sys(&broker, "backlog/messages").as_deref(), Some("2"));
        assert_eq!(sys(&broker, "backlog/oldest_age").as_deref(), Some("30"));
        assert_eq!(sys(&broker, "dropped/full").as_deref(), Some("1"));
        assert_eq!(
            sys(&broker, "last_error").as_deref(),
            Some("connection refused by the remote (0x87)")
        );
        assert_eq!(sys(&broker, "connected").as_deref(), Some("0"));

        // Up again: the remote takes both messages and acknowledges them.
        let t40 = t0 + Duration::from_secs(40);
        link.next_sys = t40 + Duration::from_secs(100); // only the state change publishes
        while link.poll_connect(t40).is_none() {
            let at = link.next_deadline().unwrap();
            link.handle_timeout(&mut broker, at).unwrap();
            assert!(at < t0 + Duration::from_secs(3600), "no attempt planned");
            if link.poll_connect(at).is_some() {
                break;
            }
        }
        link.handle_connected(&broker, t40);
        link.consume_remote(usize::MAX);
        link.handle_remote_data(&mut broker, &[0x20, 0x02, 0x00, 0x00], t40)
            .unwrap();
        assert_eq!(link.state(), State::Up);
        // The state changed: the $SYS values are due now.
        assert!(link.next_deadline().is_some_and(|d| d <= t40));
        link.handle_timeout(&mut broker, t40).unwrap();
        assert_eq!(sys(&broker, "connected").as_deref(), Some("1"));
        assert_eq!(
            sys(&broker, "connected_since").as_deref(),
            Some("1700000040")
        );
        link.pump_local(&mut broker, t40);
        for frame in frames(link.remote_output()) {
            let Ok(Packet::Publish(p)) = Packet::decode(&frame, ProtocolVersion::V311) else {
                continue;
            };
            let mut ack = Vec::new();
            Packet::Puback(Ack::new(p.packet_id.unwrap())).encode(ProtocolVersion::V311, &mut ack);
            link.handle_remote_data(&mut broker, &ack, t40).unwrap();
        }
        link.consume_remote(usize::MAX);
        let h = link.health(&broker, t40);
        assert_eq!(h.backlog, crate::broker::Backlog::default());
        assert_eq!((h.connects, h.reconnects), (1, 0));
        assert_eq!(h.connected_since, Some(1_700_000_040));
        assert!(h.last_error.is_some(), "the last error is kept");
    }
}
