//! Who may do what: username and password against the password file and anonymous
//! access (and again after a reload), the ACL's read and write checks, the listener's
//! mount point on topics and filters, and the topic depth limit.

use super::lifecycle::CloseReason;
use super::settings::{ListenerAuth, ListenerLimits};
use super::state::{Conn, ConnId, ConnState, SessionId};
use super::{Broker, BRIDGE_LISTENER};
use crate::auth::dynsec::{AclKind, Verdict};
use crate::auth::{dollar_topic_allowed, Access, Acl, PasswordFile};
use crate::protocol::{Connect, ReasonCode};
use crate::topic::parse_shared;
use std::borrow::Cow;
use std::time::Instant;

/// Mosquitto's `TOPIC_HIERARCHY_LIMIT`: a topic name or filter with more `/` than this
/// is refused (Mosquitto 2.0 closes the connection). Without it a single SUBSCRIBE of a
/// 64 KB filter of 32,000 levels costs the tree 4 MB (measured: 50 such filters took a
/// broker from 3 MB to 200 MB of RSS), and the same holds for retained topics.
pub const MAX_TOPIC_SEPARATORS: usize = 200;

/// Whether a topic name or filter has more levels than [`MAX_TOPIC_SEPARATORS`] allows.
pub(super) fn is_too_deep(topic: &str) -> bool {
    // A name shorter than the limit cannot pass it (and a PUBLISH's topic rarely is
    // longer): no count.
    topic.len() > MAX_TOPIC_SEPARATORS
        && topic
            .bytes()
            .filter(|&b| b == b'/')
            .nth(MAX_TOPIC_SEPARATORS)
            .is_some()
}

impl Broker {
    /// Installs the password file and ACL (at start and on reload). Connected clients keep
    /// their connection; the new rules apply to what they do next, as in Mosquitto.
    pub fn set_auth(&mut self, passwords: Option<PasswordFile>, acl: Option<Acl>) {
        self.passwords = passwords;
        self.acl = acl;
    }

    /// After a reload: every connected client is checked again against anonymous access
    /// and the password file; those no longer allowed are disconnected (Mosquitto's
    /// security apply on SIGHUP).
    pub fn reauthenticate(&mut self, now: Instant) {
        let mut revoked = Vec::new();
        for (slot, conn) in self.conns.iter() {
            let ConnState::Active(sid) = conn.state() else {
                continue;
            };
            let Conn {
                version,
                password,
                limits,
                listener,
                ..
            } = conn;
            if limits.username_from_certificate {
                // Its certificate was verified in the handshake; nothing to check again.
                continue;
            }
            let session = self.session(sid);
            let connect = Connect {
                version: *version,
                clean_session: session.expiry_interval == 0,
                keep_alive: 0,
                client_id: &session.client_id,
                will: None,
                username: session.username.as_deref(),
                password: password.as_deref(),
                properties: Default::default(),
            };
            if self
                .authenticate(&connect, limits.allow_anonymous, *listener)
                .is_some()
            {
                revoked.push(ConnId(slot));
            }
        }
        for id in revoked {
            self.close(id, CloseReason::Revoked, now);
        }
    }

    /// A client (re)connects to `sid`: in-flight messages its ACL no longer lets it read
    /// (the ACL was reloaded, or it comes back under another username) are dropped before
    /// anything is resent, as Mosquitto's `connection_check_acl` does. Queued messages
    /// are checked as they leave the queue ([`Broker::may_read_queued`]).
    pub(super) fn drop_inflight_no_longer_allowed(&mut self, sid: SessionId) {
        if !self.has_acl() {
            return;
        }
        let session = self.session(sid);
        let denied: Vec<usize> = session
            .inflight
            .iter()
            .enumerate()
            .filter(|(_, i)| !self.may_read_queued(sid, i.message.topic()))
            .map(|(pos, _)| pos)
            .collect();
        for pos in denied.into_iter().rev() {
            self.remove_inflight(sid, pos);
        }
    }

