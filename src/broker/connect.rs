//! CONNECT and DISCONNECT. `handle_connect` runs in steps: the refusal chain
//! (`connect_refusal`), taking over, resuming or creating the session
//! (`take_over_or_create_session`), the connection taking it on (`activate_connection`),
//! and the CONNACK with what a resumed session still owes the client
//! (`send_connect_ack`).

use super::access::is_too_deep;
use super::lifecycle::CloseReason;
use super::settings::ListenerLimits;
use super::state::{ConnId, ConnState, SessionId, Timer};
use super::{Broker, Message, MessageProps, BRIDGE_LISTENER};
use crate::auth::Access;
use crate::protocol::{Connack, Connect, Disconnect, Packet, ProtocolVersion, QoS, ReasonCode};
use log::{debug, error, info};
use std::time::Instant;

fn display_id(id: &str) -> &str {
    if id.is_empty() {
        "<empty>"
    } else {
        id
    }
}

/// Why a CONNECT is refused: with a CONNACK and this reason code, or by closing the
/// connection without one.
enum Refusal {
    Connack(ReasonCode),
    /// A will to `$CONTROL/...`: closed without CONNACK, as Mosquitto does.
    WillToControlTopic,
    /// A will payload over message_size_limit: CONNACK with this code.
    WillTooLarge(ReasonCode),
}

/// Mosquitto 2.0's notice for a refused CONNECT (`do_disconnect` in src/loop.c, by the
/// error `handle__connect` returned). Mosquitto knows the client id only once the
/// packet has been read whole, so it names the client `<unknown>` for refusals it makes
/// while reading (protocol version, client id, will); fail2ban filters match these
/// lines.
fn log_refusal(refusal: &Refusal, connect: &Connect<'_>, address: &str) {
    let id = connect.client_id;
    let code = match refusal {
        Refusal::WillToControlTopic => {
            info!("Bad socket read/write on client <unknown>: Access denied by ACL.");
            return;
        }
        Refusal::WillTooLarge(_) => {
            debug!("Client {id} connected with too large Will payload");
            info!("Client <unknown> disconnected due to oversize payload.");
            return;
        }
        Refusal::Connack(code) => *code,
    };
    match code {
        ReasonCode::NOT_AUTHORIZED | ReasonCode::BAD_USER_NAME_OR_PASSWORD => {
            info!("Client {} disconnected, not authorised.", display_id(id))
        }
        ReasonCode::UNSUPPORTED_PROTOCOL_VERSION => {
            let level = match connect.version {
                ProtocolVersion::V31 => 3,
                ProtocolVersion::V311 => 4,
                ProtocolVersion::V5 => 5,
            };
            info!(target: "information", "Invalid protocol version {level} in CONNECT from {address}.");
            info!("Client <unknown> disconnected due to protocol error.");
        }
        ReasonCode::QOS_NOT_SUPPORTED | ReasonCode::RETAIN_NOT_SUPPORTED => info!(
            "Client <unknown> disconnected due to using not allowed feature (QoS too high, \
             retain not supported, or bad AUTH method)."
        ),
        ReasonCode::BAD_AUTHENTICATION_METHOD => info!(
            "Client {} disconnected due to using not allowed feature (QoS too high, retain \
             not supported, or bad AUTH method).",
            display_id(id)
        ),
        // 2.1 global_max_clients.
        ReasonCode::SERVER_UNAVAILABLE => info!(
            "Client {} disconnected: global_max_clients reached.",
            display_id(id)
        ),
        // An empty or 3.1 client id, a keep alive over max_keepalive, a will topic too deep.
        _ => info!("Client <unknown> disconnected due to protocol error."),
    }
}

