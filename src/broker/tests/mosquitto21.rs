//! Core tests: Mosquitto 2.1 options.

use super::*;

/// 2.1 `accept_protocol_versions`: a level the listener does not accept is refused as an
/// unsupported version (3.1.1: 0x01, MQTT 5: 0x84). [MQTT-3.1.2-2]
#[test]
fn accept_protocol_versions_refuses_other_levels() {
    let mut h = Harness::new(|s| {
        s.listeners = vec![ListenerLimits {
            accepts_v311: false,
            ..ListenerLimits::default()
        }];
    });
    let c = h.open(1);
    h.send(c, &connect("old", true, 0, None));
    h.recv(
        c,
        &[connack(false, ReasonCode::UNSUPPORTED_PROTOCOL_VERSION)],
    );
    assert_eq!(h.closed(), [c]);
    let (_, frames) = h.connect5(2, "new", true, Properties::default(), None);
    assert_eq!(connack_of(&frames).reason, ReasonCode::SUCCESS);
}

/// 2.1 `listener_allow_anonymous` overrides `allow_anonymous` for its listener, and
/// `listener_auto_id_prefix` names the ids that listener assigns.
#[test]
fn listener_allow_anonymous_and_auto_id_prefix() {
    let mut h = Harness::new(|s| {
        s.allow_anonymous = false;
        s.listeners = vec![ListenerLimits {
            allow_anonymous: Some(true),
            auto_id_prefix: std::rc::Rc::from("gw7-"),
            ..ListenerLimits::default()
        }];
    });
    let (_, frames) = h.connect5(1, "", true, Properties::default(), None);
    let connack = connack_of(&frames);
    assert_eq!(
        connack.reason,
        ReasonCode::SUCCESS,
        "anonymous allowed here"
    );
    let id = connack.properties.assigned_client_identifier.unwrap();
    assert!(id.starts_with("gw7-"), "{id}");
}

/// 2.1 `global_max_clients`: a new session beyond the cap is refused; an existing one
/// may still come back.
#[test]
fn global_max_clients_caps_sessions_including_offline_ones() {
    let mut h = Harness::new(|s| s.global_max_clients = Some(1));
    let a = h.connect(1, "a", false, 0, None);
    h.disconnect(a);
    let b = h.open(2);
    h.send(b, &connect("b", true, 0, None));
    h.recv(b, &[connack(false, ReasonCode::SERVER_UNAVAILABLE)]);
    assert_eq!(h.closed(), [b]);
    let a = h.open(3);
    h.send(a, &connect("a", false, 0, None));
    h.recv(a, &[connack(true, ReasonCode::SUCCESS)]);
}

/// per_listener_settings: each listener has its own password file, ACL and anonymous
/// access; a client is judged by the listener it came in on, and deliveries to it by
/// that listener's ACL.
#[test]
fn per_listener_settings_give_each_listener_its_own_security() {
    use crate::auth::{Acl, PasswordFile};
    let line = crate::auth::hash_password(
        b"pw",
        crate::auth::HashFormat::Sha512Pbkdf2 {
            iterations: std::num::NonZeroU32::new(101).unwrap(),
        },
        b"twelve bytes",
    );
    let mut h = Harness::new(|s| {
        s.allow_anonymous = false;
        s.listeners = vec![
            // 0: the sensors' listener, anonymous, may only write sensors/#.
            ListenerLimits {
                allow_anonymous: Some(true),
                ..ListenerLimits::default()
            },
            // 1: the operators' listener, with passwords, reads everything.
            ListenerLimits {
                allow_anonymous: Some(false),
                ..ListenerLimits::default()
            },
        ];
    });
    h.broker.set_listener_auth(vec![
        ListenerAuth {
            passwords: None,
            acl: Some(Acl::parse_str("topic write sensors/#\n").unwrap()),
        },
        ListenerAuth {
            passwords: Some(PasswordFile::parse_str(&format!("op:{line}\n")).unwrap()),
            acl: Some(Acl::parse_str("user op\ntopic read #\n").unwrap()),
        },
    ]);
    // An operator connects on listener 1 with its password; anonymous there is refused.
    let op = ConnId(2);
    h.broker
        .handle_open(op, SocketAddr::from(([192, 0, 2, 9], 1)), 1, h.now);
    let mut login = match connect("op", true, 0, None) {
        Packet::Connect(c) => c,
        _ => unreachable!(),
    };
    login.username = Some("op");
    login.password = Some(b"pw");
    h.send(op, &Packet::Connect(login));
    h.recv(op, &[connack(false, ReasonCode::SUCCESS)]);
    h.subscribe(op, 1, &[("#", Q0)]);
    let anon = ConnId(3);
    h.broker
        .handle_open(anon, SocketAddr::from(([192, 0, 2, 9], 2)), 1, h.now);
    h.send(anon, &connect("nobody", true, 0, None));
    h.recv(anon, &[connack(false, ReasonCode::NOT_AUTHORIZED)]);
    // A sensor on listener 0 connects anonymously and may write sensors/# only.
    let sensor = h.connect(1, "s1", true, 0, None);
    h.send(sensor, &publish("sensors/t", b"21", Q0, 0));
    h.send(sensor, &publish("config/x", b"no", Q0, 0));
    h.recv(op, &[publish("sensors/t", b"21", Q0, 0)]);
}
