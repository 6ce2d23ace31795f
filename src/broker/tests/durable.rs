//! `persistence_sync ack` (issue 25, cases 4 and 8): every acknowledgement that reports
//! durable state waits until its batch is on disk, nothing sent later to that client
//! overtakes it, and while the store is degraded it is refused after `REFUSE_AFTER`
//! (MQTT 5: a failure reason code; MQTT 3.1.1: the connection closes), never sent as a lie.

use super::*;
use crate::broker::durable::REFUSE_AFTER;
use crate::persist::Status;

/// A broker in `persistence_sync ack` mode.
fn strict() -> Harness {
    let mut h = Harness::default();
    h.broker
        .enable_journal(true, 0, h.now, std::time::SystemTime::now());
    h
}

impl Harness {
    /// The loop hands the journal to the store; returns the batch (0: nothing written).
    pub(super) fn take_batch(&mut self) -> u64 {
        self.broker.take_journal().map_or(0, |(batch, _)| batch)
    }

    /// Everything journaled so far reaches the disk.
    pub(super) fn sync(&mut self) {
        let batch = self.take_batch();
        self.broker.set_durable(batch);
    }

    /// The store reports it cannot write since now (`true`) or is healthy again.
    pub(super) fn set_degraded(&mut self, degraded: bool) {
        let status = Status {
            healthy: !degraded,
            ..Status::default()
        };
        self.broker
            .set_persistence_status(status, degraded.then_some(self.now));
    }

    /// Opens a persistent MQTT 3.1.1 session and lets its CONNACK through.
    #[track_caller]
    pub(super) fn connect_durable(&mut self, id: u32, client_id: &str) -> ConnId {
        let conn = self.open(id);
        self.send(conn, &connect(client_id, false, 0, None));
        self.sync();
        self.recv(conn, &[connack(false, ReasonCode::SUCCESS)]);
        conn
    }

    /// Opens a persistent MQTT 5 session (expiry 60 s) and lets its CONNACK through.
    #[track_caller]
    pub(super) fn connect5_durable(&mut self, id: u32, client_id: &str) -> ConnId {
        let conn = self.open(id);
        self.send5(conn, &connect5_packet(client_id));
        self.sync();
        let frames = self.recv_frames(conn);
        assert_eq!(connack_of(&frames).reason, ReasonCode::SUCCESS);
        conn
    }

    /// Asserts that `conn` (MQTT 5) received exactly `expected`, in order.
    #[track_caller]
    pub(super) fn recv5(&mut self, conn: ConnId, expected: &[Packet<'_>]) {
        let frames = self.recv_frames(conn);
        let got: Vec<Packet<'_>> = frames.iter().map(|f| decode5(f)).collect();
        assert_eq!(got, expected, "packets received by {conn:?}");
    }
}

fn connect5_packet(client_id: &str) -> Packet<'_> {
    let properties = Properties {
        session_expiry_interval: Some(60),
        ..Properties::default()
    };
    Packet::Connect(Box::new(Connect {
        version: V5,
        clean_session: true,
        keep_alive: 0,
        client_id,
        will: None,
        username: None,
        password: None,
        properties: properties.into(),
    }))
}

fn suback(id: u16, codes: &[ReasonCode]) -> Packet<'static> {
    Packet::Suback(Suback {
        packet_id: pid(id),
        codes: codes.to_vec(),
        properties: Default::default(),
    })
}

fn disconnect5(reason: ReasonCode) -> Packet<'static> {
    Packet::Disconnect(Disconnect {
        reason,
        properties: Props::default(),
    })
}

fn ack_with(id: u16, reason: ReasonCode) -> Ack<'static> {
    Ack {
        reason,
        ..Ack::new(pid(id))
    }
}

/// The CONNACK of a new persistent session reports a session that must survive a crash:
/// it waits for its batch. A clean session's does not.
#[test]
fn connack_of_a_new_persistent_session_waits_until_durable() {
    let mut h = strict();
    let c = h.open(1);
    h.send(c, &connect("keep", false, 0, None));
    h.recv_nothing(c);
    let batch = h.take_batch();
    assert!(batch > 0, "the session was journaled");
    h.broker.set_durable(batch - 1);
    h.recv_nothing(c);
    h.broker.set_durable(batch);
    h.recv(c, &[connack(false, ReasonCode::SUCCESS)]);
    // Resumed: Session Present 1 reports it too.
    h.disconnect(c);
    h.sync();
    let c = h.open(2);
    h.send(c, &connect("keep", false, 0, None));
    h.recv_nothing(c);
    h.sync();
    h.recv(c, &[connack(true, ReasonCode::SUCCESS)]);
    // A clean session is never written: at once.
    h.connect(3, "clean", true, 0, None);
}

