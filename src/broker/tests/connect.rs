//! Core tests: CONNECT / CONNACK.

use super::*;

/// [MQTT-3.2.2-1]: clean session 1 gives session present 0; [MQTT-3.2.2-3] (no stored
/// session) also 0 for clean session 0.
#[test]
fn connack_of_a_new_or_clean_session_has_session_present_0() {
    let mut h = Harness::default();
    h.connect(1, "persistent", false, 60, None);
    h.connect(2, "clean", true, 60, None);
}

/// [MQTT-3.2.2-2]: a resumed persistent session gives session present 1; [MQTT-3.2.2-1]:
/// clean session 1 then gives 0 even though a session was stored.
#[test]
fn connack_of_a_resumed_persistent_session_has_session_present_1() {
    let mut h = Harness::default();
    let c = h.connect(1, "c", false, 60, None);
    h.disconnect(c);

    let c = h.open(1);
    h.send(c, &connect("c", false, 60, None));
    h.recv(c, &[connack(true, ReasonCode::SUCCESS)]);
    h.disconnect(c);

    h.connect(1, "c", true, 60, None);
}

/// [MQTT-3.1.3-8]: an empty client id with clean session 0 gets CONNACK 0x02 and the
/// connection is closed.
#[test]
fn empty_client_id_without_clean_session_is_rejected_with_0x02() {
    let mut h = Harness::default();
    let c = h.open(1);
    h.send(c, &connect("", false, 60, None));
    assert_eq!(h.closed(), [c]);
    h.recv(
        c,
        &[connack(false, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID)],
    );
    assert_eq!(h.broker.clients_connected(), 0);
}

/// [MQTT-3.1.3-6]: the server may accept an empty client id and assign a unique one; two
/// such clients do not take each other over.
#[test]
fn empty_client_id_with_clean_session_is_accepted_and_unique() {
    let mut h = Harness::default();
    let a = h.connect(1, "", true, 60, None);
    h.connect(2, "", true, 60, None);
    assert!(h.closed().is_empty());
    assert_eq!(h.broker.clients_connected(), 2);
    h.send(a, &Packet::Pingreq);
    h.recv(a, &[Packet::Pingresp]);
}

/// MQTT 3.1 (section 3.1, Client Identifier) requires 1 to 23 characters: an empty id is
/// rejected with 0x02 even with clean session 1.
#[test]
fn empty_client_id_is_rejected_for_mqtt_3_1() {
    let mut h = Harness::default();
    let c = h.open(1);
    h.send(
        c,
        &Packet::Connect(Box::new(Connect {
            version: ProtocolVersion::V31,
            clean_session: true,
            keep_alive: 60,
            client_id: "",
            will: None,
            username: None,
            password: None,
            properties: Props::default(),
        })),
    );
    assert_eq!(h.closed(), [c]);
    h.recv(
        c,
        &[connack(false, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID)],
    );
}

/// MQTT 3.1 clients with an id are accepted.
#[test]
fn mqtt_3_1_client_with_an_id_is_accepted() {
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
    assert!(h.closed().is_empty());
}

/// [MQTT-3.1.2-2]: an unsupported protocol level gets CONNACK 0x01, then the server
/// disconnects.
#[test]
fn unsupported_protocol_level_is_refused_with_0x01_and_closed() {
    for level in [6u8, 7] {
        let mut h = Harness::default();
        let mut bytes = encode(&connect("c", true, 60, None));
        // Fixed header (2), protocol name (2 + 4), then the level.
        assert_eq!(&bytes[2..9], b"\x00\x04MQTT\x04");
        bytes[8] = level;
        let c = h.open(1);
        h.send_raw(c, &bytes);
        assert_eq!(h.closed(), [c], "level {level}");
        h.recv(
            c,
            &[connack(false, ReasonCode::UNSUPPORTED_PROTOCOL_VERSION)],
        );
        assert_eq!(h.broker.clients_connected(), 0);
    }
}

