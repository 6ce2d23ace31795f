//! `$SYS` topics (Mosquitto's broker status tree; not part of MQTT 3.1.1, which only
//! reserves `$` topics for Server use, section 4.7.2).

use std::time::{Duration, Instant};

use rumqttc::QoS;

use crate::common::Broker;

/// Two `$SYS` intervals of 1 s plus slack.
const TWO_INTERVALS: Duration = Duration::from_millis(3_500);

/// `$SYS/broker/version` is a retained message: a subscriber gets it with RETAIN 1 and a
/// non-empty text payload (Mosquitto: "mosquitto version 2.0.11").
#[test]
fn sys_version_is_retained_and_readable() {
    let broker = Broker::start("sys_interval 1");
    let mut sub = broker.subscriber("sys", "$SYS/broker/version", QoS::AtMostOnce);
    let got = sub
        .next_publish(TWO_INTERVALS)
        .expect("$SYS/broker/version");
    assert_eq!(got.topic, "$SYS/broker/version");
    assert!(got.retain);
    let text = std::str::from_utf8(&got.payload).expect("UTF-8 payload");
    assert!(text.contains("version "), "payload {text:?}");
}

/// `$SYS/broker/clients/connected` counts connected clients (the subscriber included)
/// and is updated within two `sys_interval`s.
#[test]
fn sys_clients_connected_counts_connected_clients() {
    let broker = Broker::start("sys_interval 1");
    let mut sub = broker.subscriber("sys", "$SYS/broker/clients/connected", QoS::AtMostOnce);
    let _a = broker.raw_connected("a");
    let _b = broker.raw_connected("b");
    let deadline = Instant::now() + TWO_INTERVALS;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let Some(got) = sub.next_publish(deadline - Instant::now()) else {
            break;
        };
        let count = String::from_utf8_lossy(&got.payload).into_owned();
        if count == "3" {
            return;
        }
        seen.push(count);
    }
    panic!("no count of 3 within {TWO_INTERVALS:?}; saw {seen:?}");
}

/// `$SYS/broker/uptime` is published as "<seconds> seconds", as Mosquitto does.
#[test]
fn sys_uptime_is_published_in_seconds() {
    let broker = Broker::start("sys_interval 1");
    let mut sub = broker.subscriber("sys", "$SYS/broker/uptime", QoS::AtMostOnce);
    let got = sub.next_publish(TWO_INTERVALS).expect("$SYS/broker/uptime");
    let text = std::str::from_utf8(&got.payload).expect("UTF-8 payload");
    let seconds = text
        .strip_suffix(" seconds")
        .unwrap_or_else(|| panic!("payload {text:?}"));
    let seconds: u64 = seconds.parse().expect("a whole number of seconds");
    assert!(seconds < 60, "uptime {seconds} s for a broker just started");
}
