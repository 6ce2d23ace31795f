//! Persistence: what culex acknowledged survives a clean stop and a `kill -9`, with real
//! files and real sockets. Each test runs with `persistence true` in a directory of its
//! own. Statement numbers are MQTT 3.1.1's unless marked 5.0.

use crate::common::{
    connect_packet, eventually, field, packet, publish_packet, subscribe_packet, Broker, Raw, Stop,
};
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A persistence directory removed when the test ends.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        let dir = std::env::temp_dir().join(format!(
            "culex-persist-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the persistence directory");
        Dir(dir)
    }

    fn conf(&self, extra: &str) -> String {
        format!(
            "persistence true\npersistence_location {}\n{extra}",
            self.0.display()
        )
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn connect_clean(broker: &Broker, client_id: &str, clean: bool) -> (Raw, bool) {
    let mut raw = broker.raw();
    raw.send(&connect_packet(client_id, clean, 60));
    let connack = raw.read_packet();
    assert_eq!(connack[0], 0x20, "CONNACK");
    assert_eq!(connack[3], 0, "accepted: {connack:?}");
    (raw, connack[2] & 1 == 1)
}

fn puback(id: u16) -> Vec<u8> {
    packet(0x40, &id.to_be_bytes())
}

/// Topic, payload, QoS, DUP and packet id of a 3.1.1 PUBLISH.
/// Publishes `payload` retained at QoS 1 to each of `topics` in turn (packet ids 1, 2,
/// ...), each acknowledged before the next.
fn publish_retained(p: &mut Raw, topics: impl IntoIterator<Item = String>, payload: &[u8]) {
    for (topic, id) in topics.into_iter().zip(1u16..) {
        p.send(&publish_packet(
            topic.as_bytes(),
            1,
            true,
            false,
            id,
            payload,
        ));
        p.expect(&puback(id));
    }
}

fn parse_publish(p: &[u8]) -> (String, Vec<u8>, u8, bool, u16) {
    assert_eq!(p[0] & 0xF0, 0x30, "a PUBLISH: {p:?}");
    let qos = (p[0] >> 1) & 3;
    let dup = p[0] & 8 != 0;
    let mut at = 1;
    while p[at] & 0x80 != 0 {
        at += 1;
    }
    at += 1;
    let len = usize::from(u16::from_be_bytes([p[at], p[at + 1]]));
    let topic = String::from_utf8(p[at + 2..at + 2 + len].to_vec()).unwrap();
    at += 2 + len;
    let mut id = 0;
    if qos > 0 {
        id = u16::from_be_bytes([p[at], p[at + 1]]);
        at += 2;
    }
    (topic, p[at..].to_vec(), qos, dup, id)
}

fn both_ways(test: impl Fn(Stop)) {
    test(Stop::Term);
    test(Stop::Kill);
}

/// Retained messages survive, and a cleared one stays cleared.
#[test]
fn retained_messages_survive_a_restart() {
    both_ways(|how| {
        let dir = Dir::new();
        let mut broker = Broker::start_culex(&dir.conf(""));
        let mut p = broker.raw_connected("pub");
        p.send(&publish_packet(b"s/1", 1, true, false, 1, b"21.5"));
        p.expect(&puback(1));
        p.send(&publish_packet(b"s/2", 1, true, false, 2, b"gone"));
        p.expect(&puback(2));
        p.send(&publish_packet(b"s/2", 1, true, false, 3, b""));
        p.expect(&puback(3));
        broker.restart(how);
        let mut s = broker.raw_connected("sub");
        s.send(&subscribe_packet(1, "s/#", 1));
        let got = s.read_until_quiet();
        let publishes: Vec<_> = got
            .iter()
            .filter(|p| p[0] & 0xF0 == 0x30)
            .map(|p| parse_publish(p))
            .collect();
        assert_eq!(publishes.len(), 1, "{how:?}: {publishes:?}");
        assert_eq!(publishes[0].0, "s/1");
        assert_eq!(publishes[0].1, b"21.5");
        // [MQTT-3.3.1-8]: RETAIN set on messages sent for a new subscription.
        assert!(got.iter().any(|p| p[0] == 0x33), "{how:?}: {got:?}");
    });
}

/// A persistent session keeps its subscriptions and the QoS 1/2 messages queued while it
/// was offline, in order [MQTT-3.1.2-4] [MQTT-4.6.0-6], and CONNACK says the session is
/// present [MQTT-3.2.2-2].
#[test]
fn offline_queue_and_subscriptions_survive_a_restart() {
    both_ways(|how| {
        let dir = Dir::new();
        let mut broker = Broker::start_culex(&dir.conf(""));
        let (mut s, _) = connect_clean(&broker, "gw-sub", false);
        s.send(&subscribe_packet(1, "q/#", 2));
        assert_eq!(s.read_packet()[0], 0x90);
        drop(s);
        let mut p = broker.raw_connected("pub");
        for i in 1..=10u16 {
            p.send(&publish_packet(
                b"q/x",
                1,
                false,
                false,
                i,
                &i.to_be_bytes(),
            ));
            p.expect(&puback(i));
        }
        broker.restart(how);
        let (mut s, present) = connect_clean(&broker, "gw-sub", false);
        assert!(present, "{how:?}: session present");
        for i in 1..=10u16 {
            let (topic, payload, qos, _, id) = parse_publish(&s.read_packet());
            assert_eq!((topic.as_str(), qos), ("q/x", 1));
            assert_eq!(payload, i.to_be_bytes(), "{how:?}: in order");
            s.send(&puback(id));
        }
        s.expect_silence(Duration::from_millis(300));
        // The subscription itself survived too.
        let mut p = broker.raw_connected("pub");
        p.send(&publish_packet(b"q/y", 0, false, false, 0, b"live"));
        let (topic, payload, ..) = parse_publish(&s.read_packet());
        assert_eq!((topic.as_str(), payload.as_slice()), ("q/y", &b"live"[..]));
    });
}

/// A QoS 1 message sent but not acknowledged is sent again after a restart, with DUP
/// and the same packet id. [MQTT-4.4.0-1] [MQTT-3.3.1-1]
#[test]
fn unacknowledged_qos1_is_resent_with_dup_after_a_crash() {
    let dir = Dir::new();
    let mut broker = Broker::start_culex(&dir.conf(""));
    let (mut s, _) = connect_clean(&broker, "sub", false);
    s.send(&subscribe_packet(1, "t", 1));
    assert_eq!(s.read_packet()[0], 0x90);
    let mut p = broker.raw_connected("pub");
    p.send(&publish_packet(b"t", 1, false, false, 9, b"once"));
    p.expect(&puback(9));
    let (_, payload, qos, dup, id) = parse_publish(&s.read_packet());
    assert_eq!((payload.as_slice(), qos, dup), (&b"once"[..], 1, false));
    // No PUBACK from the subscriber; the broker dies.
    broker.restart(Stop::Kill);
    drop(s);
    let (mut s, present) = connect_clean(&broker, "sub", false);
    assert!(present);
    let (_, payload, qos, dup, again) = parse_publish(&s.read_packet());
    assert_eq!(
        (payload.as_slice(), qos, dup, again),
        (&b"once"[..], 1, true, id)
    );
    s.send(&puback(id));
    s.expect_silence(Duration::from_millis(300));
}

/// QoS 2 inbound: a packet id answered with PUBREC is remembered across a crash, so the
/// publisher's resend is not delivered a second time. [MQTT-4.3.3-2]
#[test]
fn qos2_publish_awaiting_pubrel_is_not_delivered_twice_after_a_crash() {
    let dir = Dir::new();
    let mut broker = Broker::start_culex(&dir.conf(""));
    let (mut s, _) = connect_clean(&broker, "sub", false);
    s.send(&subscribe_packet(1, "t", 2));
    assert_eq!(s.read_packet()[0], 0x90);
    let (mut p, _) = connect_clean(&broker, "pub", false);
    p.send(&publish_packet(b"t", 2, false, false, 7, b"exactly once"));
    p.expect(&packet(0x50, &7u16.to_be_bytes()));
    let (_, payload, qos, _, id) = parse_publish(&s.read_packet());
    assert_eq!((payload.as_slice(), qos), (&b"exactly once"[..], 2));
    s.send(&packet(0x50, &id.to_be_bytes()));
    assert_eq!(s.read_packet(), packet(0x62, &id.to_be_bytes()), "PUBREL");
    s.send(&packet(0x70, &id.to_be_bytes()));
    // A PINGREQ round trip: the PUBCOMP was handled before the kill.
    s.send(&[0xC0, 0x00]);
    s.expect(&[0xD0, 0x00]);
    broker.restart(Stop::Kill);
    drop((s, p));
    let (mut s, present) = connect_clean(&broker, "sub", false);
    assert!(present);
    let (mut p, present) = connect_clean(&broker, "pub", false);
    assert!(present);
    // The publisher did not see PUBCOMP: it resends the PUBLISH with DUP, then PUBREL.
    p.send(&publish_packet(b"t", 2, false, true, 7, b"exactly once"));
    p.expect(&packet(0x50, &7u16.to_be_bytes()));
    p.send(&packet(0x62, &7u16.to_be_bytes()));
    p.expect(&packet(0x70, &7u16.to_be_bytes()));
    s.expect_silence(Duration::from_millis(500));
}

/// QoS 2 outbound: after PUBREC the broker owes PUBREL, not the message, also after a
/// crash. [MQTT-4.4.0-1] [MQTT-4.3.3-1]
#[test]
fn qos2_pubrel_state_survives_a_crash() {
    let dir = Dir::new();
    let mut broker = Broker::start_culex(&dir.conf(""));
    let (mut s, _) = connect_clean(&broker, "sub", false);
    s.send(&subscribe_packet(1, "t", 2));
    assert_eq!(s.read_packet()[0], 0x90);
    let mut p = broker.raw_connected("pub");
    p.send(&publish_packet(b"t", 1, false, false, 1, b"m"));
    p.expect(&puback(1));
    let (_, _, qos, _, id) = parse_publish(&s.read_packet());
    assert_eq!(qos, 1, "delivered at the message's QoS");
    s.send(&puback(id));
    p.send(&publish_packet(b"t", 2, false, false, 2, b"two"));
    p.expect(&packet(0x50, &2u16.to_be_bytes()));
    p.send(&packet(0x62, &2u16.to_be_bytes()));
    p.expect(&packet(0x70, &2u16.to_be_bytes()));
    let (_, payload, qos, _, id) = parse_publish(&s.read_packet());
    assert_eq!((payload.as_slice(), qos), (&b"two"[..], 2));
    s.send(&packet(0x50, &id.to_be_bytes()));
    assert_eq!(s.read_packet(), packet(0x62, &id.to_be_bytes()));
    broker.restart(Stop::Kill);
    drop(s);
    let (mut s, present) = connect_clean(&broker, "sub", false);
    assert!(present);
    assert_eq!(
        s.read_packet(),
        packet(0x62, &id.to_be_bytes()),
        "PUBREL again"
    );
    s.send(&packet(0x70, &id.to_be_bytes()));
    s.expect_silence(Duration::from_millis(300));
}

/// A clean session is not kept [MQTT-3.1.2-6]; a persistent one resumed with clean
/// session 1 is discarded, also on disk.
#[test]
fn clean_sessions_are_not_restored() {
    let dir = Dir::new();
    let mut broker = Broker::start_culex(&dir.conf(""));
    let (mut a, _) = connect_clean(&broker, "a", true);
    a.send(&subscribe_packet(1, "t", 1));
    assert_eq!(a.read_packet()[0], 0x90);
    drop(a);
    let (mut b, _) = connect_clean(&broker, "b", false);
    b.send(&subscribe_packet(1, "t", 1));
    assert_eq!(b.read_packet()[0], 0x90);
    drop(b);
    let (b, present) = connect_clean(&broker, "b", true);
    assert!(
        !present,
        "clean session 1: no session present [MQTT-3.2.2-1]"
    );
    drop(b);
    broker.restart(Stop::Kill);
    for id in ["a", "b"] {
        let (_, present) = connect_clean(&broker, id, false);
        assert!(!present, "{id}: no session after a restart");
    }
}

/// MQTT 5: a disconnected session's expiry keeps counting across a restart, and its
/// delayed will is published when due. [MQTT-3.1.2-23] [MQTT-3.1.3-9] (5.0)
#[test]
fn session_expiry_and_delayed_will_survive_a_crash() {
    let dir = Dir::new();
    let mut broker = Broker::start_culex(&dir.conf(""));
    // MQTT 5 CONNECT: will flag, clean start 0, session expiry 3 s; will delay 2 s.
    let mut body = field(b"MQTT");
    body.extend_from_slice(&[5, 0x04, 0, 60]);
    body.extend_from_slice(&[5, 0x11, 0, 0, 0, 3]); // properties: session expiry 3
    body.extend_from_slice(&field(b"dev"));
    body.extend_from_slice(&[5, 0x18, 0, 0, 0, 2]); // will properties: will delay 2
    body.extend_from_slice(&field(b"wills/dev"));
    body.extend_from_slice(&field(b"gone"));
    let mut dev = broker.raw();
    dev.send(&packet(0x10, &body));
    let connack = dev.read_packet();
    assert_eq!((connack[0], connack[3]), (0x20, 0), "accepted: {connack:?}");
    drop(dev); // Connection lost: the will waits 2 s.
    std::thread::sleep(Duration::from_millis(300));
    broker.restart(Stop::Kill);
    let started = Instant::now();
    let mut watcher = broker.raw_connected("watcher");
    watcher.send(&subscribe_packet(1, "wills/#", 0));
    let mut will = None;
    while started.elapsed() < Duration::from_secs(6) && will.is_none() {
        if let Some(p) = watcher.try_read_packet(Duration::from_millis(200)) {
            if p[0] & 0xF0 == 0x30 {
                will = Some(parse_publish(&p));
            }
        }
    }
    let (topic, payload, ..) = will.expect("the delayed will is published after the restart");
    assert_eq!(
        (topic.as_str(), payload.as_slice()),
        ("wills/dev", &b"gone"[..])
    );
    // The session expired 3 s after the disconnect.
    std::thread::sleep(
        Duration::from_secs(3).saturating_sub(started.elapsed()) + Duration::from_millis(500),
    );
    let (_, present) = connect_clean(&broker, "dev", false);
    assert!(!present, "the session expired");
}

/// A journal whose tail was torn by a crash: start-up keeps every whole record, sets the
/// damaged bytes aside in a file and says so.
#[test]
fn a_torn_journal_tail_is_set_aside_and_start_up_goes_on() {
    let dir = Dir::new();
    let mut broker = Broker::start_culex(&dir.conf(""));
    let mut p = broker.raw_connected("pub");
    publish_retained(&mut p, (0..5).map(|i| format!("r/{i}")), b"v");
    std::thread::sleep(Duration::from_millis(200));
    broker.restart(Stop::Kill);
    // The restart compacted everything into the snapshot; add records and tear the last.
    let mut p = broker.raw_connected("pub");
    p.send(&publish_packet(b"r/new", 1, true, false, 1, b"kept"));
    p.expect(&puback(1));
    p.send(&publish_packet(b"r/torn", 1, true, false, 2, b"torn"));
    p.expect(&puback(2));
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill")
        .args(["-STOP", &broker_pid(&broker)])
        .status();
    let journal = dir.0.join("culex.db.journal");
    let bytes = fs::read(&journal).expect("the journal exists");
    assert!(bytes.len() > 40, "records were journaled: {}", bytes.len());
    fs::write(&journal, &bytes[..bytes.len() - 3]).expect("tear the journal");
    broker.restart(Stop::Kill);
    // The listeners are open before the store is loaded (connections wait in the backlog
    // meanwhile), so the log is read once this third start-up has finished loading: under
    // qemu, loading takes longer than binding.
    assert!(
        eventually(Duration::from_secs(10), || {
            let log = broker.log_text();
            log.contains("damaged bytes") && log.matches(" loaded in ").count() == 3
        }),
        "{}",
        broker.log_text()
    );
    let aside: Vec<_> = fs::read_dir(&dir.0)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "the damaged tail is kept for inspection");
    let mut s = broker.raw_connected("sub");
    s.send(&subscribe_packet(1, "r/#", 0));
    let topics: Vec<String> = s
        .read_until_quiet()
        .iter()
        .filter(|p| p[0] & 0xF0 == 0x30)
        .map(|p| parse_publish(p).0)
        .collect();
    for t in ["r/0", "r/4", "r/new"] {
        assert!(topics.iter().any(|x| x == t), "{t} in {topics:?}");
    }
    assert!(!topics.iter().any(|x| x == "r/torn"), "{topics:?}");
}

