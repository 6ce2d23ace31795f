//! The core without sockets: scripted clients against a `Broker` on a virtual clock.
//!
//! The [`Harness`] plays the loop of `net` (STYLE.md section 11; smoltcp's
//! `send!`/`recv!` in `socket/tcp.rs`, quinn-proto's `Pair` in `src/tests/util.rs`): it
//! encodes packets and feeds them to `handle_frame`, drains the outboxes the way the loop
//! does (`poll_dirty`, `output`, `consume_output`), closes what `poll_close` names and then
//! calls `handle_closed`, and moves a virtual clock through `next_deadline` /
//! `handle_timeout`. Received frames are compared byte for byte with the encoding of the
//! expected packets. Every loop is bounded, so a livelock fails instead of hanging.

use super::*;
use crate::protocol::{frame, Disconnect, Properties, SubscriptionOptions, Will};
use std::collections::HashSet;

const V311: ProtocolVersion = ProtocolVersion::V311;

/// Bound on timer wake-ups in one `advance`.
const MAX_WAKEUPS: usize = 100_000;

struct Harness {
    broker: Broker,
    now: Instant,
    /// Connections `poll_dirty` named whose outbox the test has not read yet.
    dirty: HashSet<ConnId>,
    /// What was left in the outbox of a connection when the loop closed it: the loop
    /// writes it before closing the socket, so the client still reads it.
    written_before_close: HashMap<ConnId, Vec<u8>>,
}

impl Default for Harness {
    fn default() -> Harness {
        Harness::new(|_| {})
    }
}

impl Harness {
    /// A broker with `Settings::default()`, $SYS off, then `f` applied.
    fn new(f: impl FnOnce(&mut Settings)) -> Harness {
        let mut settings = Settings {
            sys_interval: Duration::ZERO,
            ..Settings::default()
        };
        f(&mut settings);
        let now = Instant::now();
        Harness {
            broker: Broker::new(settings, now),
            now,
            dirty: HashSet::new(),
            written_before_close: HashMap::new(),
        }
    }

    fn open(&mut self, id: u32) -> ConnId {
        let conn = ConnId(id);
        let peer = SocketAddr::from(([192, 0, 2, 1], 40_000 + (id % 1000) as u16));
        self.broker.handle_open(conn, peer, 0, self.now);
        conn
    }

    fn send(&mut self, conn: ConnId, packet: &Packet<'_>) {
        let bytes = encode(packet);
        self.send_raw(conn, &bytes);
    }

    /// One frame as the loop would deliver it: `frame::check` must find exactly one packet.
    fn send_raw(&mut self, conn: ConnId, bytes: &[u8]) {
        let max = self.broker.max_packet_size();
        assert_eq!(
            frame::check(bytes, max),
            Ok(Some(bytes.len())),
            "test sends one whole frame"
        );
        self.broker.handle_frame(conn, bytes, self.now);
    }

    /// Every frame written to `conn` since the last call, as the loop would write it.
    fn recv_frames(&mut self, conn: ConnId) -> Vec<Vec<u8>> {
        for _ in 0..1_000_000 {
            let Some(id) = self.broker.poll_dirty() else {
                break;
            };
            self.dirty.insert(id);
        }
        let mut bytes = self.written_before_close.remove(&conn).unwrap_or_default();
        for _ in 0..1_000_000 {
            let out = self.broker.output(conn);
            if out.is_empty() {
                break;
            }
            assert!(
                self.dirty.contains(&conn),
                "{conn:?} has output but poll_dirty never named it"
            );
            bytes.extend_from_slice(out);
            let n = out.len();
            self.broker.consume_output(conn, n);
            self.dirty.remove(&conn);
            // As the loop's next iteration: messages that waited for the outbox to
            // drain move on, and are written in turn.
            if self.broker.wants_refill() {
                self.broker.refill(self.now);
                while let Some(id) = self.broker.poll_dirty() {
                    self.dirty.insert(id);
                }
            }
        }
        self.dirty.remove(&conn);
        assert!(self.broker.output(conn).is_empty());
        split_frames(&bytes)
    }

    /// Asserts that `conn` received exactly `expected`, in order.
    #[track_caller]
    fn recv(&mut self, conn: ConnId, expected: &[Packet<'_>]) {
        let frames = self.recv_frames(conn);
        let got: Vec<Packet<'_>> = frames.iter().map(|f| decode(f)).collect();
        assert_eq!(got, expected, "packets received by {conn:?}");
        let expected: Vec<Vec<u8>> = expected.iter().map(encode).collect();
        assert_eq!(frames, expected, "bytes received by {conn:?}");
    }

    #[track_caller]
    fn recv_nothing(&mut self, conn: ConnId) {
        self.recv(conn, &[]);
    }

    /// Moves the clock by `d`, waking at every deadline on the way as the loop would.
    fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        for _ in 0..MAX_WAKEUPS {
            match self.broker.next_deadline() {
                Some(at) if at <= target => {
                    self.now = self.now.max(at);
                    self.broker.handle_timeout(self.now);
                }
                _ => {
                    self.now = target;
                    self.broker.handle_timeout(target);
                    return;
                }
            }
        }
        panic!("timers still due after {MAX_WAKEUPS} wake-ups");
    }

    /// The connections the broker asked to close; like the loop, writes what is left in
    /// their outboxes, closes them and calls `handle_closed`.
    fn closed(&mut self) -> Vec<ConnId> {
        let mut closed = Vec::new();
        for _ in 0..1_000 {
            let Some(conn) = self.broker.poll_close() else {
                break;
            };
            let left = self.broker.output(conn).to_vec();
            self.written_before_close
                .entry(conn)
                .or_default()
                .extend_from_slice(&left);
            self.broker.handle_closed(conn, self.now);
            closed.push(conn);
        }
        closed
    }

    /// The socket of `conn` failed or the peer went away, without DISCONNECT.
    fn drop_socket(&mut self, conn: ConnId) {
        self.broker.handle_closed(conn, self.now);
    }

    /// Opens `id`, sends CONNECT and asserts CONNACK accepted with session present 0.
    #[track_caller]
    fn connect(
        &mut self,
        id: u32,
        client_id: &str,
        clean: bool,
        keep_alive: u16,
        will: Option<Will<'_>>,
    ) -> ConnId {
        let conn = self.open(id);
        self.send(conn, &connect(client_id, clean, keep_alive, will));
        self.recv(conn, &[connack(false, ReasonCode::SUCCESS)]);
        conn
    }

    /// Sends SUBSCRIBE and asserts a SUBACK granting every filter and nothing else.
    #[track_caller]
    fn subscribe(&mut self, conn: ConnId, id: u16, filters: &[(&str, QoS)]) {
        self.send(conn, &subscribe(id, filters));
        let codes = filters
            .iter()
            .map(|&(_, qos)| ReasonCode::granted(qos))
            .collect();
        self.recv(
            conn,
            &[Packet::Suback(Suback {
                packet_id: pid(id),
                codes,
                properties: Default::default(),
            })],
        );
    }

    /// Sends DISCONNECT and asserts the broker closes the connection.
    #[track_caller]
    fn disconnect(&mut self, conn: ConnId) {
        self.send(conn, &Packet::Disconnect(Disconnect::default()));
        assert_eq!(self.closed(), [conn]);
        self.recv_nothing(conn);
    }

    /// Test-only look at a connection's outbox.
    fn outbox(&self, conn: ConnId) -> &Vec<u8> {
        &self.broker.conns[conn.0 as usize]
            .as_ref()
            .expect("connection is open")
            .out
    }
}

fn encode(packet: &Packet<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    packet.encode(V311, &mut out);
    assert_eq!(out.len(), packet.encoded_len(V311));
    out
}

#[track_caller]
fn decode(frame: &[u8]) -> Packet<'_> {
    Packet::decode(frame, V311).unwrap_or_else(|e| panic!("broker sent {frame:02x?}: {e}"))
}

#[track_caller]
fn split_frames(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let n = frame::check(bytes, usize::MAX)
            .expect("broker writes well-formed frames")
            .expect("broker writes whole frames");
        frames.push(bytes[..n].to_vec());
        bytes = &bytes[n..];
    }
    frames
}

fn pid(n: u16) -> PacketId {
    PacketId::new(n).expect("test packet ids are not 0")
}

fn connect<'a>(
    client_id: &'a str,
    clean: bool,
    keep_alive: u16,
    will: Option<Will<'a>>,
) -> Packet<'a> {
    Packet::Connect(Box::new(Connect {
        version: V311,
        clean_session: clean,
        keep_alive,
        client_id,
        will,
        username: None,
        password: None,
        properties: Props::default(),
    }))
}

fn connack(session_present: bool, code: ReasonCode) -> Packet<'static> {
    Packet::Connack(Connack::new(session_present, code))
}

fn will<'a>(topic: &'a str, payload: &'a [u8], qos: QoS, retain: bool) -> Option<Will<'a>> {
    Some(Will {
        topic,
        payload,
        qos,
        retain,
        properties: Props::default(),
    })
}

/// PUBLISH with DUP 0 and RETAIN 0; `id` is ignored for QoS 0.
fn publish<'a>(topic: &'a str, payload: &'a [u8], qos: QoS, id: u16) -> Packet<'a> {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic,
        packet_id: match qos {
            QoS::AtMostOnce => None,
            _ => Some(pid(id)),
        },
        payload,
        properties: Props::default(),
    })
}

fn retained(packet: Packet<'_>) -> Packet<'_> {
    match packet {
        Packet::Publish(p) => Packet::Publish(Publish { retain: true, ..p }),
        other => other,
    }
}

fn dup(packet: Packet<'_>) -> Packet<'_> {
    match packet {
        Packet::Publish(p) => Packet::Publish(Publish { dup: true, ..p }),
        other => other,
    }
}

fn subscribe<'a>(id: u16, filters: &[(&'a str, QoS)]) -> Packet<'a> {
    Packet::Subscribe(Subscribe {
        packet_id: pid(id),
        filters: filters
            .iter()
            .map(|&(filter, qos)| (filter, SubscriptionOptions::new(qos)))
            .collect(),
        properties: Props::default(),
    })
}

fn unsubscribe<'a>(id: u16, filters: &[&'a str]) -> Packet<'a> {
    Packet::Unsubscribe(Unsubscribe {
        packet_id: pid(id),
        filters: filters.to_vec(),
        properties: Props::default(),
    })
}

use QoS::{AtLeastOnce as Q1, AtMostOnce as Q0, ExactlyOnce as Q2};

// ---- CONNECT / CONNACK -------------------------------------------------------------

/// [MQTT-3.2.2-1]: clean session 1 gives session present 0; [MQTT-3.2.2-3] (no stored
/// session) also 0 for clean session 0.
#[test]
fn connack_of_a_new_or_clean_session_has_session_present_0() {
    let mut h = Harness::default();
    h.connect(1, "persistent", false, 60, None);
    h.connect(2, "clean", true, 60, None);
}

/// [MQTT-3.2.2-2]: a resumed persistent session gives session present 1; [MQTT-3.2.2-1]:
/// clean session 1 then gives 0 even though a session was stored.
#[test]
fn connack_of_a_resumed_persistent_session_has_session_present_1() {
    let mut h = Harness::default();
    let c = h.connect(1, "c", false, 60, None);
    h.disconnect(c);

    let c = h.open(1);
    h.send(c, &connect("c", false, 60, None));
    h.recv(c, &[connack(true, ReasonCode::SUCCESS)]);
    h.disconnect(c);

    h.connect(1, "c", true, 60, None);
}

/// [MQTT-3.1.3-8]: an empty client id with clean session 0 gets CONNACK 0x02 and the
/// connection is closed.
#[test]
fn empty_client_id_without_clean_session_is_rejected_with_0x02() {
    let mut h = Harness::default();
    let c = h.open(1);
    h.send(c, &connect("", false, 60, None));
    assert_eq!(h.closed(), [c]);
    h.recv(
        c,
        &[connack(false, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID)],
    );
    assert_eq!(h.broker.clients_connected(), 0);
}

/// [MQTT-3.1.3-6]: the server may accept an empty client id and assign a unique one; two
/// such clients do not take each other over.
#[test]
fn empty_client_id_with_clean_session_is_accepted_and_unique() {
    let mut h = Harness::default();
    let a = h.connect(1, "", true, 60, None);
    h.connect(2, "", true, 60, None);
    assert!(h.closed().is_empty());
    assert_eq!(h.broker.clients_connected(), 2);
    h.send(a, &Packet::Pingreq);
    h.recv(a, &[Packet::Pingresp]);
}

/// MQTT 3.1 (section 3.1, Client Identifier) requires 1 to 23 characters: an empty id is
/// rejected with 0x02 even with clean session 1.
#[test]
fn empty_client_id_is_rejected_for_mqtt_3_1() {
    let mut h = Harness::default();
    let c = h.open(1);
    h.send(
        c,
        &Packet::Connect(Box::new(Connect {
            version: ProtocolVersion::V31,
            clean_session: true,
            keep_alive: 60,
            client_id: "",
            will: None,
            username: None,
            password: None,
            properties: Props::default(),
        })),
    );
    assert_eq!(h.closed(), [c]);
    h.recv(
        c,
        &[connack(false, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID)],
    );
}

/// MQTT 3.1 clients with an id are accepted.
#[test]
fn mqtt_3_1_client_with_an_id_is_accepted() {
    let mut h = Harness::default();
    let c = h.open(1);
    h.send(
        c,
        &Packet::Connect(Box::new(Connect {
            version: ProtocolVersion::V31,
            clean_session: true,
            keep_alive: 60,
            client_id: "old",
            will: None,
            username: None,
            password: None,
            properties: Props::default(),
        })),
    );
    h.recv(c, &[connack(false, ReasonCode::SUCCESS)]);
    assert!(h.closed().is_empty());
}

/// [MQTT-3.1.2-2]: an unsupported protocol level gets CONNACK 0x01, then the server
/// disconnects.
#[test]
fn unsupported_protocol_level_is_refused_with_0x01_and_closed() {
    for level in [6u8, 7] {
        let mut h = Harness::default();
        let mut bytes = encode(&connect("c", true, 60, None));
        // Fixed header (2), protocol name (2 + 4), then the level.
        assert_eq!(&bytes[2..9], b"\x00\x04MQTT\x04");
        bytes[8] = level;
        let c = h.open(1);
        h.send_raw(c, &bytes);
        assert_eq!(h.closed(), [c], "level {level}");
        h.recv(
            c,
            &[connack(false, ReasonCode::UNSUPPORTED_PROTOCOL_VERSION)],
        );
        assert_eq!(h.broker.clients_connected(), 0);
    }
}

/// Without anonymous access and without a password file nobody is authorised: 0x05
/// ([MQTT-3.2.2.3], "Connection Refused, not authorized").
#[test]
fn connect_is_refused_with_0x05_when_anonymous_access_is_off() {
    let mut h = Harness::new(|s| s.allow_anonymous = false);
    let c = h.open(1);
    h.send(c, &connect("c", true, 60, None));
    assert_eq!(h.closed(), [c]);
    h.recv(c, &[connack(false, ReasonCode::NOT_AUTHORIZED)]);
}