    /// Whether the client of `sid` may still read a message on `topic` that was queued
    /// (or sent) for it earlier: the ACL may have been reloaded since, or the client may
    /// have come back under another username. Mosquitto drops such messages when the
    /// client connects; culex also when they leave the queue later.
    pub(super) fn may_read_queued(&self, sid: SessionId, topic: &str) -> bool {
        if !self.has_acl() {
            return true;
        }
        let session = self.session(sid);
        self.is_allowed(
            &session.client_id,
            session.username.as_deref(),
            topic,
            Access::Read,
            session.listener,
        )
    }

    /// With `per_listener_settings true`: each listener's password file and ACL, by
    /// listener index (empty: the global ones apply everywhere).
    pub fn set_listener_auth(&mut self, auth: Vec<ListenerAuth>) {
        self.listener_auth = auth;
    }

    /// The password file and ACL that apply to clients of `listener`.
    pub(super) fn auth_for(&self, listener: usize) -> (Option<&PasswordFile>, Option<&Acl>) {
        match self.listener_auth.get(listener) {
            Some(auth) => (auth.passwords.as_ref(), auth.acl.as_ref()),
            None if !self.listener_auth.is_empty() => (None, None),
            None => (self.passwords.as_ref(), self.acl.as_ref()),
        }
    }

    /// Dynamic security's SUBSCRIBE (or UNSUBSCRIBE) check of a filter as the client
    /// sent it (mount point added, `$share/...` kept), as Mosquitto's plugin makes it.
    /// Without dynamic security every filter may be used (the ACL file is applied to
    /// what is delivered, as in Mosquitto).
    pub(super) fn may_subscribe(&self, sid: SessionId, filter: &str, unsubscribe: bool) -> bool {
        let Some(state) = &self.dynsec else {
            return true;
        };
        let session = self.session(sid);
        if session.listener == BRIDGE_LISTENER {
            return true;
        }
        let kind = if unsubscribe {
            AclKind::Unsubscribe
        } else {
            AclKind::Subscribe
        };
        match state.ds.check(
            &session.client_id,
            session.username.as_deref(),
            filter,
            kind,
        ) {
            Verdict::Allow => true,
            Verdict::Deny => false,
            Verdict::Defer => self.auth_for(session.listener).1.is_some(),
        }
    }

    pub(super) fn has_acl(&self) -> bool {
        self.dynsec.is_some()
            || self.acl.is_some()
            || self.listener_auth.iter().any(|a| a.acl.is_some())
    }

    /// Username and password against `password_file` and `allow_anonymous`; `None` when
    /// the client may connect.
    pub(super) fn authenticate(
        &self,
        connect: &Connect<'_>,
        listener_allow_anonymous: Option<bool>,
        listener: usize,
    ) -> Option<ReasonCode> {
        self.check_credentials(
            connect.username,
            connect.password.unwrap_or_default(),
            connect.client_id,
            listener_allow_anonymous,
            listener,
        )
    }

    /// A request to an http_api listener's connection `id` with these HTTP basic
    /// credentials (RFC 7617) may be served: the same check as a CONNECT's username and
    /// password on that listener, as Mosquitto 2.1's http_api makes (`check_access`).
    pub fn is_http_authorized(&self, id: ConnId, credentials: Option<(&str, &[u8])>) -> bool {
        let Some(conn) = self.conns.get(id.0) else {
            return false;
        };
        let (username, password) = match credentials {
            Some((user, password)) => (Some(user), password),
            None => (None, &[][..]),
        };
        // No MQTT client id: a dynamic-security client with a fixed one is refused.
        self.check_credentials(
            username,
            password,
            "",
            conn.limits.allow_anonymous,
            conn.listener,
        )
        .is_none()
    }