fn broker_pid(broker: &Broker) -> String {
    broker.pid().to_string()
}

/// Runs culex on `dir` with a listener of its own until it exits or `wait` passes;
/// returns whether it exited with success (`None`: still running, then killed) and its
/// output.
fn run_culex_once(dir: &Dir, wait: Duration) -> (Option<bool>, String) {
    let conf = dir
        .0
        .join(format!("c{}.conf", NEXT.fetch_add(1, Ordering::Relaxed)));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    fs::write(&conf, dir.conf(&format!("listener {port} 127.0.0.1\n"))).unwrap();
    let mut child = crate::common::built_binary(env!("CARGO_BIN_EXE_culex"))
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run culex");
    let started = Instant::now();
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status.success());
        }
        if started.elapsed() > wait {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().expect("culex's output");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    (status, text)
}

fn damaged_copies(dir: &Dir) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(&dir.0)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".damaged-"))
        .collect();
    names.sort();
    names
}

/// [issue #25, case 1] A database of an unknown format version is never misread, and
/// never keeps the broker down: it is moved aside (kept for the culex that wrote it) and
/// culex starts with what else is there. A Mosquitto database under the configured name
/// is left untouched.
#[test]
fn unknown_format_is_moved_aside_and_mosquitto_db_is_left_alone() {
    let dir = Dir::new();
    let mut header = b"CULEXDB\0".to_vec();
    header.extend_from_slice(&99u32.to_le_bytes());
    header.extend_from_slice(&[1, 0, 0, 0]);
    header.extend_from_slice(&0u64.to_le_bytes());
    fs::write(dir.0.join("culex.db"), &header).unwrap();
    let mut broker = Broker::start_culex(&dir.conf(""));
    let mut p = broker.raw_connected("pub");
    p.send(&publish_packet(b"m", 1, true, false, 1, b"v"));
    p.expect(&puback(1));
    broker.restart(Stop::Term);
    let log = broker.log_text();
    assert!(log.contains("format version 99"), "{log}");
    let aside = damaged_copies(&dir);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(fs::read(dir.0.join(&aside[0])).unwrap(), header);
    let mut s = broker.raw_connected("sub");
    s.send(&subscribe_packet(1, "m", 0));
    assert!(s.read_until_quiet().iter().any(|p| p[0] & 0xF0 == 0x30));
    drop(broker);

    let dir = Dir::new();
    let mosquitto = b"\x00\xB5\x00mosquitto db\x00\x00\x00\x06 and more".to_vec();
    fs::write(dir.0.join("mosquitto.db"), &mosquitto).unwrap();
    let mut broker = Broker::start_culex(&dir.conf("persistence_file mosquitto.db\n"));
    let mut p = broker.raw_connected("pub");
    p.send(&publish_packet(b"m", 1, true, false, 1, b"v"));
    p.expect(&puback(1));
    broker.restart(Stop::Term);
    assert_eq!(fs::read(dir.0.join("mosquitto.db")).unwrap(), mosquitto);
    // culex's own state is beside it: the snapshot the clean stop wrote (the journal
    // it replaces is removed then, and made again by the next start when it is ready).
    assert!(dir.0.join("mosquitto.db.culex").exists());
    assert!(broker.log_text().contains("is a Mosquitto database"));
    let mut s = broker.raw_connected("sub");
    s.send(&subscribe_packet(1, "m", 0));
    assert!(s.read_until_quiet().iter().any(|p| p[0] & 0xF0 == 0x30));
}

