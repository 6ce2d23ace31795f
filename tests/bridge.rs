//! Bridges (`connection` blocks): two broker processes, one the gateway and one the
//! "cloud", real sockets between them, rumqttc clients on both ends. Outages are made by
//! a TCP proxy in the test that cuts the link or black-holes it without closing.
//!
//! Every wait is bounded; the longest (keep alive noticing a black hole) is a few
//! keep-alive periods of 5 s, Mosquitto's minimum `keepalive_interval`.
//!
//! Both brokers are always culex (`Broker::start_culex`), whatever `CULEX_TEST_BROKER`
//! says: these tests are about culex's bridge and read culex's logs and `$SYS` values.
//! tests/interop/bridge.sh runs it against Debian's mosquitto as the cloud.

use crate::common::{eventually, hex, Broker, Peer, Raw, Stop, WAIT};
use rumqttc::QoS;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The gateway's bridge toward `port`, named `cloud`, remote client id `gw1`, reconnecting
/// after 1 s, with `lines` (topic lines and other options) after it.
fn gateway(port: u16, lines: &str) -> Broker {
    Broker::start_culex(&bridge_conf(port, lines))
}

/// The configuration lines of [`gateway`]'s bridge.
fn bridge_conf(port: u16, lines: &str) -> String {
    format!(
        "connection cloud\naddress 127.0.0.1:{port}\nremote_clientid gw1\nrestart_timeout 1\n{lines}\n"
    )
}

/// How often the gateway's log says the bridge connected.
fn connects(gw: &Broker) -> usize {
    gw.log_text().matches("Bridge cloud connected").count()
}

const STATE_TOPIC: &str = "$SYS/broker/connection/gw1/state";

/// A client of `broker` subscribed to the bridge's state notification.
fn state_watcher(broker: &Broker, id: &str) -> Peer {
    let mut peer = broker.client(id);
    peer.subscribe(STATE_TOPIC, QoS::AtLeastOnce);
    peer
}

/// Waits (up to `limit`) until the state topic says `state` ("1" up, "0" down).
fn wait_state(watcher: &mut Peer, state: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(p) = watcher.next_publish(deadline - Instant::now()) {
            if p.topic == STATE_TOPIC && p.payload.as_ref() == state.as_bytes() {
                return;
            }
        }
    }
    panic!("the bridge state did not become {state} within {limit:?}");
}

/// Collects `n` messages (topic, payload) within `limit`.
fn collect(peer: &mut Peer, n: usize, limit: Duration) -> Vec<(String, String)> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        if let Some(p) = peer.next_publish(deadline - Instant::now()) {
            got.push((
                p.topic.clone(),
                String::from_utf8_lossy(&p.payload).into_owned(),
            ));
        }
    }
    got
}

/// Messages published at the gateway arrive at the cloud with the local prefix replaced
/// by the remote one, and the other way round; a `""` pattern maps one topic to another;
/// topics outside every line stay where they are.
#[test]
fn topics_are_mapped_with_prefixes_in_every_direction() {
    let cloud = Broker::start_culex("");
    let gw = gateway(
        cloud.port,
        "topic sensors/# out 1 gw/ site7/\n\
         topic cmd/# in 1 gw/ site7/\n\
         topic sync/# both 1 local/ remote/\n\
         topic \"\" out 1 alarm/here alarm/there\n\
         bridge_protocol_version mqttv50",
    );
    let mut watcher = state_watcher(&gw, "watch");
    wait_state(&mut watcher, "1", WAIT * 3);

    let mut cloud_sub = cloud.client("cloud-sub");
    for f in ["site7/#", "remote/#", "alarm/#", "gw/#", "sensors/#"] {
        cloud_sub.subscribe(f, QoS::AtLeastOnce);
    }
    let mut gw_sub = gw.client("gw-sub");
    for f in ["gw/cmd/#", "local/#", "cmd/#"] {
        gw_sub.subscribe(f, QoS::AtLeastOnce);
    }
    let mut gw_pub = gw.client("gw-pub");
    let mut cloud_pub = cloud.client("cloud-pub");

    gw_pub.publish("gw/sensors/t1", QoS::AtLeastOnce, false, b"21.5");
    assert_eq!(
        collect(&mut cloud_sub, 1, WAIT),
        [("site7/sensors/t1".into(), "21.5".into())]
    );
    gw_pub.publish("alarm/here", QoS::AtLeastOnce, false, b"fire");
    assert_eq!(
        collect(&mut cloud_sub, 1, WAIT),
        [("alarm/there".into(), "fire".into())]
    );
    cloud_pub.publish("site7/cmd/reboot", QoS::AtLeastOnce, false, b"now");
    assert_eq!(
        collect(&mut gw_sub, 1, WAIT),
        [("gw/cmd/reboot".into(), "now".into())]
    );
    // The cloud's own subscriber sees it directly.
    assert_eq!(
        collect(&mut cloud_sub, 1, WAIT),
        [("site7/cmd/reboot".into(), "now".into())]
    );
    // both: each way, and no echo (MQTT 5 No Local on both sides).
    gw_pub.publish("local/sync/a", QoS::AtLeastOnce, false, b"up");
    assert_eq!(
        collect(&mut cloud_sub, 1, WAIT),
        [("remote/sync/a".into(), "up".into())]
    );
    assert_eq!(
        collect(&mut gw_sub, 1, WAIT),
        [("local/sync/a".into(), "up".into())]
    );
    cloud_pub.publish("remote/sync/b", QoS::AtLeastOnce, false, b"down");
    assert_eq!(
        collect(&mut gw_sub, 1, WAIT),
        [("local/sync/b".into(), "down".into())]
    );
    assert_eq!(
        collect(&mut cloud_sub, 1, WAIT),
        [("remote/sync/b".into(), "down".into())]
    );
    // Nothing else moved: not the echoes, not unmapped topics.
    gw_pub.publish("other/x", QoS::AtLeastOnce, false, b"stay");
    cloud_pub.publish("cmd/x", QoS::AtLeastOnce, false, b"stay");
    cloud_sub.expect_no_publish();
    gw_sub.expect_no_publish();
}

/// Each QoS travels at the lower of the message's and the topic line's QoS, and a QoS 2
/// message arrives exactly once.
#[test]
fn qos_levels_cross_the_bridge() {
    let cloud = Broker::start_culex("");
    let gw = gateway(cloud.port, "topic q/# out 2\ntopic low/# out 0");
    let mut watcher = state_watcher(&gw, "watch");
    wait_state(&mut watcher, "1", WAIT * 3);
    let mut cloud_sub = cloud.client("cloud-sub");
    cloud_sub.subscribe("#", QoS::ExactlyOnce);
    let mut gw_pub = gw.client("gw-pub");
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        gw_pub.publish(&format!("q/{i}"), qos, false, b"m");
        let p = cloud_sub.expect_publish();
        assert_eq!((p.topic.as_str(), p.qos), (format!("q/{i}").as_str(), qos));
    }
    gw_pub.publish("low/1", QoS::ExactlyOnce, false, b"m");
    let p = cloud_sub.expect_publish();
    assert_eq!((p.topic.as_str(), p.qos), ("low/1", QoS::AtMostOnce));
    cloud_sub.expect_no_publish();
}

