use super::control::Kick;
use super::fuzz::{fuzz_dynsec_control, SEED_STATE};
use super::*;
use serde_json::json;

fn seed() -> DynSec {
    DynSec::parse(SEED_STATE.as_bytes()).unwrap()
}

/// Runs one request and returns the parsed response's `responses` array.
fn run(ds: &mut DynSec, request: Value) -> (Vec<Value>, control::Outcome) {
    let payload = serde_json::to_vec(&request).unwrap();
    let outcome = ds.handle_control(&payload, "test", &mut || [1u8; SALT_LEN]);
    let response: Value = serde_json::from_slice(&outcome.response).unwrap();
    let list = response["responses"].as_array().unwrap().clone();
    (list, outcome)
}

fn one(ds: &mut DynSec, command: Value) -> Value {
    let (list, _) = run(ds, json!({ "commands": [command] }));
    assert_eq!(list.len(), 1);
    list[0].clone()
}

#[test]
fn mosquitto_test_file_loads_with_case_insensitive_keys_and_its_password() {
    // Mosquitto's test/broker/dynamic-security-init.json: "textName" is read as textname
    // (cJSON_GetObjectItem ignores case) and the admin's password is "admin" at 101
    // iterations.
    let text = r#"{"clients": [{"username": "admin", "textName": "Dynsec admin user",
        "password": "Rko31yHY12ryMoyZTBNIUsCPb5SDa4WmUP3Xe2+V6P+QOSW3Gj6IDmpl6zQsAjutb476zEYdBeTw9tU7WZ1new==",
        "salt": "Ezuo4G1TqYtTQDL/", "iterations": 101, "roles": [{"rolename": "admin"}]}],
        "roles": [{"rolename": "admin", "acls": []}]}"#;
    let ds = DynSec::parse(text.as_bytes()).unwrap();
    let admin = &ds.clients["admin"];
    assert_eq!(admin.textname.as_deref(), Some("Dynsec admin user"));
    assert_eq!(
        ds.authenticate(Some("admin"), Some(b"admin"), "any"),
        Verdict::Allow
    );
    assert_eq!(
        ds.authenticate(Some("admin"), Some(b"admin2"), "any"),
        Verdict::Deny
    );
    assert_eq!(
        ds.authenticate(Some("nobody"), Some(b"x"), "any"),
        Verdict::Defer
    );
    assert_eq!(ds.authenticate(None, None, "any"), Verdict::Defer);
    assert_eq!(ds.authenticate(Some("admin"), None, "any"), Verdict::Defer);
}

