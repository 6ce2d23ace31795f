//! Core tests: UNSUBSCRIBE.

use super::*;

/// [MQTT-3.10.4-1] [MQTT-3.10.4-4]: UNSUBSCRIBE deletes the subscription and UNSUBACK
/// carries its packet id; no more messages arrive.
#[test]
fn unsubscribe_stops_delivery_and_unsuback_has_the_packet_id() {
    let mut h = Harness::default();
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("t", Q0)]);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("t", b"1", Q0, 0));
    h.recv(s, &[publish("t", b"1", Q0, 0)]);
    h.send(s, &unsubscribe(513, &["t"]));
    h.recv(s, &[Packet::Unsuback(Unsuback::new(pid(513)))]);
    h.send(p, &publish("t", b"2", Q0, 0));
    h.recv_nothing(s);
    assert_eq!(h.broker.subscription_count(), 0);
}

/// [MQTT-3.10.4-5]: UNSUBACK is sent even if no filter matched a subscription.
#[test]
fn unsuback_is_sent_for_a_filter_never_subscribed() {
    let mut h = Harness::default();
    let s = h.connect(1, "s", true, 0, None);
    h.send(s, &unsubscribe(9, &["never/subscribed", "#"]));
    h.recv(s, &[Packet::Unsuback(Unsuback::new(pid(9)))]);
}
