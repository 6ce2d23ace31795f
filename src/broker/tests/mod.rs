//! The core without sockets: scripted clients against a `Broker` on a virtual clock.
//!
//! The [`Harness`] plays the loop of `net` (STYLE.md section 11; smoltcp's
//! `send!`/`recv!` in `socket/tcp.rs`, quinn-proto's `Pair` in `src/tests/util.rs`): it
//! encodes packets and feeds them to `handle_frame`, drains the outboxes the way the loop
//! does (`poll_dirty`, `output`, `consume_output`), closes what `poll_close` names and then
//! calls `handle_closed`, and moves a virtual clock through `next_deadline` /
//! `handle_timeout`. Received frames are compared byte for byte with the encoding of the
//! expected packets. Every loop is bounded, so a livelock fails instead of hanging.
//!
//! This file holds the harness and the helpers the sections share; each section (CONNECT,
//! QoS flows, wills, MQTT 5, $SYS, persistence...) is a file of its own.

use super::state::ConnState;
use super::*;
use crate::protocol::{frame, SubscriptionOptions, Will};
use crate::protocol::{
    Ack, Connack, Connect, DecodeError, Disconnect, Packet, PacketId, Properties, Props,
    ProtocolVersion, Publish, QoS, ReasonCode, Suback, Subscribe, Unsuback, Unsubscribe,
};
use std::collections::HashMap;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

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
        &self
            .broker
            .conns
            .get(conn.0)
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

const V5: ProtocolVersion = ProtocolVersion::V5;

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

fn random_sequence_harness() -> Harness {
    Harness::new(|s| {
        s.max_inflight_messages = 3;
        s.max_queued_messages = 5;
        s.sys_interval = Duration::from_secs(5);
    })
}

const FILTERS: [&str; 6] = ["a/#", "a/+", "+/b", "#", "$share/g/a/b", "a/b"];
const TOPICS: [&str; 4] = ["a/b", "a/c", "x/b", "a"];

/// A CONNECT of a random version and client id, with or without a will and (MQTT 5) a
/// session expiry.
fn random_connect(rng: &mut crate::protocol::testing::Rng) -> Packet<'static> {
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
    Packet::Connect(Box::new(Connect {
        version,
        clean_session: rng.bool(),
        keep_alive: rng.below(5) as u16,
        client_id,
        will,
        username: None,
        password: None,
        properties: properties.into(),
    }))
}

/// A SUBSCRIBE of one random filter, with the options `version` allows.
fn random_subscribe(
    rng: &mut crate::protocol::testing::Rng,
    version: ProtocolVersion,
) -> Packet<'static> {
    let options = SubscriptionOptions {
        qos: rng.qos(),
        no_local: version == V5 && rng.bool(),
        retain_as_published: version == V5 && rng.bool(),
        retain_handling: if version == V5 { rng.below(3) as u8 } else { 0 },
    };
    let filter = FILTERS[rng.below(FILTERS.len())];
    // No Local on a shared subscription is a Protocol Error [MQTT-3.8.3-4].
    let no_local = options.no_local && !filter.starts_with("$share");
    Packet::Subscribe(Subscribe {
        packet_id: rng.id(),
        filters: vec![(
            filter,
            SubscriptionOptions {
                no_local,
                ..options
            },
        )],
        properties: Props::default(),
    })
}

/// The body of the operation-sequence test; `check` runs after every step.
fn random_operation_sequence(
    seed: u64,
    mut h: Harness,
    mut check: impl FnMut(&mut Harness, usize),
) {
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
                    let connect = random_connect(&mut rng);
                    let version = match &connect {
                        Packet::Connect(c) => c.version,
                        _ => unreachable!(),
                    };
                    h.send_raw(id, &encode_for(&connect, version));
                    conns[slot] = (true, true, version);
                }
                2..=6 => {
                    let p = random_subscribe(&mut rng, version);
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
                    // Every other hold, the loop's write at once (net::Server::relieve)
                    // before the loop gives up on the publisher for this turn.
                    if h.broker.is_held(id) && step % 2 == 0 {
                        h.broker.relieved(id);
                    }
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
                .filter(|(_, c)| matches!(c.state(), ConnState::Active(_)))
                .count();
            assert_eq!(h.broker.clients_connected(), connected_now, "seed {seed}");
            h.broker.assert_pressure_consistent();
            check(&mut h, step);
        }
        // Backpressure too: queues of 5 fill, hold publishers, and stall.
        assert!(
            h.broker.stats.holds > 0 && h.broker.stats.stalls > 0,
            "seed {seed}: {:?}",
            h.broker.stats
        );
        // The sequence did exercise routing, not only connects and drops.
        assert!(
            h.broker.stats.publish_sent > 50,
            "seed {seed}: {:?}",
            h.broker.stats
        );
    }
}

fn encode5(packet: &Packet<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    packet.encode(V5, &mut out);
    out
}

fn decode5(frame: &[u8]) -> Packet<'_> {
    Packet::decode(frame, V5).expect("the broker sends valid MQTT 5 packets")
}

mod access;
mod backlog;
mod clean_session;
mod connect;
mod durable;
mod edges;
mod flow;
mod inflight;
mod keep_alive;
mod memory;
mod mosquitto21;
mod mqtt5;
mod persistence;
mod pressure;
mod qos;
mod queue;
mod retained;
mod sys;
mod sys_names;
mod unsubscribe;
mod will;