/// Without anonymous access and without a password file nobody is authorised: 0x05
/// ([MQTT-3.2.2.3], "Connection Refused, not authorized").
#[test]
fn connect_is_refused_with_0x05_when_anonymous_access_is_off() {
    let mut h = Harness::new(|s| s.allow_anonymous = false);
    let c = h.open(1);
    h.send(c, &connect("c", true, 60, None));
    assert_eq!(h.closed(), [c]);
    h.recv(c, &[connack(false, ReasonCode::NOT_AUTHORIZED)]);
}

/// Mosquitto refuses a 3.1/3.1.1 keep alive above max_keepalive with 0x02 (it cannot
/// tell such a client a shorter one); at the limit it is accepted.
#[test]
fn keep_alive_above_max_keepalive_is_refused_with_0x02() {
    let mut h = Harness::new(|s| s.max_keepalive = 60);
    h.connect(1, "at-limit", true, 60, None);
    let c = h.open(2);
    h.send(c, &connect("above", true, 61, None));
    assert_eq!(h.closed(), [c]);
    h.recv(
        c,
        &[connack(false, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID)],
    );
}

/// [MQTT-3.1.0-1]: the first packet from the client must be CONNECT; anything else closes
/// the connection without an answer.
#[test]
fn a_packet_before_connect_closes_the_connection() {
    let mut h = Harness::default();
    let c = h.open(1);
    h.send(c, &Packet::Pingreq);
    assert_eq!(h.closed(), [c]);
    h.recv_nothing(c);
}

/// [MQTT-3.1.0-2]: a second CONNECT is a protocol violation and the client is
/// disconnected; as for any protocol error the will is published [MQTT-3.1.2-8].
#[test]
fn a_second_connect_closes_the_connection() {
    let mut h = Harness::default();
    let watcher = h.connect(1, "watcher", true, 0, None);
    h.subscribe(watcher, 1, &[("w", Q0)]);
    let c = h.connect(2, "c", true, 60, will("w", b"bye", Q0, false));
    h.send(c, &connect("c", true, 60, None));
    assert_eq!(h.closed(), [c]);
    h.recv_nothing(c);
    h.recv(watcher, &[publish("w", b"bye", Q0, 0)]);
    assert_eq!(h.broker.clients_connected(), 1);
}

/// A CONNECT with `username` and `password` (3.1.1 unless `version` says otherwise).
fn login<'a>(
    version: ProtocolVersion,
    client_id: &'a str,
    username: &'a str,
    password: Option<&'a [u8]>,
) -> Packet<'a> {
    Packet::Connect(Box::new(Connect {
        version,
        clean_session: true,
        keep_alive: 60,
        client_id,
        will: None,
        username: Some(username),
        password,
        properties: Props::default(),
    }))
}

/// A wrong or missing password is refused as Mosquitto 2.0 refuses it: 0x05 Not
/// authorized in 3.1.1, 0x87 Not authorized in MQTT 5 (not 0x86; both are CONNACK codes,
/// section 3.2.2.2, and clients written against Mosquitto test for 0x87), and the
/// connection is closed [MQTT-3.2.2-7].
#[test]
fn wrong_or_missing_password_is_refused_with_not_authorized() {
    let line = crate::auth::hash_password(
        b"right",
        crate::auth::HashFormat::Sha512Pbkdf2 {
            iterations: std::num::NonZeroU32::new(101).unwrap(),
        },
        b"twelve bytes",
    );
    let mut h = Harness::new(|s| s.allow_anonymous = false);
    let passwords = crate::auth::PasswordFile::parse_str(&format!("user:{line}\n")).unwrap();
    h.broker.set_auth(Some(passwords), None);
    let cases: [(ProtocolVersion, Option<&[u8]>); 4] = [
        (V311, Some(b"wrong")),
        (V311, None),
        (V5, Some(b"wrong")),
        (V5, None),
    ];
    for (n, (version, password)) in cases.into_iter().enumerate() {
        let c = h.open(n as u32 + 1);
        let mut bytes = Vec::new();
        login(version, "c", "user", password).encode(version, &mut bytes);
        h.send_raw(c, &bytes);
        assert_eq!(h.closed(), [c]);
        let frames = h.recv_frames(c);
        let expected = Packet::Connack(Connack::new(false, ReasonCode::NOT_AUTHORIZED));
        let mut want = Vec::new();
        expected.encode(version, &mut want);
        assert_eq!(frames, [want], "{version:?} password {password:?}");
    }
    let (v311, v5) = (h.open(10), h.open(11));
    h.send(v311, &login(V311, "c", "user", Some(b"right")));
    h.recv(v311, &[connack(false, ReasonCode::SUCCESS)]);
    let mut bytes = Vec::new();
    login(V5, "d", "user", Some(b"right")).encode(V5, &mut bytes);
    h.send_raw(v5, &bytes);
    assert_eq!(connack_of(&h.recv_frames(v5)).reason, ReasonCode::SUCCESS);
}

