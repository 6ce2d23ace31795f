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

/// A written outbox larger than the pool takes (64 KiB) stays with its connection while
/// it is used again within a second (a busy subscriber empties its outbox every turn,
/// and growing it back each time cost reallocations and fresh pages: #20), and is given
/// up once it has been empty for that second. One larger than outbox_limit is given up
/// at once.
#[test]
fn a_written_large_outbox_is_kept_a_second_then_given_up() {
    let mut h = Harness::default();
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("t", Q0)]);
    let p = h.connect(2, "pub", true, 0, None);
    let burst = |h: &mut Harness| {
        for _ in 0..100 {
            h.send(p, &publish("t", &[7; 1000], Q0, 0));
        }
        let n = h.broker.output(s).len();
        assert!(n > 100_000);
        h.broker.consume_output(s, n);
    };
    burst(&mut h);
    let kept = h.outbox(s).capacity();
    assert!(kept > 100_000, "kept {kept}");
    assert!(h.outbox(s).is_empty());
    // Used again within the second: still kept, with no new allocation.
    h.advance(Duration::from_millis(500));
    burst(&mut h);
    assert_eq!(h.outbox(s).capacity(), kept);
    // In use when the check comes: looked at again a second later.
    h.send(p, &publish("t", &[7; 10], Q0, 0));
    h.advance(Duration::from_millis(600));
    assert_eq!(h.outbox(s).capacity(), kept);
    let n = h.broker.output(s).len();
    h.broker.consume_output(s, n);
    h.advance(Duration::from_millis(1100));
    assert_eq!(h.outbox(s).capacity(), 0, "empty for a second: given up");

    // Larger than outbox_limit (1 MiB): freed as soon as it is written.
    for _ in 0..1200 {
        h.send(p, &publish("t", &[7; 1000], Q0, 0));
    }
    let n = h.broker.output(s).len();
    assert!(n > 1 << 20);
    h.broker.consume_output(s, n);
    assert_eq!(h.outbox(s).capacity(), 0);
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