/// Mosquitto refuses a 3.1/3.1.1 keep alive above max_keepalive with 0x02 (it cannot
/// tell such a client a shorter one); at the limit it is accepted.
#[test]
fn keep_alive_above_max_keepalive_is_refused_with_0x02() {
    let mut h = Harness::new(|s| s.max_keepalive = 60);
    h.connect(1, "at-limit", true, 60, None);
    let c = h.open(2);
    h.send(c, &connect("above", true, 61, None));
    assert_eq!(h.closed(), [c]);
    h.recv(
        c,
        &[connack(false, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID)],
    );
}

/// [MQTT-3.1.0-1]: the first packet from the client must be CONNECT; anything else closes
/// the connection without an answer.
#[test]
fn a_packet_before_connect_closes_the_connection() {
    let mut h = Harness::default();
    let c = h.open(1);
    h.send(c, &Packet::Pingreq);
    assert_eq!(h.closed(), [c]);
    h.recv_nothing(c);
}

/// [MQTT-3.1.0-2]: a second CONNECT is a protocol violation and the client is
/// disconnected; as for any protocol error the will is published [MQTT-3.1.2-8].
#[test]
fn a_second_connect_closes_the_connection() {
    let mut h = Harness::default();
    let watcher = h.connect(1, "watcher", true, 0, None);
    h.subscribe(watcher, 1, &[("w", Q0)]);
    let c = h.connect(2, "c", true, 60, will("w", b"bye", Q0, false));
    h.send(c, &connect("c", true, 60, None));
    assert_eq!(h.closed(), [c]);
    h.recv_nothing(c);
    h.recv(watcher, &[publish("w", b"bye", Q0, 0)]);
    assert_eq!(h.broker.clients_connected(), 1);
}

// ---- QoS flows ---------------------------------------------------------------------

/// [MQTT-4.3.1]: QoS 0 is sent once, without packet id or acknowledgement.
#[test]
fn qos0_publish_is_delivered_once_without_acknowledgement() {
    let mut h = Harness::default();
    let sub = h.connect(1, "sub", true, 0, None);
    h.subscribe(sub, 1, &[("a/b", Q2)]);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("a/b", b"hello", Q0, 0));
    h.recv_nothing(p);
    h.recv(sub, &[publish("a/b", b"hello", Q0, 0)]);
}

/// [MQTT-4.3.2-2]: the receiver of a QoS 1 PUBLISH answers PUBACK with its packet id; the
/// broker sends it on with its own packet id [MQTT-2.3.1-2] and waits for PUBACK.
#[test]
fn qos1_publish_is_acknowledged_with_puback_in_both_directions() {
    let mut h = Harness::default();
    let sub = h.connect(1, "sub", true, 0, None);
    h.subscribe(sub, 1, &[("a/b", Q1)]);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("a/b", b"one", Q1, 77));
    h.recv(p, &[Packet::Puback(Ack::new(pid(77)))]);
    h.recv(sub, &[publish("a/b", b"one", Q1, 1)]);
    h.send(sub, &Packet::Puback(Ack::new(pid(1))));
    h.recv_nothing(sub);
    h.recv_nothing(p);
    // The next message gets the next id.
    h.send(p, &publish("a/b", b"two", Q1, 78));
    h.recv(p, &[Packet::Puback(Ack::new(pid(78)))]);
    h.recv(sub, &[publish("a/b", b"two", Q1, 2)]);
}

/// [MQTT-4.3.3-1] [MQTT-4.3.3-2]: PUBLISH, PUBREC, PUBREL, PUBCOMP with the same packet
/// id, on the publishing and on the subscribing side.
#[test]
fn qos2_publish_goes_through_pubrec_pubrel_pubcomp() {
    let mut h = Harness::default();
    let sub = h.connect(1, "sub", true, 0, None);
    h.subscribe(sub, 1, &[("a/b", Q2)]);
    let p = h.connect(2, "pub", true, 0, None);

    h.send(p, &publish("a/b", b"once", Q2, 300));
    h.recv(p, &[Packet::Pubrec(Ack::new(pid(300)))]);
    h.recv(sub, &[publish("a/b", b"once", Q2, 1)]);

    h.send(sub, &Packet::Pubrec(Ack::new(pid(1))));
    h.recv(sub, &[Packet::Pubrel(Ack::new(pid(1)))]);
    h.send(sub, &Packet::Pubcomp(Ack::new(pid(1))));
    h.recv_nothing(sub);

    h.send(p, &Packet::Pubrel(Ack::new(pid(300))));
    h.recv(p, &[Packet::Pubcomp(Ack::new(pid(300)))]);
    h.recv_nothing(sub);
}

/// [MQTT-3.8.4-6]: the QoS of a delivered message is the minimum of the published QoS
/// and the granted QoS.
#[test]
fn delivery_qos_is_downgraded_to_the_granted_qos() {
    let mut h = Harness::default();
    let s1 = h.connect(1, "s1", true, 0, None);
    h.subscribe(s1, 1, &[("t", Q1)]);
    let s0 = h.connect(2, "s0", true, 0, None);
    h.subscribe(s0, 1, &[("t", Q0)]);
    let p = h.connect(3, "pub", true, 0, None);

    h.send(p, &publish("t", b"x", Q2, 1));
    h.recv(p, &[Packet::Pubrec(Ack::new(pid(1)))]);
    h.recv(s1, &[publish("t", b"x", Q1, 1)]);
    h.recv(s0, &[publish("t", b"x", Q0, 0)]);

    h.send(p, &publish("t", b"y", Q1, 2));
    h.recv(p, &[Packet::Puback(Ack::new(pid(2)))]);
    h.recv(s1, &[publish("t", b"y", Q1, 2)]);
    h.recv(s0, &[publish("t", b"y", Q0, 0)]);
}

/// [MQTT-4.3.3-2] (method A: store the packet id until PUBREL): a QoS 2 PUBLISH sent
/// again with DUP and the same id before PUBREL is answered with PUBREC but not delivered
/// again; after PUBREL the same id starts a new message.
#[test]
fn duplicate_qos2_publish_before_pubrel_is_delivered_once() {
    let mut h = Harness::default();
    let sub = h.connect(1, "sub", true, 0, None);
    h.subscribe(sub, 1, &[("t", Q0)]);
    let p = h.connect(2, "pub", true, 0, None);

    h.send(p, &publish("t", b"m", Q2, 5));
    h.recv(p, &[Packet::Pubrec(Ack::new(pid(5)))]);
    h.recv(sub, &[publish("t", b"m", Q0, 0)]);

    h.send(p, &dup(publish("t", b"m", Q2, 5)));
    h.recv(p, &[Packet::Pubrec(Ack::new(pid(5)))]);
    h.recv_nothing(sub);

    h.send(p, &Packet::Pubrel(Ack::new(pid(5))));
    h.recv(p, &[Packet::Pubcomp(Ack::new(pid(5)))]);

    h.send(p, &publish("t", b"n", Q2, 5));
    h.recv(p, &[Packet::Pubrec(Ack::new(pid(5)))]);
    h.recv(sub, &[publish("t", b"n", Q0, 0)]);
}

/// [MQTT-4.3.3-2]: PUBREL is answered with PUBCOMP with the same id, even when the id is
/// not (or no longer) known.
#[test]
fn pubrel_of_an_unknown_packet_id_is_answered_with_pubcomp() {
    let mut h = Harness::default();
    let c = h.connect(1, "c", true, 0, None);
    h.send(c, &Packet::Pubrel(Ack::new(pid(4242))));
    h.recv(c, &[Packet::Pubcomp(Ack::new(pid(4242)))]);
    assert!(h.closed().is_empty());
}

/// [MQTT-3.3.5-1]: with overlapping subscriptions the message is delivered respecting the
/// maximum QoS of all matching ones; further copies are allowed, but Mosquitto (without
/// allow_duplicate_messages) and culex send exactly one.
#[test]
fn overlapping_subscriptions_deliver_one_copy_at_the_highest_qos() {
    let mut h = Harness::default();
    let sub = h.connect(1, "sub", true, 0, None);
    h.subscribe(sub, 1, &[("a/+", Q0), ("a/#", Q1), ("a/b", Q0)]);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("a/b", b"x", Q2, 1));
    h.recv(p, &[Packet::Pubrec(Ack::new(pid(1)))]);
    h.recv(sub, &[publish("a/b", b"x", Q1, 1)]);
    assert_eq!(h.broker.subscription_count(), 3);
}

/// [MQTT-4.7.2-1]: filters starting with `#` or `+` do not match topic names starting
/// with `$`, neither for live messages nor for retained ones; `$SYS/#` does.
#[test]
fn dollar_topics_are_not_matched_by_wildcards_at_the_first_level() {
    let mut h = Harness::new(|s| s.sys_interval = Duration::from_secs(1));
    let all = h.connect(1, "all", true, 0, None);
    h.subscribe(all, 1, &[("#", Q0), ("+/broker/version", Q0), ("+/#", Q0)]);
    let sys = h.connect(2, "sys", true, 0, None);
    h.send(sys, &subscribe(1, &[("$SYS/broker/version", Q0)]));
    let version = format!("culex version {}", env!("CARGO_PKG_VERSION"));
    h.recv(
        sys,
        &[
            Packet::Suback(Suback {
                packet_id: pid(1),
                codes: vec![ReasonCode::granted(Q0)],
                properties: Default::default(),
            }),
            retained(publish("$SYS/broker/version", version.as_bytes(), Q0, 0)),
        ],
    );
    h.advance(Duration::from_secs(3));
    h.recv_nothing(all);
    assert!(h.broker.retained_count() > 0);
}

// ---- Inflight window -----------------------------------------------------------------

/// With max_inflight_messages 2, a third QoS 1 message waits until a PUBACK frees a slot.
#[test]
fn inflight_window_holds_back_the_third_message_until_an_ack() {
    let mut h = Harness::new(|s| s.max_inflight_messages = 2);
    let sub = h.connect(1, "sub", true, 0, None);
    h.subscribe(sub, 1, &[("t", Q2)]);
    let p = h.connect(2, "pub", true, 0, None);
    for (i, payload) in [b"1", b"2", b"3"].iter().enumerate() {
        h.send(p, &publish("t", *payload, Q1, i as u16 + 1));
    }
    h.recv(sub, &[publish("t", b"1", Q1, 1), publish("t", b"2", Q1, 2)]);
    h.send(sub, &Packet::Puback(Ack::new(pid(2))));
    h.recv(sub, &[publish("t", b"3", Q1, 3)]);
    h.send(sub, &Packet::Puback(Ack::new(pid(1))));
    h.send(sub, &Packet::Puback(Ack::new(pid(3))));
    h.recv_nothing(sub);
}

/// A QoS 2 message holds its slot until PUBCOMP, not PUBREC.
#[test]
fn qos2_message_holds_its_inflight_slot_until_pubcomp() {
    let mut h = Harness::new(|s| s.max_inflight_messages = 1);
    let sub = h.connect(1, "sub", true, 0, None);
    h.subscribe(sub, 1, &[("t", Q2)]);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("t", b"1", Q2, 1));
    h.send(p, &publish("t", b"2", Q2, 2));
    h.recv(sub, &[publish("t", b"1", Q2, 1)]);
    h.send(sub, &Packet::Pubrec(Ack::new(pid(1))));
    h.recv(sub, &[Packet::Pubrel(Ack::new(pid(1)))]);
    h.send(sub, &Packet::Pubcomp(Ack::new(pid(1))));
    h.recv(sub, &[publish("t", b"2", Q2, 2)]);
}

/// Tiny deterministic generator (xorshift64*); the seed is fixed, so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// [MQTT-2.3.1-2]: a packet id in use is not used again until its exchange completes.
/// 70,000 messages (more than 65,535 ids) through a window of 10, acknowledged out of
/// order; the first three stay unacknowledged until the end, so when the ids wrap they
/// must be passed over. Also checks the window bound and that the topic stays ordered
/// [MQTT-4.6.0-6].
#[test]
fn packet_ids_in_flight_are_never_reused() {
    const TOTAL: u32 = 70_000;
    const WINDOW: usize = 10;
    const HELD: usize = 3;
    const SEED: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = Harness::new(|s| {
        s.max_inflight_messages = WINDOW;
        s.max_queued_messages = 0;
    });
    let sub = h.connect(1, "sub", true, 0, None);
    h.subscribe(sub, 1, &[("t", Q1)]);
    let p = h.connect(2, "pub", true, 0, None);

    let mut rng = Rng(SEED);
    // Ids in flight: the held ones first, then the ones acknowledged at random.
    let mut in_flight: Vec<u16> = Vec::new();
    let (mut sent, mut received) = (0u32, 0u32);
    let mut first_after_wrap = None;
    let mut last_id = 0u16;
    for _ in 0..1_000_000 {
        if received == TOTAL && in_flight.len() <= HELD {
            break;
        }
        let mut published = 0;
        for _ in 0..rng.below(4) {
            if sent < TOTAL {
                published += 1;
                let id = (sent % 65_535) as u16 + 1;
                h.send(p, &publish("t", &sent.to_be_bytes(), Q1, id));
                sent += 1;
            }
        }
        let acks = h.recv_frames(p);
        assert_eq!(acks.len(), published);
        for frame in h.recv_frames(sub) {
            let Packet::Publish(publish) = decode(&frame) else {
                panic!("seed {SEED:#x}: expected PUBLISH, got {frame:02x?}");
            };
            let id = publish.packet_id.expect("QoS 1").get();
            assert!(
                !in_flight.contains(&id),
                "seed {SEED:#x}: id {id} reused while in flight {in_flight:?}"
            );
            assert_eq!(publish.payload, received.to_be_bytes(), "seed {SEED:#x}");
            assert!(!publish.dup);
            if id < last_id && first_after_wrap.is_none() {
                first_after_wrap = Some(id);
            }
            last_id = id;
            received += 1;
            in_flight.push(id);
            assert!(in_flight.len() <= WINDOW, "seed {SEED:#x}: window exceeded");
        }
        for _ in 0..rng.below(4) {
            if in_flight.len() > HELD {
                let i = HELD + rng.below(in_flight.len() - HELD);
                let id = in_flight.swap_remove(i);
                h.send(sub, &Packet::Puback(Ack::new(pid(id))));
            }
        }
    }
    assert_eq!((sent, received), (TOTAL, TOTAL), "seed {SEED:#x}");
    assert_eq!(in_flight, [1, 2, 3]);
    assert_eq!(
        first_after_wrap,
        Some(HELD as u16 + 1),
        "held ids passed over"
    );
    for id in in_flight.drain(..) {
        h.send(sub, &Packet::Puback(Ack::new(pid(id))));
    }
    h.recv_nothing(sub);
    assert_eq!(h.broker.dropped_count(), 0);
    assert!(h.broker.session(SessionId(0)).inflight.is_empty());
}

// ---- Offline queue and resending ---------------------------------------------------

