//! Listener options beyond port and address: Unix socket listeners (`listener 0 PATH`),
//! `mount_point`, `socket_domain`. The options are Mosquitto's, so these tests also run
//! against Mosquitto.

use crate::common::{connect_packet, publish_packet, subscribe_packet, Broker, WAIT};
use rumqttc::QoS;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A socket path of this test's own (Unix socket paths are limited to 108 bytes, so not
/// under a deep directory).
fn socket_path() -> PathBuf {
    std::env::temp_dir().join(format!(
        "culex-{}-{}.sock",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// A raw MQTT 3.1.1 client over a Unix socket.
struct UnixRaw(UnixStream);

impl UnixRaw {
    fn connect(path: &PathBuf, client_id: &str) -> UnixRaw {
        let mut stream = UnixStream::connect(path).expect("connect to the Unix socket");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream
            .write_all(&connect_packet(client_id, true, 30))
            .unwrap();
        let mut raw = UnixRaw(stream);
        assert_eq!(raw.read_packet(), [0x20, 0x02, 0x00, 0x00], "CONNACK");
        raw
    }

    fn send(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).unwrap();
    }

    /// One whole packet (Remaining Length below 128 is enough here).
    fn read_packet(&mut self) -> Vec<u8> {
        let mut header = [0u8; 2];
        self.0.read_exact(&mut header).expect("a packet in time");
        assert!(header[1] < 0x80, "short packets only");
        let mut body = vec![0u8; usize::from(header[1])];
        self.0.read_exact(&mut body).unwrap();
        let mut out = header.to_vec();
        out.extend(body);
        out
    }
}

/// `listener 0 PATH`: MQTT over a Unix socket, exchanging messages with TCP clients.
#[test]
fn unix_socket_listener_carries_mqtt() {
    let path = socket_path();
    // A socket file left by an earlier run is replaced. (Mosquitto too, but it drops root
    // before binding and /tmp's sticky bit keeps it from removing root's file.)
    if !Broker::is_mosquitto() {
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    }
    let broker = Broker::start(&format!("listener 0 {}\n", path.display()));

    let mut unix = UnixRaw::connect(&path, "local");
    unix.send(&subscribe_packet(1, "from/tcp", 0));
    assert_eq!(unix.read_packet(), [0x90, 0x03, 0x00, 0x01, 0x00], "SUBACK");

    let mut tcp = broker.subscriber("tcp", "from/unix", QoS::AtMostOnce);
    unix.send(&publish_packet(b"from/unix", 0, false, false, 0, b"hello"));
    assert_eq!(tcp.expect_publish().payload.as_ref(), b"hello");

    tcp.publish("from/tcp", QoS::AtMostOnce, false, b"back");
    assert_eq!(
        unix.read_packet(),
        publish_packet(b"from/tcp", 0, false, false, 0, b"back")
    );
    if !Broker::is_mosquitto() {
        let log = broker.log_text();
        assert!(
            log.contains(&format!(
                "Opening unix listen socket on path {}.",
                path.display()
            )),
            "log: {log}"
        );
    }
    let _ = std::fs::remove_file(&path);
}

/// mosquitto_pub --unix and mosquitto_sub --unix against the broker, where installed.
#[test]
fn mosquitto_clients_use_the_unix_socket() {
    if Command::new("mosquitto_sub")
        .arg("--help")
        .output()
        .is_err()
    {
        eprintln!("mosquitto_sub not installed: skipped");
        return;
    }
    let path = socket_path();
    let _broker = Broker::start(&format!("listener 0 {}\n", path.display()));
    let sub = Command::new("mosquitto_sub")
        .args([
            "--unix",
            &path.display().to_string(),
            "-t",
            "u/#",
            "-C",
            "1",
        ])
        .args(["-W", "5", "-v"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run mosquitto_sub");
    // mosquitto_sub has subscribed once the broker counts its subscription; a short
    // bounded wait keeps the test simple.
    std::thread::sleep(Duration::from_millis(500));
    let status = Command::new("mosquitto_pub")
        .args([
            "--unix",
            &path.display().to_string(),
            "-t",
            "u/1",
            "-m",
            "hi",
        ])
        .status()
        .expect("run mosquitto_pub");
    assert!(status.success());
    let out = sub.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "u/1 hi\n");
    let _ = std::fs::remove_file(&path);
}

/// mount_point: a listener's clients live under a prefix. What they publish (and their
/// will) gets it, what they subscribe to is under it, and they receive topics without it.
#[test]
fn mount_point_prefixes_a_listeners_topics() {
    let path = socket_path();
    let broker = Broker::start(&format!(
        "listener 0 {}\nmount_point site/a/\n",
        path.display()
    ));
    let mut outside = broker.subscriber("outside", "#", QoS::AtMostOnce);

    let mut stream = UnixStream::connect(&path).expect("connect to the Unix socket");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let will = crate::common::Will {
        topic: "status",
        payload: b"gone",
        qos: 0,
        retain: false,
    };
    stream
        .write_all(&crate::common::connect_packet_with(
            "mounted",
            true,
            30,
            Some(&will),
        ))
        .unwrap();
    let mut inside = UnixRaw(stream);
    assert_eq!(inside.read_packet(), [0x20, 0x02, 0x00, 0x00], "CONNACK");
    inside.send(&subscribe_packet(1, "t/#", 0));
    assert_eq!(
        inside.read_packet(),
        [0x90, 0x03, 0x00, 0x01, 0x00],
        "SUBACK"
    );

    // Outside in: only topics under the mount point reach it, without the prefix.
    outside.publish("t/1", QoS::AtMostOnce, false, b"not mounted");
    outside.publish("site/a/t/1", QoS::AtMostOnce, false, b"mounted");
    // Mosquitto 2.0.11 forgets to remove the prefix (its issue #2244, fixed in 2.0.12).
    let seen_as: &[u8] = if Broker::is_mosquitto() {
        b"site/a/t/1"
    } else {
        b"t/1"
    };
    assert_eq!(
        inside.read_packet(),
        publish_packet(seen_as, 0, false, false, 0, b"mounted")
    );
    // The outside subscriber sees its own two messages first.
    assert_eq!(outside.expect_publish().topic, "t/1");
    assert_eq!(outside.expect_publish().topic, "site/a/t/1");

    // Inside out: the prefix is added.
    inside.send(&publish_packet(b"x", 0, false, false, 0, b"up"));
    let p = outside.expect_publish();
    assert_eq!(
        (p.topic.as_str(), p.payload.as_ref()),
        ("site/a/x", &b"up"[..])
    );
    drop(inside);
    let p = outside.expect_publish();
    assert_eq!(
        (p.topic.as_str(), p.payload.as_ref()),
        ("site/a/status", &b"gone"[..])
    );
    let _ = std::fs::remove_file(&path);
}
