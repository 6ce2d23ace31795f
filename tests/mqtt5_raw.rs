//! MQTT 5 edge cases in raw bytes, with packet builders and parsers of their own (not
//! culex's codec). Statement numbers ([MQTT-x.y.z-n]) are MQTT 5.0's (OASIS Standard,
//! 7 March 2019); where the specification says something without a numbered statement,
//! its section is cited instead. Also run against Mosquitto (`CULEX_TEST_BROKER=mosquitto`):
//! where Mosquitto 2.0.11 does not do what the specification says, the test asserts the
//! specification for culex and Mosquitto's behaviour under `Broker::is_mosquitto()`, and
//! its doc comment says so.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{connect_packet, field, hex, packet, publish_packet, Broker, QUIET, WAIT};

// ---- builders ------------------------------------------------------------------------

/// A Variable Byte Integer (section 1.5.5).
fn varint(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            return out;
        }
    }
}

/// A property block: its length as a Variable Byte Integer, then the properties.
fn props(list: &[Vec<u8>]) -> Vec<u8> {
    let body = list.concat();
    let mut out = varint(body.len());
    out.extend_from_slice(&body);
    out
}

fn p_u8(id: u8, value: u8) -> Vec<u8> {
    vec![id, value]
}

fn p_u16(id: u8, value: u16) -> Vec<u8> {
    let mut out = vec![id];
    out.extend_from_slice(&value.to_be_bytes());
    out
}

fn p_u32(id: u8, value: u32) -> Vec<u8> {
    let mut out = vec![id];
    out.extend_from_slice(&value.to_be_bytes());
    out
}

/// A UTF-8 string or binary data property.
fn p_bytes(id: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![id];
    out.extend_from_slice(&field(value));
    out
}

fn p_pair(id: u8, key: &str, value: &str) -> Vec<u8> {
    let mut out = vec![id];
    out.extend_from_slice(&field(key.as_bytes()));
    out.extend_from_slice(&field(value.as_bytes()));
    out
}

fn p_varint(id: u8, value: usize) -> Vec<u8> {
    let mut out = vec![id];
    out.extend_from_slice(&varint(value));
    out
}

// Property identifiers (section 2.2.2.2).
const PAYLOAD_FORMAT: u8 = 0x01;
const MESSAGE_EXPIRY: u8 = 0x02;
const CONTENT_TYPE: u8 = 0x03;
const RESPONSE_TOPIC: u8 = 0x08;
const CORRELATION_DATA: u8 = 0x09;
const SUBSCRIPTION_ID: u8 = 0x0b;
const SESSION_EXPIRY: u8 = 0x11;
const ASSIGNED_CLIENT_ID: u8 = 0x12;
const AUTH_METHOD: u8 = 0x15;
const WILL_DELAY: u8 = 0x18;
const RECEIVE_MAXIMUM: u8 = 0x21;
const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
const TOPIC_ALIAS: u8 = 0x23;
const USER_PROPERTY: u8 = 0x26;
const MAXIMUM_PACKET_SIZE: u8 = 0x27;

/// A will for [`Connect5`]: properties (without their length), topic, payload, QoS.
struct Will5<'a> {
    props: Vec<Vec<u8>>,
    topic: &'a str,
    payload: &'a [u8],
    qos: u8,
}

/// An MQTT 5 CONNECT (section 3.1).
struct Connect5<'a> {
    client_id: &'a str,
    clean_start: bool,
    keep_alive: u16,
    props: Vec<Vec<u8>>,
    will: Option<Will5<'a>>,
}

impl<'a> Connect5<'a> {
    /// Clean Start, keep alive 60 s, no properties, no will.
    fn new(client_id: &'a str) -> Connect5<'a> {
        Connect5 {
            client_id,
            clean_start: true,
            keep_alive: 60,
            props: Vec::new(),
            will: None,
        }
    }

    fn prop(mut self, property: Vec<u8>) -> Self {
        self.props.push(property);
        self
    }

    fn will(mut self, will: Will5<'a>) -> Self {
        self.will = Some(will);
        self
    }

    fn keep_alive(mut self, seconds: u16) -> Self {
        self.keep_alive = seconds;
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut flags = 0u8;
        if self.clean_start {
            flags |= 0x02;
        }
        if let Some(will) = &self.will {
            flags |= 0x04 | (will.qos << 3);
        }
        let mut body = field(b"MQTT");
        body.push(5);
        body.push(flags);
        body.extend_from_slice(&self.keep_alive.to_be_bytes());
        body.extend_from_slice(&props(&self.props));
        body.extend_from_slice(&field(self.client_id.as_bytes()));
        if let Some(will) = &self.will {
            body.extend_from_slice(&props(&will.props));
            body.extend_from_slice(&field(will.topic.as_bytes()));
            body.extend_from_slice(&field(will.payload));
        }
        packet(0x10, &body)
    }
}

/// An MQTT 5 PUBLISH (section 3.3); `packet_id` is written for QoS 1 and 2 only.
fn publish5(
    topic: &str,
    qos: u8,
    retain: bool,
    packet_id: u16,
    properties: &[Vec<u8>],
    payload: &[u8],
) -> Vec<u8> {
    let mut body = field(topic.as_bytes());
    if qos > 0 {
        body.extend_from_slice(&packet_id.to_be_bytes());
    }
    body.extend_from_slice(&props(properties));
    body.extend_from_slice(payload);
    packet(0x30 | (qos << 1) | u8::from(retain), &body)
}

// Subscription options (section 3.8.3.1).
const NO_LOCAL: u8 = 0x04;
const RETAIN_HANDLING_3: u8 = 0x30;

/// An MQTT 5 SUBSCRIBE (section 3.8): filters with their options byte.
fn subscribe5(packet_id: u16, properties: &[Vec<u8>], filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    body.extend_from_slice(&props(properties));
    for (filter, options) in filters {
        body.extend_from_slice(&field(filter.as_bytes()));
        body.push(*options);
    }
    packet(0x82, &body)
}

/// An MQTT 5 UNSUBSCRIBE (section 3.10) without properties.
fn unsubscribe5(packet_id: u16, filters: &[&str]) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    body.push(0);
    for filter in filters {
        body.extend_from_slice(&field(filter.as_bytes()));
    }
    packet(0xa2, &body)
}

