//! Fuzz target bodies for the dynamic-security command parser and file reader, in the
//! library so `cargo test` replays the seed corpus (`fuzz/corpus/dynsec_control`) on
//! stable and `fuzz/fuzz_targets/dynsec_control.rs` stays a thin wrapper.

use super::control::Kick;
use super::{DynSec, SALT_LEN};
use serde_json::Value;

/// The input is a request published to `$CONTROL/dynamic-security/v1`, answered against
/// a small state (Mosquitto's `dynsec init` file plus one of each kind). Whatever it is,
/// the answer is a `{"responses": [...]}` object of `{"command": ...}` objects, the state
/// still writes and reads back the same, and the input read as a file never panics.
pub fn fuzz_dynsec_control(data: &[u8]) {
    let mut ds = DynSec::parse(SEED_STATE.as_bytes()).expect("the seed state parses");
    let outcome = ds.handle_control(data, "fuzz/fuzz", &mut || [7u8; SALT_LEN]);
    let response: Value = serde_json::from_slice(&outcome.response).expect("the response is JSON");
    let responses = response
        .get("responses")
        .and_then(Value::as_array)
        .expect("a responses array");
    for r in responses {
        assert!(r.get("command").and_then(Value::as_str).is_some(), "{r}");
    }
    for kick in &outcome.kicks {
        if let Kick::User(name) = kick {
            assert!(!name.is_empty() || data.windows(2).any(|w| w == b"\"\""));
        }
    }
    let text = ds.to_json();
    let again = DynSec::parse(text.as_bytes()).expect("what culex writes, it reads");
    assert_eq!(again.to_json(), text, "a second round trip changes nothing");
    // Every reference points at something that exists.
    for client in ds.clients.values() {
        for role in &client.roles {
            assert!(ds.roles.contains_key(&role.name), "{}", role.name);
        }
        for group in &client.groups {
            assert!(ds.groups[&group.name]
                .clients
                .contains_key(&client.username));
        }
    }
    let _ = DynSec::parse(data);
}

/// Mosquitto's `mosquitto_ctrl dynsec init` file with a client, group and role added
/// (password "admin" at 2 iterations, so a run stays fast).
pub const SEED_STATE: &str = r##"{
  "clients": [
    {"username": "admin", "textname": "Dynsec admin user",
     "password": "Y9SzIf27A1c5fgs5TTvfljInyby/TUFq57ramRgii+HOXUMfdCHu37WBTFORPf3oVudzT3cZkQkNhWQTr0IHyw==",
     "salt": "vgm/0lPa2wC4T7/Y", "iterations": 2,
     "roles": [{"rolename": "admin"}]},
    {"username": "u1", "clientid": "c1", "roles": [{"rolename": "r1", "priority": 3}]}
  ],
  "groups": [
    {"groupname": "g1", "roles": [{"rolename": "r1"}], "clients": [{"username": "u1", "priority": 2}]}
  ],
  "roles": [
    {"rolename": "admin", "acls": [
      {"acltype": "publishClientSend", "topic": "$CONTROL/dynamic-security/#", "allow": true},
      {"acltype": "subscribePattern", "topic": "#", "allow": true}]},
    {"rolename": "r1", "acls": [
      {"acltype": "publishClientSend", "topic": "a/%c/#", "priority": 5, "allow": true},
      {"acltype": "subscribeLiteral", "topic": "a/+", "allow": false}]}
  ],
  "defaultACLAccess": {"publishClientSend": false, "publishClientReceive": true,
                       "subscribe": false, "unsubscribe": true},
  "anonymousGroup": "g1",
  "somethingElse": {"kept": true}
}"##;
