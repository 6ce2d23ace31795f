//! MQTT over WebSockets (`protocol websockets`): rumqttc's websocket transport (3.1.1 and
//! 5.0) and tungstenite as independent clients, and raw bytes for RFC 6455's rules
//! (masking, fragmentation, control frames, the handshake's error statuses) and MQTT's
//! [MQTT-6.0.0-1] (binary frames) and [MQTT-6.0.0-2] (packets split across and combined
//! in frames). Statement numbers of section 6 are those of MQTT 5.0 and 3.1.1 alike.

use crate::auth::{password_line, TempFile};
use crate::common::{
    candidate_port, connect_packet, hex, publish_packet, subscribe_packet, Broker, WAIT,
};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS, Transport};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A broker with its usual TCP listener and a websockets listener (with `extra`'s lines
/// after `protocol websockets`).
fn ws_broker(extra_listener: &str, global: &str) -> (Broker, u16) {
    let port = candidate_port();
    let broker = Broker::start(&format!(
        "{global}\nlistener {port} 127.0.0.1\nprotocol websockets\n{extra_listener}\n"
    ));
    (broker, port)
}

fn ws_options(id: &str, port: u16) -> MqttOptions {
    let mut options = MqttOptions::new(id, format!("ws://127.0.0.1:{port}/mqtt"), port);
    options.set_transport(Transport::Ws);
    options.set_keep_alive(Duration::from_secs(30));
    // rumqttc's default bound is 10 KiB; the tests send larger packets.
    options.set_max_packet_size(1 << 20, 1 << 20);
    options
}

/// Polls until a CONNACK; the client if accepted, else the error text.
fn connect(options: MqttOptions) -> Result<(Client, rumqttc::Connection), String> {
    let (client, mut conn) = Client::new(options, 16);
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        match conn.recv_timeout(WAIT) {
            Ok(Ok(Event::Incoming(Packet::ConnAck(ack))))
                if ack.code == rumqttc::ConnectReturnCode::Success =>
            {
                return Ok((client, conn))
            }
            Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                return Err(format!("refused: {:?}", ack.code))
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.to_string()),
            Err(e) => return Err(format!("timeout: {e:?}")),
        }
    }
    Err("no CONNACK".into())
}

fn wait_publish(
    conn: &mut rumqttc::Connection,
    what: impl Fn(&rumqttc::Publish) -> bool,
) -> Option<rumqttc::Publish> {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        match conn.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) if what(&p) => return Some(p),
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => return None,
        }
    }
    None
}

fn wait_suback(conn: &mut rumqttc::Connection) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Ok(Ok(Event::Incoming(Packet::SubAck(_)))) = conn.recv_timeout(WAIT) {
            return;
        }
    }
    panic!("no SUBACK");
}

/// A 3.1.1 client over WebSockets and one over TCP exchange messages both ways, QoS 0
/// and 1, and a retained message reaches the WebSocket subscriber.
#[test]
fn mqtt311_over_websockets_talks_with_tcp_clients() {
    let (broker, port) = ws_broker("", "");
    let mut tcp_options = broker.options("tcp-sub");
    tcp_options.set_max_packet_size(1 << 20, 1 << 20);
    let (mut tcp, _) = crate::common::Peer::connect(tcp_options);
    tcp.subscribe("from/ws/#", QoS::AtLeastOnce);
    let (ws, mut ws_conn) =
        connect(ws_options("ws-client", port)).expect("WebSocket client accepted");
    ws.subscribe("from/tcp/#", QoS::AtLeastOnce).unwrap();
    wait_suback(&mut ws_conn);
    tcp.publish("from/tcp/a", QoS::AtLeastOnce, false, b"over tcp");
    let p = wait_publish(&mut ws_conn, |_| true).expect("PUBLISH over WebSockets");
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        ("from/tcp/a", &b"over tcp"[..])
    );
    let big = vec![0x5a; 70_000]; // a 64-bit frame length, and many TCP segments
    ws.publish("from/ws/big", QoS::AtLeastOnce, false, big.clone())
        .unwrap();
    ws.publish("from/ws/small", QoS::AtMostOnce, false, b"s".to_vec())
        .unwrap();
    // Keep polling the WebSocket client so its packets go out.
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    while got.len() < 2 && Instant::now() < deadline {
        let _ = ws_conn.recv_timeout(Duration::from_millis(20));
        if let Some(p) = tcp.next_publish(Duration::from_millis(20)) {
            got.push((p.topic.clone(), p.payload.len()));
        }
    }
    assert_eq!(
        got,
        [("from/ws/big".into(), 70_000), ("from/ws/small".into(), 1)]
    );
    tcp.publish("from/tcp/retained", QoS::AtLeastOnce, true, b"kept");
    let (late, mut late_conn) = connect(ws_options("ws-late", port)).unwrap();
    late.subscribe("from/tcp/retained", QoS::AtMostOnce)
        .unwrap();
    let p = wait_publish(&mut late_conn, |p| p.retain).expect("retained message");
    assert_eq!(&p.payload[..], b"kept");
}

