//! Core tests: backpressure (pressure.rs, issue #20). A subscriber that is behind holds
//! its publishers (the loop stops reading them) until it drains; one that is stalled
//! holds nobody back.

use super::*;

/// An outbox limit of 1,000 bytes: high mark 250, low mark 62.
const LIMIT: usize = 1000;
/// PUBLISH of 100 payload bytes on "t": 2 + 2 + 1 + 100 bytes.
const PACKET: usize = 105;

fn harness(stall: Duration) -> Harness {
    Harness::new(|s| {
        s.outbox_limit = LIMIT;
        s.subscriber_stall_timeout = stall;
    })
}

impl Harness {
    /// The socket of `conn` takes `n` bytes of its outbox (a slow reader); returns them.
    fn take(&mut self, conn: ConnId, n: usize) -> Vec<u8> {
        while let Some(id) = self.broker.poll_dirty() {
            self.dirty.insert(id);
        }
        let out = self.broker.output(conn);
        let n = n.min(out.len());
        let taken = out[..n].to_vec();
        self.broker.consume_output(conn, n);
        if self.broker.wants_refill() {
            self.broker.refill(self.now);
        }
        taken
    }

    fn resumed(&mut self) -> Vec<ConnId> {
        let mut resumed = Vec::new();
        while let Some(id) = self.broker.poll_resumed() {
            resumed.push(id);
        }
        resumed
    }
}

/// Publishes 100-byte QoS 0 messages from `p` until the broker holds it; returns how many
/// were sent. The loop hands over no packet of a held connection, so neither does this.
fn publish_until_held(h: &mut Harness, p: ConnId, payload: &[u8]) -> usize {
    for sent in 1..=100 {
        h.send(p, &publish("t", payload, Q0, 0));
        if h.broker.is_held(p) {
            return sent;
        }
    }
    panic!("the publisher was never held");
}

/// A subscriber whose outbox passes its high mark holds the publisher: the loop is told
/// not to read it. It stays held while the subscriber drains down to its low mark, and
/// is resumed (once) when it gets there. Nothing is dropped, and the subscriber gets
/// every message in order.
#[test]
fn a_subscriber_behind_holds_its_publisher_until_it_drains() {
    let mut h = harness(Duration::from_secs(2));
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("t", Q0)]);
    let p = h.connect(2, "p", true, 0, None);
    let payload = [b'x'; 100];
    let sent = publish_until_held(&mut h, p, &payload);
    // Held by the first delivery that found more than 250 bytes waiting.
    assert_eq!(sent, 250 / PACKET + 2);
    assert_eq!(h.outbox(s).len(), sent * PACKET);
    assert_eq!(h.broker.pressure_gauges(), (1, 0));
    assert!(h.resumed().is_empty());
    // The loop writes the subscriber it waits on at once (net::Server::relieve).
    let mut on = vec![p];
    h.broker.waited_on(p, &mut on);
    assert_eq!(on, [s]);
    h.broker.waited_on(s, &mut on);
    assert!(on.is_empty(), "the subscriber waits on nobody");

    // Draining, but still above the low mark (62 bytes): still held.
    let mut got = h.take(s, sent * PACKET - 100);
    assert!(h.broker.is_held(p));
    assert!(h.resumed().is_empty());
    got.extend(h.take(s, 100));
    assert!(!h.broker.is_held(p));
    assert_eq!(h.resumed(), [p]);
    h.broker.waited_on(p, &mut on);
    assert!(on.is_empty());
    assert_eq!(h.broker.pressure_gauges(), (0, 0));
    assert_eq!(h.broker.dropped_count(), 0);
    assert_eq!(split_frames(&got).len(), sent);
    for frame in split_frames(&got) {
        assert_eq!(decode(&frame), publish("t", &payload, Q0, 0));
    }
    assert_eq!(h.broker.stats.holds, 1);
}

