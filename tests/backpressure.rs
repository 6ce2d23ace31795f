//! Backpressure (issue #20): a burst to a subscriber that reads slowly is delivered, not
//! dropped. culex stops reading a publisher while a subscriber its messages go to is
//! behind, and reads it again when the subscriber has drained.

use crate::common::*;
use rumqttc::QoS;
use std::thread;
use std::time::{Duration, Instant};

/// Messages of each burst, and the QoS 0 payload size: 20,000 x 1,000 bytes (20 MB) are
/// far more than the subscriber's socket buffers and culex's 1 MiB output limit hold.
const QOS0_MESSAGES: u32 = 20_000;
const QOS0_PAYLOAD: usize = 1_000;
/// Four times max_queued_messages (1,000 by default).
const QOS1_MESSAGES: u32 = 4_000;
/// The whole test, with its slow reader, takes a few seconds; this is its bound.
const LIMIT: Duration = Duration::from_secs(90);

/// The payload of message `seq`: its number, then filler.
fn payload(seq: u32, len: usize) -> Vec<u8> {
    let mut p = seq.to_be_bytes().to_vec();
    p.resize(len, 0x5a);
    p
}

/// (QoS, packet id, topic, payload) of a PUBLISH as a 3.1.1 broker sends it.
fn parse_publish(packet: &[u8]) -> (u8, u16, &[u8], &[u8]) {
    assert_eq!(
        packet[0] & 0xf0,
        0x30,
        "PUBLISH expected: {}",
        hex(&packet[..8])
    );
    let qos = (packet[0] >> 1) & 3;
    let mut i = 1;
    while packet[i] & 0x80 != 0 {
        i += 1;
    }
    i += 1;
    let topic_len = usize::from(u16::from_be_bytes([packet[i], packet[i + 1]]));
    let topic = &packet[i + 2..i + 2 + topic_len];
    i += 2 + topic_len;
    let mut packet_id = 0;
    if qos > 0 {
        packet_id = u16::from_be_bytes([packet[i], packet[i + 1]]);
        i += 2;
    }
    (qos, packet_id, topic, &packet[i..])
}

/// A subscriber that reads slowly (about 8 MB/s: a pause of 1 ms every 8 packets) gets
/// an open-loop burst of 20 MB at QoS 0 and, at the same time, 4,000 QoS 1 messages that
/// it acknowledges as it reads them: every message arrives, once and in order, nothing
/// is counted as dropped, and `$SYS/broker/clients/holds` shows that publishers were
/// held. Both publishers write without waiting (the QoS 1 one reads its PUBACKs at the
/// end, all 4,000 of them). Before #20, culex read the publishers as fast as they wrote,
/// dropped QoS 0 beyond the subscriber's 1 MiB output limit and QoS 1 beyond its queue
/// of 1,000, after their PUBACKs had gone out.
#[test]
fn a_burst_to_a_slow_subscriber_is_delivered_whole() {
    let broker = Broker::start_culex("sys_interval 1");
    let mut sub = broker.raw_connected("slow");
    sub.send(&subscribe_packet(1, "bp/#", 1));
    sub.expect(&[0x90, 0x03, 0x00, 0x01, 0x01]);
    let started = Instant::now();

    let mut p0 = broker.raw_connected("burst0");
    let qos0 = thread::spawn(move || {
        let mut burst = Vec::new();
        for seq in 0..QOS0_MESSAGES {
            let body = payload(seq, QOS0_PAYLOAD);
            burst.extend_from_slice(&publish_packet(b"bp/0", 0, false, false, 0, &body));
        }
        for chunk in burst.chunks(64 * 1024) {
            p0.send(chunk);
        }
        p0
    });
    let mut p1 = broker.raw_connected("burst1");
    let qos1 = thread::spawn(move || {
        let mut burst = Vec::new();
        for seq in 0..QOS1_MESSAGES {
            let id = seq as u16 + 1;
            let body = payload(seq, 16);
            burst.extend_from_slice(&publish_packet(b"bp/1", 1, false, false, id, &body));
        }
        p1.send(&burst);
        for seq in 0..QOS1_MESSAGES {
            let [hi, lo] = (seq as u16 + 1).to_be_bytes();
            p1.expect(&[0x40, 0x02, hi, lo]);
        }
        p1
    });

    let mut next = [0u32; 2];
    let mut packets = 0u64;
    while next != [QOS0_MESSAGES, QOS1_MESSAGES] {
        assert!(
            started.elapsed() < LIMIT,
            "after {LIMIT:?}: {} of {QOS0_MESSAGES} QoS 0 and {} of {QOS1_MESSAGES} QoS 1 messages",
            next[0],
            next[1]
        );
        let packet = sub.read_packet();
        let (qos, packet_id, topic, body) = parse_publish(&packet);
        let stream = match topic {
            b"bp/0" => 0,
            b"bp/1" => 1,
            other => panic!("unexpected topic {}", String::from_utf8_lossy(other)),
        };
        assert_eq!(
            qos,
            stream as u8,
            "QoS of {}",
            String::from_utf8_lossy(topic)
        );
        let seq = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        assert_eq!(
            seq, next[stream],
            "bp/{stream}: message {seq} arrived where {} was due (lost or out of order)",
            next[stream]
        );
        next[stream] += 1;
        if qos == 1 {
            let [hi, lo] = packet_id.to_be_bytes();
            sub.send(&[0x40, 0x02, hi, lo]);
        }
        packets += 1;
        if packets.is_multiple_of(8) {
            thread::sleep(Duration::from_millis(1));
        }
    }
    let (p0, p1) = (qos0.join(), qos1.join());
    let (_p0, _p1) = (
        p0.expect("the QoS 0 burst was sent"),
        p1.expect("the QoS 1 burst was sent and acknowledged"),
    );

    // $SYS is published every second; the values after the bursts are retained.
    thread::sleep(Duration::from_millis(1500));
    let mut sys = broker.subscriber("sys", "$SYS/broker/clients/holds", QoS::AtMostOnce);
    let holds: u64 = String::from_utf8_lossy(&sys.expect_publish().payload)
        .parse()
        .expect("a count");
    assert!(holds > 0, "the publishers were never held");
    let mut sys = broker.subscriber(
        "sys2",
        "$SYS/broker/publish/messages/dropped",
        QoS::AtMostOnce,
    );
    assert_eq!(&sys.expect_publish().payload[..], b"0", "messages dropped");
}