#[test]
fn malformed_file_is_refused_with_line_and_column() {
    let err = DynSec::parse(b"{\n  \"clients\": [\n    {\"username\": }\n]}").unwrap_err();
    assert_eq!((err.line, err.column), (3, 18), "{err}");
    assert!(
        err.to_string()
            .starts_with("line 3, column 18: not valid JSON"),
        "{err}"
    );
    let err = DynSec::parse(br#"{"clients": 5}"#).unwrap_err();
    assert!(
        err.to_string().contains("\"clients\" must be an array"),
        "{err}"
    );
    assert!(DynSec::parse(b"[]").is_err());
    // An empty file is an empty configuration, as in Mosquitto.
    assert!(DynSec::parse(b"  \n").unwrap().clients.is_empty());
}

#[test]
fn missing_file_error_names_it_and_says_how_to_make_one() {
    let err = DynSec::load(Path::new("/nonexistent/dynsec.json")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("/nonexistent/dynsec.json: cannot read"),
        "{text}"
    );
    assert!(text.contains("mosquitto_ctrl dynsec init"), "{text}");
}

#[test]
fn unknown_members_are_written_back_and_round_trip_is_stable() {
    let ds = seed();
    let text = ds.to_json();
    assert!(text.contains("\"somethingElse\""), "{text}");
    let again = DynSec::parse(text.as_bytes()).unwrap();
    assert_eq!(again.to_json(), text);
    assert_eq!(again.anonymous_group.as_deref(), Some("g1"));
    assert_eq!(again.clients["u1"].groups[0].name, "g1");
    assert_eq!(again.groups["g1"].clients["u1"], 2);
}

#[test]
fn encoded_password_of_2_1_is_read_and_written_back() {
    let pw = Password::new("secret", b"0123456789ab");
    let encoded = format!(
        "$7${}${}${}",
        pw.iterations,
        STANDARD.encode(&pw.salt),
        STANDARD.encode(pw.hash)
    );
    let text = json!({"clients": [{"username": "u", "encoded_password": encoded}]}).to_string();
    let ds = DynSec::parse(text.as_bytes()).unwrap();
    assert_eq!(
        ds.authenticate(Some("u"), Some(b"secret"), "c"),
        Verdict::Allow
    );
    assert!(ds.to_json().contains(&encoded));
}

#[test]
fn fixed_client_id_and_disabled_client_are_refused() {
    let mut ds = seed();
    one(
        &mut ds,
        json!({"command": "setClientPassword", "username": "u1", "password": "pw"}),
    );
    assert_eq!(
        ds.authenticate(Some("u1"), Some(b"pw"), "c1"),
        Verdict::Allow
    );
    assert_eq!(
        ds.authenticate(Some("u1"), Some(b"pw"), "other"),
        Verdict::Deny
    );
    one(
        &mut ds,
        json!({"command": "disableClient", "username": "u1"}),
    );
    assert_eq!(
        ds.authenticate(Some("u1"), Some(b"pw"), "c1"),
        Verdict::Deny
    );
    one(
        &mut ds,
        json!({"command": "enableClient", "username": "u1"}),
    );
    assert_eq!(
        ds.authenticate(Some("u1"), Some(b"pw"), "c1"),
        Verdict::Allow
    );
}

#[test]
fn acl_order_client_roles_then_groups_by_priority_then_default() {
    let text = json!({
        "clients": [{"username": "u", "roles": [{"rolename": "low", "priority": 1},
                                                  {"rolename": "high", "priority": 5}]}],
        "groups": [{"groupname": "g2", "roles": [{"rolename": "gdeny"}], "clients": [{"username": "u", "priority": 1}]},
                   {"groupname": "g1", "roles": [{"rolename": "gallow"}], "clients": [{"username": "u", "priority": 9}]}],
        "roles": [
            {"rolename": "low", "acls": [{"acltype": "publishClientSend", "topic": "a/#", "allow": true}]},
            {"rolename": "high", "acls": [{"acltype": "publishClientSend", "topic": "a/b", "allow": false},
                                          {"acltype": "publishClientSend", "topic": "a/+", "priority": 3, "allow": true}]},
            {"rolename": "gallow", "acls": [{"acltype": "publishClientSend", "topic": "g/#", "allow": true}]},
            {"rolename": "gdeny", "acls": [{"acltype": "publishClientSend", "topic": "g/#", "allow": false},
                                           {"acltype": "publishClientSend", "topic": "h/#", "allow": false}]}
        ],
        "defaultACLAccess": {"publishClientSend": true}
    })
    .to_string();
    let ds = DynSec::parse(text.as_bytes()).unwrap();
    let check = |topic| ds.check("c", Some("u"), topic, AclKind::Send);
    // "high" (priority 5) first; in it "a/+" (priority 3) before "a/b" (0).
    assert_eq!(check("a/b"), Verdict::Allow);
    assert_eq!(check("a/b/c"), Verdict::Allow); // "low"
                                                // Group g1 (priority 9) before g2 (1).
    assert_eq!(check("g/x"), Verdict::Allow);
    assert_eq!(check("h/x"), Verdict::Deny);
    // Nothing matched: the default, but never for $CONTROL.
    assert_eq!(check("z"), Verdict::Allow);
    assert_eq!(check("$CONTROL/dynamic-security/v1"), Verdict::Defer);
    // Receive defaults to false here; an unknown user defers.
    assert_eq!(
        ds.check("c", Some("u"), "z", AclKind::Receive),
        Verdict::Defer
    );
    assert_eq!(
        ds.check("c", Some("x"), "a/b", AclKind::Send),
        Verdict::Defer
    );
}

#[test]
fn subscribe_literal_before_pattern_and_pattern_covers_the_filter() {
    let text = json!({
        "clients": [{"username": "u", "roles": [{"rolename": "r"}]}],
        "roles": [{"rolename": "r", "acls": [
            {"acltype": "subscribeLiteral", "topic": "a/+", "allow": false},
            {"acltype": "subscribePattern", "topic": "a/#", "allow": true, "priority": 9},
            {"acltype": "subscribePattern", "topic": "u/%u/#", "allow": true},
            {"acltype": "unsubscribePattern", "topic": "#", "allow": false}
        ]}]
    })
    .to_string();
    let ds = DynSec::parse(text.as_bytes()).unwrap();
    let sub = |f| ds.check("c", Some("u"), f, AclKind::Subscribe);
    assert_eq!(sub("a/+"), Verdict::Deny);
    assert_eq!(sub("a/b/#"), Verdict::Allow);
    assert_eq!(sub("a/#"), Verdict::Allow);
    assert_eq!(sub("#"), Verdict::Defer);
    assert_eq!(sub("u/u/x"), Verdict::Allow);
    assert_eq!(sub("u/v/x"), Verdict::Defer);
    assert_eq!(
        ds.check("c", Some("u"), "a", AclKind::Unsubscribe),
        Verdict::Deny
    );
}

#[test]
fn sub_acl_check_matches_mosquittos_own_cases() {
    // The cases of Mosquitto's plugins/dynamic-security/sub_matches_sub.c test main().
    let who = Who {
        client_id: "c",
        username: None,
    };
    for (acl, sub, expected) in [
        ("foo/+/bar", "foo/#", false),
        ("foo/+/ba℞/#", "foo/baz/ba℞", true),
        ("foo/+/ba℞/#", "foo/baz/ba℞/+", true),
        ("foo/+/ba℞/#", "foo/baz/ba℞/#", true),
        ("foo/+/ba℞/#", "foo/baz/+/#", false),
        ("/+//#", "/foo///#", true),
        ("#", "#", true),
        ("#", "+", true),
        ("/#", "+", false),
        ("/#", "/+", true),
        ("/+", "#", false),
        ("/+", "+", false),
        ("+/+", "topic/topic", true),
        ("+/+", "topic/topic/", false),
        ("+", "#", false),
        ("+", "+", true),
        ("a/b/c/d/e", "a/b/c/d/e", true),
        ("a/b/ /d/e", "a/b/c/d/e", false),
    ] {
        assert_eq!(filter_within(acl, sub, &who), expected, "{acl} : {sub}");
    }
}

#[test]
fn anonymous_clients_use_the_anonymous_group() {
    let ds = seed();
    // g1 has r1; r1's "a/%c/#" for publishing, with the client id.
    assert_eq!(
        ds.check("cx", None, "a/cx/1", AclKind::Send),
        Verdict::Allow
    );
    assert_eq!(
        ds.check("cx", None, "a/cy/1", AclKind::Send),
        Verdict::Defer
    );
    // A client id with a wildcard never matches %c.
    assert_eq!(
        ds.check("c+", None, "a/c+/1", AclKind::Send),
        Verdict::Defer
    );
}

#[test]
fn role_without_wildcard_subs_refuses_wildcard_filters() {
    let mut ds = seed();
    let r = one(
        &mut ds,
        json!({"command": "createRole", "rolename": "nowild", "allowwildcardsubs": false,
               "acls": [{"acltype": "subscribePattern", "topic": "#", "allow": true}]}),
    );
    assert_eq!(r, json!({"command": "createRole"}));
    one(
        &mut ds,
        json!({"command": "addClientRole", "username": "u1", "rolename": "nowild", "priority": 99}),
    );
    assert_eq!(
        ds.check("c1", Some("u1"), "x/+", AclKind::Subscribe),
        Verdict::Deny
    );
    assert_eq!(
        ds.check("c1", Some("u1"), "x/y", AclKind::Subscribe),
        Verdict::Allow
    );
}

#[test]
fn bad_requests_get_mosquittos_errors() {
    let mut ds = seed();
    let out = ds.handle_control(b"not json", "t", &mut || [0; SALT_LEN]);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.response).unwrap(),
        json!({"responses": [{"command": "Unknown command", "error": "Payload not valid JSON"}]})
    );
    let (list, _) = run(&mut ds, json!("not json"));
    assert_eq!(
        list,
        vec![json!({"command": "Unknown command", "error": "Invalid/missing commands"})]
    );
    let (list, _) = run(
        &mut ds,
        json!({"commands": ["bad", {}, {"command": 6}, {"command": "nope", "correlationData": "9"},
                            {"command": "getClient", "correlationData": 6}, {"command": "listRoles"}]}),
    );
    assert_eq!(
        list,
        vec![
            json!({"command": "Unknown command", "error": "Command not an object"}),
            json!({"command": "Unknown command", "error": "Missing command"}),
            json!({"command": "Unknown command", "error": "Missing command"}),
            json!({"command": "nope", "error": "Unknown command", "correlationData": "9"}),
            // Mosquitto stops at a bad correlationData.
            json!({"command": "getClient", "error": "Invalid correlationData data type."}),
        ]
    );
    assert_eq!(
        one(
            &mut ds,
            json!({"command": "createClient", "username": "\u{ffff}LO"})
        ),
        json!({"command": "createClient", "error": "Username not valid UTF-8"})
    );
    assert_eq!(
        one(
            &mut ds,
            json!({"command": "addRoleACL", "rolename": "r1", "acltype": "subscribePattern", "topic": "a/#/b"})
        ),
        json!({"command": "addRoleACL", "error": "Invalid ACL topic"})
    );
    assert_eq!(
        one(
            &mut ds,
            json!({"command": "deleteGroup", "groupname": "g1"})
        ),
        json!({"command": "deleteGroup", "error": "Deleting the anonymous group is forbidden"})
    );
    assert_eq!(
        one(&mut ds, json!({"command": "modifyRole", "rolename": "zz"})),
        json!({"command": "modifyRole", "error": "Role does not exist"})
    );
}