/// A subscriber that takes no bytes for `subscriber_stall_timeout` while it is behind is
/// stalled: the publisher held on it is resumed and not held again; what does not fit
/// under outbox_limit is dropped and counted. Progress pushes the timeout back. Once the
/// subscriber drains it is normal again, and holds its publisher the next time it is
/// behind.
#[test]
fn a_stalled_subscriber_stops_holding_its_publisher() {
    let mut h = harness(Duration::from_secs(2));
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("t", Q0)]);
    let p = h.connect(2, "p", true, 0, None);
    let payload = [b'x'; 100];
    publish_until_held(&mut h, p, &payload);

    h.advance(Duration::from_millis(1500));
    h.take(s, 10); // progress: the stall clock starts again
    h.advance(Duration::from_millis(1500));
    assert!(h.broker.is_held(p), "progress 1.5 s ago: not stalled");
    h.advance(Duration::from_millis(600));
    assert!(!h.broker.is_held(p), "no progress for 2.1 s: stalled");
    assert_eq!(h.resumed(), [p]);
    assert_eq!(h.broker.pressure_gauges(), (0, 1));
    assert_eq!(h.broker.stats.stalls, 1);

    // Stalled: the publisher is not held; QoS 0 is bounded by outbox_limit as before.
    for _ in 0..20 {
        h.send(p, &publish("t", &payload, Q0, 0));
        assert!(!h.broker.is_held(p));
    }
    assert!(h.broker.dropped_count() > 0);
    assert!(h.outbox(s).len() <= LIMIT + PACKET);

    // It drains: normal again; the next backlog holds the publisher again.
    h.take(s, usize::MAX);
    assert_eq!(h.broker.pressure_gauges(), (0, 0));
    publish_until_held(&mut h, p, &payload);
    assert_eq!(h.broker.stats.holds, 2);
}

/// QoS 1: a subscriber that does not acknowledge fills its window, then its queue; past
/// half of max_queued_messages the publisher is held (its PUBACKs still go out), and it
/// is released when the acknowledgements bring the queue under a quarter of that mark.
/// Nothing is dropped. The publisher is MQTT 5 and the subscriber 3.1.1: holding does
/// not depend on the protocol version.
#[test]
fn a_qos1_queue_over_its_mark_holds_the_publisher() {
    let mut h = Harness::new(|s| {
        s.max_inflight_messages = 2;
        s.max_queued_messages = 16; // message marks: 8 high, 2 low
    });
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("t", Q1)]);
    let (p, frames) = h.connect5(2, "p", true, Properties::default(), None);
    assert_eq!(connack_of(&frames).reason, ReasonCode::SUCCESS);
    let mut sent = 0u16;
    while !h.broker.is_held(p) {
        sent += 1;
        assert!(sent < 100, "never held");
        h.send5(p, &publish("t", b"m", Q1, sent));
    }
    // 2 in flight and 8 queued; the 11th delivery found 9 queued.
    assert_eq!(sent, 2 + 8 + 1 + 1);
    assert_eq!(h.recv_frames(p).len(), usize::from(sent), "every PUBACK");
    let mut delivered = h.recv_frames(s);
    let mut acks = 0;
    while h.broker.is_held(p) {
        let packet_id = match decode(&delivered[acks]) {
            Packet::Publish(publish) => publish.packet_id.expect("QoS 1"),
            other => panic!("expected PUBLISH, got {other:?}"),
        };
        h.send(s, &Packet::Puback(Ack::new(packet_id)));
        acks += 1;
        delivered.extend(h.recv_frames(s));
    }
    // Released when 2 were left in the queue: 12 - 2 in flight - 2 queued.
    assert_eq!(acks, usize::from(sent) - 4);
    assert_eq!(h.resumed(), [p]);
    assert_eq!(h.broker.dropped_count(), 0);
}

/// A held publisher's keep alive does not run out while the broker is not reading it;
/// released, it counts as seen.
#[test]
fn a_held_publisher_is_not_disconnected_by_its_keep_alive() {
    let mut h = harness(Duration::from_secs(60));
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("t", Q0)]);
    let p = h.connect(2, "p", true, 2, None);
    publish_until_held(&mut h, p, &[b'x'; 100]);
    for _ in 0..10 {
        h.advance(Duration::from_secs(1));
        h.take(s, 1); // slow, but draining
    }
    assert!(h.closed().is_empty(), "10 s held with a keep alive of 2 s");
    h.take(s, usize::MAX);
    assert_eq!(h.resumed(), [p]);
    h.advance(Duration::from_secs(2));
    assert!(h.closed().is_empty(), "seen when released");
    h.advance(Duration::from_secs(2));
    assert_eq!(h.closed(), [p], "then its keep alive runs again");
}