/// A persistent session keeps its subscriptions while offline and queues QoS 1/2
/// messages for it [MQTT-3.1.2-5], delivered on reconnect in order [MQTT-4.6.0-6].
#[test]
fn offline_persistent_session_queues_qos1_and_delivers_in_order_on_reconnect() {
    let mut h = Harness::default();
    let sub = h.connect(1, "sub", false, 0, None);
    h.subscribe(sub, 1, &[("t", Q1)]);
    h.disconnect(sub);

    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("t", b"m1", Q1, 1));
    h.send(p, &publish("t", b"m2", Q2, 2));
    h.send(p, &Packet::Pubrel(Ack::new(pid(2))));
    h.send(p, &publish("t", b"m3", Q1, 3));
    h.recv(
        p,
        &[
            Packet::Puback(Ack::new(pid(1))),
            Packet::Pubrec(Ack::new(pid(2))),
            Packet::Pubcomp(Ack::new(pid(2))),
            Packet::Puback(Ack::new(pid(3))),
        ],
    );

    let sub = h.open(1);
    h.send(sub, &connect("sub", false, 0, None));
    h.recv(
        sub,
        &[
            connack(true, ReasonCode::SUCCESS),
            publish("t", b"m1", Q1, 1),
            publish("t", b"m2", Q1, 2),
            publish("t", b"m3", Q1, 3),
        ],
    );
    assert_eq!(h.broker.dropped_count(), 0);
}

/// Mosquitto's queue_qos0_messages false: QoS 0 messages are not queued for an offline
/// client (3.1.1 section 3.1.2.4 makes it optional).
#[test]
fn qos0_is_not_queued_for_an_offline_session() {
    let mut h = Harness::default();
    let sub = h.connect(1, "sub", false, 0, None);
    h.subscribe(sub, 1, &[("t", Q2)]);
    h.disconnect(sub);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("t", b"lost", Q0, 0));
    h.send(p, &publish("t", b"kept", Q1, 1));
    let sub = h.open(1);
    h.send(sub, &connect("sub", false, 0, None));
    h.recv(
        sub,
        &[
            connack(true, ReasonCode::SUCCESS),
            publish("t", b"kept", Q1, 1),
        ],
    );
}

/// max_queued_messages bounds the offline queue; what does not fit is dropped and
/// counted.
#[test]
fn offline_queue_is_bounded_by_max_queued_messages() {
    let mut h = Harness::new(|s| s.max_queued_messages = 2);
    let sub = h.connect(1, "sub", false, 0, None);
    h.subscribe(sub, 1, &[("t", Q1)]);
    h.disconnect(sub);
    let p = h.connect(2, "pub", true, 0, None);
    for (i, payload) in [b"1", b"2", b"3", b"4"].iter().enumerate() {
        h.send(p, &publish("t", *payload, Q1, i as u16 + 1));
    }
    assert_eq!(h.broker.dropped_count(), 2);
    let sub = h.open(1);
    h.send(sub, &connect("sub", false, 0, None));
    h.recv(
        sub,
        &[
            connack(true, ReasonCode::SUCCESS),
            publish("t", b"1", Q1, 1),
            publish("t", b"2", Q1, 2),
        ],
    );
}

/// max_queued_bytes bounds the payload bytes of the offline queue (Mosquitto counts the
/// payload); a message that would exceed it is dropped, a smaller later one still fits,
/// up to exactly the limit.
#[test]
fn offline_queue_is_bounded_by_max_queued_bytes() {
    let mut h = Harness::new(|s| s.max_queued_bytes = 6);
    let sub = h.connect(1, "sub", false, 0, None);
    h.subscribe(sub, 1, &[("t", Q1)]);
    h.disconnect(sub);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("t", b"aaa", Q1, 1));
    h.send(p, &publish("t", b"bbbb", Q1, 2));
    h.send(p, &publish("t", b"cc", Q1, 3));
    h.send(p, &publish("t", b"d", Q1, 4));
    h.send(p, &publish("t", b"e", Q1, 5));
    assert_eq!(h.broker.dropped_count(), 2);
    let sub = h.open(1);
    h.send(sub, &connect("sub", false, 0, None));
    h.recv(
        sub,
        &[
            connack(true, ReasonCode::SUCCESS),
            publish("t", b"aaa", Q1, 1),
            publish("t", b"cc", Q1, 2),
            publish("t", b"d", Q1, 3),
        ],
    );
}

/// [MQTT-4.4.0-1]: on reconnect with clean session 0, unacknowledged PUBLISH packets are
/// sent again with DUP 1 [MQTT-3.3.1-1] and their original packet ids, and PUBREL again
/// for messages already PUBREC'd, in the original order [MQTT-4.6.0-1]; new messages take
/// ids not in use.
#[test]
fn reconnect_resends_unacknowledged_publish_with_dup_and_pubrel() {
    let mut h = Harness::default();
    let sub = h.connect(1, "sub", false, 0, None);
    h.subscribe(sub, 1, &[("a", Q1), ("b", Q2), ("c", Q2)]);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("a", b"x", Q1, 1));
    h.send(p, &publish("b", b"y", Q2, 2));
    h.send(p, &publish("c", b"z", Q2, 3));
    h.recv(
        sub,
        &[
            publish("a", b"x", Q1, 1),
            publish("b", b"y", Q2, 2),
            publish("c", b"z", Q2, 3),
        ],
    );
    h.send(sub, &Packet::Pubrec(Ack::new(pid(2))));
    h.recv(sub, &[Packet::Pubrel(Ack::new(pid(2)))]);
    h.drop_socket(sub);
    assert_eq!(h.broker.clients_connected(), 1);

    let sub = h.open(1);
    h.send(sub, &connect("sub", false, 0, None));
    h.recv(
        sub,
        &[
            connack(true, ReasonCode::SUCCESS),
            dup(publish("a", b"x", Q1, 1)),
            Packet::Pubrel(Ack::new(pid(2))),
            dup(publish("c", b"z", Q2, 3)),
        ],
    );
    h.send(sub, &Packet::Puback(Ack::new(pid(1))));
    h.send(sub, &Packet::Pubcomp(Ack::new(pid(2))));
    h.send(p, &publish("a", b"new", Q1, 4));
    h.recv(sub, &[publish("a", b"new", Q1, 4)]);
}

// ---- Retained messages ----------------------------------------------------------------

/// [MQTT-3.3.1-5]: a retained message is stored and replaces the previous one;
/// [MQTT-3.3.1-10] [MQTT-3.3.1-11]: an empty retained payload is delivered as normal but
/// removes the stored one and is not stored itself.
#[test]
fn retained_message_is_stored_replaced_and_cleared_by_an_empty_payload() {
    let mut h = Harness::default();
    let p = h.connect(1, "pub", true, 0, None);
    h.send(p, &retained(publish("r", b"first", Q0, 0)));
    h.send(p, &retained(publish("r", b"second", Q1, 1)));
    h.recv(p, &[Packet::Puback(Ack::new(pid(1)))]);
    assert_eq!(h.broker.retained_count(), 1);

    let s = h.connect(2, "s1", true, 0, None);
    h.send(s, &subscribe(1, &[("r", Q2)]));
    h.recv(
        s,
        &[
            Packet::Suback(Suback {
                packet_id: pid(1),
                codes: vec![ReasonCode::granted(Q2)],
                properties: Default::default(),
            }),
            retained(publish("r", b"second", Q1, 1)),
        ],
    );
    h.send(s, &Packet::Puback(Ack::new(pid(1))));

    h.send(p, &retained(publish("r", b"", Q0, 0)));
    h.recv(s, &[publish("r", b"", Q0, 0)]);
    assert_eq!(h.broker.retained_count(), 0);
    let s2 = h.connect(3, "s2", true, 0, None);
    h.subscribe(s2, 1, &[("#", Q2)]);
}

/// [MQTT-3.3.1-8]: messages sent because of a new subscription carry RETAIN 1;
/// [MQTT-3.3.1-9]: messages sent to an existing subscription carry RETAIN 0, even when
/// the publisher set RETAIN.
#[test]
fn retained_message_has_retain_1_on_subscribe_and_retain_0_live() {
    let mut h = Harness::default();
    let p = h.connect(1, "pub", true, 0, None);
    let live = h.connect(2, "live", true, 0, None);
    h.subscribe(live, 1, &[("a/+", Q0)]);
    h.send(p, &retained(publish("a/b", b"v", Q0, 0)));
    h.recv(live, &[publish("a/b", b"v", Q0, 0)]);

    let late = h.connect(3, "late", true, 0, None);
    h.send(late, &subscribe(7, &[("a/#", Q0)]));
    h.recv(
        late,
        &[
            Packet::Suback(Suback {
                packet_id: pid(7),
                codes: vec![ReasonCode::granted(Q0)],
                properties: Default::default(),
            }),
            retained(publish("a/b", b"v", Q0, 0)),
        ],
    );
}

/// [MQTT-3.8.4-3]: a SUBSCRIBE repeating an existing filter replaces the subscription and
/// the retained messages matching it are sent again.
#[test]
fn resubscribing_sends_retained_messages_again() {
    let mut h = Harness::default();
    let p = h.connect(1, "pub", true, 0, None);
    h.send(p, &retained(publish("r", b"v", Q0, 0)));
    let s = h.connect(2, "s", true, 0, None);
    for id in [1, 2] {
        h.send(s, &subscribe(id, &[("r", Q1)]));
        h.recv(
            s,
            &[
                Packet::Suback(Suback {
                    packet_id: pid(id),
                    codes: vec![ReasonCode::granted(Q1)],
                    properties: Default::default(),
                }),
                retained(publish("r", b"v", Q0, 0)),
            ],
        );
    }
    assert_eq!(h.broker.subscription_count(), 1);
}

// ---- Wills -----------------------------------------------------------------------------

/// Two clients: a watcher subscribed to `w` at QoS 0 and one with a will on `w`.
fn with_will(h: &mut Harness, keep_alive: u16) -> (ConnId, ConnId) {
    let watcher = h.connect(1, "watcher", true, 0, None);
    h.subscribe(watcher, 1, &[("w", Q0)]);
    let c = h.connect(2, "c", true, keep_alive, will("w", b"gone", Q1, false));
    (watcher, c)
}

/// [MQTT-3.1.2-8]: the will is published when the network connection closes without
/// DISCONNECT.
#[test]
fn will_is_published_when_the_socket_closes_without_disconnect() {
    let mut h = Harness::default();
    let (watcher, c) = with_will(&mut h, 60);
    h.recv_nothing(watcher);
    h.drop_socket(c);
    h.recv(watcher, &[publish("w", b"gone", Q0, 0)]);
    assert_eq!(h.broker.clients_connected(), 1);
}

/// [MQTT-3.1.2-10]: DISCONNECT removes the will without publishing it.
#[test]
fn will_is_not_published_after_disconnect() {
    let mut h = Harness::default();
    let (watcher, c) = with_will(&mut h, 60);
    h.disconnect(c);
    h.recv_nothing(watcher);
}

/// [MQTT-3.1.2-24]: without a packet within one and a half times the keep alive the
/// server disconnects; the will is published ([MQTT-3.1.2-8]).
#[test]
fn will_is_published_on_keep_alive_timeout() {
    let mut h = Harness::default();
    let (watcher, c) = with_will(&mut h, 10);
    h.advance(Duration::from_secs(14));
    assert!(h.closed().is_empty(), "closed at 1.4 x keep alive");
    h.recv_nothing(watcher);
    h.advance(Duration::from_secs(1));
    assert_eq!(h.closed(), [c]);
    h.recv_nothing(c);
    h.recv(watcher, &[publish("w", b"gone", Q0, 0)]);
}

/// [MQTT-3.1.2-8]: a protocol error (here a PUBLISH with QoS 3, [MQTT-3.3.1-4]) closes
/// the connection and publishes the will.
#[test]
fn will_is_published_on_a_protocol_error() {
    let mut h = Harness::default();
    let (watcher, c) = with_will(&mut h, 60);
    // PUBLISH, QoS bits 11, topic "a", no payload.
    h.send_raw(c, &[0x36, 0x03, 0x00, 0x01, b'a']);
    assert_eq!(h.closed(), [c]);
    h.recv_nothing(c);
    h.recv(watcher, &[publish("w", b"gone", Q0, 0)]);
}

/// A framing error reported by the loop also counts as a protocol error.
#[test]
fn will_is_published_on_a_framing_error() {
    let mut h = Harness::default();
    let (watcher, c) = with_will(&mut h, 60);
    h.broker
        .handle_framing_error(c, DecodeError::MalformedRemainingLength, h.now);
    assert_eq!(h.closed(), [c]);
    h.recv(watcher, &[publish("w", b"gone", Q0, 0)]);
}

/// [MQTT-3.1.4-2]: a second connection with the same client id closes the first; the
/// first connection ended without DISCONNECT, so its will is published.
#[test]
fn takeover_closes_the_old_connection_and_publishes_its_will() {
    let mut h = Harness::default();
    let (watcher, old) = with_will(&mut h, 60);
    let new = h.connect(3, "c", true, 60, None);
    assert_eq!(h.closed(), [old]);
    h.recv_nothing(old);
    h.recv(watcher, &[publish("w", b"gone", Q0, 0)]);
    assert_eq!(h.broker.clients_connected(), 2);
    // The new connection is the one that works, and the old one's end did not take the
    // new one's session with it.
    h.send(new, &Packet::Pingreq);
    h.recv(new, &[Packet::Pingresp]);
    h.subscribe(new, 1, &[("x", Q1)]);
    let p = h.connect(4, "pub", true, 0, None);
    h.send(p, &publish("x", b"1", Q1, 1));
    h.recv(new, &[publish("x", b"1", Q1, 1)]);
}

/// A will with RETAIN 1 is stored as the retained message of its topic [MQTT-3.1.2-17].
#[test]
fn will_with_retain_is_stored() {
    let mut h = Harness::default();
    let c = h.connect(1, "c", true, 60, will("status/c", b"offline", Q1, true));
    h.drop_socket(c);
    assert_eq!(h.broker.retained_count(), 1);
    let s = h.connect(2, "s", true, 0, None);
    h.send(s, &subscribe(1, &[("status/+", Q1)]));
    h.recv(
        s,
        &[
            Packet::Suback(Suback {
                packet_id: pid(1),
                codes: vec![ReasonCode::granted(Q1)],
                properties: Default::default(),
            }),
            retained(publish("status/c", b"offline", Q1, 1)),
        ],
    );
}

// ---- Keep alive and CONNECT timeout ----------------------------------------------------