/// An MQTT 5 DISCONNECT (section 3.14) with a reason code and properties.
fn disconnect5(reason: u8, properties: &[Vec<u8>]) -> Vec<u8> {
    let mut body = vec![reason];
    body.extend_from_slice(&props(properties));
    packet(0xe0, &body)
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP with the short form: packet id only (reason 0x00).
fn ack(first_byte: u8, packet_id: u16) -> Vec<u8> {
    packet(first_byte, &packet_id.to_be_bytes())
}

// ---- parsers -------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Int(u32),
    Bytes(Vec<u8>),
    Pair(String, String),
}

/// Reads a Variable Byte Integer at `at`; returns it and the bytes it took.
fn read_varint(bytes: &[u8], at: usize) -> (usize, usize) {
    let (mut value, mut shift, mut used) = (0usize, 0, 0);
    loop {
        let byte = bytes[at + used];
        used += 1;
        value |= usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return (value, used);
        }
        assert!(used < 4, "Variable Byte Integer longer than 4 bytes");
    }
}

fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn read_field(bytes: &[u8], at: usize) -> (Vec<u8>, usize) {
    let len = usize::from(read_u16(bytes, at));
    (bytes[at + 2..at + 2 + len].to_vec(), 2 + len)
}

/// A property block at `at`: the properties in order, and the bytes the block took.
fn read_props(bytes: &[u8], at: usize) -> (Vec<(u8, Value)>, usize) {
    let (len, used) = read_varint(bytes, at);
    let end = at + used + len;
    let mut i = at + used;
    let mut out = Vec::new();
    while i < end {
        let id = bytes[i];
        i += 1;
        let value = match id {
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2a => {
                i += 1;
                Value::Int(u32::from(bytes[i - 1]))
            }
            0x13 | 0x21 | 0x22 | 0x23 => {
                i += 2;
                Value::Int(u32::from(read_u16(bytes, i - 2)))
            }
            0x02 | 0x11 | 0x18 | 0x27 => {
                i += 4;
                Value::Int(u32::from_be_bytes(bytes[i - 4..i].try_into().unwrap()))
            }
            0x0b => {
                let (n, k) = read_varint(bytes, i);
                i += k;
                Value::Int(n as u32)
            }
            0x03 | 0x08 | 0x09 | 0x12 | 0x15 | 0x16 | 0x1a | 0x1c | 0x1f => {
                let (data, k) = read_field(bytes, i);
                i += k;
                Value::Bytes(data)
            }
            0x26 => {
                let (key, k) = read_field(bytes, i);
                i += k;
                let (value, k) = read_field(bytes, i);
                i += k;
                Value::Pair(
                    String::from_utf8(key).unwrap(),
                    String::from_utf8(value).unwrap(),
                )
            }
            other => panic!("unknown property 0x{other:02x} in {}", hex(bytes)),
        };
        out.push((id, value));
    }
    assert_eq!(i, end, "property block overran: {}", hex(bytes));
    (out, used + len)
}

fn find(props: &[(u8, Value)], id: u8) -> Option<&Value> {
    props.iter().find(|(i, _)| *i == id).map(|(_, v)| v)
}

/// The first byte and the bytes after the Remaining Length of a whole packet.
fn split(packet: &[u8]) -> (u8, &[u8]) {
    let (len, used) = read_varint(packet, 1);
    let body = &packet[1 + used..];
    assert_eq!(body.len(), len, "Remaining Length of {}", hex(packet));
    (packet[0], body)
}

struct Connack {
    session_present: bool,
    reason: u8,
    props: Vec<(u8, Value)>,
}

fn parse_connack(packet: &[u8]) -> Connack {
    let (first, body) = split(packet);
    assert_eq!(first, 0x20, "expected CONNACK, got {}", hex(packet));
    let props = if body.len() > 2 {
        let (props, used) = read_props(body, 2);
        assert_eq!(2 + used, body.len(), "CONNACK {}", hex(packet));
        props
    } else {
        Vec::new()
    };
    Connack {
        session_present: body[0] & 1 != 0,
        reason: body[1],
        props,
    }
}

#[derive(Debug)]
struct Pub {
    qos: u8,
    retain: bool,
    topic: String,
    packet_id: u16,
    props: Vec<(u8, Value)>,
    payload: Vec<u8>,
}

fn parse_publish(packet: &[u8]) -> Pub {
    let (first, body) = split(packet);
    assert_eq!(first & 0xf0, 0x30, "expected PUBLISH, got {}", hex(packet));
    let qos = (first >> 1) & 3;
    let (topic, mut i) = read_field(body, 0);
    let mut packet_id = 0;
    if qos > 0 {
        packet_id = read_u16(body, i);
        i += 2;
    }
    let (props, used) = read_props(body, i);
    Pub {
        qos,
        retain: first & 1 != 0,
        topic: String::from_utf8(topic).unwrap(),
        packet_id,
        props,
        payload: body[i + used..].to_vec(),
    }
}

/// PUBACK/PUBREC/PUBREL/PUBCOMP: first byte, packet id, reason (0x00 when omitted,
/// section 3.4.2.1).
fn parse_ack(packet: &[u8]) -> (u8, u16, u8) {
    let (first, body) = split(packet);
    let reason = body.get(2).copied().unwrap_or(0);
    (first, read_u16(body, 0), reason)
}

/// SUBACK/UNSUBACK: first byte, packet id and the reason codes after the properties.
fn parse_sub_ack(packet: &[u8]) -> (u8, u16, Vec<u8>) {
    let (first, body) = split(packet);
    let (_, used) = read_props(body, 2);
    (first, read_u16(body, 0), body[2 + used..].to_vec())
}

/// DISCONNECT's reason code (0x00 when omitted, section 3.14.2.1).
fn disconnect_reason(packet: &[u8]) -> Option<u8> {
    let (first, body) = split(packet);
    (first == 0xe0).then(|| body.first().copied().unwrap_or(0))
}

// ---- the client ----------------------------------------------------------------------

/// What arrives next on a connection.
#[derive(Debug, PartialEq)]
enum Next {
    Packet(Vec<u8>),
    Closed,
    Nothing,
}