/// An MQTT 5 client over WebSockets: user properties and QoS 2 come through.
#[test]
fn mqtt5_over_websockets() {
    use rumqttc::v5::mqttbytes::v5::{Packet as P5, PublishProperties};
    use rumqttc::v5::mqttbytes::QoS as Q5;
    use rumqttc::v5::{Client as C5, Event as E5, MqttOptions as O5};
    let (_broker, port) = ws_broker("", "");
    let mut options = O5::new("ws-v5", format!("ws://127.0.0.1:{port}/mqtt"), port);
    options.set_transport(Transport::Ws);
    let (client, mut conn) = C5::new(options, 16);
    client.subscribe("v5/#", Q5::ExactlyOnce).unwrap();
    let properties = PublishProperties {
        user_properties: vec![("site".into(), "gw-1".into())],
        ..Default::default()
    };
    let mut published = false;
    let deadline = Instant::now() + WAIT;
    let mut received = None;
    while received.is_none() && Instant::now() < deadline {
        match conn.recv_timeout(WAIT) {
            Ok(Ok(E5::Incoming(P5::SubAck(_)))) if !published => {
                client
                    .publish_with_properties(
                        "v5/t",
                        Q5::ExactlyOnce,
                        false,
                        b"five".to_vec(),
                        properties.clone(),
                    )
                    .unwrap();
                published = true;
            }
            Ok(Ok(E5::Incoming(P5::Publish(p)))) => received = Some(p),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("MQTT 5 over WebSockets: {e}"),
            Err(e) => panic!("timeout: {e:?}"),
        }
    }
    let p = received.expect("the QoS 2 message came back");
    assert_eq!((&p.payload[..], p.qos), (&b"five"[..], Q5::ExactlyOnce));
    assert_eq!(
        p.properties.expect("properties").user_properties,
        vec![("site".to_string(), "gw-1".to_string())]
    );
}

/// password_file and acl_file apply to WebSocket clients exactly as to TCP clients.
#[test]
fn password_and_acl_apply_over_websockets() {
    let passwords = TempFile::new(
        "ws-passwd",
        &(password_line("alice", "a") + &password_line("bob", "b")),
    );
    let acl = TempFile::new(
        "ws-acl",
        "user alice\ntopic readwrite alice/#\nuser bob\ntopic read alice/#\n",
    );
    let (_broker, port) = ws_broker(
        "",
        &format!(
            "allow_anonymous false\npassword_file {}\nacl_file {}\n",
            passwords.path(),
            acl.path()
        ),
    );
    let mut wrong = ws_options("intruder", port);
    wrong.set_credentials("alice", "not-a");
    for refused in [wrong, ws_options("anon", port)] {
        let e = connect(refused).err().expect("refused");
        assert!(e.contains("NotAuthorized"), "{e}");
    }
    let mut o = ws_options("bob-ws", port);
    o.set_credentials("bob", "b");
    let (bob, mut bob_conn) = connect(o).expect("bob accepted");
    bob.subscribe("alice/#", QoS::AtMostOnce).unwrap();
    wait_suback(&mut bob_conn);
    // bob may not write to alice/#: dropped. alice may.
    bob.publish("alice/from-bob", QoS::AtMostOnce, false, b"x".to_vec())
        .unwrap();
    let mut o = ws_options("alice-ws", port);
    o.set_credentials("alice", "a");
    let (alice, mut alice_conn) = connect(o).expect("alice accepted");
    alice
        .publish("alice/news", QoS::AtLeastOnce, false, b"hi".to_vec())
        .unwrap();
    let _ = alice_conn.recv_timeout(Duration::from_millis(200));
    let p = wait_publish(&mut bob_conn, |_| true).expect("alice's message");
    assert_eq!(
        p.topic, "alice/news",
        "bob's own message was denied by the ACL"
    );
}