/// [MQTT-3.1.2-23] [MQTT-3.1.2-24]: any control packet counts as activity and pushes the
/// one-and-a-half keep alive deadline back.
#[test]
fn activity_pushes_the_keep_alive_deadline_back() {
    let mut h = Harness::default();
    let c = h.connect(1, "c", true, 10, None);
    h.advance(Duration::from_secs(10));
    h.send(c, &Packet::Pingreq);
    h.recv(c, &[Packet::Pingresp]);
    h.advance(Duration::from_secs(14));
    assert!(h.closed().is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(h.closed(), [c]);
    assert_eq!(h.broker.clients_connected(), 0);
}

/// Section 3.1.2.10 (Keep Alive): a keep alive of zero turns the mechanism off.
#[test]
fn keep_alive_0_never_times_out() {
    let mut h = Harness::default();
    let c = h.connect(1, "c", true, 0, None);
    h.advance(Duration::from_secs(100_000));
    assert!(h.closed().is_empty());
    assert_eq!(h.broker.next_deadline(), None);
    h.send(c, &Packet::Pingreq);
    h.recv(c, &[Packet::Pingresp]);
}

/// A socket that sends no CONNECT is closed after connect_timeout (the specification
/// lets a server close a connection that sends no CONNECT within a reasonable time).
#[test]
fn a_socket_without_connect_is_closed_after_connect_timeout() {
    let mut h = Harness::new(|s| s.connect_timeout = Duration::from_secs(10));
    let c = h.open(1);
    h.advance(Duration::from_millis(9_999));
    assert!(h.closed().is_empty());
    h.advance(Duration::from_millis(1));
    assert_eq!(h.closed(), [c]);
    h.recv_nothing(c);
    assert_eq!(h.broker.next_deadline(), None);
}

/// A connected client is no longer subject to the CONNECT timeout.
#[test]
fn connect_timeout_does_not_apply_after_connect() {
    let mut h = Harness::new(|s| s.connect_timeout = Duration::from_secs(10));
    h.connect(1, "c", true, 0, None);
    h.advance(Duration::from_secs(60));
    assert!(h.closed().is_empty());
}

// ---- UNSUBSCRIBE -----------------------------------------------------------------------

/// [MQTT-3.10.4-1] [MQTT-3.10.4-4]: UNSUBSCRIBE deletes the subscription and UNSUBACK
/// carries its packet id; no more messages arrive.
#[test]
fn unsubscribe_stops_delivery_and_unsuback_has_the_packet_id() {
    let mut h = Harness::default();
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("t", Q0)]);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("t", b"1", Q0, 0));
    h.recv(s, &[publish("t", b"1", Q0, 0)]);
    h.send(s, &unsubscribe(513, &["t"]));
    h.recv(s, &[Packet::Unsuback(Unsuback::new(pid(513)))]);
    h.send(p, &publish("t", b"2", Q0, 0));
    h.recv_nothing(s);
    assert_eq!(h.broker.subscription_count(), 0);
}

/// [MQTT-3.10.4-5]: UNSUBACK is sent even if no filter matched a subscription.
#[test]
fn unsuback_is_sent_for_a_filter_never_subscribed() {
    let mut h = Harness::default();
    let s = h.connect(1, "s", true, 0, None);
    h.send(s, &unsubscribe(9, &["never/subscribed", "#"]));
    h.recv(s, &[Packet::Unsuback(Unsuback::new(pid(9)))]);
}

// ---- Clean session -------------------------------------------------------------------

/// [MQTT-3.1.2-6]: with clean session 1 the previous session is discarded, its
/// subscriptions included.
#[test]
fn clean_session_discards_the_old_sessions_subscriptions() {
    let mut h = Harness::default();
    let s = h.connect(1, "s", false, 0, None);
    h.subscribe(s, 1, &[("t", Q1)]);
    h.disconnect(s);
    assert_eq!(h.broker.subscription_count(), 1);

    let s = h.connect(1, "s", true, 0, None);
    assert_eq!(h.broker.subscription_count(), 0);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("t", b"x", Q1, 1));
    h.recv_nothing(s);
    // And the clean session ends with the connection: no session present next time.
    h.disconnect(s);
    h.connect(1, "s", false, 0, None);
}

// ---- $SYS --------------------------------------------------------------------------------

/// The payload of the last PUBLISH to `topic` among `frames`, with its RETAIN flag.
fn last_publish_to(frames: &[Vec<u8>], topic: &str) -> Option<(Vec<u8>, bool)> {
    frames.iter().rev().find_map(|f| match decode(f) {
        Packet::Publish(p) if p.topic == topic => Some((p.payload.to_vec(), p.retain)),
        _ => None,
    })
}

/// $SYS topics with Mosquitto's names, retained, published every sys_interval when
/// their value changed.
#[test]
fn sys_topics_report_version_and_connected_clients() {
    let mut h = Harness::new(|s| s.sys_interval = Duration::from_secs(1));
    let s = h.connect(1, "s", true, 0, None);
    h.advance(Duration::from_secs(1));
    h.send(s, &subscribe(1, &[("$SYS/#", Q0)]));
    let frames = h.recv_frames(s);
    assert_eq!(
        decode(&frames[0]),
        Packet::Suback(Suback {
            packet_id: pid(1),
            codes: vec![ReasonCode::granted(Q0)],
            properties: Default::default(),
        })
    );
    let version = format!("culex version {}", env!("CARGO_PKG_VERSION"));
    assert_eq!(
        last_publish_to(&frames, "$SYS/broker/version"),
        Some((version.into_bytes(), true))
    );
    assert_eq!(
        last_publish_to(&frames, "$SYS/broker/clients/connected"),
        Some((b"1".to_vec(), true))
    );

    let other = h.connect(2, "other", true, 0, None);
    h.recv_nothing(s);
    h.advance(Duration::from_secs(1));
    let frames = h.recv_frames(s);
    assert_eq!(
        last_publish_to(&frames, "$SYS/broker/clients/connected"),
        Some((b"2".to_vec(), false))
    );

    h.disconnect(other);
    h.advance(Duration::from_secs(1));
    let frames = h.recv_frames(s);
    assert_eq!(
        last_publish_to(&frames, "$SYS/broker/clients/connected"),
        Some((b"1".to_vec(), false))
    );
    // Unchanged values are not published again.
    h.advance(Duration::from_secs(1));
    let frames = h.recv_frames(s);
    assert_eq!(
        last_publish_to(&frames, "$SYS/broker/clients/connected"),
        None
    );
    assert_eq!(last_publish_to(&frames, "$SYS/broker/version"), None);
}

// ---- Memory --------------------------------------------------------------------------------

/// An idle connection owns no outbox buffer: once the socket took everything, the
/// buffer goes back to the pool.
#[test]
fn an_idle_connection_owns_no_buffer() {
    let mut h = Harness::default();
    let s = h.connect(1, "s", true, 0, None);
    assert_eq!(h.outbox(s).capacity(), 0);
    h.subscribe(s, 1, &[("t", Q0)]);
    assert_eq!(h.outbox(s).capacity(), 0);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("t", &[7; 1000], Q0, 0));
    assert!(h.outbox(s).len() > 1000);
    h.recv(s, &[publish("t", &[7; 1000], Q0, 0)]);
    assert!(h.broker.output(s).is_empty());
    assert_eq!(h.outbox(s).capacity(), 0);
    assert_eq!(h.outbox(p).capacity(), 0);
}

/// A partial write keeps the rest of the outbox, in order.
#[test]
fn partial_consume_keeps_the_rest_of_the_outbox() {
    let mut h = Harness::default();
    let c = h.connect(1, "c", true, 0, None);
    h.send(c, &Packet::Pingreq);
    h.send(c, &Packet::Pingreq);
    assert_eq!(h.broker.output(c), [0xd0, 0x00, 0xd0, 0x00]);
    h.broker.consume_output(c, 3);
    assert_eq!(h.broker.output(c), [0x00]);
    h.broker.consume_output(c, 1);
    assert!(h.broker.output(c).is_empty());
    assert_eq!(h.outbox(c).capacity(), 0);
}

// ---- More edges ----------------------------------------------------------------------

/// [MQTT-3.1.2-1]: an unknown protocol name gets no CONNACK; the connection is closed.
#[test]
fn unknown_protocol_name_is_closed_without_connack() {
    let mut h = Harness::default();
    let mut bytes = encode(&connect("c", true, 60, None));
    bytes[4..8].copy_from_slice(b"MQTX");
    let c = h.open(1);
    h.send_raw(c, &bytes);
    assert_eq!(h.closed(), [c]);
    h.recv_nothing(c);
}

/// A client may not send packets only a server sends (here CONNACK); the connection is
/// closed as a protocol violation ([MQTT-4.8.0-1]).
#[test]
fn a_server_only_packet_from_a_client_closes_the_connection() {
    let mut h = Harness::default();
    let c = h.connect(1, "c", true, 0, None);
    h.send(c, &connack(false, ReasonCode::SUCCESS));
    assert_eq!(h.closed(), [c]);
    h.recv_nothing(c);
}

/// [MQTT-3.14.4-1]: after DISCONNECT the server processes nothing more from the
/// connection, even if bytes arrive before the socket is closed.
#[test]
fn packets_after_disconnect_are_ignored() {
    let mut h = Harness::default();
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("t", Q0)]);
    let c = h.connect(2, "c", true, 0, None);
    h.send(c, &Packet::Disconnect(Disconnect::default()));
    h.send(c, &publish("t", b"late", Q0, 0));
    h.send(c, &Packet::Pingreq);
    assert_eq!(h.closed(), [c]);
    h.recv_nothing(c);
    h.recv_nothing(s);
}

/// [MQTT-3.1.4-2] with clean session 0 on both sides: the new connection resumes the
/// session (session present 1) and gets the old connection's unacknowledged messages
/// again with DUP set.
#[test]
fn takeover_of_a_persistent_session_resends_its_inflight_messages() {
    let mut h = Harness::default();
    let old = h.connect(1, "c", false, 0, None);
    h.subscribe(old, 1, &[("t", Q1)]);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("t", b"m", Q1, 1));
    h.recv(old, &[publish("t", b"m", Q1, 1)]);

    let new = h.open(3);
    h.send(new, &connect("c", false, 0, None));
    assert_eq!(h.closed(), [old]);
    h.recv_nothing(old);
    h.recv(
        new,
        &[
            connack(true, ReasonCode::SUCCESS),
            dup(publish("t", b"m", Q1, 1)),
        ],
    );
    h.send(p, &publish("t", b"n", Q1, 2));
    h.recv(new, &[publish("t", b"n", Q1, 2)]);
    assert_eq!(h.broker.clients_connected(), 2);
}

/// A message waiting for a free inflight slot when the client goes away is delivered
/// after the resent inflight messages on reconnect, in order [MQTT-4.6.0-6].
#[test]
fn messages_queued_behind_a_full_window_follow_the_resent_ones() {
    let mut h = Harness::new(|s| s.max_inflight_messages = 1);
    let s = h.connect(1, "s", false, 0, None);
    h.subscribe(s, 1, &[("t", Q1)]);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("t", b"1", Q1, 1));
    h.send(p, &publish("t", b"2", Q1, 2));
    h.recv(s, &[publish("t", b"1", Q1, 1)]);
    h.drop_socket(s);
    h.send(p, &publish("t", b"3", Q1, 3));

    let s = h.open(1);
    h.send(s, &connect("s", false, 0, None));
    h.recv(
        s,
        &[
            connack(true, ReasonCode::SUCCESS),
            dup(publish("t", b"1", Q1, 1)),
        ],
    );
    h.send(s, &Packet::Puback(Ack::new(pid(1))));
    h.recv(s, &[publish("t", b"2", Q1, 2)]);
    h.send(s, &Packet::Puback(Ack::new(pid(2))));
    h.recv(s, &[publish("t", b"3", Q1, 3)]);
}

/// message_size_limit: a larger payload is dropped and counted, but its QoS flow is
/// completed (Mosquitto's behaviour), so the client does not resend it forever.
#[test]
fn payload_over_message_size_limit_is_dropped_but_acknowledged() {
    let mut h = Harness::new(|s| s.message_size_limit = 4);
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("t", Q1)]);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("t", b"12345", Q1, 1));
    h.recv(p, &[Packet::Puback(Ack::new(pid(1)))]);
    h.recv_nothing(s);
    assert_eq!(h.broker.dropped_count(), 1);
    h.send(p, &publish("t", b"1234", Q1, 2));
    h.recv(p, &[Packet::Puback(Ack::new(pid(2)))]);
    h.recv(s, &[publish("t", b"1234", Q1, 1)]);
}

/// QoS 0 messages to a client whose outbox is over outbox_limit are dropped and counted
/// (the socket is not keeping up); QoS 1 messages are kept.
#[test]
fn qos0_is_dropped_when_the_outbox_is_over_its_limit() {
    let mut h = Harness::new(|s| s.outbox_limit = 10);
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("t", Q1)]);
    let p = h.connect(2, "pub", true, 0, None);
    let payload = [b'x'; 20];
    h.send(p, &publish("t", &payload, Q0, 0));
    h.send(p, &publish("t", &payload, Q0, 0));
    h.send(p, &publish("t", &payload, Q1, 1));
    assert_eq!(h.broker.dropped_count(), 1);
    h.recv(
        s,
        &[publish("t", &payload, Q0, 0), publish("t", &payload, Q1, 1)],
    );
    h.send(p, &publish("t", &payload, Q0, 0));
    h.recv(s, &[publish("t", &payload, Q0, 0)]);
}

/// A connection id the loop reuses after `handle_closed` starts fresh: the old
/// connection's keep alive does not close the new one.
#[test]
fn a_reused_connection_id_does_not_inherit_the_old_keep_alive() {
    let mut h = Harness::default();
    let c = h.connect(1, "a", true, 10, None);
    h.advance(Duration::from_secs(5));
    h.drop_socket(c);
    let c = h.connect(1, "b", true, 100, None);
    h.advance(Duration::from_secs(100));
    assert!(h.closed().is_empty());
    h.send(c, &Packet::Pingreq);
    h.recv(c, &[Packet::Pingresp]);
}

/// [MQTT-3.1.3-6]: a client id the server assigns is unique, whatever the clock says
/// between the two connections.
#[test]
fn assigned_client_ids_are_unique() {
    for gap in 0..8 {
        let mut h = Harness::default();
        h.connect(1, "", true, 0, None);
        h.advance(Duration::from_nanos(gap));
        h.connect(2, "", true, 0, None);
        assert!(h.closed().is_empty(), "gap {gap} ns: assigned id reused");
        assert_eq!(h.broker.clients_connected(), 2);
    }
}

/// MQTT 3.1 clients get 3.1 packets: the CONNACK and a QoS 1 exchange are the same bytes.
/// A message to the publisher's own subscription is routed before the PUBACK is written
/// (either order is allowed; Mosquitto does the same).
#[test]
fn mqtt_3_1_client_can_publish_and_subscribe() {
    let mut h = Harness::default();
    let c = h.open(1);
    h.send(
        c,
        &Packet::Connect(Box::new(Connect {
            version: ProtocolVersion::V31,
            clean_session: true,
            keep_alive: 60,
            client_id: "old",
            will: None,
            username: None,
            password: None,
            properties: Props::default(),
        })),
    );
    h.recv(c, &[connack(false, ReasonCode::SUCCESS)]);
    h.subscribe(c, 1, &[("t", Q1)]);
    h.send(c, &publish("t", b"self", Q1, 9));
    h.recv(
        c,
        &[
            publish("t", b"self", Q1, 1),
            Packet::Puback(Ack::new(pid(9))),
        ],
    );
}