/// A raw MQTT 5 connection that reads whole packets and tells a close from silence.
struct Client5 {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client5 {
    fn open(broker: &Broker) -> Client5 {
        let stream = TcpStream::connect(("127.0.0.1", broker.port)).expect("connect");
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        Client5 {
            stream,
            buf: Vec::new(),
        }
    }

    /// Sends `connect` and returns the CONNACK, which must be a success.
    fn connect(broker: &Broker, connect: &Connect5) -> (Client5, Connack) {
        let mut client = Client5::open(broker);
        client.send(&connect.bytes());
        let connack = parse_connack(&client.packet());
        assert_eq!(
            connack.reason, 0,
            "CONNACK reason for {}",
            connect.client_id
        );
        (client, connack)
    }

    /// A connected client, Clean Start, keep alive 60 s, no properties.
    fn connected(broker: &Broker, client_id: &str) -> Client5 {
        Client5::connect(broker, &Connect5::new(client_id)).0
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("send {}: {e}", hex(bytes)));
    }

    /// The length of the whole packet at the start of `buf`, once its header is complete.
    fn whole_packet_len(&self) -> Option<usize> {
        let mut len = 0usize;
        for (i, byte) in self.buf.iter().skip(1).take(4).enumerate() {
            len |= usize::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Some(1 + i + 1 + len);
            }
        }
        None
    }

    /// The next packet, a close (EOF or reset), or nothing within `timeout`.
    fn next(&mut self, timeout: Duration) -> Next {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(len) = self.whole_packet_len().filter(|len| self.buf.len() >= *len) {
                return Next::Packet(self.buf.drain(..len).collect());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Next::Nothing;
            }
            self.stream
                .set_read_timeout(Some(left.min(Duration::from_millis(100))))
                .expect("set a read timeout");
            let mut chunk = [0; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    assert!(self.buf.is_empty(), "closed mid-packet: {}", hex(&self.buf));
                    return Next::Closed;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                    ) =>
                {
                    return Next::Closed
                }
                Err(e) => panic!("reading: {e}"),
            }
        }
    }

    /// The next packet, which must arrive within `WAIT`.
    fn packet(&mut self) -> Vec<u8> {
        match self.next(WAIT) {
            Next::Packet(p) => p,
            other => panic!("expected a packet within {WAIT:?}, got {other:?}"),
        }
    }

    /// The next PUBLISH, which must arrive within `WAIT`; other packets are not expected.
    fn publish(&mut self) -> Pub {
        parse_publish(&self.packet())
    }

    /// Asserts that nothing arrives for `QUIET` and the connection stays open.
    fn expect_nothing(&mut self) {
        let next = self.next(QUIET);
        assert_eq!(next, Next::Nothing, "expected nothing for {QUIET:?}");
    }

    /// Asserts that the broker closes the connection within `limit`, sending nothing.
    fn expect_closed_within(&mut self, limit: Duration) {
        match self.next(limit) {
            Next::Closed => {}
            Next::Packet(p) => panic!("expected a close, got {}", hex(&p)),
            Next::Nothing => panic!("the connection is still open after {limit:?}"),
        }
    }

    fn expect_closed(&mut self) {
        self.expect_closed_within(WAIT);
    }

    /// How the broker ends the connection: `Some(reason)` if it sends DISCONNECT first,
    /// `None` if it just closes. Panics on anything else.
    fn closing_reason(&mut self) -> Option<u8> {
        match self.next(WAIT) {
            Next::Closed => None,
            Next::Packet(p) => {
                let reason = disconnect_reason(&p)
                    .unwrap_or_else(|| panic!("expected DISCONNECT or a close, got {}", hex(&p)));
                self.expect_closed();
                Some(reason)
            }
            Next::Nothing => panic!("the connection is still open after {WAIT:?}"),
        }
    }

    /// Asserts that the broker sends DISCONNECT with `reason` and closes the connection:
    /// on an error the server MUST close [MQTT-4.13.1-1] and SHOULD send DISCONNECT with
    /// the reason code first (section 4.13.1).
    fn expect_disconnect(&mut self, reason: u8) {
        let packet = self.packet();
        assert_eq!(
            disconnect_reason(&packet),
            Some(reason),
            "expected DISCONNECT 0x{reason:02x}, got {}",
            hex(&packet)
        );
        self.expect_closed();
    }

    /// SUBSCRIBE and its SUBACK's reason codes.
    fn subscribe(&mut self, packet_id: u16, props: &[Vec<u8>], filters: &[(&str, u8)]) -> Vec<u8> {
        self.send(&subscribe5(packet_id, props, filters));
        let (first, id, codes) = parse_sub_ack(&self.packet());
        assert_eq!((first, id), (0x90, packet_id), "SUBACK");
        codes
    }
}

/// A v5 subscriber to `filter` with the options byte `options`, SUBACK checked.
fn subscriber5(broker: &Broker, client_id: &str, filter: &str, options: u8) -> Client5 {
    let mut client = Client5::connected(broker, client_id);
    let codes = client.subscribe(1, &[], &[(filter, options)]);
    assert_eq!(codes, [options & 3], "SUBACK for {filter}");
    client
}

/// Publishes at QoS 1 and returns the PUBACK's reason code.
fn publish_qos1(client: &mut Client5, topic: &str, properties: &[Vec<u8>], payload: &[u8]) -> u8 {
    client.send(&publish5(topic, 1, false, 7, properties, payload));
    let (first, id, reason) = parse_ack(&client.packet());
    assert_eq!((first, id), (0x40, 7), "PUBACK");
    reason
}

// ---- CONNECT and CONNACK ---------------------------------------------------------------

/// CONNACK tells the client the server's Receive Maximum (section 3.2.2.3.3; culex and
/// Mosquitto: max_inflight_messages, 20 by default) and Topic Alias Maximum (section
/// 3.2.2.3.8; 10 in both), and assigns no identifier to a client that chose one.
#[test]
fn connack_announces_receive_maximum_and_topic_alias_maximum() {
    let broker = Broker::start("");
    let (_client, connack) = Client5::connect(&broker, &Connect5::new("named"));
    assert!(!connack.session_present);
    assert_eq!(find(&connack.props, RECEIVE_MAXIMUM), Some(&Value::Int(20)));
    assert_eq!(
        find(&connack.props, TOPIC_ALIAS_MAXIMUM),
        Some(&Value::Int(10))
    );
    assert_eq!(find(&connack.props, ASSIGNED_CLIENT_ID), None);
}

