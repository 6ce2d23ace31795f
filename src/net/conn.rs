//! One client connection, from accept to removal: admission (connection limits and
//! rate), TLS and WebSocket state, reading into the shared scratch buffer, and writing
//! the broker's output back through WebSocket framing and TLS.
//!
//! TCP, TLS, WebSocket and WebSocket over TLS differ only below the plaintext: whatever
//! the transport, plaintext bytes go through one path ([`take_plaintext`]) to the HTTP
//! handshake and WebSocket deframer, or straight to [`deframe`].

use super::deframe::deframe;
use super::socket::{Listening, Stream};
use super::{cert_name, http_api, tls, websocket, Server, READS_PER_TURN};
use crate::broker::{Broker, ConnId, Peer};
use log::{debug, info, warn};
use mio::{Interest, Token};
use std::cmp::Reverse;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::time::Instant;

/// An accepted client connection (slab slot = [`ConnId`] = mio token).
pub(super) struct Connection {
    stream: Stream,
    listener: usize,
    /// The bytes of an incomplete packet; empty (and unallocated) otherwise.
    partial: Vec<u8>,
    /// TLS state of a connection accepted on a TLS listener. Boxed: it is large, and a
    /// plain TCP connection should not pay for it.
    tls: Option<Box<rustls::ServerConnection>>,
    /// The broker still has to be told the certificate's username, once the handshake
    /// is done.
    pending_cert_username: Option<cert_name::CertUsername>,
    /// WebSocket state of a connection accepted on a websockets listener (between TLS,
    /// if any, and MQTT). Boxed for the same reason as `tls`.
    ws: Option<Box<WsConn>>,
    /// The last write left output unwritten (the socket is full) and no writable event
    /// came since: [`Server::relieve`] does not try it again.
    is_write_blocked: bool,
}

/// A WebSocket connection: its phase and the sans-I/O framing state, which keeps no
/// buffer while the connection is idle.
pub(super) struct WsConn {
    policy: Rc<websocket::Policy>,
    phase: WsPhase,
    deframer: websocket::Deframer,
    sender: websocket::Sender,
    /// An http_api request read and not answered yet: [`Server::flush`] answers it (the
    /// answer needs the whole server's figures, which reading does not borrow).
    api_request: Option<http_api::ApiRequest>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WsPhase {
    /// Reading the HTTP request head (kept in `partial` while incomplete).
    Handshake,
    /// Upgraded: frames carry MQTT.
    Open,
    /// A close frame is going out (after the output before it); input is dropped, and
    /// the socket is closed once it is written (RFC 6455 7.1.1: the server closes first).
    Closing,
    /// An HTTP response (a file or an error) is going out; input is dropped. Once it is
    /// written the socket is half-closed: [`WsPhase::Lingering`].
    HttpDone,
    /// Waiting for the client to close after the response (input dropped), within the
    /// broker's CONNECT timeout, which still runs for this connection.
    Lingering,
}

impl Connection {
    /// The broker closes this connection: on a WebSocket, a close frame goes out before
    /// the TCP close (RFC 6455 7.1.1).
    pub(super) fn close_websocket(&mut self) {
        if let Some(ws) = self.ws.as_mut() {
            ws.close(websocket::close_code::NORMAL);
        }
    }
}

impl WsConn {
    /// The one writer of `phase`.
    fn set_phase(&mut self, phase: WsPhase) {
        self.phase = phase;
    }