/// An assigned client id as Mosquitto writes one (`client_id_gen`): the prefix, then 16
/// random bytes as 36 characters in UUID form, `XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX`
/// (upper-case hex, each byte's low nibble first). Clients and scripts that parse or
/// size these ids (the suite's `12-prop-assigned-client-identifier`) see the same shape.
/// The bytes are keyed hashes of a counter, unpredictable without the process's keys.
pub(super) fn assigned_client_id(
    prefix: &str,
    keys: &std::collections::hash_map::RandomState,
    counter: u64,
) -> String {
    use std::hash::BuildHasher;
    let mut bytes = [0u8; 16];
    for (half, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&keys.hash_one((counter, half)).to_le_bytes());
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut id = String::with_capacity(prefix.len() + 36);
    id.push_str(prefix);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            id.push('-');
        }
        id.push(char::from(HEX[usize::from(byte & 0x0f)]));
        id.push(char::from(HEX[usize::from(byte >> 4)]));
    }
    id
}

impl Broker {
    pub(super) fn handle_connect(&mut self, id: ConnId, connect: &Connect<'_>, now: Instant) {
        let peer = self.peer(id);
        let from_certificate = self.conn_limits(id).username_from_certificate;
        let mut certificate_username = None;
        if let Some(conn) = self.conn_mut(id) {
            conn.version = connect.version;
            certificate_username = conn.certificate_username.take();
        }
        // Mosquitto: with use_identity_as_username or use_subject_as_username the
        // CONNECT's username and password are dropped; the certificate's name is the
        // username, for ACLs too, and the password file is not consulted.
        // One copy per connection: the will's topic is mounted in it below.
        let mut connect = connect.clone();
        if from_certificate {
            connect.username = certificate_username.as_deref();
            connect.password = None;
        }
        let mounted_will_topic = connect.will.as_ref().map(|w| self.mount(id, w.topic));
        if let (Some(will), Some(topic)) = (connect.will.as_mut(), mounted_will_topic.as_ref()) {
            will.topic = topic;
        }
        let limits = self.conn_limits(id);
        let listener = self.conns.get(id.0).map_or(0, |c| c.listener);
        let refusal = self.connect_refusal(id, &connect, from_certificate, &limits, listener);
        if let Some(refusal) = refusal {
            if self.settings.connection_messages {
                log_refusal(&refusal, &connect, &self.peer_address(id));
            }
            if let Refusal::Connack(code) | Refusal::WillTooLarge(code) = refusal {
                self.send_connack(id, false, code);
            }
            return self.close(id, CloseReason::Refused, now);
        }

        let is_v5 = connect.version == ProtocolVersion::V5;
        let is_assigned = connect.client_id.is_empty();
        let (client_id, sid, session_present) =
            self.take_over_or_create_session(id, &connect, &limits, listener, now);
        let (keep_alive, server_keep_alive) =
            self.activate_connection(id, sid, &connect, listener, now);

        self.stats.clients_connected += 1;
        self.stats.clients_maximum = self.stats.clients_maximum.max(self.stats.clients_connected);
        if self.settings.connection_messages {
            let user = connect
                .username
                .map(|u| format!(", u'{u}'"))
                .unwrap_or_default();
            // Mosquitto's wording and its protocol numbers (p1 3.1, p2 3.1.1, p5 5.0),
            // which users grep for.
            let p = match connect.version {
                ProtocolVersion::V31 => 1,
                ProtocolVersion::V311 => 2,
                ProtocolVersion::V5 => 5,
            };
            info!(
                "New client connected from {peer} as {client_id} (p{p}, c{}, k{keep_alive}{user}).",
                u8::from(connect.clean_session),
            );
            match &connect.will {
                Some(w) => {
                    debug!(
                        "Will message specified ({} bytes) (r{}, q{}).",
                        w.payload.len(),
                        u8::from(w.retain),
                        w.qos as u8
                    );
                    debug!("\t{}", w.topic);
                }
                None => debug!("No will message specified."),
            }
        }
        let assigned = (is_v5 && is_assigned).then_some(&*client_id);
        self.send_connect_ack(id, sid, session_present, assigned, server_keep_alive, now);
    }