/// Issue 25 case 8: a SUBACK sent before the subscription is on disk is lost with it
/// after a power cut. SUBACK and UNSUBACK of a persistent session wait; a PINGRESP and a
/// delivery to the same client do not overtake them.
#[test]
fn suback_and_unsuback_wait_and_later_output_stays_behind_them() {
    let mut h = strict();
    let s = h.connect_durable(1, "sub");
    h.send(s, &subscribe(1, &[("t", Q0)]));
    h.send(s, &Packet::Pingreq);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("t", b"m", Q0, 0));
    h.recv_nothing(s);
    h.sync();
    h.recv(
        s,
        &[
            suback(1, &[ReasonCode::granted(Q0)]),
            Packet::Pingresp,
            publish("t", b"m", Q0, 0),
        ],
    );
    h.send(s, &unsubscribe(2, &["t"]));
    h.recv_nothing(s);
    h.sync();
    h.recv(s, &[Packet::Unsuback(Unsuback::new(pid(2)))]);
    // A clean session's SUBACK reports nothing on disk.
    h.subscribe(p, 3, &[("u", Q1)]);
}

/// Issue 25 case 8: a PUBCOMP sent before the release of the packet id is on disk lets
/// the client reuse the id while a restart still holds it (the new message would be
/// taken for the old one). PUBREC and PUBCOMP of a persistent session wait.
/// [MQTT-4.3.3-2]
#[test]
fn pubrec_and_pubcomp_wait_until_their_records_are_durable() {
    let mut h = strict();
    let p = h.connect_durable(1, "pub");
    h.send(p, &publish("nobody", b"x", Q2, 7));
    h.recv_nothing(p);
    h.sync();
    h.recv(p, &[Packet::Pubrec(Ack::new(pid(7)))]);
    h.send(p, &Packet::Pubrel(Ack::new(pid(7))));
    h.recv_nothing(p);
    let batch = h.take_batch();
    assert!(batch > 0, "the release was journaled");
    h.broker.set_durable(batch);
    h.recv(p, &[Packet::Pubcomp(Ack::new(pid(7)))]);
}

/// A connection closed with output held: the held acknowledgement is dropped (the client
/// resends), and what the close writes (MQTT 5 DISCONNECT) is not stuck behind it.
#[test]
fn closing_drops_held_output_but_not_the_disconnect() {
    let mut h = strict();
    let c = h.connect5_durable(1, "p5");
    h.send5(c, &publish5("nobody", b"x", Q2, 3, Properties::default()));
    h.recv5(c, &[]);
    // [MQTT-3.1.0-2]: a second CONNECT is a protocol error.
    h.send5(c, &connect5_packet("p5"));
    assert_eq!(h.closed(), [c]);
    h.recv5(c, &[disconnect5(ReasonCode::PROTOCOL_ERROR)]);
}

/// Issue 25 case 4: while the store cannot write, an MQTT 5 publisher is told 0x97
/// (Quota exceeded) after REFUSE_AFTER instead of a PUBACK that a crash would make a
/// lie; PUBREC likewise, and its packet id is released so that the client's next
/// message with that id is a new message. Nothing is refused before the wait, and later
/// output waits behind the refusal.
#[test]
fn degraded_store_refuses_mqtt5_publish_acks_with_quota_exceeded() {
    let mut h = strict();
    let s = h.connect_durable(1, "sub");
    h.subscribe_durable(s, 1, "t", Q2);
    let p = h.connect5_durable(2, "p5");
    h.take_batch();
    h.set_degraded(true);
    h.send5(p, &publish5("t", b"one", Q1, 1, Properties::default()));
    h.send5(p, &publish5("t", b"two", Q2, 2, Properties::default()));
    h.send5(p, &Packet::Pingreq);
    h.take_batch();
    h.advance(REFUSE_AFTER - Duration::from_millis(1));
    // Held, not refused, before the wait.
    h.recv5(p, &[]);
    h.advance(Duration::from_millis(1));
    h.recv5(
        p,
        &[
            Packet::Puback(ack_with(1, ReasonCode::QUOTA_EXCEEDED)),
            Packet::Pubrec(ack_with(2, ReasonCode::QUOTA_EXCEEDED)),
            Packet::Pingresp,
        ],
    );
    assert!(h.closed().is_empty(), "MQTT 5 stays connected");
    // [MQTT-4.3.3]: after an error PUBREC the id is free: a new message, routed.
    h.send5(p, &publish5("t", b"three", Q2, 2, Properties::default()));
    h.take_batch();
    h.advance(REFUSE_AFTER);
    h.recv5(
        p,
        &[Packet::Pubrec(ack_with(2, ReasonCode::QUOTA_EXCEEDED))],
    );
    // The messages were routed (the refusal says "not on disk", not "dropped").
    h.sync();
    let frames = h.recv_frames(s);
    let payloads: Vec<&[u8]> = frames
        .iter()
        .map(|f| match decode(f) {
            Packet::Publish(p) => p.payload,
            other => panic!("a PUBLISH: {other:?}"),
        })
        .collect();
    assert_eq!(payloads, [&b"one"[..], b"two", b"three"]);
}