/// A zero-length Client Identifier gets an Assigned Client Identifier in CONNACK
/// [MQTT-3.2.2-16], which is a new one: two such clients get different identifiers.
#[test]
fn empty_client_id_is_assigned_a_new_one_in_connack() {
    let broker = Broker::start("");
    let (_first, first) = Client5::connect(&broker, &Connect5::new(""));
    let (_second, second) = Client5::connect(&broker, &Connect5::new(""));
    let assigned = |c: &Connack| match find(&c.props, ASSIGNED_CLIENT_ID) {
        Some(Value::Bytes(id)) => String::from_utf8(id.clone()).expect("UTF-8"),
        other => panic!("Assigned Client Identifier: {other:?}"),
    };
    let (a, b) = (assigned(&first), assigned(&second));
    assert!(!a.is_empty());
    assert_ne!(a, b);
}

/// A property given twice (Session Expiry Interval, section 3.1.2.11.2: "a Protocol Error
/// to include [it] more than once") makes the CONNECT invalid: the server closes the
/// connection [MQTT-3.1.4-1], and MAY send CONNACK 0x82 (or 0x81) first.
#[test]
fn duplicate_property_in_connect_closes_the_connection() {
    let broker = Broker::start("");
    let mut client = Client5::open(&broker);
    let connect = Connect5::new("dup")
        .prop(p_u32(SESSION_EXPIRY, 10))
        .prop(p_u32(SESSION_EXPIRY, 20));
    client.send(&connect.bytes());
    expect_refused_or_closed(&mut client, &[0x81, 0x82]);
}

/// An identifier that is no property (0x05 is unassigned) makes the packet malformed
/// (section 2.2.2.2): closed [MQTT-3.1.4-1], with or without CONNACK 0x81 first.
#[test]
fn unknown_property_in_connect_is_a_malformed_packet() {
    let broker = Broker::start("");
    let mut client = Client5::open(&broker);
    let connect = Connect5::new("unknown").prop(p_u8(0x05, 1));
    client.send(&connect.bytes());
    expect_refused_or_closed(&mut client, &[0x81]);
}

/// The connection is closed; a CONNACK before the close must carry one of `reasons`.
fn expect_refused_or_closed(client: &mut Client5, reasons: &[u8]) {
    match client.next(WAIT) {
        Next::Closed => {}
        Next::Packet(p) => {
            let connack = parse_connack(&p);
            assert!(
                reasons.contains(&connack.reason),
                "CONNACK reason 0x{:02x}, expected one of {reasons:02x?}",
                connack.reason
            );
            client.expect_closed();
        }
        Next::Nothing => panic!("the connection is still open after {WAIT:?}"),
    }
}

/// Enhanced authentication with a method the server does not support: CONNACK 0x8C (Bad
/// authentication method) and the connection is closed [MQTT-4.12.0-1].
#[test]
fn unsupported_authentication_method_is_refused_with_0x8c() {
    let broker = Broker::start("");
    let mut client = Client5::open(&broker);
    let connect = Connect5::new("scram").prop(p_bytes(AUTH_METHOD, b"SCRAM-SHA-1"));
    client.send(&connect.bytes());
    let connack = parse_connack(&client.packet());
    assert_eq!(connack.reason, 0x8c);
    assert!(!connack.session_present);
    client.expect_closed();
}

/// A second CONNECT is a Protocol Error and closes the connection [MQTT-3.1.0-2], after
/// DISCONNECT 0x82 (section 4.13.1: the server SHOULD send it).
///
/// Spec over Mosquitto: Mosquitto 2.0.11 closes the connection without DISCONNECT.
#[test]
fn second_connect_is_a_protocol_error() {
    let broker = Broker::start("");
    let mut client = Client5::connected(&broker, "twice");
    client.send(&Connect5::new("twice").bytes());
    expect_protocol_error_close(&mut client, None);
}

/// A client that connects with an identifier in use takes the session over; the old
/// connection is sent DISCONNECT 0x8E (Session taken over) and closed [MQTT-3.1.4-3].
///
/// Spec over Mosquitto: Mosquitto 2.0.11 closes the old connection without DISCONNECT
/// (with Clean Start 1 or 0).
#[test]
fn takeover_sends_session_taken_over_to_the_old_connection() {
    let broker = Broker::start("");
    let mut old = Client5::connected(&broker, "same-id");
    let (_new, connack) = Client5::connect(&broker, &Connect5::new("same-id"));
    assert!(!connack.session_present, "Clean Start discards the session");
    let reason = old.closing_reason();
    if Broker::is_mosquitto() {
        assert_eq!(reason, None, "Mosquitto 2.0.11: closed without DISCONNECT");
    } else {
        assert_eq!(reason, Some(0x8e));
    }
}

/// Keep alive 1 s and silence: after 1.5 s the server closes the connection
/// [MQTT-3.1.2-22], telling an MQTT 5 client why with DISCONNECT 0x8D (Keep Alive
/// timeout, section 3.14.2.1; section 4.13.1: SHOULD).
///
/// Spec over Mosquitto: Mosquitto 2.0.11 closes such a connection after 5.5 to 6 s (see
/// `Broker::keep_alive_1s_close_limit`) and sends no DISCONNECT first.
#[test]
fn keep_alive_timeout_sends_disconnect_0x8d() {
    let broker = Broker::start("");
    let (mut client, _) = Client5::connect(&broker, &Connect5::new("sleepy").keep_alive(1));
    let start = Instant::now();
    let limit = Broker::keep_alive_1s_close_limit();
    let reason = match client.next(limit) {
        Next::Packet(p) => {
            let reason = disconnect_reason(&p);
            client.expect_closed();
            reason
        }
        Next::Closed => None,
        Next::Nothing => panic!("still open after {limit:?}"),
    };
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1400),
        "closed too early: {elapsed:?}"
    );
    if Broker::is_mosquitto() {
        assert_eq!(reason, None, "Mosquitto 2.0.11: closed without DISCONNECT");
    } else {
        assert_eq!(reason, Some(0x8d));
    }
}