/// The state notification: retained "1" on both brokers when the link is up; "0" at the
/// cloud (the bridge's will) when the gateway dies.
#[test]
fn notifications_announce_the_link_state() {
    let cloud = Broker::start_culex("");
    let mut cloud_watch = state_watcher(&cloud, "cloud-watch");
    let gw = gateway(cloud.port, "topic x/# out 0");
    let mut watcher = state_watcher(&gw, "watch");
    wait_state(&mut watcher, "1", WAIT * 3);
    wait_state(&mut cloud_watch, "1", WAIT);
    // Retained on both: a late subscriber gets "1".
    let mut late = state_watcher(&cloud, "late");
    let p = late.expect_publish();
    assert!(p.retain);
    assert_eq!(p.payload.as_ref(), b"1");
    drop(gw); // SIGKILL: the cloud publishes the will.
    wait_state(&mut cloud_watch, "0", WAIT);
}

/// The "1" goes to the remote at QoS 1, as Mosquitto sends it: a monitor in the cloud
/// with a persistent QoS 1 session that was offline when the link came up gets it when
/// it returns (a QoS 0 message is not queued for an offline session).
#[test]
fn the_up_notification_reaches_an_offline_persistent_monitor() {
    let cloud = Broker::start_culex("");
    let monitor_options = || {
        let mut o = cloud.options("monitor");
        o.set_clean_session(false);
        o
    };
    let (mut monitor, _) = Peer::connect(monitor_options());
    monitor.subscribe(STATE_TOPIC, QoS::AtLeastOnce);
    monitor.disconnect();
    let gw = gateway(cloud.port, "topic x/# out 1");
    wait_state(&mut state_watcher(&gw, "watch"), "1", WAIT * 3);
    let (mut monitor, connack) = Peer::connect(monitor_options());
    assert!(connack.session_present);
    let p = monitor.expect_publish();
    assert_eq!(
        (p.topic.as_str(), p.payload.as_ref()),
        (STATE_TOPIC, &b"1"[..])
    );
    assert_eq!(p.qos, QoS::AtLeastOnce);
}

/// A PUBLISH from the gateway's bridge, as a fake MQTT 5 remote reads it: QoS, retain,
/// topic, packet id (0 at QoS 0) and payload.
fn parse_v5_publish(packet: &[u8]) -> (u8, bool, String, u16, Vec<u8>) {
    assert_eq!(
        packet[0] & 0xf0,
        0x30,
        "expected PUBLISH, got {}",
        hex(packet)
    );
    let mut i = 1;
    while packet[i] & 0x80 != 0 {
        i += 1;
    }
    let body = &packet[i + 1..];
    let qos = (packet[0] >> 1) & 3;
    let len = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let topic = String::from_utf8(body[2..2 + len].to_vec()).unwrap();
    let mut i = 2 + len;
    let mut packet_id = 0;
    if qos > 0 {
        packet_id = u16::from_be_bytes([body[i], body[i + 1]]);
        i += 2;
    }
    // Property length (a variable byte integer; short here), then the properties.
    assert!(body[i] < 0x80, "short properties expected: {}", hex(packet));
    i += 1 + usize::from(body[i]);
    (
        qos,
        packet[0] & 1 != 0,
        topic,
        packet_id,
        body[i..].to_vec(),
    )
}

/// The next PUBLISH from the bridge, skipping its SUBSCRIBE/UNSUBSCRIBE.
fn next_bridge_publish(remote: &mut Raw) -> (u8, bool, String, u16, Vec<u8>) {
    loop {
        let packet = remote
            .try_read_packet(WAIT)
            .expect("a PUBLISH from the bridge");
        if packet[0] & 0xf0 == 0x30 {
            return parse_v5_publish(&packet);
        }
    }
}

/// The QoS 1 notification counts against the remote's Receive Maximum: with 2, one local
/// message is in flight beside it, never two [MQTT-3.3.4-7]. Its PUBACK is the bridge's
/// own (an id the local session never uses); the link stays up and later messages flow.
#[test]
fn the_notification_counts_against_the_remote_receive_maximum() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let gw = gateway(port, "bridge_protocol_version mqttv50\ntopic x/# out 1");
    let mut stream = None;
    eventually(WAIT * 2, || {
        stream = listener.accept().ok().map(|(s, _)| s);
        stream.is_some()
    });
    let stream = stream.expect("the bridge connects to the fake remote");
    stream.set_nonblocking(false).unwrap();
    let mut remote = Raw::from_stream(stream);
    assert_eq!(remote.read_packet()[0], 0x10, "CONNECT first");
    // CONNACK: success, properties: Receive Maximum (0x21) 2.
    remote.send(&[0x20, 0x06, 0x00, 0x00, 0x03, 0x21, 0x00, 0x02]);
    let (qos, retain, topic, up_id, payload) = next_bridge_publish(&mut remote);
    assert_eq!(
        (qos, retain, topic.as_str(), &payload[..]),
        (1, true, STATE_TOPIC, &b"1"[..])
    );

    let mut device = gw.client("device");
    for n in 1..=3 {
        device.publish("x/seq", QoS::AtLeastOnce, false, n.to_string().as_bytes());
    }
    let (qos, _, _, first_id, payload) = next_bridge_publish(&mut remote);
    assert_eq!((qos, &payload[..]), (1, &b"1"[..]));
    assert_ne!(first_id, up_id);
    remote.expect_silence(Duration::from_millis(500));
    // The notification's PUBACK frees no local slot and disturbs nothing.
    remote.send(&[0x40, 0x02, (up_id >> 8) as u8, up_id as u8]);
    remote.expect_silence(Duration::from_millis(300));
    // One at a time from here: each PUBACK lets the next message go.
    let mut in_flight = first_id;
    for expected in [&b"2"[..], b"3"] {
        remote.send(&[0x40, 0x02, (in_flight >> 8) as u8, in_flight as u8]);
        let (qos, _, _, id, payload) = next_bridge_publish(&mut remote);
        assert_eq!((qos, &payload[..]), (1, expected));
        assert_ne!(id, up_id);
        remote.expect_silence(Duration::from_millis(300));
        in_flight = id;
    }
}

