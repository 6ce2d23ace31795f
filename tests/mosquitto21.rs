//! A configuration written for Mosquitto 2.1: the password-file and acl-file plugins with
//! their plugin_opt_ lines (mapped onto culex's own handling), listener_allow_anonymous,
//! accept_protocol_versions and global_max_connections, end to end.
//!
//! Mosquitto 2.0.11, the reference broker available here, does not know these 2.1 lines,
//! so these tests check culex only (under CULEX_TEST_BROKER=mosquitto they return at
//! once, saying so).

use crate::auth::{connect_code, password_line, TempFile};
use crate::common::Broker;
use rumqttc::ConnectReturnCode;
use std::time::Duration;

#[test]
fn mosquitto_2_1_plugin_configuration_authenticates_and_authorises() {
    if Broker::is_mosquitto() {
        eprintln!("2.1 configuration: not run against Mosquitto 2.0.11, which predates it");
        return;
    }
    let passwords = TempFile::new("passwd21", &password_line("dora", "explorer"));
    let acl = TempFile::new("acl21", "user dora\ntopic readwrite maps/#\n");
    let broker = Broker::start(&format!(
        "listener_allow_anonymous false\n\
         plugin /usr/lib/x86_64-linux-gnu/mosquitto_password_file.so\n\
         plugin_opt_password_file {}\n\
         plugin /usr/lib/x86_64-linux-gnu/mosquitto_acl_file.so\n\
         plugin_opt_acl_file {}\n\
         accept_protocol_versions 4, 5\n",
        passwords.path(),
        acl.path()
    ));
    assert_eq!(
        connect_code(&broker, "d1", Some(("dora", "explorer"))),
        ConnectReturnCode::Success
    );
    assert_eq!(
        connect_code(&broker, "d2", Some(("dora", "wrong"))),
        ConnectReturnCode::NotAuthorized
    );
    // listener_allow_anonymous false overrides the harness's allow_anonymous true.
    assert_eq!(
        connect_code(&broker, "anon", None),
        ConnectReturnCode::NotAuthorized
    );
    // accept_protocol_versions 4, 5: an MQTT 3.1 CONNECT gets return code 0x01.
    let mut raw = broker.raw();
    raw.send(&[
        0x10, 0x12, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0x02, 0x00, 0x3c, 0x00,
        0x04, b'd', b'o', b'r', b'a',
    ]);
    raw.expect(&[0x20, 0x02, 0x00, 0x01]);
    assert!(
        broker.log_text().contains("mosquitto_password_file.so"),
        "{}",
        broker.log_text()
    );
}

#[test]
fn global_max_connections_refuses_connections_beyond_the_cap() {
    if Broker::is_mosquitto() {
        eprintln!("global_max_connections: not run against Mosquitto 2.0.11, which predates it");
        return;
    }
    let broker = Broker::start("global_max_connections 2\n");
    let _a = broker.client("a");
    let _b = broker.client("b");
    let mut third = broker.raw();
    third.try_send(&crate::common::connect_packet("c", true, 30));
    third.expect_closed_within(Duration::from_secs(3));
}
