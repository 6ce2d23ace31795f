//! Logging as mosquitto.conf configures it: `log_dest file` (reopened on SIGHUP and
//! SIGRTMIN), `log_dest topic`, `log_type`, `log_timestamp`, `log_timestamp_format`, and
//! the `-q` command-line flag. Lines are Mosquitto's, which users grep for.
//!
//! Log files live in a world-writable directory of the test's own: Mosquitto started as
//! root drops to the `mosquitto` user before it opens its log file.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rumqttc::QoS;

use crate::common::{eventually, Broker, QUIET, WAIT};

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A directory anyone may write to, removed on drop.
struct LogDir(PathBuf);

impl LogDir {
    fn new() -> LogDir {
        let dir = std::env::temp_dir().join(format!(
            "culex-logtest-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).expect("create the log directory");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777))
            .expect("make the log directory writable for the broker's user");
        LogDir(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for LogDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// The connection notice for a rumqttc client of `Broker::client` (MQTT 3.1.1, clean
/// session, keep alive 60 s, no user name), after the peer's port: Mosquitto's protocol
/// number (`mosq_p_mqtt311` = 2), which culex writes too.
fn connected_suffix(client_id: &str) -> String {
    format!(" as {client_id} (p2, c1, k60).")
}

/// The line of `text` announcing `client_id`'s connection, once it is there.
fn connect_line(path: &Path, client_id: &str) -> String {
    let suffix = connected_suffix(client_id);
    let mut found = None;
    eventually(WAIT, || {
        found = read(path)
            .lines()
            .find(|l| l.contains("New client connected from ") && l.ends_with(&suffix))
            .map(str::to_string);
        found.is_some()
    });
    found.unwrap_or_else(|| {
        panic!(
            "no connection line for {client_id} in {}:\n{}",
            path.display(),
            read(path)
        )
    })
}

/// `log_dest file` appends lines stamped with Unix time: "<seconds>: New client connected
/// from 127.0.0.1:<port> as <id> (p2, c1, k60)." as Mosquitto writes them.
#[test]
fn log_file_gets_mosquitto_style_connection_lines() {
    let dir = LogDir::new();
    let path = dir.file("broker.log");
    let broker = Broker::start(&format!("log_dest file {}", path.display()));
    let _client = broker.client("file-client");
    let line = connect_line(&path, "file-client");
    let (stamp, message) = line.split_once(": ").expect("a time stamp, then ': '");
    let seconds: u64 = stamp.parse().expect("Unix time in seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(seconds) < 60, "stamp {seconds}, now {now}");
    let peer = message
        .strip_prefix("New client connected from 127.0.0.1:")
        .and_then(|rest| rest.strip_suffix(&connected_suffix("file-client")))
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    assert!(peer.parse::<u16>().is_ok(), "peer port {peer:?}");
    // The file is the only destination: nothing on stderr or stdout.
    assert!(
        !broker.log_text().contains("New client connected"),
        "{}",
        broker.log_text()
    );
}

/// logrotate moves the file and sends SIGHUP: the broker reopens the path and writes
/// new lines to a new file, none to the moved one.
#[test]
fn moved_log_file_is_reopened_on_sighup() {
    moved_log_file_is_reopened_on("HUP");
}

/// Mosquitto 2.1 reopens its log file on SIGRTMIN without reloading the configuration.
/// Mosquitto 2.0 does not handle SIGRTMIN (its default action ends the process), so
/// this runs against culex only.
#[test]
fn moved_log_file_is_reopened_on_sigrtmin() {
    if Broker::is_mosquitto() {
        return;
    }
    moved_log_file_is_reopened_on("RTMIN");
}

fn moved_log_file_is_reopened_on(signal: &str) {
    let dir = LogDir::new();
    let path = dir.file("broker.log");
    let moved = dir.file("broker.log.1");
    let broker = Broker::start(&format!("log_dest file {}", path.display()));
    let _first = broker.client("before-rotation");
    connect_line(&path, "before-rotation");
    fs::rename(&path, &moved).expect("move the log file away");
    broker.signal(signal);
    assert!(
        eventually(WAIT, || path.exists()),
        "no new log file after SIG{signal}"
    );
    let _second = broker.client("after-rotation");
    connect_line(&path, "after-rotation");
    assert!(!read(&path).contains("before-rotation"), "{}", read(&path));
    assert!(read(&moved).contains("before-rotation"));
    assert!(!read(&moved).contains("after-rotation"), "{}", read(&moved));
}

/// `log_dest topic`: notices are published on `$SYS/broker/log/N`, not retained, at
/// QoS 2 as Mosquitto publishes them (the subscriber asked for 2).
#[test]
fn log_dest_topic_publishes_connection_notices() {
    let broker = Broker::start("log_dest topic");
    let mut sub = broker.subscriber("log-watcher", "$SYS/broker/log/#", QoS::ExactlyOnce);
    let _client = broker.client("topic-client");
    let suffix = connected_suffix("topic-client");
    let deadline = std::time::Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Some(publish) = sub.next_publish(left) else {
            panic!("no connection notice on $SYS/broker/log/N; got {seen:#?}");
        };
        let text = String::from_utf8_lossy(&publish.payload).into_owned();
        if text.contains("New client connected from 127.0.0.1:") && text.ends_with(&suffix) {
            assert_eq!(publish.topic, "$SYS/broker/log/N");
            assert!(!publish.retain);
            assert_eq!(publish.qos, QoS::ExactlyOnce);
            // Stamped with Unix time, as in the file.
            let stamp = text.split_once(": ").map(|(s, _)| s).unwrap_or("");
            assert!(stamp.parse::<u64>().is_ok(), "payload {text:?}");
            break;
        }
        seen.push((publish.topic, text));
    }
}

/// `log_type subscribe` lines go to `$SYS/broker/log/M/subscribe` as "<client id> <qos>
/// <filter>".
#[test]
fn subscribe_lines_are_published_under_m() {
    let broker = Broker::start("log_dest topic\nlog_type subscribe");
    let mut sub = broker.subscriber("watcher", "$SYS/broker/log/M/#", QoS::AtMostOnce);
    let mut other = broker.client("subscriber-2");
    other.subscribe("a/b", QoS::AtLeastOnce);
    let mut seen = Vec::new();
    loop {
        let Some(publish) = sub.next_publish(WAIT) else {
            panic!("no subscribe line; got {seen:#?}");
        };
        let text = String::from_utf8_lossy(&publish.payload).into_owned();
        if text.ends_with("subscriber-2 1 a/b") {
            assert_eq!(publish.topic, "$SYS/broker/log/M/subscribe");
            break;
        }
        seen.push((publish.topic, text));
    }
}

/// `log_type none`: the file is opened but stays empty.
#[test]
fn log_type_none_writes_nothing() {
    let dir = LogDir::new();
    let path = dir.file("broker.log");
    let broker = Broker::start(&format!("log_dest file {}\nlog_type none", path.display()));
    let client = broker.client("quiet-client");
    client.disconnect();
    std::thread::sleep(QUIET);
    assert!(path.exists(), "the log file is created");
    assert_eq!(read(&path), "");
}

/// `log_timestamp false`: the line is the message alone.
#[test]
fn log_timestamp_false_writes_bare_lines() {
    let dir = LogDir::new();
    let path = dir.file("broker.log");
    let broker = Broker::start(&format!(
        "log_dest file {}\nlog_timestamp false",
        path.display()
    ));
    let _client = broker.client("bare");
    let line = connect_line(&path, "bare");
    assert!(
        line.starts_with("New client connected from 127.0.0.1:"),
        "{line:?}"
    );
}

/// `log_timestamp_format` is a strftime format in local time.
#[test]
fn log_timestamp_format_is_strftime() {
    let dir = LogDir::new();
    let path = dir.file("broker.log");
    let broker = Broker::start(&format!(
        "log_dest file {}\nlog_timestamp_format %Y-%m-%dT%H:%M:%S",
        path.display()
    ));
    let _client = broker.client("stamped");
    let line = connect_line(&path, "stamped");
    let (stamp, message) = line.split_once(": ").expect("a time stamp, then ': '");
    assert!(message.starts_with("New client connected"), "{line:?}");
    let b = stamp.as_bytes();
    assert_eq!(b.len(), 19, "{stamp:?}");
    for (i, c) in b.iter().enumerate() {
        match i {
            4 | 7 => assert_eq!(*c, b'-', "{stamp:?}"),
            10 => assert_eq!(*c, b'T', "{stamp:?}"),
            13 | 16 => assert_eq!(*c, b':', "{stamp:?}"),
            _ => assert!(c.is_ascii_digit(), "{stamp:?}"),
        }
    }
}

/// The local time of `log_timestamp_format` is the zone `TZ` names, as tzset(3) reads
/// it: a POSIX rule here (no tzdata needed), Japan's nine hours east of UTC all year.
#[test]
fn log_timestamp_format_follows_tz() {
    let dir = LogDir::new();
    let path = dir.file("broker.log");
    let broker = Broker::start_with_env(
        &format!("log_dest file {}\nlog_timestamp_format %z", path.display()),
        &[("TZ", "JST-9")],
    );
    let _client = broker.client("zoned");
    let line = connect_line(&path, "zoned");
    assert!(line.starts_with("+0900: New client connected"), "{line:?}");
}

/// SIGUSR1 (write the persistence file) and SIGUSR2 (print the subscription tree) do
/// not stop the broker.
#[test]
fn sigusr1_and_sigusr2_leave_the_broker_running() {
    let broker = Broker::start("");
    broker.signal("USR1");
    broker.signal("USR2");
    std::thread::sleep(QUIET);
    let _client = broker.client("still-there");
}

/// `-q` (Mosquitto 2.1): no logging at all, not even the start-up lines on stderr.
/// Mosquitto 2.0 has no -q, so this runs against culex only.
#[test]
fn quiet_flag_logs_nothing() {
    if Broker::is_mosquitto() {
        return;
    }
    let broker = Broker::start_with_args("log_type all", &["-q"]);
    let client = broker.client("unheard");
    client.disconnect();
    std::thread::sleep(QUIET);
    assert_eq!(broker.log_text(), "");
}

/// The lines of the log file at `path`, without their time stamps, once `line` is there.
fn messages_once(path: &Path, line: &str) -> Vec<String> {
    let messages = || -> Vec<String> {
        read(path)
            .lines()
            .map(|l| l.split_once(": ").map_or(l, |(_, m)| m).to_string())
            .collect()
    };
    eventually(WAIT, || messages().iter().any(|m| m == line));
    let all = messages();
    assert!(
        all.iter().any(|m| m == line),
        "no line {line:?} in {}:\n{}",
        path.display(),
        all.join("\n")
    );
    all
}

/// Mosquitto 2.0's connection lines, which fail2ban filters and log monitors match, with
/// its default log types: "New connection from IP:PORT on port N." (a notice, not a
/// debug line), "Client ID disconnected, not authorised." for a refused login, and
/// "Client ID disconnected." after DISCONNECT; "culex version X running" once started.
#[test]
fn connection_lines_are_mosquittos() {
    let dir = LogDir::new();
    let path = dir.file("broker.log");
    let passwords = crate::auth::TempFile::new("pw", &crate::auth::password_line("u", "right"));
    let broker = Broker::start(&format!(
        "log_dest file {}\npassword_file {}\nallow_anonymous false",
        path.display(),
        passwords.path()
    ));
    let version = format!("version {} running", env!("CARGO_PKG_VERSION"));
    if !Broker::is_mosquitto() {
        messages_once(&path, &format!("culex {version}"));
    }
    assert_eq!(
        crate::auth::connect_code(&broker, "intruder", Some(("u", "wrong"))),
        rumqttc::ConnectReturnCode::NotAuthorized
    );
    let lines = messages_once(&path, "Client intruder disconnected, not authorised.");
    let port = broker.port;
    assert!(
        lines
            .iter()
            .any(|m| m.starts_with("New connection from 127.0.0.1:")
                && m.ends_with(&format!(" on port {port}."))),
        "{lines:#?}"
    );
    let mut options = broker.options("polite");
    options.set_credentials("u", "right");
    let (peer, _) = crate::common::Peer::connect(options);
    peer.disconnect();
    messages_once(&path, "Client polite disconnected.");
}

/// Mosquitto logs a take-over ("Client ID already connected, closing old connection.")
/// at error level: it is published on `$SYS/broker/log/E`.
#[test]
fn take_over_is_logged_as_an_error() {
    let broker = Broker::start("log_dest topic");
    let mut sub = broker.subscriber("log-watcher", "$SYS/broker/log/E", QoS::AtMostOnce);
    let _first = broker.client("twin");
    let _second = broker.client("twin");
    let publish = sub
        .next_publish(WAIT)
        .expect("an error line on $SYS/broker/log/E");
    let text = String::from_utf8_lossy(&publish.payload).into_owned();
    assert!(
        text.ends_with(": Client twin already connected, closing old connection."),
        "{text:?}"
    );
}

/// `log_type all` writes Mosquitto's per-packet trace (debug level): a QoS 1 message from
/// one rumqttc client to another shows as Mosquitto 2.0 writes it, so log readers and
/// habits from Mosquitto's `-v` work.
#[test]
fn log_type_all_traces_packets_in_mosquitto_words() {
    let dir = LogDir::new();
    let path = dir.file("trace.log");
    let broker = Broker::start(&format!("log_dest file {}\nlog_type all", path.display()));
    let mut sub = broker.subscriber("trace-sub", "trace/#", QoS::AtLeastOnce);
    let mut publisher = broker.client("trace-pub");
    publisher.publish("trace/t", QoS::AtLeastOnce, false, b"12345");
    assert!(sub.next_publish(WAIT).is_some(), "the message arrives");
    let wanted = [
        "Received SUBSCRIBE from trace-sub",
        "\ttrace/# (QoS 1)",
        "Sending SUBACK to trace-sub",
        "Received PUBLISH from trace-pub (d0, q1, r0, m1, 'trace/t', ... (5 bytes))",
        "Sending PUBACK to trace-pub (m1, rc0)",
        "Sending PUBLISH to trace-sub (d0, q1, r0, m1, 'trace/t', ... (5 bytes))",
        "Received PUBACK from trace-sub (Mid: 1, RC:0)",
    ];
    eventually(WAIT, || {
        let text = read(&path);
        wanted.iter().all(|w| text.lines().any(|l| l.ends_with(w)))
    });
    let text = read(&path);
    for w in wanted {
        assert!(
            text.lines().any(|l| l.ends_with(w)),
            "no line ending {w:?} in:\n{text}"
        );
    }
}