// ---- PUBLISH ---------------------------------------------------------------------------

/// A Topic Alias of 0 is not permitted [MQTT-3.3.2-8]: DISCONNECT 0x94 (Topic Alias
/// invalid), which culex's PUBLISH handling intends for 0 as for values above the
/// maximum. (Section 3.14.2.1 words 0x94 for "greater than the Maximum"; 0x82 would be a
/// reasonable reading for 0 too, but culex's broker code chooses 0x94 and this test
/// holds it to that.)
///
/// Mosquitto 2.0.11 treats the value as malformed: DISCONNECT 0x81.
#[test]
fn topic_alias_zero_is_topic_alias_invalid() {
    let broker = Broker::start("");
    let mut client = Client5::connected(&broker, "alias0");
    client.send(&publish5(
        "a/t",
        0,
        false,
        0,
        &[p_u16(TOPIC_ALIAS, 0)],
        b"x",
    ));
    let reason = client.closing_reason();
    if Broker::is_mosquitto() {
        assert_eq!(reason, Some(0x81), "Mosquitto 2.0.11");
    } else {
        assert_eq!(reason, Some(0x94));
    }
}

/// A Topic Alias greater than the server's Topic Alias Maximum (10) [MQTT-3.3.2-9]:
/// DISCONNECT 0x94.
#[test]
fn topic_alias_above_the_maximum_is_topic_alias_invalid() {
    let broker = Broker::start("");
    let mut client = Client5::connected(&broker, "alias11");
    client.send(&publish5(
        "a/t",
        0,
        false,
        0,
        &[p_u16(TOPIC_ALIAS, 11)],
        b"x",
    ));
    client.expect_disconnect(0x94);
}

/// A Topic Alias set with a topic name stands for it in later PUBLISH packets with an
/// empty name (section 3.3.2.3.4); subscribers see the full topic name.
#[test]
fn topic_alias_set_then_used_reaches_the_subscriber() {
    let broker = Broker::start("");
    let mut sub = subscriber5(&broker, "alias-sub", "alias/#", 0);
    let mut client = Client5::connected(&broker, "aliaser");
    client.send(&publish5(
        "alias/long/name",
        0,
        false,
        0,
        &[p_u16(TOPIC_ALIAS, 10)],
        b"1",
    ));
    client.send(&publish5("", 0, false, 0, &[p_u16(TOPIC_ALIAS, 10)], b"2"));
    for payload in [b"1", b"2"] {
        let got = sub.publish();
        assert_eq!(got.topic, "alias/long/name");
        assert_eq!(got.payload, payload);
        assert_eq!(find(&got.props, TOPIC_ALIAS), None, "no alias towards sub");
    }
}

/// An empty topic name without Topic Alias is a Protocol Error (section 3.3.2.1): the
/// server closes the connection after DISCONNECT 0x82 (or 0x81).
#[test]
fn empty_topic_without_topic_alias_closes_the_connection() {
    let broker = Broker::start("");
    let mut client = Client5::connected(&broker, "no-topic");
    client.send(&publish5("", 0, false, 0, &[], b"x"));
    let reason = client.closing_reason();
    assert!(
        matches!(reason, Some(0x81 | 0x82)),
        "expected DISCONNECT 0x81 or 0x82, got {reason:02x?}"
    );
}

/// An empty topic name with a Topic Alias the client never set has no topic: a Protocol
/// Error (section 3.3.2.3.4), DISCONNECT 0x82.
#[test]
fn unknown_topic_alias_is_a_protocol_error() {
    let broker = Broker::start("");
    let mut client = Client5::connected(&broker, "alias-unset");
    client.send(&publish5("", 0, false, 0, &[p_u16(TOPIC_ALIAS, 5)], b"x"));
    client.expect_disconnect(0x82);
}

/// PUBACK 0x10 (No matching subscribers, section 3.4.2.1) when nobody subscribed; 0x00
/// once someone has.
#[test]
fn puback_says_no_matching_subscribers() {
    let broker = Broker::start("");
    let mut client = Client5::connected(&broker, "lonely");
    assert_eq!(publish_qos1(&mut client, "nobody/here", &[], b"x"), 0x10);
    let _sub = subscriber5(&broker, "someone", "nobody/here", 0);
    assert_eq!(publish_qos1(&mut client, "nobody/here", &[], b"x"), 0x00);
}

/// Payload Format Indicator 1 promises UTF-8; the server may check it and answer a payload
/// that is not with PUBACK 0x99 (Payload format invalid) (section 3.3.2.3.2). Such a
/// message is not delivered; a valid one is, with the indicator unaltered [MQTT-3.3.2-4].
///
/// Mosquitto 2.0.11 does not check (the check is a MAY): PUBACK 0x00, and the message is
/// delivered.
#[test]
fn invalid_utf8_with_payload_format_indicator_gets_puback_0x99() {
    let broker = Broker::start("");
    let mut sub = subscriber5(&broker, "utf8-sub", "utf8/t", 1);
    let mut client = Client5::connected(&broker, "utf8-pub");
    let utf8 = [p_u8(PAYLOAD_FORMAT, 1)];
    let reason = publish_qos1(&mut client, "utf8/t", &utf8, b"\xff\xfe");
    if Broker::is_mosquitto() {
        assert_eq!(reason, 0x00, "Mosquitto 2.0.11 does not check");
        let got = sub.publish();
        assert_eq!(got.payload, b"\xff\xfe");
        sub.send(&ack(0x40, got.packet_id));
    } else {
        assert_eq!(reason, 0x99);
    }
    assert_eq!(
        publish_qos1(&mut client, "utf8/t", &utf8, "ok ✓".as_bytes()),
        0x00
    );
    let got = sub.publish();
    assert_eq!(got.payload, "ok ✓".as_bytes());
    assert_eq!(find(&got.props, PAYLOAD_FORMAT), Some(&Value::Int(1)));
}