/// MQTT 5 SUBACK: 0x80 for each filter it granted (a refused filter keeps its code);
/// UNSUBACK: 0x80 for each filter; CONNACK of a new persistent session: 0x97 and the
/// connection closes [MQTT-3.2.2-7] with Session Present 0 [MQTT-3.2.2-6]; PUBCOMP has no
/// failure code: DISCONNECT 0x97.
#[test]
fn degraded_store_refuses_mqtt5_subscribe_connect_and_pubcomp_acks() {
    let mut h = strict();
    let c = h.connect5_durable(1, "c5");
    h.send5(c, &publish5("x", b"x", Q2, 9, Properties::default()));
    h.sync();
    // Success although nobody subscribed: PUBREC never says 0x10, as from Mosquitto.
    h.recv5(c, &[Packet::Pubrec(ack_with(9, ReasonCode::SUCCESS))]);
    h.set_degraded(true);
    h.send5(c, &subscribe(1, &[("a", Q1), ("b/#", Q0)]));
    h.send5(c, &unsubscribe(2, &["a", "never"]));
    h.take_batch();
    h.advance(REFUSE_AFTER);
    let e = ReasonCode::UNSPECIFIED_ERROR;
    h.recv5(
        c,
        &[
            suback(1, &[e, e]),
            Packet::Unsuback(Unsuback {
                packet_id: pid(2),
                codes: vec![e, e],
                properties: Default::default(),
            }),
        ],
    );
    h.send5(c, &Packet::Pubrel(Ack::new(pid(9))));
    h.take_batch();
    h.advance(REFUSE_AFTER);
    assert_eq!(h.closed(), [c]);
    // PUBCOMP has no failure code.
    h.recv5(c, &[disconnect5(ReasonCode::QUOTA_EXCEEDED)]);

    let n = h.open(2);
    h.send5(n, &connect5_packet("new5"));
    h.take_batch();
    h.advance(REFUSE_AFTER);
    assert_eq!(h.closed(), [n]);
    let frames = h.recv_frames(n);
    let connack = connack_of(&frames);
    assert_eq!(
        (connack.reason, connack.session_present),
        (ReasonCode::QUOTA_EXCEEDED, false)
    );
    assert_eq!(frames.len(), 1);
}

/// MQTT 3.1.1 has no failure code in PUBACK, PUBREC, PUBCOMP or UNSUBACK: the connection
/// is closed without the acknowledgement (the client resends on reconnection) rather
/// than told a lie. SUBACK has 0x80 (Failure) [MQTT-3.9.3]; CONNACK 0x03 (Server
/// unavailable).
#[test]
fn degraded_store_closes_mqtt311_publishers_instead_of_acknowledging() {
    let mut h = strict();
    let s = h.connect_durable(1, "sub");
    h.subscribe_durable(s, 1, "t", Q1);
    let p = h.connect(2, "pub", true, 0, None);
    h.set_degraded(true);
    h.send(p, &publish("t", b"m", Q1, 5));
    h.take_batch();
    h.advance(REFUSE_AFTER - Duration::from_millis(1));
    h.recv_nothing(p);
    assert!(h.closed().is_empty());
    h.advance(Duration::from_millis(1));
    assert_eq!(h.closed(), [p]);
    h.recv_nothing(p);
    // The message itself was routed.
    assert_eq!(h.recv_frames(s).len(), 1);

    h.send(s, &subscribe(2, &[("u", Q1)]));
    h.take_batch();
    h.advance(REFUSE_AFTER);
    h.recv(s, &[suback(2, &[ReasonCode::UNSPECIFIED_ERROR])]);
    assert!(h.closed().is_empty());

    let n = h.open(3);
    h.send(n, &connect("new", false, 0, None));
    h.take_batch();
    h.advance(REFUSE_AFTER);
    assert_eq!(h.closed(), [n]);
    h.recv(n, &[connack(false, ReasonCode::SERVER_UNAVAILABLE)]);
}