/// A subscriber that goes away releases its publishers; a held publisher that goes away
/// leaves nothing behind; a client is never held on its own subscription; with
/// `subscriber_stall_timeout 0` nobody is held at all.
#[test]
fn holds_end_with_either_connection_and_never_bind_a_client_to_itself() {
    let payload = [b'x'; 100];
    let mut h = harness(Duration::from_secs(2));
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("t", Q0)]);
    let p = h.connect(2, "p", true, 0, None);
    publish_until_held(&mut h, p, &payload);
    h.drop_socket(s);
    assert!(!h.broker.is_held(p));
    assert_eq!(h.resumed(), [p]);
    assert_eq!(h.broker.pressure_gauges(), (0, 0));

    let s = h.connect(3, "s2", true, 0, None);
    h.subscribe(s, 1, &[("t", Q0)]);
    publish_until_held(&mut h, p, &payload);
    h.drop_socket(p);
    assert_eq!(h.broker.pressure_gauges(), (0, 0));
    assert!(h.resumed().is_empty());
    assert!(
        h.broker.pressure_entries() <= 1,
        "only the watched subscriber"
    );
    h.recv_frames(s);
    assert_eq!(h.broker.pressure_entries(), 0);

    // Its own subscription: never held on itself.
    let own = h.connect(4, "own", true, 0, None);
    h.subscribe(own, 1, &[("own", Q0)]);
    for _ in 0..20 {
        h.send(own, &publish("own", &payload, Q0, 0));
        assert!(!h.broker.is_held(own));
    }

    let mut h = harness(Duration::ZERO);
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("t", Q0)]);
    let p = h.connect(2, "p", true, 0, None);
    for _ in 0..20 {
        h.send(p, &publish("t", &payload, Q0, 0));
        assert!(!h.broker.is_held(p));
    }
    assert!(h.broker.dropped_count() > 0, "the behaviour before #20");
}

/// A subscriber that reads (its PINGRESPs go out) but acknowledges nothing makes no
/// progress on its QoS 1 backlog: it is stalled after `subscriber_stall_timeout` all
/// the same, and its publisher is released.
#[test]
fn pings_are_not_progress_on_an_unacknowledged_queue() {
    let mut h = Harness::new(|s| {
        s.max_inflight_messages = 2;
        s.max_queued_messages = 16;
        s.subscriber_stall_timeout = Duration::from_secs(2);
    });
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("t", Q1)]);
    let p = h.connect(2, "p", true, 0, None);
    let mut sent = 0u16;
    while !h.broker.is_held(p) {
        sent += 1;
        assert!(sent < 100, "never held");
        h.send(p, &publish("t", b"m", Q1, sent));
    }
    h.recv_frames(s);
    for _ in 0..4 {
        h.advance(Duration::from_millis(500));
        h.send(s, &Packet::Pingreq);
        h.recv(s, &[Packet::Pingresp]);
    }
    h.advance(Duration::from_millis(100));
    assert!(
        !h.broker.is_held(p),
        "stalled after 2 s without an acknowledgement"
    );
    assert_eq!(h.resumed(), [p]);
    assert_eq!(h.broker.pressure_gauges(), (0, 1));
}

/// The loop writes a subscriber's output as soon as a publisher is held on it
/// (`net::Server::relieve`) and asks again: a subscriber the write left over its low
/// mark keeps the publisher held, and the hold counts; one the write drained released
/// it, and that hold is not counted (the publisher's socket was never left unread) nor
/// resumed (the loop reads on).
#[test]
fn a_subscriber_drained_at_once_does_not_count_as_a_hold() {
    let mut h = harness(Duration::from_secs(2));
    let s = h.connect(1, "s", true, 0, None);
    h.subscribe(s, 1, &[("t", Q0)]);
    let p = h.connect(2, "p", true, 0, None);
    let payload = [b'x'; 100];
    let sent = publish_until_held(&mut h, p, &payload);
    assert_eq!(h.broker.stats.holds, 1);
    // The socket took all but 200 bytes: between the marks (62 and 250).
    h.take(s, sent * PACKET - 200);
    assert!(!h.broker.relieved(p));
    assert!(h.broker.is_held(p));
    assert_eq!(h.broker.stats.holds, 1);
    // Drained: released, and the hold is undone.
    h.take(s, 200);
    assert!(!h.broker.is_held(p));
    assert!(h.broker.relieved(p));
    assert_eq!(h.broker.stats.holds, 0);
    assert!(
        h.resumed().is_empty(),
        "the loop reads on; nothing to resume"
    );
    assert_eq!(h.broker.pressure_gauges(), (0, 0));
    h.broker.assert_pressure_consistent();
    // Held again later, and released by draining in a later turn: counted.
    publish_until_held(&mut h, p, &payload);
    let n = h.outbox(s).len();
    h.take(s, n);
    assert_eq!(h.resumed(), [p]);
    assert_eq!(h.broker.stats.holds, 1);
    h.broker.assert_pressure_consistent();
}
