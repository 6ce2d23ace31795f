//! Core tests: Keep alive and CONNECT timeout.

use super::*;

/// [MQTT-3.1.2-23] [MQTT-3.1.2-24]: any control packet counts as activity and pushes the
/// one-and-a-half keep alive deadline back.
#[test]
fn activity_pushes_the_keep_alive_deadline_back() {
    let mut h = Harness::default();
    let c = h.connect(1, "c", true, 10, None);
    h.advance(Duration::from_secs(10));
    h.send(c, &Packet::Pingreq);
    h.recv(c, &[Packet::Pingresp]);
    h.advance(Duration::from_secs(14));
    assert!(h.closed().is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(h.closed(), [c]);
    assert_eq!(h.broker.clients_connected(), 0);
}

/// Section 3.1.2.10 (Keep Alive): a keep alive of zero turns the mechanism off.
#[test]
fn keep_alive_0_never_times_out() {
    let mut h = Harness::default();
    let c = h.connect(1, "c", true, 0, None);
    h.advance(Duration::from_secs(100_000));
    assert!(h.closed().is_empty());
    assert_eq!(h.broker.next_deadline(), None);
    h.send(c, &Packet::Pingreq);
    h.recv(c, &[Packet::Pingresp]);
}

/// A socket that sends no CONNECT is closed after connect_timeout (the specification
/// lets a server close a connection that sends no CONNECT within a reasonable time).
#[test]
fn a_socket_without_connect_is_closed_after_connect_timeout() {
    let mut h = Harness::new(|s| s.connect_timeout = Duration::from_secs(10));
    let c = h.open(1);
    h.advance(Duration::from_millis(9_999));
    assert!(h.closed().is_empty());
    h.advance(Duration::from_millis(1));
    assert_eq!(h.closed(), [c]);
    h.recv_nothing(c);
    assert_eq!(h.broker.next_deadline(), None);
}

/// A connected client is no longer subject to the CONNECT timeout.
#[test]
fn connect_timeout_does_not_apply_after_connect() {
    let mut h = Harness::new(|s| s.connect_timeout = Duration::from_secs(10));
    h.connect(1, "c", true, 0, None);
    h.advance(Duration::from_secs(60));
    assert!(h.closed().is_empty());
}
