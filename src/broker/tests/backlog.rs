//! Core tests: a bridge outbox's backlog (backlog.rs): the age limit, the latest value
//! per topic and paced replay, on the virtual clock, and across a restart through the
//! journal. A plain persistent client "out" stands for the bridge's local session: the
//! core knows an outbox only by its `QueueLimits`.

use super::*;

const SEC: Duration = Duration::from_secs(1);

fn limits(f: impl FnOnce(&mut QueueLimits)) -> Option<QueueLimits> {
    let mut l = QueueLimits {
        max_messages: 1000,
        max_bytes: 0,
        ..QueueLimits::default()
    };
    f(&mut l);
    Some(l)
}

/// What the outbox of `broker`'s "out" dropped: (full, age, replaced).
fn drops(broker: &Broker) -> (u64, u64, u64) {
    let d = broker.drops("out");
    (
        d.get(DropCause::Full),
        d.get(DropCause::Age),
        d.get(DropCause::Replaced),
    )
}

/// "out" subscribed to `#` at QoS 1 and offline, its drops counted; "pub" connected as
/// ConnId(2).
fn offline_outbox(h: &mut Harness, l: Option<QueueLimits>) -> ConnId {
    h.broker.track_drops("out");
    h.broker.set_queue_limits("out", l);
    let out = h.connect(1, "out", false, 0, None);
    h.subscribe(out, 1, &[("#", Q1)]);
    h.disconnect(out);
    h.connect(2, "pub", true, 0, None)
}

/// Publishes QoS 1 messages from `p`, reading its PUBACKs.
fn publish_all(h: &mut Harness, p: ConnId, messages: &[(&str, &str)]) {
    for (i, (topic, payload)) in messages.iter().enumerate() {
        h.send(p, &publish(topic, payload.as_bytes(), Q1, i as u16 + 1));
    }
    h.recv_frames(p);
}

/// "out" reconnects; returns (topic, payload) of what it is sent now, after the CONNACK.
fn reconnect(h: &mut Harness) -> (ConnId, Vec<(String, String)>) {
    let out = h.open(1);
    h.send(out, &connect("out", false, 0, None));
    let frames = h.recv_frames(out);
    assert_eq!(decode(&frames[0]), connack(true, ReasonCode::SUCCESS));
    (out, messages(&frames[1..]))
}