/// Retained values of `r/#` a fresh subscriber gets, sorted.
fn retained_topics(broker: &Broker) -> Vec<String> {
    let mut s = broker.raw_connected("sub");
    s.send(&subscribe_packet(1, "r/#", 0));
    let mut topics: Vec<String> = s
        .read_until_quiet()
        .iter()
        .filter(|p| p[0] & 0xF0 == 0x30)
        .map(|p| parse_publish(p).0)
        .collect();
    topics.sort();
    topics
}

/// [issue #25, cases 1, 6 and 7] An empty snapshot and a journal with a byte flipped in
/// its middle: culex starts, moves the empty snapshot aside, recovers every record but
/// the damaged one (the records after the damage too), says the damage is in the middle
/// of the file (not a crash), and rewrites the state, so the next start finds clean
/// files and keeps no second copy. Before: exit 1 ("Move it away"); with only the flip,
/// half of the records were set aside, and every start logged and copied it again.
#[test]
fn damaged_files_are_recovered_and_rewritten_once() {
    let dir = Dir::new();
    let mut broker = Broker::start_culex(&dir.conf(""));
    let mut p = broker.raw_connected("pub");
    publish_retained(&mut p, (0..40).map(|i| format!("r/{i:02}")), b"value");
    // Killed, not stopped: a clean stop moves the records into the snapshot and removes
    // the journal, and the journal is what is damaged here.
    std::thread::sleep(Duration::from_millis(200));
    broker.restart(Stop::Kill);
    let _ = Command::new("kill")
        .args(["-STOP", &broker_pid(&broker)])
        .status();
    let journal = dir.0.join("culex.db.journal");
    let mut bytes = fs::read(&journal).expect("the journal exists");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    fs::write(&journal, &bytes).unwrap();
    fs::write(dir.0.join("culex.db"), b"").unwrap();
    broker.restart(Stop::Kill);
    let topics = retained_topics(&broker);
    assert_eq!(topics.len(), 39, "all but the damaged record: {topics:?}");
    let log = broker.log_text();
    assert!(log.contains("the snapshot is empty"), "{log}");
    assert!(log.contains("damaged in the middle"), "{log}");
    assert!(
        !log.contains("damaged bytes after"),
        "not a torn tail: {log}"
    );
    let aside = damaged_copies(&dir);
    assert_eq!(
        aside.len(),
        2,
        "the empty snapshot and the journal's bytes: {aside:?}"
    );
    // The state was rewritten: the next start says nothing and copies nothing.
    assert!(
        eventually(Duration::from_secs(5), || {
            fs::metadata(dir.0.join("culex.db")).is_ok_and(|m| m.len() > 24)
        }),
        "a new snapshot"
    );
    broker.restart(Stop::Kill);
    assert_eq!(retained_topics(&broker).len(), 39);
    let log = broker.log_text();
    assert_eq!(log.matches("damaged in the middle").count(), 1, "{log}");
    assert_eq!(damaged_copies(&dir), aside);
}

