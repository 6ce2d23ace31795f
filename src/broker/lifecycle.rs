//! How connections and sessions end and begin: `close` and `end_connection` (the one
//! place a connection ends, with its log line), the connect timeout and keep alive, session
//! creation, removal and expiry, and wills (at once or after their delay).

use super::route::Publication;
use super::state::{ConnId, ConnState, Session, SessionId, Timer};
use super::{Broker, Message, BRIDGE_LISTENER};
use crate::persist::record::Record;
use crate::protocol::{DecodeError, Disconnect, Packet, Props, ProtocolVersion, ReasonCode};
use log::{debug, info};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Why a connection ends; each has one log sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CloseReason {
    /// The client sent DISCONNECT: no will. [MQTT-3.14.4-3]
    Disconnected,
    /// MQTT 5 DISCONNECT with reason 0x04: the will is published. [MQTT-3.14.2.1]
    DisconnectedWithWill,
    /// The socket closed or failed without DISCONNECT.
    SocketLost,
    /// Keep alive expired. [MQTT-3.1.2-24]
    KeepAliveTimeout,
    /// No CONNECT in time.
    ConnectTimeout,
    ProtocolError(DecodeError),
    /// A fixed header refused before its body is read (PINGREQ with a body, a 3.1.1
    /// acknowledgement whose Remaining Length is not 2, a CONNECT over 100,000 bytes):
    /// closed without DISCONNECT, as Mosquitto's `packet__read` does.
    BadHeader(DecodeError),
    /// A packet that is well formed but not allowed now (a second CONNECT, a CONNACK from
    /// a client, anything before CONNECT).
    UnexpectedPacket(&'static str),
    /// Another connection took this client id over. [MQTT-3.1.4-2]
    TakenOver,
    /// CONNACK refused the connection.
    Refused,
    /// A reload revoked the client's access.
    Revoked,
    /// Dynamic security changed, disabled or deleted the client (Mosquitto's
    /// `mosquitto_kick_client_by_username`); MQTT 5 is told 0x98.
    Kicked,
    /// An MQTT 5 rule broken by a well-formed packet (topic alias, receive maximum...):
    /// the reason code sent in DISCONNECT, and what happened.
    Violation(ReasonCode, &'static str),
    /// `persistence_sync ack` with the store degraded: an acknowledgement that has no
    /// failure code was refused (`durable.rs`); MQTT 5 is told 0x97.
    NotDurable,
}

/// The reason code an MQTT 5 client is sent in DISCONNECT when the server closes.
fn disconnect_reason(reason: CloseReason) -> Option<ReasonCode> {
    match reason {
        CloseReason::ProtocolError(e) => Some(ReasonCode::from(e)),
        CloseReason::UnexpectedPacket(_) => Some(ReasonCode::PROTOCOL_ERROR),
        CloseReason::KeepAliveTimeout => Some(ReasonCode::KEEP_ALIVE_TIMEOUT),
        CloseReason::TakenOver => Some(ReasonCode::SESSION_TAKEN_OVER),
        CloseReason::Revoked => Some(ReasonCode::NOT_AUTHORIZED),
        CloseReason::Kicked => Some(ReasonCode::ADMINISTRATIVE_ACTION),
        CloseReason::Violation(code, _) => Some(code),
        CloseReason::NotDurable => Some(ReasonCode::QUOTA_EXCEEDED),
        CloseReason::Disconnected
        | CloseReason::DisconnectedWithWill
        | CloseReason::SocketLost
        | CloseReason::BadHeader(_)
        | CloseReason::ConnectTimeout
        | CloseReason::Refused => None,
    }
}

fn keep_alive_grace(keep_alive: u16) -> Duration {
    Duration::from_millis(u64::from(keep_alive) * 1500)
}

pub(super) fn describe(reason: CloseReason) -> String {
    match reason {
        CloseReason::Disconnected => "client sent DISCONNECT".into(),
        CloseReason::DisconnectedWithWill => "client sent DISCONNECT with will".into(),
        CloseReason::Violation(code, what) => format!("protocol error ({what}, {code})"),
        CloseReason::SocketLost => "connection lost".into(),
        CloseReason::KeepAliveTimeout => "exceeded keep alive timeout".into(),
        CloseReason::ConnectTimeout => "no CONNECT in time".into(),
        CloseReason::ProtocolError(e) | CloseReason::BadHeader(e) => {
            format!("protocol error ({e})")
        }
        CloseReason::UnexpectedPacket(what) => format!("protocol error ({what})"),
        CloseReason::TakenOver => "taken over by a new connection".into(),
        CloseReason::Refused => "connection refused".into(),
        CloseReason::Revoked => "no longer authorised after a reload".into(),
        CloseReason::Kicked => "changed, disabled or deleted by dynamic security".into(),
        CloseReason::NotDurable => {
            "acknowledgement refused, persistence cannot write (persistence_sync ack)".into()
        }
    }
}

/// Mosquitto 2.0's notice when a connection ends (`do_disconnect`, src/loop.c), after
/// "Client ID": its texts, which fail2ban filters and log monitors match. `None`: no line
/// (taken over, refused).
fn disconnect_notice(reason: CloseReason) -> Option<&'static str> {
    const MALFORMED: &str = "disconnected due to malformed packet.";
    const PROTOCOL: &str = "disconnected due to protocol error.";
    let by_code = |code: ReasonCode| match code {
        ReasonCode::MALFORMED_PACKET => MALFORMED,
        ReasonCode::PACKET_TOO_LARGE => "disconnected due to oversize packet.",
        ReasonCode::NOT_AUTHORIZED => "disconnected, not authorised.",
        ReasonCode::QOS_NOT_SUPPORTED | ReasonCode::RETAIN_NOT_SUPPORTED => {
            "disconnected due to using not allowed feature (QoS too high, retain not \
             supported, or bad AUTH method)."
        }
        _ => PROTOCOL,
    };
    Some(match reason {
        // Mosquitto's reload disconnects a client no longer allowed in as "disconnecting".
        CloseReason::Disconnected | CloseReason::DisconnectedWithWill | CloseReason::Revoked => {
            "disconnected."
        }
        CloseReason::SocketLost => "closed its connection.",
        CloseReason::KeepAliveTimeout | CloseReason::ConnectTimeout => {
            "has exceeded timeout, disconnecting."
        }
        CloseReason::ProtocolError(e) | CloseReason::BadHeader(e) => by_code(ReasonCode::from(e)),
        CloseReason::UnexpectedPacket(_) => PROTOCOL,
        CloseReason::Violation(code, _) => by_code(code),
        // No Mosquitto equivalent: its "disconnected: <why>." form.
        CloseReason::NotDurable => {
            "disconnected: acknowledgement refused, persistence cannot write \
             (persistence_sync ack)."
        }
        // Mosquitto 2.0's text, its grammar included.
        CloseReason::Kicked => "been disconnected by administrative action.",
        CloseReason::TakenOver | CloseReason::Refused => return None,
    })
}

impl Broker {
    /// The notice for a connection that ended, as Mosquitto words it, and what culex
    /// knows beyond it (which rule a packet broke) as a debug line.
    fn log_disconnect(&self, client_id: &str, peer: &str, reason: CloseReason) {
        let Some(notice) = disconnect_notice(reason) else {
            return;
        };
        info!("Client {client_id} {notice}");
        if matches!(
            reason,
            CloseReason::ProtocolError(_)
                | CloseReason::BadHeader(_)
                | CloseReason::UnexpectedPacket(_)
                | CloseReason::Violation(..)
                | CloseReason::Revoked
        ) {
            debug!(
                "Client {client_id} from {peer} disconnected: {}.",
                describe(reason)
            );
        }
    }

    pub(super) fn create_session(&mut self, client_id: Box<str>) -> SessionId {
        let session = Session::new(client_id.clone());
        let sid = SessionId(self.sessions.insert(session));
        self.by_client_id.insert(client_id, sid);
        sid
    }

    pub(super) fn remove_session(&mut self, sid: SessionId) {
        self.journal_session(sid, |j, sid| j.record(Record::SessionEnd { sid }));
        let Some(session) = self.sessions.remove(sid.0) else {
            return;
        };
        self.stats.release_session(&session);
        for (filter, _) in &session.subscriptions {
            self.unsubscribe_in_trees(filter, sid);
        }
        self.by_client_id.remove(&session.client_id);
        if self.by_client_id.capacity() > 64
            && self.by_client_id.len() < self.by_client_id.capacity() / 4
        {
            self.by_client_id.shrink_to_fit();
        }
    }

    /// A disconnected session reached its expiry: its delayed will goes out, and it and
    /// its queue are discarded. [MQTT-3.1.2-23]
    pub(super) fn expire_session(&mut self, sid: SessionId, at: Instant, now: Instant) {
        let Some(session) = self.sessions.get(sid.0) else {
            return;
        };
        if session.conn.is_none() && session.expires_at == Some(at) {
            if self.settings.connection_messages {
                info!("Expiring client {} due to timeout.", session.client_id);
            }
            self.stats.clients_expired += 1;
            self.publish_pending_will(sid, now);
            self.remove_session(sid);
        }
    }

    /// The Will Delay Interval of a disconnected session passed. [MQTT-3.1.3-9]
    pub(super) fn publish_delayed_will(&mut self, sid: SessionId, at: Instant, now: Instant) {
        let is_due = self
            .sessions
            .get(sid.0)
            .and_then(|s| s.pending_will.as_ref())
            .is_some_and(|(_, due)| *due == at);
        if is_due {
            self.publish_pending_will(sid, now);
        }
    }

    pub(super) fn publish_pending_will(&mut self, sid: SessionId, now: Instant) {
        let Some((will, at)) = self
            .sessions
            .get_mut(sid.0)
            .and_then(|s| s.pending_will.take())
        else {
            return;
        };
        self.timers.cancel(at, Timer::WillDelay(sid));
        self.journal_session(sid, |j, sid| j.record(Record::WillDone { sid }));
        self.publish_will(&will, now);
    }

    /// Drops a session's delayed will unpublished: its client came back in time.
    pub(super) fn discard_pending_will(&mut self, sid: SessionId) {
        let Some((_, at)) = self
            .sessions
            .get_mut(sid.0)
            .and_then(|s| s.pending_will.take())
        else {
            return;
        };
        self.timers.cancel(at, Timer::WillDelay(sid));
        self.journal_session(sid, |j, sid| j.record(Record::WillDone { sid }));
    }

    /// Publishes a will as if its client had sent it (retained if it asked).
    fn publish_will(&mut self, will: &Rc<Message>, now: Instant) {
        let mut publication = Publication::of(will);
        if will.retain {
            self.set_retained(&mut publication);
        }
        self.route(&mut publication, now);
    }

    /// Ends the connection's part in the broker and asks the loop to close the socket
    /// once its outbox is written.
    pub(super) fn close(&mut self, id: ConnId, reason: CloseReason, now: Instant) {
        self.drop_held_output(id);
        // MQTT 5: the server says why before it closes. [MQTT-4.13.1-1]
        let is_active_v5 = self.conns.get(id.0).is_some_and(|c| {
            c.version == ProtocolVersion::V5 && matches!(c.state(), ConnState::Active(_))
        });
        if let Some(code) = disconnect_reason(reason).filter(|_| is_active_v5) {
            self.send(
                id,
                &Packet::Disconnect(Disconnect {
                    reason: code,
                    properties: Props::default(),
                }),
            );
        }
        self.end_connection(id, reason, now);
        self.closing.push_back(id);
    }

    /// The one place a connection ends: log line, will, session detached or removed.
    pub(super) fn end_connection(&mut self, id: ConnId, reason: CloseReason, now: Instant) {
        let peer = self.peer(id);
        let Some(conn) = self.conns.get_mut(id.0) else {
            return;
        };
        let state = conn.set_state(ConnState::Closing);
        let will = conn.will.take();
        let will_delay = conn.will_delay;
        if let Some(at) = conn.deadline.take() {
            self.timers.cancel(at, Timer::Conn(id));
        }
        let ConnState::Active(sid) = state else {
            // Before CONNECT was accepted Mosquitto has no client id to name. A socket
            // closed then is not logged; a refused CONNECT was logged when refused.
            if self.settings.connection_messages
                && !matches!(reason, CloseReason::Refused | CloseReason::SocketLost)
            {
                self.log_disconnect("<unknown>", &peer, reason);
            }
            return;
        };
        self.stats.clients_connected -= 1;
        let client_id = self.session(sid).client_id.clone();
        if self.settings.connection_messages {
            self.log_disconnect(&client_id, &peer, reason);
        }
        let expiry_interval = self.session(sid).expiry_interval;
        if let Some(will) = will.filter(|_| reason != CloseReason::Disconnected) {
            // [MQTT-3.1.2-8]: the will is published when the connection ends without
            // DISCONNECT; [MQTT-3.1.2-10]: DISCONNECT discards it. MQTT 5 may delay it
            // until the Will Delay Interval or the session's end. [MQTT-3.1.3-9]
            if will_delay == 0 || expiry_interval == 0 {
                self.publish_will(&will, now);
            } else {
                let delay = will_delay.min(expiry_interval);
                let at = now + Duration::from_secs(u64::from(delay));
                self.journal_session(sid, |j, sid| j.will(sid, &will, at));
                self.session_mut(sid).pending_will = Some((will, at));
                self.timers.schedule(at, Timer::WillDelay(sid));
            }
        }
        // 3.1.1 persistent sessions, and MQTT 5's "never" (0xFFFFFFFF), last until
        // persistent_client_expiration if it is set; a bridge's outbox does not expire.
        let is_bridge = self.session(sid).listener == BRIDGE_LISTENER;
        let expires_after = match expiry_interval {
            0 => Some(Duration::ZERO),
            u32::MAX if is_bridge => None,
            u32::MAX => self.settings.persistent_client_expiration,
            secs => Some(Duration::from_secs(u64::from(secs))),
        };
        let session = self.session_mut(sid);
        session.conn = None;
        let last = session.last_packet_id;
        match expires_after {
            // [MQTT-3.1.2-6] / [MQTT-3.1.2-23]: the session ends with its connection.
            Some(after) if after.is_zero() => self.remove_session(sid),
            Some(after) => {
                let at = now + after;
                session.expires_at = Some(at);
                self.timers.schedule(at, Timer::SessionExpiry(sid));
                self.journal_session(sid, |j, sid| j.offline(sid, Some(at), last));
            }
            None => self.journal_session(sid, |j, sid| j.offline(sid, None, last)),
        }
    }

    pub(super) fn arm_conn_timer(&mut self, id: ConnId, now: Instant) {
        let Some(conn) = self.conns.get_mut(id.0) else {
            return;
        };
        if let Some(at) = conn.deadline.take() {
            self.timers.cancel(at, Timer::Conn(id));
        }
        if conn.keep_alive == 0 {
            return;
        }
        let at = now + keep_alive_grace(conn.keep_alive);
        conn.deadline = Some(at);
        self.timers.schedule(at, Timer::Conn(id));
    }

    pub(super) fn check_conn_deadline(&mut self, id: ConnId, at: Instant, now: Instant) {
        let Some(conn) = self.conns.get_mut(id.0) else {
            return;
        };
        if conn.deadline != Some(at) {
            return;
        }
        conn.deadline = None;
        match conn.state() {
            ConnState::Connecting => self.close(id, CloseReason::ConnectTimeout, now),
            ConnState::Active(_) => {
                // [MQTT-3.1.2-24]: one and a half times the keep alive without a packet.
                let grace = keep_alive_grace(conn.keep_alive);
                let mut due = conn.last_seen + grace;
                // A connection held by backpressure (pressure.rs) is not being read: its
                // packets wait in its socket, so its keep alive waits too.
                if due <= now && self.is_held(id) {
                    due = now + grace;
                }
                if due <= now {
                    self.close(id, CloseReason::KeepAliveTimeout, now);
                } else {
                    if let Some(conn) = self.conns.get_mut(id.0) {
                        conn.deadline = Some(due);
                    }
                    self.timers.schedule(due, Timer::Conn(id));
                }
            }
            ConnState::Closing => {}
        }
    }
}