#[test]
fn client_commands_change_state_and_kick() {
    let mut ds = seed();
    let (list, outcome) = run(
        &mut ds,
        json!({"commands": [{"command": "createClient", "username": "u2", "password": "p",
            "groups": [{"groupname": "g1", "priority": 4}], "roles": [{"rolename": "r1"}],
            "correlationData": "x"}]}),
    );
    assert_eq!(
        list,
        vec![json!({"command": "createClient", "correlationData": "x"})]
    );
    assert!(outcome.changed);
    assert!(outcome.kicks.is_empty());
    assert_eq!(
        one(&mut ds, json!({"command": "getClient", "username": "u2"})),
        json!({"command": "getClient", "data": {"client": {"username": "u2",
            "roles": [{"rolename": "r1"}], "groups": [{"groupname": "g1", "priority": 4}]}}})
    );
    assert_eq!(
        ds.authenticate(Some("u2"), Some(b"p"), "any"),
        Verdict::Allow
    );
    let (_, outcome) = run(
        &mut ds,
        json!({"commands": [{"command": "deleteClient", "username": "u2"}]}),
    );
    assert_eq!(outcome.kicks, vec![Kick::User("u2".into())]);
    assert!(!ds.groups["g1"].clients.contains_key("u2"));
    assert_eq!(
        one(
            &mut ds,
            json!({"command": "listClients", "count": 1, "offset": 1})
        ),
        json!({"command": "listClients", "data": {"totalCount": 2, "clients": ["u1"]}})
    );
    // Changing the anonymous group's role kicks the anonymous clients.
    let (_, outcome) = run(
        &mut ds,
        json!({"commands": [{"command": "addRoleACL", "rolename": "r1", "acltype": "publishClientReceive", "topic": "x", "allow": true}]}),
    );
    assert_eq!(
        outcome.kicks,
        vec![
            Kick::User("u1".into()),
            Kick::User("u1".into()),
            Kick::Anonymous
        ]
    );
}