/// [issue #25, case 9] A second broker on a persistence directory in use is refused,
/// with a message that names the directory and the broker holding it; the first goes on
/// serving. Before: both started and mixed their sessions in one journal.
#[test]
fn a_second_broker_on_the_same_directory_is_refused() {
    let dir = Dir::new();
    let mut broker = Broker::start_culex(&dir.conf(""));
    // The listeners open before the store is loaded (and locked).
    assert!(eventually(Duration::from_secs(10), || broker
        .log_text()
        .contains(" loaded in ")));
    let (status, text) = run_culex_once(&dir, Duration::from_secs(10));
    assert_eq!(status, Some(false), "{text}");
    assert!(text.contains("in use by another broker"), "{text}");
    assert!(text.contains(&dir.0.display().to_string()), "{text}");
    assert!(
        text.contains(&format!("process {}", broker.pid())),
        "{text}"
    );
    let mut p = broker.raw_connected("pub");
    p.send(&publish_packet(b"r/x", 1, true, false, 1, b"v"));
    p.expect(&puback(1));
    broker.restart(Stop::Term);
    assert_eq!(retained_topics(&broker), ["r/x"]);
}

/// The crash test: a publisher streams numbered QoS 1 messages to a persistent,
/// offline subscriber while the broker is killed with SIGKILL at random moments and
/// started again. Every acknowledged message must be delivered afterwards, in both sync
/// modes: the loop writes records into the journal before it writes the PUBACK, so a
/// process crash loses nothing acknowledged (a power cut may lose the last
/// `persistence_sync_interval` in the default mode, nothing with `persistence_sync ack`).
#[test]
fn acknowledged_messages_survive_random_kills() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    for (mode, seed) in [("ack", 1u64), ("periodic", 2)] {
        let dir = Dir::new();
        let mut broker = Broker::start_culex(
            &dir.conf(&format!("persistence_sync {mode}\nmax_queued_messages 0\n")),
        );
        let (mut s, _) = connect_clean(&broker, "sink", false);
        s.send(&subscribe_packet(1, "seq", 1));
        assert_eq!(s.read_packet()[0], 0x90);
        drop(s);
        let mut rng = 0x2545_f491_4f6c_dd1du64 ^ seed;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut acked = std::collections::HashSet::new();
        let mut seq = 0u32;
        let deadline = Instant::now() + Duration::from_secs(90);
        for _round in 0..5 {
            let mut stream = TcpStream::connect(("127.0.0.1", broker.port)).expect("connect");
            stream.write_all(&connect_packet("pub", true, 60)).unwrap();
            let mut connack = [0u8; 4];
            stream.read_exact(&mut connack).unwrap();
            assert_eq!(connack, [0x20, 2, 0, 0]);
            let mut writer = stream.try_clone().unwrap();
            let first = seq;
            // At most 2,000 messages a round, paced, until the socket dies with the broker.
            let publisher = std::thread::spawn(move || {
                let mut last = first;
                for n in first + 1..=first + 2_000 {
                    let id = (n % 65_000 + 1) as u16;
                    let p = publish_packet(b"seq", 1, false, false, id, &n.to_be_bytes());
                    if writer.write_all(&p).is_err() {
                        break;
                    }
                    last = n;
                    if n % 20 == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                last
            });
            // The kill comes at a random moment after the first 50 acknowledgements (or
            // 10 s): under qemu the broker may need most of a second to get going.
            let mut bytes = Vec::new();
            let started = Instant::now();
            stream
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            while bytes.len() < 4 * 50 && started.elapsed() < Duration::from_secs(10) {
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => bytes.extend_from_slice(&chunk[..n]),
                    Err(_) => {}
                }
            }
            std::thread::sleep(Duration::from_millis(next() % 150));
            broker.restart(Stop::Kill);
            // Every PUBACK that reached the socket before the kill is an acknowledgement.
            stream
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            let _ = stream.read_to_end(&mut bytes);
            for ack in bytes.chunks_exact(4) {
                assert_eq!(ack[..2], [0x40, 2], "PUBACKs only: {ack:?}");
                acked.insert(u32::from(u16::from_be_bytes([ack[2], ack[3]])) - 1);
            }
            seq = publisher.join().expect("publisher thread");
            assert!(Instant::now() < deadline, "bounded in time");
        }
        assert!(acked.len() > 100, "{mode}: {} acknowledged", acked.len());
        let (mut s, present) = connect_clean(&broker, "sink", false);
        assert!(present);
        let mut delivered = std::collections::HashSet::new();
        while let Some(p) = s.try_read_packet(Duration::from_millis(500)) {
            if p[0] & 0xF0 == 0x30 {
                let (_, payload, _, _, id) = parse_publish(&p);
                delivered.insert(u32::from_be_bytes(payload[..4].try_into().unwrap()));
                s.send(&puback(id));
            }
        }
        let mut lost: Vec<u32> = acked
            .iter()
            .filter(|seq| !delivered.contains(seq))
            .copied()
            .collect();
        lost.sort_unstable();
        eprintln!(
            "crash test ({mode}): {seq} published, {} acknowledged, {} delivered, {} acknowledged but lost",
            acked.len(),
            delivered.len(),
            lost.len()
        );
        assert!(lost.is_empty(), "{mode}: acknowledged but lost: {lost:?}");
    }
}