/// A WebSocket client's raw bytes: handshake, masked frames out, frames in.
struct WsRaw {
    stream: TcpStream,
    /// Bytes read past what was parsed.
    buf: Vec<u8>,
}

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn upgrade_request(extra: &str) -> String {
    format!(
        "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n{extra}\r\n"
    )
}

impl WsRaw {
    fn tcp(port: u16) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }

    /// Connects and completes the handshake, checking the 101 response.
    fn open(port: u16) -> WsRaw {
        let mut ws = WsRaw {
            stream: WsRaw::tcp(port),
            buf: Vec::new(),
        };
        ws.stream.write_all(upgrade_request("").as_bytes()).unwrap();
        let head = ws.read_head();
        assert!(
            head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
            "{head}"
        );
        // RFC 6455 1.3's example key and accept value.
        assert!(
            head.contains("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
            "{head}"
        );
        assert!(
            head.contains("\r\nSec-WebSocket-Protocol: mqtt\r\n"),
            "{head}"
        );
        ws
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("nothing from the broker within {WAIT:?}")
            }
            Err(_) => false,
        }
    }

    fn read_head(&mut self) -> String {
        for _ in 0..100 {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                return String::from_utf8(head).unwrap();
            }
            assert!(
                self.fill(),
                "closed before the response head: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
        panic!("no response head");
    }

    /// Sends one frame with the given first byte, masked (or not).
    fn send_frame(&mut self, first: u8, payload: &[u8], is_masked: bool) {
        self.stream
            .write_all(&frame(first, payload, is_masked))
            .unwrap();
    }

    /// Reads one server frame: (first byte, payload). The server never masks (5.1).
    fn read_frame(&mut self) -> (u8, Vec<u8>) {
        for _ in 0..1000 {
            if self.buf.len() >= 2 {
                assert_eq!(self.buf[1] & 0x80, 0, "server frames are not masked");
                let (len, at) = match self.buf[1] & 0x7F {
                    126 if self.buf.len() >= 4 => (
                        usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])),
                        4,
                    ),
                    127 if self.buf.len() >= 10 => (
                        u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize,
                        10,
                    ),
                    126 | 127 => (usize::MAX, 0),
                    n => (usize::from(n), 2),
                };
                if len != usize::MAX && self.buf.len() >= at + len {
                    let first = self.buf[0];
                    let payload = self.buf[at..at + len].to_vec();
                    self.buf.drain(..at + len);
                    return (first, payload);
                }
            }
            assert!(
                self.fill(),
                "closed before a whole frame; have {}",
                hex(&self.buf)
            );
        }
        panic!("no frame");
    }

    /// Reads binary frames until `n` bytes of MQTT arrived.
    fn read_mqtt(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while out.len() < n {
            let (first, payload) = self.read_frame();
            assert_eq!(first, 0x82, "a final binary frame [MQTT-6.0.0-1]");
            out.extend(payload);
        }
        out
    }

    /// Expects a close frame with `code`, then the end of the connection.
    fn expect_close(&mut self, code: u16) {
        let (first, payload) = self.read_frame();
        assert_eq!(
            (first, payload.get(..2)),
            (0x88, Some(&code.to_be_bytes()[..])),
            "close {code}"
        );
        self.expect_eof();
    }

    fn expect_eof(&mut self) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let mut chunk = [0u8; 256];
            match self.stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(_) => return,
            }
        }
        panic!("the broker did not close the connection");
    }
}

