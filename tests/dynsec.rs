//! Mosquitto's dynamic-security plugin, as culex reads it: `plugin
//! .../mosquitto_dynamic_security.so` + `plugin_opt_config_file`, commands on
//! `$CONTROL/dynamic-security/v1` from a client the file grants it, and what each client
//! may then do, before and after a restart. The same tests run against Mosquitto 2.0
//! (CULEX_TEST_BROKER=mosquitto) where its plugin is installed at Debian's path.

use crate::auth::{connect_code, TempFile};
use crate::common::{field, packet, Broker, Peer, Stop};
use rumqttc::{ConnectReturnCode, QoS, SubscribeReasonCode};
use serde_json::{json, Value};
use std::time::Duration;

/// Mosquitto's own test file (test/broker/dynamic-security-init.json, abridged): user
/// "admin", password "admin", with the control topics; receive and unsubscribe allowed
/// by default.
const INIT: &str = r##"{
  "clients": [{"username": "admin", "textName": "Dynsec admin user",
    "password": "Rko31yHY12ryMoyZTBNIUsCPb5SDa4WmUP3Xe2+V6P+QOSW3Gj6IDmpl6zQsAjutb476zEYdBeTw9tU7WZ1new==",
    "salt": "Ezuo4G1TqYtTQDL/", "iterations": 101, "roles": [{"rolename": "admin"}]}],
  "roles": [{"rolename": "admin", "acls": [
    {"acltype": "publishClientSend", "topic": "$CONTROL/dynamic-security/#", "allow": true},
    {"acltype": "publishClientReceive", "topic": "$CONTROL/dynamic-security/#", "allow": true},
    {"acltype": "subscribePattern", "topic": "$CONTROL/dynamic-security/#", "allow": true}]}],
  "defaultACLAccess": {"publishClientSend": false, "publishClientReceive": true,
    "subscribe": false, "unsubscribe": true},
  "someTool": {"kept": "yes"}
}"##;

fn config(file: &TempFile) -> String {
    format!(
        "plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so\n\
         plugin_opt_config_file {}\n",
        file.path()
    )
}

fn connect(broker: &Broker, id: &str, user: &str, password: &str) -> Peer {
    let mut options = broker.options(id);
    options.set_credentials(user, password);
    Peer::connect(options).0
}

/// An admin connection subscribed to the responses.
fn admin(broker: &Broker) -> Peer {
    let mut admin = connect(broker, "admin-tool", "admin", "admin");
    assert_eq!(
        admin.subscribe("$CONTROL/dynamic-security/v1/response", QoS::AtLeastOnce),
        SubscribeReasonCode::Success(QoS::AtLeastOnce)
    );
    admin
}

/// Sends commands and returns the `responses` array.
fn command(admin: &mut Peer, commands: Value) -> Vec<Value> {
    let payload = serde_json::to_vec(&json!({ "commands": commands })).unwrap();
    admin.publish(
        "$CONTROL/dynamic-security/v1",
        QoS::AtLeastOnce,
        false,
        &payload,
    );
    let response = admin.expect_publish();
    assert_eq!(response.topic, "$CONTROL/dynamic-security/v1/response");
    let value: Value = serde_json::from_slice(&response.payload).expect("a JSON response");
    value["responses"].as_array().expect("responses").clone()
}

#[test]
fn control_api_manages_clients_and_their_acls_apply_at_once_and_after_a_restart() {
    let file = TempFile::new("dynsec.json", INIT);
    let mut broker = Broker::start(&config(&file));
    let mut admin = admin(&broker);
    let responses = command(
        &mut admin,
        json!([
            {"command": "createRole", "rolename": "sensors"},
            {"command": "addRoleACL", "rolename": "sensors", "acltype": "publishClientSend",
             "topic": "sensors/%c/#", "allow": true},
            {"command": "addRoleACL", "rolename": "sensors", "acltype": "subscribePattern",
             "topic": "sensors/#", "allow": true},
            {"command": "createGroup", "groupname": "devices"},
            {"command": "addGroupRole", "groupname": "devices", "rolename": "sensors"},
            {"command": "createClient", "username": "dev1", "password": "pw1",
             "correlationData": "c1"},
            {"command": "addGroupClient", "groupname": "devices", "username": "dev1"},
            {"command": "getClient", "username": "nobody"}
        ]),
    );
    assert_eq!(
        responses,
        vec![
            json!({"command": "createRole"}),
            json!({"command": "addRoleACL"}),
            json!({"command": "addRoleACL"}),
            json!({"command": "createGroup"}),
            json!({"command": "addGroupRole"}),
            json!({"command": "createClient", "correlationData": "c1"}),
            json!({"command": "addGroupClient"}),
            json!({"command": "getClient", "error": "Client not found"}),
        ]
    );
    let check = |broker: &Broker| {
        assert_eq!(
            connect_code(broker, "x", Some(("dev1", "wrong"))),
            ConnectReturnCode::NotAuthorized
        );
        // An unknown username is refused (the plugin defers, and a username is not
        // anonymous access).
        assert_eq!(
            connect_code(broker, "y", Some(("ghost", "pw"))),
            ConnectReturnCode::NotAuthorized
        );
        let mut dev = connect(broker, "dev1-id", "dev1", "pw1");
        // subscribePattern sensors/# covers sensors/+/t; "other/#" is not granted and
        // the default for subscribe is false. [MQTT-3.9.3-2]
        assert_eq!(
            dev.subscribe("sensors/+/t", QoS::AtLeastOnce),
            SubscribeReasonCode::Success(QoS::AtLeastOnce)
        );
        assert_eq!(
            dev.subscribe("other/#", QoS::AtLeastOnce),
            SubscribeReasonCode::Failure
        );
        // Its own client id's branch is writable (%c), another's is not.
        dev.publish("sensors/dev1-id/t", QoS::AtLeastOnce, false, b"own");
        assert_eq!(&dev.expect_publish().payload[..], b"own");
        dev.publish("sensors/dev2-id/t", QoS::AtLeastOnce, false, b"other");
        dev.expect_no_publish();
        dev
    };
    let _dev = check(&broker);
    // The file was written back with what culex does not know kept.
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(file.path()).unwrap())
        .expect("the saved file is JSON");
    assert_eq!(saved["someTool"], json!({"kept": "yes"}));
    assert_eq!(saved["groups"][0]["clients"][0]["username"], "dev1");
    drop(admin);
    broker.restart(Stop::Term);
    let mut dev = check(&broker);
    // Disabling a connected client disconnects it at once, and it cannot come back.
    let mut admin = crate::dynsec::admin(&broker);
    assert_eq!(
        command(
            &mut admin,
            json!([{"command": "disableClient", "username": "dev1"}])
        ),
        vec![json!({"command": "disableClient"})]
    );
    assert!(dev.closed_within(Duration::from_secs(3)));
    assert_eq!(
        connect_code(&broker, "dev1-id", Some(("dev1", "pw1"))),
        ConnectReturnCode::NotAuthorized
    );
}