    fn check_credentials(
        &self,
        username: Option<&str>,
        password: &[u8],
        client_id: &str,
        listener_allow_anonymous: Option<bool>,
        listener: usize,
    ) -> Option<ReasonCode> {
        if listener == BRIDGE_LISTENER {
            return None;
        }
        let allow_anonymous = listener_allow_anonymous.unwrap_or(self.settings.allow_anonymous);
        if let Some(state) = &self.dynsec {
            // The plugin first; what it leaves open (no username, an unknown one, a
            // client without a password) goes on as in Mosquitto when every plugin
            // deferred: anonymous access, or the password file, or refused.
            return match state.ds.authenticate(username, Some(password), client_id) {
                Verdict::Allow => None,
                Verdict::Deny => Some(ReasonCode::NOT_AUTHORIZED),
                Verdict::Defer => match (username, self.auth_for(listener).0) {
                    (None, _) if allow_anonymous => None,
                    (Some(user), Some(passwords)) if passwords.check(user, password) => None,
                    _ => Some(ReasonCode::NOT_AUTHORIZED),
                },
            };
        }
        match (username, self.auth_for(listener).0) {
            (None, _) if allow_anonymous => None,
            (None, _) => Some(ReasonCode::NOT_AUTHORIZED),
            (Some(user), Some(passwords)) => {
                if passwords.check(user, password) {
                    None
                } else {
                    // Mosquitto 2.0 answers a wrong or missing password with Not authorized:
                    // 0x87 in MQTT 5, 0x05 in 3.1/3.1.1 (where 0x04 means a "malformed"
                    // user name or password, 3.2.2.3). The spec leaves the choice open:
                    // 0x86 and 0x87 are both CONNACK reason codes (3.2.2.2).
                    Some(ReasonCode::NOT_AUTHORIZED)
                }
            }
            // A username without a password file is not checked (Mosquitto), but without
            // anonymous access there is nothing to check it against.
            (Some(_), None) if allow_anonymous => None,
            (Some(_), None) => Some(ReasonCode::NOT_AUTHORIZED),
        }
    }

    /// ACL check: Mosquitto's `$` topic rules always, the acl_file's rules if one is set.
    pub(super) fn is_allowed(
        &self,
        client_id: &str,
        username: Option<&str>,
        topic: &str,
        access: Access,
        listener: usize,
    ) -> bool {
        if listener == BRIDGE_LISTENER {
            return true;
        }
        if let Some(state) = &self.dynsec {
            if !dollar_topic_allowed(topic, access) {
                return false;
            }
            let kind = match access {
                Access::Read => AclKind::Receive,
                Access::Write => AclKind::Send,
            };
            // Left open by dynamic security: the acl_file if there is one, otherwise
            // refused (Mosquitto: every plugin deferred).
            return match state.ds.check(client_id, username, topic, kind) {
                Verdict::Allow => true,
                Verdict::Deny => false,
                Verdict::Defer => self
                    .auth_for(listener)
                    .1
                    .is_some_and(|acl| acl.check(client_id, username, topic, access)),
            };
        }
        match self.auth_for(listener).1 {
            Some(acl) => acl.check(client_id, username, topic, access),
            None => dollar_topic_allowed(topic, access),
        }
    }

    /// A topic name a client sent, with its listener's mount point: `Owned` if prefixed,
    /// `Borrowed` (the name as it is) without a mount point.
    pub(super) fn mount<'t>(&self, id: ConnId, topic: &'t str) -> Cow<'t, str> {
        match self.conns.get(id.0) {
            Some(Conn {
                limits:
                    ListenerLimits {
                        mount_point: Some(mount_point),
                        ..
                    },
                ..
            }) => Cow::Owned(format!("{mount_point}{topic}")),
            _ => Cow::Borrowed(topic),
        }
    }

    /// A topic filter a client sent, with its listener's mount point; for a shared
    /// subscription the prefix goes before its filter (`$share/g/MOUNTf`; Mosquitto
    /// prefixes the whole string, which makes it an ordinary subscription that matches
    /// nothing). `None` if the prefixed filter is not valid.
    pub(super) fn mount_filter<'f>(&self, id: ConnId, filter: &'f str) -> Option<Cow<'f, str>> {
        let mounted = match parse_shared(filter) {
            Some((name, inner)) => match self.mount(id, inner) {
                Cow::Owned(inner) => Cow::Owned(format!("$share/{name}/{inner}")),
                Cow::Borrowed(_) => Cow::Borrowed(filter),
            },
            None => self.mount(id, filter),
        };
        let inner = parse_shared(&mounted).map_or(&*mounted, |(_, inner)| inner);
        crate::topic::is_valid_filter(inner).then_some(mounted)
    }
}