/// The will goes out at the lower of its QoS and the subscription's [MQTT-3.8.4-6]; a
/// QoS 2 will to a QoS 2 subscriber starts a QoS 2 exchange.
#[test]
fn will_is_delivered_at_the_granted_qos() {
    let mut h = Harness::default();
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("w", Q2)]);
    let c = h.connect(2, "c", true, 0, will("w", b"bye", Q2, false));
    h.drop_socket(c);
    h.recv(s, &[publish("w", b"bye", Q2, 1)]);
    h.send(s, &Packet::Pubrec(Ack::new(pid(1))));
    h.recv(s, &[Packet::Pubrel(Ack::new(pid(1)))]);
}

/// A refused CONNECT creates nothing: its will is never published and a connected
/// client with the same id is not taken over (the refusal comes before [MQTT-3.1.4-2]).
#[test]
fn a_refused_connect_neither_takes_over_nor_publishes_its_will() {
    let mut h = Harness::new(|s| s.max_keepalive = 60);
    let watcher = h.connect(1, "watcher", true, 0, None);
    h.subscribe(watcher, 1, &[("w", Q0)]);
    let c = h.connect(2, "c", true, 60, None);
    let refused = h.open(3);
    h.send(refused, &connect("c", true, 61, will("w", b"x", Q0, false)));
    assert_eq!(h.closed(), [refused]);
    h.recv(
        refused,
        &[connack(false, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID)],
    );
    h.recv_nothing(watcher);
    h.send(c, &Packet::Pingreq);
    h.recv(c, &[Packet::Pingresp]);
    assert_eq!(h.broker.clients_connected(), 2);
}

/// [MQTT-3.8.4-5]: one SUBACK return code per filter, in order, with the SUBSCRIBE's
/// packet id [MQTT-3.8.4-2]; the granted QoS is the requested one.
#[test]
fn suback_has_one_code_per_filter_in_order() {
    let mut h = Harness::default();
    let c = h.connect(1, "c", true, 0, None);
    h.send(
        c,
        &subscribe(0xabcd, &[("a", Q2), ("b/#", Q0), ("+/c", Q1)]),
    );
    h.recv(
        c,
        &[Packet::Suback(Suback {
            packet_id: pid(0xabcd),
            codes: vec![
                ReasonCode::granted(Q2),
                ReasonCode::granted(Q0),
                ReasonCode::granted(Q1),
            ],
            properties: Default::default(),
        })],
    );
    // 0x90 = SUBACK, remaining length 5, id 0xabcd, codes 2, 0, 1.
    h.send(
        c,
        &subscribe(0xabcd, &[("a", Q2), ("b/#", Q0), ("+/c", Q1)]),
    );
    assert_eq!(
        h.recv_frames(c),
        [vec![0x90, 0x05, 0xab, 0xcd, 0x02, 0x00, 0x01]]
    );
}

/// persistent_client_expiration: a disconnected persistent session is discarded after
/// the configured time (and not before); a reconnect in time keeps it.
#[test]
fn persistent_session_expires_after_persistent_client_expiration() {
    let mut h = Harness::new(|s| s.persistent_client_expiration = Some(Duration::from_secs(60)));
    let sub = h.connect(1, "sub", false, 0, None);
    h.subscribe(sub, 1, &[("t", Q1)]);
    h.disconnect(sub);
    h.advance(Duration::from_secs(59));
    // Back in time: the session is resumed and its expiry cancelled.
    let sub = h.open(1);
    h.send(sub, &connect("sub", false, 0, None));
    h.recv(sub, &[connack(true, ReasonCode::SUCCESS)]);
    h.advance(Duration::from_secs(120));
    h.disconnect(sub);
    assert_eq!(h.broker.subscription_count(), 1);
    h.advance(Duration::from_secs(61));
    assert_eq!(
        h.broker.subscription_count(),
        0,
        "the expired session's subscription is gone"
    );
    let sub = h.open(1);
    h.send(sub, &connect("sub", false, 0, None));
    h.recv(sub, &[connack(false, ReasonCode::SUCCESS)]);
}

/// Shared subscriptions ($share/{name}/{filter}, MQTT 5.0 section 4.8.2, accepted from
/// 3.1.1 clients as Mosquitto does): each message goes to one member of the group, round
/// robin; ordinary subscribers still get every message; no retained message on subscribe.
#[test]
fn shared_subscription_delivers_each_message_to_one_member() {
    let mut h = Harness::default();
    let p = h.connect(1, "pub", true, 0, None);
    h.send(p, &retained(publish("jobs/1", b"old", Q0, 0)));
    let a = h.connect(2, "a", true, 0, None);
    let b = h.connect(3, "b", true, 0, None);
    let watcher = h.connect(4, "w", true, 0, None);
    h.subscribe(a, 1, &[("$share/workers/jobs/+", Q0)]);
    h.subscribe(b, 1, &[("$share/workers/jobs/+", Q0)]);
    h.recv_nothing(a);
    h.recv_nothing(b);
    h.send(watcher, &subscribe(1, &[("jobs/#", Q0)]));
    h.recv(
        watcher,
        &[
            Packet::Suback(Suback {
                packet_id: pid(1),
                codes: vec![ReasonCode::granted(Q0)],
                properties: Default::default(),
            }),
            retained(publish("jobs/1", b"old", Q0, 0)),
        ],
    );
    for payload in [b"j1", b"j2", b"j3", b"j4"] {
        h.send(p, &publish("jobs/1", payload, Q0, 0));
    }
    h.recv(
        a,
        &[
            publish("jobs/1", b"j1", Q0, 0),
            publish("jobs/1", b"j3", Q0, 0),
        ],
    );
    h.recv(
        b,
        &[
            publish("jobs/1", b"j2", Q0, 0),
            publish("jobs/1", b"j4", Q0, 0),
        ],
    );
    assert_eq!(h.recv_frames(watcher).len(), 4);
    assert_eq!(h.broker.subscription_count(), 3);
    // A member that leaves no longer gets messages; the group lives on.
    h.send(a, &unsubscribe(2, &["$share/workers/jobs/+"]));
    h.recv_frames(a);
    h.send(p, &publish("jobs/1", b"j5", Q0, 0));
    h.send(p, &publish("jobs/1", b"j6", Q0, 0));
    h.recv_nothing(a);
    h.recv(
        b,
        &[
            publish("jobs/1", b"j5", Q0, 0),
            publish("jobs/1", b"j6", Q0, 0),
        ],
    );
}

/// Regression (found by culex_bench's retained scenario): retained messages sent for a
/// new subscription are not cut off by outbox_limit; all of them arrive.
#[test]
fn all_retained_messages_reach_a_new_subscriber_beyond_the_outbox_limit() {
    let mut h = Harness::new(|s| s.outbox_limit = 64);
    let p = h.connect(1, "pub", true, 0, None);
    let topics: Vec<String> = (0..50).map(|i| format!("r/{i}")).collect();
    for topic in &topics {
        h.send(p, &retained(publish(topic, &[b'v'; 32], Q0, 0)));
    }
    assert_eq!(h.broker.retained_count(), 50);
    let s = h.connect(2, "s", true, 0, None);
    h.send(s, &subscribe(1, &[("r/#", Q0)]));
    let frames = h.recv_frames(s);
    assert_eq!(frames.len(), 51, "SUBACK and every retained message");
    assert_eq!(h.broker.dropped_count(), 0);
}

// ---- MQTT 5 -----------------------------------------------------------------------------

const V5: ProtocolVersion = ProtocolVersion::V5;

fn encode5(packet: &Packet<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    packet.encode(V5, &mut out);
    out
}

impl Harness {
    fn send5(&mut self, conn: ConnId, packet: &Packet<'_>) {
        let bytes = encode5(packet);
        self.send_raw(conn, &bytes);
    }

    /// Opens `id` and sends an MQTT 5 CONNECT; returns the frames received (CONNACK first).
    fn connect5(
        &mut self,
        id: u32,
        client_id: &str,
        clean_start: bool,
        props: Properties<'_>,
        will: Option<Will<'_>>,
    ) -> (ConnId, Vec<Vec<u8>>) {
        let conn = self.open(id);
        self.send5(
            conn,
            &Packet::Connect(Box::new(Connect {
                version: V5,
                clean_session: clean_start,
                keep_alive: 30,
                client_id,
                will,
                username: None,
                password: None,
                properties: props.into(),
            })),
        );
        let frames = self.recv_frames(conn);
        (conn, frames)
    }

    fn subscribe5(
        &mut self,
        conn: ConnId,
        id: u16,
        filter: &str,
        options: SubscriptionOptions,
        sub_id: Option<u32>,
    ) {
        let mut properties = Properties::default();
        properties.subscription_identifiers.extend(sub_id);
        self.send5(
            conn,
            &Packet::Subscribe(Subscribe {
                packet_id: pid(id),
                filters: vec![(filter, options)],
                properties: properties.into(),
            }),
        );
    }
}

fn decode5(frame: &[u8]) -> Packet<'_> {
    Packet::decode(frame, V5).expect("the broker sends valid MQTT 5 packets")
}

fn publish5<'a>(
    topic: &'a str,
    payload: &'a [u8],
    qos: QoS,
    id: u16,
    properties: Properties<'a>,
) -> Packet<'a> {
    match publish(topic, payload, qos, id) {
        Packet::Publish(p) => Packet::Publish(Publish {
            properties: properties.into(),
            ..p
        }),
        other => other,
    }
}

fn connack_of(frames: &[Vec<u8>]) -> Connack<'_> {
    match decode5(&frames[0]) {
        Packet::Connack(c) => c,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

/// MQTT 5 CONNECT is accepted; CONNACK tells the client our Receive Maximum and Topic
/// Alias Maximum, and assigns an id to an empty one [MQTT-3.1.3-6] [MQTT-3.2.2-16].
#[test]
fn mqtt5_connect_gets_connack_with_limits_and_assigned_id() {
    let mut h = Harness::default();
    let (_, frames) = h.connect5(1, "", true, Properties::default(), None);
    let connack = connack_of(&frames);
    assert_eq!(connack.reason, ReasonCode::SUCCESS);
    assert!(!connack.session_present);
    let assigned = connack
        .properties
        .assigned_client_identifier
        .expect("assigned id");
    assert!(assigned.starts_with("auto-"), "{assigned}");
    assert_eq!(connack.properties.receive_maximum, Some(20));
    assert_eq!(connack.properties.topic_alias_maximum, Some(10));
    assert_eq!(h.broker.clients_connected(), 1);
}

/// A CONNECT with an Authentication Method culex does not support gets 0x8C. [MQTT-4.12.0-1]
#[test]
fn mqtt5_unsupported_authentication_method_is_refused_with_0x8c() {
    let mut h = Harness::default();
    let props = Properties {
        authentication_method: Some("SCRAM-SHA-1"),
        ..Properties::default()
    };
    let (c, frames) = h.connect5(1, "c", true, props, None);
    assert_eq!(
        connack_of(&frames).reason,
        ReasonCode::BAD_AUTHENTICATION_METHOD
    );
    assert_eq!(h.closed(), [c]);
}

/// Session Expiry Interval: the session outlives its connection for that long, with its
/// subscriptions and queued messages, then ends. [MQTT-3.1.2-23]
#[test]
fn mqtt5_session_expiry_keeps_the_session_for_its_interval() {
    let mut h = Harness::default();
    let props = || Properties {
        session_expiry_interval: Some(60),
        ..Properties::default()
    };
    let (sub, _) = h.connect5(1, "s", true, props(), None);
    h.subscribe5(sub, 1, "t", SubscriptionOptions::new(Q1), None);
    h.recv_frames(sub);
    h.send5(sub, &Packet::Disconnect(Disconnect::default()));
    assert_eq!(h.closed(), [sub]);
    let p = h.connect(2, "p", true, 0, None);
    h.send(p, &publish("t", b"kept", Q1, 1));
    h.advance(Duration::from_secs(30));
    let (sub, frames) = h.connect5(1, "s", false, props(), None);
    assert!(connack_of(&frames).session_present);
    assert_eq!(
        decode5(&frames[1]),
        publish5("t", b"kept", Q1, 1, Properties::default())
    );
    h.send5(sub, &Packet::Puback(Ack::new(pid(1))));
    h.send5(sub, &Packet::Disconnect(Disconnect::default()));
    h.closed();
    h.advance(Duration::from_secs(61));
    let (_, frames) = h.connect5(1, "s", false, props(), None);
    assert!(!connack_of(&frames).session_present, "expired after 60 s");
}

/// Message Expiry Interval: a queued message is sent with what is left of its interval
/// [MQTT-3.3.2-6], and not at all once it has expired [MQTT-3.3.2-5].
#[test]
fn mqtt5_message_expiry_counts_down_while_queued() {
    let mut h = Harness::default();
    let props = Properties {
        session_expiry_interval: Some(600),
        ..Properties::default()
    };
    let (sub, _) = h.connect5(1, "s", true, props.clone(), None);
    h.subscribe5(sub, 1, "t", SubscriptionOptions::new(Q1), None);
    h.recv_frames(sub);
    h.send5(sub, &Packet::Disconnect(Disconnect::default()));
    h.closed();
    let (p, _) = h.connect5(2, "p", true, Properties::default(), None);
    let expiring = |secs| Properties {
        message_expiry_interval: Some(secs),
        ..Properties::default()
    };
    h.send5(p, &publish5("t", b"short", Q1, 1, expiring(2)));
    h.send5(p, &publish5("t", b"long", Q1, 2, expiring(10)));
    h.advance(Duration::from_secs(5));
    let (_, frames) = h.connect5(1, "s", false, props, None);
    assert_eq!(frames.len(), 2, "CONNACK and the one message still alive");
    assert_eq!(
        decode5(&frames[1]),
        publish5("t", b"long", Q1, 1, expiring(5))
    );
}

/// Topic aliases from the client: a name sets the alias, an empty name uses it
/// [MQTT-3.3.2-12]; an alias over our maximum is a DISCONNECT 0x94. [MQTT-3.3.2-9]
#[test]
fn mqtt5_inbound_topic_aliases_are_resolved_and_bounded() {
    let mut h = Harness::default();
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("sensors/#", Q0)]);
    let (p, _) = h.connect5(2, "p", true, Properties::default(), None);
    let alias = |a| Properties {
        topic_alias: Some(a),
        ..Properties::default()
    };
    h.send5(p, &publish5("sensors/t1", b"a", Q0, 0, alias(3)));
    h.send5(p, &publish5("", b"b", Q0, 0, alias(3)));
    h.recv(
        s,
        &[
            publish("sensors/t1", b"a", Q0, 0),
            publish("sensors/t1", b"b", Q0, 0),
        ],
    );
    h.send5(p, &publish5("sensors/t1", b"c", Q0, 0, alias(11)));
    assert_eq!(h.closed(), [p]);
    assert_eq!(
        decode5(&h.recv_frames(p)[0]),
        Packet::Disconnect(Disconnect {
            reason: ReasonCode::TOPIC_ALIAS_INVALID,
            properties: Props::default()
        })
    );
}

