//! Core tests: persistence: the journal says what the state is.

use super::*;

/// Replays journal batches (and a snapshot) into a state, as start-up does.
fn replay_bytes(
    chunks: &[&[u8]],
    wall: std::time::SystemTime,
    now: Instant,
) -> crate::persist::State {
    let mut state = crate::persist::State::new(wall, now);
    for chunk in chunks {
        let mut rest: &[u8] = chunk;
        while let Some((record, n)) =
            crate::persist::record::decode(rest).expect("the broker writes intact records")
        {
            state.apply(&record);
            rest = &rest[n..];
        }
    }
    assert_eq!(
        state.inconsistencies, 0,
        "every record refers to known state"
    );
    state
}

/// The journal is exact: at every step of random operation sequences, the state replayed
/// from the last snapshot plus every journal batch since equals a fresh snapshot of the
/// live broker; and a broker restored from it snapshots to the same state again.
/// Snapshots (compactions) happen at random steps.
#[test]
fn journal_replay_equals_a_snapshot_at_every_step() {
    for seed in 1..=8u64 {
        let mut h = random_sequence_harness();
        let start = h.now;
        let wall = std::time::SystemTime::now();
        h.broker.enable_journal(false, 0, start, wall);
        let mut snapshot = Vec::new();
        h.broker.write_snapshot(&mut snapshot);
        let mut batches: Vec<Vec<u8>> = Vec::new();
        let mut rng = crate::protocol::testing::Rng(seed ^ 0xfeed);
        let mut compared = 0;
        random_operation_sequence(seed, h, |h, step| {
            if let Some((_, bytes)) = h.broker.take_journal() {
                batches.push(bytes);
            }
            if rng.below(50) == 0 {
                snapshot.clear();
                batches.clear();
                h.broker.write_snapshot(&mut snapshot);
            }
            if step % 7 != 0 {
                return;
            }
            let mut chunks: Vec<&[u8]> = vec![&snapshot];
            chunks.extend(batches.iter().map(Vec::as_slice));
            let from_journal = replay_bytes(&chunks, wall, start);
            let mut fresh = Vec::new();
            // A snapshot into a copy would be cleaner; the live one must stay in step, so
            // the fresh snapshot becomes the new base (it is also a compaction).
            h.broker.write_snapshot(&mut fresh);
            let from_snapshot = replay_bytes(&[&fresh], wall, start);
            assert_eq!(
                from_journal.describe(),
                from_snapshot.describe(),
                "seed {seed} step {step}"
            );
            snapshot = fresh;
            batches.clear();
            compared += 1;

            // A broker restored from that state holds the same durable state.
            let mut restored = Broker::new(h.broker.settings.clone(), h.now);
            let mut state = replay_bytes(&[&snapshot], wall, start);
            let next = state.max_message_id();
            state.finish();
            restored.restore(state, h.now);
            restored.enable_journal(false, next, h.now, wall + (h.now - start));
            let mut again = Vec::new();
            restored.write_snapshot(&mut again);
            let mut expected = replay_bytes(&[&snapshot], wall, start);
            // Restoring ends what a restart ends: sessions that expire with their
            // connection end, connected sessions become offline,
            expected.sessions.retain(|_, s| s.expiry != 0);
            // and expired retained messages are not restored.
            let now = h.now;
            expected.retained.retain(|_, m| !m.is_expired(now));
            let again = replay_bytes(&[&again], wall, start);
            assert_eq!(
                strip_offline(&again.describe()),
                strip_offline(&expected.describe()),
                "seed {seed} step {step}: restore"
            );
        });
        assert!(compared > 100, "seed {seed}");
    }
}