/// The cloud a gateway's bridge starts with and the one its new configuration names,
/// each with a watcher of the state topic.
fn two_clouds() -> (Broker, Peer, Broker, Peer) {
    let old_cloud = Broker::start_culex("");
    let new_cloud = Broker::start_culex("");
    let old_watch = state_watcher(&old_cloud, "old-watch");
    let new_watch = state_watcher(&new_cloud, "new-watch");
    (old_cloud, old_watch, new_cloud, new_watch)
}

/// SIGHUP with `bridge_reload_type immediate` (Mosquitto 2.1): a changed bridge ends its
/// link cleanly (the old cloud hears "0") and connects with its new configuration at
/// once, here to another cloud.
#[test]
fn a_changed_bridge_moves_to_its_new_cloud_at_once_with_immediate() {
    let (old_cloud, mut old_watch, new_cloud, mut new_watch) = two_clouds();
    let lines = "topic x/# out 1\nbridge_reload_type immediate";
    let gw = gateway(old_cloud.port, lines);
    wait_state(&mut old_watch, "1", WAIT * 3);
    let mut receiver = new_cloud.subscriber("receiver", "x/#", QoS::AtLeastOnce);
    gw.rewrite_conf(&bridge_conf(new_cloud.port, lines));
    gw.signal("HUP");
    wait_state(&mut old_watch, "0", WAIT);
    wait_state(&mut new_watch, "1", WAIT * 3);
    let mut device = gw.client("device");
    device.publish("x/1", QoS::AtLeastOnce, false, b"moved");
    assert_eq!(
        collect(&mut receiver, 1, WAIT),
        [("x/1".into(), "moved".into())]
    );
}

/// Without `bridge_reload_type` (lazy, the default): the link that is up stays as it is,
/// and the new configuration applies when it next goes down. Messages published
/// meanwhile go to the old cloud; after it, to the new one.
#[test]
fn a_changed_bridge_waits_for_its_link_to_go_down_by_default() {
    let (old_cloud, mut old_watch, new_cloud, mut new_watch) = two_clouds();
    let gw = gateway(old_cloud.port, "topic x/# out 1");
    wait_state(&mut old_watch, "1", WAIT * 3);
    let mut old_receiver = old_cloud.subscriber("old-receiver", "x/#", QoS::AtLeastOnce);
    let mut new_receiver = new_cloud.subscriber("new-receiver", "x/#", QoS::AtLeastOnce);
    gw.rewrite_conf(&bridge_conf(new_cloud.port, "topic x/# out 1"));
    gw.signal("HUP");
    assert!(eventually(WAIT, || gw.log_text().contains(
        "its new configuration applies when the link next goes down"
    )));
    let mut device = gw.client("device");
    device.publish("x/1", QoS::AtLeastOnce, false, b"still old");
    assert_eq!(
        collect(&mut old_receiver, 1, WAIT),
        [("x/1".into(), "still old".into())]
    );
    assert_eq!(connects(&gw), 1);
    drop(old_cloud); // The link goes down.
    wait_state(&mut new_watch, "1", WAIT * 3);
    device.publish("x/2", QoS::AtLeastOnce, false, b"now new");
    assert_eq!(
        collect(&mut new_receiver, 1, WAIT),
        [("x/2".into(), "now new".into())]
    );
}

/// A bridge whose `connection` block is gone stops cleanly on SIGHUP: the cloud hears
/// "0", no attempt follows (with `restart_timeout 1` one would within seconds), and its
/// local session is discarded.
#[test]
fn a_removed_bridge_stops_on_sighup() {
    let cloud = Broker::start_culex("");
    let mut cloud_watch = state_watcher(&cloud, "cloud-watch");
    let gw = gateway(cloud.port, "topic x/# out 1");
    wait_state(&mut cloud_watch, "1", WAIT * 3);
    gw.rewrite_conf("");
    gw.signal("HUP");
    wait_state(&mut cloud_watch, "0", WAIT);
    assert!(gw
        .log_text()
        .contains("Bridge cloud: removed from the configuration; stopping it."));
    thread::sleep(Duration::from_secs(3));
    assert_eq!(connects(&gw), 1, "{}", gw.log_text());
    // Its local session is gone with it: nothing collects messages for it any more.
    let mut options = gw.options("local.gw1");
    options.set_clean_session(false);
    let (_, connack) = Peer::connect(options);
    assert!(!connack.session_present);
}

/// The bridge reads its certificate files again before each connection, as Mosquitto
/// does: a client certificate renewed on disk (an expired one replaced) is used at the
/// next attempt, with no reload.
#[test]
fn a_renewed_client_certificate_is_used_at_the_next_attempt() {
    let pki = crate::tls::Pki::new("bridge-renew");
    let cloud = Broker::start_culex(&pki.listener_conf(&format!(
        "cafile {}\nrequire_certificate true\n",
        pki.path("ca.pem")
    )));
    let (cert, key) = (pki.path("gw.pem"), pki.path("gw.key"));
    std::fs::copy(pki.path("expired.pem"), &cert).unwrap();
    std::fs::copy(pki.path("expired.key"), &key).unwrap();
    let gw = gateway(
        cloud.port,
        &format!(
            "topic t/# out 1\nbridge_cafile {}\nbridge_certfile {cert}\nbridge_keyfile {key}\n",
            pki.path("ca.pem")
        ),
    );
    assert!(eventually(WAIT * 2, || gw
        .log_text()
        .contains("Bridge cloud: connection failed")));
    assert_eq!(connects(&gw), 0);
    std::fs::copy(pki.path("client.pem"), &cert).unwrap();
    std::fs::copy(pki.path("client.key"), &key).unwrap();
    wait_state(&mut state_watcher(&gw, "watch"), "1", WAIT * 3);
}

/// A TCP proxy between the gateway and the cloud that the test can cut (close every
/// connection, refuse new ones) or turn into a black hole (keep connections, drop bytes).
struct Proxy {
    port: u16,
    /// 0 pass, 1 cut, 2 black hole.
    mode: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<thread::JoinHandle<()>>>,
}

const PASS: u8 = 0;
const CUT: u8 = 1;
const BLACK_HOLE: u8 = 2;

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        Proxy::start_on(0, upstream)
    }

    /// A proxy on a given port (0: any).
    fn start_on(port: u16, upstream: u16) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the proxy");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(PASS));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (mode.clone(), stop.clone());
        let accept = thread::spawn(move || {
            let mut pumps = Vec::new();
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        if m.load(Ordering::SeqCst) == CUT {
                            continue; // Dropped: closed at once.
                        }
                        let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                            continue;
                        };
                        client.set_nonblocking(false).unwrap();
                        for (from, to) in [
                            (client.try_clone().unwrap(), server.try_clone().unwrap()),
                            (server, client),
                        ] {
                            let (m, s) = (m.clone(), s.clone());
                            pumps.push(thread::spawn(move || pump(from, to, &m, &s)));
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
            for p in pumps {
                let _ = p.join();
            }
        });
        Proxy {
            port,
            mode,
            stop,
            threads: Mutex::new(vec![accept]),
        }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.lock().unwrap().drain(..) {
            let _ = t.join();
        }
    }
}