/// No Local [MQTT-3.8.3-3], Retain As Published [MQTT-3.3.1-12], Retain Handling 2
/// (no retained messages on subscribe), and the Subscription Identifier sent with each
/// matching message [MQTT-3.3.4-3].
#[test]
fn mqtt5_subscription_options_and_identifiers() {
    let mut h = Harness::default();
    let (c, _) = h.connect5(1, "c", true, Properties::default(), None);
    h.send5(
        c,
        &retained(publish5("r/old", b"old", Q0, 0, Properties::default())),
    );
    let options = SubscriptionOptions {
        qos: Q0,
        no_local: true,
        retain_as_published: true,
        retain_handling: 2,
    };
    h.subscribe5(c, 1, "r/#", options, Some(7));
    assert_eq!(
        h.recv_frames(c).len(),
        1,
        "SUBACK only: no retained message, Retain Handling 2"
    );
    h.send5(
        c,
        &retained(publish5("r/new", b"mine", Q0, 0, Properties::default())),
    );
    assert!(
        h.recv_frames(c).is_empty(),
        "No Local: not sent its own message"
    );
    let (o, _) = h.connect5(2, "o", true, Properties::default(), None);
    h.send5(
        o,
        &retained(publish5("r/new", b"theirs", Q0, 0, Properties::default())),
    );
    let frames = h.recv_frames(c);
    let mut ids = Properties::default();
    ids.subscription_identifiers.push(7);
    assert_eq!(
        decode5(&frames[0]),
        retained(publish5("r/new", b"theirs", Q0, 0, ids))
    );
}

/// PUBACK says 0x10 when nobody was subscribed (as Mosquitto), and user properties,
/// content type and correlation data reach an MQTT 5 subscriber unchanged
/// [MQTT-3.3.2-17] [MQTT-3.3.2-20]; an MQTT 3.1.1 subscriber gets the message without.
#[test]
fn mqtt5_properties_are_forwarded_and_puback_reports_no_subscribers() {
    let mut h = Harness::default();
    let (p, _) = h.connect5(1, "p", true, Properties::default(), None);
    h.send5(p, &publish5("x", b"nobody", Q1, 1, Properties::default()));
    let frames = h.recv_frames(p);
    let ack = decode5(&frames[0]);
    assert_eq!(
        ack,
        Packet::Puback(Ack {
            packet_id: pid(1),
            reason: ReasonCode::NO_MATCHING_SUBSCRIBERS,
            properties: Props::default()
        })
    );

    let (s5, _) = h.connect5(2, "s5", true, Properties::default(), None);
    h.subscribe5(s5, 1, "x", SubscriptionOptions::new(Q0), None);
    h.recv_frames(s5);
    let s3 = h.connect(3, "s3", true, 0, None);
    h.subscribe(s3, 1, &[("x", Q0)]);
    let mut props = Properties {
        content_type: Some("text/plain"),
        correlation_data: Some(b"42"),
        response_topic: Some("reply/p"),
        ..Properties::default()
    };
    props.user_properties.push(("site", "north"));
    h.send5(p, &publish5("x", b"hello", Q0, 0, props.clone()));
    assert_eq!(
        decode5(&h.recv_frames(s5)[0]),
        publish5("x", b"hello", Q0, 0, props)
    );
    h.recv(s3, &[publish("x", b"hello", Q0, 0)]);
}

/// Will Delay Interval: the will waits, and is not sent if the session comes back in
/// time [MQTT-3.1.3-9]; otherwise it goes out when the delay passes.
#[test]
fn mqtt5_will_delay_waits_and_is_cancelled_by_a_reconnect() {
    let mut h = Harness::default();
    let w = h.connect(9, "watcher", true, 0, None);
    h.subscribe(w, 1, &[("wills/#", Q0)]);
    let session = || Properties {
        session_expiry_interval: Some(100),
        ..Properties::default()
    };
    let delayed_will = || {
        Some(Will {
            topic: "wills/c",
            payload: b"gone",
            qos: Q0,
            retain: false,
            properties: Properties {
                will_delay_interval: Some(5),
                ..Properties::default()
            }
            .into(),
        })
    };
    let (c, _) = h.connect5(1, "c", true, session(), delayed_will());
    h.drop_socket(c);
    h.advance(Duration::from_secs(3));
    h.recv_nothing(w);
    let (c, frames) = h.connect5(1, "c", false, session(), delayed_will());
    assert!(connack_of(&frames).session_present);
    h.advance(Duration::from_secs(10));
    h.recv_nothing(w);
    h.drop_socket(c);
    h.advance(Duration::from_secs(4));
    h.recv_nothing(w);
    h.advance(Duration::from_secs(2));
    h.recv(w, &[publish("wills/c", b"gone", Q0, 0)]);
}

/// DISCONNECT with 0x04 publishes the will [MQTT-3.14.2.1]; the server tells an MQTT 5
/// client why it closes: keep alive timeout 0x8D.
#[test]
fn mqtt5_disconnect_with_will_and_server_disconnect_reasons() {
    let mut h = Harness::default();
    let w = h.connect(9, "watcher", true, 0, None);
    h.subscribe(w, 1, &[("wills/#", Q0)]);
    let will = Some(Will {
        topic: "wills/a",
        payload: b"bye",
        qos: Q0,
        retain: false,
        properties: Props::default(),
    });
    let (a, _) = h.connect5(1, "a", true, Properties::default(), will);
    h.send5(
        a,
        &Packet::Disconnect(Disconnect {
            reason: ReasonCode::DISCONNECT_WITH_WILL_MESSAGE,
            properties: Props::default(),
        }),
    );
    assert_eq!(h.closed(), [a]);
    h.recv(w, &[publish("wills/a", b"bye", Q0, 0)]);

    let (b, _) = h.connect5(2, "b", true, Properties::default(), None);
    h.advance(Duration::from_secs(46));
    assert_eq!(h.closed(), [b]);
    assert_eq!(
        decode5(&h.recv_frames(b)[0]),
        Packet::Disconnect(Disconnect {
            reason: ReasonCode::KEEP_ALIVE_TIMEOUT,
            properties: Props::default()
        })
    );
}

/// The client's Receive Maximum bounds the QoS 1/2 messages in flight to it
/// [MQTT-3.3.4-9], and its Maximum Packet Size the packets sent to it: a larger one is
/// dropped as if delivered [MQTT-3.1.2-25].
#[test]
fn mqtt5_client_receive_maximum_and_maximum_packet_size_are_honoured() {
    let mut h = Harness::default();
    let props = Properties {
        receive_maximum: Some(1),
        maximum_packet_size: Some(64),
        ..Properties::default()
    };
    let (s, _) = h.connect5(1, "s", true, props, None);
    h.subscribe5(s, 1, "t", SubscriptionOptions::new(Q1), None);
    h.recv_frames(s);
    let p = h.connect(2, "p", true, 0, None);
    h.send(p, &publish("t", &[b'x'; 100], Q1, 1));
    h.send(p, &publish("t", b"m1", Q1, 2));
    h.send(p, &publish("t", b"m2", Q1, 3));
    let frames = h.recv_frames(s);
    assert_eq!(
        frames.len(),
        1,
        "the 100-byte message is dropped; one in flight"
    );
    // Packet id 1 went to the dropped message.
    assert_eq!(
        decode5(&frames[0]),
        publish5("t", b"m1", Q1, 2, Properties::default())
    );
    h.send5(s, &Packet::Puback(Ack::new(pid(2))));
    assert_eq!(
        decode5(&h.recv_frames(s)[0]),
        publish5("t", b"m2", Q1, 3, Properties::default())
    );
    assert!(h.broker.dropped_count() >= 1);
}

/// Outbound topic aliases: to a client that allows them, the first message on a topic
/// sets an alias and later ones send an empty topic name with it [MQTT-3.3.2-8]
/// [MQTT-3.3.2-12]; never more aliases than the client's Topic Alias Maximum.
#[test]
fn mqtt5_outbound_topic_aliases_save_the_topic_name() {
    let mut h = Harness::default();
    let props = Properties {
        topic_alias_maximum: Some(1),
        ..Properties::default()
    };
    let (s, _) = h.connect5(1, "s", true, props, None);
    h.subscribe5(s, 1, "#", SubscriptionOptions::new(Q0), None);
    h.recv_frames(s);
    let p = h.connect(2, "p", true, 0, None);
    for (topic, payload) in [
        ("sensors/long/name", b"1"),
        ("sensors/long/name", b"2"),
        ("other", b"3"),
    ] {
        h.send(p, &publish(topic, payload, Q0, 0));
    }
    let frames = h.recv_frames(s);
    let alias = |a| Properties {
        topic_alias: Some(a),
        ..Properties::default()
    };
    assert_eq!(
        decode5(&frames[0]),
        publish5("sensors/long/name", b"1", Q0, 0, alias(1))
    );
    assert_eq!(decode5(&frames[1]), publish5("", b"2", Q0, 0, alias(1)));
    assert_eq!(
        decode5(&frames[2]),
        publish5("other", b"3", Q0, 0, Properties::default())
    );
}

/// max_qos, retain_available and max_packet_size: told in CONNACK [MQTT-3.2.2-9]
/// [MQTT-3.2.2-13]; a subscription is granted at most max_qos; a PUBLISH above it is a
/// DISCONNECT 0x9B [MQTT-3.2.2-11], a retained one without retain support 0x9A
/// [MQTT-3.2.2-14].
#[test]
fn mqtt5_max_qos_retain_available_and_max_packet_size_options() {
    let mut h = Harness::new(|s| {
        s.listeners = vec![ListenerLimits {
            max_qos: Q1,
            ..ListenerLimits::default()
        }];
        s.retain_available = false;
        s.max_packet_size = 1000;
    });
    assert_eq!(h.broker.max_packet_size(), 1000);
    let (c, frames) = h.connect5(1, "c", true, Properties::default(), None);
    let connack = connack_of(&frames);
    assert_eq!(connack.properties.maximum_qos, Some(1));
    assert_eq!(connack.properties.retain_available, Some(0));
    assert_eq!(connack.properties.maximum_packet_size, Some(1000));
    h.subscribe5(c, 1, "t", SubscriptionOptions::new(Q2), None);
    match decode5(&h.recv_frames(c)[0]) {
        Packet::Suback(s) => assert_eq!(s.codes, [ReasonCode::granted(Q1)]),
        other => panic!("{other:?}"),
    }
    h.send5(
        c,
        &retained(publish5("t", b"r", Q0, 0, Properties::default())),
    );
    assert_eq!(h.closed(), [c]);
    let disconnect = |reason| {
        Packet::Disconnect(Disconnect {
            reason,
            properties: Props::default(),
        })
    };
    assert_eq!(
        decode5(&h.recv_frames(c)[0]),
        disconnect(ReasonCode::RETAIN_NOT_SUPPORTED)
    );
    let (c, _) = h.connect5(2, "c2", true, Properties::default(), None);
    h.send5(c, &publish5("t", b"q2", Q2, 1, Properties::default()));
    assert_eq!(h.closed(), [c]);
    assert_eq!(
        decode5(&h.recv_frames(c)[0]),
        disconnect(ReasonCode::QOS_NOT_SUPPORTED)
    );
}

/// Stopping: MQTT 5 clients get DISCONNECT 0x8B (Server shutting down); 3.1.1 clients,
/// which have no such packet, get nothing.
#[test]
fn mqtt5_clients_are_told_when_the_server_shuts_down() {
    let mut h = Harness::default();
    let (c5, _) = h.connect5(1, "c5", true, Properties::default(), None);
    let c3 = h.connect(2, "c3", true, 0, None);
    h.broker.shutdown();
    assert_eq!(
        decode5(&h.recv_frames(c5)[0]),
        Packet::Disconnect(Disconnect {
            reason: ReasonCode::SERVER_SHUTTING_DOWN,
            properties: Props::default()
        })
    );
    h.recv_nothing(c3);
}

/// A client whose unread output grows past 16 x outbox_limit (here through retained
/// messages, which the limit does not shed) is disconnected; an MQTT 5 client is told
/// Quota Exceeded (0x97). Other clients are not affected.
#[test]
fn mqtt5_client_with_runaway_output_is_disconnected_with_quota_exceeded() {
    let mut h = Harness::new(|s| s.outbox_limit = 64);
    let p = h.connect(1, "p", true, 0, None);
    for i in 0..40 {
        h.send(p, &retained(publish(&format!("r/{i}"), &[b'v'; 40], Q0, 0)));
    }
    let (c, _) = h.connect5(2, "c", true, Properties::default(), None);
    h.subscribe5(c, 1, "r/#", SubscriptionOptions::new(Q0), None);
    // The loop learns of it when it collects the connections to write (poll_dirty).
    let frames = h.recv_frames(c);
    assert_eq!(h.closed(), [c]);
    let last = frames.last().expect("output before the close");
    assert_eq!(
        decode5(last),
        Packet::Disconnect(Disconnect {
            reason: ReasonCode::QUOTA_EXCEEDED,
            properties: Props::default()
        })
    );
    h.send(p, &Packet::Pingreq);
    h.recv(p, &[Packet::Pingresp]);
}

/// One message larger than 16 x outbox_limit reaches a client whose outbox was empty,
/// at QoS 0 and 1: the limit is judged before a packet is added, so a 50 MB message the
/// broker accepted is delivered (it disconnected the subscriber before, found with
/// mosquitto_sub receiving 50 MB over TLS).
#[test]
fn a_message_larger_than_the_hard_outbox_limit_is_delivered() {
    let mut h = Harness::new(|s| s.outbox_limit = 64);
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("t", Q1)]);
    let p = h.connect(2, "p", true, 0, None);
    let big = vec![b'x'; 64 * 16 * 4];
    h.send(p, &publish("t", &big, Q0, 0));
    h.recv(s, &[publish("t", &big, Q0, 0)]);
    h.send(p, &publish("t", &big, Q1, 1));
    h.recv(p, &[Packet::Puback(Ack::new(pid(1)))]);
    assert!(h.closed().is_empty(), "the subscriber stays connected");
    h.recv(s, &[publish("t", &big, Q1, 1)]);
}

/// QoS 1/2 messages to a client that does not read its output wait in its session queue
/// (bounded by max_queued_messages) instead of piling up in its outbox; they are sent, in
/// order, as the outbox drains, and the client is never disconnected for them.
#[test]
fn qos1_waits_in_the_session_queue_while_the_outbox_is_backlogged() {
    let mut h = Harness::new(|s| {
        s.outbox_limit = 64;
        s.max_inflight_messages = 100;
    });
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("t", Q1)]);
    let p = h.connect(2, "p", true, 0, None);
    let payload = [b'y'; 100];
    let mut expected = Vec::new();
    for i in 1..=40u16 {
        h.send(p, &publish("t", &payload, Q1, i));
        expected.push(publish("t", &payload, Q1, i));
    }
    // Without the queue, 40 x 107 bytes would be past 16 x 64 and the client cut off.
    assert_eq!(
        h.outbox(s).len(),
        107,
        "only the first message is in the outbox"
    );
    assert!(h.closed().is_empty());
    h.recv(s, &expected);
    assert!(h.closed().is_empty());
}