/// PUBREL for a packet identifier the server does not know is answered with PUBCOMP
/// Success, rl=2, as Mosquitto answers it: section 3.7.2.1 allows 0x92 (Packet
/// Identifier not found) there but does not require it, and a client resending PUBREL
/// after a reconnect expects nothing else (seq/PUBREL).
#[test]
fn pubrel_for_unknown_packet_id_gets_pubcomp_success() {
    let broker = Broker::start("");
    let mut client = Client5::connected(&broker, "pubrel");
    client.send(&ack(0x62, 0x1234));
    assert_eq!(client.packet(), [0x70, 0x02, 0x12, 0x34]);
}

/// The message is not sent to a client whose Maximum Packet Size it exceeds
/// [MQTT-3.1.2-24]; it is discarded as if sent [MQTT-3.1.2-25], and a smaller one after
/// it is delivered.
#[test]
fn message_larger_than_client_maximum_packet_size_is_not_sent() {
    let broker = Broker::start("");
    let connect = Connect5::new("small").prop(p_u32(MAXIMUM_PACKET_SIZE, 30));
    let (mut sub, _) = Client5::connect(&broker, &connect);
    assert_eq!(sub.subscribe(1, &[], &[("mps/t", 1)]), [1]);
    let mut publisher = Client5::connected(&broker, "big");
    // PUBLISH QoS 1 to "mps/t": 2 + 2 + 5 + 2 + 1 = 12 bytes and the payload.
    publish_qos1(&mut publisher, "mps/t", &[], &[b'x'; 40]);
    publish_qos1(&mut publisher, "mps/t", &[], b"fits");
    let got = sub.packet();
    assert!(got.len() <= 30, "{} bytes: {}", got.len(), hex(&got));
    assert_eq!(parse_publish(&got).payload, b"fits");
    sub.expect_nothing();
}

/// The client's Receive Maximum 1: the server sends no second QoS 1 PUBLISH until the
/// first is acknowledged [MQTT-3.3.4-9].
#[test]
fn client_receive_maximum_1_allows_one_qos1_message_in_flight() {
    let broker = Broker::start("");
    let connect = Connect5::new("one-at-a-time").prop(p_u16(RECEIVE_MAXIMUM, 1));
    let (mut sub, _) = Client5::connect(&broker, &connect);
    assert_eq!(sub.subscribe(1, &[], &[("rm/t", 1)]), [1]);
    let mut publisher = Client5::connected(&broker, "rm-pub");
    for payload in [b"m1", b"m2", b"m3"] {
        publish_qos1(&mut publisher, "rm/t", &[], payload);
    }
    for payload in [b"m1", b"m2", b"m3"] {
        let got = sub.publish();
        assert_eq!((got.qos, got.payload.as_slice()), (1, &payload[..]));
        sub.expect_nothing();
        sub.send(&ack(0x40, got.packet_id));
    }
    sub.expect_nothing();
}

// ---- SUBSCRIBE and UNSUBSCRIBE ------------------------------------------------------

/// Retain Handling 3 is a Protocol Error (section 3.8.3.1): DISCONNECT 0x82, close.
///
/// Spec over Mosquitto: Mosquitto 2.0.11 sends DISCONNECT 0x81 (Malformed Packet).
#[test]
fn retain_handling_3_is_a_protocol_error() {
    let broker = Broker::start("");
    let mut client = Client5::connected(&broker, "rh3");
    client.send(&subscribe5(1, &[], &[("rh/t", RETAIN_HANDLING_3)]));
    expect_protocol_error_close(&mut client, Some(0x81));
}

/// No Local on a Shared Subscription is a Protocol Error [MQTT-3.8.3-4]: DISCONNECT 0x82,
/// close.
///
/// Spec over Mosquitto: Mosquitto 2.0.11 accepts the subscription (SUBACK 0x00).
#[test]
fn no_local_on_a_shared_subscription_is_a_protocol_error() {
    let broker = Broker::start("");
    let mut client = Client5::connected(&broker, "nl-shared");
    client.send(&subscribe5(1, &[], &[("$share/g/nl/t", NO_LOCAL)]));
    if Broker::is_mosquitto() {
        let (first, id, codes) = parse_sub_ack(&client.packet());
        assert_eq!(
            (first, id, codes),
            (0x90, 1, vec![0x00]),
            "Mosquitto 2.0.11"
        );
        return;
    }
    expect_protocol_error_close(&mut client, None);
}

/// DISCONNECT 0x82 then close; with Mosquitto, DISCONNECT `mosquitto` (`None`: no
/// DISCONNECT) then close, as the callers' doc comments say.
fn expect_protocol_error_close(client: &mut Client5, mosquitto: Option<u8>) {
    let reason = client.closing_reason();
    if Broker::is_mosquitto() {
        assert_eq!(reason, mosquitto, "Mosquitto 2.0.11");
    } else {
        assert_eq!(reason, Some(0x82));
    }
}

/// UNSUBACK has one reason code per filter (section 3.11.3): 0x00 for a subscription
/// that existed, 0x11 (No subscription existed) for a filter never subscribed.
#[test]
fn unsuback_says_no_subscription_existed() {
    let broker = Broker::start("");
    let mut client = Client5::connected(&broker, "unsub");
    assert_eq!(client.subscribe(1, &[], &[("u/a", 0)]), [0]);
    client.send(&unsubscribe5(2, &["u/a", "u/never"]));
    let (first, id, codes) = parse_sub_ack(&client.packet());
    assert_eq!((first, id), (0xb0, 2), "UNSUBACK");
    assert_eq!(codes, [0x00, 0x11]);
}

/// The Subscription Identifier of the matching subscription is sent with the message
/// [MQTT-3.3.4-3]; a message matching no identified subscription has none.
#[test]
fn subscription_identifier_is_sent_with_matching_messages() {
    let broker = Broker::start("");
    let mut sub = Client5::connected(&broker, "ids");
    let id = [p_varint(SUBSCRIPTION_ID, 300)];
    assert_eq!(sub.subscribe(1, &id, &[("ids/a", 0)]), [0]);
    assert_eq!(sub.subscribe(2, &[], &[("ids/b", 0)]), [0]);
    let mut publisher = Client5::connected(&broker, "ids-pub");
    publisher.send(&publish5("ids/a", 0, false, 0, &[], b"a"));
    publisher.send(&publish5("ids/b", 0, false, 0, &[], b"b"));
    let a = sub.publish();
    assert_eq!(
        (a.topic.as_str(), a.props.as_slice()),
        ("ids/a", &[(SUBSCRIPTION_ID, Value::Int(300))][..])
    );
    let b = sub.publish();
    assert_eq!((b.topic.as_str(), b.props.as_slice()), ("ids/b", &[][..]));
}