/// Compaction under load: with `autosave_on_changes` every 20 changes make a snapshot;
/// the state after many compactions and a crash is whole. $SYS says the store is ok.
#[test]
fn compactions_keep_everything_across_a_crash() {
    let dir = Dir::new();
    let mut broker = Broker::start_culex(
        &dir.conf("autosave_on_changes true\nautosave_interval 20\nsys_interval 1\n"),
    );
    let mut p = broker.raw_connected("pub");
    for i in 0..200u16 {
        let topic = format!("r/{}", i % 50);
        p.send(&publish_packet(
            topic.as_bytes(),
            1,
            true,
            false,
            i + 1,
            &i.to_be_bytes(),
        ));
        p.expect(&puback(i + 1));
    }
    let snapshot = dir.0.join("culex.db");
    assert!(
        // Larger than the empty snapshot a fresh start writes (header and end mark).
        eventually(Duration::from_secs(3), || {
            fs::metadata(&snapshot).is_ok_and(|m| m.len() > 30)
        }),
        "snapshots were written"
    );
    let mut s = broker.raw_connected("sys");
    s.send(&subscribe_packet(1, "$SYS/broker/persistence/state", 0));
    // Published with the next $SYS round (sys_interval 1).
    let mut state = None;
    let started = Instant::now();
    while state.is_none() && started.elapsed() < Duration::from_secs(3) {
        if let Some(p) = s.try_read_packet(Duration::from_millis(200)) {
            if p[0] & 0xF0 == 0x30 {
                state = Some(parse_publish(&p).1);
            }
        }
    }
    assert_eq!(state.as_deref(), Some(&b"ok"[..]));
    broker.restart(Stop::Kill);
    let mut s = broker.raw_connected("sub");
    s.send(&subscribe_packet(1, "r/#", 0));
    let mut got: Vec<(String, Vec<u8>)> = s
        .read_until_quiet()
        .iter()
        .filter(|p| p[0] & 0xF0 == 0x30)
        .map(|p| {
            let (t, v, ..) = parse_publish(p);
            (t, v)
        })
        .collect();
    got.sort();
    let mut expected: Vec<(String, Vec<u8>)> = (150..200u16)
        .map(|i| (format!("r/{}", i % 50), i.to_be_bytes().to_vec()))
        .collect();
    expected.sort();
    assert_eq!(got, expected, "the last value of each topic");
}

