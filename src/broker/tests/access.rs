//! Core tests: what an ACL reload does to messages already queued or in flight, and the
//! packet identifiers of messages dropped from a queue (Mosquitto numbers a QoS 1/2
//! message when it queues it, so a dropped one keeps its number used).

use super::*;
use crate::auth::Acl;

/// A 3.1.1 CONNECT with username `username`; `acl-check` keeps its session.
fn login(client_id: &str) -> Packet<'_> {
    match connect(client_id, client_id != "acl-check", 60, None) {
        Packet::Connect(mut c) => {
            c.username = Some("username");
            Packet::Connect(c)
        }
        _ => unreachable!(),
    }
}

fn acl(both: bool) -> Acl {
    let two = if both {
        "topic readwrite topic/two\n"
    } else {
        ""
    };
    Acl::parse_str(&format!("user username\ntopic readwrite topic/one\n{two}")).unwrap()
}

/// Suite 09-acl-change: messages queued for an offline client on a topic a reloaded ACL
/// no longer lets it read are not delivered when it comes back; the message after them
/// gets the packet identifier after theirs, as in Mosquitto (which numbered them when
/// it queued them).
#[test]
fn queued_messages_the_reloaded_acl_denies_are_dropped() {
    let mut h = Harness::default();
    h.broker.set_auth(None, Some(acl(true)));
    let c = h.open(1);
    h.send(c, &login("acl-check"));
    h.recv(c, &[connack(false, ReasonCode::SUCCESS)]);
    h.subscribe(c, 1, &[("topic/one", Q1), ("topic/two", Q1)]);
    h.disconnect(c);

    let p = h.open(2);
    h.send(p, &login("helper"));
    h.recv(p, &[connack(false, ReasonCode::SUCCESS)]);
    h.send(p, &publish("topic/one", b"message1", Q1, 1));
    h.send(p, &publish("topic/two", b"message2", Q1, 2));
    h.send(p, &publish("topic/two", b"message3", Q1, 3));
    h.send(p, &publish("topic/one", b"message4", Q1, 4));
    assert_eq!(h.recv_frames(p).len(), 4, "PUBACKs");
    h.disconnect(p);

    h.broker.set_auth(None, Some(acl(false)));
    let c = h.open(3);
    h.send(c, &login("acl-check"));
    h.recv(
        c,
        &[
            connack(true, ReasonCode::SUCCESS),
            publish("topic/one", b"message1", Q1, 1),
            publish("topic/one", b"message4", Q1, 4),
        ],
    );
    let p = h.open(4);
    h.send(p, &login("helper"));
    h.recv(p, &[connack(false, ReasonCode::SUCCESS)]);
    h.send(p, &publish("topic/one", b"message5", Q1, 5));
    h.recv(c, &[publish("topic/one", b"message5", Q1, 5)]);
}

/// A message in flight to a client (sent, not acknowledged) that a reloaded ACL denies
/// is not resent when the client reconnects (Mosquitto's `connection_check_acl`).
#[test]
fn inflight_messages_the_reloaded_acl_denies_are_not_resent() {
    let mut h = Harness::default();
    h.broker.set_auth(None, Some(acl(true)));
    let c = h.open(1);
    h.send(c, &login("acl-check"));
    h.recv(c, &[connack(false, ReasonCode::SUCCESS)]);
    h.subscribe(c, 1, &[("topic/one", Q1), ("topic/two", Q1)]);
    let p = h.open(2);
    h.send(p, &login("helper"));
    h.recv(p, &[connack(false, ReasonCode::SUCCESS)]);
    h.send(p, &publish("topic/two", b"two", Q1, 1));
    h.send(p, &publish("topic/one", b"one", Q1, 2));
    h.recv(
        c,
        &[
            publish("topic/two", b"two", Q1, 1),
            publish("topic/one", b"one", Q1, 2),
        ],
    );
    h.drop_socket(c);
    h.broker.set_auth(None, Some(acl(false)));
    let c = h.open(3);
    h.send(c, &login("acl-check"));
    h.recv(
        c,
        &[
            connack(true, ReasonCode::SUCCESS),
            dup(publish("topic/one", b"one", Q1, 2)),
        ],
    );
}

/// Suite 11-message-expiry: a queued message that expired before its client came back
/// is not sent [MQTT-3.3.2-5], and the next one keeps the packet identifier Mosquitto
/// gave it when it was queued.
#[test]
fn an_expired_queued_message_keeps_its_packet_id_used() {
    let mut h = Harness::default();
    let session = Properties {
        session_expiry_interval: Some(60),
        ..Properties::default()
    };
    let (c, _) = h.connect5(1, "sub", false, session.clone(), None);
    h.subscribe5(c, 1, "t", SubscriptionOptions::new(Q1), None);
    h.recv_frames(c);
    h.drop_socket(c);
    let (p, _) = h.connect5(2, "pub", true, Properties::default(), None);
    let expiring = Properties {
        message_expiry_interval: Some(5),
        ..Properties::default()
    };
    h.send5(p, &publish5("t", b"short", Q1, 1, expiring));
    h.send5(p, &publish("t", b"long", Q1, 2));
    h.advance(Duration::from_secs(7));
    let (_, frames) = h.connect5(1, "sub", false, session, None);
    assert!(connack_of(&frames).session_present);
    assert_eq!(frames[1..], [encode5(&publish("t", b"long", Q1, 2))]);
}
