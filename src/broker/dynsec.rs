//! Mosquitto's dynamic-security plugin in the core: `$CONTROL/dynamic-security/v1`
//! commands from clients the ACLs let publish there, their responses published on
//! `$CONTROL/dynamic-security/v1/response`, and the clients a change concerns
//! disconnected at once (MQTT 5: DISCONNECT 0x98, Administrative action), as Mosquitto's
//! `mosquitto_kick_client_by_username` does. The checks themselves are in
//! [`crate::auth::dynsec`] and are asked from access.rs.
//!
//! The core reads and writes no file: after a change, `net` takes the file's new text
//! with [`Broker::take_dynsec_save`] and writes it (write, fsync, rename).

use super::lifecycle::CloseReason;
use super::route::Publication;
use super::state::{ConnId, ConnState, SessionId};
use super::Broker;
use crate::auth::dynsec::control::{Kick, CONTROL_TOPIC, RESPONSE_TOPIC};
use crate::auth::dynsec::{DynSec, SALT_LEN};
use crate::protocol::QoS;
use std::path::PathBuf;
use std::time::Instant;

/// The loaded dynamic-security state and where it is saved.
pub(super) struct DynSecState {
    pub(super) ds: DynSec,
    path: PathBuf,
    /// Changed since `net` last took the text to write.
    unsaved: bool,
}

impl Broker {
    /// Installs the dynamic-security state read from `path` (at start-up; Mosquitto does
    /// not reload plugins on SIGHUP, and neither does culex).
    pub fn set_dynsec(&mut self, dynsec: Option<(DynSec, PathBuf)>) {
        self.dynsec = dynsec.map(|(ds, path)| DynSecState {
            ds,
            path,
            unsaved: false,
        });
    }

    /// After a command changed the state: the file to write and its new text, once.
    pub fn take_dynsec_save(&mut self) -> Option<(PathBuf, String)> {
        let state = self.dynsec.as_mut().filter(|s| s.unsaved)?;
        state.unsaved = false;
        Some((state.path.clone(), state.ds.to_json()))
    }

    /// Whether a PUBLISH to this topic is a command for a control API instead of a
    /// message: every `$CONTROL/` topic when dynamic security is on (Mosquitto never
    /// routes them).
    pub(super) fn is_control_topic(&self, topic: &str) -> bool {
        self.dynsec.is_some() && topic.starts_with("$CONTROL/")
    }

    /// A PUBLISH to a `$CONTROL/` topic that the ACL let through.
    pub(super) fn handle_control(
        &mut self,
        sid: SessionId,
        topic: &str,
        payload: &[u8],
        now: Instant,
    ) {
        if topic != CONTROL_TOPIC {
            return;
        }
        let session = self.session(sid);
        let admin = format!(
            "{}/{}",
            session.client_id,
            session.username.as_deref().unwrap_or("")
        );
        let Some(state) = self.dynsec.as_mut() else {
            return;
        };
        let mut salt = || {
            let mut salt = [0u8; SALT_LEN];
            // Without the OS RNG no password can be made safely: an all-zero salt would
            // still work, but getrandom(2) does not fail on Linux after boot.
            let _ = getrandom::getrandom(&mut salt);
            salt
        };
        let outcome = state.ds.handle_control(payload, &admin, &mut salt);
        state.unsaved |= outcome.changed;
        let mut response = Publication {
            topic: RESPONSE_TOPIC,
            payload: &outcome.response,
            qos: QoS::AtMostOnce,
            retain: false,
            stored: None,
            publisher: None,
        };
        self.route(&mut response, now);
        self.kick(&outcome.kicks, now);
    }

    /// Disconnects the clients logged in with these usernames (or without one).
    fn kick(&mut self, kicks: &[Kick], now: Instant) {
        if kicks.is_empty() {
            return;
        }
        let mut victims = Vec::new();
        for (slot, conn) in self.conns.iter() {
            if conn.is_bridge {
                continue;
            }
            let ConnState::Active(sid) = conn.state() else {
                continue;
            };
            let username = self.session(sid).username.as_deref();
            let hit = kicks.iter().any(|k| match k {
                Kick::User(name) => username == Some(name.as_str()),
                Kick::Anonymous => username.is_none(),
            });
            if hit {
                victims.push(ConnId(slot));
            }
        }
        for id in victims {
            self.close(id, CloseReason::Kicked, now);
        }
    }
}