/// The message properties of a PUBLISH and of a will reach the subscriber in the order
/// their publisher wrote them, User Properties interleaved with the others. User
/// Properties keep their order [MQTT-3.3.2-17] [MQTT-3.3.2-18]; the order among
/// different properties the specification leaves open (section 2.2.2.2), and culex does
/// as Mosquitto: the Subscription Identifier first, then the publisher's properties in
/// its order, then the Message Expiry Interval (Mosquitto's 07-will-properties).
#[test]
fn message_properties_are_forwarded_in_the_publishers_order() {
    let broker = Broker::start("");
    let mut sub = Client5::connected(&broker, "order-sub");
    let id = [p_varint(SUBSCRIPTION_ID, 7)];
    assert_eq!(sub.subscribe(1, &id, &[("order/#", 0)]), [0]);
    let pair = |k: &str, v: &str| (USER_PROPERTY, Value::Pair(k.into(), v.into()));
    let bytes = |id: u8, v: &[u8]| (id, Value::Bytes(v.to_vec()));
    // What both messages carry, in this order, and what the subscriber gets of it.
    let sent = || {
        vec![
            p_pair(USER_PROPERTY, "key1", "value1"),
            p_bytes(RESPONSE_TOPIC, b"response/topic"),
            p_bytes(CORRELATION_DATA, b"data"),
            p_u8(PAYLOAD_FORMAT, 1),
            p_bytes(CONTENT_TYPE, b"application/test"),
            p_pair(USER_PROPERTY, "key2", "value2"),
            p_pair(USER_PROPERTY, "key1", "again"),
        ]
    };
    let forwarded = vec![
        (SUBSCRIPTION_ID, Value::Int(7)),
        pair("key1", "value1"),
        bytes(RESPONSE_TOPIC, b"response/topic"),
        bytes(CORRELATION_DATA, b"data"),
        (PAYLOAD_FORMAT, Value::Int(1)),
        bytes(CONTENT_TYPE, b"application/test"),
        pair("key2", "value2"),
        pair("key1", "again"),
    ];

    // A PUBLISH, with a Topic Alias first and a Message Expiry Interval among them: the
    // alias is the publisher's, the expiry goes after the message properties.
    let mut props = vec![p_u16(TOPIC_ALIAS, 1)];
    props.extend(sent());
    props.insert(3, p_u32(MESSAGE_EXPIRY, 600));
    let mut publisher = Client5::connected(&broker, "order-pub");
    publisher.send(&publish5("order/pub", 0, false, 0, &props, b"p"));
    let got = sub.publish();
    assert_eq!(got.topic, "order/pub");
    let (expiry, rest) = got.props.split_last().expect("properties");
    assert!(
        matches!(expiry, (MESSAGE_EXPIRY, Value::Int(599..=600))),
        "{expiry:?}"
    );
    assert_eq!(rest, forwarded);

    // A will, with a Will Delay Interval among its properties (not forwarded).
    let mut will_props = sent();
    will_props.insert(3, p_u32(WILL_DELAY, 0));
    let connect = Connect5::new("order-will").will(Will5 {
        props: will_props,
        topic: "order/will",
        payload: b"will payload",
        qos: 0,
    });
    let (client, _) = Client5::connect(&broker, &connect);
    drop(client);
    let will = sub.publish();
    assert_eq!(
        (will.topic.as_str(), will.payload.as_slice()),
        ("order/will", &b"will payload"[..])
    );
    assert_eq!(will.props, forwarded);
}

// ---- DISCONNECT and wills ------------------------------------------------------------

const WILL_TOPIC: &str = "will5/gone";

fn will_connect(client_id: &str) -> Connect5<'_> {
    Connect5::new(client_id).will(Will5 {
        props: vec![p_pair(USER_PROPERTY, "why", "test")],
        topic: WILL_TOPIC,
        payload: b"bye",
        qos: 0,
    })
}

/// DISCONNECT 0x04 (Disconnect with Will Message, section 3.14.2.1): the will is
/// published, with its properties.
#[test]
fn disconnect_with_will_message_publishes_the_will() {
    let broker = Broker::start("");
    let mut watcher = subscriber5(&broker, "watcher", "will5/#", 0);
    let (mut client, _) = Client5::connect(&broker, &will_connect("leaving"));
    client.send(&disconnect5(0x04, &[]));
    client.expect_closed();
    let will = watcher.publish();
    assert_eq!(
        (will.topic.as_str(), will.payload.as_slice()),
        (WILL_TOPIC, &b"bye"[..])
    );
    assert_eq!(
        find(&will.props, USER_PROPERTY),
        Some(&Value::Pair("why".into(), "test".into()))
    );
}

/// DISCONNECT 0x00 discards the will [MQTT-3.14.4-3].
#[test]
fn normal_disconnect_discards_the_will() {
    let broker = Broker::start("");
    let mut watcher = subscriber5(&broker, "watcher", "will5/#", 0);
    let (mut client, _) = Client5::connect(&broker, &will_connect("polite"));
    client.send(&disconnect5(0x00, &[]));
    client.expect_closed();
    watcher.expect_nothing();
}

/// A Session Expiry Interval on DISCONNECT when CONNECT had 0 is a Protocol Error
/// (section 3.14.2.2.2): not a valid DISCONNECT, so the server sends DISCONNECT 0x82 and
/// closes, and the will is published as for any connection closed without a valid
/// DISCONNECT [MQTT-3.1.2-8]. (The statement next to it, [MQTT-3.14.2-2], is about the
/// server never sending this property in DISCONNECT.)
#[test]
fn session_expiry_on_disconnect_after_zero_is_a_protocol_error() {
    let broker = Broker::start("");
    let mut watcher = subscriber5(&broker, "watcher", "will5/#", 0);
    let (mut client, _) = Client5::connect(&broker, &will_connect("sneaky"));
    client.send(&disconnect5(0x00, &[p_u32(SESSION_EXPIRY, 60)]));
    client.expect_disconnect(0x82);
    assert_eq!(watcher.publish().topic, WILL_TOPIC);
}