/// A client frame; masked with a fixed key unless told otherwise.
fn frame(first: u8, payload: &[u8], is_masked: bool) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let bit = if is_masked { 0x80 } else { 0 };
    let mut f = vec![first];
    match payload.len() {
        n if n < 126 => f.push(bit | n as u8),
        n if n <= 0xFFFF => {
            f.push(bit | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(bit | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if is_masked {
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

const CONNACK_OK: [u8; 4] = [0x20, 0x02, 0x00, 0x00];

/// [MQTT-6.0.0-2]: a CONNECT split over three frames (one of them a continuation of a
/// fragmented message, sent byte by byte), then SUBSCRIBE and PUBLISH combined in one
/// frame: the broker reassembles and splits as needed.
#[test]
fn packets_split_across_and_combined_in_frames() {
    let (_broker, port) = ws_broker("", "");
    let mut ws = WsRaw::open(port);
    let connect = connect_packet("ws-raw", true, 60);
    let (a, rest) = connect.split_at(3);
    let (b, c) = rest.split_at(5);
    ws.send_frame(0x82, a, true);
    ws.send_frame(0x02, b, true); // a message of two frames: FIN unset...
    for byte in frame(0x80, c, true) {
        ws.stream.write_all(&[byte]).unwrap(); // ...and its continuation, a byte a write
        ws.stream.flush().unwrap();
    }
    assert_eq!(ws.read_mqtt(4), CONNACK_OK);
    let mut both = subscribe_packet(1, "t/#", 0);
    both.extend(publish_packet(b"t/x", 0, false, false, 0, b"hello"));
    ws.send_frame(0x82, &both, true);
    let expected_publish = publish_packet(b"t/x", 0, false, false, 0, b"hello");
    let got = ws.read_mqtt(5 + expected_publish.len());
    assert_eq!(hex(&got[..5]), hex(&[0x90, 0x03, 0x00, 0x01, 0x00]));
    assert_eq!(hex(&got[5..]), hex(&expected_publish));
}

/// RFC 6455 5.1: a client frame without a mask is a protocol error: close 1002.
#[test]
fn unmasked_client_frame_is_closed_with_1002() {
    let (_broker, port) = ws_broker("", "");
    let mut ws = WsRaw::open(port);
    ws.send_frame(0x82, &connect_packet("unmasked", true, 60), false);
    ws.expect_close(1002);
}

/// [MQTT-6.0.0-1]: MQTT in a text frame closes the connection (1003, unsupported data).
#[test]
fn text_frame_is_closed_with_1003() {
    let (_broker, port) = ws_broker("", "");
    let mut ws = WsRaw::open(port);
    ws.send_frame(0x81, &connect_packet("text", true, 60), true);
    ws.expect_close(1003);
}

/// A frame longer than the largest packet accepted is refused (1009) before it is read.
#[test]
fn oversized_frame_is_closed_with_1009() {
    let (_broker, port) = ws_broker("", "max_packet_size 1000");
    let mut ws = WsRaw::open(port);
    ws.send_frame(0x82, &connect_packet("big", true, 60), true);
    assert_eq!(ws.read_mqtt(4), CONNACK_OK);
    ws.stream
        .write_all(&[0x82, 0xFF, 0, 0, 0, 0, 0x10, 0, 0, 0, 1, 2, 3, 4])
        .unwrap();
    ws.expect_close(1009);
}

/// RFC 6455 5.5.2/5.5.3: a ping (also between the frames of a message) is answered with
/// a pong carrying its payload; 5.5.1: a close is answered with a close, then the TCP
/// connection ends; the will is published, as for a lost TCP connection.
#[test]
fn ping_gets_pong_and_close_gets_close() {
    let (broker, port) = ws_broker("", "");
    let mut watcher = broker.subscriber("watcher", "will/#", QoS::AtMostOnce);
    let mut ws = WsRaw::open(port);
    let connect = crate::common::connect_packet_with(
        "with-will",
        true,
        60,
        Some(&crate::common::Will {
            topic: "will/ws",
            payload: b"gone",
            qos: 0,
            retain: false,
        }),
    );
    let (a, b) = connect.split_at(4);
    ws.send_frame(0x02, a, true);
    ws.send_frame(0x89, b"are you there", true);
    let (first, payload) = ws.read_frame();
    assert_eq!((first, payload), (0x8A, b"are you there".to_vec()));
    ws.send_frame(0x80, b, true);
    assert_eq!(ws.read_mqtt(4), CONNACK_OK);
    ws.send_frame(0x88, &1001u16.to_be_bytes(), true);
    ws.expect_close(1001);
    assert_eq!(&watcher.expect_publish().payload[..], b"gone");
}

/// An MQTT DISCONNECT ends the connection with a close frame 1000 before the TCP close.
#[test]
fn disconnect_is_followed_by_close_frame() {
    let (_broker, port) = ws_broker("", "");
    let mut ws = WsRaw::open(port);
    ws.send_frame(0x82, &connect_packet("bye", true, 60), true);
    assert_eq!(ws.read_mqtt(4), CONNACK_OK);
    ws.send_frame(0x82, &[0xE0, 0x00], true);
    ws.expect_close(1000);
}

/// tungstenite, an independent WebSocket implementation: its ping is answered, MQTT in
/// binary messages works, and its close handshake completes.
#[test]
fn tungstenite_client_pings_and_closes() {
    use tungstenite::client::IntoClientRequest;
    use tungstenite::Message;
    let (_broker, port) = ws_broker("", "");
    let mut request = format!("ws://127.0.0.1:{port}/mqtt")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
    let (mut socket, response) = tungstenite::client(request, WsRaw::tcp(port)).expect("handshake");
    assert_eq!(response.headers()["sec-websocket-protocol"], "mqtt");
    socket
        .send(Message::Binary(connect_packet("tung", true, 60).into()))
        .unwrap();
    socket.send(Message::Ping(b"p1".to_vec().into())).unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match socket.read().expect("a message") {
            Message::Binary(b) => seen.push(format!("binary {}", hex(&b))),
            Message::Pong(p) => seen.push(format!("pong {}", String::from_utf8_lossy(&p))),
            other => panic!("unexpected {other:?}"),
        }
    }
    seen.sort();
    assert_eq!(seen, ["binary 20 02 00 00", "pong p1"]);
    socket.close(None).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(
            Instant::now() < deadline,
            "close handshake did not complete"
        );
        match socket.read() {
            Ok(Message::Close(_)) | Ok(_) => continue,
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("close handshake: {e}"),
        }
    }
}

/// Sends `request` and returns the response head and body; the broker then closes.
fn http(port: u16, request: &str) -> (String, Vec<u8>) {
    let mut ws = WsRaw {
        stream: WsRaw::tcp(port),
        buf: Vec::new(),
    };
    ws.stream.write_all(request.as_bytes()).unwrap();
    let head = ws.read_head();
    let mut body = std::mem::take(&mut ws.buf);
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(
            Instant::now() < deadline,
            "the connection was not closed after the response"
        );
        match ws.stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the connection was not closed after the response")
            }
            Err(_) => break,
        }
    }
    (head, body)
}