/// MQTT 5 state survives a crash: a retained message's properties and its remaining
/// Message Expiry Interval [MQTT-3.3.2-6], and a session's subscription with its
/// Subscription Identifier [MQTT-3.3.4-3] and the queued message's properties.
#[test]
fn mqtt5_properties_expiry_and_subscription_identifiers_survive_a_crash() {
    use crate::mqtt5::Peer5;
    use rumqttc::v5::mqttbytes::v5::{PublishProperties, SubscribeProperties};
    use rumqttc::v5::mqttbytes::QoS;
    let dir = Dir::new();
    let mut broker = Broker::start_culex(&dir.conf(""));
    let (mut sub, _) = Peer5::connect(&broker, "v5sub", |o| {
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(600));
    });
    let ids = SubscribeProperties {
        id: Some(7),
        user_properties: vec![],
    };
    sub.client
        .subscribe_with_properties("q5/#", QoS::AtLeastOnce, ids)
        .unwrap();
    sub.subscribed();
    sub.client.disconnect().unwrap();
    let _ = sub.conn.recv_timeout(Duration::from_millis(300));
    drop(sub);
    let (mut publisher, _) = Peer5::connect(&broker, "v5pub", |_| {});
    let properties = PublishProperties {
        content_type: Some("application/json".into()),
        user_properties: vec![("unit".into(), "C".into())],
        message_expiry_interval: Some(3600),
        ..Default::default()
    };
    publisher
        .client
        .publish_with_properties(
            "r5/t",
            QoS::AtLeastOnce,
            true,
            b"21.5".to_vec(),
            properties.clone(),
        )
        .unwrap();
    publisher.wait(|p| matches!(p, rumqttc::v5::mqttbytes::v5::Packet::PubAck(_)));
    publisher.publish("q5/x", QoS::AtLeastOnce, b"queued", properties);
    broker.restart(Stop::Kill);

    let (mut sub, ack) = Peer5::connect(&broker, "v5sub", |o| {
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(600));
    });
    assert!(ack.session_present);
    let got = sub.expect_publish();
    assert_eq!(
        (&got.topic[..], &got.payload[..]),
        (&b"q5/x"[..], &b"queued"[..])
    );
    let p = got.properties.expect("properties");
    assert_eq!(p.subscription_identifiers, vec![7]);
    assert_eq!(p.content_type.as_deref(), Some("application/json"));

    let (mut reader, _) = Peer5::connect(&broker, "v5reader", |_| {});
    reader.client.subscribe("r5/#", QoS::AtLeastOnce).unwrap();
    let got = reader.expect_publish();
    assert!(got.retain);
    assert_eq!(&got.payload[..], b"21.5");
    let p = got.properties.expect("properties");
    assert_eq!(p.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        p.user_properties,
        vec![("unit".to_string(), "C".to_string())]
    );
    let left = p
        .message_expiry_interval
        .expect("expiry counted down, not dropped");
    assert!((3590..=3600).contains(&left), "{left}");
}

