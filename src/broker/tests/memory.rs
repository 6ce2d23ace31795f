//! Core tests: Memory.

use super::*;

/// An idle connection owns no outbox buffer: once the socket took everything, the
/// buffer goes back to the pool.
#[test]
fn an_idle_connection_owns_no_buffer() {
    let mut h = Harness::default();
    let s = h.connect(1, "s", true, 0, None);
    assert_eq!(h.outbox(s).capacity(), 0);
    h.subscribe(s, 1, &[("t", Q0)]);
    assert_eq!(h.outbox(s).capacity(), 0);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("t", &[7; 1000], Q0, 0));
    assert!(h.outbox(s).len() > 1000);
    h.recv(s, &[publish("t", &[7; 1000], Q0, 0)]);
    assert!(h.broker.output(s).is_empty());
    assert_eq!(h.outbox(s).capacity(), 0);
    assert_eq!(h.outbox(p).capacity(), 0);
}

/// A partial write keeps the rest of the outbox, in order.
#[test]
fn partial_consume_keeps_the_rest_of_the_outbox() {
    let mut h = Harness::default();
    let c = h.connect(1, "c", true, 0, None);
    h.send(c, &Packet::Pingreq);
    h.send(c, &Packet::Pingreq);
    assert_eq!(h.broker.output(c), [0xd0, 0x00, 0xd0, 0x00]);
    h.broker.consume_output(c, 3);
    assert_eq!(h.broker.output(c), [0x00]);
    h.broker.consume_output(c, 1);
    assert!(h.broker.output(c).is_empty());
    assert_eq!(h.outbox(c).capacity(), 0);
}