/// Bad handshakes get their HTTP status and a close (RFC 6455 4.2.1, 4.4); a client
/// connected meanwhile is not disturbed.
#[test]
fn bad_handshakes_get_http_errors_and_a_close() {
    let (_broker, port) = ws_broker("", "websockets_headers_size 1024");
    let (client, mut conn) = connect(ws_options("bystander", port)).unwrap();
    client.subscribe("still/here", QoS::AtMostOnce).unwrap();
    wait_suback(&mut conn);
    let ok = upgrade_request("");
    let cases = [
        (
            ok.replace("GET", "POST"),
            "405 Method Not Allowed",
            "\r\nAllow: GET\r\n",
        ),
        (
            ok.replace("Version: 13", "Version: 8"),
            "426 Upgrade Required",
            "\r\nSec-WebSocket-Version: 13\r\n",
        ),
        (
            ok.replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), ""),
            "400 Bad Request",
            "",
        ),
        (
            ok.replace("Connection: Upgrade", "Connection: keep-alive"),
            "400 Bad Request",
            "",
        ),
        (
            upgrade_request(&format!("Cookie: {}\r\n", "c".repeat(2000))),
            "431 Request Header Fields Too Large",
            "",
        ),
        (
            upgrade_request("")
                .replace("GET /mqtt", "GET /index.html")
                .replace("Upgrade: websocket\r\n", ""),
            "404 Not Found",
            "",
        ),
    ];
    for (request, status, header) in cases {
        let (head, _) = http(port, &request);
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status}\r\n")),
            "{request}\n=> {head}"
        );
        assert!(head.contains(header), "{head}");
        assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
    }
    client
        .publish("still/here", QoS::AtMostOnce, false, b"yes".to_vec())
        .unwrap();
    assert_eq!(
        &wait_publish(&mut conn, |_| true)
            .expect("bystander unaffected")
            .payload[..],
        b"yes"
    );
}