/// The `$SYS/broker/persistence/...` values published at the next `$SYS` round, by topic.
fn persistence_sys(broker: &Broker) -> std::collections::HashMap<String, String> {
    let mut s = broker.raw_connected("sys-reader");
    s.send(&subscribe_packet(1, "$SYS/broker/persistence/#", 0));
    let mut values = std::collections::HashMap::new();
    let started = Instant::now();
    while values.len() < 8 && started.elapsed() < Duration::from_secs(4) {
        if let Some(p) = s.try_read_packet(Duration::from_millis(200)) {
            if p[0] & 0xF0 == 0x30 {
                let (topic, value, ..) = parse_publish(&p);
                let value = String::from_utf8(value).expect("a $SYS value is text");
                values.insert(topic, value);
            }
        }
    }
    values
}

/// Issue 25 case 8, `persistence_sync ack`: a SUBACK reports a subscription that is on
/// disk, so after SUBACK and a `kill -9` the subscription is there. Also a session's
/// CONNACK. [MQTT-3.8.4-1]
#[test]
fn ack_mode_subscription_acknowledged_survives_a_crash() {
    let dir = Dir::new();
    let mut broker = Broker::start_culex(&dir.conf("persistence_sync ack\n"));
    let (mut s, present) = connect_clean(&broker, "sub", false);
    assert!(!present);
    s.send(&subscribe_packet(1, "t/#", 1));
    assert_eq!(s.read_packet(), packet(0x90, &[0, 1, 1]), "SUBACK");
    broker.restart(Stop::Kill);
    drop(s);
    let (mut s, present) = connect_clean(&broker, "sub", false);
    assert!(present, "the session acknowledged by CONNACK is back");
    let mut p = broker.raw_connected("pub");
    p.send(&publish_packet(b"t/a", 1, false, false, 1, b"after"));
    p.expect(&puback(1));
    let (topic, payload, qos, ..) = parse_publish(&s.read_packet());
    assert_eq!(
        (topic.as_str(), payload.as_slice(), qos),
        ("t/a", &b"after"[..], 1)
    );
}