/// per_listener_settings: a listener's own `allow_zero_length_clientid false` refuses an
/// empty client id there (3.1.1: 0x02; MQTT 5: 0x80 as Mosquitto, which the server may
/// choose [MQTT-3.1.3-8]), while another listener, where it is not set, assigns one.
#[test]
fn allow_zero_length_clientid_is_per_listener_with_per_listener_settings() {
    let mut h = Harness::new(|s| {
        s.listeners = vec![
            ListenerLimits {
                allow_zero_length_clientid: Some(false),
                ..ListenerLimits::default()
            },
            ListenerLimits {
                allow_zero_length_clientid: Some(true),
                ..ListenerLimits::default()
            },
        ];
    });
    let c = h.open(1);
    h.send(c, &connect("", true, 60, None));
    assert_eq!(h.closed(), [c]);
    h.recv(
        c,
        &[connack(false, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID)],
    );
    let (c5, frames) = h.connect5(2, "", true, Properties::default(), None);
    assert_eq!(h.closed(), [c5]);
    assert_eq!(connack_of(&frames).reason, ReasonCode::UNSPECIFIED_ERROR);

    let other = ConnId(3);
    h.broker
        .handle_open(other, SocketAddr::from(([192, 0, 2, 9], 1)), 1, h.now);
    h.send(other, &connect("", true, 60, None));
    h.recv(other, &[connack(false, ReasonCode::SUCCESS)]);
}

/// An assigned client id has Mosquitto's shape: the prefix and 36 characters of upper-case
/// hex in UUID form (`auto-0A1B2C3D-...`), different every time [MQTT-3.1.3-6].
#[test]
fn assigned_client_ids_have_mosquittos_uuid_shape() {
    let mut h = Harness::default();
    let mut seen = HashSet::new();
    for n in 0..20 {
        let (_, frames) = h.connect5(n + 1, "", true, Properties::default(), None);
        let connack = connack_of(&frames);
        let id = connack.properties.assigned_client_identifier.unwrap();
        let uuid = id.strip_prefix("auto-").expect("default prefix");
        assert_eq!(uuid.len(), 36, "{id}");
        for (i, c) in uuid.chars().enumerate() {
            match i {
                8 | 13 | 18 | 23 => assert_eq!(c, '-', "{id}"),
                _ => assert!(c.is_ascii_digit() || ('A'..='F').contains(&c), "{id}"),
            }
        }
        assert!(seen.insert(id.to_string()), "{id} assigned twice");
    }
}

/// Addresses in log lines are Mosquitto's `IP:PORT`, an IPv6 address bare as `inet_ntop`
/// writes it, so filters written for Mosquitto's lines (fail2ban's `<HOST>:\d+`) match.
#[test]
fn peers_are_written_as_mosquitto_writes_them() {
    let v4: SocketAddr = "192.0.2.1:40000".parse().unwrap();
    let v6: SocketAddr = "[::ffff:192.0.2.1]:40000".parse().unwrap();
    assert_eq!(Peer::from(v4).to_string(), "192.0.2.1:40000");
    assert_eq!(Peer::from(v6).to_string(), "::ffff:192.0.2.1:40000");
}
