//! Core tests: Clean session.

use super::*;

/// [MQTT-3.1.2-6]: with clean session 1 the previous session is discarded, its
/// subscriptions included.
#[test]
fn clean_session_discards_the_old_sessions_subscriptions() {
    let mut h = Harness::default();
    let s = h.connect(1, "s", false, 0, None);
    h.subscribe(s, 1, &[("t", Q1)]);
    h.disconnect(s);
    assert_eq!(h.broker.subscription_count(), 1);

    let s = h.connect(1, "s", true, 0, None);
    assert_eq!(h.broker.subscription_count(), 0);
    let p = h.connect(2, "pub", true, 0, None);
    h.send(p, &publish("t", b"x", Q1, 1));
    h.recv_nothing(s);
    // And the clean session ends with the connection: no session present next time.
    h.disconnect(s);
    h.connect(1, "s", false, 0, None);
}