/// Copies `from` to `to` until either ends, the proxy stops, or the link is cut; in
/// black-hole mode the bytes are read and dropped.
fn pump(mut from: TcpStream, mut to: TcpStream, mode: &AtomicU8, stop: &AtomicBool) {
    from.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if stop.load(Ordering::SeqCst) || mode.load(Ordering::SeqCst) == CUT {
            break;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if mode.load(Ordering::SeqCst) == BLACK_HOLE {
                    continue;
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// Asserts that `got` holds payloads 0..n in order, allowing QoS 1 duplicates (a message
/// in flight when the link went down is sent again), and none missing.
/// Publishes `0`, `1`, ... (the numbers of `seq`) on `data/seq` at QoS 1, as the
/// gateway's devices do in these tests.
fn publish_seq(gw_pub: &mut Peer, seq: std::ops::Range<usize>) {
    for i in seq {
        gw_pub.publish(
            "data/seq",
            QoS::AtLeastOnce,
            false,
            i.to_string().as_bytes(),
        );
    }
}

fn assert_all_in_order(got: &[(String, String)], n: usize) {
    let mut expected = 0;
    for (_, payload) in got {
        let i: usize = payload.parse().expect("numbered payloads");
        if i == expected {
            expected += 1;
        } else {
            assert!(
                i < expected,
                "message {i} arrived before {expected}: {got:?}"
            );
        }
    }
    assert_eq!(expected, n, "messages missing at the cloud: {got:?}");
}

/// Store and forward: with the link cut, messages the gateway acknowledged wait in the
/// bridge's local session; when the link returns, all arrive at the cloud, in order.
#[test]
fn messages_published_during_an_outage_arrive_after_it() {
    const N: usize = 50;
    let cloud = Broker::start_culex("");
    let proxy = Proxy::start(cloud.port);
    let gw = gateway(proxy.port, "topic data/# out 1\nkeepalive_interval 5");
    let mut watcher = state_watcher(&gw, "watch");
    wait_state(&mut watcher, "1", WAIT * 3);
    let mut cloud_sub = cloud.client("cloud-sub");
    cloud_sub.subscribe("data/#", QoS::AtLeastOnce);

    proxy.set(CUT);
    wait_state(&mut watcher, "0", WAIT);
    let mut gw_pub = gw.client("gw-pub");
    publish_seq(&mut gw_pub, 0..N);
    cloud_sub.expect_no_publish();
    proxy.set(PASS);
    wait_state(&mut watcher, "1", WAIT * 3);
    let got = collect(&mut cloud_sub, N, WAIT * 3);
    assert_all_in_order(&got, N);
    assert!(gw
        .log_text()
        .contains("Connecting bridge cloud (127.0.0.1:"));
}

/// A link that silently stops carrying packets (no FIN, no RST) is noticed by keep alive;
/// the messages sent into the black hole are sent again after reconnecting.
#[test]
fn a_black_holed_link_is_detected_by_keep_alive_and_nothing_is_lost() {
    const N: usize = 30;
    let cloud = Broker::start_culex("");
    let proxy = Proxy::start(cloud.port);
    let gw = gateway(proxy.port, "topic data/# out 1\nkeepalive_interval 5");
    let mut watcher = state_watcher(&gw, "watch");
    wait_state(&mut watcher, "1", WAIT * 3);
    let mut cloud_sub = cloud.client("cloud-sub");
    cloud_sub.subscribe("data/#", QoS::AtLeastOnce);

    proxy.set(BLACK_HOLE);
    let mut gw_pub = gw.client("gw-pub");
    publish_seq(&mut gw_pub, 0..N);
    // Keep alive: a PINGREQ after 5 s of silence, the link declared dead 5 s later.
    let started = Instant::now();
    wait_state(&mut watcher, "0", Duration::from_secs(20));
    let detected = started.elapsed();
    assert!(
        detected <= Duration::from_secs(16),
        "took {detected:?} to notice"
    );
    proxy.set(PASS);
    wait_state(&mut watcher, "1", WAIT * 3);
    let got = collect(&mut cloud_sub, N, WAIT * 3);
    assert_all_in_order(&got, N);
}

/// Failover: with the first address dead, the bridge connects to the second.
#[test]
fn a_dead_first_address_fails_over_to_the_next() {
    let cloud = Broker::start_culex("");
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let gw = Broker::start_culex(&format!(
        "connection cloud\naddresses 127.0.0.1:{dead} 127.0.0.1:{}\nremote_clientid gw1\nrestart_timeout 1\ntopic f/# out 1\n",
        cloud.port
    ));
    let mut watcher = state_watcher(&gw, "watch");
    wait_state(&mut watcher, "1", WAIT * 3);
    let mut cloud_sub = cloud.client("cloud-sub");
    cloud_sub.subscribe("f/#", QoS::AtLeastOnce);
    gw.client("gw-pub")
        .publish("f/1", QoS::AtLeastOnce, false, b"over");
    assert_eq!(
        collect(&mut cloud_sub, 1, WAIT),
        [("f/1".into(), "over".into())]
    );
    assert!(eventually(WAIT, || gw.log_text().contains(&format!(
        "Connecting bridge cloud (127.0.0.1:{dead})"
    ))));
}

/// TLS with a client certificate, as AWS IoT Core wants: the cloud requires a
/// certificate from our CA; the bridge verifies the cloud's certificate against
/// `bridge_cafile` (name 127.0.0.1 from the address: SNI and the name check) and presents
/// its own.
#[test]
fn a_bridge_with_a_client_certificate_crosses_mutual_tls() {
    let pki = crate::tls::Pki::new("bridge-mtls");
    let cloud = Broker::start_culex(&pki.listener_conf(&format!(
        "cafile {}\nrequire_certificate true\n",
        pki.path("ca.pem")
    )));
    let gw = gateway(
        cloud.port,
        &format!(
            "topic t/# both 1\nbridge_protocol_version mqttv50\nbridge_cafile {}\nbridge_certfile {}\nbridge_keyfile {}\n",
            pki.path("ca.pem"),
            pki.path("client.pem"),
            pki.path("client.key")
        ),
    );
    let mut watcher = state_watcher(&gw, "watch");
    wait_state(&mut watcher, "1", WAIT * 3);
    let tls = pki.client_config(Some("client"), rustls::ALL_VERSIONS);
    let mut cloud_peer = Peer::connect(crate::tls::tls_options(&cloud, "cloud-peer", tls)).0;
    cloud_peer.subscribe("t/out", QoS::AtLeastOnce);
    let mut gw_peer = gw.client("gw-peer");
    gw_peer.subscribe("t/in", QoS::AtLeastOnce);
    gw_peer.publish("t/out", QoS::AtLeastOnce, false, b"sealed");
    assert_eq!(
        collect(&mut cloud_peer, 1, WAIT),
        [("t/out".into(), "sealed".into())]
    );
    cloud_peer.publish("t/in", QoS::AtLeastOnce, false, b"opened");
    assert_eq!(
        collect(&mut gw_peer, 1, WAIT),
        [("t/in".into(), "opened".into())]
    );
}

/// Without the client certificate, the cloud refuses the handshake: the link never
/// comes up and the bridge says why.
#[test]
fn a_bridge_without_the_client_certificate_is_refused_by_the_cloud() {
    let pki = crate::tls::Pki::new("bridge-nocert");
    let cloud = Broker::start_culex(&pki.listener_conf(&format!(
        "cafile {}\nrequire_certificate true\n",
        pki.path("ca.pem")
    )));
    let gw = gateway(
        cloud.port,
        &format!("topic t/# out 1\nbridge_cafile {}\n", pki.path("ca.pem")),
    );
    assert!(eventually(WAIT * 2, || gw
        .log_text()
        .contains("Bridge cloud: connection failed")));
    assert!(!gw.log_text().contains("Bridge cloud connected"));
}

/// A 3.1.1 bridge announces itself with the protocol level's top bit (try_private, the
/// default); the cloud then gives its subscriptions No Local, as Mosquitto does, so a
/// `both` topic does not bring a message back to where it came from.
#[test]
fn a_3_1_1_bridge_with_try_private_does_not_echo() {
    let cloud = Broker::start_culex("");
    let gw = gateway(cloud.port, "topic sync/# both 1");
    let mut watcher = state_watcher(&gw, "watch");
    wait_state(&mut watcher, "1", WAIT * 3);
    let mut cloud_sub = cloud.client("cloud-sub");
    cloud_sub.subscribe("sync/#", QoS::AtLeastOnce);
    let mut gw_sub = gw.client("gw-sub");
    gw_sub.subscribe("sync/#", QoS::AtLeastOnce);
    gw.client("gw-pub")
        .publish("sync/a", QoS::AtLeastOnce, false, b"once");
    assert_eq!(
        collect(&mut cloud_sub, 1, WAIT),
        [("sync/a".into(), "once".into())]
    );
    assert_eq!(
        collect(&mut gw_sub, 1, WAIT),
        [("sync/a".into(), "once".into())]
    );
    gw_sub.expect_no_publish();
    cloud
        .client("cloud-pub")
        .publish("sync/b", QoS::AtLeastOnce, false, b"back");
    assert_eq!(
        collect(&mut gw_sub, 1, WAIT),
        [("sync/b".into(), "back".into())]
    );
    assert_eq!(
        collect(&mut cloud_sub, 1, WAIT),
        [("sync/b".into(), "back".into())]
    );
    cloud_sub.expect_no_publish();
}

/// The local session exists from start-up: messages published while the cloud has never
/// been reachable are kept and delivered once it is.
#[test]
fn messages_wait_for_a_cloud_that_was_never_reachable() {
    const N: usize = 20;
    let cloud = Broker::start_culex("");
    let proxy = Proxy::start(cloud.port);
    proxy.set(CUT);
    let gw = gateway(proxy.port, "topic data/# out 1");
    let mut gw_pub = gw.client("gw-pub");
    publish_seq(&mut gw_pub, 0..N);
    let mut cloud_sub = cloud.client("cloud-sub");
    cloud_sub.subscribe("data/#", QoS::AtLeastOnce);
    proxy.set(PASS);
    let got = collect(&mut cloud_sub, N, WAIT * 3);
    assert_all_in_order(&got, N);
}

/// start_type lazy: no connection until `threshold` messages wait; then they are sent,
/// and after `idle_timeout` seconds without messages the link is closed again.
#[test]
fn a_lazy_bridge_starts_at_its_threshold_and_stops_when_idle() {
    let cloud = Broker::start_culex("");
    let gw = gateway(
        cloud.port,
        "topic data/# out 1\nstart_type lazy\nthreshold 3\nidle_timeout 2",
    );
    let mut watcher = state_watcher(&gw, "watch");
    let mut cloud_sub = cloud.client("cloud-sub");
    cloud_sub.subscribe("data/#", QoS::AtLeastOnce);
    let mut gw_pub = gw.client("gw-pub");
    publish_seq(&mut gw_pub, 0..2);
    std::thread::sleep(Duration::from_millis(1500));
    cloud_sub.expect_no_publish();
    assert!(!gw.log_text().contains("Connecting bridge cloud"));
    gw_pub.publish("data/seq", QoS::AtLeastOnce, false, b"2");
    wait_state(&mut watcher, "1", WAIT * 2);
    assert_all_in_order(&collect(&mut cloud_sub, 3, WAIT), 3);
    wait_state(&mut watcher, "0", WAIT * 2);
    assert!(gw.log_text().contains("stopping (start_type lazy)"));
}

/// start_type lazy with `cleansession true` (so local_cleansession true): the local
/// session is kept anyway, so messages wait while the bridge is stopped and the bridge
/// starts at its threshold. (Before, nothing waited and the bridge never started.)
#[test]
fn a_lazy_bridge_with_a_clean_session_starts_at_its_threshold() {
    let cloud = Broker::start_culex("");
    let gw = gateway(
        cloud.port,
        "topic data/# out 1\nstart_type lazy\nthreshold 3\ncleansession true",
    );
    let mut cloud_sub = cloud.client("cloud-sub");
    cloud_sub.subscribe("data/#", QoS::AtLeastOnce);
    let mut gw_pub = gw.client("gw-pub");
    publish_seq(&mut gw_pub, 0..3);
    assert_all_in_order(&collect(&mut cloud_sub, 3, WAIT * 3), 3);
    assert!(gw
        .log_text()
        .contains("start_type lazy keeps its local session"));
}

/// $SYS/broker/connection/NAME/...: whether connected, messages sent, and the backlog.
#[test]
fn sys_topics_show_the_bridge_progress() {
    let cloud = Broker::start_culex("");
    let gw = gateway(cloud.port, "topic data/# out 1\nsys_interval 1");
    let mut watcher = state_watcher(&gw, "watch");
    wait_state(&mut watcher, "1", WAIT * 3);
    let mut gw_pub = gw.client("gw-pub");
    publish_seq(&mut gw_pub, 0..3);
    let mut sys = gw.client("sys");
    sys.subscribe(
        "$SYS/broker/connection/cloud/messages/sent",
        QoS::AtMostOnce,
    );
    let deadline = Instant::now() + WAIT;
    let mut last = String::new();
    while last != "3" && Instant::now() < deadline {
        if let Some(p) = sys.next_publish(deadline - Instant::now()) {
            last = String::from_utf8_lossy(&p.payload).into_owned();
        }
    }
    assert_eq!(last, "3");
}

/// The retained value of `$SYS/broker/connection/cloud/<name>` once it satisfies `ok`
/// (read by a new subscription each time, so it is the current one), within `limit`.
fn wait_sys(gw: &Broker, name: &str, limit: Duration, ok: impl Fn(&str) -> bool) -> String {
    let topic = format!("$SYS/broker/connection/cloud/{name}");
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    while Instant::now() < deadline {
        let mut sys = gw.client("sys-reader");
        sys.subscribe(&topic, QoS::AtMostOnce);
        if let Some(p) = sys.next_publish(Duration::from_millis(500)) {
            last = String::from_utf8_lossy(&p.payload).into_owned();
            if ok(&last) {
                return last;
            }
        }
        drop(sys);
        thread::sleep(Duration::from_millis(200));
    }
    panic!("{topic} stayed {last:?} for {limit:?}");
}

/// #22: while the cloud is unreachable, the bridge's $SYS health shows the backlog
/// growing and ageing and why the link is down; after it reconnects the backlog and its
/// age fall back to 0, `connected` is 1 at once (published on the change of state, not
/// at the next interval) and `connected_since` is set.
#[test]
fn bridge_health_shows_a_growing_backlog_while_the_cloud_is_down() {
    let cloud = Broker::start_culex("");
    let proxy = Proxy::start(cloud.port);
    proxy.set(CUT);
    let gw = gateway(
        proxy.port,
        "topic data/# out 1
sys_interval 1",
    );
    let mut gw_pub = gw.client("gw-pub");
    publish_seq(&mut gw_pub, 0..5);
    wait_sys(&gw, "backlog/messages", WAIT, |v| v == "5");
    assert_eq!(wait_sys(&gw, "backlog/bytes", WAIT, |v| v != "0"), "5");
    wait_sys(&gw, "backlog/oldest_age", WAIT * 2, |v| {
        v.parse::<u64>().is_ok_and(|age| age >= 2)
    });
    let error = wait_sys(&gw, "last_error", WAIT, |v| !v.is_empty());
    assert!(
        error.contains("closed") || error.contains("reset") || error.contains("refused"),
        "{error}"
    );
    assert_eq!(wait_sys(&gw, "connected", WAIT, |_| true), "0");
    assert_eq!(
        wait_sys(&gw, "address", WAIT, |_| true),
        format!("127.0.0.1:{}", proxy.port)
    );
    assert_eq!(wait_sys(&gw, "dropped/full", WAIT, |_| true), "0");

    let mut cloud_sub = cloud.client("cloud-sub");
    cloud_sub.subscribe("data/#", QoS::AtLeastOnce);
    proxy.set(PASS);
    wait_sys(&gw, "connected", WAIT * 3, |v| v == "1");
    wait_sys(&gw, "backlog/messages", WAIT * 2, |v| v == "0");
    wait_sys(&gw, "backlog/oldest_age", WAIT * 2, |v| v == "0");
    let since: u64 = wait_sys(&gw, "connected_since", WAIT, |v| v != "0")
        .parse()
        .unwrap();
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(since <= unix_now && since + 60 > unix_now, "{since}");
}

/// culex's bridge_outbox_messages and bridge_outbox_full: while the cloud is away at most
/// that many messages wait; with drop_oldest the newest are the ones kept.
#[test]
fn a_full_outbox_drops_its_oldest_messages_when_told_to() {
    let cloud = Broker::start_culex("");
    let proxy = Proxy::start(cloud.port);
    let gw = gateway(
        proxy.port,
        "topic data/# out 1\nbridge_outbox_messages 5\nbridge_outbox_full drop_oldest",
    );
    let mut watcher = state_watcher(&gw, "watch");
    wait_state(&mut watcher, "1", WAIT * 3);
    let mut cloud_sub = cloud.client("cloud-sub");
    cloud_sub.subscribe("data/#", QoS::AtLeastOnce);
    proxy.set(CUT);
    wait_state(&mut watcher, "0", WAIT);
    let mut gw_pub = gw.client("gw-pub");
    publish_seq(&mut gw_pub, 0..20);
    proxy.set(PASS);
    let got: Vec<String> = collect(&mut cloud_sub, 5, WAIT * 3)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(got, ["15", "16", "17", "18", "19"]);
    cloud_sub.expect_no_publish();
}

/// bridge_bind_address picks the local address of the bridge's socket (the cloud sees
/// it); bridge_tcp_keepalive and bridge_tcp_user_timeout are set on the same socket.
#[test]
fn bridge_bind_address_and_tcp_options_shape_the_socket() {
    let cloud = Broker::start_culex("");
    let gw = gateway(
        cloud.port,
        "topic x/# out 1\nbridge_bind_address 127.0.0.2\nbridge_tcp_keepalive 30 5 3\nbridge_tcp_user_timeout 10000",
    );
    let mut watcher = state_watcher(&gw, "watch");
    wait_state(&mut watcher, "1", WAIT * 3);
    assert!(eventually(WAIT, || cloud
        .log_text()
        .contains("New client connected from 127.0.0.2:")));
}

/// A clean stop (SIGTERM) tells the cloud "0" before DISCONNECT (which discards the will
/// that would otherwise say it).
#[test]
fn a_clean_stop_tells_the_cloud_the_link_is_down() {
    let cloud = Broker::start_culex("");
    let mut cloud_watch = state_watcher(&cloud, "cloud-watch");
    let gw = gateway(cloud.port, "topic x/# out 0");
    wait_state(&mut cloud_watch, "1", WAIT * 3);
    gw.signal("TERM");
    wait_state(&mut cloud_watch, "0", WAIT);
    // DISCONNECT, not a lost socket (the will would have said "0" too).
    assert!(eventually(WAIT, || cloud
        .log_text()
        .contains("Client gw1 disconnected.")));
}

/// bridge_max_packet_size: a message too large for the remote is dropped (and logged),
/// and the local session is done with it: it does not stay in flight to be sent again.
#[test]
fn a_message_over_bridge_max_packet_size_is_dropped_not_kept() {
    let cloud = Broker::start_culex("");
    let gw = gateway(
        cloud.port,
        "topic d/# out 1\nbridge_max_packet_size 100\nsys_interval 1",
    );
    let mut watcher = state_watcher(&gw, "watch");
    wait_state(&mut watcher, "1", WAIT * 3);
    let mut cloud_sub = cloud.client("cloud-sub");
    cloud_sub.subscribe("d/#", QoS::AtLeastOnce);
    let mut gw_pub = gw.client("gw-pub");
    gw_pub.publish("d/big", QoS::AtLeastOnce, false, &[b'x'; 500]);
    gw_pub.publish("d/small", QoS::AtLeastOnce, false, b"fits");
    assert_eq!(
        collect(&mut cloud_sub, 1, WAIT),
        [("d/small".into(), "fits".into())]
    );
    cloud_sub.expect_no_publish();
    assert!(gw
        .log_text()
        .contains("larger than the remote's maximum packet size"));
    // After a $SYS interval the retained value is current: nothing in flight.
    thread::sleep(Duration::from_millis(1500));
    let mut sys = gw.client("sys");
    sys.subscribe(
        "$SYS/broker/connection/cloud/messages/inflight",
        QoS::AtMostOnce,
    );
    let p = sys.expect_publish();
    assert_eq!(p.payload.as_ref(), b"0");
}

/// With `persistence true` the outbox is durable: messages the gateway acknowledged while
/// the cloud was unreachable are delivered after the gateway was killed (SIGKILL) and
/// restarted, all of them, in order.
#[test]
fn the_outbox_survives_a_crash_of_the_gateway_during_an_outage() {
    const N: usize = 30;
    let dir = std::env::temp_dir().join(format!("culex-bridge-persist-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cloud = Broker::start_culex("");
    let proxy = Proxy::start(cloud.port);
    proxy.set(CUT);
    let mut gw = gateway(
        proxy.port,
        &format!(
            "topic data/# out 1\npersistence true\npersistence_location {}",
            dir.display()
        ),
    );
    let mut gw_pub = gw.client("gw-pub");
    publish_seq(&mut gw_pub, 0..N);
    drop(gw_pub);
    gw.restart(Stop::Kill);
    let mut cloud_sub = cloud.client("cloud-sub");
    cloud_sub.subscribe("data/#", QoS::AtLeastOnce);
    proxy.set(PASS);
    let got = collect(&mut cloud_sub, N, WAIT * 3);
    let _ = std::fs::remove_dir_all(&dir);
    assert_all_in_order(&got, N);
}

/// round_robin false (the default): while the link is up on a secondary address, the
/// primary is tried every 5 s; once it takes connections, the bridge goes back to it.
#[test]
fn the_bridge_goes_back_to_the_primary_once_it_answers() {
    let primary = Broker::start_culex("");
    let secondary = Broker::start_culex("");
    // A port with nothing listening yet: the primary's way in, opened later.
    let primary_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gw = Broker::start_culex(&format!(
        "connection cloud\naddresses 127.0.0.1:{primary_port} 127.0.0.1:{}\nremote_clientid gw1\nrestart_timeout 1\ntopic f/# out 1\n",
        secondary.port
    ));
    assert!(eventually(WAIT * 3, || secondary
        .log_text()
        .contains("as gw1")));
    let _proxy = Proxy::start_on(primary_port, primary.port);
    // The next try of the primary is at most 5 s away, then a reconnect.
    assert!(eventually(Duration::from_secs(12), || primary
        .log_text()
        .contains("as gw1")));
    assert!(gw
        .log_text()
        .contains("the primary address is reachable again"));
    let mut sub = primary.client("sub");
    sub.subscribe("f/#", QoS::AtLeastOnce);
    let mut watcher = state_watcher(&gw, "watch");
    wait_state(&mut watcher, "1", WAIT);
    gw.client("pub")
        .publish("f/1", QoS::AtLeastOnce, false, b"home");
    assert_eq!(collect(&mut sub, 1, WAIT), [("f/1".into(), "home".into())]);
}

/// persistent_client_expiration ends forgotten clients' sessions, not a bridge's outbox:
/// after an outage longer than it, the messages still arrive.
#[test]
fn persistent_client_expiration_does_not_expire_the_outbox() {
    let cloud = Broker::start_culex("");
    let proxy = Proxy::start(cloud.port);
    proxy.set(CUT);
    let gw = gateway(
        proxy.port,
        "topic data/# out 1\npersistent_client_expiration 1s",
    );
    let mut gw_pub = gw.client("gw-pub");
    publish_seq(&mut gw_pub, 0..5);
    thread::sleep(Duration::from_millis(2500));
    let mut cloud_sub = cloud.client("cloud-sub");
    cloud_sub.subscribe("data/#", QoS::AtLeastOnce);
    proxy.set(PASS);
    assert_all_in_order(&collect(&mut cloud_sub, 5, WAIT * 3), 5);
}

/// MQTT 5 Maximum QoS: a cloud that takes at most QoS 1 (as AWS IoT Core) gets the
/// bridge's QoS 2 messages at QoS 1 [MQTT-3.2.2-11], and the local QoS 2 exchanges still
/// complete (30 messages, more than the inflight window of 20), without the cloud
/// closing the link for a QoS it refused (0x9B).
#[test]
fn an_mqtt5_cloud_with_maximum_qos_1_gets_qos2_messages_at_qos1() {
    let cloud = Broker::start_culex("max_qos 1");
    let gw = gateway(
        cloud.port,
        "topic data/# out 2\nbridge_protocol_version mqttv50",
    );
    let mut watcher = state_watcher(&gw, "watch");
    wait_state(&mut watcher, "1", WAIT * 3);
    let mut sub = cloud.subscriber("sub", "data/#", QoS::AtLeastOnce);
    let mut publisher = gw.client("pub");
    for i in 0..30 {
        publisher.publish("data/x", QoS::ExactlyOnce, false, format!("{i}").as_bytes());
    }
    let got = collect(&mut sub, 30, WAIT * 4);
    assert_eq!(got.len(), 30, "all arrive: {got:?}");
    for (i, (_, payload)) in got.iter().enumerate() {
        assert_eq!(payload, &i.to_string(), "in order");
    }
    assert!(
        !cloud.log_text().contains("QoS above max_qos"),
        "{}",
        cloud.log_text()
    );
    let connects = gw.log_text().matches("connected to the remote").count();
    assert_eq!(
        connects,
        1,
        "one connection, never dropped:\n{}",
        gw.log_text()
    );
}

/// The gateway's bridge toward a fake remote in the test: the broker, and the bridge's
/// connection as the remote sees it (a clone of the stream to read errors from).
fn bridge_to_fake_remote(lines: &str) -> (Broker, Raw, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let gw = gateway(port, lines);
    let mut stream = None;
    eventually(WAIT * 2, || {
        stream = listener.accept().ok().map(|(s, _)| s);
        stream.is_some()
    });
    let stream = stream.expect("the bridge connects to the fake remote");
    stream.set_nonblocking(false).unwrap();
    let probe = stream.try_clone().unwrap();
    (gw, Raw::from_stream(stream), probe)
}

/// Byte for byte what Mosquitto's bridge sends an MQTT 5 remote (its suite's
/// 06-bridge-* scripts): the CONNECT with Receive Maximum 20 (max_inflight_messages),
/// SUBSCRIBE with packet id 1 (not 65535), PINGRESP to a PINGREQ, the next id (2) for a
/// relayed message, PUBACK Success for a message only the bridge's own No Local
/// subscription matches, and a reset connection after a malformed packet.
#[test]
fn the_bridge_speaks_to_an_mqtt5_remote_as_mosquittos_does() {
    let (gw, mut remote, mut probe) = bridge_to_fake_remote(
        "notifications false\ntopic bridge/# both 1\nbridge_protocol_version mqttv50",
    );
    // CONNECT: MQTT 5, no clean start, keep alive 60, properties: Receive Maximum
    // (0x21) 20, client id "gw1".
    let mut connect = vec![0x10, 0x13, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x00];
    connect.extend_from_slice(&[0x00, 0x3c, 0x03, 0x21, 0x00, 0x14, 0x00, 0x03]);
    connect.extend_from_slice(b"gw1");
    remote.expect(&connect);
    remote.send(&[0x20, 0x03, 0x00, 0x00, 0x00]);
    // SUBSCRIBE id 1, no properties, bridge/# with QoS 1 | No Local | Retain As
    // Published.
    let mut subscribe = vec![0x82, 0x0e, 0x00, 0x01, 0x00, 0x00, 0x08];
    subscribe.extend_from_slice(b"bridge/#");
    subscribe.push(0x0d);
    remote.expect(&subscribe);
    remote.send(&[0x90, 0x04, 0x00, 0x01, 0x00, 0x01]);
    remote.send(&[0xc0, 0x00]);
    remote.expect(&[0xd0, 0x00]);

    let mut device = gw.client("device");
    device.publish("bridge/out", QoS::AtLeastOnce, false, b"m");
    let (qos, _, topic, id, payload) = next_bridge_publish(&mut remote);
    assert_eq!(
        (qos, topic.as_str(), id, &payload[..]),
        (1, "bridge/out", 2, &b"m"[..])
    );
    remote.send(&[0x40, 0x02, 0x00, 0x02]);

    // A QoS 1 message from the remote, id 20, on a topic nobody but the bridge's own
    // subscription (No Local) matches: PUBACK Success, in its short form.
    let mut publish = vec![0x32, 0x0f, 0x00, 0x09];
    publish.extend_from_slice(b"bridge/in");
    publish.extend_from_slice(&[0x00, 0x14, 0x00, b'x']);
    remote.send(&publish);
    remote.expect(&[0x40, 0x02, 0x00, 0x14]);

    // A PUBLISH with the topic name "++++++" (malformed [MQTT-3.3.2-2]) and a PINGREQ:
    // the bridge resets the connection, as Mosquitto's does.
    remote.send(&[
        0x32, 0x0c, 0x00, 0x06, b'+', b'+', b'+', b'+', b'+', b'+', 0x00, 0x04,
    ]);
    remote.try_send(&[0x00, 0x33, 0xc0, 0x00]);
    probe.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 64];
    let end = loop {
        match probe.read(&mut buf) {
            Ok(0) => break "closed (FIN)".to_string(),
            Ok(_) => continue,
            Err(e) => break format!("{:?}", e.kind()),
        }
    };
    assert_eq!(end, "ConnectionReset");
}

/// culex's bridge_latest_only, bridge_outbox_max_age and bridge_replay_rate through real
/// sockets: during an outage, a message older than the age limit is gone by the time
/// the cloud returns, a state topic arrives once with its newest value, the rest once
/// and in order; the backlog arrives at no more than the replay rate, and a message
/// published after the link came back overtakes it.
#[test]
fn the_outbox_sheds_aged_and_superseded_messages_and_paces_its_replay() {
    let cloud = Broker::start_culex("");
    let proxy = Proxy::start(cloud.port);
    let gw = gateway(
        proxy.port,
        "topic data/# out 1\ntopic state/# out 1\nbridge_latest_only state/#\n\
         bridge_outbox_max_age 2\nbridge_replay_rate 5",
    );
    let mut watcher = state_watcher(&gw, "watch");
    wait_state(&mut watcher, "1", WAIT * 3);
    let mut cloud_sub = cloud.client("cloud-sub");
    cloud_sub.subscribe("data/#", QoS::AtLeastOnce);
    cloud_sub.subscribe("state/#", QoS::AtLeastOnce);
    proxy.set(CUT);
    wait_state(&mut watcher, "0", WAIT);
    let mut gw_pub = gw.client("gw-pub");
    gw_pub.publish("data/old", QoS::AtLeastOnce, false, b"aged");
    std::thread::sleep(Duration::from_millis(3500));
    for i in 0..8 {
        gw_pub.publish(
            "state/valve",
            QoS::AtLeastOnce,
            false,
            format!("v{i}").as_bytes(),
        );
        gw_pub.publish(
            "data/seq",
            QoS::AtLeastOnce,
            false,
            i.to_string().as_bytes(),
        );
    }
    proxy.set(PASS);
    wait_state(&mut watcher, "1", WAIT * 3);
    gw_pub.publish("data/live", QoS::AtLeastOnce, false, b"now");
    let deadline = Instant::now() + WAIT * 3;
    let mut got = Vec::new();
    while got.len() < 10 && Instant::now() < deadline {
        if let Some(p) = cloud_sub.next_publish(deadline - Instant::now()) {
            let payload = String::from_utf8_lossy(&p.payload).into_owned();
            got.push((p.topic.clone(), payload, Instant::now()));
        }
    }
    let names: Vec<String> = got.iter().map(|(t, p, _)| format!("{t}={p}")).collect();
    let backlog: Vec<&String> = names.iter().filter(|n| *n != "data/live=now").collect();
    // v7 went to the end of the queue when it replaced v6, just before seq 7.
    let mut expected: Vec<String> = (0..8).map(|i| format!("data/seq={i}")).collect();
    expected.insert(7, "state/valve=v7".into());
    assert_eq!(backlog, expected.iter().collect::<Vec<_>>(), "{names:?}");
    let live = names
        .iter()
        .position(|n| n == "data/live=now")
        .expect("the live message arrived");
    assert!(
        live < 9,
        "the live message came after the whole backlog: {names:?}"
    );
    // 9 backlog messages at 5 per second: the 8 intervals take 1.6 s at least (a little
    // less measured at the cloud, whose reads can bunch).
    let (first, last) = (got[0].2, got[got.len() - 1].2);
    assert!(
        last - first >= Duration::from_millis(1300),
        "{:?}",
        last - first
    );
    cloud_sub.expect_no_publish();
}