/// The wait runs from when the store degraded, not from when the acknowledgement was
/// held: an acknowledgement waiting for a slow sync is not refused the moment the disk
/// fills. When the store recovers, held acknowledgements go out as usual and nothing is
/// refused.
#[test]
fn refusal_waits_from_the_degradation_and_recovery_releases_held_acks() {
    let mut h = strict();
    let s = h.connect_durable(1, "sub");
    h.subscribe_durable(s, 1, "t", Q1);
    let p = h.connect5_durable(2, "p5");
    h.send5(p, &publish5("t", b"1", Q1, 1, Properties::default()));
    h.take_batch();
    h.advance(REFUSE_AFTER);
    // Not degraded: held as long as it takes.
    h.recv5(p, &[]);
    h.set_degraded(true);
    h.advance(REFUSE_AFTER / 2);
    h.recv5(p, &[]);
    // A recovery snapshot covers every batch.
    let mut out = Vec::new();
    let batch = h.broker.write_snapshot(&mut out);
    h.set_degraded(false);
    h.broker.set_durable(batch);
    h.recv5(p, &[Packet::Puback(Ack::new(pid(1)))]);
    h.advance(REFUSE_AFTER);
    h.recv5(p, &[]);
    assert!(h.closed().is_empty());
    // Back to normal: held until synced, not refused.
    h.send5(p, &publish5("t", b"2", Q1, 2, Properties::default()));
    h.advance(REFUSE_AFTER * 2);
    h.recv5(p, &[]);
    h.sync();
    h.recv5(p, &[Packet::Puback(Ack::new(pid(2)))]);
}

impl Harness {
    /// SUBSCRIBE from a persistent session, made durable, SUBACK checked.
    #[track_caller]
    pub(super) fn subscribe_durable(&mut self, conn: ConnId, id: u16, filter: &str, qos: QoS) {
        self.send(conn, &subscribe(id, &[(filter, qos)]));
        self.sync();
        self.recv(conn, &[suback(id, &[ReasonCode::granted(qos)])]);
    }
}

/// Random operations (connects, subscriptions, publishes in every QoS, acknowledgements,
/// dropped sockets, time) in ack mode, with the store syncing, degrading and recovering
/// at random: every outbox stays a sequence of whole packets with each hold on a packet
/// boundary, whatever was released, refused or truncated in between.
#[test]
fn random_operations_in_ack_mode_keep_outboxes_whole() {
    let mut refusals = 0;
    for seed in 1..=4 {
        let mut h = random_sequence_harness();
        h.broker
            .enable_journal(true, 0, h.now, std::time::SystemTime::now());
        let mut rng = crate::protocol::testing::Rng(seed);
        let mut taken = 0;
        let (mut held, mut refused, mut degraded) = (0, 0, false);
        random_operation_sequence(seed, h, |h, step| {
            taken = taken.max(h.take_batch());
            // Degraded periods long enough for refusals (about 150 steps, 40 s).
            if rng.below(if degraded { 150 } else { 40 }) == 0 {
                degraded = !degraded;
                h.set_degraded(degraded);
            }
            // A degraded store makes nothing durable.
            if !degraded && rng.below(3) == 0 {
                h.broker.set_durable(taken);
            }
            for (slot, conn) in h.broker.conns.iter() {
                let mut boundaries = vec![0];
                for frame in split_frames(&conn.out) {
                    boundaries.push(boundaries.last().copied().unwrap_or(0) + frame.len());
                }
                for (start, len) in h.broker.held_regions(ConnId(slot)) {
                    held += 1;
                    assert!(
                        boundaries.contains(&start) && boundaries.contains(&(start + len)),
                        "seed {seed} step {step}: hold {start}+{len} in {boundaries:?}"
                    );
                }
            }
            refused = h.broker.holds.refused;
        });
        // The sequence did hold and refuse acknowledgements.
        assert!(held > 100, "seed {seed}: only {held} holds seen");
        refusals += refused;
    }
    // The sequences did refuse acknowledgements (16 with these seeds).
    assert!(refusals > 5, "{refusals} refusals");
}
