//! `protocol http_api` listeners (#22): Mosquitto 2.1's endpoints with its JSON shapes
//! (`src/http_api.c`), 404 for unknown paths, HTTP basic authentication from the
//! password file, HTTPS with certfile/keyfile, culex's Prometheus `/metrics` with a
//! bridge's series, and the bounds the WebSocket listener's HTTP code puts on a request
//! head and on a client that never finishes it. Real sockets, raw HTTP/1.1.

use crate::auth::{password_line, TempFile};
use crate::common::{candidate_port, Broker, WAIT};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A broker (culex: Mosquitto 2.0 has no http_api) with its MQTT test listener and an
/// http_api listener with `extra` after `protocol http_api`; `global` goes first.
fn api_broker(extra: &str, global: &str) -> (Broker, u16) {
    let port = candidate_port();
    let broker = Broker::start_culex(&format!(
        "{global}\nlistener {port} 127.0.0.1\nprotocol http_api\n{extra}\n"
    ));
    (broker, port)
}

/// Reads the whole response from `stream` until the broker closes it: (head, body).
fn read_response(stream: &mut impl Read) -> (String, Vec<u8>) {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "the response did not end");
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the connection was not closed after the response")
            }
            Err(_) => break,
        }
    }
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(&bytes)));
    let head = String::from_utf8_lossy(&bytes[..end + 4]).into_owned();
    (head, bytes[end + 4..].to_vec())
}

/// Sends `request` and returns the response head and body.
fn http(port: u16, request: &str) -> (String, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    read_response(&mut stream)
}

fn get(port: u16, path: &str) -> (String, Vec<u8>) {
    http(port, &format!("GET {path} HTTP/1.1\r\nHost: gw\r\n\r\n"))
}

/// JSON without the whitespace between tokens (the strings compared hold none).
fn compact(json: &[u8]) -> String {
    String::from_utf8_lossy(json)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// The 2.1 endpoints: the version as text, the listeners and the $SYS tree as JSON of
/// Mosquitto's shapes, with `Access-Control-Allow-Origin: *`; 404 for other paths (no
/// `http_dir`), 405 for other methods. An MQTT client on the other listener is counted.
#[test]
fn api_endpoints_answer_with_mosquittos_json_shapes() {
    let (broker, port) = api_broker("", "");
    let _client = broker.client("counted");

    let (head, body) = get(port, "/api/v1/version");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\nAccess-Control-Allow-Origin: *\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
    assert_eq!(body, env!("CARGO_PKG_VERSION").as_bytes());

    let (head, body) = get(port, "/api/v1/listeners");
    assert!(
        head.contains("\r\nContent-Type: application/json\r\n"),
        "{head}"
    );
    assert_eq!(
        compact(&body),
        format!(
            "{{\"listeners\":[\
             {{\"port\":{},\"protocol\":\"mqtt\",\"tls\":false,\"mtls\":false,\"allow_anonymous\":true}},\
             {{\"port\":{port},\"protocol\":\"httpapi\",\"tls\":false,\"mtls\":false,\"allow_anonymous\":true}}]}}",
            broker.port
        )
    );

    let (head, body) = get(port, "/api/v1/systree");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let tree = compact(&body);
    assert!(tree.starts_with('{') && tree.ends_with('}'), "{tree}");
    // Every member is "$SYS/...": a whole number.
    for member in tree[1..tree.len() - 1].split(',') {
        let (key, value) = member.split_once("\":").expect(member);
        assert!(key.starts_with("\"$SYS/broker/"), "{member}");
        assert!(value.parse::<u64>().is_ok(), "{member}");
    }
    assert!(tree.contains("\"$SYS/broker/uptime\":"), "{tree}");
    assert!(
        tree.contains("\"$SYS/broker/clients/connected\":1"),
        "{tree}"
    );
    assert!(
        !tree.contains("version"),
        "text values are left out: {tree}"
    );

    for path in ["/api/v1/nothing", "/api/v2/version", "/", "/index.html"] {
        let (head, body) = get(port, path);
        assert!(
            head.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{path}: {head}"
        );
        assert_eq!(body, b"Not found.\n");
    }
    let (head, _) = http(port, "POST /api/v1/version HTTP/1.1\r\nHost: gw\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 405 "), "{head}");
}

/// http_dir on an http_api listener serves its files (as 2.1 does), the API next to them.
#[test]
fn http_dir_is_served_next_to_the_api() {
    let dir = std::env::temp_dir().join(format!("culex-api-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>gw</h1>").unwrap();
    let (_broker, port) = api_broker(&format!("http_dir {}", dir.display()), "");
    let (head, body) = get(port, "/");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"<h1>gw</h1>");
    assert!(get(port, "/missing.js").0.starts_with("HTTP/1.1 404 "));
    assert!(get(port, "/api/v1/version").0.starts_with("HTTP/1.1 200 "));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A request head over `websockets_headers_size` gets 431 and a close, and a client that
/// never finishes its head is closed by the CONNECT timeout (10 s), as on WebSocket
/// listeners; the API keeps answering others meanwhile.
#[test]
fn an_overlong_head_and_a_slow_client_are_bounded() {
    let (_broker, port) = api_broker("", "websockets_headers_size 1024");
    let (head, _) = http(
        port,
        &format!(
            "GET /metrics HTTP/1.1\r\nCookie: {}\r\n\r\n",
            "c".repeat(2000)
        ),
    );
    assert!(
        head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{head}"
    );

    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost:").unwrap();
    let started = Instant::now();
    assert!(get(port, "/api/v1/version").0.starts_with("HTTP/1.1 200 "));
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 64];
    let n = slow.read(&mut buf).unwrap_or(0);
    let waited = started.elapsed();
    assert_eq!(n, 0, "the slow client got {:?}", &buf[..n]);
    assert!(
        waited >= Duration::from_secs(8) && waited < Duration::from_secs(16),
        "closed after {waited:?}"
    );
}