/// websockets_origin: only the listed origins may upgrade; others get 403.
#[test]
fn websockets_origin_is_enforced() {
    let (_broker, port) = ws_broker("websockets_origin http://gateway.local\n", "");
    let (head, _) = http(port, &upgrade_request("Origin: http://evil.example\r\n"));
    assert!(head.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{head}");
    let (head, _) = http(port, &upgrade_request(""));
    assert!(head.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{head}");
    let mut ws = WsRaw {
        stream: WsRaw::tcp(port),
        buf: Vec::new(),
    };
    ws.stream
        .write_all(upgrade_request("Origin: http://gateway.local\r\n").as_bytes())
        .unwrap();
    assert!(ws.read_head().starts_with("HTTP/1.1 101 "));
}

/// http_dir serves files with their Content-Type, 404 for what is missing, and nothing
/// outside the directory, however the path is spelled.
#[test]
fn http_dir_serves_static_files_inside_it_only() {
    let dir = std::env::temp_dir().join(format!("culex-ws-http-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("js")).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>dashboard</h1>").unwrap();
    std::fs::write(dir.join("js/app.js"), "let x = 1;").unwrap();
    std::fs::write(dir.with_extension("secret"), "secret").unwrap();
    let (_broker, port) = ws_broker(&format!("http_dir {}\n", dir.display()), "");
    let get = |path: &str| http(port, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
    let (head, body) = get("/");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\nContent-Type: text/html; charset=utf-8\r\n"),
        "{head}"
    );
    assert_eq!(body, b"<h1>dashboard</h1>");
    let (head, body) = get("/js/app.js?v=2");
    assert!(
        head.contains("\r\nContent-Type: text/javascript; charset=utf-8\r\n"),
        "{head}"
    );
    assert_eq!(body, b"let x = 1;");
    assert!(get("/nothing.css").0.starts_with("HTTP/1.1 404 "));
    let secret = format!(
        "/../{}",
        dir.with_extension("secret")
            .file_name()
            .unwrap()
            .to_string_lossy()
    );
    for evil in [
        secret.clone(),
        secret.replace("..", "%2e%2e"),
        secret.replace("/..", "/js/../.."),
    ] {
        let (head, body) = get(&evil);
        assert!(head.starts_with("HTTP/1.1 400 "), "{evil} => {head}");
        assert!(!String::from_utf8_lossy(&body).contains("secret"));
    }
    // The same listener still upgrades to WebSockets.
    let mut ws = WsRaw::open(port);
    ws.send_frame(0x82, &connect_packet("after-http", true, 60), true);
    assert_eq!(ws.read_mqtt(4), CONNACK_OK);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_file(dir.with_extension("secret")).unwrap();
}

/// certfile/keyfile on a websockets listener: WebSockets over TLS (wss).
#[test]
fn secure_websockets_carry_mqtt() {
    let pki = crate::tls::Pki::new("wss");
    let port = candidate_port();
    let _broker = Broker::start(&format!(
        "listener {port} 127.0.0.1\nprotocol websockets\n{}",
        pki.listener_conf("")
    ));
    let config = pki.client_config(None, &[&rustls::version::TLS13]);
    let mut options = MqttOptions::new("wss-client", format!("wss://127.0.0.1:{port}/mqtt"), port);
    options.set_max_packet_size(1 << 20, 1 << 20);
    options.set_transport(Transport::wss_with_config(
        rumqttc::TlsConfiguration::Rustls(config),
    ));
    let (client, mut conn) = connect(options).expect("wss client accepted");
    client.subscribe("wss/t", QoS::AtLeastOnce).unwrap();
    wait_suback(&mut conn);
    client
        .publish("wss/t", QoS::AtLeastOnce, false, vec![7u8; 20_000])
        .unwrap();
    let p = wait_publish(&mut conn, |_| true).expect("message over wss");
    assert_eq!(p.payload.len(), 20_000);
}

/// With `persistence_sync ack`, a QoS 1 PUBLISH over WebSockets is acknowledged once its
/// record is synced, like over TCP: the PUBACK frame comes, and the journal holds it.
#[test]
fn qos1_over_websockets_is_acknowledged_with_persistence_sync_ack() {
    let dir = std::env::temp_dir().join(format!("culex-ws-persist-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = candidate_port();
    let _broker = Broker::start_culex(&format!(
        "persistence true\npersistence_location {}\npersistence_sync ack\n\
         listener {port} 127.0.0.1\nprotocol websockets\n",
        dir.display()
    ));
    let mut ws = WsRaw::open(port);
    ws.send_frame(0x82, &connect_packet("ws-durable", true, 60), true);
    assert_eq!(ws.read_mqtt(4), CONNACK_OK);
    ws.send_frame(
        0x82,
        &publish_packet(b"kept/ws", 1, true, false, 7, b"on disk"),
        true,
    );
    assert_eq!(hex(&ws.read_mqtt(4)), hex(&[0x40, 0x02, 0x00, 0x07]));
    let journal = std::fs::read(dir.join("culex.db.journal")).expect("the journal");
    assert!(
        journal.windows(7).any(|w| w == b"on disk"),
        "the acknowledged message is in the journal"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