#[test]
fn default_access_and_anonymous_group_commands() {
    let mut ds = seed();
    one(
        &mut ds,
        json!({"command": "setDefaultACLAccess", "acls": [{"acltype": "publishClientSend", "allow": true}]}),
    );
    assert_eq!(
        one(&mut ds, json!({"command": "getDefaultACLAccess"})),
        json!({"command": "getDefaultACLAccess", "data": {"acls": [
            {"acltype": "publishClientSend", "allow": true},
            {"acltype": "publishClientReceive", "allow": true},
            {"acltype": "subscribe", "allow": false},
            {"acltype": "unsubscribe", "allow": true}]}})
    );
    assert_eq!(
        one(&mut ds, json!({"command": "getAnonymousGroup"})),
        json!({"command": "getAnonymousGroup", "data": {"group": {"groupname": "g1"}}})
    );
}

#[test]
fn file_written_atomically_reads_back() {
    let dir = std::env::temp_dir().join(format!("culex-dynsec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dynamic-security.json");
    let ds = seed();
    write_atomically(&path, &ds.to_json()).unwrap();
    assert!(!dir.join("dynamic-security.json.new").exists());
    let back = DynSec::load(&path).unwrap();
    assert_eq!(back.to_json(), ds.to_json());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dynsec_control_corpus_replays() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/dynsec_control");
    let mut replayed = 0;
    for entry in std::fs::read_dir(dir).expect("the corpus directory exists") {
        let path = entry.expect("readable corpus entry").path();
        fuzz_dynsec_control(&std::fs::read(&path).expect("readable corpus file"));
        replayed += 1;
    }
    assert!(replayed >= 5, "only {replayed} corpus files in {dir}");
}