fn messages(frames: &[Vec<u8>]) -> Vec<(String, String)> {
    frames
        .iter()
        .filter_map(|f| match decode(f) {
            Packet::Publish(p) => Some((
                p.topic.to_string(),
                String::from_utf8_lossy(p.payload).into_owned(),
            )),
            _ => None,
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(t, p)| (t.to_string(), p.to_string()))
        .collect()
}

/// bridge_outbox_max_age: while the session is offline, a message that has waited longer
/// is dropped by the outbox timer (no reconnection needed), counted by cause and in
/// $SYS's dropped count; younger ones stay and are delivered in order.
#[test]
fn messages_older_than_the_max_age_are_dropped_while_offline() {
    let mut h = Harness::default();
    let p = offline_outbox(&mut h, limits(|l| l.max_age = Some(10 * SEC)));
    publish_all(&mut h, p, &[("d/1", "old")]);
    h.advance(6 * SEC);
    publish_all(&mut h, p, &[("d/2", "young")]);
    h.advance(4 * SEC);
    // 10 s: not older than 10 s yet.
    assert_eq!(h.broker.session_backlog("out"), Some((2, 0)));
    h.advance(2 * SEC);
    assert_eq!(h.broker.session_backlog("out"), Some((1, 0)));
    assert_eq!(drops(&h.broker), (0, 1, 0));
    assert_eq!(h.broker.dropped_count(), 1);
    let (_, got) = reconnect(&mut h);
    assert_eq!(got, pairs(&[("d/2", "young")]));
    // Nothing left to check: the timer is not rearmed for an empty queue.
    h.advance(60 * SEC);
    assert_eq!(drops(&h.broker).1, 1);
}

/// bridge_outbox_max_age when sending: messages that wait in the queue of an online
/// session behind a full window age out there too, and are not sent.
#[test]
fn a_message_that_aged_in_the_queue_of_an_online_session_is_not_sent() {
    let mut h = Harness::new(|s| s.max_inflight_messages = 1);
    let p = offline_outbox(&mut h, limits(|l| l.max_age = Some(5 * SEC)));
    let (out, got) = reconnect(&mut h);
    assert!(got.is_empty());
    publish_all(&mut h, p, &[("d/1", "a"), ("d/2", "b"), ("d/3", "c")]);
    let frames = h.recv_frames(out);
    assert_eq!(messages(&frames), pairs(&[("d/1", "a")]));
    h.advance(7 * SEC);
    // The window frees: what waited 7 s is dropped, not sent.
    let Packet::Publish(first) = decode(&frames[0]) else {
        panic!("not a PUBLISH")
    };
    h.send(out, &Packet::Puback(Ack::new(first.packet_id.unwrap())));
    h.recv_nothing(out);
    assert_eq!(drops(&h.broker).1, 2);
    assert_eq!(h.broker.session_backlog("out"), Some((0, 0)));
}

/// bridge_latest_only: while offline, a state topic keeps only its newest message (at
/// the place of the newest); other topics keep every message, in order.
#[test]
fn latest_only_topics_keep_their_newest_message_while_offline() {
    let mut h = Harness::default();
    let p = offline_outbox(
        &mut h,
        limits(|l| l.latest_only = vec!["s/#".into(), "fw/+/version".into()]),
    );
    publish_all(
        &mut h,
        p,
        &[
            ("s/a", "1"),
            ("d/x", "1"),
            ("s/a", "2"),
            ("s/b", "1"),
            ("fw/7/version", "1.0"),
            ("d/x", "2"),
            ("s/a", "3"),
            ("fw/7/version", "1.1"),
            ("fw/7/other", "o"),
        ],
    );
    assert_eq!(drops(&h.broker).2, 3);
    let (out, got) = reconnect(&mut h);
    assert_eq!(
        got,
        pairs(&[
            ("d/x", "1"),
            ("s/b", "1"),
            ("d/x", "2"),
            ("s/a", "3"),
            ("fw/7/version", "1.1"),
            ("fw/7/other", "o"),
        ])
    );
    // Online, every message goes: the rule is for what waits while the remote is away.
    publish_all(&mut h, p, &[("s/a", "4"), ("s/a", "5")]);
    assert_eq!(
        messages(&h.recv_frames(out)),
        pairs(&[("s/a", "4"), ("s/a", "5")])
    );
    assert_eq!(drops(&h.broker).2, 3);
}

/// A full outbox counts its drops as "full", not as the other causes.
#[test]
fn a_full_outbox_counts_its_drops_by_cause() {
    let mut h = Harness::default();
    let p = offline_outbox(
        &mut h,
        limits(|l| {
            l.max_messages = 2;
            l.drop_oldest = true;
        }),
    );
    publish_all(&mut h, p, &[("d/1", "a"), ("d/2", "b"), ("d/3", "c")]);
    assert_eq!(drops(&h.broker), (1, 0, 0));
    let (_, got) = reconnect(&mut h);
    assert_eq!(got, pairs(&[("d/2", "b"), ("d/3", "c")]));
}

/// bridge_replay_rate: after the session comes online, what waited goes out at most at
/// the rate (one now, then one per interval), while a message published after the
/// connection goes out at once, before the rest of the backlog.
#[test]
fn the_backlog_is_replayed_at_the_rate_behind_live_messages() {
    let mut h = Harness::default();
    let p = offline_outbox(&mut h, limits(|l| l.replay_rate = 4));
    publish_all(
        &mut h,
        p,
        &[("d/1", "b1"), ("d/2", "b2"), ("d/3", "b3"), ("d/4", "b4")],
    );
    let (out, got) = reconnect(&mut h);
    assert_eq!(got, pairs(&[("d/1", "b1")]));
    // Live: sent at once, ahead of the three still waiting.
    publish_all(&mut h, p, &[("d/live", "l1")]);
    assert_eq!(messages(&h.recv_frames(out)), pairs(&[("d/live", "l1")]));
    h.advance(Duration::from_millis(200));
    assert!(h.recv_frames(out).is_empty());
    h.advance(Duration::from_millis(50));
    assert_eq!(messages(&h.recv_frames(out)), pairs(&[("d/2", "b2")]));
    h.advance(Duration::from_millis(249));
    assert!(h.recv_frames(out).is_empty());
    h.advance(Duration::from_millis(1));
    assert_eq!(messages(&h.recv_frames(out)), pairs(&[("d/3", "b3")]));
    h.advance(Duration::from_millis(250));
    assert_eq!(messages(&h.recv_frames(out)), pairs(&[("d/4", "b4")]));
    h.advance(10 * SEC);
    assert!(h.recv_frames(out).is_empty());
    assert_eq!(h.broker.session_backlog("out"), Some((0, 5)));
}

/// With a full window, live messages queued behind it still go before the backlog.
#[test]
fn queued_live_messages_overtake_the_backlog() {
    let mut h = Harness::new(|s| s.max_inflight_messages = 1);
    let p = offline_outbox(&mut h, limits(|l| l.replay_rate = 1000));
    publish_all(&mut h, p, &[("d/1", "b1"), ("d/2", "b2")]);
    let (out, got) = reconnect(&mut h);
    assert_eq!(got, pairs(&[("d/1", "b1")]));
    publish_all(&mut h, p, &[("d/live", "l1")]);
    let mut order = Vec::new();
    for id in 1..=3u16 {
        h.advance(SEC);
        h.send(out, &Packet::Puback(Ack::new(pid(id))));
        order.extend(messages(&h.recv_frames(out)));
    }
    assert_eq!(order, pairs(&[("d/live", "l1"), ("d/2", "b2")]));
}

/// Replays the journal batches taken so far into a state.
fn replayed(
    chunks: &[Vec<u8>],
    wall: std::time::SystemTime,
    start: Instant,
) -> crate::persist::State {
    let mut state = crate::persist::State::new(wall, start);
    for chunk in chunks {
        let mut rest: &[u8] = chunk;
        while let Some((record, n)) = crate::persist::record::decode(rest).expect("intact") {
            state.apply(&record);
            rest = &rest[n..];
        }
    }
    assert_eq!(state.inconsistencies, 0);
    state
}

/// Across a restart (journal, then a snapshot of the restored broker): the outbox holds
/// the same messages, a replaced state message stays replaced, a live message sent ahead
/// of the backlog stays sent, and each message keeps its age: those queued 3 s before the
/// restart age out 7 to 8 s after it with a 10 s limit.
#[test]
fn the_outbox_keeps_its_set_order_and_ages_across_a_restart() {
    let mut h = Harness::new(|s| s.max_inflight_messages = 1);
    let wall = std::time::SystemTime::now();
    let start = h.now;
    h.broker.enable_journal(false, 0, start, wall);
    let l = limits(|l| {
        l.max_age = Some(10 * SEC);
        l.latest_only = vec!["s/#".into()];
        l.replay_rate = 10;
    });
    let p = offline_outbox(&mut h, l.clone());
    publish_all(&mut h, p, &[("d/1", "old"), ("s/a", "1")]);
    h.advance(5 * SEC);
    publish_all(&mut h, p, &[("s/a", "2"), ("d/2", "b2"), ("d/3", "b3")]);
    // Online with a window of 1: d/1 goes; a live message waits behind the window and
    // then goes ahead of the backlog (a Take record from the middle of the queue).
    let (out, got) = reconnect(&mut h);
    assert_eq!(got, pairs(&[("d/1", "old")]));
    publish_all(&mut h, p, &[("d/live", "l")]);
    h.send(out, &Packet::Puback(Ack::new(pid(1))));
    assert_eq!(messages(&h.recv_frames(out)), pairs(&[("d/live", "l")]));
    h.drop_socket(out);
    h.advance(3 * SEC);
    let mut batches = Vec::new();
    while let Some((_, bytes)) = h.broker.take_journal() {
        batches.push(bytes);
    }

    // The restart: 8 s after the first messages, 3 s after the second.
    let later = h.now;
    let mut state = replayed(&batches, wall, start);
    let next = state.max_message_id();
    state.finish();
    let mut r = Harness::new(|s| s.max_inflight_messages = 1);
    r.now = later;
    r.broker = Broker::new(r.broker.settings.clone(), later);
    r.broker.track_drops("out");
    r.broker.set_queue_limits("out", l);
    r.broker.restore(state, later);
    r.broker
        .enable_journal(false, next, later, wall + (later - start));
    assert_eq!(r.broker.session_backlog("out"), Some((3, 1)));

    // A snapshot of the restored broker says the same, with the same times.
    let mut snapshot = Vec::new();
    r.broker.write_snapshot(&mut snapshot);
    let again = replayed(&[snapshot], wall, start);
    let session = again.sessions.values().find(|s| &*s.client_id == "out");
    let queue: Vec<_> = session
        .expect("the outbox's session is durable")
        .queue
        .iter()
        .map(|q| {
            let secs = q
                .queued_at
                .map(|at| ((at - start).as_millis() + 500) / 1000);
            (q.message.topic().to_string(), secs)
        })
        .collect();
    assert_eq!(
        queue,
        [
            ("s/a".to_string(), Some(5)),
            ("d/2".to_string(), Some(5)),
            ("d/3".to_string(), Some(5)),
        ]
    );

    // 10 s limit: the three queued at 5 s age out in the second after they are 10 s
    // old (at 15 to 16 s), 7 to 8 s after the restart, by the timer the restore set.
    r.advance(6 * SEC);
    assert_eq!(r.broker.session_backlog("out"), Some((3, 1)));
    r.advance(2 * SEC);
    assert_eq!(r.broker.session_backlog("out"), Some((0, 1)));
    assert_eq!(drops(&r.broker).1, 3);
}

/// A reload (SIGHUP) that gives the outbox new limits applies them to what waits: a new
/// latest_only filter keeps the newest message per matching topic, and a new (shorter)
/// max_age drops what is older at once, not only what is queued later.
#[test]
fn new_limits_apply_to_what_already_waits() {
    let mut h = Harness::default();
    let p = offline_outbox(&mut h, limits(|_| {}));
    publish_all(&mut h, p, &[("d/1", "a"), ("s/a", "1"), ("s/a", "2")]);
    h.advance(5 * SEC);
    publish_all(&mut h, p, &[("s/a", "3"), ("d/2", "b")]);
    h.broker
        .set_queue_limits("out", limits(|l| l.latest_only = vec!["s/#".into()]));
    assert_eq!(h.broker.session_backlog("out"), Some((3, 0)));
    assert_eq!(drops(&h.broker).2, 2);
    h.broker.set_queue_limits(
        "out",
        limits(|l| {
            l.latest_only = vec!["s/#".into()];
            l.max_age = Some(3 * SEC);
        }),
    );
    h.advance(Duration::from_millis(1));
    assert_eq!(h.broker.session_backlog("out"), Some((2, 0)));
    assert_eq!(drops(&h.broker).1, 1);
    let (_, got) = reconnect(&mut h);
    assert_eq!(got, pairs(&[("s/a", "3"), ("d/2", "b")]));
}