/// Operation sequences (quinn's streams fuzz target, in miniature): seeded random clients
/// of all three versions connect, subscribe, publish at every QoS, acknowledge, drop,
/// send garbage and time out, on a virtual clock. The core must never panic, and its
/// connection count must match the connections the harness holds open.
#[test]
fn random_operation_sequences_keep_the_core_consistent() {
    for seed in 1..=12u64 {
        random_operation_sequence(seed, random_sequence_harness(), |_, _| {});
    }
}

fn random_sequence_harness() -> Harness {
    Harness::new(|s| {
        s.max_inflight_messages = 3;
        s.max_queued_messages = 5;
        s.sys_interval = Duration::from_secs(5);
    })
}

/// The body of the operation-sequence test; `check` runs after every step.
fn random_operation_sequence(
    seed: u64,
    mut h: Harness,
    mut check: impl FnMut(&mut Harness, usize),
) {
    const FILTERS: [&str; 6] = ["a/#", "a/+", "+/b", "#", "$share/g/a/b", "a/b"];
    const TOPICS: [&str; 4] = ["a/b", "a/c", "x/b", "a"];
    {
        let mut rng = crate::protocol::testing::Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        // slot -> (open, connected, version)
        let mut conns: Vec<(bool, bool, ProtocolVersion)> = vec![(false, false, V311); 6];
        for step in 0..1_500 {
            let slot = rng.below(conns.len());
            let id = ConnId(slot as u32);
            let (open, connected, version) = conns[slot];
            let encode_for = |p: &Packet<'_>, v: ProtocolVersion| {
                let mut out = Vec::new();
                p.encode(v, &mut out);
                out
            };
            let action = match (open, connected) {
                (false, _) => 0,
                (true, false) => 1,
                (true, true) => 2 + rng.below(38),
            };
            match action {
                0 => {
                    h.open(slot as u32);
                    conns[slot] = (true, false, V311);
                }
                1 => {
                    let version = [ProtocolVersion::V31, V311, V5][rng.below(3)];
                    let client_id = ["c1", "c2", "c3", ""][rng.below(4)];
                    let will = rng.bool().then(|| Will {
                        topic: TOPICS[rng.below(TOPICS.len())],
                        payload: b"w",
                        qos: rng.qos(),
                        retain: rng.bool(),
                        properties: Props::default(),
                    });
                    let mut properties = Properties::default();
                    if version == V5 && rng.bool() {
                        properties.session_expiry_interval = Some(rng.below(30) as u32);
                    }
                    let connect = Packet::Connect(Box::new(Connect {
                        version,
                        clean_session: rng.bool(),
                        keep_alive: rng.below(5) as u16,
                        client_id,
                        will,
                        username: None,
                        password: None,
                        properties: properties.into(),
                    }));
                    h.send_raw(id, &encode_for(&connect, version));
                    conns[slot] = (true, true, version);
                }
                2..=6 => {
                    let options = SubscriptionOptions {
                        qos: rng.qos(),
                        no_local: version == V5 && rng.bool(),
                        retain_as_published: version == V5 && rng.bool(),
                        retain_handling: if version == V5 { rng.below(3) as u8 } else { 0 },
                    };
                    let filter = FILTERS[rng.below(FILTERS.len())];
                    let options = if filter.starts_with("$share") {
                        SubscriptionOptions {
                            no_local: false,
                            ..options
                        }
                    } else {
                        options
                    };
                    let p = Packet::Subscribe(Subscribe {
                        packet_id: rng.id(),
                        filters: vec![(filter, options)],
                        properties: Props::default(),
                    });
                    h.send_raw(id, &encode_for(&p, version));
                }
                7..=22 => {
                    let qos = rng.qos();
                    let mut p = match publish(
                        TOPICS[rng.below(TOPICS.len())],
                        b"payload",
                        qos,
                        rng.id().get(),
                    ) {
                        Packet::Publish(p) => p,
                        _ => unreachable!(),
                    };
                    p.retain = rng.below(4) == 0;
                    if version == V5 && rng.bool() {
                        p.properties.message_expiry_interval = Some(rng.below(10) as u32 + 1);
                    }
                    h.send_raw(id, &encode_for(&Packet::Publish(p), version));
                }
                23..=27 => {
                    let ack = Ack::new(rng.id());
                    let p = match rng.below(4) {
                        0 => Packet::Puback(ack),
                        1 => Packet::Pubrec(ack),
                        2 => Packet::Pubrel(ack),
                        _ => Packet::Pubcomp(ack),
                    };
                    h.send_raw(id, &encode_for(&p, version));
                }
                28 => {
                    h.drop_socket(id);
                    conns[slot] = (false, false, V311);
                }
                29 => {
                    // A malformed frame: PUBLISH with QoS 3.
                    h.send_raw(id, &[0x36, 0x03, 0x00, 0x01, b'a']);
                }
                30..=34 => h.advance(Duration::from_millis(rng.below(4_000) as u64)),
                _ => {
                    let p = if rng.below(4) != 0 {
                        Packet::Pingreq
                    } else {
                        Packet::Disconnect(Disconnect::default())
                    };
                    h.send_raw(id, &encode_for(&p, version));
                }
            }
            for closed in h.closed() {
                conns[closed.0 as usize] = (false, false, V311);
            }
            for (slot, _) in conns.iter().enumerate().filter(|(_, c)| c.0) {
                h.recv_frames(ConnId(slot as u32));
            }
            let connected_now = h
                .broker
                .conns
                .iter()
                .flatten()
                .filter(|c| matches!(c.state, ConnState::Active(_)))
                .count();
            assert_eq!(h.broker.clients_connected(), connected_now, "seed {seed}");
            check(&mut h, step);
        }
        // The sequence did exercise routing, not only connects and drops.
        assert!(
            h.broker.stats.publish_sent > 50,
            "seed {seed}: {:?}",
            h.broker.stats
        );
    }
}

// ---- $SYS: Mosquitto 2.0 and 2.1 names -----------------------------------------------------

/// The value last published on a $SYS topic.
#[track_caller]
fn sys(h: &Harness, topic: &str) -> String {
    h.broker
        .sys_value(topic)
        .unwrap_or_else(|| panic!("{topic} was never published"))
        .to_string()
}

/// Every counter after a scripted exchange: the per-packet counters of Mosquitto 2.1
/// (`mqtt/{type}/received|sent`), the totals of 2.0 and the payload byte counts.
#[test]
fn sys_counts_every_packet_of_a_scripted_exchange() {
    let mut h = Harness::new(|s| s.sys_interval = Duration::from_secs(1));
    let p = h.connect(1, "p", true, 0, None);
    let s = h.connect(2, "s", true, 0, None);
    h.subscribe(s, 1, &[("t", Q1)]);
    h.send(p, &publish("t", b"abc", Q0, 0));
    h.send(p, &publish("t", b"de", Q1, 1));
    h.send(p, &publish("t", b"f", Q2, 2));
    h.recv(
        p,
        &[
            Packet::Puback(Ack::new(pid(1))),
            Packet::Pubrec(Ack::new(pid(2))),
        ],
    );
    h.send(p, &Packet::Pubrel(Ack::new(pid(2))));
    h.recv(p, &[Packet::Pubcomp(Ack::new(pid(2)))]);
    h.recv(
        s,
        &[
            publish("t", b"abc", Q0, 0),
            publish("t", b"de", Q1, 1),
            publish("t", b"f", Q1, 2),
        ],
    );
    h.send(s, &Packet::Puback(Ack::new(pid(1))));
    h.send(s, &Packet::Puback(Ack::new(pid(2))));
    h.send(p, &Packet::Pingreq);
    h.recv(p, &[Packet::Pingresp]);
    h.send(s, &unsubscribe(2, &["t"]));
    h.recv(s, &[Packet::Unsuback(Unsuback::new(pid(2)))]);
    h.disconnect(p);
    h.advance(Duration::from_secs(1));

    let expected = [
        ("mqtt/connect/received", "2"),
        ("mqtt/connack/sent", "2"),
        ("mqtt/publish/received", "3"),
        ("mqtt/publish/sent", "3"),
        ("mqtt/publish/dropped", "0"),
        ("mqtt/puback/received", "2"),
        ("mqtt/puback/sent", "1"),
        ("mqtt/pubrec/received", "0"),
        ("mqtt/pubrec/sent", "1"),
        ("mqtt/pubrel/received", "1"),
        ("mqtt/pubrel/sent", "0"),
        ("mqtt/pubcomp/received", "0"),
        ("mqtt/pubcomp/sent", "1"),
        ("mqtt/subscribe/received", "1"),
        ("mqtt/suback/sent", "1"),
        ("mqtt/unsubscribe/received", "1"),
        ("mqtt/unsuback/sent", "1"),
        ("mqtt/pingreq/received", "1"),
        ("mqtt/pingresp/sent", "1"),
        ("mqtt/disconnect/received", "1"),
        ("mqtt/disconnect/sent", "0"),
        ("mqtt/auth/received", "0"),
        ("mqtt/auth/sent", "0"),
        ("publish/messages/received", "3"),
        ("publish/messages/sent", "3"),
        ("publish/bytes/received", "6"),
        ("publish/bytes/sent", "6"),
        // 2 CONNECT, SUBSCRIBE, 3 PUBLISH, 2 PUBACK, PUBREL, PINGREQ, UNSUBSCRIBE,
        // DISCONNECT.
        ("messages/received", "12"),
        // 2 CONNACK, SUBACK, 3 PUBLISH, PUBACK, PUBREC, PUBCOMP, PINGRESP, UNSUBACK.
        ("messages/sent", "11"),
        ("connections/socket/count", "2"),
        ("packet/out/count", "0"),
        ("packet/out/bytes", "0"),
        ("clients/connected", "1"),
        ("clients/active", "1"),
        ("clients/disconnected", "0"),
        ("clients/inactive", "0"),
        ("subscriptions/count", "0"),
        ("shared_subscriptions/count", "0"),
    ];
    for (name, value) in expected {
        assert_eq!(sys(&h, &format!("$SYS/broker/{name}")), value, "{name}");
    }
    let bytes_received: usize = [
        encode(&connect("p", true, 0, None)),
        encode(&connect("s", true, 0, None)),
        encode(&subscribe(1, &[("t", Q1)])),
        encode(&publish("t", b"abc", Q0, 0)),
        encode(&publish("t", b"de", Q1, 1)),
        encode(&publish("t", b"f", Q2, 2)),
        encode(&Packet::Puback(Ack::new(pid(1)))),
        encode(&Packet::Puback(Ack::new(pid(2)))),
        encode(&Packet::Pubrel(Ack::new(pid(2)))),
        encode(&Packet::Pingreq),
        encode(&unsubscribe(2, &["t"])),
        encode(&Packet::Disconnect(Disconnect::default())),
    ]
    .iter()
    .map(Vec::len)
    .sum();
    assert_eq!(
        sys(&h, "$SYS/broker/bytes/received"),
        bytes_received.to_string()
    );
    // Shared subscriptions are counted apart, and in the total as before.
    h.subscribe(s, 3, &[("$share/g/t", Q0), ("u", Q0)]);
    h.advance(Duration::from_secs(1));
    assert_eq!(sys(&h, "$SYS/broker/shared_subscriptions/count"), "1");
    assert_eq!(sys(&h, "$SYS/broker/subscriptions/count"), "2");
    // A socket that never sends CONNECT is counted as a socket, not a connection.
    h.open(3);
    h.advance(Duration::from_secs(1));
    assert_eq!(sys(&h, "$SYS/broker/connections/socket/count"), "3");
    assert_eq!(sys(&h, "$SYS/broker/mqtt/connect/received"), "2");
}

/// Messages and payload bytes held by sessions: the store minus the retained messages.
fn held_by_sessions(h: &Harness) -> (u64, u64) {
    let (mut count, mut bytes) = (0, 0);
    for filter in ["#", "$SYS/#"] {
        h.broker.retained.for_each_match(filter, |_, m| {
            count += 1;
            bytes += m.payload().len() as u64;
        });
    }
    let stats = &h.broker.stats;
    (stats.stored_messages - count, stats.stored_bytes - bytes)
}

/// `store/messages/count|bytes` (and 2.0's `messages/stored`) count the messages held in
/// offline queues, inflight windows and the retained store, with their payload bytes,
/// and go down again as they are delivered, acknowledged, replaced or discarded.
#[test]
fn sys_store_counts_queued_inflight_and_retained_messages() {
    let mut h = Harness::new(|s| {
        s.sys_interval = Duration::from_secs(1);
        s.max_inflight_messages = 2;
    });
    // What the first $SYS publication stored (its own retained messages).
    let (base_count, base_bytes) = (h.broker.stats.stored_messages, h.broker.stats.stored_bytes);
    let sub = h.connect(1, "sub", false, 0, None);
    h.subscribe(sub, 1, &[("q", Q1)]);
    h.disconnect(sub);
    let p = h.connect(2, "p", true, 0, None);
    for (i, payload) in [&[1u8; 10][..], &[2; 20], &[3; 30]].iter().enumerate() {
        h.send(p, &publish("q", payload, Q1, i as u16 + 1));
    }
    h.send(p, &retained(publish("r", b"12345", Q0, 0)));
    h.advance(Duration::from_secs(1));
    assert_eq!(
        sys(&h, "$SYS/broker/store/messages/count"),
        (base_count + 4).to_string()
    );
    assert_eq!(
        sys(&h, "$SYS/broker/messages/stored"),
        (base_count + 4).to_string()
    );
    assert_eq!(
        sys(&h, "$SYS/broker/store/messages/bytes"),
        (base_bytes + 65).to_string()
    );
    assert_eq!(held_by_sessions(&h), (3, 60));

    // Back online: two in flight, one still queued; all three are held.
    let sub = h.open(1);
    h.send(sub, &connect("sub", false, 0, None));
    let frames = h.recv_frames(sub);
    assert_eq!(frames.len(), 3, "CONNACK and two PUBLISH");
    assert_eq!(held_by_sessions(&h), (3, 60));
    // The first acknowledged: the third moves into the window.
    h.send(sub, &Packet::Puback(Ack::new(pid(1))));
    assert_eq!(h.recv_frames(sub).len(), 1);
    assert_eq!(held_by_sessions(&h), (2, 50));
    h.send(sub, &Packet::Puback(Ack::new(pid(2))));
    assert_eq!(held_by_sessions(&h), (1, 30));

    // A retained message replaced and cleared.
    let before = (h.broker.stats.stored_messages, h.broker.stats.stored_bytes);
    h.send(p, &retained(publish("r", b"1234567", Q0, 0)));
    assert_eq!(
        (h.broker.stats.stored_messages, h.broker.stats.stored_bytes),
        (before.0, before.1 + 2)
    );
    h.send(p, &retained(publish("r", b"", Q0, 0)));
    assert_eq!(
        (h.broker.stats.stored_messages, h.broker.stats.stored_bytes),
        (before.0 - 1, before.1 - 5)
    );

    // A clean session discards the session and what it held.
    h.drop_socket(sub);
    h.connect(3, "sub", true, 0, None);
    assert_eq!(held_by_sessions(&h), (0, 0));
}