    /// A close frame with `code` is queued (after the output before it); input is
    /// dropped from now on.
    fn close(&mut self, code: u16) {
        self.sender.close(code);
        self.set_phase(WsPhase::Closing);
    }
}

impl Server {
    pub(super) fn accept(&mut self, index: usize, now: Instant) {
        loop {
            let (mut stream, peer) = match self.listeners[index].socket.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of file descriptors and the like: try again on the next event.
                    warn!("Cannot accept a connection: {e}.");
                    return;
                }
            };
            if self
                .global_max_connections
                .is_some_and(|max| self.open_connections >= max)
            {
                info!("Client connection from {peer} denied: global_max_connections exceeded.");
                continue;
            }
            if let (Some(rate), Peer::Inet(address)) = (&mut self.connection_rate, &peer) {
                if !rate.admit(address.ip(), now) {
                    info!("Client connection from {peer} denied: max_connection_rate exceeded.");
                    continue;
                }
            }
            let listener = &mut self.listeners[index];
            if listener
                .max_connections
                .is_some_and(|max| listener.connections >= max)
            {
                info!("Client connection from {peer} denied: max_connections exceeded.");
                continue;
            }
            let slot = match self.free.pop() {
                Some(Reverse(slot)) => slot,
                None => {
                    self.conns.push(None);
                    (self.conns.len() - 1) as u32
                }
            };
            if let Err(e) = self.poll.registry().register(
                &mut stream,
                Token(slot as usize),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                warn!("Cannot register a connection from {peer}: {e}.");
                self.free.push(Reverse(slot));
                continue;
            }
            let tls = match &listener.tls {
                Some(config) => match rustls::ServerConnection::new(config.clone()) {
                    Ok(c) => Some(Box::new(c)),
                    Err(e) => {
                        warn!("Cannot start TLS for {peer}: {e}.");
                        let _ = self.poll.registry().deregister(&mut stream);
                        self.free.push(Reverse(slot));
                        continue;
                    }
                },
                None => None,
            };
            listener.connections += 1;
            self.open_connections += 1;
            self.connections_peak = self.connections_peak.max(self.open_connections);
            // Mosquitto 2.0 logs each accepted connection as a notice (net.c).
            if self.broker.settings().connection_messages {
                info!(
                    "New connection from {peer} on {}.",
                    listener.socket.describe()
                );
            }
            self.conns[slot as usize] = Some(Connection {
                stream,
                listener: index,
                partial: Vec::new(),
                is_write_blocked: false,
                tls,
                pending_cert_username: listener.cert_username,
                ws: listener.websocket.as_ref().map(|policy| {
                    Box::new(WsConn {
                        policy: policy.clone(),
                        phase: WsPhase::Handshake,
                        deframer: websocket::Deframer::default(),
                        sender: websocket::Sender::default(),
                        api_request: None,
                    })
                }),
            });
            let limits_index = self.listeners[index].index;
            self.broker
                .handle_open(ConnId(slot), peer, limits_index, now);
        }
    }

    /// Reads what `slot` has (within its turn) and hands whole packets to the broker.
    ///
    /// A connection the broker holds (backpressure, broker/pressure.rs) is not read: the
    /// broker names it in `poll_resumed` when it may be, and the loop calls this again.
    /// Then the packets kept back from the read that was cut short go first.
    pub(super) fn read(&mut self, slot: u32, now: Instant) {
        if self.is_bridge_slot(slot) {
            return self.bridge_read(slot as usize, now);
        }
        let id = ConnId(slot);
        if self.broker.is_held(id) {
            return;
        }
        let Some(conn) = self.conns.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        let is_tls = conn.tls.is_some();
        let is_mqtt = conn.ws.as_ref().is_none_or(|ws| ws.phase == WsPhase::Open);
        if is_mqtt && !conn.partial.is_empty() {
            let max = self.max_packet_size;
            if !deframe(&mut self.broker, id, &mut conn.partial, &[], max, now)
                || !self.go_on_after_hold(id, now)
            {
                return;
            }
        }
        if is_tls {
            return self.read_tls(slot, now);
        }
        for _ in 0..READS_PER_TURN {
            let Some(conn) = self.conns.get_mut(slot as usize).and_then(Option::as_mut) else {
                return;
            };
            match conn.stream.read(&mut self.scratch) {
                Ok(0) => return self.lose(slot, now),
                Ok(n) => {
                    let is_ws = conn.ws.is_some();
                    let parts = ConnParts {
                        partial: &mut conn.partial,
                        ws: conn.ws.as_deref_mut(),
                        stream: &conn.stream,
                        listener: &self.listeners[conn.listener].socket,
                    };
                    let data = &mut self.scratch[..n];
                    if !take_plaintext(&mut self.broker, id, parts, data, self.max_packet_size, now)
                    {
                        return;
                    }
                    if is_ws {
                        // The handshake response or control frames; written after
                        // persist(), with the MQTT output.
                        self.writable.push(slot);
                    }
                    if !self.go_on_after_hold(id, now) {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.lose(slot, now),
            }
        }
        self.unread.push(slot);
    }

    /// Reads TLS records, decrypts them and hands whole packets to the broker; sends
    /// what the handshake wants to send.
    fn read_tls(&mut self, slot: u32, now: Instant) {
        let id = ConnId(slot);
        for _ in 0..READS_PER_TURN {
            let Some(conn) = self.conns.get_mut(slot as usize).and_then(Option::as_mut) else {
                return;
            };
            let Some(tls) = conn.tls.as_mut() else { return };
            let pending_cert_username = conn.pending_cert_username;
            let is_eof = match tls.read_tls(&mut conn.stream) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.lose(slot, now),
            };
            if let Err(e) = tls.process_new_packets() {
                info!(
                    "Client connection from {} failed: {}.",
                    conn.stream.peer(&self.listeners[conn.listener].socket),
                    tls::describe_error(&e)
                );
                // Send the alert rustls prepared, then close.
                let _ = tls.write_tls(&mut conn.stream);
                return self.lose(slot, now);
            }
            if let Some(kind) = pending_cert_username.filter(|_| !tls.is_handshaking()) {
                conn.pending_cert_username = None;
                let username = tls
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|cert| cert_name::username(cert, kind));
                if username.is_none() {
                    info!(
                        "Client certificate from {} gives no username ({}).",
                        conn.stream.peer(&self.listeners[conn.listener].socket),
                        match kind {
                            cert_name::CertUsername::Identity =>
                                "use_identity_as_username: no common name",
                            cert_name::CertUsername::Subject =>
                                "use_subject_as_username: no subject",
                        }
                    );
                }
                self.broker
                    .set_certificate_username(id, username.map(String::into_boxed_str));
            }
            let is_ws = conn.ws.is_some();
            loop {
                match tls.reader().read(&mut self.scratch) {
                    Ok(0) => return self.lose(slot, now),
                    Ok(n) => {
                        let parts = ConnParts {
                            partial: &mut conn.partial,
                            ws: conn.ws.as_deref_mut(),
                            stream: &conn.stream,
                            listener: &self.listeners[conn.listener].socket,
                        };
                        let data = &mut self.scratch[..n];
                        let max = self.max_packet_size;
                        if !take_plaintext(&mut self.broker, id, parts, data, max, now) {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => return self.lose(slot, now),
                }
            }
            if is_eof {
                return self.lose(slot, now);
            }
            if tls.wants_write() || is_ws {
                // Handshake and alert records, and a WebSocket connection's response or
                // control frames; written with the rest after persist().
                self.writable.push(slot);
            }
            if !self.go_on_after_hold(id, now) {
                return;
            }
        }
        self.unread.push(slot);
    }

    /// After packets of `id` were handed over: true if it may be read on. If the broker
    /// held it, its subscribers are written at once (`relieve`); if that released it, the
    /// packets kept back from the read are handed over now (more data may never come
    /// to trigger it), and so on while they hold it again and are relieved. Each round
    /// hands over at least one packet, so this ends. False if it stays held or its
    /// stream failed.
    fn go_on_after_hold(&mut self, id: ConnId, now: Instant) -> bool {
        loop {
            if !self.broker.is_held(id) {
                return true;
            }
            if !self.relieve(id, now) {
                return false;
            }
            let max = self.max_packet_size;
            let Some(conn) = self.conns.get_mut(id.0 as usize).and_then(Option::as_mut) else {
                return false;
            };
            let is_mqtt = conn.ws.as_ref().is_none_or(|ws| ws.phase == WsPhase::Open);
            if !is_mqtt || conn.partial.is_empty() {
                return true;
            }
            if !deframe(&mut self.broker, id, &mut conn.partial, &[], max, now) {
                return false;
            }
        }
    }

    /// `id` was just held (backpressure, broker/pressure.rs) because a subscriber it
    /// feeds is over its high mark. Whether that subscriber is behind is a question for
    /// its socket: its output is written now, not at the end of the turn, and if that
    /// drains it, `id` is released and read on in this turn. A subscriber whose socket
    /// is known to be full (its last write left output, and no writable event came
    /// since) is not tried again. Returns true if `id` is no longer held.
    ///
    /// Without this, a fast subscriber that many publishers feed (fan-in) passed its high
    /// mark within every turn: each turn ended with every publisher held and the rest of
    /// its read copied aside, and the closed-loop fan-in figure fell by a tenth (#20).
    ///
    /// The journal is written first, as before any output: an acknowledgement in that
    /// output never leaves before what it acknowledges is stored.
    pub(super) fn relieve(&mut self, id: ConnId, now: Instant) -> bool {
        let mut subscribers = std::mem::take(&mut self.relief);
        self.broker.waited_on(id, &mut subscribers);
        let mut is_persisted = false;
        for &sub in &subscribers {
            let slot = sub.0 as usize;
            let is_writable = self
                .conns
                .get(slot)
                .and_then(Option::as_ref)
                .is_some_and(|c| !c.is_write_blocked);
            if !is_writable {
                continue;
            }
            if !is_persisted {
                self.save_dynsec();
                self.persist(now);
                is_persisted = true;
            }
            if !self.flush(sub) {
                self.lose(sub.0, now);
            } else if !self.broker.output(sub).is_empty() {
                if let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) {
                    c.is_write_blocked = true;
                }
            }
        }
        subscribers.clear();
        self.relief = subscribers;
        self.broker.relieved(id)
    }

    /// A writable event: the socket takes bytes again.
    pub(super) fn note_writable(&mut self, slot: u32) {
        if let Some(c) = self.conns.get_mut(slot as usize).and_then(Option::as_mut) {
            c.is_write_blocked = false;
        }
        self.writable.push(slot);
    }

    /// Writes as much of a connection's outbox as the socket takes.
    pub(super) fn flush(&mut self, id: ConnId) -> bool {
        self.answer_api_request(id);
        let Some(conn) = self.conns.get_mut(id.0 as usize).and_then(Option::as_mut) else {
            return false;
        };
        if let Some(tls) = conn.tls.as_mut() {
            return flush_tls(
                &mut self.broker,
                id,
                tls,
                &mut conn.stream,
                conn.ws.as_deref_mut(),
            );
        }
        if let Some(ws) = conn.ws.as_mut() {
            return flush_ws(&mut self.broker, id, ws, &mut conn.stream);
        }
        loop {
            let out = self.broker.output(id);
            if out.is_empty() {
                return true;
            }
            match conn.stream.write(out) {
                Ok(0) => return false,
                Ok(n) => self.broker.consume_output(id, n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// Answers the http_api request `id` has read, if any: the response is queued
    /// before the socket is written.
    fn answer_api_request(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(id.0 as usize).and_then(Option::as_mut) else {
            return;
        };
        let Some(ws) = conn.ws.as_mut() else {
            return;
        };
        let Some(request) = ws.api_request.take() else {
            return;
        };
        let policy = ws.policy.clone();
        let listener = conn.listener;
        let peer = conn.stream.peer(&self.listeners[listener].socket);
        let (response, code) = self.api_response(id, &policy, &request);
        match code {
            200 => debug!("HTTP {} to {peer}.", request.target),
            _ => info!(
                "HTTP request from {peer} for {} refused: {code}.",
                request.target
            ),
        }
        if let Some(ws) = self
            .conns
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .and_then(|c| c.ws.as_mut())
        {
            ws.sender.queue(&response);
        }
    }

    /// Writes the sockets that became writable (or have TLS records to send) in this
    /// iteration.
    pub(super) fn flush_writable(&mut self, now: Instant) {
        let mut writable = std::mem::take(&mut self.writable);
        for slot in writable.drain(..) {
            let is_open = self.conns.get(slot as usize).is_some_and(Option::is_some);
            if is_open && !self.flush(ConnId(slot)) {
                self.lose(slot, now);
            }
        }
        self.writable = writable;
    }

    /// The socket ended or failed.
    pub(super) fn lose(&mut self, slot: u32, now: Instant) {
        if self.remove(slot) {
            self.broker.handle_closed(ConnId(slot), now);
        }
    }

    pub(super) fn remove(&mut self, slot: u32) -> bool {
        let Some(mut conn) = self.conns.get_mut(slot as usize).and_then(Option::take) else {
            return false;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        conn.stream.shutdown();
        self.listeners[conn.listener].connections -= 1;
        self.open_connections -= 1;
        self.freed.push(slot);
        true
    }
}

/// Moves the broker's output through TLS to the socket: plaintext into rustls (within its
/// buffer limit), records out until the socket would block. Returns false if the
/// connection failed.
fn flush_tls(
    broker: &mut Broker,
    id: ConnId,
    tls: &mut rustls::ServerConnection,
    stream: &mut Stream,
    mut ws: Option<&mut WsConn>,
) -> bool {
    loop {
        let mut progressed = false;
        let out = broker.output(id);
        if let Some(ws) = ws.as_deref_mut() {
            // WebSocket frames into rustls's plaintext buffer, until it is full.
            for _ in 0..64 {
                match ws.sender.write_step(&mut tls.writer(), broker.output(id)) {
                    Ok(websocket::Step::Wrote { written: 0, .. }) => break,
                    Ok(websocket::Step::Wrote { consumed, .. }) => {
                        if consumed > 0 {
                            broker.consume_output(id, consumed);
                        }
                        progressed = true;
                    }
                    Ok(websocket::Step::Idle) => break,
                    Err(_) => return false,
                }
            }
        } else if !out.is_empty() {
            match tls.writer().write(out) {
                Ok(0) => {}
                Ok(n) => {
                    broker.consume_output(id, n);
                    progressed = true;
                }
                Err(_) => return false,
            }
        }
        while tls.wants_write() {
            match tls.write_tls(stream) {
                Ok(0) => return false,
                Ok(_) => progressed = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        if !progressed {
            // A closing WebSocket connection is done once all is sent.
            return match ws {
                Some(ws) if ws.sender.is_done() && !tls.wants_write() => ws_output_done(ws, stream),
                _ => true,
            };
        }
    }
}

/// Moves the broker's output to the socket in WebSocket frames. Returns false if the
/// connection failed, or was closing and everything is written.
fn flush_ws(broker: &mut Broker, id: ConnId, ws: &mut WsConn, stream: &mut Stream) -> bool {
    loop {
        match ws.sender.write_step(stream, broker.output(id)) {
            Ok(websocket::Step::Wrote { written: 0, .. }) => return false,
            Ok(websocket::Step::Wrote { consumed, .. }) => {
                if consumed > 0 {
                    broker.consume_output(id, consumed);
                }
            }
            Ok(websocket::Step::Idle) if ws.sender.is_done() => return ws_output_done(ws, stream),
            Ok(websocket::Step::Idle) => return true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// Everything queued is written: a closing connection ends (false), an HTTP response
/// is followed by a half-close and lingering; otherwise nothing happens (true).
fn ws_output_done(ws: &mut WsConn, stream: &Stream) -> bool {
    match ws.phase {
        WsPhase::Closing => false,
        WsPhase::HttpDone => {
            stream.shutdown_write();
            ws.set_phase(WsPhase::Lingering);
            true
        }
        WsPhase::Handshake | WsPhase::Open | WsPhase::Lingering => true,
    }
}

/// The parts of a connection its plaintext reaches: all but the TLS state, which is
/// borrowed while its plaintext is read.
struct ConnParts<'a> {
    partial: &'a mut Vec<u8>,
    ws: Option<&'a mut WsConn>,
    stream: &'a Stream,
    listener: &'a Listening,
}

/// Plaintext bytes of a connection, as read from TCP or decrypted by TLS: the HTTP
/// handshake and WebSocket frames on a websockets listener, MQTT packets otherwise.
/// Returns false if the stream cannot continue (a framing error).
fn take_plaintext(
    broker: &mut Broker,
    id: ConnId,
    parts: ConnParts<'_>,
    data: &mut [u8],
    max_packet_size: usize,
    now: Instant,
) -> bool {
    let ConnParts {
        partial,
        ws,
        stream,
        listener,
    } = parts;
    match ws {
        Some(ws) => {
            let parts = WsParts {
                ws,
                partial,
                stream,
                listener,
            };
            ws_input(broker, id, parts, data, max_packet_size, now);
            true
        }
        None => deframe(broker, id, partial, data, max_packet_size, now),
    }
}

/// The parts of a connection the WebSocket input needs.
struct WsParts<'a> {
    ws: &'a mut WsConn,
    partial: &'a mut Vec<u8>,
    stream: &'a Stream,
    listener: &'a Listening,
}

/// Bytes read from a WebSocket connection (after TLS, if any): the HTTP request while
/// in the handshake, then frames whose MQTT bytes go to [`deframe`]. What must be sent
/// (the response, a pong, a close) is queued in the connection's sender.
fn ws_input(
    broker: &mut Broker,
    id: ConnId,
    parts: WsParts<'_>,
    data: &mut [u8],
    max_packet_size: usize,
    now: Instant,
) {
    let WsParts {
        ws,
        partial,
        stream,
        listener,
    } = parts;
    match ws.phase {
        WsPhase::Closing | WsPhase::HttpDone | WsPhase::Lingering => return,
        WsPhase::Open => return ws_frames(broker, id, ws, partial, data, max_packet_size, now),
        WsPhase::Handshake => {}
    }
    // The head is parsed where it lies: in `data` if it came in one read, else in the
    // bytes kept so far (bounded by the head's limit, which parse_request enforces).
    let mut head = std::mem::take(partial);
    let is_whole_read = head.is_empty();
    if !is_whole_read {
        head.extend_from_slice(data);
    }
    let buf: &mut [u8] = if is_whole_read { data } else { &mut head };
    let result = websocket::parse_request(buf, ws.policy.max_headers())
        .map(|r| r.map(|(request, len)| (websocket::decide(&request, &ws.policy), len)));
    let status = match result {
        Ok(None) => {
            *partial = if is_whole_read { buf.to_vec() } else { head };
            return;
        }
        Ok(Some((websocket::Outcome::Upgrade(response), len))) => {
            debug!("WebSocket connection from {}.", stream.peer(listener));
            ws.sender.queue(&response);
            ws.sender.open();
            ws.set_phase(WsPhase::Open);
            let rest = &mut buf[len..];
            if !rest.is_empty() {
                ws_frames(broker, id, ws, partial, rest, max_packet_size, now);
            }
            return;
        }
        Ok(Some((websocket::Outcome::Api(request), _))) => {
            ws.api_request = Some(request);
            ws.set_phase(WsPhase::HttpDone);
            return;
        }
        Ok(Some((websocket::Outcome::File(path), _))) => match websocket::file_response(&path) {
            Ok(response) => {
                debug!("HTTP {} to {}.", path.display(), stream.peer(listener));
                ws.sender.queue(&response);
                ws.set_phase(WsPhase::HttpDone);
                return;
            }
            Err(status) => status,
        },
        Ok(Some((websocket::Outcome::Reject(status), _))) | Err(status) => status,
    };
    info!(
        "HTTP request from {} refused: {}.",
        stream.peer(listener),
        status.code()
    );
    ws.sender.queue(&status.response());
    ws.set_phase(WsPhase::HttpDone);
}

/// WebSocket frames of an open connection.
fn ws_frames(
    broker: &mut Broker,
    id: ConnId,
    ws: &mut WsConn,
    partial: &mut Vec<u8>,
    data: &mut [u8],
    max_packet_size: usize,
    now: Instant,
) {
    use websocket::{close_code, opcode, Event};
    let sender = &mut ws.sender;
    let mut peer_close = None;
    let result = ws
        .deframer
        .feed(data, max_packet_size as u64, |event| match event {
            Event::Data(bytes) => deframe(broker, id, partial, bytes, max_packet_size, now),
            Event::Ping(payload) => {
                sender.queue(&websocket::control_frame(opcode::PONG, payload));
                true
            }
            Event::Pong => true,
            Event::Close(code) => {
                peer_close = Some(code.unwrap_or(close_code::NORMAL));
                false
            }
        });
    let code = match (result, peer_close) {
        (Err(websocket::Violation(code)), _) => {
            debug!(
                "WebSocket protocol error on connection {}: closing with {code}.",
                id.0
            );
            code
        }
        // RFC 6455 5.5.1: answer a close with a close, echoing its code.
        (Ok(()), Some(code)) => code,
        (Ok(()), None) => return,
    };
    ws.close(code);
}
