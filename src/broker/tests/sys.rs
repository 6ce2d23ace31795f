//! Core tests: $SYS.

use super::*;

/// The payload of the last PUBLISH to `topic` among `frames`, with its RETAIN flag.
fn last_publish_to(frames: &[Vec<u8>], topic: &str) -> Option<(Vec<u8>, bool)> {
    frames.iter().rev().find_map(|f| match decode(f) {
        Packet::Publish(p) if p.topic == topic => Some((p.payload.to_vec(), p.retain)),
        _ => None,
    })
}

/// $SYS topics with Mosquitto's names, retained, published every sys_interval when
/// their value changed.
#[test]
fn sys_topics_report_version_and_connected_clients() {
    let mut h = Harness::new(|s| s.sys_interval = Duration::from_secs(1));
    let s = h.connect(1, "s", true, 0, None);
    h.advance(Duration::from_secs(1));
    h.send(s, &subscribe(1, &[("$SYS/#", Q0)]));
    let frames = h.recv_frames(s);
    assert_eq!(
        decode(&frames[0]),
        Packet::Suback(Suback {
            packet_id: pid(1),
            codes: vec![ReasonCode::granted(Q0)],
            properties: Default::default(),
        })
    );
    let version = format!("culex version {}", env!("CARGO_PKG_VERSION"));
    assert_eq!(
        last_publish_to(&frames, "$SYS/broker/version"),
        Some((version.into_bytes(), true))
    );
    assert_eq!(
        last_publish_to(&frames, "$SYS/broker/clients/connected"),
        Some((b"1".to_vec(), true))
    );

    let other = h.connect(2, "other", true, 0, None);
    h.recv_nothing(s);
    h.advance(Duration::from_secs(1));
    let frames = h.recv_frames(s);
    assert_eq!(
        last_publish_to(&frames, "$SYS/broker/clients/connected"),
        Some((b"2".to_vec(), false))
    );

    h.disconnect(other);
    h.advance(Duration::from_secs(1));
    let frames = h.recv_frames(s);
    assert_eq!(
        last_publish_to(&frames, "$SYS/broker/clients/connected"),
        Some((b"1".to_vec(), false))
    );
    // Unchanged values are not published again.
    h.advance(Duration::from_secs(1));
    let frames = h.recv_frames(s);
    assert_eq!(
        last_publish_to(&frames, "$SYS/broker/clients/connected"),
        None
    );
    assert_eq!(last_publish_to(&frames, "$SYS/broker/version"), None);
}