/// Bursts of 250 to 450 KB, each written at once, to a subscriber that reads as fast
/// as it can. Each passes the subscriber's high mark (256 KiB of output) within a turn
/// of the loop, but its socket takes the bytes: culex writes them at once rather than
/// holding the publisher until the end of the turn (`net::Server::relieve`), so the
/// publisher is held at most rarely (when the subscriber's socket is briefly full).
/// Before, a fast subscriber that many publishers fed held them in every turn, and the
/// closed-loop fan-in figure fell by a fifth (#20). Every message still arrives, in
/// order, and each burst at once: the bursts' sizes vary so that some hold the
/// publisher in their last read, whose packets kept back must then be handed over
/// without waiting for more data (an earlier version of the relief left them until the
/// publisher wrote again).
#[test]
fn a_subscriber_whose_socket_takes_the_bytes_holds_nobody_back() {
    const BURSTS: u32 = 16;
    let size = |burst: u32| 250 + burst * 13;
    let total: u32 = (0..BURSTS).map(size).sum();
    let broker = Broker::start_culex("sys_interval 1");
    let mut sub = broker.raw_connected("fast");
    sub.send(&subscribe_packet(1, "kp/#", 0));
    sub.expect(&[0x90, 0x03, 0x00, 0x01, 0x00]);
    let mut publisher = broker.raw_connected("bursts");
    let received = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let reader = {
        let received = received.clone();
        thread::spawn(move || {
            for seq in 0..total {
                let packet = sub.read_packet();
                let (_, _, topic, body) = parse_publish(&packet);
                assert_eq!(topic, b"kp/0");
                assert_eq!(body, payload(seq, 1000), "message {seq}");
                received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    let mut next = 0;
    for burst in 0..BURSTS {
        let mut bytes = Vec::new();
        for seq in next..next + size(burst) {
            let packet = publish_packet(b"kp/0", 0, false, false, 0, &payload(seq, 1000));
            bytes.extend_from_slice(&packet);
        }
        next += size(burst);
        publisher.send(&bytes);
        // The next burst once this one arrived: each meets an empty outbox.
        let started = Instant::now();
        while received.load(std::sync::atomic::Ordering::Relaxed) < next {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "burst {burst}: {} of {next} messages delivered",
                received.load(std::sync::atomic::Ordering::Relaxed)
            );
            thread::sleep(Duration::from_millis(1));
        }
    }
    reader.join().expect("every message arrived in order");

    thread::sleep(Duration::from_millis(1500));
    let mut sys = broker.subscriber("sys", "$SYS/broker/clients/holds", QoS::AtMostOnce);
    let holds: u64 = String::from_utf8_lossy(&sys.expect_publish().payload)
        .parse()
        .expect("a count");
    assert!(
        holds <= u64::from(BURSTS) / 4,
        "the publisher was held {holds} times in {BURSTS} bursts"
    );
}