#[test]
fn control_topic_needs_the_acl_and_is_never_routed() {
    let file = TempFile::new("dynsec.json", INIT);
    let broker = Broker::start(&config(&file));
    let mut admin = admin(&broker);
    command(
        &mut admin,
        json!([{"command": "createClient", "username": "eve", "password": "pw"}]),
    );
    // eve may subscribe nowhere (default subscribe false) and publish nowhere: her
    // command is dropped, no response comes, and the admin sees nothing of it.
    let mut eve = connect(&broker, "eve-id", "eve", "pw");
    eve.publish(
        "$CONTROL/dynamic-security/v1",
        QoS::AtLeastOnce,
        false,
        br#"{"commands":[{"command":"deleteClient","username":"admin"}]}"#,
    );
    admin.expect_no_publish();
    assert_eq!(
        connect_code(&broker, "a2", Some(("admin", "admin"))),
        ConnectReturnCode::Success
    );
}

#[test]
fn malformed_dynsec_file_refuses_start_up_naming_file_line_and_column() {
    if Broker::is_mosquitto() {
        eprintln!("Mosquitto logs a malformed dynamic-security file and starts anyway");
        return;
    }
    let file = TempFile::new(
        "dynsec-bad.json",
        "{\n  \"clients\": [\n    {\"username\": }\n",
    );
    let conf = TempFile::new(
        "dynsec-bad.conf",
        &format!("listener 0 127.0.0.1\n{}", config(&file)),
    );
    let out = crate::common::built_binary(env!("CARGO_BIN_EXE_culex"))
        .arg("-c")
        .arg(conf.path())
        .output()
        .expect("run culex");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:3:18: not valid JSON", file.path())),
        "{stderr}"
    );
}

#[test]
fn deleted_client_is_disconnected_with_administrative_action_in_mqtt5() {
    let file = TempFile::new("dynsec.json", INIT);
    let broker = Broker::start(&config(&file));
    let mut admin = admin(&broker);
    command(
        &mut admin,
        json!([{"command": "createClient", "username": "gone", "password": "pw"}]),
    );
    // MQTT 5 CONNECT, clean start, user name and password, no properties.
    let mut body = field(b"MQTT");
    body.extend_from_slice(&[0x05, 0xc2, 0x00, 0x3c, 0x00]);
    body.extend_from_slice(&field(b"gone-id"));
    body.extend_from_slice(&field(b"gone"));
    body.extend_from_slice(&field(b"pw"));
    let mut raw = broker.raw();
    raw.send(&packet(0x10, &body));
    let connack = raw.read_packet();
    assert_eq!(
        (connack[0], connack[3]),
        (0x20, 0x00),
        "CONNACK Success: {connack:?}"
    );
    assert_eq!(
        command(
            &mut admin,
            json!([{"command": "deleteClient", "username": "gone"}])
        ),
        vec![json!({"command": "deleteClient"})]
    );
    // Mosquitto's mosquitto_kick_client_by_username: DISCONNECT 0x98, then the close.
    // [MQTT-3.14.2-1]
    let disconnect = raw.read_packet();
    assert_eq!(disconnect[0], 0xe0, "{disconnect:?}");
    assert_eq!(disconnect[2], 0x98, "{disconnect:?}");
    raw.expect_closed_within(Duration::from_secs(3));
}
