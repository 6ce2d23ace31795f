//! Core tests: Inflight window.

use super::*;

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