/// The offline times of restored sessions start at the restart: compared apart.
fn strip_offline(text: &str) -> String {
    text.lines()
        .map(|l| l.split(" offline ").next().unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `persistence_sync ack`: a QoS 1 PUBLISH stored for an offline persistent session is
/// acknowledged only once its batch is durable; one that stores nothing at once; and
/// acknowledgements to one client keep their order. QoS 2's PUBREC likewise.
#[test]
fn strict_persistence_holds_acks_until_their_batch_is_durable() {
    let mut h = Harness::default();
    h.broker
        .enable_journal(true, 0, h.now, std::time::SystemTime::now());
    // The CONNACK and SUBACK of a persistent session wait too (tests/durable.rs).
    let s = h.connect_durable(1, "sub");
    h.subscribe_durable(s, 1, "t", QoS::AtLeastOnce);
    h.disconnect(s);
    let (first, _) = h.broker.take_journal().expect("the session was journaled");
    h.broker.set_durable(first);

    let p = h.connect(2, "pub", true, 0, None);
    // Nothing stored: acknowledged at once.
    h.send(p, &publish("nobody", b"x", QoS::AtLeastOnce, 10));
    h.recv(p, &[Packet::Puback(Ack::new(pid(10)))]);
    // Queued for the offline session: held.
    h.send(p, &publish("t", b"1", QoS::AtLeastOnce, 11));
    h.recv_nothing(p);
    // Stores nothing, but must not overtake the held one.
    h.send(p, &publish("nobody", b"x", QoS::AtLeastOnce, 12));
    h.recv_nothing(p);
    let (batch, bytes) = h.broker.take_journal().expect("the message was journaled");
    assert!(!bytes.is_empty());
    h.broker.set_durable(batch - 1);
    h.recv_nothing(p);
    h.broker.set_durable(batch);
    h.recv(
        p,
        &[
            Packet::Puback(Ack::new(pid(11))),
            Packet::Puback(Ack::new(pid(12))),
        ],
    );
    // QoS 2 from a persistent session: the packet id awaiting PUBREL is a record too
    // (a restart must not deliver the message twice). [MQTT-4.3.3-2]
    let p2 = h.connect_durable(3, "pub2");
    let _ = h.broker.take_journal();
    h.send(p2, &publish("nobody", b"x", QoS::ExactlyOnce, 13));
    h.recv_nothing(p2);
    let (batch, _) = h.broker.take_journal().expect("AwaitRelease was journaled");
    h.broker.set_durable(batch);
    h.recv(p2, &[Packet::Pubrec(Ack::new(pid(13)))]);
    // From a clean session nothing is stored: PUBREC at once.
    h.send(p, &publish("nobody", b"x", QoS::ExactlyOnce, 14));
    h.recv(p, &[Packet::Pubrec(Ack::new(pid(14)))]);
}

/// Periodic mode (the default) acknowledges at once; the records still go to the journal.
#[test]
fn periodic_persistence_acks_at_once() {
    let mut h = Harness::default();
    h.broker
        .enable_journal(false, 0, h.now, std::time::SystemTime::now());
    let s = h.connect(1, "sub", false, 0, None);
    h.subscribe(s, 1, &[("t", QoS::AtLeastOnce)]);
    h.disconnect(s);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("t", b"1", QoS::AtLeastOnce, 11));
    h.recv(p, &[Packet::Puback(Ack::new(pid(11)))]);
    assert!(h.broker.take_journal().is_some());
}

/// `max_retained_messages`: MQTT 5 learns from PUBACK that the message was delivered but
/// not retained (0x97 Quota exceeded); 3.1.1 gets its plain PUBACK.
#[test]
fn retained_over_the_limit_is_quota_exceeded_for_mqtt5() {
    let mut h = Harness::new(|s| s.max_retained_messages = 1);
    let (c, _) = h.connect5(1, "p5", true, Properties::default(), None);
    let mut first = publish5("a", b"1", QoS::AtLeastOnce, 1, Properties::default());
    if let Packet::Publish(p) = &mut first {
        p.retain = true;
    }
    h.send5(c, &first);
    let frames = h.recv_frames(c);
    assert_eq!(frames.len(), 1);
    let mut second = publish5("b", b"2", QoS::AtLeastOnce, 2, Properties::default());
    if let Packet::Publish(p) = &mut second {
        p.retain = true;
    }
    h.send5(c, &second);
    let frames = h.recv_frames(c);
    assert_eq!(frames.len(), 1);
    match Packet::decode(&frames[0], V5) {
        Ok(Packet::Puback(ack)) => assert_eq!(ack.reason, ReasonCode::QUOTA_EXCEEDED),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.broker.retained_count(), 1);
}

/// `check_retain_source`: the publisher of a retained message is stored with it (a
/// `Source` record before the message), in the journal and in a snapshot, so a restart
/// with an ACL that no longer lets it write stops serving it (Mosquitto's
/// 04-retain-check-source-persist).
#[test]
fn retained_message_keeps_its_publisher_across_a_restart() {
    use crate::auth::Acl;
    let mut h = Harness::new(|s| s.check_retain_source = true);
    let acl = |text: &str| Some(Acl::parse_str(text).expect("a valid ACL"));
    h.broker.set_auth(None, acl("topic readwrite test/topic\n"));
    let (start, wall) = (h.now, std::time::SystemTime::now());
    h.broker.enable_journal(false, 0, start, wall);
    let c = h.connect(1, "retain-check", true, 0, None);
    h.send(c, &retained(publish("test/topic", b"kept", Q0, 0)));
    h.disconnect(c);
    let (_, journal) = h.broker.take_journal().expect("the PUBLISH was journaled");
    let mut snapshot = Vec::new();
    h.broker.write_snapshot(&mut snapshot);
    for chunks in [vec![&journal[..]], vec![&snapshot[..]]] {
        let state = replay_bytes(&chunks, wall, start);
        let message = state.retained.get("test/topic").expect("retained");
        let source = message.source.as_deref().expect("its publisher is kept");
        assert_eq!(&*source.client_id, "retain-check");
        assert_eq!(source.username, None);

        let mut h = Harness::new(|s| s.check_retain_source = true);
        h.broker.restore(state, h.now);
        h.broker.set_auth(None, acl("topic read test/topic\n"));
        let c = h.connect(1, "retain-check", true, 0, None);
        h.send(c, &subscribe(1, &[("test/topic", Q0)]));
        assert_eq!(
            h.recv_frames(c).len(),
            1,
            "SUBACK only: its publisher may not write"
        );
    }
}

/// After a restart a persistent session's packet identifiers go on from the last one it
/// used, as Mosquitto's do from its database (11-persistent-subscription-no-local): the
/// journal says where they stand when the session goes offline and at a clean stop, and
/// a snapshot says it for every session.
#[test]
fn packet_ids_go_on_after_a_restart() {
    for stop in ["offline", "shutdown", "snapshot"] {
        let mut h = Harness::new(|_| {});
        let (start, wall) = (h.now, std::time::SystemTime::now());
        h.broker.enable_journal(false, 0, start, wall);
        let c = h.connect(1, "sub", false, 0, None);
        h.send(c, &subscribe(1, &[("t", Q1)]));
        h.recv_frames(c);
        let p = h.connect(2, "pub", true, 0, None);
        h.send(p, &publish("t", b"one", Q1, 1));
        let frames = h.recv_frames(c);
        assert_eq!(frames.len(), 1, "{stop}");
        h.send(c, &Packet::Puback(Ack::new(pid(1))));
        let mut chunks = Vec::new();
        match stop {
            "offline" => h.disconnect(c),
            "shutdown" => h.broker.shutdown(),
            _ => {}
        }
        if stop == "snapshot" {
            let mut snapshot = Vec::new();
            h.broker.write_snapshot(&mut snapshot);
            chunks.push(snapshot);
        } else {
            chunks.push(h.broker.take_journal().expect("journaled").1);
        }
        let slices: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let state = replay_bytes(&slices, wall, start);

        let mut h = Harness::new(|_| {});
        h.broker.restore(state, h.now);
        let c = h.open(1);
        h.send(c, &connect("sub", false, 0, None));
        h.recv(c, &[connack(true, ReasonCode::SUCCESS)]);
        let p = h.connect(2, "pub", true, 0, None);
        h.send(p, &publish("t", b"two", Q1, 1));
        let frames = h.recv_frames(c);
        let id = frames.last().and_then(|f| match decode(f) {
            Packet::Publish(p) => p.packet_id.map(|id| id.get()),
            _ => None,
        });
        assert_eq!(id, Some(2), "{stop}: packet id 2, after 1");
    }
}