/// A Will Delay Interval defers the will; a connection that ends is then reconnected in
/// time, and the will is not sent [MQTT-3.1.3-9]. Here with a session expiry long enough.
#[test]
fn delayed_will_is_not_sent_when_the_session_resumes_in_time() {
    let broker = Broker::start("");
    let mut watcher = subscriber5(&broker, "watcher", "will5/#", 0);
    let mut connect = will_connect("flaky").prop(p_u32(SESSION_EXPIRY, 60));
    connect.clean_start = false;
    if let Some(will) = connect.will.as_mut() {
        will.props.push(p_u32(WILL_DELAY, 2));
    }
    let (client, _) = Client5::connect(&broker, &connect);
    drop(client); // no DISCONNECT: the will is due in 2 s
    thread::sleep(Duration::from_millis(300));
    let (mut back, connack) = Client5::connect(&broker, &connect);
    assert!(connack.session_present);
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        assert_eq!(watcher.next(QUIET), Next::Nothing, "no will while resumed");
    }
    // The session ends now (expiry 0 on DISCONNECT), discarding the will with it.
    back.send(&disconnect5(0x00, &[p_u32(SESSION_EXPIRY, 0)]));
    back.expect_closed();
    watcher.expect_nothing();
}

// ---- MQTT 3.1.1 and 5 together -------------------------------------------------------

/// A 3.1.1 subscriber gets a v5 publisher's message as a 3.1.1 PUBLISH: no properties
/// (they do not exist in 3.1.1), topic and payload unchanged.
#[test]
fn v311_subscriber_gets_a_v5_message_without_properties() {
    let broker = Broker::start("");
    let mut old = broker.raw_connected("old-sub");
    old.send(&crate::common::subscribe_packet(1, "mix/t", 0));
    old.expect(&[0x90, 0x03, 0x00, 0x01, 0x00]);
    let mut new = Client5::connected(&broker, "new-pub");
    let properties = [
        p_pair(USER_PROPERTY, "k", "v"),
        p_bytes(0x03, b"text/plain"),
        p_u32(MESSAGE_EXPIRY, 60),
    ];
    new.send(&publish5("mix/t", 0, false, 0, &properties, b"hello"));
    old.expect(&publish_packet(b"mix/t", 0, false, false, 0, b"hello"));
}

/// A v5 subscriber gets a 3.1.1 publisher's message with an empty property block.
#[test]
fn v5_subscriber_gets_a_v311_message_with_no_properties() {
    let broker = Broker::start("");
    let mut new = subscriber5(&broker, "new-sub", "mix/t", 0);
    let mut old = broker.raw();
    old.send(&connect_packet("old-pub", true, 60));
    old.expect(&[0x20, 0x02, 0x00, 0x00]);
    old.send(&publish_packet(b"mix/t", 0, false, false, 0, b"hello"));
    let got = new.packet();
    // 0x30, length 13: topic "mix/t" (7), property length 0 (1), "hello" (5).
    let mut expected = vec![0x30, 13];
    expected.extend_from_slice(&field(b"mix/t"));
    expected.push(0x00);
    expected.extend_from_slice(b"hello");
    assert_eq!(hex(&got), hex(&expected));
}

// ---- retained messages ---------------------------------------------------------------

/// A retained message keeps its User Properties [MQTT-3.3.2-17] for a subscriber that
/// comes later, and is sent to it with RETAIN 1 [MQTT-3.3.1-8].
#[test]
fn retained_message_keeps_its_user_property() {
    let broker = Broker::start("");
    let mut publisher = Client5::connected(&broker, "keeper");
    let properties = [
        p_pair(USER_PROPERTY, "unit", "°C"),
        p_pair(USER_PROPERTY, "unit", "K"),
    ];
    publisher.send(&publish5("ret5/t", 1, true, 7, &properties, b"21"));
    assert_eq!(parse_ack(&publisher.packet()), (0x40, 7, 0x10));
    let mut late = Client5::connected(&broker, "late");
    assert_eq!(late.subscribe(1, &[], &[("ret5/t", 1)]), [1]);
    let got = late.publish();
    assert!(got.retain);
    assert_eq!(
        (got.topic.as_str(), got.payload.as_slice()),
        ("ret5/t", &b"21"[..])
    );
    // Order kept [MQTT-3.3.2-18].
    assert_eq!(
        got.props,
        [
            (USER_PROPERTY, Value::Pair("unit".into(), "°C".into())),
            (USER_PROPERTY, Value::Pair("unit".into(), "K".into())),
        ]
    );
}

/// A retained message with a Message Expiry Interval of 1 s: a subscriber before expiry
/// gets it with the interval counted down [MQTT-3.3.2-6]; once it has expired, a new
/// subscriber does not [MQTT-3.3.2-5].
#[test]
fn expired_retained_message_is_not_sent_to_a_new_subscriber() {
    let broker = Broker::start("");
    let mut publisher = Client5::connected(&broker, "fleeting");
    let expiring = [p_u32(MESSAGE_EXPIRY, 1)];
    publisher.send(&publish5("exp5/t", 1, true, 7, &expiring, b"soon gone"));
    assert_eq!(parse_ack(&publisher.packet()), (0x40, 7, 0x10));
    let published = Instant::now();
    let mut early = Client5::connected(&broker, "early");
    assert_eq!(early.subscribe(1, &[], &[("exp5/t", 1)]), [1]);
    let got = early.publish();
    assert!(got.retain);
    assert_eq!(got.payload, b"soon gone");
    match find(&got.props, MESSAGE_EXPIRY) {
        Some(Value::Int(left)) => assert!(*left <= 1, "interval left: {left}"),
        other => panic!("Message Expiry Interval: {other:?}"),
    }
    thread::sleep(Duration::from_millis(2200).saturating_sub(published.elapsed()));
    let mut late = Client5::connected(&broker, "too-late");
    assert_eq!(late.subscribe(1, &[], &[("exp5/t", 1)]), [1]);
    late.expect_nothing();
}