/// Issue 25 case 8, `persistence_sync ack`: PUBCOMP says the packet id is released, so
/// after PUBCOMP and a `kill -9` the client's next QoS 2 PUBLISH with the same id is a
/// new message, delivered, not taken for the old one. [MQTT-4.3.3-2] [MQTT-2.2.1-3]
#[test]
fn ack_mode_packet_id_released_by_pubcomp_is_new_after_a_crash() {
    let dir = Dir::new();
    let mut broker = Broker::start_culex(&dir.conf("persistence_sync ack\n"));
    let (mut s, _) = connect_clean(&broker, "sub", false);
    s.send(&subscribe_packet(1, "t", 1));
    assert_eq!(s.read_packet()[0], 0x90);
    let (mut p, _) = connect_clean(&broker, "pub", false);
    p.send(&publish_packet(b"t", 2, false, false, 7, b"first"));
    p.expect(&packet(0x50, &7u16.to_be_bytes()));
    p.send(&packet(0x62, &7u16.to_be_bytes()));
    p.expect(&packet(0x70, &7u16.to_be_bytes()));
    broker.restart(Stop::Kill);
    drop((s, p));
    let (mut p, present) = connect_clean(&broker, "pub", false);
    assert!(present);
    p.send(&publish_packet(b"t", 2, false, false, 7, b"second"));
    p.expect(&packet(0x50, &7u16.to_be_bytes()));
    p.send(&packet(0x62, &7u16.to_be_bytes()));
    p.expect(&packet(0x70, &7u16.to_be_bytes()));
    let (mut s, present) = connect_clean(&broker, "sub", false);
    assert!(present);
    let payloads: Vec<Vec<u8>> = s
        .read_until_quiet()
        .iter()
        .filter(|p| p[0] & 0xF0 == 0x30)
        .map(|p| parse_publish(p).1)
        .collect();
    assert_eq!(payloads, [b"first".to_vec(), b"second".to_vec()]);
}

/// `$SYS/broker/persistence/...`: the store's state, what start-up recovered and lost,
/// and the files' wear; in ack mode every acknowledged change was synced.
#[test]
fn persistence_status_is_published_in_sys() {
    let dir = Dir::new();
    let conf = dir.conf("persistence_sync ack\nsys_interval 1\n");
    let mut broker = Broker::start_culex(&conf);
    let mut p = broker.raw_connected("pub");
    for i in 1..=3u16 {
        p.send(&publish_packet(b"r", 1, true, false, i, &i.to_be_bytes()));
        p.expect(&puback(i));
    }
    broker.restart(Stop::Kill);
    let values = persistence_sys(&broker);
    let value = |name: &str| {
        values
            .get(&format!("$SYS/broker/persistence/{name}"))
            .unwrap_or_else(|| panic!("{name} in {values:?}"))
            .clone()
    };
    assert_eq!(value("state"), "ok");
    let number = |name: &str| -> u64 { value(name).parse().expect("a number") };
    assert!(number("records/recovered") >= 3, "{values:?}");
    assert_eq!(number("records/lost"), 0);
    assert_eq!(number("bytes/damaged"), 0);
    assert_eq!(number("files/set-aside"), 0);
    assert_eq!(number("acks/refused"), 0);
    // `bytes/written` and `syncs` count since this start; a snapshot at start-up may
    // not have been needed, so only their presence is certain.
    number("bytes/written");
    number("syncs");
}

/// A clean stop saves the whole state at `persistence_file`, as Mosquitto saves its
/// database at shutdown ("Saving in-memory database to FILE."): the next start reads
/// it alone, and its journal begins empty. Before: the state stayed in the journal,
/// replayed record by record at every start.
#[test]
fn a_clean_stop_saves_the_state_in_the_snapshot() {
    let dir = Dir::new();
    let mut broker = Broker::start_culex(&dir.conf(""));
    let mut p = broker.raw_connected("pub");
    publish_retained(&mut p, (0..3).map(|i| format!("r/{i}")), b"v");
    broker.restart(Stop::Term);
    assert_eq!(retained_topics(&broker), ["r/0", "r/1", "r/2"]);
    let log = broker.log_text();
    assert!(log.contains("Saving in-memory database to "), "{log}");
    assert!(
        log.contains(" snapshot and 0 journal records: 3 retained messages"),
        "{log}"
    );
}

/// SIGUSR1 with `persistence true` writes the whole state to the snapshot file at once
/// and says so with Mosquitto's line ("Saving in-memory database to FILE."), as
/// Mosquitto writes its database on SIGUSR1; the broker goes on serving.
#[test]
fn sigusr1_writes_a_snapshot_now() {
    let dir = Dir::new();
    // No autosave and a tiny journal: only the signal can make this snapshot.
    let broker = Broker::start_culex(&dir.conf("autosave_interval 0"));
    let mut p = broker.raw_connected("pub");
    publish_retained(&mut p, (0..3).map(|i| format!("usr1/{i}")), b"saved");
    let snapshot = dir.0.join("culex.db");
    let holds = |needle: &[u8]| {
        fs::read(&snapshot).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!holds(b"usr1/2"), "the snapshot already held the message");
    broker.signal("USR1");
    assert!(
        eventually(Duration::from_secs(10), || holds(b"usr1/2")),
        "no snapshot after SIGUSR1: {}",
        broker.log_text()
    );
    let line = format!("Saving in-memory database to {}.", snapshot.display());
    assert!(broker.log_text().contains(&line), "{}", broker.log_text());
    assert!(!broker.log_text().contains("no persistence"));
    // Still serving, with the state in it.
    let mut s = broker.raw_connected("after");
    s.send(&subscribe_packet(1, "usr1/2", 0));
    assert_eq!(s.read_packet()[0], 0x90, "SUBACK");
    let (topic, payload, ..) = parse_publish(&s.read_packet());
    assert_eq!(
        (topic.as_str(), payload.as_slice()),
        ("usr1/2", &b"saved"[..])
    );
}