    /// Step 1 of CONNECT: why the connection is refused, in Mosquitto's order of checks;
    /// `None` if it is accepted.
    fn connect_refusal(
        &self,
        id: ConnId,
        connect: &Connect<'_>,
        from_certificate: bool,
        limits: &ListenerLimits,
        listener: usize,
    ) -> Option<Refusal> {
        let is_v5 = connect.version == ProtocolVersion::V5;
        let refuse = |code| Some(Refusal::Connack(code));
        let is_accepted_version = match connect.version {
            ProtocolVersion::V31 => limits.accepts_v31,
            ProtocolVersion::V311 => limits.accepts_v311,
            ProtocolVersion::V5 => limits.accepts_v5,
        };
        let is_new_session = !self.by_client_id.contains_key(connect.client_id);
        if !is_accepted_version {
            // 2.1 accept_protocol_versions: as an unsupported level. [MQTT-3.1.2-2]
            refuse(ReasonCode::UNSUPPORTED_PROTOCOL_VERSION)
        } else if is_new_session
            && self
                .settings
                .global_max_clients
                .is_some_and(|max| self.by_client_id.len() >= max)
        {
            // 2.1 global_max_clients: no room for another session.
            refuse(ReasonCode::SERVER_UNAVAILABLE)
        } else if is_v5 && connect.properties.authentication_method.is_some() {
            // Enhanced authentication is not supported. [MQTT-4.12.0-1]
            refuse(ReasonCode::BAD_AUTHENTICATION_METHOD)
        } else if connect.client_id.is_empty()
            && ((!connect.clean_session && !is_v5)
                || !limits
                    .allow_zero_length_clientid
                    .unwrap_or(self.settings.allow_zero_length_clientid)
                || connect.version == ProtocolVersion::V31)
        {
            // [MQTT-3.1.3-8] (3.1.1): an empty id needs clean session; 3.1 requires 1-23
            // bytes. MQTT 5 lets the server assign one either way [MQTT-3.1.3-6]; it MAY
            // refuse with 0x85 [MQTT-3.1.3-8], and Mosquitto answers 0x80 Unspecified
            // error, which clients written against it expect.
            refuse(if is_v5 {
                ReasonCode::UNSPECIFIED_ERROR
            } else {
                ReasonCode::CLIENT_IDENTIFIER_NOT_VALID
            })
        } else if connect
            .will
            .as_ref()
            .is_some_and(|w| w.topic.starts_with("$CONTROL/"))
        {
            // Mosquitto: a will may not be addressed to a broker plugin's control topic;
            // the connection is closed without CONNACK ([MQTT-3.1.4-3] allows either).
            Some(Refusal::WillToControlTopic)
        } else if connect
            .will
            .as_ref()
            .is_some_and(|w| w.payload.len() > self.settings.message_size_limit)
        {
            // Mosquitto: a will larger than message_size_limit refuses the connection.
            Some(Refusal::WillTooLarge(if is_v5 {
                ReasonCode::PACKET_TOO_LARGE
            } else {
                ReasonCode::NOT_AUTHORIZED
            }))
        } else if !is_v5
            && self.settings.max_keepalive != 0
            && connect.keep_alive > self.settings.max_keepalive
        {
            // Mosquitto: a 3.1/3.1.1 client cannot be told a shorter keep alive.
            refuse(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID)
        } else if connect
            .will
            .as_ref()
            .is_some_and(|w| w.qos > self.conn_limits(id).max_qos)
        {
            // [MQTT-3.2.2-12]
            refuse(ReasonCode::QOS_NOT_SUPPORTED)
        } else if connect.will.as_ref().is_some_and(|w| is_too_deep(w.topic)) {
            // A will is published like a PUBLISH, so its topic has the same depth limit.
            refuse(ReasonCode::TOPIC_NAME_INVALID)
        } else if connect.will.as_ref().is_some_and(|w| w.retain) && !self.settings.retain_available
        {
            // [MQTT-3.2.2-13]
            refuse(ReasonCode::RETAIN_NOT_SUPPORTED)
        } else if from_certificate && connect.username.is_none() {
            // Mosquitto: no certificate, or one without a common name, is a bad username.
            refuse(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
        } else if let Some(code) = (!from_certificate)
            .then(|| self.authenticate(connect, limits.allow_anonymous, listener))
            .flatten()
        {
            refuse(code)
        } else if connect.will.as_ref().is_some_and(|w| {
            !self.is_allowed(
                connect.client_id,
                connect.username,
                w.topic,
                Access::Write,
                listener,
            )
        }) {
            // Mosquitto 2: a will the client may not publish refuses the connection.
            refuse(ReasonCode::NOT_AUTHORIZED)
        } else {
            None
        }
    }

    /// Step 2 of CONNECT: the client id (assigned if empty), and the session it connects
    /// to: taken over from another connection [MQTT-3.1.4-2], resumed, or new. Returns the
    /// client id, the session and whether it was resumed (CONNACK's Session Present).
    fn take_over_or_create_session(
        &mut self,
        id: ConnId,
        connect: &Connect<'_>,
        limits: &ListenerLimits,
        listener: usize,
        now: Instant,
    ) -> (Box<str>, SessionId, bool) {
        let is_v5 = connect.version == ProtocolVersion::V5;
        let client_id: Box<str> = if connect.client_id.is_empty() {
            // [MQTT-3.1.3-6]: unique; a client may have chosen such an id itself.
            loop {
                self.next_auto_id += 1;
                let id = assigned_client_id(
                    &limits.auto_id_prefix,
                    &self.auto_id_keys,
                    self.next_auto_id,
                );
                if !self.by_client_id.contains_key(id.as_str()) {
                    break id.into();
                }
            }
        } else {
            connect.client_id.into()
        };

        // 3.1.1: clean session 0 keeps the session forever (or persistent_client_expiration);
        // MQTT 5: Session Expiry Interval, absent = 0. [MQTT-3.1.2-23]
        let expiry_interval = match (is_v5, connect.clean_session) {
            (true, _) => connect.properties.session_expiry_interval.unwrap_or(0),
            (false, true) => 0,
            (false, false) => u32::MAX,
        };
        // Takeover [MQTT-3.1.4-2]; clean session / clean start discards the old state
        // [MQTT-3.1.2-6] [MQTT-3.1.2-4].
        let mut session_present = false;
        let sid = match self.by_client_id.get(&client_id).copied() {
            Some(old) => {
                if let Some(old_conn) = self.session(old).conn {
                    // MQTT 5: the old connection's session lives on and this connection
                    // resumes it: "a new Network Connection for the ClientID is opened
                    // before the Will Delay Interval has elapsed" (even an interval of 0,
                    // which starts when the old connection closes, after this one opened),
                    // so its will is not published [MQTT-3.1.2-8]; Mosquitto does the same.
                    // A 3.1.1 will has no such exception: it is published whenever the
                    // connection closes without DISCONNECT (3.1.1 [MQTT-3.1.2-8]).
                    let resumes_v5_session = !connect.clean_session
                        && self.session(old).expiry_interval != 0
                        && self.version(old_conn) == ProtocolVersion::V5;
                    if resumes_v5_session {
                        if let Some(c) = self.conn_mut(old_conn) {
                            c.will = None;
                        }
                    }
                    // Mosquitto 2.0 logs this as an error (journalctl -p err shows it).
                    if self.settings.connection_messages {
                        error!("Client {client_id} already connected, closing old connection.");
                    }
                    self.close(old_conn, CloseReason::TakenOver, now);
                }
                // close() may have ended a session that expires with its connection.
                match self.by_client_id.get(&client_id).copied() {
                    Some(old) if connect.clean_session => {
                        // The old session ends; a delayed will it still holds is not
                        // published: a new connection for the client id came before its
                        // delay elapsed [MQTT-3.1.2-8] [MQTT-3.1.3-9] (as Mosquitto).
                        self.discard_pending_will(old);
                        self.remove_session(old);
                        self.create_session(client_id.clone())
                    }
                    Some(old) => {
                        session_present = true;
                        old
                    }
                    None => self.create_session(client_id.clone()),
                }
            }
            None => self.create_session(client_id.clone()),
        };
        let session = self.session_mut(sid);
        session.conn = Some(id);
        session.expiry_interval = expiry_interval;
        session.username = connect.username.map(Box::from);
        session.listener = listener;
        let expires_at = session.expires_at.take();
        // A delayed will is not sent if the session is resumed in time. [MQTT-3.1.3-9]
        let pending_will = session.pending_will.take();
        if let Some(at) = expires_at {
            self.timers.cancel(at, Timer::SessionExpiry(sid));
        }
        if let Some((_, at)) = pending_will {
            self.timers.cancel(at, Timer::WillDelay(sid));
        }
        self.journal_connected(sid, pending_will.is_some());
        (client_id, sid, session_present)
    }

    /// Step 3 of CONNECT: the connection takes on the session and what its CONNECT asked
    /// for (will, keep alive, MQTT 5 limits), and its keep-alive timer starts. Returns the
    /// keep alive in force and, if the server replaced the client's, the server's.
    fn activate_connection(
        &mut self,
        id: ConnId,
        sid: SessionId,
        connect: &Connect<'_>,
        listener: usize,
        now: Instant,
    ) -> (u16, Option<u16>) {
        let is_v5 = connect.version == ProtocolVersion::V5;
        let password = self
            .auth_for(listener)
            .0
            .and(connect.password)
            .map(Box::from);
        let will = connect.will.as_ref().map(|w| {
            let props = MessageProps::from_properties(&w.properties, now);
            Message::with_props(w.topic, w.payload, w.qos, w.retain, props)
        });
        let will_delay = connect
            .will
            .as_ref()
            .and_then(|w| w.properties.will_delay_interval)
            .unwrap_or(0);
        // MQTT 5: a keep alive over max_keepalive (or none) is replaced by the server's,
        // told in CONNACK. [MQTT-3.2.2-21]
        let max_keepalive = self.settings.max_keepalive;
        // A bridge's local side is in-process: no keep alive (its link has its own).
        let server_keep_alive = (is_v5
            && listener != BRIDGE_LISTENER
            && max_keepalive != 0
            && (connect.keep_alive == 0 || connect.keep_alive > max_keepalive))
            .then_some(max_keepalive);
        let keep_alive = server_keep_alive.unwrap_or(connect.keep_alive);
        let conn = self
            .conn_mut(id)
            .expect("handle_connect runs for a live connection");
        conn.set_state(ConnState::Active(sid));
        conn.keep_alive = keep_alive;
        conn.password = password;
        conn.will = will;
        conn.will_delay = will_delay;
        if is_v5 {
            conn.receive_maximum = connect.properties.receive_maximum.unwrap_or(u16::MAX);
            conn.max_packet_size = connect.properties.maximum_packet_size.unwrap_or(0);
            conn.out_alias_maximum = connect
                .properties
                .topic_alias_maximum
                .unwrap_or(0)
                .min(conn.limits.max_topic_alias_broker);
        }
        self.arm_conn_timer(id, now);
        (keep_alive, server_keep_alive)
    }

    /// Step 4 of CONNECT: the CONNACK (with MQTT 5's limits, and `assigned`, the client
    /// id the server chose), then what a resumed session still owes the client.
    fn send_connect_ack(
        &mut self,
        id: ConnId,
        sid: SessionId,
        session_present: bool,
        assigned: Option<&str>,
        server_keep_alive: Option<u16>,
        now: Instant,
    ) {
        let is_v5 = self.version(id) == ProtocolVersion::V5;
        let limits = self.conn_limits(id);
        // MQTT 3.1 has no Session Present flag (that byte is reserved): Mosquitto writes 0.
        let session_flag = session_present && self.version(id) != ProtocolVersion::V31;
        let mut connack = Connack::new(session_flag, ReasonCode::SUCCESS);
        if is_v5 {
            let p = &mut connack.properties;
            p.assigned_client_identifier = assigned;
            // Our Receive Maximum: QoS 2 messages the client may have unreleased at once.
            let receive_maximum = self.receive_maximum();
            if receive_maximum != u16::MAX {
                p.receive_maximum = Some(receive_maximum);
            }
            p.topic_alias_maximum = Some(limits.max_topic_alias).filter(|n| *n != 0);
            p.server_keep_alive = server_keep_alive;
            if limits.max_qos != QoS::ExactlyOnce {
                p.maximum_qos = Some(limits.max_qos as u8);
            }
            if !self.settings.retain_available {
                p.retain_available = Some(0);
            }
            if self.settings.max_packet_size != 0 {
                p.maximum_packet_size = Some(self.settings.max_packet_size);
            }
        }
        let connack = Packet::Connack(connack);
        let client_max = self.conns.get(id.0).map_or(0, |c| c.max_packet_size);
        if client_max != 0 && connack.encoded_len(ProtocolVersion::V5) > client_max as usize {
            // [MQTT-3.1.2-24]: nothing larger than the client's Maximum Packet Size is
            // sent, not even its CONNACK: closed without one, as Mosquitto does.
            return self.close(id, CloseReason::Refused, now);
        }
        self.send_report(id, &connack);
        self.drop_inflight_no_longer_allowed(sid);
        if session_present {
            self.resend_inflight(id, sid, now);
        }
        self.outbox_online(sid);
        self.drain_queue(sid, now);
    }

    /// The Receive Maximum culex announces: max_inflight_messages, as Mosquitto.
    pub fn receive_maximum(&self) -> u16 {
        u16::try_from(self.settings.max_inflight_messages).unwrap_or(u16::MAX)
    }

    /// MQTT 5 DISCONNECT from the client: its reason decides the will, and it may change
    /// the Session Expiry Interval, except from 0. [MQTT-3.14.2-2]
    pub(super) fn handle_disconnect(
        &mut self,
        id: ConnId,
        sid: SessionId,
        d: &Disconnect<'_>,
        now: Instant,
    ) {
        if let Some(expiry) = d.properties.session_expiry_interval {
            let session = self.session_mut(sid);
            if session.expiry_interval == 0 && expiry != 0 {
                return self.close(
                    id,
                    CloseReason::Violation(
                        ReasonCode::PROTOCOL_ERROR,
                        "session expiry set on DISCONNECT after 0 on CONNECT",
                    ),
                    now,
                );
            }
            session.expiry_interval = expiry;
            self.journal_session_params(sid);
        }
        let reason = if d.reason == ReasonCode::DISCONNECT_WITH_WILL_MESSAGE {
            CloseReason::DisconnectedWithWill
        } else {
            CloseReason::Disconnected
        };
        self.close(id, reason, now);
    }

    /// A refusal's CONNACK. In MQTT 5 it tells the listener's Maximum QoS below 2, as
    /// Mosquitto's send__connack does for every reason code (the other limits only on
    /// success): a client refused for its will's QoS learns what it may use.
    pub(super) fn send_connack(&mut self, id: ConnId, session_present: bool, reason: ReasonCode) {
        let mut connack = Connack::new(session_present, reason);
        let max_qos = self.conn_limits(id).max_qos;
        if self.version(id) == ProtocolVersion::V5 && max_qos != QoS::ExactlyOnce {
            connack.properties.maximum_qos = Some(max_qos as u8);
        }
        self.send(id, &Packet::Connack(connack));
    }
}