/// `packet/out/count|bytes`: packets and bytes written into outboxes that the sockets
/// have not taken yet, also across partial writes.
#[test]
fn sys_packet_out_counts_what_the_sockets_have_not_taken() {
    let mut h = Harness::default();
    let c = h.connect(1, "c", true, 0, None);
    assert_eq!(
        (h.broker.stats.out_packets, h.broker.stats.out_bytes),
        (0, 0)
    );
    h.send(c, &Packet::Pingreq);
    h.send(c, &subscribe(1, &[("a", Q0)]));
    h.send(c, &Packet::Pingreq);
    // PINGRESP (2 bytes), SUBACK (5 bytes), PINGRESP.
    assert_eq!(h.broker.output(c).len(), 9);
    assert_eq!(
        (h.broker.stats.out_packets, h.broker.stats.out_bytes),
        (3, 9)
    );
    h.broker.consume_output(c, 1);
    assert_eq!(
        (h.broker.stats.out_packets, h.broker.stats.out_bytes),
        (3, 8)
    );
    h.broker.consume_output(c, 1);
    assert_eq!(
        (h.broker.stats.out_packets, h.broker.stats.out_bytes),
        (2, 7)
    );
    h.broker.consume_output(c, 6);
    assert_eq!(
        (h.broker.stats.out_packets, h.broker.stats.out_bytes),
        (1, 1)
    );
    h.broker.consume_output(c, 1);
    assert_eq!(
        (h.broker.stats.out_packets, h.broker.stats.out_bytes),
        (0, 0)
    );
    // What a closed connection never wrote is no longer counted.
    h.send(c, &Packet::Pingreq);
    assert_eq!(
        (h.broker.stats.out_packets, h.broker.stats.out_bytes),
        (1, 2)
    );
    h.drop_socket(c);
    assert_eq!(
        (h.broker.stats.out_packets, h.broker.stats.out_bytes),
        (0, 0)
    );
}

/// Load averages follow Mosquitto's formula: at a steady rate `r` per minute read every
/// second, `r * (1 - exp(-t / T))` after `t` seconds for the 1, 5 and 15 minute periods,
/// then an exponential decay once the traffic stops.
#[test]
fn sys_load_averages_follow_a_steady_rate() {
    let mut h = Harness::new(|s| s.sys_interval = Duration::from_secs(1));
    for name in ["publish/received", "connections", "sockets", "bytes/sent"] {
        for period in ["1min", "5min", "15min"] {
            assert_eq!(
                sys(&h, &format!("$SYS/broker/load/{name}/{period}")),
                "0.00"
            );
        }
    }
    let p = h.connect(1, "p", true, 0, None);
    // One PUBLISH a second for a minute: 60 a minute.
    for _ in 0..60 {
        h.send(p, &publish("t", b"x", Q0, 0));
        h.advance(Duration::from_secs(1));
    }
    let load =
        |h: &Harness, period: &str| sys(h, &format!("$SYS/broker/load/publish/received/{period}"));
    let steady = |t: f64, period: f64| 60.0 * (1.0 - (-t / period).exp());
    assert_eq!(load(&h, "1min"), "37.93");
    assert_eq!(load(&h, "1min"), format!("{:.2}", steady(60.0, 60.0)));
    assert_eq!(load(&h, "5min"), format!("{:.2}", steady(60.0, 300.0)));
    assert_eq!(load(&h, "15min"), format!("{:.2}", steady(60.0, 900.0)));
    // One CONNECT and one socket in the first second: 60 a minute for one second.
    let once = 60.0 * (1.0 - (-1.0f64 / 60.0).exp()) * (-59.0f64 / 60.0).exp();
    assert_eq!(
        sys(&h, "$SYS/broker/load/connections/1min"),
        format!("{once:.2}")
    );
    assert_eq!(
        sys(&h, "$SYS/broker/load/sockets/1min"),
        format!("{once:.2}")
    );
    // Silence for a minute: the 1 minute average falls by a factor e.
    h.advance(Duration::from_secs(60));
    let decayed = steady(60.0, 60.0) * (-1.0f64).exp();
    assert_eq!(load(&h, "1min"), format!("{decayed:.2}"));
    assert_eq!(load(&h, "1min"), "13.95");
}

/// mount_point: the clients of listener 1 ("m/") publish, subscribe (shared subscriptions
/// too) and receive retained messages under the prefix, and see topics without it; a
/// filter the prefix makes invalid is refused (0x80).
#[test]
fn mount_point_prefixes_topics_and_filters_of_its_listener() {
    let mut h = Harness::new(|s| {
        s.listeners = vec![
            ListenerLimits::default(),
            ListenerLimits {
                mount_point: Some("m/".into()),
                ..ListenerLimits::default()
            },
        ];
    });
    let outside = h.connect(1, "outside", true, 0, None);
    h.subscribe(outside, 1, &[("#", Q0)]);
    h.send(outside, &retained(publish("m/r", b"kept", Q0, 0)));
    h.recv(outside, &[publish("m/r", b"kept", Q0, 0)]);

    let inside = ConnId(2);
    h.broker
        .handle_open(inside, SocketAddr::from(([192, 0, 2, 9], 1)), 1, h.now);
    h.send(inside, &connect("inside", true, 0, None));
    h.recv(inside, &[connack(false, ReasonCode::SUCCESS)]);
    h.send(inside, &subscribe(1, &[("r", Q0), ("$share/g/t", Q0)]));
    h.recv(
        inside,
        &[
            Packet::Suback(Suback {
                packet_id: pid(1),
                codes: vec![ReasonCode::granted(Q0), ReasonCode::granted(Q0)],
                properties: Default::default(),
            }),
            retained(publish("r", b"kept", Q0, 0)),
        ],
    );
    h.send(outside, &publish("m/t", b"shared", Q0, 0));
    h.recv(outside, &[publish("m/t", b"shared", Q0, 0)]);
    h.recv(inside, &[publish("t", b"shared", Q0, 0)]);
    h.send(inside, &publish("up", b"x", Q0, 0));
    h.recv(outside, &[publish("m/up", b"x", Q0, 0)]);

    let mut h = Harness::new(|s| {
        s.listeners = vec![ListenerLimits {
            mount_point: Some("m".into()),
            ..ListenerLimits::default()
        }];
    });
    let c = h.connect(1, "c", true, 0, None);
    h.send(c, &subscribe(1, &[("#", Q0)]));
    h.recv(
        c,
        &[Packet::Suback(Suback {
            packet_id: pid(1),
            codes: vec![ReasonCode::UNSPECIFIED_ERROR],
            properties: Default::default(),
        })],
    );
}

// ---- Mosquitto 2.1 options --------------------------------------------------------------

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

// ---- persistence: the journal says what the state is ----------------------------------

/// Replays journal batches (and a snapshot) into a state, as start-up does.
fn replay_bytes(
    chunks: &[&[u8]],
    wall: std::time::SystemTime,
    now: Instant,
) -> crate::persist::State {
    let mut state = crate::persist::State::new(wall, now);
    for chunk in chunks {
        let mut rest: &[u8] = chunk;
        while let Some((record, n)) =
            crate::persist::record::decode(rest).expect("the broker writes intact records")
        {
            state.apply(&record);
            rest = &rest[n..];
        }
    }
    assert_eq!(
        state.inconsistencies, 0,
        "every record refers to known state"
    );
    state
}

/// The journal is exact: at every step of random operation sequences, the state replayed
/// from the last snapshot plus every journal batch since equals a fresh snapshot of the
/// live broker; and a broker restored from it snapshots to the same state again.
/// Snapshots (compactions) happen at random steps.
#[test]
fn journal_replay_equals_a_snapshot_at_every_step() {
    for seed in 1..=8u64 {
        let mut h = random_sequence_harness();
        let start = h.now;
        let wall = std::time::SystemTime::now();
        h.broker.enable_journal(false, 0, start, wall);
        let mut snapshot = Vec::new();
        h.broker.write_snapshot(&mut snapshot);
        let mut batches: Vec<Vec<u8>> = Vec::new();
        let mut rng = crate::protocol::testing::Rng(seed ^ 0xfeed);
        let mut compared = 0;
        random_operation_sequence(seed, h, |h, step| {
            if let Some((_, bytes)) = h.broker.take_journal() {
                batches.push(bytes);
            }
            if rng.below(50) == 0 {
                snapshot.clear();
                batches.clear();
                h.broker.write_snapshot(&mut snapshot);
            }
            if step % 7 != 0 {
                return;
            }
            let mut chunks: Vec<&[u8]> = vec![&snapshot];
            chunks.extend(batches.iter().map(Vec::as_slice));
            let from_journal = replay_bytes(&chunks, wall, start);
            let mut fresh = Vec::new();
            // A snapshot into a copy would be cleaner; the live one must stay in step, so
            // the fresh snapshot becomes the new base (it is also a compaction).
            h.broker.write_snapshot(&mut fresh);
            let from_snapshot = replay_bytes(&[&fresh], wall, start);
            assert_eq!(
                from_journal.describe(),
                from_snapshot.describe(),
                "seed {seed} step {step}"
            );
            snapshot = fresh;
            batches.clear();
            compared += 1;

            // A broker restored from that state holds the same durable state.
            let mut restored = Broker::new(h.broker.settings.clone(), h.now);
            let mut state = replay_bytes(&[&snapshot], wall, start);
            let next = state.max_message_id();
            state.finish();
            restored.restore(state, h.now);
            restored.enable_journal(false, next, h.now, wall + (h.now - start));
            let mut again = Vec::new();
            restored.write_snapshot(&mut again);
            let mut expected = replay_bytes(&[&snapshot], wall, start);
            // Restoring ends what a restart ends: sessions that expire with their
            // connection end, connected sessions become offline,
            expected.sessions.retain(|_, s| s.expiry != 0);
            // and expired retained messages are not restored.
            let now = h.now;
            expected.retained.retain(|_, m| !m.is_expired(now));
            let again = replay_bytes(&[&again], wall, start);
            assert_eq!(
                strip_offline(&again.describe()),
                strip_offline(&expected.describe()),
                "seed {seed} step {step}: restore"
            );
        });
        assert!(compared > 100, "seed {seed}");
    }
}

/// The offline times of restored sessions start at the restart: compared apart.
fn strip_offline(text: &str) -> String {
    text.lines()
        .map(|l| l.split(" offline ").next().unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `persistence_sync ack`: a QoS 1 PUBLISH stored for an offline persistent session is
/// acknowledged only once its batch is durable; one that stores nothing at once; and
/// acknowledgements to one client keep their order. QoS 2's PUBREC likewise.
#[test]
fn strict_persistence_holds_acks_until_their_batch_is_durable() {
    let mut h = Harness::default();
    h.broker
        .enable_journal(true, 0, h.now, std::time::SystemTime::now());
    let s = h.connect(1, "sub", false, 0, None);
    h.subscribe(s, 1, &[("t", QoS::AtLeastOnce)]);
    h.disconnect(s);
    let (first, _) = h.broker.take_journal().expect("the session was journaled");
    h.broker.set_durable(first);

    let p = h.connect(2, "pub", true, 0, None);
    // Nothing stored: acknowledged at once.
    h.send(p, &publish("nobody", b"x", QoS::AtLeastOnce, 10));
    h.recv(p, &[Packet::Puback(Ack::new(pid(10)))]);
    // Queued for the offline session: held.
    h.send(p, &publish("t", b"1", QoS::AtLeastOnce, 11));
    h.recv_nothing(p);
    // Stores nothing, but must not overtake the held one.
    h.send(p, &publish("nobody", b"x", QoS::AtLeastOnce, 12));
    h.recv_nothing(p);
    let (batch, bytes) = h.broker.take_journal().expect("the message was journaled");
    assert!(!bytes.is_empty());
    h.broker.set_durable(batch - 1);
    h.recv_nothing(p);
    h.broker.set_durable(batch);
    h.recv(
        p,
        &[
            Packet::Puback(Ack::new(pid(11))),
            Packet::Puback(Ack::new(pid(12))),
        ],
    );
    // QoS 2 from a persistent session: the packet id awaiting PUBREL is a record too
    // (a restart must not deliver the message twice). [MQTT-4.3.3-2]
    let p2 = h.connect(3, "pub2", false, 0, None);
    let _ = h.broker.take_journal();
    h.send(p2, &publish("nobody", b"x", QoS::ExactlyOnce, 13));
    h.recv_nothing(p2);
    let (batch, _) = h.broker.take_journal().expect("AwaitRelease was journaled");
    h.broker.set_durable(batch);
    h.recv(p2, &[Packet::Pubrec(Ack::new(pid(13)))]);
    // From a clean session nothing is stored: PUBREC at once.
    h.send(p, &publish("nobody", b"x", QoS::ExactlyOnce, 14));
    h.recv(p, &[Packet::Pubrec(Ack::new(pid(14)))]);
}

/// Periodic mode (the default) acknowledges at once; the records still go to the journal.
#[test]
fn periodic_persistence_acks_at_once() {
    let mut h = Harness::default();
    h.broker
        .enable_journal(false, 0, h.now, std::time::SystemTime::now());
    let s = h.connect(1, "sub", false, 0, None);
    h.subscribe(s, 1, &[("t", QoS::AtLeastOnce)]);
    h.disconnect(s);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("t", b"1", QoS::AtLeastOnce, 11));
    h.recv(p, &[Packet::Puback(Ack::new(pid(11)))]);
    assert!(h.broker.take_journal().is_some());
}

/// `max_retained_messages`: MQTT 5 learns from PUBACK that the message was delivered but
/// not retained (0x97 Quota exceeded); 3.1.1 gets its plain PUBACK.
#[test]
fn retained_over_the_limit_is_quota_exceeded_for_mqtt5() {
    let mut h = Harness::new(|s| s.max_retained_messages = 1);
    let (c, _) = h.connect5(1, "p5", true, Properties::default(), None);
    let mut first = publish5("a", b"1", QoS::AtLeastOnce, 1, Properties::default());
    if let Packet::Publish(p) = &mut first {
        p.retain = true;
    }
    h.send5(c, &first);
    let frames = h.recv_frames(c);
    assert_eq!(frames.len(), 1);
    let mut second = publish5("b", b"2", QoS::AtLeastOnce, 2, Properties::default());
    if let Packet::Publish(p) = &mut second {
        p.retain = true;
    }
    h.send5(c, &second);
    let frames = h.recv_frames(c);
    assert_eq!(frames.len(), 1);
    match Packet::decode(&frames[0], V5) {
        Ok(Packet::Puback(ack)) => assert_eq!(ack.reason, ReasonCode::QUOTA_EXCEEDED),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.broker.retained_count(), 1);
}