/// With `allow_anonymous false`, a request needs a user of the password file in HTTP
/// basic credentials (RFC 7617), as a CONNECT would: 401 with a Basic challenge without
/// them or with a wrong password, 200 with the right ones.
#[test]
fn basic_authentication_uses_the_password_file() {
    let passwords = TempFile::new("http-passwd", &password_line("prom", "scrape me"));
    let (_broker, port) = api_broker(
        "",
        &format!("allow_anonymous false\npassword_file {}", passwords.path()),
    );
    let with = |credentials: &str| {
        http(
            port,
            &format!("GET /metrics HTTP/1.1\r\nHost: gw\r\n{credentials}\r\n"),
        )
    };
    let (head, body) = with("");
    assert!(head.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{head}");
    assert!(
        head.contains("\r\nWWW-Authenticate: Basic realm=\"culex API\""),
        "{head}"
    );
    assert_eq!(body, b"Not authorised\n");
    // "prom:wrong" and "prom:scrape me".
    let (head, _) = with("Authorization: Basic cHJvbTp3cm9uZw==\r\n");
    assert!(head.starts_with("HTTP/1.1 401 "), "{head}");
    let (head, body) = with("Authorization: Basic cHJvbTpzY3JhcGUgbWU=\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("culex_clients_connected"));
}

/// certfile/keyfile make the http_api listener HTTPS; `tls` is true in its listing.
#[test]
fn certfile_and_keyfile_serve_the_api_over_https() {
    let pki = crate::tls::Pki::new("https-api");
    let (_broker, port) = api_broker(&pki.listener_conf(""), "");
    let config = pki.client_config(None, &[&rustls::version::TLS13]);
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(Arc::clone(&config), name).unwrap();
    let socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, socket);
    tls.write_all(b"GET /api/v1/listeners HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let (head, body) = read_response(&mut tls);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        compact(&body).contains(&format!(
            "{{\"port\":{port},\"protocol\":\"httpapi\",\"tls\":true,\"mtls\":false"
        )),
        "{}",
        compact(&body)
    );
}

/// Checks the text exposition format line by line: each family has HELP and TYPE before
/// its samples, names follow the conventions of their type, and every sample's value is
/// a number. Returns the samples (line without the value, value).
fn parse_exposition(text: &str) -> Vec<(String, f64)> {
    let mut typed: Vec<(String, String)> = Vec::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect(line);
            assert!(!typed.iter().any(|(n, _)| n == name), "{name} typed twice");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter {name} without _total");
            }
            typed.push((name.to_string(), kind.to_string()));
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
        let (series, value) = line.rsplit_once(' ').expect(line);
        let name = series.split('{').next().unwrap();
        assert_eq!(
            typed.last().map(|(n, _)| n.as_str()),
            Some(name),
            "{line}: not under its TYPE line"
        );
        samples.push((series.to_string(), value.parse::<f64>().expect(line)));
    }
    samples
}

/// /metrics: the Prometheus text format with the broker's, the listeners', the bridge's
/// (down, so its backlog waits) and the process's series.
#[test]
fn metrics_show_broker_listener_bridge_and_process_series() {
    let dead = candidate_port(); // nothing listens there
    let (broker, port) = api_broker(
        "",
        &format!(
            "connection cloud\naddress 127.0.0.1:{dead}\nremote_clientid gw1\n\
             restart_timeout 1\ntopic data/# out 1"
        ),
    );
    let mut publisher = broker.client("pub");
    for i in 0..3 {
        publisher.publish("data/x", rumqttc::QoS::AtLeastOnce, false, &[b'0' + i]);
    }
    let value = |samples: &[(String, f64)], series: &str| {
        samples
            .iter()
            .find(|(s, _)| s == series)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no {series}"))
    };
    let deadline = Instant::now() + WAIT;
    let samples = loop {
        let (head, body) = get(port, "/metrics");
        assert!(
            head.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            "{head}"
        );
        let samples = parse_exposition(&String::from_utf8(body).unwrap());
        if value(&samples, "culex_bridge_backlog_messages{bridge=\"cloud\"}") == 3.0
            || Instant::now() > deadline
        {
            break samples;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        value(&samples, "culex_bridge_backlog_messages{bridge=\"cloud\"}"),
        3.0
    );
    assert_eq!(
        value(&samples, "culex_bridge_backlog_bytes{bridge=\"cloud\"}"),
        3.0
    );
    assert_eq!(value(&samples, "culex_bridge_up{bridge=\"cloud\"}"), 0.0);
    assert_eq!(
        value(
            &samples,
            "culex_bridge_dropped_messages_total{bridge=\"cloud\",cause=\"full\"}"
        ),
        0.0
    );
    let info = samples
        .iter()
        .find(|(s, _)| s.starts_with("culex_bridge_info{bridge=\"cloud\""))
        .expect("culex_bridge_info");
    assert!(
        info.0.contains(&format!("address=\"127.0.0.1:{dead}\"")),
        "{}",
        info.0
    );
    assert!(value(&samples, "culex_clients_connected") >= 1.0);
    assert!(value(&samples, "culex_messages_received_total") >= 3.0);
    assert_eq!(
        value(
            &samples,
            &format!(
                "culex_listener_connections{{listener=\"127.0.0.1:{}\",protocol=\"mqtt\"}}",
                broker.port
            )
        ),
        1.0
    );
    assert!(value(&samples, "process_resident_memory_bytes") > 1e5);
    assert!(value(&samples, "process_cpu_seconds_total") >= 0.0);
    assert!(value(&samples, "process_start_time_seconds") > 1.6e9);
}
